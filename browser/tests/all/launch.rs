//! Launching, the user agent, and shutdown.

use std::time::Duration;

use impressox_browser::ContextSpec;

use crate::harness::{alive, chromium_permit, config, eventually, process_tree, start, tweets};
use crate::site::Site;

fn euid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_as_root_with_no_sandbox() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let pool = start(config(dir.path())).await;
    assert!(pool.browser_pids().is_empty(), "browsers launch on demand");

    let ctx = pool.context(ContextSpec::default()).await.unwrap();
    let pids = pool.browser_pids();
    assert_eq!(pids.len(), 1);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pids[0])).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert_eq!(
        cmdline.contains("--no-sandbox"),
        euid_is_root(),
        "{cmdline}"
    );
    assert!(
        cmdline.contains(&dir.path().display().to_string()),
        "own profile dir: {cmdline}"
    );

    let mut page = ctx.lease().await.unwrap();
    let cap = page
        .open(&site.url("/u/alice"), tweets(1), false)
        .await
        .unwrap();
    assert_eq!(cap.responses.len(), 1);
    let ua = &site.seen_for("/u/alice")[0].user_agent;
    assert!(
        ua.contains("Chrome/") && !ua.contains("HeadlessChrome"),
        "{ua}"
    );

    drop(page);
    ctx.close().await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_leaves_no_chromium_process_and_removes_profiles() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let pool = start(config(dir.path())).await;
    let ctx = pool.context(ContextSpec::default()).await.unwrap();
    let mut page = ctx.lease().await.unwrap();
    page.open(&site.url("/u/a"), tweets(1), false)
        .await
        .unwrap();

    let pid = pool.browser_pids()[0];
    let tree = process_tree(pid);
    assert!(tree.len() > 1, "Chromium runs helper processes: {tree:?}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "one profile directory"
    );

    pool.shutdown().await;
    assert!(pool.browser_pids().is_empty());
    assert!(
        eventually(Duration::from_secs(10), || tree.iter().all(|p| !alive(*p))).await,
        "still running: {:?}",
        tree.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "profiles removed"
    );
    // Everything answers Gone afterwards.
    assert!(
        page.open(&site.url("/u/a"), tweets(1), false)
            .await
            .unwrap_err()
            .is_gone()
    );
    assert!(
        pool.context(ContextSpec::default())
            .await
            .unwrap_err()
            .is_gone()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_executable_is_a_launch_error_that_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.executable = dir.path().join("no-such-chromium");
    let e = impressox_browser::BrowserPool::start(cfg)
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("no-such-chromium") && msg.contains("apt-get install"),
        "{msg}"
    );
}
