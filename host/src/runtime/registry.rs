//! The registry: one slot per plugin name, holding the version that serves new calls.
//!
//! A swap is one atomic pointer store. A call takes its own reference to the version it
//! started on, so calls in flight finish on the old version while new calls go to the new
//! one, and a deleted plugin's code lives exactly as long as its last call. Counters live on
//! the slot, so they survive swaps.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use super::Kind;
use super::cache::Origin;
use super::instance::Instance;
use super::kind::KindPre;
use super::metrics::LatencyHistogram;
use super::state::PluginContext;

/// One loaded version of a plugin.
pub struct Loaded {
    pub name: String,
    pub version: String,
    pub description: String,
    pub kind: Kind,
    pub wit_version: String,
    pub file: PathBuf,
    pub sha256: String,
    pub loaded_at: SystemTime,
    pub origin: Origin,
    /// Time from reading the file to ready, in milliseconds.
    pub load_ms: f64,
    pub imports: Vec<String>,
    pub(crate) ctx: Arc<PluginContext>,
    pub(crate) pre: KindPre,
    /// Boxed so taking one out and putting it back moves a pointer, not the bindings.
    #[allow(clippy::vec_box)]
    pub(crate) idle: Mutex<Vec<Box<Instance>>>,
}

/// Counters and state of one plugin name, across its versions.
#[derive(Default)]
pub struct Stats {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub consecutive_failures: AtomicU32,
    pub quarantined: AtomicBool,
    pub swaps: AtomicU64,
    pub instances_created: AtomicU64,
    pub latency: LatencyHistogram,
    pub last_error: Mutex<Option<String>>,
    pub last_load_error: Mutex<Option<String>>,
}

/// A plugin name and the version serving it.
pub struct Slot {
    pub name: String,
    pub(crate) current: ArcSwapOption<Loaded>,
    pub stats: Stats,
}

impl Slot {
    fn new(name: &str) -> Slot {
        Slot {
            name: name.to_string(),
            current: ArcSwapOption::empty(),
            stats: Stats::default(),
        }
    }

    /// The version serving new calls.
    pub fn current(&self) -> Option<Arc<Loaded>> {
        self.current.load_full()
    }
}

/// What the registry remembers about a file in the plugin directory.
#[derive(Debug, Clone, Default)]
pub struct FileRecord {
    /// The plugin the file provides, once known.
    pub plugin: Option<String>,
    pub sha256: Option<String>,
    /// Why the latest attempt to load it failed.
    pub error: Option<String>,
}

/// All slots and files.
#[derive(Default)]
pub struct Registry {
    slots: RwLock<HashMap<String, Arc<Slot>>>,
    files: Mutex<HashMap<PathBuf, FileRecord>>,
}

/// Plugin state as the CLI and API show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Active,
    Failed,
    Quarantined,
}

/// One plugin's status (SPEC §4.4).
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub name: String,
    pub version: Option<String>,
    pub kind: Option<Kind>,
    pub description: Option<String>,
    pub file: String,
    pub sha256: Option<String>,
    pub wit_version: Option<String>,
    pub state: State,
    pub loaded_at: Option<String>,
    pub compiled_from_cache: Option<bool>,
    pub load_ms: Option<f64>,
    pub imports: Vec<String>,
    pub calls: u64,
    pub errors: u64,
    pub consecutive_failures: u32,
    pub swaps: u64,
    pub instances_created: u64,
    /// Instances kept idle for reuse now, and the linear memory they hold together
    /// (`[plugins] idle_instances`, `idle_memory_mib`).
    pub idle_instances: Option<usize>,
    pub idle_memory_bytes: Option<u64>,
    pub last_error: Option<String>,
    pub last_load_error: Option<String>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
}

