//! Loading one file: read (regular files only, capped) → check the header → compile (or
//! take the compiled-code cache) → find the kind and WIT version → check its imports
//! against its kind → link with the kind's linker → probe the plugin's own `info` → check
//! its identity (the file is named after it, a pinned build if the operator pinned one)
//! and its imports against its grants → instantiate once → swap in.
//!
//! Any failing step leaves the serving version untouched and records the reason on the
//! file (and on the plugin, when the file is known to provide one).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;
use wasmtime::component::Component;

use super::Inner;
use super::cache::{Origin, sha256_hex};
use super::instance::{Instance, new_store};
use super::kind::{KindBindings, KindPre};
use super::registry::{FileRecord, Loaded};
use super::state::PluginContext;
use super::{Kind, inspect};
use crate::capabilities;

/// What a successful load did.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadOutcome {
    /// A new version now serves.
    Loaded {
        name: String,
        version: String,
        kind: Kind,
        origin: Origin,
        load_ms: f64,
    },
    /// The file's content is what already serves.
    Unchanged { name: String },
}

/// Everything learned about a component short of installing it; `plugin check` prints it.
pub struct Checked {
    pub name: String,
    pub version: String,
    pub description: String,
    pub kind: Kind,
    pub wit_version: String,
    pub imports: Vec<String>,
    pub sha256: String,
    pub origin: Origin,
    /// Why the loader would refuse it under this host's grants, when only inspecting it
    /// (`plugin check`); a load fails with this reason instead.
    pub refused: Option<String>,
    pub(crate) pre: KindPre,
    pub(crate) ctx: Arc<PluginContext>,
}

impl Inner {
    /// Load `path` and swap it in. `force` reloads even when the content is unchanged.
    pub(crate) fn load_file(&self, path: &Path, force: bool) -> Result<LoadOutcome, String> {
        let started = Instant::now();
        let path = &absolute(path);
        let previous = self.registry.file(path);
        let result = self.load_inner(path, force, &previous, started);
        match &result {
            Ok(LoadOutcome::Loaded {
                name,
                version,
                kind,
                origin,
                load_ms,
            }) => {
                tracing::info!(plugin = %name, %version, %kind, file = %path.display(),
                    from_cache = (*origin == Origin::Cache), load_ms, "plugin loaded");
            }
            Ok(LoadOutcome::Unchanged { .. }) => {}
            Err(reason) => {
                tracing::error!(file = %path.display(), error = %reason,
                    "plugin file refused; the serving version (if any) keeps serving");
                if let Some(name) = &previous.plugin
                    && let Some(slot) = self.registry.get(name)
                {
                    *slot.stats.last_load_error.lock() = Some(reason.clone());
                }
                self.registry.set_file(
                    path,
                    FileRecord {
                        error: Some(reason.clone()),
                        ..previous.clone()
                    },
                );
            }
        }
        result
    }

    fn load_inner(
        &self,
        path: &Path,
        force: bool,
        previous: &FileRecord,
        started: Instant,
    ) -> Result<LoadOutcome, String> {
        let bytes = super::file::read_plugin_file(path, Some(&self.dir), self.max_file_bytes)?;
        let sha256 = sha256_hex(&bytes);
        if !force
            && previous.sha256.as_deref() == Some(sha256.as_str())
            && previous.error.is_none()
            && let Some(name) = &previous.plugin
            && let Some(slot) = self.registry.get(name)
            && slot.current().is_some_and(|l| l.sha256 == sha256)
            && !slot
                .stats
                .quarantined
                .load(std::sync::atomic::Ordering::Acquire)
        {
            return Ok(LoadOutcome::Unchanged { name: name.clone() });
        }
        let checked = self.check_bytes(&bytes, path, false)?;
        // A name is one plugin: a second file claiming it is refused, not raced.
        if let Some(slot) = self.registry.get(&checked.name)
            && let Some(serving) = slot.current()
            && serving.file != path
            && serving.file.exists()
        {
            return Err(format!(
                "plugin name `{}` is already served from {}; give one of them another name",
                checked.name,
                serving.file.display()
            ));
        }
        let pre = checked.pre;
        // One instance now, so a plugin that traps while starting never replaces anything.
        let first =
            Instance::new(&self.engine, &pre, checked.ctx.clone(), &self.limits).map_err(|e| {
                format!(
                    "traps on start: {}",
                    super::call::classify(&checked.name, e, &self.limits)
                )
            })?;
        let loaded = Arc::new(Loaded {
            name: checked.name.clone(),
            version: checked.version.clone(),
            description: checked.description,
            kind: checked.kind,
            wit_version: checked.wit_version,
            file: path.to_path_buf(),
            sha256: sha256.clone(),
            loaded_at: SystemTime::now(),
            origin: checked.origin,
            load_ms: started.elapsed().as_secs_f64() * 1000.0,
            imports: checked.imports,
            ctx: checked.ctx,
            pre,
            idle: Mutex::new(vec![Box::new(first)]),
        });
        let outcome = LoadOutcome::Loaded {
            name: loaded.name.clone(),
            version: loaded.version.clone(),
            kind: loaded.kind,
            origin: loaded.origin,
            load_ms: loaded.load_ms,
        };
        // The file used to provide another plugin: that one is gone now.
        if let Some(old_name) = &previous.plugin
            && *old_name != loaded.name
        {
            self.registry.uninstall(old_name);
        }
        self.registry.install(loaded);
        self.registry.set_file(
            path,
            FileRecord {
                plugin: Some(checked.name),
                sha256: Some(sha256),
                error: None,
            },
        );
        Ok(outcome)
    }

