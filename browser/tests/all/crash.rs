//! Crash recovery: a killed browser is relaunched and contexts come back with their cookies.

use std::time::Duration;

use impressox_browser::{ContextSpec, StoredCookie};

use crate::harness::{alive, chromium_permit, config, eventually, process_tree, start, tweets};
use crate::site::Site;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_browser_is_relaunched_and_contexts_recover() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let pool = start(config(dir.path())).await;
    let ctx = pool
        .context(ContextSpec {
            key: "alice".into(),
            proxy: None,
            cookies: vec![StoredCookie {
                name: "auth_token".into(),
                value: "T1".into(),
                domain: "127.0.0.1".into(),
                path: "/".into(),
                expires: Some(2_000_000_000.0),
                http_only: true,
                secure: false,
                same_site: Some("Lax".into()),
            }],
        })
        .await
        .unwrap();
    let mut page = ctx.lease().await.unwrap();
    page.open(&site.url("/set-cookie"), Default::default(), false)
        .await
        .unwrap();
    // The jar as last read is what survives the crash.
    assert_eq!(ctx.cookies().await.unwrap().len(), 2);
    drop(page);

    let old = pool.browser_pids()[0];
    // SAFETY: kill(2) on a pid we own; no memory is involved.
    assert_eq!(unsafe { libc::kill(old as i32, libc::SIGKILL) }, 0);
    assert!(eventually(Duration::from_secs(5), || !alive(old)).await);

    // The next lease works: the context is re-created in a new browser.
    let mut page = ctx.lease().await.expect("lease after the crash");
    let cap = page
        .open(&site.url("/u/after"), tweets(1), false)
        .await
        .unwrap();
    assert_eq!(cap.responses.len(), 1);
    let c = &site.seen_for("/u/after")[0].cookie;
    assert!(
        c.contains("auth_token=T1") && c.contains("sid=from-site"),
        "{c}"
    );
    let pids = pool.browser_pids();
    assert_eq!(pids.len(), 1);
    assert_ne!(pids[0], old);
    assert_eq!(pool.restarts(), 1);
    drop(page);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_a_killed_browser_answers_gone_and_the_supervisor_relaunches() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let pool = start(config(dir.path())).await;
    let ctx = pool.context(ContextSpec::default()).await.unwrap();
    let mut page = ctx.lease().await.unwrap();
    page.open(&site.url("/u/a"), tweets(1), false)
        .await
        .unwrap();
    let old = pool.browser_pids()[0];
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(old as i32, libc::SIGKILL) }, 0);

    let e = page
        .open(&site.url("/u/b"), tweets(1), false)
        .await
        .unwrap_err();
    assert!(e.is_gone(), "{e}");
    drop(page);
    // The supervisor (probing every 500 ms) relaunches without being asked, since a context
    // lives in the slot.
    assert!(
        eventually(Duration::from_secs(20), || pool
            .browser_pids()
            .first()
            .is_some_and(|p| *p != old))
        .await,
        "relaunched: {:?}",
        pool.browser_pids()
    );
    let mut page = ctx.lease().await.unwrap();
    page.open(&site.url("/u/c"), tweets(1), false)
        .await
        .unwrap();
    drop(page);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_renderer_gets_its_page_replaced() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let mut cfg = config(dir.path());
    cfg.pages_per_account = 1;
    let pool = start(cfg).await;
    let ctx = pool.context(ContextSpec::default()).await.unwrap();
    let mut page = ctx.lease().await.unwrap();
    page.open(&site.url("/u/a"), tweets(1), false)
        .await
        .unwrap();
    let tab = site.seen_for("/i/api/graphql/").last().unwrap().tab.clone();

    // Kill the renderers only; the browser process stays.
    let renderers: Vec<u32> = process_tree(pool.browser_pids()[0])
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("--type=renderer"))
        })
        .collect();
    assert!(!renderers.is_empty());
    for r in &renderers {
        // SAFETY: kill(2) on a pid of our own browser's tree; no memory is involved.
        unsafe { libc::kill(*r as i32, libc::SIGKILL) };
    }
    assert!(
        eventually(Duration::from_secs(5), || renderers
            .iter()
            .all(|r| !alive(*r)))
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = std::time::Instant::now();
    let e = page
        .open(&site.url("/u/b"), tweets(1), false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("crashed"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(page);

    // Only 1 use of 50 and no timeout: the crash alone makes the next lease get a new page.
    let mut page = ctx.lease().await.unwrap();
    page.open(&site.url("/u/c"), tweets(1), false)
        .await
        .unwrap();
    assert_ne!(site.seen_for("/i/api/graphql/").last().unwrap().tab, tab);
    assert_eq!(pool.restarts(), 0, "only the renderer crashed");
    drop(page);
    pool.shutdown().await;
}
