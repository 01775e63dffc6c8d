//! Shared pieces: the Chromium gate, a test pool configuration, process helpers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use impressox_browser::{BrowserPool, Expect, PoolConfig, Sandbox};
use tokio::sync::{Semaphore, SemaphorePermit};

static CHROMIUMS: Semaphore = Semaphore::const_new(2);

/// Waits for one of the two Chromium permits.
pub async fn chromium_permit() -> SemaphorePermit<'static> {
    CHROMIUMS
        .acquire()
        .await
        .expect("the semaphore is never closed")
}

pub fn chromium_path() -> PathBuf {
    let p = std::env::var_os("IMPRESSOX_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        p.exists(),
        "Chromium is needed at {}: apt-get install -y chromium (or set IMPRESSOX_CHROMIUM)",
        p.display()
    );
    p
}

/// A pool configuration for tests: fast settling and probing, no blocking, loopback proxied.
pub fn config(root: &Path) -> PoolConfig {
    PoolConfig {
        executable: chromium_path(),
        sandbox: Sandbox::Auto,
        profile_root: root.to_path_buf(),
        block_resources: Vec::new(),
        proxy_bypass_list: "<-loopback>".into(),
        settle: Duration::from_millis(200),
        step_timeout: Duration::from_secs(15),
        scroll_nudges: 2,
        nudge_wait: Duration::from_millis(700),
        probe_interval: Duration::from_millis(500),
        ..PoolConfig::default()
    }
}

pub async fn start(cfg: PoolConfig) -> BrowserPool {
    BrowserPool::start(cfg).await.expect("pool starts")
}

pub fn tweets(n: usize) -> Expect {
    Expect {
        operations: vec!["UserTweets".into()],
        min_new: n,
    }
}

/// Whether `pid` still runs. A zombie whose threads have all exited does not count
/// (containers may lack a reaping init); a thread-group leader shows as a zombie while its
/// other threads are still exiting, and its parent cannot see the exit yet, so that does.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("");
    if state != "Z" && state != "X" {
        return true;
    }
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
    threads > 1
}

/// `pid` and all its descendants (from /proc's parent links).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if let Some(pp) = ppid {
                parents.push((p, pp));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let cur = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == cur).map(|(p, _)| *p));
        i += 1;
    }
    tree
}

/// Waits until `cond` holds, up to `limit`.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
