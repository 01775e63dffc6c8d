//! Python and JavaScript components for the tests ([`build`]: built from source with the
//! pinned toolchains, cached by content), and one compiled-code cache for every test host.
//!
//! These guests are large (CPython or SpiderMonkey inside: 12-18 MiB, 15-20 s to compile on
//! two cores), so their compiled code is made once per machine too: every test host's data
//! dir gets the same compile-cache key ([`seed_compile_key`], called by the harness for each
//! host), and [`install`] links the entry compiled once (under `<target>/release/componentize/data`)
//! into the host's cache before the host loads the file, so the load is a cache hit.

pub mod build;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use impressox_host::config::Config;
use impressox_host::runtime::Runtime;
use impressox_host::runtime::cache::sha256_hex;

pub use build::*;

use crate::harness::TestHost;

/// Where compiled code is made once: a data dir of its own.
fn compiled_dir() -> PathBuf {
    cache_dir().join("data")
}

/// The key every test host signs its compiled code with (made once, 0600).
fn shared_key() -> &'static Path {
    static KEY: OnceLock<PathBuf> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = compiled_dir().join("compile-cache.key");
        // Opening a cache makes the key when missing, with the mode the host demands.
        impressox_host::runtime::cache::CompileCache::open(
            compiled_dir().join("cache/compiled"),
            &key,
            &impressox_host::runtime::engine::build(
                &impressox_host::runtime::engine::EngineLimits {
                    memory_bytes: 1 << 20,
                    max_instances: 1,
                },
            )
            .unwrap(),
        )
        .unwrap();
        key
    })
}

/// Give the data dir of a new host the shared compile-cache key, so compiled code made
/// once can be handed to it. The harness calls this for every host it makes.
pub fn seed_compile_key(data_dir: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(data_dir).unwrap();
    if data_dir.join("compile-cache.key").exists() {
        return;
    }
    let key = std::fs::read(shared_key()).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(data_dir.join("compile-cache.key"))
        .unwrap();
    std::io::Write::write_all(&mut f, &key).unwrap();
}

/// Hand `config`'s host the compiled code of `wasm` (compiling it once into the shared
/// cache, with the same engine settings, if no run did before).
pub fn link_compiled(config: &Config, wasm: &Path) {
    let bytes = std::fs::read(wasm).unwrap();
    let sha = sha256_hex(&bytes);
    let mut shared = config.clone();
    shared.data_dir = compiled_dir();
    shared.plugins.dir = compiled_dir().join("plugins.d");
    shared.plugins.grants.clear();
    let warm = Runtime::new(&shared).unwrap();
    let entry = warm.compile_cache().unwrap().entry_path(&sha);
    {
        let lock = lock_for(&entry);
        let _once = lock.lock().unwrap_or_else(|e| e.into_inner());
        if !entry.is_file() {
            let started = std::time::Instant::now();
            // A component the host refuses is compiled (and kept) before its imports are
            // judged, so its refusal costs the test no compile either.
            let _ = warm.check(&bytes, wasm);
            eprintln!(
                "componentize: compiled {} in {:.1} s (kept for later runs)",
                wasm.display(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    mark_used(&entry);
    let ours = config
        .data_dir()
        .join("cache/compiled")
        .join(entry.file_name().unwrap());
    std::fs::create_dir_all(ours.parent().unwrap()).unwrap();
    if std::fs::hard_link(&entry, &ours).is_err() && !ours.is_file() {
        std::fs::copy(&entry, &ours).unwrap();
    }
}

/// Compile `wasm` into the shared cache now (for the harness's default engine settings),
/// so a later [`install`] in the middle of a test does not wait for the compiler.
pub fn precompile(wasm: &Path) {
    let dir = tempfile::tempdir().unwrap();
    link_compiled(&crate::harness::config_in(dir.path(), ""), wasm);
}

/// Copy `wasm` into the host's plugin dir as `file_name` with its compiled code already in
/// the host's cache; returns the path (load it, or let the watcher find it).
pub fn install(host: &TestHost, wasm: &Path, file_name: &str) -> PathBuf {
    link_compiled(&host.config, wasm);
    host.install(wasm.to_str().unwrap(), file_name)
}

/// [`install`] and load now; panics with the reason if the load fails.
pub fn load(host: &TestHost, wasm: &Path, file_name: &str) -> PathBuf {
    let path = install(host, wasm, file_name);
    host.runtime
        .load_file(&path)
        .unwrap_or_else(|e| panic!("{file_name}: {e}"));
    path
}
