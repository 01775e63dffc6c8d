//! The events worker (`[workers] enabled = ["events"]`): consumer groups on streams,
//! one [`listener`] per `[[listeners]]` entry, each handing events to an event-handler
//! plugin with the host's own attempt count, backoff, reclaim of a crashed host's
//! entries, dead letters, and the handler's `kv` and `notify` effects committed with the
//! ack. Works on Redis (several hosts share a group) and on the embedded store (one
//! host). The design and what is atomic where: docs/design/events.md.
//!
//! - `config`: `[[listeners]]` and `[events]`;
//! - `attempts`: the host's attempt records;
//! - `dead_letters`: the event dead-letter collection, replay and purge;
//! - `listener`: one listener's loop;
//! - `metrics`: its counters.

use std::sync::Arc;

use anyhow::Result;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::documents::Documents;
use crate::runtime::Runtime;
use crate::storage::Store;

pub mod attempts;
pub mod config;
pub mod dead_letters;
pub mod listener;
pub mod metrics;

pub use config::{EventsConfig, ListenerConfig};

/// The worker's name in `[workers] enabled`.
pub const WORKER: &str = "events";

/// A running events worker.
pub struct EventsWorker {
    pub handle: EventsHandle,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    grace: std::time::Duration,
}

/// What the API and `/metrics` see of the worker.
#[derive(Clone)]
pub struct EventsHandle {
    pub listeners: Arc<Vec<Arc<listener::Listener>>>,
}

impl EventsWorker {
    /// Start one listener per `[[listeners]]` entry.
    pub async fn start(
        config: &Config,
        runtime: Runtime,
        store: Arc<dyn Store>,
        docs: Arc<dyn Documents>,
    ) -> Result<EventsWorker> {
        if config.listeners.is_empty() {
            tracing::warn!(
                worker = WORKER,
                "events: enabled, but no [[listeners]] are configured"
            );
        }
        let consumer = config.events.consumer_name();
        let (stop, stop_rx) = watch::channel(false);
        let mut listeners = Vec::new();
        let mut tasks = Vec::new();
        for cfg in &config.listeners {
            let l = Arc::new(listener::Listener {
                cfg: cfg.clone(),
                metrics: Default::default(),
                store: store.clone(),
                docs: docs.clone(),
                runtime: runtime.clone(),
                consumer: consumer.clone(),
                kv_max_keys: config.capabilities.kv.max_keys,
                last_trim_ms: Default::default(),
            });
            tasks.push(tokio::spawn(l.clone().run(stop_rx.clone())));
            listeners.push(l);
        }
        tasks.push(tokio::spawn(expire_dead_letters(
            docs,
            config.events.dead_letter_retention,
            stop_rx,
        )));
        Ok(EventsWorker {
            handle: EventsHandle {
                listeners: Arc::new(listeners),
            },
            stop,
            tasks,
            grace: config.events.shutdown_grace,
        })
    }

    /// Stop reading, let the batches in flight commit within the grace period, and leave
    /// everything else pending for another host.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + self.grace;
        for mut t in self.tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                tracing::warn!(
                    worker = WORKER,
                    "events: a listener did not finish within the shutdown grace; its events stay pending"
                );
                t.abort();
            }
        }
        tracing::info!(worker = WORKER, "events: stopped");
    }
}

/// Delete dead letters past their retention, hourly.
async fn expire_dead_letters(
    docs: Arc<dyn Documents>,
    retention: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let cutoff = crate::util::now_ms() - retention.as_millis() as i64;
        match dead_letters::expire(&docs, cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                worker = WORKER,
                deleted = n,
                "events: expired dead letters deleted"
            ),
            Err(e) => tracing::warn!(worker = WORKER, error = %format!("{e:#}"),
                "events: deleting expired dead letters failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}
