//! The notify worker end to end: real stores, real formatter plugins, a Telegram Bot API
//! stand-in, a webhook receiver that checks signatures, aiosmtpd, a Web Push service that
//! verifies and decrypts, and Discord and Slack webhooks with their limits.

mod api;
mod bot;
mod channels;
mod exactly_once;
mod intake;
mod push_channels;
pub mod rig;
