//! The sandbox (issue 12, items 5-10): memory over all of a plugin's memories, deadlines
//! that reach into host calls, the WASI a plugin sees, plugin files that are not files,
//! names bound to files, a compiled-code cache that runs only what the host wrote, and the
//! output cap on rule-processor sessions.

use std::time::{Duration, Instant};

use impressox_host::bindings::types::{
    Condition, ConditionOp, Direction, Outcome, Rule, RuleState, Tick, TickBatch, Trigger,
    TriggerMode,
};
use impressox_host::runtime::cache::Origin;
use impressox_host::runtime::watcher::Watcher;
use impressox_host::runtime::{CallError, LoadOutcome, Runtime};

use super::components;
use crate::harness::*;

// ---- item 5: one memory cap per plugin -------------------------------------------------

#[test]
fn the_memory_cap_counts_every_linear_memory_of_a_plugin() {
    // 32 MiB per plugin (the harness); three extra memories of 20 MiB each fit a
    // per-memory cap, but hold 60 MiB together.
    let h = host();
    let bytes = components::event_handler_with_memories("hog", 3, 20);
    let path = h.install_bytes(&bytes, "hog.wasm");
    let err = h.runtime.load_file(&path).unwrap_err();
    assert!(err.contains("memory cap"), "{err}");
    // The same shape within the cap loads and serves.
    let bytes = components::event_handler_with_memories("small", 3, 4);
    let path = h.install_bytes(&bytes, "small.wasm");
    h.runtime.load_file(&path).unwrap();
    assert_eq!(
        h.runtime.plugin("small").handle_event(&event("x")).unwrap(),
        Outcome::Ack
    );
}

#[test]
fn a_guest_hoarding_host_resources_hits_a_bound_not_the_host() {
    let h = host();
    h.load(test_artifacts::GUEST_MISBEHAVE, "misbehave.wasm");
    let bad = h.runtime.plugin("misbehave");
    let started = Instant::now();
    let err = bad.handle_event(&event("pollables")).unwrap_err();
    // Stopped by the resource bound, long before the deadline or the memory cap.
    assert!(
        matches!(&err, CallError::Trap { message, .. } if message.contains("resource table")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The plugin answers on a fresh instance afterwards.
    assert_eq!(bad.handle_event(&event("ok")).unwrap(), Outcome::Ack);
}

// ---- item 6: deadlines reach into host calls; the WASI each kind gets -------------------

#[test]
fn a_guest_sleeping_in_poll_is_cut_at_the_deadline() {
    let h = host();
    h.load(test_artifacts::GUEST_MISBEHAVE, "misbehave.wasm");
    let bad = h.runtime.plugin("misbehave");
    let started = Instant::now();
    let err = bad.handle_event(&event("sleep")).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, CallError::Timeout { ms: 200, .. }), "{err}");
    assert!(
        took < Duration::from_secs(5),
        "the 30 s sleep ran for {took:?}"
    );
    assert_eq!(bad.handle_event(&event("ok")).unwrap(), Outcome::Ack);
}