    /// Validate and inspect a component without installing it. `inspect_only` (`plugin
    /// check`): what its grants do not allow is reported in [`Checked::refused`] rather
    /// than failing, and capability backends are not required (the check judges the
    /// component against the config, not this process).
    pub(crate) fn check_bytes(
        &self,
        bytes: &[u8],
        path: &Path,
        inspect_only: bool,
    ) -> Result<Checked, String> {
        inspect::check_header(bytes)?;
        let sha256 = sha256_hex(bytes);
        let compiled = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, &sha256, bytes),
            None => Component::new(&self.engine, bytes).map(|c| (c, Origin::Compiled)),
        };
        let (component, origin) = compiled.map_err(|e| {
            format!(
                "not a valid WebAssembly component (truncated or corrupt?): {}",
                e.root_cause()
            )
        })?;
        let (kind, wit_version) = inspect::kind_of(&self.engine, &component)?;
        let imports = inspect::imports_of(&self.engine, &component);
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // What no plugin of this kind may import is refused before any of its code runs.
        if let Some(reason) = capabilities::check_imports(&file, kind, &imports, None) {
            return Err(reason);
        }
        let pre = self
            .linkers
            .for_kind(kind)
            .instantiate_pre(&component)
            .and_then(|pre| KindPre::new(kind, pre))
            .map_err(|e| format!("does not match the {kind} world: {}", e.root_cause()))?;
        let info = self.probe_info(&pre, &file)?;
        let reported = info.kind;
        if reported != kind {
            return Err(format!(
                "wrong world: plugin `{}` says it is a {reported} plugin but exports the {kind} interface",
                info.name
            ));
        }
        if !valid_name(&info.name) {
            return Err(format!(
                "plugin name `{}` is not valid: use 1-64 characters of a-z, 0-9, `-` and `_`",
                info.name
            ));
        }
        let grants = self
            .plugins
            .grants
            .get(&info.name)
            .cloned()
            .unwrap_or_default();
        self.check_identity(&info.name, path, &sha256, &grants)?;
        let mut refused = capabilities::check_imports(&info.name, kind, &imports, Some(&grants));
        let caps = match self
            .services
            .grant(&info.name, &grants, &imports, !inspect_only)
        {
            Ok(caps) => caps,
            Err(reason) => {
                refused.get_or_insert(reason);
                Default::default()
            }
        };
        if let Some(reason) = refused.as_ref().filter(|_| !inspect_only) {
            return Err(reason.clone());
        }
        let ctx = Arc::new(PluginContext {
            name: info.name.clone(),
            settings: self
                .plugins
                .settings
                .get(&info.name)
                .cloned()
                .unwrap_or_default(),
            grants,
            caps,
        });
        Ok(Checked {
            name: info.name,
            version: info.version,
            description: info.description,
            kind,
            wit_version,
            imports,
            sha256,
            origin,
            refused,
            pre,
            ctx,
        })
    }

    /// Ask the component who it is, through the same linker that loads it. It runs with
    /// no grants and no settings (its name is not known yet): a capability it calls while
    /// answering is refused like any ungranted call.
    fn probe_info(&self, pre: &KindPre, file: &str) -> Result<super::kind::Identity, String> {
        let probe_name = file.to_string();
        let ctx = Arc::new(PluginContext {
            name: probe_name.clone(),
            ..Default::default()
        });
        let mut store = new_store(&self.engine, ctx, &self.limits);
        let bindings: KindBindings = pre.instantiate(&mut store).map_err(|e| {
            format!(
                "traps on start: {}",
                super::call::classify(&probe_name, e, &self.limits)
            )
        })?;
        bindings.info(&mut store).map_err(|e| {
            format!(
                "`info` failed: {}",
                super::call::classify(&probe_name, e, &self.limits)
            )
        })
    }

    /// Grants and settings go by plugin name, and the name comes from inside the component:
    /// so a component in the plugin directory must sit in a file named after it (the
    /// operator's choice of name), and, where the operator pinned builds of a plugin, be
    /// one of them. Otherwise any file could claim another plugin's name and with it that
    /// plugin's grants and secrets.
    fn check_identity(
        &self,
        name: &str,
        path: &Path,
        sha256: &str,
        grants: &crate::config::Grants,
    ) -> Result<(), String> {
        if path.parent() == Some(self.dir.as_path()) {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if stem.replace('_', "-") != name.replace('_', "-") {
                return Err(format!(
                    "plugin `{name}` is in `{stem}.wasm`, but a plugin's file must be named \
                     after it: rename the file to `{name}.wasm` (`-` and `_` are alike). The \
                     name decides which grants and settings a plugin receives, so it must be \
                     the operator's choice, not the component's"
                ));
            }
        }
        if !grants.sha256.is_empty()
            && !grants
                .sha256
                .iter()
                .any(|pin| pin.eq_ignore_ascii_case(sha256))
        {
            return Err(format!(
                "plugin `{name}` (sha256 {sha256}) is not a build pinned in \
                 `[plugins.grants.{name}] sha256`; add its sha256 there to allow it"
            ));
        }
        Ok(())
    }

    /// Forget a deleted file; its plugin stops serving once its calls in flight finish.
    pub(crate) fn unload_file(&self, path: &Path) -> Option<String> {
        let path = &absolute(path);
        let record = self.registry.forget_file(path)?;
        let name = record.plugin?;
        let still_ours = self
            .registry
            .get(&name)
            .and_then(|s| s.current())
            .is_some_and(|l| l.file == *path);
        if still_ours {
            self.registry.uninstall(&name);
            tracing::info!(plugin = %name, file = %path.display(), "plugin unloaded (file deleted)");
            return Some(name);
        }
        None
    }

    /// Load every `.wasm` in the plugin directory and unload what disappeared.
    pub(crate) fn rescan(&self, force: bool) -> Vec<(PathBuf, Result<LoadOutcome, String>)> {
        let mut results = Vec::new();
        let present = wasm_files(&self.dir);
        for known in self.registry.known_files() {
            if !present.contains(&known) {
                self.unload_file(&known);
            }
        }
        if force {
            for name in self.registry.loaded_names() {
                if let Some(slot) = self.registry.get(&name) {
                    slot.stats
                        .quarantined
                        .store(false, std::sync::atomic::Ordering::Release);
                    slot.stats
                        .consecutive_failures
                        .store(0, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        for path in present {
            let r = self.load_file(&path, force);
            results.push((path, r));
        }
        results
    }
}

/// `.wasm` files directly in `dir`, sorted for a stable load order.
pub(crate) fn wasm_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_plugin_file(p))
        .collect();
    files.sort();
    files
}

/// Only `*.wasm` counts; editors' and copiers' temporary files are ignored.
pub(crate) fn is_plugin_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
        && path
            .file_name()
            .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
}

/// One spelling per file: the canonical folder plus the file name, so relative, absolute
/// and `..` spellings (and a file already deleted) all map to the same key.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (
        abs.parent().and_then(|p| p.canonicalize().ok()),
        abs.file_name(),
    ) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => abs,
    }
}

/// The rule for plugin names: what grants and settings are keyed by, and file names.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
