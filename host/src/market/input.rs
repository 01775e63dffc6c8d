//! The messages that reach the engine thread: price batches from the sources, rule changes
//! from the API and the bot, partitions taken and given up (several hosts), flushes and
//! shutdown. They live below both the engine and the
//! sources, which only share this channel's types.

use std::time::Instant;

use tokio::sync::oneshot;

use super::rules::RuleRecord;
use crate::bindings::types::PriceTick;
use crate::storage::PricePoint;

/// What a source hands the engine.
#[derive(Debug)]
pub struct SourceBatch {
    /// Index into `[[market.sources]]`.
    pub source: usize,
    pub ticks: Vec<PriceTick>,
    /// When the payload arrived (for tick → alert latency).
    pub received: Instant,
    /// Persist this checkpoint once these ticks are evaluated (replay offsets).
    pub checkpoint: Option<String>,
}

/// What reaches the engine thread.
pub enum Input {
    Batch(SourceBatch),
    /// Add or replace a rule. `keep_firing`: keep the engine's firing state (a patch that
    /// did not change the condition or trigger).
    Upsert {
        rule: Box<RuleRecord>,
        keep_firing: bool,
        done: oneshot::Sender<()>,
    },
    Remove {
        id: String,
        done: oneshot::Sender<()>,
    },
    /// Commit now and answer (tests, shutdown of a caller).
    Flush(oneshot::Sender<()>),
    /// Several hosts: this host now holds these partitions (with their fencing tokens).
    /// `rules` and `latest` are their last committed rules and prices, read after the
    /// leases were taken.
    Acquired {
        parts: Vec<(u32, String)>,
        rules: Vec<RuleRecord>,
        latest: Vec<PricePoint>,
        done: oneshot::Sender<()>,
    },
    /// Several hosts: commit, then stop evaluating these partitions (their leases are
    /// given up next). Answers whether the commit was stored.
    Release {
        parts: Vec<u32>,
        done: oneshot::Sender<bool>,
    },
    /// Several hosts: these leases are no longer ours; drop their uncommitted work.
    Lost {
        parts: Vec<u32>,
    },
    Shutdown,
}
