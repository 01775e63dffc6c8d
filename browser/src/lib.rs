//! `impressox-browser`: headless Chromium for the X scraper, behind a small API. This is the
//! only crate that names chromiumoxide (0.9.1, tokio only); the host's scraper sees the types
//! re-exported here and nothing else (docs/design/x-scraper.md §2).
//!
//! # Organization
//!
//! - [`config`] — [`PoolConfig`], [`Sandbox`] and their validation.
//! - `launch` — one Chromium process (flags, profile directory `<root>/<pid>-<slot>-<generation>`,
//!   handler task, liveness check, stop).
//! - [`pool`] — [`BrowserPool`]: start, contexts, shutdown; its state below it in `slots`
//!   (slots, context placement, the supervisor that relaunches a dead browser with backoff).
//! - `sync` — the poison-tolerant mutex lock every file uses.
//! - [`context`] — [`AccountContext`]: one browser context per account with its proxy and
//!   cookies, ≤ `pages_per_account` pages, transparent re-creation after a browser restart.
//! - [`page`] — [`PageLease`]: navigate/scroll and capture, DOM helpers for the login form,
//!   recycling.
//! - [`capture`] — the Network-domain capture of X's API responses and the step rule
//!   ([`Expect`], [`Capture`], [`CapturedResponse`]).
//! - `intercept` — the Fetch domain (blocked resource types, proxy credentials, the request
//!   filter).
//! - [`filter`] — [`RequestFilter`]: a per-request check run before Chromium sends a request.
//! - [`cookies`] — [`StoredCookie`], our serde cookie type.
//! - [`error`] — [`BrowserError`].
//!
//! # Use
//!
//! ```no_run
//! # async fn demo() -> Result<(), impressox_browser::BrowserError> {
//! use impressox_browser::{BrowserPool, ContextSpec, Expect, PoolConfig};
//! let pool = BrowserPool::start(PoolConfig::default()).await?;
//! let ctx = pool.context(ContextSpec { key: "alice".into(), ..Default::default() }).await?;
//! let mut page = ctx.lease().await?;
//! let expect = Expect { operations: vec!["UserTweets".into()], min_new: 1 };
//! let first = page.open("https://x.com/someone", expect.clone(), true).await?;
//! let next = page.scroll_more(expect, false).await?;
//! drop(page);
//! let session = ctx.cookies().await?;
//! ctx.close().await;
//! pool.shutdown().await;
//! # let _ = (first, next, session); Ok(()) }
//! ```

pub mod capture;
pub mod config;
pub mod context;
pub mod cookies;
pub mod error;
pub mod filter;
mod intercept;
mod launch;
pub mod page;
pub mod pool;
mod slots;
mod sync;

pub use capture::{Capture, CapturedResponse, Expect, is_login_url, operation};
pub use config::{PoolConfig, Sandbox};
pub use context::{AccountContext, ContextSpec, ProxySpec};
pub use cookies::StoredCookie;
pub use error::BrowserError;
pub use filter::{FilterFuture, RequestFilter};
pub use page::PageLease;
pub use pool::BrowserPool;
