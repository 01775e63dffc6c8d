//! The `rag` worker: every source's [`SourceRunner`] on its own task, a pass every
//! `interval`, and the [`RagHandle`] the API, MCP and metrics read.
//!
//! A failed pass (a folder gone, a chunker not loaded yet, a page down) is logged and
//! retried at the next interval with backoff up to a minute; nothing of it was stored past
//! the documents that completed, and what completed is skipped as unchanged next time.
//! On stop, a pass in progress finishes its current batch (the embedding call cannot be
//! interrupted) and the cursor is saved.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::service::{IngestCounts, RagService};
use super::sources::SourceRunner;
use super::sources::cursors::Cursors;
use super::sources::render::Renderer;
use crate::config::Config;
use crate::documents::Documents;
use crate::runtime::Runtime;

/// The worker's name in `[workers] enabled`.
pub const WORKER: &str = "rag";

/// What a source did last, for the API and the console.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    pub kind: String,
    pub collection: String,
    pub passes: u64,
    /// Unix ms of the last pass that finished.
    pub last_pass_ms: Option<i64>,
    pub last_error: Option<String>,
    /// Counts since the process started.
    pub totals: IngestCounts,
}

/// What the API, MCP and `/metrics` see of the worker.
#[derive(Clone)]
pub struct RagHandle {
    pub service: Arc<RagService>,
    pub sources: Arc<Mutex<BTreeMap<String, SourceStatus>>>,
}

/// The running worker.
pub struct RagWorker {
    pub handle: RagHandle,
    /// Where plugins' `rag` capability reaches the service; cleared on stop.
    slot: crate::capabilities::rag::Slot,
    lent: Arc<dyn crate::capabilities::rag::Index>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The browser pool of `render = true` sources, closed at stop.
    renderer: Option<Arc<Renderer>>,
}

/// Opens the configured index and embedder (loading a model takes a moment: off the
/// async threads).
pub async fn open_service(config: &Config, runtime: Runtime) -> Result<Arc<RagService>> {
    let rag = config.rag.clone();
    let base = config.base_dir.clone();
    let data = config.data_dir();
    let service =
        tokio::task::spawn_blocking(move || RagService::open(&rag, &base, &data, runtime))
            .await
            .context("opening the RAG index panicked")??;
    Ok(Arc::new(service))
}

/// The source runners of `config` (all, or the one named).
pub fn runners(
    config: &Config,
    service: &Arc<RagService>,
    docs: Option<Arc<dyn Documents>>,
    only: Option<&str>,
) -> Result<Vec<SourceRunner>> {
    let cursors = Arc::new(Cursors::open(&config.data_dir().join("rag")));
    let mut out = Vec::new();
    // One pool for every rendering source, launched on the first rendered page.
    let renderer = config
        .rag
        .sources
        .iter()
        .any(|s| s.render && only.is_none_or(|n| n == s.name))
        .then(|| Arc::new(Renderer::from_config(config)));
    for s in &config.rag.sources {
        if only.is_some_and(|n| n != s.name) {
            continue;
        }
        let mut runner = SourceRunner::new(
            s.clone(),
            &config.base_dir,
            service.clone(),
            cursors.clone(),
            docs.clone(),
        )?;
        if let Some(r) = &renderer {
            runner = runner.with_renderer(r.clone());
        }
        out.push(runner);
    }
    if let Some(name) = only
        && out.is_empty()
    {
        anyhow::bail!(
            "no [[rag.sources]] is named `{name}` (configured: {})",
            config
                .rag
                .sources
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(out)
}

impl RagWorker {
    pub async fn start(
        config: &Config,
        runtime: Runtime,
        docs: Arc<dyn Documents>,
    ) -> Result<RagWorker> {
        let slot = runtime.rag_slot().clone();
        let service = open_service(config, runtime).await?;
        let sources = Arc::new(Mutex::new(BTreeMap::new()));
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut renderer = None;
        for runner in runners(config, &service, Some(docs), None)? {
            if renderer.is_none() {
                renderer = runner.renderer().cloned();
            }
            sources.lock().insert(
                runner.config.name.clone(),
                SourceStatus {
                    kind: format!("{:?}", runner.config.kind).to_lowercase(),
                    collection: runner.config.collection.clone(),
                    ..Default::default()
                },
            );
            tasks.push(tokio::spawn(run_source(
                runner,
                sources.clone(),
                stopped.clone(),
            )));
        }
        // From now on plugins granted `rag` reach this service (the one index this
        // process may hold open).
        let lent: Arc<dyn crate::capabilities::rag::Index> = service.clone();
        slot.fill(lent.clone());
        tracing::info!(
            sources = config.rag.sources.len(),
            model = service.embedder().model_id(),
            "rag worker started"
        );
        Ok(RagWorker {
            handle: RagHandle { service, sources },
            slot,
            lent,
            stop,
            tasks,
            renderer,
        })
    }

    /// Stops after the passes in progress finish their batch; plugins' `rag` calls are
    /// refused from now on, saying the worker does not run.
    pub async fn stop(self) {
        self.slot.clear(&self.lent);
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(r) = self.renderer {
            r.shutdown().await;
        }
    }
}

async fn run_source(
    mut runner: SourceRunner,
    status: Arc<Mutex<BTreeMap<String, SourceStatus>>>,
    mut stopped: watch::Receiver<bool>,
) {
    let name = runner.config.name.clone();
    let interval = Duration::from_millis(runner.config.interval_ms() as u64);
    let mut failures = 0u32;
    loop {
        if *stopped.borrow() {
            return;
        }
        let result = runner.pass().await;
        let wait = {
            let mut all = status.lock();
            let s = all.entry(name.clone()).or_default();
            s.passes += 1;
            s.last_pass_ms = Some(crate::util::now_ms());
            match result {
                Ok(counts) => {
                    if counts.changed + counts.removed + counts.failed > 0 {
                        tracing::info!(source = %name, changed = counts.changed, removed = counts.removed, failed = counts.failed, embedded = counts.embedded, "source ingested");
                    }
                    s.totals.add(counts);
                    s.last_error = None;
                    failures = 0;
                    interval
                }
                Err(e) => {
                    let text = format!("{e:#}");
                    if s.last_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(source = %name, error = %text, "a source pass failed; retrying");
                    }
                    s.last_error = Some(text);
                    failures = failures.saturating_add(1);
                    (interval * failures.min(30)).min(Duration::from_secs(60).max(interval))
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return,
        }
    }
}
