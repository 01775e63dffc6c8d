//! What stock guest runtimes meet in the sandbox (issue 18, items 2 and 6): CPython
//! through componentize-py and SpiderMonkey through componentize-js, as their toolchains
//! build them, not hand-made components.

use std::path::Path;
use std::time::{Duration, Instant};

use impressox_host::bindings::types::{Notification, Priority};
use impressox_host::runtime::CallError;
use serde_json::Value;

use crate::componentize::{self, Staged};
use crate::harness::{TestHost, config_in, host, impressox};

fn asking(channel_arg: &str) -> Notification {
    Notification {
        id: "n-1".into(),
        user_id: "u1".into(),
        kind: "test".into(),
        priority: Priority::Normal,
        title: "rendered".into(),
        body: channel_arg.into(),
        data_json: "{}".into(),
        created_at_ms: 0,
    }
}

fn python_host() -> TestHost {
    let h = host();
    componentize::load(&h, componentize::py_sandbox(), "py-sandbox.wasm");
    h
}

#[test]
fn a_python_guest_sleeping_is_cut_at_the_deadline() {
    let h = python_host();
    let py = h.runtime.plugin("py-sandbox");
    let started = Instant::now();
    // time.sleep(30): CPython waits in wasi:io/poll, which ends at the call's deadline.
    let err = py.format(&asking(""), "sleep").unwrap_err();
    assert!(matches!(err, CallError::Timeout { ms: 200, .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        py.format(&asking(""), "ok").unwrap().unwrap()[0].text,
        "rendered"
    );
}

#[test]
fn a_python_guest_spinning_is_cut_at_the_deadline() {
    let h = python_host();
    let py = h.runtime.plugin("py-sandbox");
    let started = Instant::now();
    let err = py.format(&asking(""), "spin").unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(py.format(&asking(""), "ok").unwrap().is_ok());
}

#[test]
fn a_python_guest_over_its_memory_cap_fails_alone() {
    let h = python_host();
    let py = h.runtime.plugin("py-sandbox");
    let err = py.format(&asking(""), "memory").unwrap_err();
    assert!(
        matches!(err, CallError::MemoryLimit { mib: 32, .. }),
        "{err}"
    );
    assert!(py.format(&asking(""), "ok").unwrap().is_ok());
}

#[test]
fn a_python_guest_sees_no_environment_files_or_sockets() {
    // SAFETY: set before this test's threads read the environment; a marker only this test
    // looks for.
    unsafe { std::env::set_var("IMPRESSOX_TEST_PY_SECRET", "s3cret-py") };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = python_host();
    let seen = h
        .runtime
        .plugin("py-sandbox")
        .format(&asking(&port.to_string()), "env")
        .unwrap()
        .unwrap();
    let seen: Value = serde_json::from_str(&seen[0].text).unwrap();
    assert_eq!(seen["environ"], serde_json::json!({}), "{seen}");
    assert!(!seen.to_string().contains("s3cret-py"));
    let refused = |what: &str| {
        let r = seen[what].as_str().unwrap();
        assert!(!r.starts_with("ok:"), "{what}: {r}");
        r.to_string()
    };
    refused("listdir");
    refused("open");
    let socket = refused("socket");
    assert!(
        socket.contains("PermissionError") || socket.contains("ermission"),
        "{socket}"
    );
    // And nothing reached the port.
    assert!(listener.accept().is_err());
}

/// CPython writes `print("formatted", "n-1", "for", "print")` in pieces, flushing each: the
/// log had one line per piece (`formatted`, ` `, `n-1`, ...) and JavaScript's `console.log`
/// an empty line after each. Now each printed line is one log line. (Failed before the fix
/// in `capabilities/wasi/stdio.rs`: the flush ended the line.)
#[test]
fn python_prints_reach_the_log_as_whole_lines() {
    let wasm = componentize::py_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path(), "");
    componentize::link_compiled(&config, wasm);
    let input = dir.path().join("in.json");
    std::fs::write(
        &input,
        r#"{"notification": {"id": "n-1", "user_id": "u1", "kind": "test", "priority": "Normal",
            "title": "t", "body": "", "data_json": "{}", "created_at_ms": 0}, "channel": "print"}"#,
    )
    .unwrap();
    let out = impressox()
        .arg("--config")
        .arg(dir.path().join("impressox.toml"))
        .args(["--log-format", "json", "plugin", "run"])
        .arg(wasm)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "plugin")
        .collect();
    let printed: Vec<(&str, &str)> = lines
        .iter()
        .map(|v| {
            (
                v["stream"].as_str().unwrap_or_default(),
                v["message"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        printed,
        [
            ("stdout", "formatted n-1 for print"),
            ("stderr", "a warning from python"),
        ],
        "{stderr}"
    );
    assert!(lines.iter().all(|v| v["plugin"] == "py-sandbox"));
}

/// componentize-js without `-d http -d fetch-event` imports `wasi:http`: what an author
/// who builds by hand gets is refused for a pure kind, naming the rule and the fix.
#[test]
fn a_stock_js_build_importing_wasi_http_is_refused_naming_the_kinds_rule() {
    let staged = Staged::new(Path::new("plugins/discord-embeds"));
    let out = staged.path().join("stock.wasm");
    let wasm = componentize::build_with(staged.path(), "stock-js-http", || {
        let mut cmd = std::process::Command::new(componentize::js_bin().join("componentize-js"));
        cmd.args([
            "app.js",
            "--wit",
            "wit",
            "--world-name",
            "notify-formatter",
            "-o",
        ])
        .arg(&out)
        .current_dir(staged.path());
        (cmd, out.clone())
    });
    let h = host();
    let path = componentize::install(&h, &wasm, "discord-embeds.wasm");
    let err = h.runtime.load_file(&path).unwrap_err();
    assert!(err.contains("`wasi:http/"), "{err}");
    assert!(
        err.contains("notify-formatter plugins are pure") && err.contains("-d http fetch-event"),
        "{err}"
    );
}
