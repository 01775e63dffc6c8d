//! The plugin runtime: loads WebAssembly components from a watched directory, swaps new
//! versions in without a restart, and runs every call under a deadline, a memory cap and
//! an output cap.
//!
//! ## Organization
//! - [`engine`]: the wasmtime engine and the epoch ticker that enforces deadlines.
//! - [`deadline`]: the same deadline as a wall-clock instant, for waits in host calls.
//! - [`limiter`]: the memory cap over all of a store's memories, and its other bounds.
//! - [`cache`]: compiled code on disk, keyed by content hash and engine fingerprint and
//!   signed by the host.
//! - [`file`]: reading a plugin file (regular files only, never blocking, hard cap).
//! - [`inspect`]: what a file is (header, kind, WIT version, imports).
//! - `loader`: the load pipeline; [`watcher`]: directory events → loads, on a low-priority
//!   thread so compiling never starves callers.
//! - [`registry`]: one slot per plugin name, atomic swaps, status.
//! - `call`: the call path, limits, failure accounting and quarantine.
//! - [`invoke`]: typed calls per kind, sessions for stateful plugins, and JSON in/out for
//!   `impressox plugin run`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use wasmtime::Engine;
use wasmtime::component::Linker;

pub mod cache;
mod call;
pub mod deadline;
pub mod engine;
pub mod file;
pub mod inspect;
mod instance;
pub mod invoke;
pub mod kind;
pub mod limiter;
mod loader;
pub mod metrics;
pub mod output;
pub mod registry;
pub mod state;
pub mod watcher;

pub use call::{CallError, PluginHandle};
pub use instance::CallLimits;
pub use kind::Kind;
pub(crate) use loader::valid_name as valid_plugin_name;
pub use loader::{Checked, LoadOutcome};
pub use registry::{PluginStatus, State};

use crate::config::{Config, PluginsConfig};
use state::StoreState;

/// The plugin directory, created if missing, in its canonical spelling.
fn plugin_dir(config: &Config) -> Result<PathBuf> {
    let dir = config.plugin_dir();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create plugin directory {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("failed to resolve plugin directory {}", dir.display()))
}

/// One linker per kind, built once: the loader asks a component who it is and loads it
/// through the same one.
pub(crate) struct Linkers([Linker<StoreState>; Kind::ALL.len()]);

impl Linkers {
    fn build(engine: &Engine) -> Result<Linkers> {
        let linkers = Kind::ALL.map(|kind| crate::capabilities::linker_for(engine, kind));
        let [a, b, c, d, e, f, g] = linkers;
        Ok(Linkers([a?, b?, c?, d?, e?, f?, g?]))
    }

    pub(crate) fn for_kind(&self, kind: Kind) -> &Linker<StoreState> {
        &self.0[kind.index()]
    }
}

/// Shared state behind [`Runtime`] handles.
pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) linkers: Linkers,
    pub(crate) cache: Option<cache::CompileCache>,
    pub(crate) limits: CallLimits,
    pub(crate) plugins: PluginsConfig,
    pub(crate) dir: PathBuf,
    pub(crate) max_file_bytes: u64,
    pub(crate) registry: registry::Registry,
    /// The backends of the capabilities lent to tasks and event handlers.
    pub(crate) services: crate::capabilities::Services,
    _ticker: engine::EpochTicker,
}

/// The plugin runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

/// The compiled-code cache under `data_dir`, or none (logged) when its key is unusable.
fn open_cache(config: &Config, engine: &Engine) -> Option<cache::CompileCache> {
    let data = config.data_dir();
    match cache::CompileCache::open(
        data.join("cache/compiled"),
        &data.join("compile-cache.key"),
        engine,
    ) {
        Ok(cache) => Some(cache),
        Err(reason) => {
            tracing::warn!(%reason, "compiled-code cache off: every plugin is compiled at load");
            None
        }
    }
}

impl Runtime {
    /// Build the runtime for `config` without capability backends (does not load anything
    /// yet): it serves pure plugins, and tasks and event handlers that import no granted
    /// capability.
    pub fn new(config: &Config) -> Result<Runtime> {
        Runtime::with_services(config, crate::capabilities::Services::none(config))
    }

