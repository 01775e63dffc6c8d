//! One `impressox` process per host: its own folder, data dir, API port and log file,
//! the market monitor on a shared Redis (or alone on the embedded store for the
//! one-host reference run), replaying the test feed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `[market] lease_secs` of the test hosts.
pub const LEASE_SECS: u64 = 2;

pub struct Host {
    pub id: String,
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

/// How a host stores: a shared Redis, or the embedded store of its own.
pub enum Storage<'a> {
    Redis(&'a str),
    Embedded,
}

pub fn install_plugins(dir: &Path) {
    let plugins = dir.join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(test_artifacts::THRESHOLD, plugins.join("threshold.wasm")).unwrap();
    std::fs::copy(
        test_artifacts::REPLAY_ROWS,
        plugins.join("replay-rows.wasm"),
    )
    .unwrap();
}

/// The config file of host `id` replaying `feed` at `speed`.
pub fn write_config(
    dir: &Path,
    id: &str,
    port: u16,
    storage: &Storage,
    feed: &Path,
    speed: f64,
) -> PathBuf {
    let (storage, cluster) = match storage {
        Storage::Redis(url) => (
            format!("[storage]\nbackend = \"redis\"\nredis_url = \"{url}\"\n"),
            format!("partitions = 64\nlease_secs = {LEASE_SECS}\nhost_id = \"{id}\"\n"),
        ),
        Storage::Embedded => (String::new(), String::new()),
    };
    let path = dir.join("impressox.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n[plugins]\ndir = \"plugins.d\"\n\
             {storage}[workers]\nenabled = [\"market-monitor\"]\n\
             [market]\nconsole_alerts = false\ncommit_interval_ms = 100\nmax_rules = 20000\n\
             rule_symbols = \"any\"\n{cluster}\
             [[market.sources]]\nname = \"file\"\nkind = \"replay\"\nparser = \"replay-rows\"\n\
             path = \"{}\"\nspeed = {speed}\n",
            feed.display()
        ),
    )
    .unwrap();
    path
}

impl Host {
    /// Start host `id` and wait until its API answers.
    pub async fn start(id: &str, storage: &Storage<'_>, feed: &Path, speed: f64) -> Host {
        let dir = tempfile::tempdir().unwrap();
        install_plugins(dir.path());
        let port = crate::servers::redis::free_port();
        write_config(dir.path(), id, port, storage, feed, speed);
        let mut host = Host {
            id: id.to_string(),
            port,
            dir,
            child: None,
        };
        host.spawn().await;
        host
    }

    /// Start a host whose folder (config, plugins) is prepared already.
    pub async fn start_in(dir: tempfile::TempDir, id: &str, port: u16) -> Host {
        let mut host = Host {
            id: id.to_string(),
            port,
            dir,
            child: None,
        };
        host.spawn().await;
        host
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("impressox.toml")
    }

    /// Start the process (again) and wait for its API.
    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("host.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_impressox"))
            .env("RUST_LOG", "info")
            .args(["--config", self.config().to_str().unwrap(), "run"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while self.metrics().await.is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "host {} never served:\n{}",
                self.id,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last lines of the host's log, for a failure message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("host.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub async fn metrics(&self) -> Option<String> {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port))
            .await
            .ok()?
            .text()
            .await
            .ok()
    }

    /// A counter or gauge of `/metrics` (no labels), 0 when absent.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.metrics().await.unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    }

    pub async fn finished(&self) -> bool {
        self.metrics().await.is_some_and(|m| {
            m.contains("impressox_source_state{source=\"file\",state=\"finished\"} 1")
        })
    }

    /// `GET /api/v1/cluster`.
    pub async fn cluster(&self) -> Option<Value> {
        let r = reqwest::get(format!("http://127.0.0.1:{}/api/v1/cluster", self.port))
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// SIGKILL: no shutdown, no last commit, leases left to expire.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let status = c.wait().unwrap();
            assert!(
                status.success(),
                "host {} exited with {status}:\n{}",
                self.id,
                self.log_tail()
            );
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Partitions held per host id in a `GET /api/v1/cluster` answer, and the unowned ones.
pub fn holdings(cluster: &Value) -> (std::collections::BTreeMap<String, u64>, usize) {
    let hosts = cluster["hosts"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .filter(|h| h["partitions_held"].as_u64().unwrap_or(0) > 0)
                .map(|h| {
                    (
                        h["id"].as_str().unwrap_or("").to_string(),
                        h["partitions_held"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let unowned = cluster["unowned"].as_array().map_or(64, Vec::len);
    (hosts, unowned)
}
