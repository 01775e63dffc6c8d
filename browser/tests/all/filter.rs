//! The request filter on real Chromium: a page on 127.0.0.1 whose script fetches from
//! `localhost` (the same server under another name) sees that request fail when the filter
//! refuses `localhost`, and the server never receives it; a redirect to a refused host
//! fails the navigation; a page without interception is refused rather than unfiltered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use impressox_browser::{
    AccountContext, BrowserError, ContextSpec, FilterFuture, PoolConfig, RequestFilter,
};

use crate::harness::{chromium_permit, config, start};

async fn serve(secret_hits: Arc<AtomicU32>) -> u16 {
    use axum::http::header;
    use axum::response::{Html, Redirect};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let page = format!(
        "<!doctype html><html><head><title>start</title></head><body><script>\
         fetch('http://localhost:{port}/secret').then(r => r.text())\
         .then(t => {{ document.title = 'got ' + t; }})\
         .catch(() => {{ document.title = 'refused'; }});</script></body></html>"
    );
    let app = axum::Router::new()
        .route(
            "/page",
            axum::routing::get(move || async move { Html(page) }),
        )
        .route(
            "/hop",
            axum::routing::get(move || async move {
                Redirect::temporary(&format!("http://localhost:{port}/secret"))
            }),
        )
        .route(
            "/secret",
            axum::routing::get(move || {
                let hits = secret_hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    ([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], "the-secret")
                }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

/// Renders `path` of the test server in a page of `ctx` and gives back its HTML (or the
/// browser's error), the page returned to the context.
async fn render(
    ctx: &AccountContext,
    port: u16,
    path: &str,
    quiet_ms: u64,
) -> Result<String, BrowserError> {
    let mut page = ctx.lease().await.unwrap();
    page.render(
        &format!("http://127.0.0.1:{port}{path}"),
        Duration::from_millis(quiet_ms),
    )
    .await
    .map(|(_, html)| html)
}

fn refuse_localhost() -> RequestFilter {
    RequestFilter::new(|url: String| -> FilterFuture {
        Box::pin(async move {
            if url.starts_with("http://localhost:") {
                Err("localhost is refused".into())
            } else {
                Ok(())
            }
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_and_redirect_hops_never_leave_the_browser() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let hits = Arc::new(AtomicU32::new(0));
    let port = serve(hits.clone()).await;
    let pool = start(PoolConfig {
        block_resources: vec!["Image".into()],
        ..config(dir.path())
    })
    .await;
    let ctx = pool
        .filtered_context(
            ContextSpec {
                key: "filtered".into(),
                ..Default::default()
            },
            refuse_localhost(),
        )
        .await
        .unwrap();

    let html = render(&ctx, port, "/page", 500).await.unwrap();
    assert!(html.contains("<title>refused</title>"), "{html}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // A redirect hop to a refused host fails the navigation.
    let err = render(&ctx, port, "/hop", 300).await.unwrap_err();
    assert!(err.to_string().contains("ERR_ACCESS_DENIED"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // The same page in an unfiltered context does reach the server (the test's premise).
    let open = pool
        .context(ContextSpec {
            key: "open".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let html = render(&open, port, "/page", 500).await.unwrap();
    assert!(html.contains("<title>got the-secret</title>"), "{html}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    pool.shutdown().await;

    // Without interception a filter could not act: its pages are refused.
    let bare = start(config(dir.path())).await;
    let ctx = bare
        .filtered_context(ContextSpec::default(), refuse_localhost())
        .await
        .unwrap();
    let err = ctx.lease().await.unwrap_err();
    assert!(err.to_string().contains("block_resources"), "{err}");
    bare.shutdown().await;
}