    /// Build the runtime for `config` lending tasks and event handlers the capabilities
    /// of `services` (`kv`, `docs`, `notify`, `prices`) as their grants allow.
    pub fn with_services(
        config: &Config,
        services: crate::capabilities::Services,
    ) -> Result<Runtime> {
        let p = &config.plugins;
        let memory_bytes = p.memory_limit_mib * 1024 * 1024;
        let engine = engine::build(&engine::EngineLimits {
            memory_bytes,
            max_instances: 1000,
        })
        .context("failed to configure the WebAssembly engine")?;
        let linkers = Linkers::build(&engine)?;
        let cache = if p.compile_cache {
            open_cache(config, &engine)
        } else {
            None
        };
        let limits = CallLimits {
            deadline_ticks: p.call_timeout_ms,
            memory_bytes: memory_bytes as usize,
            max_output_bytes: p.max_output_bytes as usize,
            quarantine_after: p.quarantine_after,
            idle_instances: p.idle_instances,
            idle_memory_bytes: (p.idle_memory_mib * 1024 * 1024) as usize,
            recycle_after_calls: p.recycle_after_calls.max(1),
        };
        let ticker = engine::EpochTicker::start(engine.clone());
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linkers,
                cache,
                limits,
                plugins: p.clone(),
                // One spelling per file: watcher events carry absolute paths, so every path
                // the registry keys by is made absolute too.
                dir: plugin_dir(config)?,
                max_file_bytes: p.max_file_mib * 1024 * 1024,
                registry: registry::Registry::default(),
                services,
                _ticker: ticker,
            }),
        })
    }

    /// The watched directory.
    /// Where the rag worker lends its service to the `rag` capability while it runs.
    pub fn rag_slot(&self) -> &crate::capabilities::rag::Slot {
        self.inner.services.rag_slot()
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Load (or reload) one file now, on the calling thread.
    pub fn load_file(&self, path: &Path) -> Result<LoadOutcome, String> {
        self.inner.load_file(path, false)
    }

    /// Forget a file as if it had been deleted; returns the plugin it unloaded.
    pub fn unload_file(&self, path: &Path) -> Option<String> {
        self.inner.unload_file(path)
    }

    /// Load every file in the directory; `force` also reloads unchanged files and clears
    /// quarantine (what `POST /api/v1/plugins/reload` does).
    pub fn rescan(&self, force: bool) -> Vec<(PathBuf, Result<LoadOutcome, String>)> {
        self.inner.rescan(force)
    }

    /// Inspect a component without installing it (`impressox plugin check`); what this
    /// host's grants would refuse is in [`Checked::refused`].
    pub fn check(&self, bytes: &[u8], path: &Path) -> Result<Checked, String> {
        self.inner.check_bytes(bytes, path, true)
    }

    /// A handle to the plugin named `name` (it may load later).
    pub fn plugin(&self, name: &str) -> PluginHandle {
        PluginHandle {
            inner: self.inner.clone(),
            slot: self.inner.registry.slot(name),
        }
    }

    /// A handle only if the plugin is loaded now.
    pub fn loaded_plugin(&self, name: &str) -> Option<PluginHandle> {
        let slot = self.inner.registry.get(name)?;
        slot.current()?;
        Some(PluginHandle {
            inner: self.inner.clone(),
            slot,
        })
    }

    /// Status of every plugin and failed file.
    pub fn statuses(&self) -> Vec<PluginStatus> {
        self.inner.registry.statuses()
    }

    /// Names of loaded plugins.
    pub fn loaded_names(&self) -> Vec<String> {
        self.inner.registry.loaded_names()
    }

    /// The compiled-code cache, if enabled.
    pub fn compile_cache(&self) -> Option<&cache::CompileCache> {
        self.inner.cache.as_ref()
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &CallLimits {
        &self.inner.limits
    }

    /// The engine (benchmarks compare against bare wasmtime on the same engine).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }
}
