//! The notify worker end to end: real stores, real formatter plugins, a Telegram Bot API
//! stand-in, a webhook receiver that checks signatures, and aiosmtpd.

mod api;
mod bot;
mod channels;
mod exactly_once;
mod intake;
pub mod rig;
