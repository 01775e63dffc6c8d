//! Per-context proxies: loopback through the proxy, Basic credentials, a dead proxy.

use impressox_browser::{ContextSpec, ProxySpec};

use crate::harness::{chromium_permit, config, start, tweets};
use crate::proxy::Proxy;
use crate::site::Site;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_proxy_is_used_for_loopback_with_bypass_rule() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let proxy = Proxy::start(None).await;
    let pool = start(config(dir.path())).await;
    let proxied = pool
        .context(ContextSpec {
            key: "p".into(),
            proxy: Some(ProxySpec {
                server: proxy.server(),
                credentials: None,
            }),
            cookies: vec![],
        })
        .await
        .unwrap();
    let direct = pool.context(ContextSpec::default()).await.unwrap();

    let mut page = proxied.lease().await.unwrap();
    let cap = page
        .open(&site.url("/u/via-proxy"), tweets(1), false)
        .await
        .unwrap();
    assert_eq!(cap.responses.len(), 1, "captured through the proxy");
    let host = site.addr.to_string();
    assert!(
        proxy.count_for(&host) >= 2,
        "page and fetch went through: {:?}",
        proxy.seen()
    );
    assert!(site.seen_for("/u/via-proxy")[0].via_proxy);
    assert!(site.seen_for("/i/api/graphql/").iter().all(|s| s.via_proxy));

    // The other context is not proxied.
    let before = proxy.count_for(&host);
    let mut page2 = direct.lease().await.unwrap();
    page2
        .open(&site.url("/u/direct"), tweets(1), false)
        .await
        .unwrap();
    assert!(!site.seen_for("/u/direct")[0].via_proxy);
    assert_eq!(proxy.count_for(&host), before);
    drop((page, page2));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_credentials_answer_407() {
    let _gate = chromium_permit().await;
    // Without interception (Fetch enabled for the credentials only) and with it (every request
    // paused and continued by us, challenges answered by chromiumoxide).
    for blocking in [false, true] {
        let site = Site::start().await;
        let dir = tempfile::tempdir().unwrap();
        let proxy = Proxy::start(Some(("user", "pa55"))).await;
        let mut cfg = config(dir.path());
        if blocking {
            cfg.block_resources = vec!["Image".into()];
        }
        let pool = start(cfg).await;
        let ctx = pool
            .context(ContextSpec {
                key: "p".into(),
                proxy: Some(ProxySpec {
                    server: proxy.server(),
                    credentials: Some(("user".into(), "pa55".into())),
                }),
                cookies: vec![],
            })
            .await
            .unwrap();
        let mut page = ctx.lease().await.unwrap();
        let path = format!("/u/auth-{blocking}");
        let cap = page.open(&site.url(&path), tweets(1), false).await.unwrap();
        assert_eq!(cap.responses.len(), 1, "blocking {blocking}");
        assert!(cap.responses[0].body.contains("item-1"));
        let seen = proxy.seen();
        assert!(
            seen.iter().any(|s| !s.had_auth),
            "the proxy challenged first: {seen:?}"
        );
        assert!(
            seen.iter().any(|s| s.had_auth && s.path == path),
            "{seen:?}"
        );
        assert!(site.seen_for(&path)[0].via_proxy);
        assert_eq!(site.seen_for("/img/").is_empty(), blocking);
        drop(page);
        pool.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_proxy_is_a_proxy_error_not_a_direct_connection() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let mut proxy = Proxy::start(None).await;
    proxy.stop();
    let pool = start(config(dir.path())).await;
    let ctx = pool
        .context(ContextSpec {
            key: "p".into(),
            proxy: Some(ProxySpec {
                server: proxy.server(),
                credentials: None,
            }),
            cookies: vec![],
        })
        .await
        .unwrap();
    let mut page = ctx.lease().await.unwrap();
    let e = page
        .open(&site.url("/u/nope"), tweets(1), false)
        .await
        .unwrap_err();
    assert!(e.is_proxy(), "{e}");
    assert!(site.seen_for("/u/nope").is_empty(), "no direct fallback");
    drop(page);
    pool.shutdown().await;
}
