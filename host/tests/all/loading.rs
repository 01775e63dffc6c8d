//! Files that must never replace a working plugin, and the errors they get.

use impressox_host::runtime::{LoadOutcome, State};

use crate::harness::*;

fn status_of(h: &TestHost, name: &str) -> impressox_host::runtime::PluginStatus {
    h.runtime
        .statuses()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no status for {name}"))
}

#[test]
fn non_wasm_file_is_refused_with_a_clear_error() {
    let h = host();
    let path = h.install_bytes(b"this is a README, not a plugin", "readme.wasm");
    let err = h.runtime.load_file(&path).unwrap_err();
    assert!(err.contains("not a WebAssembly file"), "{err}");
    let st = status_of(&h, "readme");
    assert_eq!(st.state, State::Failed);
    assert!(
        st.last_load_error
            .unwrap()
            .contains("not a WebAssembly file")
    );
}

#[test]
fn core_module_is_refused_as_not_a_component() {
    let h = host();
    let module = wat::parse_str("(module (func (export \"f\")))").unwrap();
    let path = h.install_bytes(&module, "core.wasm");
    let err = h.runtime.load_file(&path).unwrap_err();
    assert!(
        err.contains("core WebAssembly module, not a component"),
        "{err}"
    );
}

#[test]
fn truncated_file_keeps_the_old_version_serving() {
    let h = host();
    let path = h.load(test_artifacts::GUEST_SWAP_V1, "swapper.wasm");
    let plugin = h.runtime.plugin("swapper");
    let bytes = std::fs::read(test_artifacts::GUEST_SWAP_V2).unwrap();
    write_atomically(&path, &bytes[..bytes.len() / 2]);
    let err = h.runtime.load_file(&path).unwrap_err();
    assert!(err.contains("not a valid WebAssembly component"), "{err}");
    let out = plugin
        .format(&notification("n1"), "console")
        .unwrap()
        .unwrap();
    assert_eq!(out[0].text, "1.0.0:n1", "the old version must keep serving");
    let st = status_of(&h, "swapper");
    assert_eq!(st.state, State::Active);
    assert!(
        st.last_load_error
            .unwrap()
            .contains("not a valid WebAssembly component")
    );
}

#[test]
fn command_component_is_refused_as_the_wrong_world() {
    let h = host();
    let path = h.install(test_artifacts::GUEST_COMMAND, "command.wasm");
    let err = h.runtime.load_file(&path).unwrap_err();
    assert!(err.contains("wrong world"), "{err}");
    assert!(err.contains("wasi:cli/run"), "names what it exports: {err}");
}

#[test]
fn unsupported_wit_version_is_refused() {
    let h = host();
    let path = h.install(test_artifacts::GUEST_OLD_WIT, "old.wasm");
    let err = h.runtime.load_file(&path).unwrap_err();
    assert!(err.contains("unsupported WIT version `0.2.0`"), "{err}");
    assert!(err.contains("accepts 0.1.0"), "{err}");
}

#[test]
fn ungranted_import_is_refused_naming_plugin_interface_and_grant() {
    let h = host();
    let path = h.install(test_artifacts::GUEST_WANTS_KV, "wants-kv.wasm");
    let err = h.runtime.load_file(&path).unwrap_err();
    assert!(err.contains("plugin `wants-kv`"), "{err}");
    assert!(err.contains("impressox:plugin/kv@0.1.0"), "{err}");
    assert!(err.contains("[plugins.grants.wants-kv] kv = true"), "{err}");
    assert!(h.runtime.loaded_names().is_empty());
}

#[test]
fn granted_but_unavailable_capability_is_refused_clearly() {
    let h = host_with("[plugins.grants.wants-kv]\nkv = true\n");
    let path = h.install(test_artifacts::GUEST_WANTS_KV, "wants-kv.wasm");
    let err = h.runtime.load_file(&path).unwrap_err();
    assert!(err.contains("runs without the stores"), "{err}");
}

