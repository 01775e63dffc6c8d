//! The compiled-code cache: warm restarts skip compilation; damaged or foreign entries are
//! misses, never errors.

use impressox_host::runtime::cache::{CompileCache, Origin};
use impressox_host::runtime::{LoadOutcome, Runtime};

use crate::harness::*;

fn origin(outcome: LoadOutcome) -> Origin {
    match outcome {
        LoadOutcome::Loaded { origin, .. } => origin,
        other => panic!("expected a load, got {other:?}"),
    }
}

#[test]
fn restart_with_a_warm_cache_does_not_recompile() {
    let h = host();
    let path = h.install(test_artifacts::THRESHOLD, "threshold.wasm");
    assert_eq!(
        origin(h.runtime.load_file(&path).unwrap()),
        Origin::Compiled
    );
    // A new runtime on the same data dir is a restart.
    let restarted = Runtime::new(&h.config).unwrap();
    assert_eq!(origin(restarted.load_file(&path).unwrap()), Origin::Cache);
    let st = restarted
        .statuses()
        .into_iter()
        .find(|s| s.name == "threshold")
        .unwrap();
    assert_eq!(st.compiled_from_cache, Some(true));
}

#[test]
fn corrupt_cache_entry_is_a_miss_and_is_rewritten() {
    let h = host();
    let path = h.install(test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm");
    h.runtime.load_file(&path).unwrap();
    let cache = h.runtime.compile_cache().unwrap();
    let sha = impressox_host::runtime::cache::sha256_hex(&std::fs::read(&path).unwrap());
    let entry = cache.entry_path(&sha);
    let mut bytes = std::fs::read(&entry).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();

    let restarted = Runtime::new(&h.config).unwrap();
    assert_eq!(
        origin(restarted.load_file(&path).unwrap()),
        Origin::Compiled
    );
    let restarted_again = Runtime::new(&h.config).unwrap();
    assert_eq!(
        origin(restarted_again.load_file(&path).unwrap()),
        Origin::Cache,
        "entry rewritten"
    );
}

#[test]
fn cache_entry_from_another_engine_version_is_a_miss() {
    let h = host();
    let path = h.install(test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm");
    let wasm = std::fs::read(&path).unwrap();
    let sha = impressox_host::runtime::cache::sha256_hex(&wasm);

    // Code compiled by an engine with other settings, filed under this engine's key (signed
    // by another host's secret): a miss, and the component is compiled again.
    let mut other = wasmtime::Config::new();
    other.cranelift_opt_level(wasmtime::OptLevel::None);
    other.epoch_interruption(false);
    let other_engine = wasmtime::Engine::new(&other).unwrap();
    let foreign = h.dir.path().join("foreign");
    let foreign_cache = CompileCache::open(
        foreign.join("compiled"),
        &foreign.join("key"),
        &other_engine,
    )
    .unwrap();
    foreign_cache
        .load_or_compile(&other_engine, &sha, &wasm)
        .unwrap();
    let foreign_entry = std::fs::read(foreign_cache.entry_path(&sha)).unwrap();

    let ours = h.runtime.compile_cache().unwrap().entry_path(&sha);
    std::fs::create_dir_all(ours.parent().unwrap()).unwrap();
    std::fs::write(&ours, foreign_entry).unwrap();
    assert_ne!(
        foreign_cache.fingerprint(),
        h.runtime.compile_cache().unwrap().fingerprint()
    );

    assert_eq!(
        origin(h.runtime.load_file(&path).unwrap()),
        Origin::Compiled
    );
    let handle = h.runtime.plugin("plain-formatter");
    assert!(
        handle
            .format(&notification("n"), "console")
            .unwrap()
            .is_ok()
    );
}
