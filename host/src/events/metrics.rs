//! Counters of one listener, rendered on `/metrics` (`api::metrics`) with the stream's
//! length and the group's pending count, read from the store at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};

/// What happened to events, by outcome.
#[derive(Debug, Default)]
pub struct ListenerMetrics {
    /// Acknowledged (with their effects).
    pub acked: AtomicU64,
    /// The handler answered `retry`.
    pub retried: AtomicU64,
    /// The call failed: a trap, a timeout, a limit (counted as an attempt).
    pub failed: AtomicU64,
    /// Moved to the dead-letter store (any reason).
    pub dead_lettered: AtomicU64,
    /// Entries that could not be made into an event (also dead-lettered).
    pub invalid: AtomicU64,
    /// Handler calls made.
    pub attempts: AtomicU64,
    /// Entries taken over from another consumer after `claim_idle`.
    pub claimed: AtomicU64,
    /// Handler call time, summed (µs), and calls timed.
    pub handler_us: AtomicU64,
    pub handler_calls: AtomicU64,
    /// Commits refused at `notify:requests`' bound (retried after a pause).
    pub commit_waits: AtomicU64,
    /// Time spent reading batches and committing them (µs), for tuning.
    pub read_us: AtomicU64,
    pub commit_us: AtomicU64,
}

impl ListenerMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// (outcome label, count) for `impressox_events_total`.
    pub fn outcomes(&self) -> [(&'static str, u64); 5] {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("ack", g(&self.acked)),
            ("retry", g(&self.retried)),
            ("error", g(&self.failed)),
            ("dead_letter", g(&self.dead_lettered)),
            ("invalid", g(&self.invalid)),
        ]
    }
}
