//! Plugins in Python and JavaScript (issue 18), built from source with the pinned
//! toolchains (`crate::componentize`):
//! - [`python`]: the bundled `rsi` rule processor checked, run, fed by a replayed feed in a
//!   running monitor (its alerts land on `notify:requests`) and hot-swapped there;
//! - [`js`]: the bundled `discord-embeds` formatter checked, run, carried by the webhook
//!   channel to a webhook receiver, and hot-swapped under a running notify worker;
//! - [`scaffold`]: `impressox plugin new --lang python|js` projects that build and run their
//!   example, and the errors an author without a toolchain sees;
//! - [`sandbox`]: what stock CPython and SpiderMonkey meet in the sandbox;
//! - [`pool`]: idle instances of a large guest kept by memory, not by count.

mod js;
mod pool;
mod python;
mod sandbox;
mod scaffold;
