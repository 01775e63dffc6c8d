//! `urls` sources with `render = true`, on a real Chromium: a page whose text only its
//! JavaScript writes is indexed and found; an unchanged page is not embedded again; the
//! SSRF guard refuses a private host before the browser opens it; a browser killed
//! mid-pass fails that page for the pass and the next pass recovers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use impressox_host::rag::config::SourceKind;
use impressox_host::rag::sources::SourceRunner;
use impressox_host::rag::sources::cursors::Cursors;
use impressox_host::rag::sources::render::Renderer;
use impressox_rag::{Mode, Query};

use super::{rag_host, source};
use crate::servers::chromium::{browser_permit, chromium_path};

/// What the test site serves: the sentence its script writes, and how long the page's
/// script file takes (a slow load keeps the navigation open for the mid-pass kill).
#[derive(Default)]
struct Site {
    sentence: parking_lot::Mutex<String>,
    script_delay_ms: AtomicU64,
    /// Requests of the page itself.
    page_hits: AtomicU32,
}

/// The HTML a plain GET sees: no sentence, only the script that fetches it.
const PAGE: &str = "<!doctype html><html><head><title>Miners</title></head><body>\
    <h1>Miner report</h1><div id=\"out\">loading</div>\
    <script src=\"/app.js\"></script></body></html>";

const APP_JS: &str = "fetch('/data').then(r => r.text()).then(t => { \
    document.getElementById('out').innerHTML = '<h2>Rendered</h2><p>' + t + '</p>'; });";

async fn site_server(site: Arc<Site>) -> String {
    use axum::http::header;
    let s1 = site.clone();
    let s2 = site.clone();
    let s3 = site;
    let app = axum::Router::new()
        .route(
            "/page",
            axum::routing::get(move || {
                let site = s1.clone();
                async move {
                    site.page_hits.fetch_add(1, Ordering::SeqCst);
                    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE)
                }
            }),
        )
        .route(
            "/app.js",
            axum::routing::get(move || {
                let site = s2.clone();
                async move {
                    let delay = site.script_delay_ms.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    ([(header::CONTENT_TYPE, "text/javascript")], APP_JS)
                }
            }),
        )
        .route(
            "/data",
            axum::routing::get(move || {
                let site = s3.clone();
                async move { site.sentence.lock().clone() }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

fn texts(service: &impressox_host::rag::RagService, collection: &str) -> Vec<String> {
    match service.index().vectors().collection(collection).unwrap() {
        None => Vec::new(),
        Some(_) => service
            .index()
            .vectors()
            .all_chunks(collection)
            .unwrap()
            .iter()
            .map(|c| c.text.clone())
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_pages_are_indexed_guarded_skipped_when_unchanged_and_survive_a_browser_kill() {
    let _permit = browser_permit().await;
    let (h, service) = rag_host();
    let site = Arc::new(Site::default());
    *site.sentence.lock() = "Hashprice recovered after the difficulty drop.".into();
    let base = site_server(site.clone()).await;
    let url = format!("{base}/page");

    // A plain GET does not see the sentence: only the script writes it.
    let plain = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(!plain.contains("Hashprice"), "{plain}");
    site.page_hits.store(0, Ordering::SeqCst);

    let renderer = Arc::new(Renderer::new(impressox_browser::PoolConfig {
        executable: chromium_path(),
        launch_timeout: Duration::from_secs(60),
        profile_root: h.dir.path().join("browser-rag"),
        ..Default::default()
    }));
    let cursors = Arc::new(Cursors::open(&h.config.data_dir().join("rag")));
    let runner = |allow_private: bool| {
        let mut cfg = source("web", SourceKind::Urls, "web");
        cfg.urls = vec![url.clone()];
        cfg.render = true;
        cfg.allow_private_addresses = allow_private;
        SourceRunner::new(cfg, h.dir.path(), service.clone(), cursors.clone(), None)
            .unwrap()
            .with_renderer(renderer.clone())
    };

    // Guarded: 127.0.0.1 is refused before any browser opens it.
    let mut guarded = runner(false);
    let err = format!("{:#}", guarded.pass().await.unwrap_err());
    assert!(
        err.contains("1 of 1 pages failed") && err.contains("internal address"),
        "{err}"
    );
    assert_eq!(site.page_hits.load(Ordering::SeqCst), 0);
    assert!(texts(&service, "web").is_empty());

    // Allowed: the rendered DOM is indexed and found.
    let mut r = runner(true);
    let first = r.pass().await.unwrap();
    assert_eq!((first.changed, first.failed), (1, 0), "{first:?}");
    assert!(first.embedded >= 1, "{first:?}");
    let all = texts(&service, "web");
    assert!(
        all.iter().any(|t| t.contains("Hashprice recovered")),
        "{all:?}"
    );
    let hits = service
        .query(&Query {
            collection: "web".into(),
            text: "hashprice difficulty".into(),
            k: 3,
            mode: Mode::Hybrid,
            filter: Default::default(),
            min_score: None,
        })
        .unwrap();
    assert!(!hits.is_empty());
    assert_eq!(hits[0].chunk.url.as_deref(), Some(url.as_str()));
    assert!(hits[0].chunk.text.contains("Hashprice"), "{:?}", hits[0]);

    // Unchanged: rendered again, but the same content is not embedded again.
    let second = r.pass().await.unwrap();
    assert_eq!((second.changed, second.embedded), (0, 0), "{second:?}");
    assert_eq!(site.page_hits.load(Ordering::SeqCst), 2);

    // The browser is killed while the page loads (its script is held for 3 s): that
    // page fails for this pass, its chunks stay.
    *site.sentence.lock() = "Transaction fees doubled during the inscription wave.".into();
    site.script_delay_ms.store(3_000, Ordering::SeqCst);
    let pids = renderer.browser_pids();
    assert!(!pids.is_empty());
    let hits_before = site.page_hits.load(Ordering::SeqCst);
    let pass = tokio::spawn(async move {
        let res = r.pass().await;
        (r, res)
    });
    for _ in 0..200 {
        if site.page_hits.load(Ordering::SeqCst) > hits_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(site.page_hits.load(Ordering::SeqCst) > hits_before);
    for pid in &pids {
        // SAFETY: kill(2) on a pid this test's pool launched.
        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
    }
    let (mut r, res) = pass.await.unwrap();
    let err = format!("{:#}", res.unwrap_err());
    assert!(err.contains("1 of 1 pages failed"), "{err}");
    let kept = texts(&service, "web");
    assert!(
        kept.iter().any(|t| t.contains("Hashprice recovered")),
        "{kept:?}"
    );

    // The next pass runs in a relaunched browser and takes the new text, replacing the old.
    site.script_delay_ms.store(0, Ordering::SeqCst);
    let mut recovered = None;
    for _ in 0..20 {
        match r.pass().await {
            Ok(c) => {
                recovered = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    let recovered = recovered.expect("the pass after the kill recovers");
    assert_eq!(recovered.changed, 1, "{recovered:?}");
    let all = texts(&service, "web");
    assert!(
        all.iter().any(|t| t.contains("inscription wave")),
        "{all:?}"
    );
    assert!(!all.iter().any(|t| t.contains("Hashprice")), "{all:?}");
    assert!(renderer.restarts() >= 1 || renderer.browser_pids() != pids);
    renderer.shutdown().await;
}