#[test]
fn a_guest_spinning_in_poll_is_cut_at_the_deadline() {
    let h = host();
    h.load(test_artifacts::GUEST_MISBEHAVE, "misbehave.wasm");
    let started = Instant::now();
    let err = h
        .runtime
        .plugin("misbehave")
        .handle_event(&event("poll-spin"))
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn an_info_probe_that_sleeps_is_cut_at_the_deadline() {
    let h = host();
    let path = h.install(test_artifacts::GUEST_SLEEPY_INFO, "sleepy-info.wasm");
    let started = Instant::now();
    let err = h.runtime.load_file(&path).unwrap_err();
    assert!(err.contains("deadline"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_plugin_printing_from_async_code_is_logged_not_a_panic() {
    // The notify worker calls formatters from async code, on a tokio worker thread.
    let h = host();
    h.load(test_artifacts::GUEST_MISBEHAVE, "misbehave.wasm");
    let bad = h.runtime.plugin("misbehave");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(bad.handle_event(&event("print")).unwrap(), Outcome::Ack);
        // 4 MiB of output is cut at the per-call budget; the call itself succeeds.
        assert_eq!(bad.handle_event(&event("flood")).unwrap(), Outcome::Ack);
    });
}

#[test]
fn a_plugin_sees_no_environment_arguments_or_files() {
    // SAFETY: set before any thread of this test reads the environment; the value is a
    // marker only this test looks for.
    unsafe { std::env::set_var("IMPRESSOX_TEST_SECRET_MARKER", "s3cret") };
    let h = host();
    h.load(test_artifacts::GUEST_MISBEHAVE, "misbehave.wasm");
    let Outcome::DeadLetter(seen) = h
        .runtime
        .plugin("misbehave")
        .handle_event(&event("env"))
        .unwrap()
    else {
        panic!("expected the environment report")
    };
    // No variable (the host's marker included), no argument, no directory to read
    // (libc reports `/` as the working directory when the host gives none).
    assert!(
        seen.starts_with("vars=[] args=[] ") && seen.ends_with("root_readable=false"),
        "what the guest saw: {seen}"
    );
}

#[test]
fn a_pure_plugin_importing_http_is_refused_naming_the_rule() {
    let h = host();
    let bytes = components::formatter_importing("wasi:http/outgoing-handler@0.2.10");
    let path = h.install_bytes(&bytes, "fetcher.wasm");
    let err = h.runtime.load_file(&path).unwrap_err();
    assert!(err.contains("`wasi:http/outgoing-handler@0.2.10`"), "{err}");
    assert!(
        err.contains("notify-formatter plugins are pure") && err.contains("HTTP"),
        "{err}"
    );
}

#[test]
fn a_newer_wasi_than_the_host_is_refused_with_the_version_named() {
    let h = host();
    let bytes = components::formatter_importing("wasi:cli/environment@0.2.99");
    let path = h.install_bytes(&bytes, "future.wasm");
    let err = h.runtime.load_file(&path).unwrap_err();
    assert!(err.contains("`wasi:cli/environment@0.2.99`"), "{err}");
    assert!(err.contains("newer than this host's WASI 0.2.12"), "{err}");
}

// ---- item 7: plugin files that are not plain files ------------------------------------

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn a_fifo_in_the_plugin_dir_blocks_neither_other_plugins_nor_shutdown() {
    let h = host();
    let fifo = h.config.plugin_dir().join("a.wasm");
    mkfifo(&fifo);
    h.install(test_artifacts::PLAIN_FORMATTER, "plain_formatter.wasm");
    let watcher = Watcher::start(h.runtime.clone(), Duration::from_millis(30)).unwrap();
    let loaded = wait_until(Duration::from_secs(10), || {
        h.runtime.loaded_plugin("plain-formatter").is_some()
    });
    // Unblock a loader stuck on the FIFO (the code before the fix), so a failure here
    // reports instead of hanging the suite.
    let unblock = || {
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags_nonblock()
            .open(&fifo);
    };
    if !loaded {
        unblock();
    }
    assert!(
        loaded,
        "a FIFO named a.wasm kept plain_formatter.wasm from loading"
    );
    let status = h
        .runtime
        .statuses()
        .into_iter()
        .find(|s| s.file.ends_with("a.wasm"))
        .expect("the FIFO has a status");
    assert!(
        status
            .last_load_error
            .as_deref()
            .unwrap_or("")
            .contains("FIFO"),
        "{status:?}"
    );
    let started = Instant::now();
    drop(watcher);
    assert!(started.elapsed() < Duration::from_secs(5));
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(self, libc::O_NONBLOCK)
    }
}

#[test]
fn links_out_of_the_plugin_dir_and_to_devices_are_refused() {
    let h = host();
    let dir = h.config.plugin_dir();
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("plain_formatter.wasm");
    std::fs::copy(test_artifacts::PLAIN_FORMATTER, &outside).unwrap();
    let link = dir.join("plain_formatter.wasm");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let err = h.runtime.load_file(&link).unwrap_err();
    assert!(err.contains("outside the plugin directory"), "{err}");

    // A link to a device would be read without end.
    let device = dir.join("zero.wasm");
    std::os::unix::fs::symlink("/dev/zero", &device).unwrap();
    let err = h.runtime.load_file(&device).unwrap_err();
    assert!(err.contains("outside the plugin directory"), "{err}");

    // A link to a file inside the directory (how volume mounts publish files) loads.
    std::fs::remove_file(&link).unwrap();
    let data = dir.join("..data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(
        test_artifacts::PLAIN_FORMATTER,
        data.join("plain_formatter.wasm"),
    )
    .unwrap();
    std::os::unix::fs::symlink(data.join("plain_formatter.wasm"), &link).unwrap();
    h.runtime.load_file(&link).unwrap();
}

// ---- item 8: a plugin's name is bound to its file ---------------------------------------

#[test]
fn a_component_claiming_another_plugins_name_gets_neither_its_grants_nor_its_settings() {
    let h = host_with(
        "[plugins.grants.echo-task]\nsecrets = { token = \"IMPRESSOX_TEST_ECHO_TOKEN\" }\n\
         [plugins.settings.echo-task]\ngreeting = \"hi\"\n",
    );
    // The echo task's build, dropped in as someone else's file.
    let path = h.install(test_artifacts::ECHO_TASK, "innocent.wasm");
    let err = h.runtime.load_file(&path).unwrap_err();
    assert!(
        err.contains("plugin `echo-task` is in `innocent.wasm`")
            && err.contains("rename the file to `echo-task.wasm`"),
        "{err}"
    );
    assert!(h.runtime.loaded_plugin("echo-task").is_none());
    // Under its own name it loads (`-` and `_` alike, as cargo names files).
    h.load(test_artifacts::ECHO_TASK, "echo_task.wasm");
}

#[test]
fn a_pinned_plugin_loads_only_as_a_pinned_build() {
    let wasm = std::fs::read(test_artifacts::ECHO_TASK).unwrap();
    let sha = impressox_host::runtime::cache::sha256_hex(&wasm);
    let h = host_with(&format!(
        "[plugins.grants.echo-task]\nsha256 = [\"{}\"]\n",
        "0".repeat(64)
    ));
    let path = h.install(test_artifacts::ECHO_TASK, "echo-task.wasm");
    let err = h.runtime.load_file(&path).unwrap_err();
    assert!(err.contains("is not a build pinned"), "{err}");
    let h = host_with(&format!(
        "[plugins.grants.echo-task]\nsha256 = [\"{sha}\"]\n"
    ));
    h.load(test_artifacts::ECHO_TASK, "echo-task.wasm");
}

// ---- item 9: the compiled-code cache runs only what this host wrote ---------------------

#[test]
fn a_planted_cache_entry_is_never_run() {
    let h = host();
    let plain = h.install(test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm");
    let tg = h.install(test_artifacts::TELEGRAM_MARKDOWN, "telegram-markdown.wasm");
    h.runtime.load_file(&plain).unwrap();
    h.runtime.load_file(&tg).unwrap();
    let cache = h.runtime.compile_cache().unwrap();
    let sha = |p: &std::path::Path| {
        impressox_host::runtime::cache::sha256_hex(&std::fs::read(p).unwrap())
    };
    // Someone who can write the cache directory files the plain formatter's compiled
    // code under the Telegram formatter's key.
    std::fs::copy(cache.entry_path(&sha(&plain)), cache.entry_path(&sha(&tg))).unwrap();

    let restarted = Runtime::new(&h.config).unwrap();
    match restarted.load_file(&tg).unwrap() {
        LoadOutcome::Loaded { name, origin, .. } => {
            assert_eq!(name, "telegram-markdown");
            assert_eq!(origin, Origin::Compiled, "the planted entry was not taken");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_cache_and_its_key_are_private_to_the_host() {
    use std::os::unix::fs::PermissionsExt;
    let h = host();
    h.load(test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm");
    let data = h.config.data_dir();
    let mode = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.join("cache/compiled")), 0o700);
    assert_eq!(mode(data.join("compile-cache.key")), 0o600);
    // A key others can read is not used: the host compiles instead of trusting entries.
    std::fs::set_permissions(
        data.join("compile-cache.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let restarted = Runtime::new(&h.config).unwrap();
    assert!(restarted.compile_cache().is_none());
}

// ---- item 10: the output cap holds for rule-processor sessions --------------------------

#[test]
fn a_rule_processor_session_is_held_to_the_output_cap() {
    let mut h = host();
    h.config.plugins.max_output_bytes = 4096;
    let runtime = Runtime::new(&h.config).unwrap();
    let path = h.install(test_artifacts::THRESHOLD, "threshold.wasm");
    runtime.load_file(&path).unwrap();
    // 200 rules that all fire on one tick: far more than 4 KiB of alerts.
    let rules: Vec<Rule> = (0..200).map(rule_above_one).collect();
    let mut session = runtime.plugin("threshold").session();
    let mut init = |p: &mut impressox_host::runtime::invoke::RuleProcessorInit<'_>| {
        p.upsert_rules(&rules)?.map_err(wasmtime::Error::msg)
    };
    let batch = TickBatch::from_ticks(
        1_000,
        vec![Tick {
            symbol_id: 0,
            price: 100.0,
            ts_ms: 1_000,
        }],
    );
    let err = session.evaluate(&mut init, &batch).unwrap_err();
    assert!(
        matches!(err, CallError::OutputTooLarge { cap: 4096, .. }),
        "{err}"
    );
}

fn rule_above_one(i: usize) -> Rule {
    Rule {
        id: format!("r{i:04}-with-a-long-enough-identifier"),
        symbol: "BTCUSDT".into(),
        symbol_id: 0,
        condition: Condition {
            op: ConditionOp::Above,
            value: 1.0,
            direction: Direction::Any,
            window_secs: 0,
        },
        trigger: Trigger {
            mode: TriggerMode::Every,
            cooldown_secs: 0,
        },
        expires_at_ms: None,
        state: RuleState {
            armed: true,
            last_fired_ms: None,
            fired_count: 0,
        },
    }
}
