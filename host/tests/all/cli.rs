//! The `impressox` binary: plugin new/build/check/run, and `run` with its API and signals.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::*;

#[test]
fn plugin_check_prints_identity_or_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "data_dir = \"d\"\n").unwrap();
    let out = plugin_check(&cfg, test_artifacts::THRESHOLD);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("name:        threshold"), "{stdout}");
    assert!(stdout.contains("kind:        rule-processor"), "{stdout}");
    assert!(stdout.contains("wit version: 0.1.0"), "{stdout}");
    assert!(stdout.contains("grants needed: none"), "{stdout}");

    let out = plugin_check(&cfg, test_artifacts::GUEST_WANTS_KV);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("loadable by this host: no"), "{stdout}");
    assert!(stderr.contains("kv = true"), "{stderr}");
}

/// Issue 18, item 5: without `--config`, `plugin check` wrote a compiled cache (34 MB for a
/// Python plugin) and a `plugins.d` into the folder it ran in, and ignored
/// `[plugins] max_file_mib`. Now it works in a temporary data dir, applies the loader's cap
/// and says what compiling took.
#[test]
fn plugin_check_leaves_no_files_behind_and_applies_the_loaders_cap() {
    let cwd = tempfile::tempdir().unwrap();
    let out = impressox()
        .current_dir(cwd.path())
        .args(["plugin", "check", test_artifacts::THRESHOLD])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("compile:     "), "{stdout}");
    assert!(stdout.contains("peak memory: "), "{stdout}");
    let left: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "plugin check left {left:?} in its folder");

    // The loader refuses a file over `max_file_mib`; so does the check.
    let cfg = cwd.path().join("c.toml");
    std::fs::write(&cfg, "data_dir = \"d\"\n[plugins]\nmax_file_mib = 0\n").unwrap();
    let out = impressox()
        .args(["--config", cfg.to_str().unwrap(), "plugin", "check"])
        .arg(test_artifacts::THRESHOLD)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("max_file_mib"), "{stderr}");
}

/// `impressox plugin run WASM --input INPUT` with `config`: its JSON answer (a failed run
/// panics with its output).
pub fn plugin_run(config: &Path, wasm: &str, input: &Path) -> serde_json::Value {
    let stdout = stdout_of(
        &mut impressox_in(
            config,
            &["plugin", "run", wasm, "--input", input.to_str().unwrap()],
        ),
        &format!("plugin run {wasm}"),
    );
    serde_json::from_slice(&stdout).unwrap()
}

/// The example input a bundled plugin ships (`plugins/NAME/examples/input.json`).
pub fn bundled_example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .join(name)
        .join("examples/input.json")
}

#[test]
fn plugin_run_calls_a_plugin_on_json_input() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "data_dir = \"d\"\n").unwrap();
    let input = dir.path().join("in.json");
    std::fs::write(
        &input,
        r#"{"payload": "{\"e\":\"24hrMiniTicker\",\"E\":1764300000000,\"s\":\"ETHUSDT\",\"c\":\"3500.5\",\"o\":\"3400\",\"h\":\"3600\",\"l\":\"3300\",\"v\":\"1000\",\"q\":\"3500000\"}", "received_ms": 5}"#,
    )
    .unwrap();
    let v = plugin_run(&cfg, test_artifacts::BINANCE, &input);
    assert_eq!(v["parse"]["ok"]["ticks"][0]["symbol"], "ETHUSDT");
    assert_eq!(v["parse"]["ok"]["ticks"][0]["price"], 3500.5);
}

#[test]
fn bundled_example_inputs_run() {
    // Each bundled plugin ships an example input for `plugin run`.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "data_dir = \"d\"\n").unwrap();
    let cases = [
        ("threshold", test_artifacts::THRESHOLD),
        ("binance", test_artifacts::BINANCE),
        ("telegram-markdown", test_artifacts::TELEGRAM_MARKDOWN),
        ("echo-task", test_artifacts::ECHO_TASK),
        ("event-logger", test_artifacts::EVENT_LOGGER),
        ("coingecko", test_artifacts::COINGECKO),
        ("replay-rows", test_artifacts::REPLAY_ROWS),
        ("plain-formatter", test_artifacts::PLAIN_FORMATTER),
        ("x-timeline", test_artifacts::X_TIMELINE),
        ("markdown-chunker", test_artifacts::MARKDOWN_CHUNKER),
        ("tweet-chunker", test_artifacts::TWEET_CHUNKER),
    ];
    for (name, wasm) in cases {
        let v = plugin_run(&cfg, wasm, &bundled_example(name));
        assert!(v.get("error").is_none(), "{name}: {v}");
    }
}

