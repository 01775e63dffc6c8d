//! `render = true` on a `urls` source: the page is loaded in headless Chromium (the
//! `impressox-browser` pool the X scraper uses, with `[scraper.browser]`'s settings) and
//! the rendered DOM's HTML is what gets chunked, so text a page's JavaScript writes is
//! indexed.
//!
//! **The SSRF guard** (`crate::net`) applies twice. Before navigating, the URL's host is
//! checked exactly as for a plain fetch (a literal is vetted, a name resolved and every
//! answer vetted); a refused page is never opened. Then, unless the source sets
//! `allow_private_addresses`, its browser context carries a [`RequestFilter`] that puts
//! the same check on every request the page makes (the document, subresources, `fetch()`,
//! each redirect hop) before Chromium sends it; a refused one fails with `AccessDenied`.
//! What that leaves open (WebSockets, workers' own requests, a name that resolves
//! differently for Chromium a moment later) is written down in docs/design/rag.md.
//!
//! **Failures**: a browser that died, a page that did not load, a refused request for the
//! document itself: each is that page's failure for this pass (its stored chunks stay,
//! the next interval retries), never the worker's. The pool relaunches a dead Chromium
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
    AccountContext, BrowserPool, ContextSpec, FilterFuture, PoolConfig, RequestFilter,
};
use tokio::sync::{Mutex, OnceCell};

use crate::net::Outbound;
use crate::rag::service::SourceDocument;

/// How long a rendered page's document must stay the same size before it is read: its
/// scripts have filled it by then (a `fetch()` on a slow API may need longer; the step
/// timeout, `[scraper.capture] step_timeout_secs`, caps the wait).
const QUIET: Duration = Duration::from_millis(500);

/// The resource types a rendering pool always blocks (see the module docs).
const ALWAYS_BLOCKED: [&str; 3] = ["Image", "Media", "Font"];

/// The rag worker's browser pool and one context per rendering source.
pub struct Renderer {
    cfg: PoolConfig,
    pool: OnceCell<BrowserPool>,
    contexts: Mutex<HashMap<String, Arc<AccountContext>>>,
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

    /// The browser context of `source`, created on first use; filtered by `client`'s
    /// guard unless the source allows private addresses.
    async fn context(
        &self,
        source: &str,
        client: &Outbound,
        allow_private: bool,
    ) -> Result<Arc<AccountContext>> {
        let mut contexts = self.contexts.lock().await;
        if let Some(ctx) = contexts.get(source) {
            return Ok(ctx.clone());
        }
        let pool = self.pool().await?;
        let spec = ContextSpec {
            key: format!("rag:{source}"),
            ..ContextSpec::default()
        };
        let ctx = if allow_private {
            pool.context(spec).await
        } else {
            let guard = client.shared_guard();
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
            pool.filtered_context(spec, filter).await
        }
        .map_err(|e| anyhow!("creating the browser context: {e}"))?;
        let ctx = Arc::new(ctx);
        contexts.insert(source.to_string(), ctx.clone());
        Ok(ctx)
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
        for (_, ctx) in contexts {
            if let Ok(ctx) = Arc::try_unwrap(ctx) {
                ctx.close().await;
            }
        }
        if let Some(pool) = self.pool.get() {
            pool.shutdown().await;
        }
    }
}
