//! Run history in the document store (`schedule_runs`): one record per try — scheduled
//! time, started, finished, host, attempt, outcome, the task's report summary, error —
//! and one per stretch of skipped occurrences. Bounded by `[scheduler] history_days` and
//! `history_per_schedule`.
//!
//! Records are written after the try's outcome is in the shared record (`claim`), by a
//! background writer that batches them and retries a failing document store, so a slow
//! history never delays the next occurrence. A record's id is its schedule, claim and
//! attempt: writing one twice (a retry after a lost answer) keeps one (inserts; only a
//! try first recorded `lost` by another host is written over).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::claim::{SkipReason, Trigger, TryOutcome};
use crate::documents::{Doc, Documents, Filter, IndexSpec, Order, Query, Write, WriteOutcome};
use crate::util::rfc3339_ms;

/// The collection.
pub const RUNS: &str = "schedule_runs";

/// Indexes the history's queries need; created at start-up.
pub const INDEXES: &[IndexSpec<'static>] = &[
    IndexSpec {
        collection: RUNS,
        name: "by_schedule",
        fields: &[("schedule", Order::Asc), ("finished_ms", Order::Desc)],
        unique: false,
    },
    IndexSpec {
        collection: RUNS,
        name: "finished",
        fields: &[("finished_ms", Order::Asc)],
        unique: false,
    },
];

/// Most records one batch writes.
const BATCH: usize = 256;
/// Records kept waiting while the document store is down; past this the oldest are
/// dropped (and counted in the log), so an outage cannot exhaust memory.
const MAX_BUFFERED: usize = 100_000;

/// One try as the history keeps it.
#[derive(Debug, Clone)]
pub struct TryRecord<'a> {
    pub schedule: &'a str,
    pub claim_id: &'a str,
    pub trigger: Trigger,
    pub occ_ms: i64,
    pub attempt: u32,
    pub host: &'a str,
    /// The worker instance (`host/pid-nonce`), which tells two processes on one machine
    /// apart.
    pub owner: &'a str,
    pub started_ms: i64,
    /// `None` for a try lost with its host.
    pub finished_ms: Option<i64>,
    /// `ok`, `error`, `timeout`, `lost`.
    pub outcome: &'a str,
    pub summary: Option<&'a str>,
    pub error: Option<&'a str>,
    /// A retry follows at this time.
    pub retry_at_ms: Option<i64>,
    /// The claim had been taken over by another host when this try ended.
    pub superseded: bool,
}

impl TryRecord<'_> {
    pub fn to_doc(&self) -> Doc {
        let finished = self.finished_ms.unwrap_or(self.started_ms);
        let mut d = json!({
            "_id": format!("{}:{}:{}", self.schedule, self.claim_id, self.attempt),
            "schedule": self.schedule,
            "run_id": self.claim_id,
            "trigger": self.trigger.as_str(),
            "scheduled_ms": self.occ_ms,
            "scheduled_at": rfc3339_ms(self.occ_ms),
            "attempt": self.attempt,
            "host": self.host,
            "worker": self.owner,
            "started_ms": self.started_ms,
            "started_at": rfc3339_ms(self.started_ms),
            "finished_ms": finished,
            "outcome": self.outcome,
        });
        let o = d.as_object_mut().expect("an object");
        if let Some(f) = self.finished_ms {
            o.insert("finished_at".into(), rfc3339_ms(f).into());
            o.insert("duration_ms".into(), (f - self.started_ms).into());
        }
        if let Some(s) = self.summary {
            o.insert("summary".into(), crate::util::truncate(s, 2048).into());
        }
        if let Some(e) = self.error {
            o.insert("error".into(), crate::util::truncate(e, 2048).into());
        }
        if let Some(r) = self.retry_at_ms {
            o.insert("retry_at".into(), rfc3339_ms(r).into());
        }
        if self.superseded {
            o.insert("superseded".into(), true.into());
        }
        std::mem::take(o)
    }
}

/// The record of a finished try.
#[allow(clippy::too_many_arguments)]
pub fn finished_doc(
    schedule: &str,
    claim_id: &str,
    trigger: Trigger,
    occ_ms: i64,
    host: &str,
    owner: &str,
    started_ms: i64,
    finished_ms: i64,
    attempt: u32,
    outcome: &TryOutcome,
    retry_at_ms: Option<i64>,
    superseded: bool,
) -> Doc {
    let summary = match outcome {
        TryOutcome::Ok { summary, .. } => Some(summary.as_str()),
        _ => None,
    };
    TryRecord {
        schedule,
        claim_id,
        trigger,
        occ_ms,
        attempt,
        host,
        owner,
        started_ms,
        finished_ms: Some(finished_ms),
        outcome: outcome.label(),
        summary,
        error: outcome.error(),
        retry_at_ms,
        superseded,
    }
    .to_doc()
}

