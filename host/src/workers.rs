//! Workers: one folder per worker, each owning its loop.
//!
//! The workers named in SPEC §1 arrive one issue at a time (the market monitor lives in
//! `crate::market`). Naming one that this build does not have yet is a clear
//! start-up error rather than a silent no-op.

use anyhow::{Result, bail};

/// Every worker name the configuration may use.
pub const KNOWN: &[&str] = &[
    "market-monitor",
    "notify",
    "x-scraper",
    "scheduler",
    "events",
    "rag",
];

/// Workers this build can run.
pub const AVAILABLE: &[&str] = &[
    "market-monitor",
    "notify",
    "x-scraper",
    "scheduler",
    "events",
    "rag",
];

/// Refuse a configuration that enables a worker this build cannot run yet.
pub fn check_available(enabled: &[String]) -> Result<()> {
    for name in enabled {
        if !AVAILABLE.contains(&name.as_str()) {
            bail!(
                "[workers] enabled: worker `{name}` is not part of this build yet; \
                 run with `enabled = []` for the plugin runtime and API alone"
            );
        }
    }
    Ok(())
}
