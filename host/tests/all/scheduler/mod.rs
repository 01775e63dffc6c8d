//! The scheduler (issue 14 items 1-5): timing, overlap, catch-up, retries and timeouts
//! in one process on the embedded stores and on Redis (`runs`), the API (`api`), and
//! exactly-once across real `impressox` processes sharing Redis and MongoDB (`hosts`).
//!
//! The task is the `sched-probe` test guest: it counts each run per occurrence in `kv`
//! (on the store under test, shared by the hosts) and can be slow or fail on purpose, so
//! a test can tell an occurrence run twice, or two runs at once, from what the plugin saw.

mod api;
mod hosts;
mod runs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use impressox_host::capabilities::Services;
use impressox_host::config::Config;
use impressox_host::documents::{Doc, Documents};
use impressox_host::runtime::Runtime;
use impressox_host::scheduler::SchedulerWorker;
use impressox_host::scheduler::history::RUNS;
use impressox_host::storage::Store;
use serde_json::Value;

use crate::harness::config_in;

/// The probe's name and its grant.
pub const PROBE: &str = "sched-probe";
pub const GRANT: &str = "[plugins.grants.sched-probe]\nkv = true\n";

/// A host in this process: stores, runtime with the probe loaded, and (once started)
/// the scheduler worker.
pub struct Rig {
    _dir: tempfile::TempDir,
    pub config: Config,
    pub runtime: Runtime,
    pub store: Arc<dyn Store>,
    pub docs: Arc<dyn Documents>,
    pub worker: Option<SchedulerWorker>,
}

impl Rig {
    /// `extra`: backend sections, `[scheduler]`, `[[schedules]]`.
    pub async fn new(extra: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        Self::in_dir(dir, extra).await
    }

    /// [`Rig::new`] without the probe loaded yet ([`Rig::load_probe`] loads it).
    pub async fn without_probe(extra: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        Self::build(dir, extra, false).await
    }

    pub async fn in_dir(dir: tempfile::TempDir, extra: &str) -> Rig {
        Self::build(dir, extra, true).await
    }

    /// Install and load the probe now.
    pub fn load_probe(&self) {
        let path = self.config.plugin_dir().join("sched-probe.wasm");
        std::fs::copy(test_artifacts::GUEST_SCHED_PROBE, &path).unwrap();
        self.runtime.load_file(&path).unwrap();
    }

    async fn build(dir: tempfile::TempDir, extra: &str, probe: bool) -> Rig {
        let config = config_in(
            dir.path(),
            &format!("{GRANT}[workers]\nenabled = [\"scheduler\"]\n{extra}"),
        );
        std::fs::create_dir_all(config.plugin_dir()).unwrap();
        let store = impressox_host::storage::open(&config, Default::default())
            .await
            .unwrap();
        let docs = impressox_host::documents::open(&config).await.unwrap();
        let services = Services::new(&config, store.clone(), docs.clone());
        let runtime = Runtime::with_services(&config, services).unwrap();
        let rig = Rig {
            _dir: dir,
            config,
            runtime,
            store,
            docs,
            worker: None,
        };
        if probe {
            rig.load_probe();
        }
        rig
    }

    pub async fn start(&mut self) {
        self.worker = Some(
            SchedulerWorker::start(
                &self.config,
                self.runtime.clone(),
                self.store.clone(),
                self.docs.clone(),
            )
            .await
            .unwrap(),
        );
    }

    pub async fn stop(&mut self) {
        if let Some(w) = self.worker.take() {
            w.stop().await;
        }
    }

    /// A counter the probe keeps.
    pub async fn count(&self, key: &str) -> i64 {
        probe_count(&*self.store, key).await
    }

    /// The run history of `schedule`, oldest occurrence first.
    pub async fn history(&self, schedule: &str) -> Vec<Doc> {
        history_of(&*self.docs, schedule).await
    }
}

pub async fn probe_count(store: &dyn Store, key: &str) -> i64 {
    store
        .plugin_kv_get(PROBE, key)
        .await
        .unwrap()
        .map_or(0, |v| String::from_utf8_lossy(&v).parse().unwrap())
}

pub async fn history_of(docs: &dyn Documents, schedule: &str) -> Vec<Doc> {
    use impressox_host::documents::{Filter, Order, Query};
    docs.find(
        RUNS,
        &Query::new(Filter::all().eq("schedule", schedule))
            .sort("scheduled_ms", Order::Asc)
            .sort("attempt", Order::Asc),
    )
    .await
    .unwrap()
}

pub fn field<'a>(d: &'a Doc, k: &str) -> &'a Value {
    d.get(k).unwrap_or(&Value::Null)
}

pub fn text<'a>(d: &'a Doc, k: &str) -> &'a str {
    field(d, k).as_str().unwrap_or_default()
}

pub fn int(d: &Doc, k: &str) -> i64 {
    field(d, k).as_i64().unwrap_or_default()
}

/// Poll an async check until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
