//! `render = true` on a `urls` source: the page is loaded in headless Chromium (the
//! `impressox-browser` pool the X scraper uses, with `[scraper.browser]`'s settings) and
//! the rendered DOM's HTML is what gets chunked, so text a page's JavaScript writes is
//! indexed.
//!
//! **The SSRF guard** (`crate::net`) applies three times. Before navigating, the URL's
//! host is checked exactly as for a plain fetch (a literal is vetted, a name resolved and
//! every answer vetted); a refused page is never opened. Then, unless the source sets
//! `allow_private_addresses`, its browser context carries a [`RequestFilter`] that puts
//! the same check on every request the page makes (the document, subresources, `fetch()`,
//! each redirect hop) before Chromium sends it; a refused one fails with `AccessDenied`.
//! And that context's every connection goes through a [`GuardedProxy`] of the source's
//! own (loopback taken off Chromium's bypass list), which resolves each name once, vets
//! the answers and connects to those addresses itself: Chromium never resolves a name,
//! so a rebinding answer cannot reach it, and WebSockets, which the filter does not see,
//! are vetted there. WebRTC's UDP does not go through proxies: the pool's Chromium runs
//! with `--webrtc-ip-handling-policy=disable_non_proxied_udp` (WebRTC may only use TCP
//! through the proxy) and `--disable-quic` (no HTTP/3 or WebTransport over UDP). What is
//! still open is written down in docs/design/rag.md §22.
//!
//! **Failures**: a browser that died, a page that did not load, a refused request for the
//! document itself, a document answered with a status other than 2xx (as for a plain
//! fetch): each is that page's failure for this pass (its stored chunks stay, the next
//! interval retries), never the worker's. The pool relaunches a dead Chromium
//! and the source's context re-creates itself in it on the next page.
//!
//! The pool is started on the first rendered page (nothing is launched for sources that
//! do not render), in a profile root of its own (`data_dir/browser-rag`), with one browser,
//! one page per source, and at least the Image, Media and Font types blocked: a rendered
//! text does not need them, and the blocking is what gives every page the Fetch domain
//! the filter rides on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};
use impressox_browser::{
    AccountContext, BrowserPool, ContextSpec, FilterFuture, PoolConfig, ProxySpec, RequestFilter,
};
use tokio::sync::{Mutex, OnceCell};

use crate::net::Outbound;
use crate::net::proxy::{GuardedProxy, ProxyLimits};
use crate::rag::service::SourceDocument;

/// How long a rendered page's document must stay the same size before it is read: its
/// scripts have filled it by then (a `fetch()` on a slow API may need longer; the step
/// timeout, `[scraper.capture] step_timeout_secs`, caps the wait).
const QUIET: Duration = Duration::from_millis(500);

/// The resource types a rendering pool always blocks (see the module docs).
const ALWAYS_BLOCKED: [&str; 3] = ["Image", "Media", "Font"];

/// Chromium switches of a rendering pool: traffic that would bypass the proxy is turned
/// off (WebRTC's own UDP, QUIC; see the module docs). Chromium 148 obeys
/// `webrtc-ip-handling-policy` and ignores the `force-` spelling (measured: STUN packets
/// to a loopback socket, 5 with `force-` alone, 0 with the other); both are passed, for
/// builds that read only the older one.
const ALWAYS_ARGS: [&str; 3] = [
    "webrtc-ip-handling-policy=disable_non_proxied_udp",
    "force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "disable-quic",
];

/// Chromium's bypass list for the guarded contexts: `<-loopback>` removes the implicit
/// rule that sends `localhost`, `127.0.0.1` and `[::1]` around the proxy.
const BYPASS_NOTHING: &str = "<-loopback>";

/// A source's browser context and, when it is guarded, the proxy it connects through
/// (which lives as long as the context).
struct SourceContext {
    ctx: Arc<AccountContext>,
    proxy: Option<GuardedProxy>,
}

/// The rag worker's browser pool and one context per rendering source.
pub struct Renderer {
    cfg: PoolConfig,
    pool: OnceCell<BrowserPool>,
    contexts: Mutex<HashMap<String, SourceContext>>,
}

impl Renderer {
    /// A renderer launching browsers with `cfg` (adjusted as the module docs say) when
    /// the first page is rendered.
    pub fn new(mut cfg: PoolConfig) -> Renderer {
        for t in ALWAYS_BLOCKED {
            if !cfg.block_resources.iter().any(|b| b == t) {
                cfg.block_resources.push(t.to_string());
            }
        }
        for a in ALWAYS_ARGS {
            if !cfg.extra_args.iter().any(|x| x == a) {
                cfg.extra_args.push(a.to_string());
            }
        }
        cfg.proxy_bypass_list = BYPASS_NOTHING.to_string();
        cfg.browsers = 1;
        cfg.pages_per_account = 1;
        Renderer {
            cfg,
            pool: OnceCell::new(),
            contexts: Mutex::new(HashMap::new()),
        }
    }

    /// The renderer of a host's configuration: `[scraper.browser]` and `[scraper.capture]`
    /// settings, profiles under `data_dir/browser-rag`.
    pub fn from_config(config: &crate::config::Config) -> Renderer {
        let mut cfg = crate::scraper::worker::pool_config(config);
        cfg.profile_root = config.data_dir().join("browser-rag");
        Renderer::new(cfg)
    }