impl Registry {
    /// The slot for `name`, created on first use.
    pub fn slot(&self, name: &str) -> Arc<Slot> {
        if let Some(s) = self.slots.read().get(name) {
            return s.clone();
        }
        self.slots
            .write()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Slot::new(name)))
            .clone()
    }

    /// The slot for `name` if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Slot>> {
        self.slots.read().get(name).cloned()
    }

    /// Names of all slots with a loaded version.
    pub fn loaded_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .slots
            .read()
            .values()
            .filter(|s| s.current.load().is_some())
            .map(|s| s.name.clone())
            .collect();
        names.sort();
        names
    }

    pub(crate) fn file(&self, path: &Path) -> FileRecord {
        self.files.lock().get(path).cloned().unwrap_or_default()
    }

    pub(crate) fn set_file(&self, path: &Path, record: FileRecord) {
        self.files.lock().insert(path.to_path_buf(), record);
    }

    pub(crate) fn forget_file(&self, path: &Path) -> Option<FileRecord> {
        self.files.lock().remove(path)
    }

    pub(crate) fn known_files(&self) -> Vec<PathBuf> {
        self.files.lock().keys().cloned().collect()
    }

    /// Install `loaded` as the serving version of its slot; returns the version it replaced.
    pub(crate) fn install(&self, loaded: Arc<Loaded>) -> Option<Arc<Loaded>> {
        let slot = self.slot(&loaded.name);
        slot.stats.quarantined.store(false, Ordering::Release);
        slot.stats.consecutive_failures.store(0, Ordering::Relaxed);
        *slot.stats.last_load_error.lock() = None;
        let old = slot.current.swap(Some(loaded));
        if old.is_some() {
            slot.stats.swaps.fetch_add(1, Ordering::Relaxed);
        }
        old
    }

    /// Stop serving `name`; calls in flight finish on the version they hold.
    pub(crate) fn uninstall(&self, name: &str) -> Option<Arc<Loaded>> {
        let slot = self.slots.write().remove(name)?;
        slot.current.swap(None)
    }

    /// Status of every plugin, and of every file that failed without a working version.
    pub fn statuses(&self) -> Vec<PluginStatus> {
        let slots: Vec<Arc<Slot>> = self.slots.read().values().cloned().collect();
        let mut out: Vec<PluginStatus> = slots.iter().filter_map(|s| slot_status(s)).collect();
        let files = self.files.lock();
        for (path, record) in files.iter() {
            let Some(error) = &record.error else { continue };
            let serving = record
                .plugin
                .as_ref()
                .and_then(|n| self.get(n))
                .and_then(|s| s.current());
            if serving.is_some() {
                continue; // shown as that plugin's last_load_error
            }
            out.push(PluginStatus {
                name: record.plugin.clone().unwrap_or_else(|| file_stem(path)),
                version: None,
                kind: None,
                description: None,
                file: path.display().to_string(),
                sha256: record.sha256.clone(),
                wit_version: None,
                state: State::Failed,
                loaded_at: None,
                compiled_from_cache: None,
                load_ms: None,
                imports: Vec::new(),
                calls: 0,
                errors: 0,
                consecutive_failures: 0,
                swaps: 0,
                instances_created: 0,
                idle_instances: None,
                idle_memory_bytes: None,
                last_error: None,
                last_load_error: Some(error.clone()),
                p50_us: None,
                p99_us: None,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn slot_status(slot: &Slot) -> Option<PluginStatus> {
    let loaded = slot.current()?;
    let st = &slot.stats;
    let state = if st.quarantined.load(Ordering::Acquire) {
        State::Quarantined
    } else {
        State::Active
    };
    let (idle_instances, idle_memory_bytes) = {
        let idle = loaded.idle.lock();
        let bytes: usize = idle.iter().map(|i| i.memory_bytes()).sum();
        (idle.len(), bytes as u64)
    };
    Some(PluginStatus {
        name: slot.name.clone(),
        version: Some(loaded.version.clone()),
        kind: Some(loaded.kind),
        description: Some(loaded.description.clone()),
        file: loaded.file.display().to_string(),
        sha256: Some(loaded.sha256.clone()),
        wit_version: Some(loaded.wit_version.clone()),
        state,
        loaded_at: Some(crate::util::rfc3339(loaded.loaded_at)),
        compiled_from_cache: Some(loaded.origin == Origin::Cache),
        load_ms: Some(loaded.load_ms),
        imports: loaded.imports.clone(),
        calls: st.calls.load(Ordering::Relaxed),
        errors: st.errors.load(Ordering::Relaxed),
        consecutive_failures: st.consecutive_failures.load(Ordering::Relaxed),
        swaps: st.swaps.load(Ordering::Relaxed),
        instances_created: st.instances_created.load(Ordering::Relaxed),
        idle_instances: Some(idle_instances),
        idle_memory_bytes: Some(idle_memory_bytes),
        last_error: st.last_error.lock().clone(),
        last_load_error: st.last_load_error.lock().clone(),
        p50_us: st.latency.quantile_ns(0.50).map(|ns| ns as f64 / 1000.0),
        p99_us: st.latency.quantile_ns(0.99).map(|ns| ns as f64 / 1000.0),
    })
}