#[test]
fn same_content_again_is_a_no_op() {
    let h = host();
    let path = h.load(test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm");
    assert_eq!(
        h.runtime.load_file(&path).unwrap(),
        LoadOutcome::Unchanged {
            name: "plain-formatter".into()
        }
    );
}

#[test]
fn second_file_claiming_a_loaded_name_is_refused() {
    let h = host();
    h.load(test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm");
    // `-` and `_` are alike in file names, so both files name the same plugin.
    let copy = h.install(test_artifacts::PLAIN_FORMATTER, "plain_formatter.wasm");
    let err = h.runtime.load_file(&copy).unwrap_err();
    assert!(err.contains("already served from"), "{err}");
}

#[test]
fn deleting_the_file_unloads_the_plugin() {
    let h = host();
    let path = h.load(test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm");
    let handle = h.runtime.plugin("plain-formatter");
    assert!(handle.format(&notification("a"), "console").is_ok());
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        h.runtime.unload_file(&path).as_deref(),
        Some("plain-formatter")
    );
    assert!(h.runtime.loaded_names().is_empty());
    let err = handle.format(&notification("b"), "console").unwrap_err();
    assert!(err.to_string().contains("not loaded"), "{err}");
}

#[test]
fn watcher_loads_swaps_and_unloads_without_a_restart() {
    let h = host();
    let watcher = impressox_host::runtime::watcher::Watcher::start(
        h.runtime.clone(),
        std::time::Duration::from_millis(30),
    )
    .unwrap();
    let handle = h.runtime.plugin("swapper");
    let path = h.install(test_artifacts::GUEST_SWAP_V1, "swapper.wasm");
    let text = |h: &impressox_host::runtime::PluginHandle| {
        h.format(&notification("w"), "console")
            .ok()
            .and_then(|r| r.ok())
            .map(|m| m[0].text.clone())
    };
    assert!(wait_until(std::time::Duration::from_secs(30), || text(
        &handle
    )
    .as_deref()
        == Some("1.0.0:w")));
    h.install(test_artifacts::GUEST_SWAP_V2, "swapper.wasm");
    assert!(wait_until(std::time::Duration::from_secs(30), || text(
        &handle
    )
    .as_deref()
        == Some("2.0.0:w")));
    std::fs::remove_file(&path).unwrap();
    assert!(wait_until(std::time::Duration::from_secs(30), || h
        .runtime
        .loaded_names()
        .is_empty()));
    drop(watcher);
}

#[test]
fn relative_and_absolute_spellings_of_a_file_are_one_file() {
    let h = host();
    let path = h.load(test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm");
    let cwd = std::env::current_dir().unwrap();
    let relative = pathdiff(&path, &cwd);
    assert_eq!(
        h.runtime.load_file(&relative).unwrap(),
        LoadOutcome::Unchanged {
            name: "plain-formatter".into()
        }
    );
    // A rescan (which lists the directory) sees the same file, not a second claimant.
    for (file, result) in h.runtime.rescan(false) {
        assert!(result.is_ok(), "{}: {result:?}", file.display());
    }
}

/// `path` relative to `base` (both absolute), through `..` as needed.
fn pathdiff(path: &std::path::Path, base: &std::path::Path) -> std::path::PathBuf {
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = std::path::PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// Found with the events worker: the loader reading a file raised an access event, which
/// the watcher took for a change and loaded again, forever — a refused file was logged
/// twenty times a second (and every good file re-hashed as often).
#[test]
fn a_refused_file_is_tried_once_not_in_a_loop_of_its_own_reads() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    // A task that imports `kv` without the grant: refused at every load.
    std::fs::copy(
        test_artifacts::GUEST_WANTS_KV,
        plugins.join("wants-kv.wasm"),
    )
    .unwrap();
    let config = dir.path().join("impressox.toml");
    std::fs::write(
        &config,
        "data_dir = \"data\"\n[api]\nenabled = false\n[plugins]\ndir = \"plugins.d\"\ndebounce_ms = 20\n",
    )
    .unwrap();
    let mut child = impressox_in(&config, &["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The log is read as it comes: the first refusal may take seconds when the machine is
    // busy (the file is compiled before its imports are checked), and what this test counts
    // is the refusals after it, not how fast the first one is.
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let log = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        })
    };
    let refusals = || log.lock().unwrap().matches("plugin file refused").count();
    let first = wait_until(std::time::Duration::from_secs(60), || refusals() >= 1);
    // A loop of its own reads refused the file twenty times a second: two quiet seconds
    // after the first refusal tell the two apart.
    std::thread::sleep(std::time::Duration::from_secs(2));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    reader.join().unwrap();
    let log = log.lock().unwrap().clone();
    let refusals = log.matches("plugin file refused").count();
    assert!(first, "the file was never refused in 60 s:\n{log}");
    assert!(
        (1..=2).contains(&refusals),
        "{refusals} refusals in the 2 s after the first:\n{log}"
    );
}
