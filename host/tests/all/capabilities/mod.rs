//! The capabilities lent to tasks and event handlers (`kv`, `docs`, `notify`, `prices`, `rag`),
//! called from real components (`caps-probe`, the bundled plugins) on every backend: the
//! embedded stores, a real Redis and SecantusDB for MongoDB.

mod bundled;
mod cli;
mod docs;
mod kv;
mod notify;
mod prices;
mod rag;

use std::sync::Arc;

use impressox_host::capabilities::Services;
use impressox_host::config::Config;
use impressox_host::runtime::{CallError, Runtime};
use serde_json::{Value, json};

use crate::harness::config_in;
use crate::servers::mongo::MongoServer;
use crate::servers::redis::RedisServer;

/// A storage backend under test, with the server behind it (kept alive by the test).
pub enum Backend {
    Embedded,
    Redis(RedisServer),
    Mongo(MongoServer),
}

impl Backend {
    pub fn redis() -> Backend {
        Backend::Redis(RedisServer::start())
    }

    pub fn mongo() -> Backend {
        Backend::Mongo(MongoServer::start())
    }

    pub fn toml(&self) -> String {
        match self {
            Backend::Embedded => String::new(),
            Backend::Redis(r) => format!(
                "[storage]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
                r.url()
            ),
            Backend::Mongo(m) => format!(
                "[documents]\nbackend = \"mongodb\"\nmongodb_url = \"{}\"\ndatabase = \"caps\"\n",
                m.url()
            ),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Redis(_) => "redis",
            Backend::Mongo(_) => "mongodb",
        }
    }
}

/// A host with capability services on the backend, plugins loaded from `test_artifacts`.
pub struct CapsHost {
    _dir: tempfile::TempDir,
    pub config: Config,
    pub runtime: Runtime,
    /// The stores the capabilities run on, for checks from outside the plugin.
    pub store: Arc<dyn impressox_host::storage::Store>,
    pub docs: Arc<dyn impressox_host::documents::Documents>,
}

impl CapsHost {
    /// `extra` is more config (grants, caps); the backend's section is added.
    pub fn new(backend: &Backend, extra: &str) -> CapsHost {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), &format!("{}{extra}", backend.toml()));
        std::fs::create_dir_all(config.plugin_dir()).unwrap();
        let (store, docs) = open_stores(&config);
        let services = Services::new(&config, store.clone(), docs.clone());
        let runtime = Runtime::with_services(&config, services).unwrap();
        CapsHost {
            _dir: dir,
            config,
            runtime,
            store,
            docs,
        }
    }

    /// Install and load `artifact` as `<name>.wasm`; the loader's reason on failure.
    pub fn try_load(&self, artifact: &str, name: &str) -> Result<(), String> {
        let dest = self.config.plugin_dir().join(format!("{name}.wasm"));
        crate::harness::write_atomically(&dest, &std::fs::read(artifact).unwrap());
        self.runtime.load_file(&dest).map(|_| ())
    }

    pub fn load(&self, artifact: &str, name: &str) {
        self.try_load(artifact, name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    /// Run `caps-probe` (loaded as `plugin`) on `ops`; one `{"ok"}`/`{"err"}` per op.
    pub fn probe(&self, plugin: &str, ops: Value) -> Result<Vec<Value>, CallError> {
        let run = impressox_host::bindings::types::TaskRun {
            schedule: "test".into(),
            scheduled_at_ms: 0,
            attempt: 1,
            args_json: json!({ "ops": ops }).to_string(),
        };
        let report = self
            .runtime
            .plugin(plugin)
            .run_task(&run)?
            .unwrap_or_else(|e| panic!("caps-probe failed: {e}"));
        Ok(serde_json::from_str::<Vec<Value>>(&report.data_json).unwrap())
    }

    /// [`CapsHost::probe`] that must not fail as a call.
    pub fn ops(&self, plugin: &str, ops: Value) -> Vec<Value> {
        self.probe(plugin, ops).unwrap()
    }
}

/// The `ok` value of a result, or a panic naming the error.
pub fn ok(result: &Value) -> &Value {
    match result.get("ok") {
        Some(v) => v,
        None => panic!("expected ok, got {result}"),
    }
}

/// The error message of a result, or a panic.
pub fn err(result: &Value) -> String {
    match result.get("err").and_then(Value::as_str) {
        Some(e) => e.to_string(),
        None => panic!("expected an error, got {result}"),
    }
}

/// Open the configured stores on the plugin I/O runtime (which keeps a Redis
/// connection's driver alive for the whole test).
pub fn open_stores(
    config: &Config,
) -> (
    Arc<dyn impressox_host::storage::Store>,
    Arc<dyn impressox_host::documents::Documents>,
) {
    let rt = impressox_host::runtime::deadline::io_runtime();
    rt.block_on(async {
        let limits = impressox_host::storage::StoreLimits {
            history_len: config.market.history_len,
            stream_maxlen: config.market.stream_maxlen,
            ..Default::default()
        };
        let store = impressox_host::storage::open(config, limits).await.unwrap();
        let docs = impressox_host::documents::open(config).await.unwrap();
        (store, docs)
    })
}
