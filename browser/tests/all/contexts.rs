//! Contexts: isolated cookie jars, cookies in and out, the per-account page cap.

use std::time::Duration;

use impressox_browser::{ContextSpec, Expect, StoredCookie};

use crate::harness::{chromium_permit, config, start, tweets};
use crate::site::Site;

fn cookie(name: &str, value: &str) -> StoredCookie {
    StoredCookie {
        name: name.into(),
        value: value.into(),
        domain: "127.0.0.1".into(),
        path: "/".into(),
        expires: None,
        http_only: true,
        secure: false,
        same_site: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_do_not_share_cookies() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let pool = start(config(dir.path())).await;
    let a = pool
        .context(ContextSpec {
            key: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let b = pool
        .context(ContextSpec {
            key: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        pool.browser_pids().len(),
        1,
        "both contexts live in one browser"
    );

    let mut pa = a.lease().await.unwrap();
    pa.open(&site.url("/set-cookie"), Expect::default(), false)
        .await
        .unwrap();
    drop(pa);
    let jar = a.cookies().await.unwrap();
    let sid = jar
        .iter()
        .find(|c| c.name == "sid")
        .expect("a has the site's cookie");
    assert_eq!(sid.value, "from-site");
    assert!(sid.http_only);
    assert_eq!(sid.expires, None, "a session cookie");
    assert!(b.cookies().await.unwrap().is_empty());

    let mut pb = b.lease().await.unwrap();
    pb.open(&site.url("/u/from-b"), tweets(1), false)
        .await
        .unwrap();
    assert_eq!(site.seen_for("/u/from-b")[0].cookie, "");
    drop(pb);
    let mut pa = a.lease().await.unwrap();
    pa.open(&site.url("/u/from-a"), tweets(1), false)
        .await
        .unwrap();
    assert_eq!(site.seen_for("/u/from-a")[0].cookie, "sid=from-site");
    drop(pa);

    a.clear_cookies().await.unwrap();
    assert!(a.cookies().await.unwrap().is_empty());
    a.close().await;
    b.close().await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookies_are_sent_to_the_site() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let pool = start(config(dir.path())).await;
    let ctx = pool
        .context(ContextSpec {
            key: "alice".into(),
            proxy: None,
            cookies: vec![cookie("auth_token", "T1")],
        })
        .await
        .unwrap();
    let mut page = ctx.lease().await.unwrap();
    page.open(&site.url("/u/one"), tweets(1), false)
        .await
        .unwrap();
    let seen = site.seen_for("/u/one");
    assert_eq!(seen[0].cookie, "auth_token=T1");
    // The page's own fetch() carries it too.
    let gql = site.seen_for("/i/api/graphql/");
    assert_eq!(gql.last().unwrap().cookie, "auth_token=T1");

    ctx.set_cookies(&[cookie("ct0", "C0")]).await.unwrap();
    page.open(&site.url("/u/two"), tweets(1), false)
        .await
        .unwrap();
    let c = &site.seen_for("/u/two")[0].cookie;
    assert!(c.contains("auth_token=T1") && c.contains("ct0=C0"), "{c}");

    let mut names: Vec<String> = ctx
        .cookies()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    assert_eq!(names, ["auth_token", "ct0"]);
    drop(page);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_wait_for_one_of_the_accounts_pages() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let pool = start(config(dir.path())).await;
    let ctx = pool.context(ContextSpec::default()).await.unwrap();
    let one = ctx.lease().await.unwrap();
    let two = ctx.lease().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), ctx.lease())
            .await
            .is_err(),
        "a third page is not handed out"
    );
    drop(one);
    let three = tokio::time::timeout(Duration::from_secs(10), ctx.lease())
        .await
        .expect("a returned page serves the waiting lease")
        .unwrap();
    drop((two, three));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_beyond_capacity_are_refused() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.contexts_per_browser = 1;
    let pool = start(cfg).await;
    let a = pool.context(ContextSpec::default()).await.unwrap();
    let e = pool.context(ContextSpec::default()).await.unwrap_err();
    assert!(e.to_string().contains("contexts_per_browser"), "{e}");
    a.close().await;
    // Closing gives the place back.
    let b = pool.context(ContextSpec::default()).await.unwrap();
    b.close().await;
    pool.shutdown().await;
}
