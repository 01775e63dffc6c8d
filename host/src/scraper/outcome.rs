//! [`Outcome`]: how a scraper run ended. The account pool (which decides what an outcome
//! means for the account) and the runner (which produces it) both use it, so it lives
//! below both.

/// How a run ended, for the target's `last_run` and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped by its stop rule (tail reached stored tweets, page limit, end of timeline).
    Ok,
    /// The account's budget for the next step ran out.
    Budget,
    RateLimited,
    Locked,
    Banned,
    LoginFailed,
    ProxyFailed,
    /// A step took longer than `step_timeout_secs`; what arrived was kept.
    Timeout,
    /// The parser could not read a page; the capture is in the spool.
    ParserFailed,
    /// The browser went away twice, or another browser error.
    BrowserError,
    /// The document store failed.
    StoreError,
    /// Ended early by the worker's shutdown or a lost target lease; what it read is saved
    /// and the target stays due, so the next run (on any host) continues.
    Stopped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Budget => "budget",
            Outcome::RateLimited => "rate_limited",
            Outcome::Locked => "locked",
            Outcome::Banned => "banned",
            Outcome::LoginFailed => "login_failed",
            Outcome::ProxyFailed => "proxy_failed",
            Outcome::Timeout => "timeout",
            Outcome::ParserFailed => "parser_failed",
            Outcome::BrowserError => "browser_error",
            Outcome::StoreError => "store_error",
            Outcome::Stopped => "stopped",
        }
    }

    /// Whether the target's interval starts again (else it stays due for another account).
    pub fn counts_as_run(self) -> bool {
        matches!(
            self,
            Outcome::Ok | Outcome::Budget | Outcome::Timeout | Outcome::ParserFailed
        )
    }
}
