//! The market monitor end to end, on the embedded store and on a real Redis.

mod pipeline;
mod rig;
mod rules_api;
