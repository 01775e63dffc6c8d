//! Integration tests of `impressox-browser` against real Chromium, a tiny axum site and a tiny
//! forward proxy, both served on 127.0.0.1:0 by the tests themselves.
//!
//! Chromium is needed (`IMPRESSOX_CHROMIUM` or `/usr/bin/chromium`); a missing binary fails the
//! test with the install command, it is never skipped. Browser tests take one of two permits of
//! a process-wide semaphore: on 2 cores, more Chromiums at once starve each other.

mod capture;
mod contexts;
mod crash;
mod harness;
mod launch;
mod proxies;
mod proxy;
mod site;