#[test]
fn run_serves_the_api_loads_plugins_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("data_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n[plugins]\ndir = \"plugins.d\"\n[workers]\nenabled = []\n"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("plugins.d")).unwrap();
    std::fs::copy(
        test_artifacts::PLAIN_FORMATTER,
        dir.path().join("plugins.d/plain-formatter.wasm"),
    )
    .unwrap();
    let mut child = impressox()
        .args(["--config", cfg.to_str().unwrap(), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::blocking_free_get;
    let ready = wait_until(Duration::from_secs(60), || {
        client(&format!("http://127.0.0.1:{port}/readyz")) == Some(200)
    });
    assert!(ready, "host never became ready");
    // A file dropped in while running is picked up.
    std::fs::copy(
        test_artifacts::ECHO_TASK,
        dir.path().join("plugins.d/echo-task.wasm"),
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(60), || client(&format!(
        "http://127.0.0.1:{port}/api/v1/plugins/echo-task"
    )) == Some(200)));
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
}

#[test]
fn run_refuses_an_unknown_config_key_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[plugins]\ndirr = \"x\"\n").unwrap();
    let out = impressox()
        .args(["--config", cfg.to_str().unwrap(), "run"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dirr") && stderr.contains("c.toml"),
        "{stderr}"
    );
}

/// A host folder with a config whose plugins go to `plugins.d`, a plugin of `kind`
/// scaffolded there by `plugin new NAME` and built by `plugin build`, as a user does
/// outside the repository. Returns the config and the built component's path.
pub fn scaffold_and_build(
    dir: &Path,
    kind: &str,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\n",
    )
    .unwrap();
    let crate_dir = dir.join(name);
    stdout_of(
        &mut impressox_in(
            &cfg,
            &[
                "plugin",
                "new",
                kind,
                name,
                "--path",
                crate_dir.to_str().unwrap(),
            ],
        ),
        "plugin new",
    );
    // Share compiled dependencies between runs; the crate itself is still built from scratch.
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    stdout_of(
        impressox_in(&cfg, &["plugin", "build", crate_dir.to_str().unwrap()])
            .env("CARGO_TARGET_DIR", target.join("scaffold-test")),
        "plugin build",
    );
    let wasm = dir.join(format!("plugins.d/{}.wasm", name.replace('-', "_")));
    (cfg, wasm)
}

#[test]
fn scaffolded_plugin_outside_the_repository_builds_and_loads_without_edits() {
    let dir = tempfile::tempdir().unwrap();
    let (_, wasm) = scaffold_and_build(dir.path(), "notify-formatter", "my-formatter");
    assert!(wasm.exists());
    let h = host();
    h.load(wasm.to_str().unwrap(), "my_formatter.wasm");
    let msg = h
        .runtime
        .plugin("my-formatter")
        .format(&notification("n"), "email")
        .unwrap()
        .unwrap();
    assert!(
        msg[0].text.contains("[email] BTCUSDT above 70000"),
        "{}",
        msg[0].text
    );
}

/// Minimal blocking GET without pulling reqwest's blocking feature: the status code or None.
mod reqwest {
    pub fn blocking_free_get(url: &str) -> Option<u16> {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://")?;
        let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
        let mut s = std::net::TcpStream::connect(host).ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        buf.split_whitespace().nth(1)?.parse().ok()
    }
}

