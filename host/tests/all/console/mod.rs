//! The web console (`/ui`) in a real headless Chromium, against a host with real data:
//! Redis and MongoDB (SecantusDB) from the harness, the notify worker with its Telegram
//! stand-in, rules made through the API, prices committed to the store.
//!
//! - `pages`: every page of the menu loads, shows its data, and is saved as a screenshot
//!   under the test's temporary folder; the rules page pages and filters.
//! - `actions`: replay of a dead letter delivers once; reload of the plugins.
//! - `auth`: with a token, the sign-in form, the session cookie, and the refusals
//!   (no session, wrong token, no CSRF token, a cross-site form).

mod actions;
mod auth;
mod pages;
pub mod rig;