    async fn pool(&self) -> Result<&BrowserPool> {
        self.pool
            .get_or_try_init(|| BrowserPool::start(self.cfg.clone()))
            .await
            .map_err(|e| anyhow!("starting the browser for rendered pages: {e}"))
    }

    /// Process ids of the running browsers (tests, metrics).
    pub fn browser_pids(&self) -> Vec<u32> {
        self.pool
            .get()
            .map(BrowserPool::browser_pids)
            .unwrap_or_default()
    }

    /// Times a dead browser was relaunched.
    pub fn restarts(&self) -> u64 {
        self.pool.get().map(BrowserPool::restarts).unwrap_or(0)
    }

    /// The browser context of `source`, created on first use; unless the source allows
    /// private addresses, filtered by `client`'s guard and connected through a proxy
    /// vetting with the same guard.
    async fn context(
        &self,
        source: &str,
        client: &Outbound,
        allow_private: bool,
    ) -> Result<Arc<AccountContext>> {
        let mut contexts = self.contexts.lock().await;
        if let Some(sc) = contexts.get(source) {
            return Ok(sc.ctx.clone());
        }
        let pool = self.pool().await?;
        let mut spec = ContextSpec {
            key: format!("rag:{source}"),
            ..ContextSpec::default()
        };
        let (ctx, proxy) = if allow_private {
            (pool.context(spec).await, None)
        } else {
            let guard = client.shared_guard();
            let proxy = GuardedProxy::start(guard.clone(), ProxyLimits::default())
                .await
                .map_err(|e| anyhow!("starting the rendering proxy: {e}"))?;
            spec.proxy = Some(ProxySpec {
                server: proxy.url(),
                credentials: None,
            });
            let filter = RequestFilter::new(move |url: String| -> FilterFuture {
                let guard = guard.clone();
                Box::pin(async move {
                    let parsed = reqwest::Url::parse(&url).map_err(|e| format!("{e}"))?;
                    match parsed.scheme() {
                        // Not network requests: the page's own inline content.
                        "data" | "blob" | "about" => Ok(()),
                        _ => guard.check_url(&parsed).await.map_err(|e| e.to_string()),
                    }
                })
            });
            (pool.filtered_context(spec, filter).await, Some(proxy))
        };
        let ctx = Arc::new(ctx.map_err(|e| anyhow!("creating the browser context: {e}"))?);
        contexts.insert(
            source.to_string(),
            SourceContext {
                ctx: ctx.clone(),
                proxy,
            },
        );
        Ok(ctx)
    }

    /// Destinations `source`'s rendering proxy refused so far (`None`: the source has no
    /// guarded context yet).
    pub async fn proxy_refusals(&self, source: &str) -> Option<u64> {
        let contexts = self.contexts.lock().await;
        contexts
            .get(source)
            .and_then(|sc| sc.proxy.as_ref())
            .map(|p| {
                p.counts()
                    .refused
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
    }

    /// Loads `url` in the source's context and returns the rendered DOM's HTML as the
    /// page's document. The host is checked by the guard first; nothing is opened if it
    /// is refused.
    pub async fn render(
        &self,
        source: &str,
        client: &Outbound,
        allow_private: bool,
        url: &str,
    ) -> Result<SourceDocument> {
        let parsed = reqwest::Url::parse(url).map_err(|e| anyhow!("{url}: {e}"))?;
        client
            .shared_guard()
            .check_url(&parsed)
            .await
            .map_err(|e| anyhow!("{url}: {e}"))?;
        let ctx = self.context(source, client, allow_private).await?;
        let mut page = ctx
            .lease()
            .await
            .map_err(|e| anyhow!("{url}: the browser: {e}"))?;
        let (_, html) = page
            .render(url, QUIET)
            .await
            .map_err(|e| anyhow!("{url}: rendering: {e}"))?;
        // As for a plain fetch, an error page is not the page: a 404, a site's 5xx, or the
        // rendering proxy's 403 for a document whose name rebound to an internal address.
        let status = page
            .document_status()
            .await
            .map_err(|e| anyhow!("{url}: rendering: {e}"))?;
        if let Some(status) = status.filter(|s| !(200..300).contains(s)) {
            return Err(anyhow!("{url}: HTTP {status}"));
        }
        Ok(SourceDocument {
            id: url.to_string(),
            text: html,
            media_type: "text/html".into(),
            metadata: vec![("url".into(), url.to_string())],
            url: Some(url.to_string()),
            time_ms: None,
        })
    }

    /// Closes the contexts and the browsers (worker stop, end of `rag ingest`).
    pub async fn shutdown(&self) {
        let contexts: Vec<_> = self.contexts.lock().await.drain().collect();
        for (_, sc) in contexts {
            if let Ok(ctx) = Arc::try_unwrap(sc.ctx) {
                ctx.close().await;
            }
            // The proxy stops as it is dropped, after its context.
            drop(sc.proxy);
        }
        if let Some(pool) = self.pool.get() {
            pool.shutdown().await;
        }
    }
}
