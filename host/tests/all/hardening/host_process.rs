//! The real `impressox` binary in a folder of its own, for the regression tests that must
//! go through the whole host: the config file, the data dir, stdout (where the console
//! channel prints) and stderr in files, the admin API on a free port, and stopping it by
//! signal with a bound on how long it may take.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::servers::redis::free_port;

/// A host's folder and the API port its config names.
pub struct HostDir {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl HostDir {
    /// A folder with `plugins.d` holding `plugins` (built artifacts, copied as
    /// `<name>.wasm`) and `impressox.toml` = the data dir, API and plugin dir, then `rest`.
    pub fn new(plugins: &[(&str, &str)], rest: &str) -> HostDir {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let plugin_dir = dir.path().join("plugins.d");
        std::fs::create_dir_all(&plugin_dir).unwrap();
        for (artifact, name) in plugins {
            std::fs::copy(artifact, plugin_dir.join(format!("{name}.wasm"))).unwrap();
        }
        let host = HostDir { dir, port };
        host.write_config(rest);
        host
    }

    /// Replace the config after the common part (a restart with other settings).
    pub fn write_config(&self, rest: &str) {
        std::fs::write(
            self.config(),
            format!(
                "data_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:{}\"\n[plugins]\ndir = \"plugins.d\"\n{rest}",
                self.port
            ),
        )
        .unwrap();
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("impressox.toml")
    }

    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Start `impressox run` with `env`; stdout and stderr append to `stdout.log` and
    /// `host.log`.
    pub fn spawn(&self, env: &[(&str, &str)]) -> HostChild {
        let file = |name: &str| {
            Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join(name))
                    .unwrap(),
            )
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_impressox"));
        cmd.args(["--config", self.config().to_str().unwrap(), "run"])
            .env_remove("RUST_LOG")
            .stdout(file("stdout.log"))
            .stderr(file("host.log"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        HostChild(cmd.spawn().unwrap())
    }

    /// What the host printed on stdout so far (the console channel's lines).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    /// The host's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host.log")).unwrap_or_default()
    }

    /// Wait until `/readyz` answers 200 (a minute at most).
    pub async fn wait_ready(&self, http: &reqwest::Client) {
        let start = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.api())).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "host never became ready: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// GET `/metrics` (None while the host is not serving).
    pub async fn metrics(&self, http: &reqwest::Client) -> Option<String> {
        http.get(format!("{}/metrics", self.api()))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    }
}

/// A running host, killed when the test ends (or fails) while it still runs.
pub struct HostChild(pub Child);

impl Drop for HostChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Send SIGTERM and wait up to `limit` for the process to exit. Returns how long it took,
/// or `None` (after killing it) if it was still running at `limit`; panics if it exited
/// with a failure.
pub fn terminate_within(child: &mut HostChild, limit: Duration) -> Option<Duration> {
    let child = &mut child.0;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the host exited with {status:?}");
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