/// The record of a stretch of skipped occurrences.
pub fn skipped_doc(
    schedule: &str,
    reason: SkipReason,
    first_ms: i64,
    last_ms: i64,
    count: u64,
    host: &str,
    now_ms: i64,
) -> Doc {
    let d = json!({
        "_id": format!("{schedule}:skip:{first_ms}"),
        "schedule": schedule,
        "trigger": Trigger::Schedule.as_str(),
        "scheduled_ms": first_ms,
        "scheduled_at": rfc3339_ms(first_ms),
        "last_scheduled_at": rfc3339_ms(last_ms),
        "skipped": count,
        "reason": reason.as_str(),
        "host": host,
        "finished_ms": now_ms,
        "outcome": "skipped",
    });
    match d {
        Value::Object(o) => o,
        _ => Doc::new(),
    }
}

/// A record to write: inserted, or (`replace`) written over one of the same id — a try
/// recorded `lost` by another host whose own host lived to tell its real outcome.
struct Pending {
    doc: Doc,
    replace: bool,
}

/// Queues records for the document store; cheap to clone.
#[derive(Clone)]
pub struct HistoryWriter {
    tx: mpsc::UnboundedSender<Pending>,
}

impl HistoryWriter {
    /// Start the writer task; it ends when every handle is dropped and its queue is empty
    /// (or the document store keeps failing past `drain_for` after that).
    pub fn start(docs: Arc<dyn Documents>) -> (HistoryWriter, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_loop(docs, rx));
        (HistoryWriter { tx }, task)
    }

    /// Insert a record (one already there with its id is kept: a retry after a lost
    /// answer).
    pub fn push(&self, doc: Doc) {
        let _ = self.tx.send(Pending {
            doc,
            replace: false,
        });
    }

    /// Write a record over the one with its id.
    pub fn push_replacing(&self, doc: Doc) {
        let _ = self.tx.send(Pending { doc, replace: true });
    }
}

async fn write_loop(docs: Arc<dyn Documents>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut buffer: std::collections::VecDeque<Pending> = Default::default();
    let mut open = true;
    let mut failures = 0u32;
    while open || !buffer.is_empty() {
        if buffer.is_empty() {
            match rx.recv().await {
                Some(d) => buffer.push_back(d),
                None => break,
            }
        }
        while let Ok(d) = rx.try_recv() {
            buffer.push_back(d);
        }
        if rx.is_closed() && rx.is_empty() {
            open = false;
        }
        let dropped = buffer.len().saturating_sub(MAX_BUFFERED);
        if dropped > 0 {
            buffer.drain(..dropped);
            tracing::error!(
                worker = "scheduler",
                dropped,
                "run history: the document store has been failing; dropped the oldest records"
            );
        }
        // One batch never writes an id twice (the document store's rule): it ends
        // before a repeated one.
        let mut ids = std::collections::HashSet::new();
        let n = buffer
            .iter()
            .take(BATCH)
            .take_while(|p| ids.insert(p.doc.get("_id").cloned()))
            .count()
            .max(1);
        let writes: Vec<Write> = buffer
            .iter()
            .take(n)
            .map(|p| {
                if p.replace {
                    Write::Upsert {
                        coll: RUNS.into(),
                        doc: p.doc.clone(),
                    }
                } else {
                    Write::Insert {
                        coll: RUNS.into(),
                        doc: p.doc.clone(),
                    }
                }
            })
            .collect();
        match docs.write(writes).await {
            Ok(outcomes) => {
                failures = 0;
                buffer.drain(..n);
                if outcomes.contains(&WriteOutcome::Duplicate) {
                    tracing::debug!(worker = "scheduler", "run history: duplicate record");
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(worker = "scheduler", error = %format!("{e:#}"), buffered = buffer.len(),
                    "run history: writing failed; retrying");
                if !open && failures > 20 {
                    tracing::error!(
                        worker = "scheduler",
                        lost = buffer.len(),
                        "run history: giving up on the remaining records at shutdown"
                    );
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(10)))).await;
            }
        }
    }
}

/// The newest records of a schedule, newest first.
pub async fn recent(docs: &dyn Documents, schedule: &str, limit: usize) -> Result<Vec<Doc>> {
    docs.find(
        RUNS,
        &Query::new(Filter::all().eq("schedule", schedule))
            .sort("finished_ms", Order::Desc)
            .limit(limit),
    )
    .await
}

/// Delete records past the retention: older than `days`, and beyond the newest `keep`
/// of each schedule in `names`. Returns how many went.
pub async fn prune(
    docs: &dyn Documents,
    names: &[String],
    days: u64,
    keep: u64,
    now_ms: i64,
) -> Result<u64> {
    let cutoff = now_ms - (days as i64) * 86_400_000;
    let mut removed = docs
        .delete_where(RUNS, &Filter::all().lt("finished_ms", cutoff))
        .await?;
    for name in names {
        let newest = docs
            .find(
                RUNS,
                &Query::new(Filter::all().eq("schedule", name.as_str()))
                    .sort("finished_ms", Order::Desc)
                    .limit(keep as usize + 1),
            )
            .await?;
        if newest.len() as u64 > keep
            && let Some(oldest_kept) = newest.get(keep as usize - 1)
            && let Some(t) = oldest_kept.get("finished_ms").and_then(Value::as_i64)
        {
            removed += docs
                .delete_where(
                    RUNS,
                    &Filter::all()
                        .eq("schedule", name.as_str())
                        .lt("finished_ms", t),
                )
                .await?;
        }
    }
    Ok(removed)
}
