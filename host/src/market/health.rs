//! What the market monitor reports about itself: per-source health and pipeline
//! counters, shared between the sources, the engine thread and the API.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::runtime::metrics::LatencyHistogram;
use crate::util::now_ms;

/// A source's connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    Connecting,
    Up,
    /// Silent past `stale_after`; its prices fire no rule and its fallback is used.
    Stale,
    /// Disconnected, waiting out a backoff.
    Down,
    /// A replay that reached the end of its file.
    Finished,
}

impl SourceState {
    fn from_u8(v: u8) -> SourceState {
        match v {
            1 => SourceState::Up,
            2 => SourceState::Stale,
            3 => SourceState::Down,
            4 => SourceState::Finished,
            _ => SourceState::Connecting,
        }
    }
    fn as_u8(self) -> u8 {
        match self {
            SourceState::Connecting => 0,
            SourceState::Up => 1,
            SourceState::Stale => 2,
            SourceState::Down => 3,
            SourceState::Finished => 4,
        }
    }
}

/// One source's health.
#[derive(Debug)]
pub struct SourceHealth {
    pub name: String,
    pub kind: &'static str,
    pub stale_after_ms: i64,
    state: AtomicU8,
    /// Wall-clock time of the last message (data or heartbeat), ms.
    pub last_message_ms: AtomicI64,
    pub messages: AtomicU64,
    pub ticks: AtomicU64,
    pub parse_errors: AtomicU64,
    pub reconnects: AtomicU64,
    pub stale_events: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl SourceHealth {
    pub fn new(name: &str, kind: &'static str, stale_after_ms: i64) -> SourceHealth {
        SourceHealth {
            name: name.to_string(),
            kind,
            stale_after_ms,
            state: AtomicU8::new(0),
            last_message_ms: AtomicI64::new(0),
            messages: AtomicU64::new(0),
            ticks: AtomicU64::new(0),
            parse_errors: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            stale_events: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub fn state(&self) -> SourceState {
        SourceState::from_u8(self.state.load(Ordering::Relaxed))
    }

    pub fn set_state(&self, s: SourceState) {
        let old = self.state.swap(s.as_u8(), Ordering::Relaxed);
        if s == SourceState::Stale && old != s.as_u8() {
            self.stale_events.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A message arrived: the source is alive.
    pub fn seen(&self) {
        self.last_message_ms.store(now_ms(), Ordering::Relaxed);
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.set_state(SourceState::Up);
    }

    pub fn error(&self, message: String) {
        *self.last_error.lock() = Some(message);
    }

    /// Milliseconds since the last message, if any arrived.
    pub fn age_ms(&self) -> Option<i64> {
        match self.last_message_ms.load(Ordering::Relaxed) {
            0 => None,
            t => Some(now_ms() - t),
        }
    }
}

/// Pipeline counters.
#[derive(Default)]
pub struct MarketStats {
    pub ticks_evaluated: AtomicU64,
    /// Several hosts: ticks of a newly held partition that its previous owner had
    /// evaluated already (at or before its last committed tick time), skipped.
    pub ticks_evaluated_before: AtomicU64,
    /// Several hosts: ticks kept while another host held their partition, evaluated on
    /// taking it over.
    pub ticks_caught_up: AtomicU64,
    /// Several hosts: commits refused because a lease had moved to another host.
    pub commits_fenced: AtomicU64,
    /// Ticks older than their source's `stale_after` when they arrived.
    pub ticks_stale: AtomicU64,
    /// Fallback ticks not used because the primary source is healthy.
    pub ticks_shadowed: AtomicU64,
    pub batches: AtomicU64,
    pub alerts: AtomicU64,
    /// Alerts whose idempotency key was already enqueued (re-evaluation after a restart).
    pub alerts_duplicate: AtomicU64,
    pub evaluate_errors: AtomicU64,
    pub commits: AtomicU64,
    pub store_errors: AtomicU64,
    /// From a source receiving a message to its notification request being enqueued.
    pub alert_latency: LatencyHistogram,
    /// Duration of one state commit (one durable write).
    pub commit_latency: LatencyHistogram,
    /// Duration of one rule-processor call.
    pub evaluate_latency: LatencyHistogram,
    /// Rule-processor instances whose last call failed and that wait to be retried.
    pub instances_failing: AtomicU64,
    /// Rules of those instances, with the failure (the API shows it per rule).
    failing_rules: RwLock<HashMap<String, Arc<str>>>,
}

impl MarketStats {
    /// Why the instance evaluating rule `id` fails, if it does.
    pub fn rule_failure(&self, id: &str) -> Option<String> {
        self.failing_rules.read().get(id).map(|e| e.to_string())
    }

    /// How many rules wait for a failing instance.
    pub fn rules_failing(&self) -> usize {
        self.failing_rules.read().len()
    }

    /// Mark `ids` as waiting for a failing instance, with its error.
    pub fn set_failing<'a>(&self, ids: impl IntoIterator<Item = &'a String>, error: &Arc<str>) {
        let mut map = self.failing_rules.write();
        for id in ids {
            map.insert(id.clone(), error.clone());
        }
    }

    /// `ids` are evaluated again (or gone).
    pub fn clear_failing<'a>(&self, ids: impl IntoIterator<Item = &'a String>) {
        let mut map = self.failing_rules.write();
        for id in ids {
            map.remove(id);
        }
    }
}
