//! `urls` sources with `render = true`, on a real Chromium: a page whose text only its
//! JavaScript writes is indexed and found; an unchanged page is not embedded again; the
//! SSRF guard refuses a private host before the browser opens it; a browser killed
//! mid-pass fails that page for the pass and the next pass recovers. A guarded page's
//! WebSocket, its `fetch()` of a name that rebinds to an internal address, and its WebRTC
//! STUN packets reach nothing, while its text is indexed.

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

/// The internal address the guarded test refuses (where its "internal" servers listen);
/// the site is on 127.0.0.2, which the test's guard trusts as if it were public.
const SITE_IP: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// A resolver for the page's one name, `rebind.test`: the site's address for its first
/// question (what the request filter checks), the internal 127.0.0.1 after it (what a
/// rebinding DNS server answers when the browser connects).
struct RebindingLookup {
    calls: AtomicU32,
}

impl impressox_host::net::guard::Lookup for RebindingLookup {
    fn lookup(
        &self,
        host: &str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<Vec<std::net::IpAddr>>> + Send>,
    > {
        let answer = if host == "rebind.test" {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(vec![if n == 0 {
                SITE_IP
            } else {
                std::net::Ipv4Addr::LOCALHOST.into()
            }])
        } else {
            Err(std::io::Error::other(format!("{host}: not a test name")))
        };
        Box::pin(async move { answer })
    }
}

/// A page with its sentence in the HTML and a script that opens a WebSocket to the
/// internal address, fetches from `rebind.test`, and starts WebRTC against a STUN server
/// on the internal address, writing each outcome into the page.
fn guarded_page(ws_port: u16, secret_port: u16, stun_port: u16) -> String {
    format!(
        "<!doctype html><html><head><title>Hashrate</title></head><body>\
         <h1>Hashrate report</h1><p>The network hashrate set a record after the halving.</p>\
         <p id=\"ws\">ws pending</p><p id=\"fetch\">fetch pending</p>\
         <script>\
         const ws = new WebSocket('ws://127.0.0.1:{ws_port}/feed');\
         ws.onopen = () => {{ document.getElementById('ws').textContent = 'ws opened'; }};\
         ws.onerror = () => {{ document.getElementById('ws').textContent = 'ws failed'; }};\
         fetch('http://rebind.test:{secret_port}/secret').then(r => r.text())\
           .then(t => {{ document.getElementById('fetch').textContent = 'fetch got ' + t; }})\
           .catch(() => {{ document.getElementById('fetch').textContent = 'fetch failed'; }});\
         const pc = new RTCPeerConnection({{ iceServers: [{{ urls: 'stun:127.0.0.1:{stun_port}' }}] }});\
         pc.createDataChannel('x');\
         pc.createOffer().then(o => pc.setLocalDescription(o));\
         </script></body></html>"
    )
}

/// Internal servers the guarded page tries to reach, each counting what arrives.
struct Internal {
    ws_port: u16,
    ws_accepts: Arc<AtomicU32>,
    secret_port: u16,
    secret_hits: Arc<AtomicU32>,
    stun_port: u16,
    stun_packets: Arc<AtomicU32>,
}

async fn internal_servers() -> Internal {
    // A TCP listener for the WebSocket: any connection at all counts.
    let ws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_port = ws.local_addr().unwrap().port();
    let ws_accepts = Arc::new(AtomicU32::new(0));
    let count = ws_accepts.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = ws.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    // The HTTP server behind `rebind.test`.
    let secret_hits = Arc::new(AtomicU32::new(0));
    let count = secret_hits.clone();
    let app = axum::Router::new().fallback(move || {
        let count = count.clone();
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            (
                [(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
                "the-secret",
            )
        }
    });
    let secret = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let secret_port = secret.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(secret, app).await;
    });
    // A UDP socket where a STUN binding request would land.
    let stun = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let stun_port = stun.local_addr().unwrap().port();
    let stun_packets = Arc::new(AtomicU32::new(0));
    let count = stun_packets.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while stun.recv_from(&mut buf).await.is_ok() {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    Internal {
        ws_port,
        ws_accepts,
        secret_port,
        secret_hits,
        stun_port,
        stun_packets,
    }
}

/// Serves `page` at `/page` on the site's address, and at `/missing` a 404 with a body
/// (Chromium shows that body as the page; an empty 404 it fails itself).
async fn serve_on_site(page: String) -> String {
    let app = axum::Router::new()
        .route(
            "/page",
            axum::routing::get(move || {
                let page = page.clone();
                async move { axum::response::Html(page) }
            }),
        )
        .route(
            "/missing",
            axum::routing::get(|| async {
                (
                    axum::http::StatusCode::NOT_FOUND,
                    axum::response::Html("<p>No such report.</p>"),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind((SITE_IP, 0)).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarded_page_reaches_no_internal_address_by_websocket_rebinding_or_webrtc() {
    use impressox_host::net::{Outbound, OutboundPolicy};

    let _permit = browser_permit().await;
    let (h, service) = rag_host();
    let internal = internal_servers().await;
    let page = guarded_page(internal.ws_port, internal.secret_port, internal.stun_port);
    let url = format!("{}/page", serve_on_site(page.clone()).await);

    let renderer = Arc::new(Renderer::new(impressox_browser::PoolConfig {
        executable: chromium_path(),
        launch_timeout: Duration::from_secs(60),
        profile_root: h.dir.path().join("browser-rag"),
        ..Default::default()
    }));
    let cursors = Arc::new(Cursors::open(&h.config.data_dir().join("rag")));
    let lookup = Arc::new(RebindingLookup {
        calls: AtomicU32::new(0),
    });
    // The source's own guard, except that the site's loopback address counts as public.
    let client = Outbound::with_lookup(
        &OutboundPolicy {
            trusted_addresses: vec![SITE_IP],
            ..OutboundPolicy::default()
        },
        lookup.clone(),
    )
    .unwrap();
    let mut cfg = source("guarded", SourceKind::Urls, "guarded");
    cfg.urls = vec![url.clone()];
    cfg.render = true;
    let mut runner = SourceRunner::new(cfg, h.dir.path(), service.clone(), cursors, None)
        .unwrap()
        .with_client(client.clone())
        .with_renderer(renderer.clone());

    let counts = runner.pass().await.unwrap();
    assert_eq!((counts.changed, counts.failed), (1, 0), "{counts:?}");
    // Late packets and connections would show up here.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let all = texts(&service, "guarded").join("\n");
    assert!(all.contains("hashrate set a record"), "{all}");
    // The script ran: each attempt failed rather than hung.
    assert!(all.contains("ws failed"), "{all}");
    assert!(
        all.contains("fetch failed") || all.contains("fetch got impressox"),
        "{all}"
    );
    assert!(!all.contains("the-secret"), "{all}");
    assert_eq!(
        internal.ws_accepts.load(Ordering::SeqCst),
        0,
        "the WebSocket server was reached"
    );
    assert_eq!(
        internal.secret_hits.load(Ordering::SeqCst),
        0,
        "the rebound name was reached"
    );
    assert_eq!(
        internal.stun_packets.load(Ordering::SeqCst),
        0,
        "WebRTC sent UDP"
    );
    // The filter saw the public answer; the proxy asked again and refused both the
    // rebound name and the WebSocket's address.
    assert!(lookup.calls.load(Ordering::SeqCst) >= 2);
    assert!(
        renderer.proxy_refusals("guarded").await.unwrap_or(0) >= 2,
        "{:?}",
        renderer.proxy_refusals("guarded").await
    );
    // A document answered 404 (here by the site; the proxy's 403 alike) is a failed
    // page, as for a plain fetch, not text to index.
    let mut cfg = source("missing", SourceKind::Urls, "missing");
    cfg.urls = vec![url.replace("/page", "/missing")];
    cfg.render = true;
    let cursors = Arc::new(Cursors::open(&h.config.data_dir().join("rag")));
    let mut missing = SourceRunner::new(cfg, h.dir.path(), service.clone(), cursors, None)
        .unwrap()
        .with_client(client)
        .with_renderer(renderer.clone());
    let err = format!("{:#}", missing.pass().await.unwrap_err());
    assert!(
        err.contains("1 of 1 pages failed") && err.contains("HTTP 404"),
        "{err}"
    );
    assert!(texts(&service, "missing").is_empty());
    renderer.shutdown().await;

    // The premise: the same page in an unguarded browser (no proxy, no WebRTC policy)
    // does reach the WebSocket server and the STUN socket.
    let pool = impressox_browser::BrowserPool::start(impressox_browser::PoolConfig {
        executable: chromium_path(),
        launch_timeout: Duration::from_secs(60),
        profile_root: h.dir.path().join("browser-open"),
        ..Default::default()
    })
    .await
    .unwrap();
    let ctx = pool
        .context(impressox_browser::ContextSpec::default())
        .await
        .unwrap();
    let mut lease = ctx.lease().await.unwrap();
    let (_, html) = lease
        .render(&url, Duration::from_millis(500))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    drop(lease);
    ctx.close().await;
    pool.shutdown().await;
    assert!(
        html.contains("ws opened") || html.contains("ws failed"),
        "{html}"
    );
    assert!(internal.ws_accepts.load(Ordering::SeqCst) >= 1, "{html}");
    assert!(internal.stun_packets.load(Ordering::SeqCst) >= 1, "{html}");
}
