//! A host in a temporary folder: config, data dir and plugin dir of its own.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use impressox_host::config::Config;
use impressox_host::runtime::Runtime;

pub struct TestHost {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub runtime: Runtime,
}

/// Settings small enough to hit in a test, loose enough for a loaded CI machine.
pub fn config_in(dir: &Path, extra: &str) -> Config {
    config_with_deadline(dir, 200, extra)
}

/// As [`config_in`], with plugin calls allowed `call_timeout_ms`.
fn config_with_deadline(dir: &Path, call_timeout_ms: u64, extra: &str) -> Config {
    let path = dir.join("impressox.toml");
    let text = format!(
        "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\ncall_timeout_ms = {call_timeout_ms}\nmemory_limit_mib = 32\n\
         quarantine_after = 3\nmax_output_bytes = 1048576\ndebounce_ms = 30\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    let config = Config::load_with_env(Some(&path), &[]).unwrap();
    // One compile-cache key for every test host, so large guests compile once per run
    // (crate::componentize).
    crate::componentize::seed_compile_key(&config.data_dir());
    config
}

pub fn host() -> TestHost {
    host_with("")
}

pub fn host_with(extra: &str) -> TestHost {
    host_from(tempfile::tempdir().unwrap(), |dir| config_in(dir, extra))
}

/// A test host whose plugin calls may take `ms`: for a large input to a JS or Python
/// guest, which 200 ms does not cover while other tests load both cores.
pub fn host_with_deadline(ms: u64) -> TestHost {
    host_from(tempfile::tempdir().unwrap(), |dir| {
        config_with_deadline(dir, ms, "")
    })
}

fn host_from(dir: tempfile::TempDir, config: impl FnOnce(&Path) -> Config) -> TestHost {
    let config = config(dir.path());
    std::fs::create_dir_all(config.plugin_dir()).unwrap();
    let runtime = Runtime::new(&config).unwrap();
    TestHost {
        dir,
        config,
        runtime,
    }
}

impl TestHost {
    /// Copy a built component into the plugin dir as `file_name`.
    pub fn install(&self, artifact: &str, file_name: &str) -> PathBuf {
        let dest = self.config.plugin_dir().join(file_name);
        write_atomically(&dest, &std::fs::read(artifact).unwrap());
        dest
    }

    /// Write raw bytes into the plugin dir.
    pub fn install_bytes(&self, bytes: &[u8], file_name: &str) -> PathBuf {
        let dest = self.config.plugin_dir().join(file_name);
        write_atomically(&dest, bytes);
        dest
    }

    /// Install and load now; panics with the reason if it fails.
    pub fn load(&self, artifact: &str, file_name: &str) -> PathBuf {
        let path = self.install(artifact, file_name);
        self.runtime
            .load_file(&path)
            .unwrap_or_else(|e| panic!("{file_name}: {e}"));
        path
    }
}

pub fn write_atomically(dest: &Path, bytes: &[u8]) {
    let tmp = dest.with_file_name(format!(
        ".{}.tmp",
        dest.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

/// Poll `check` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    check()
}

pub fn notification(id: &str) -> impressox_host::bindings::types::Notification {
    impressox_host::bindings::types::Notification {
        id: id.into(),
        user_id: "u1".into(),
        kind: "price_alert".into(),
        priority: impressox_host::bindings::types::Priority::Normal,
        title: "BTCUSDT above 70000".into(),
        body: "BTCUSDT is 70123.40 (Binance)".into(),
        data_json: "{}".into(),
        created_at_ms: 0,
    }
}

pub fn event(action: &str) -> impressox_host::bindings::types::Event {
    impressox_host::bindings::types::Event {
        stream: "s".into(),
        id: "1-0".into(),
        fields: vec![impressox_host::bindings::types::Field {
            name: "do".into(),
            value: action.into(),
        }],
        attempt: 1,
        received_at_ms: 0,
    }
}

/// The `impressox` binary of this build, without the caller's `RUST_LOG`.
pub fn impressox() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_impressox"));
    cmd.env_remove("RUST_LOG");
    cmd
}

/// `impressox --config <config> <args...>`, ready to run.
pub fn impressox_in(config: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = impressox();
    cmd.arg("--config").arg(config).args(args);
    cmd
}

/// Run `cmd`, which must succeed (a failure panics with `what` and its stderr): its stdout.
pub fn stdout_of(cmd: &mut std::process::Command, what: &str) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `impressox --config <config> plugin check <file>`: its output.
pub fn plugin_check(config: &Path, file: &str) -> std::process::Output {
    impressox_in(config, &["plugin", "check", file])
        .output()
        .unwrap()
}

/// A loopback port free a moment ago (for a process that binds it itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The admin API of `runtime` with `services`, served on a free loopback port: its base URL
/// (`http://127.0.0.1:<port>`) and the server task.
pub async fn serve_api(
    runtime: Runtime,
    services: impressox_host::api::Services,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = impressox_host::api::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = impressox_host::api::router_with(runtime, None, None, services);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, server)
}
