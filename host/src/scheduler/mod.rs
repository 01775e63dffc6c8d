//! The scheduler worker (SPEC §10.1): runs task plugins on cron patterns or fixed
//! intervals, each occurrence once across every host sharing the store.
//!
//! ## Organization
//! - [`config`]: `[[schedules]]` / API bodies ([`config::ScheduleSpec`]) and `[scheduler]`;
//! - [`timing`]: when occurrences fall (croner patterns evaluated on jiff, DST rules);
//! - [`claim`]: the shared per-schedule record and the pure transitions on it — where
//!   "exactly once" lives;
//! - [`catalog`]: where schedules are defined (config, API-made in the document store);
//! - [`runner`]: one try of a task on a plugin-call thread, under the schedule's timeout;
//! - [`worker`]: the loop that plans, writes and carries out;
//! - [`history`]: run records in the document store, and their retention;
//! - [`service`]: what the API asks (listing, run-now, the change signal);
//! - [`metrics`]: the `impressox_scheduler_*` figures.
//!
//! Design notes (the claim protocol, kill -9, clock skew): docs/design/scheduler.md.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::documents::Documents;
use crate::runtime::Runtime;
use crate::storage::Store;

pub mod catalog;
pub mod claim;
pub mod config;
pub mod history;
pub mod metrics;
pub mod runner;
pub mod service;
pub mod timing;
mod worker;

use catalog::Definition;
use config::SchedulerConfig;
use metrics::SchedulerStats;

/// What the worker's parts and its handle share.
pub struct Shared {
    pub cfg: SchedulerConfig,
    pub store: Arc<dyn Store>,
    pub docs: Arc<dyn Documents>,
    pub runtime: Runtime,
    pub stats: SchedulerStats,
    /// `<host>/<boot>`: who holds a lease.
    pub owner: String,
    /// This host's name, in the history.
    pub host: String,
    /// `[[schedules]]` of this process.
    pub config_defs: Vec<Definition>,
    /// Asks the loop to re-read definitions and records now (a change made here).
    wake: Notify,
    /// Set once shutdown began: nothing new starts.
    stopping: AtomicBool,
}

/// The running worker.
pub struct SchedulerWorker {
    pub handle: SchedulerHandle,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    history: JoinHandle<()>,
}

/// What the API holds: the worker's counters, and a way to make it look again at once.
#[derive(Clone)]
pub struct SchedulerHandle {
    shared: Arc<Shared>,
}

impl SchedulerHandle {
    /// Make this host re-read schedules and records now (after a change made here).
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// `impressox_scheduler_*` for `/metrics`.
    pub fn render_metrics(&self, out: &mut String) {
        self.shared.stats.render(out);
    }
}

/// The `[[schedules]]` of a configuration, checked (config load refused bad ones).
pub fn config_definitions(config: &Config) -> Vec<Definition> {
    catalog::config_definitions(&config.schedules)
}

impl SchedulerWorker {
    /// Start the worker: indexes for the history, then the loop.
    pub async fn start(
        config: &Config,
        runtime: Runtime,
        store: Arc<dyn Store>,
        docs: Arc<dyn Documents>,
    ) -> Result<SchedulerWorker> {
        docs.ensure_indexes(history::INDEXES)
            .await
            .context("failed to create the run history's indexes")?;
        let host = crate::util::host_name();
        let owner = format!("{host}/{}-{:08x}", std::process::id(), fastrand::u32(..));
        let config_defs = config_definitions(config);
        tracing::info!(
            worker = "scheduler",
            schedules = config_defs.len(),
            lease_ms = config.scheduler.lease_ms,
            "scheduler starting"
        );
        let shared = Arc::new(Shared {
            cfg: config.scheduler.clone(),
            store,
            docs: docs.clone(),
            runtime,
            stats: SchedulerStats::default(),
            owner,
            host,
            config_defs,
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
        });
        let (writer, history) = history::HistoryWriter::start(docs);
        let (stop, stop_rx) = watch::channel(false);
        let run = worker::Loop::new(shared.clone(), writer);
        let task = tokio::spawn(run.run(stop_rx));
        Ok(SchedulerWorker {
            handle: SchedulerHandle { shared },
            stop,
            task,
            history,
        })
    }

    /// Stop: nothing new starts; tries in flight get `[scheduler] grace_ms` to finish
    /// and be recorded; the history is flushed.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        // The loop held the last writer handle: the history task drains and ends.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), self.history).await;
    }
}