/// The README's run command on a copy of `config/default.toml`: the demo's alerts reach
/// the console through the notify worker (not the market monitor's own printer).
#[test]
fn readme_run_delivers_demo_alerts_through_notify() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let repo_config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    std::fs::copy(
        repo_config.join("default.toml"),
        dir.path().join("default.toml"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("replay")).unwrap();
    std::fs::copy(
        repo_config.join("replay/demo-prices.csv"),
        dir.path().join("replay/demo-prices.csv"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("rag-demo")).unwrap();
    for page in std::fs::read_dir(repo_config.join("rag-demo")).unwrap() {
        let page = page.unwrap().path();
        std::fs::copy(
            &page,
            dir.path().join("rag-demo").join(page.file_name().unwrap()),
        )
        .unwrap();
    }
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    for (artifact, name) in [
        (test_artifacts::MARKDOWN_CHUNKER, "markdown-chunker.wasm"),
        (test_artifacts::REPLAY_ROWS, "replay-rows.wasm"),
        (test_artifacts::THRESHOLD, "threshold.wasm"),
        (test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm"),
        (test_artifacts::TELEGRAM_MARKDOWN, "telegram-markdown.wasm"),
    ] {
        std::fs::copy(artifact, plugins.join(name)).unwrap();
    }
    let port = free_port();
    let mut child = impressox()
        .args([
            "--config",
            dir.path().join("default.toml").to_str().unwrap(),
            "run",
        ])
        .env("IMPRESSOX__API__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut alerts = Vec::new();
    while alerts.len() < 2 && std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200))
            && line.starts_with("ALERT [demo] ")
        {
            alerts.push(line);
        }
    }
    let metrics = metrics_text(port);
    // The demo's RAG question, asked as the README says while the demo runs: the CLI
    // finds the index in use and asks the host's API.
    let config_path = dir.path().join("default.toml");
    let mut answer = String::new();
    let answered = crate::harness::wait_until(Duration::from_secs(60), || {
        let out = impressox()
            .args([
                "--config",
                config_path.to_str().unwrap(),
                "rag",
                "query",
                "what does the market monitor do",
                "-k",
                "1",
            ])
            .env("IMPRESSOX__API__LISTEN", format!("127.0.0.1:{port}"))
            .output()
            .unwrap();
        answer = String::from_utf8_lossy(&out.stdout).into_owned();
        answer.contains("demo-docs/market-monitor.md")
    });
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(answered, "rag query answered: {answer}");
    assert!(alerts.len() >= 2, "alerts: {alerts:?}");
    assert!(alerts[0].contains(" — "), "{}", alerts[0]);
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "impressox_notify_deliveries_total{channel=\"console\",outcome=\"sent\"}"
        )),
        "{metrics}"
    );
    assert!(status.success(), "exit status {status:?}");
}

/// `/metrics` as text (a minimal HTTP GET).
fn metrics_text(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf
}

/// SPEC §11: `--log-format json` prints one flat JSON object a line, `worker` and
/// `plugin` on every line, filled in on the lines of a worker and of a plugin. A real
/// `impressox run` with the scheduler firing a plugin every second.
#[test]
fn json_logs_are_one_flat_object_a_line_naming_worker_and_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n[plugins]\ndir = \"plugins.d\"\n\
             [plugins.grants.sched-probe]\nkv = true\n[workers]\nenabled = [\"scheduler\"]\n\
             [[schedules]]\nname = \"tick\"\nevery = \"1s\"\nplugin = \"sched-probe\"\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("plugins.d")).unwrap();
    std::fs::copy(
        test_artifacts::GUEST_SCHED_PROBE,
        dir.path().join("plugins.d/sched-probe.wasm"),
    )
    .unwrap();
    let mut child = impressox()
        .args(["--config", cfg.to_str().unwrap(), "--log-format", "json"])
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = wait_until(Duration::from_secs(60), || {
        reqwest::blocking_free_get(&format!("http://127.0.0.1:{port}/readyz")) == Some(200)
    });
    assert!(ready, "host never became ready");
    // A few firings of the schedule.
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "exit status {status:?}: {stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 3, "{stderr}");
    for line in &lines {
        let object = line.as_object().unwrap_or_else(|| panic!("{line}"));
        for key in [
            "timestamp",
            "level",
            "target",
            "worker",
            "plugin",
            "message",
        ] {
            assert!(object.contains_key(key), "`{key}` missing: {line}");
        }
        assert!(!object.contains_key("fields"), "nested fields: {line}");
    }
    assert!(
        lines.iter().any(|l| l["plugin"] == "sched-probe"),
        "no line names the plugin: {stderr}"
    );
    assert!(
        lines.iter().any(|l| l["worker"] == "scheduler"),
        "no line names the worker: {stderr}"
    );
    assert!(
        lines.iter().any(|l| l["message"] == "SIGTERM received"),
        "{stderr}"
    );
}
