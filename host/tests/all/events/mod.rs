//! The events worker (issue 14, items 6-11) on the embedded store and a real Redis, with a
//! real handler component (`tests/guests/event-probe`): retries with the host's attempt
//! count, dead letters and their replay, traps and timeouts as attempts, effects applied
//! exactly once with the ack, malformed entries, trimming and the bound; and, with
//! `impressox` processes, crashes, two hosts on one group and a Redis restart.

mod api;
mod processes;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use impressox_host::documents::{Doc, Documents};
use impressox_host::events::EventsWorker;
use impressox_host::storage::Store;

use crate::capabilities::{Backend, CapsHost};
use crate::harness::wait_until;

/// The handler's name and the stream and group of the listener under test.
pub const PLUGIN: &str = "event-probe";
pub const STREAM: &str = "test:events";
pub const GROUP: &str = "probe";

/// The grants the probe needs and one listener; `listener` adds keys to it.
pub fn config(listener: &str) -> String {
    format!(
        "[plugins.grants.{PLUGIN}]\nkv = true\nnotify = true\n\
         [events]\nconsumer = \"test-host\"\nshutdown_grace = \"5s\"\n\
         [[listeners]]\nstream = \"{STREAM}\"\ngroup = \"{GROUP}\"\nplugin = \"{PLUGIN}\"\n\
         backoff = \"50ms\"\nbackoff_max = \"200ms\"\nclaim_idle = \"2s\"\n{listener}"
    )
}

/// A host running the events worker in this process.
pub struct Events {
    pub host: CapsHost,
    rt: tokio::runtime::Runtime,
    worker: Option<EventsWorker>,
}

impl Events {
    pub fn start(backend: &Backend, listener: &str) -> Events {
        let host = CapsHost::new(backend, &config(listener));
        host.load(test_artifacts::GUEST_EVENT_PROBE, PLUGIN);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let worker = rt
            .block_on(EventsWorker::start(
                &host.config,
                host.runtime.clone(),
                host.store.clone(),
                host.docs.clone(),
            ))
            .unwrap();
        Events {
            host,
            rt,
            worker: Some(worker),
        }
    }

    /// Serve the admin API of this host on a free port; its base URL.
    pub fn serve_api(&self) -> String {
        let services = impressox_host::api::Services {
            store: Some(self.host.store.clone()),
            docs: Some(self.host.docs.clone()),
            events: self.worker.as_ref().map(|w| w.handle.clone()),
            listeners: self.host.config.listeners.clone(),
            ..Default::default()
        };
        let router =
            impressox_host::api::router_with(self.host.runtime.clone(), None, None, services);
        let listener = self
            .rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        self.rt.spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        base
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.host.store
    }

    pub fn docs(&self) -> &Arc<dyn Documents> {
        &self.host.docs
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Append an event with these fields; its entry id.
    pub fn publish(&self, fields: &[(&str, &str)]) -> String {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self.block_on(self.store().append_event(STREAM, None, &fields, 1_000_000))
            .unwrap()
            .unwrap()
    }

    /// The probe's kv value at `key`, as text.
    pub fn kv(&self, key: &str) -> Option<String> {
        self.block_on(self.store().plugin_kv_get(PLUGIN, key))
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    }

    pub fn pending(&self) -> u64 {
        self.block_on(self.store().pending_count(STREAM, GROUP))
            .unwrap()
    }

    pub fn stream_len(&self) -> u64 {
        self.block_on(self.store().stream_len(STREAM)).unwrap()
    }

    /// Event dead letters still dead.
    pub fn dead_letters(&self) -> Vec<Doc> {
        self.block_on(impressox_host::events::dead_letters::list(
            self.docs(),
            None,
            100,
        ))
        .unwrap()
    }

    /// Wait (up to 20 s) until `check` holds; panics with `what` if it does not.
    pub fn wait(&self, what: &str, check: impl FnMut() -> bool) {
        assert!(
            wait_until(Duration::from_secs(20), check),
            "timed out: {what}"
        );
    }

    pub fn stop(&mut self) {
        if let Some(w) = self.worker.take() {
            self.rt.block_on(w.stop());
        }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A text field of a document.
pub fn text<'a>(doc: &'a Doc, key: &str) -> &'a str {
    doc.get(key).and_then(|v| v.as_str()).unwrap_or_default()
}
