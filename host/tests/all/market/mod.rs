//! The market monitor end to end, on the embedded store and on a real Redis.

mod feeds;
pub mod pipeline;
mod restart;
pub mod rig;
mod rules_api;
