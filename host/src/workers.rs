//! Workers: one folder per worker, each owning its loop.
//!
//! This release ships the plugin runtime and the admin API; the workers named in SPEC §1
//! arrive one issue at a time. Naming one that this build does not have yet is a clear
//! start-up error rather than a silent no-op.

use anyhow::{Result, bail};

/// Every worker name the configuration may use.
pub const KNOWN: &[&str] = &[
    "market-monitor",
    "notify",
    "x-scraper",
    "scheduler",
    "events",
];

/// Workers this build can run.
pub const AVAILABLE: &[&str] = &[];

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
