//! The scraper's counters, rendered into `/metrics` as `impressox_scraper_*`.
//!
//! Plain atomics (a run touches a handful per page); labelled counts (runs by outcome,
//! account states) are small maps behind a mutex.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// A monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// Pages captured, parsed and stored.
    pub pages: Counter,
    pub tweets_new: Counter,
    pub tweets_updated: Counter,
    /// Timeline entries the parser skipped (the rest of each page was kept).
    pub skipped_entries: Counter,
    pub parse_failures: Counter,
    pub browser_errors: Counter,
    pub logins_ok: Counter,
    pub logins_failed: Counter,
    pub proxy_failures: Counter,
    /// Runs by outcome.
    pub runs: Mutex<BTreeMap<&'static str, u64>>,
    /// Account state changes by new state.
    pub transitions: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn run_ended(&self, outcome: &'static str) {
        *self.runs.lock().entry(outcome).or_default() += 1;
    }

    pub fn transition(&self, to: &'static str) {
        *self.transitions.lock().entry(to).or_default() += 1;
    }

    /// Prometheus text; `gauges` are the worker's live figures (accounts by state, browser
    /// restarts, contexts) computed by the caller.
    pub fn render(&self, out: &mut String, gauges: &Gauges) {
        for (metric, help, v) in [
            (
                "impressox_scraper_pages_total",
                "Pages captured, parsed and stored.",
                &self.pages,
            ),
            (
                "impressox_scraper_tweets_new_total",
                "Tweets stored for the first time.",
                &self.tweets_new,
            ),
            (
                "impressox_scraper_tweets_updated_total",
                "Tweets seen again and updated.",
                &self.tweets_updated,
            ),
            (
                "impressox_scraper_skipped_entries_total",
                "Timeline entries the parser skipped.",
                &self.skipped_entries,
            ),
            (
                "impressox_scraper_parse_failures_total",
                "Captures the parser could not read (spooled).",
                &self.parse_failures,
            ),
            (
                "impressox_scraper_browser_errors_total",
                "Runs ended by a browser error.",
                &self.browser_errors,
            ),
            (
                "impressox_scraper_logins_total{outcome=\"ok\"}",
                "Logins through the login form.",
                &self.logins_ok,
            ),
            (
                "impressox_scraper_logins_total{outcome=\"failed\"}",
                "",
                &self.logins_failed,
            ),
            (
                "impressox_scraper_proxy_failures_total",
                "Steps that failed because of a proxy.",
                &self.proxy_failures,
            ),
        ] {
            let name = metric.split('{').next().unwrap_or(metric);
            if !help.is_empty() {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} counter");
            }
            let _ = writeln!(out, "{metric} {}", v.get());
        }
        let _ = writeln!(
            out,
            "# HELP impressox_scraper_runs_total Target runs by outcome."
        );
        let _ = writeln!(out, "# TYPE impressox_scraper_runs_total counter");
        for (outcome, n) in self.runs.lock().iter() {
            let _ = writeln!(
                out,
                "impressox_scraper_runs_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP impressox_scraper_account_transitions_total Account state changes by new state."
        );
        let _ = writeln!(
            out,
            "# TYPE impressox_scraper_account_transitions_total counter"
        );
        for (to, n) in self.transitions.lock().iter() {
            let _ = writeln!(
                out,
                "impressox_scraper_account_transitions_total{{to=\"{to}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP impressox_scraper_accounts Accounts by state.");
        let _ = writeln!(out, "# TYPE impressox_scraper_accounts gauge");
        for (state, n) in &gauges.accounts {
            let _ = writeln!(out, "impressox_scraper_accounts{{state=\"{state}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP impressox_scraper_browser_restarts_total Chromium processes relaunched after dying."
        );
        let _ = writeln!(
            out,
            "# TYPE impressox_scraper_browser_restarts_total counter"
        );
        let _ = writeln!(
            out,
            "impressox_scraper_browser_restarts_total {}",
            gauges.browser_restarts
        );
        let _ = writeln!(
            out,
            "# HELP impressox_scraper_spooled Captures waiting in the spool."
        );
        let _ = writeln!(out, "# TYPE impressox_scraper_spooled gauge");
        let _ = writeln!(out, "impressox_scraper_spooled {}", gauges.spooled);
    }
}

/// Live figures for [`Metrics::render`].
#[derive(Debug, Default)]
pub struct Gauges {
    pub accounts: BTreeMap<String, u64>,
    pub browser_restarts: u64,
    pub spooled: u64,
}
