//! The x-scraper worker end to end: a real Chromium (Debian's), the stand-in X
//! (`servers::x_site`), the x-timeline parser plugin, real stores.

mod accounts;
pub(crate) mod ids;
mod limits;
mod mongo;
mod proxies;
mod resilience;
pub(crate) mod rig;
mod runs;
