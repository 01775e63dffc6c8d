//! `AccountContext`: one account's browser context (own cookie jar, own proxy), its cookies in
//! and out, and its ≤ `pages_per_account` pages (docs/design/x-scraper.md §2.4).
//!
//! Crash recovery: the context remembers its spec and the cookies it last knew (the last
//! `set_cookies`, or the last successful `cookies()` read). When the browser it lived in is gone,
//! the next `lease()` / `cookies()` / `set_cookies()` / `clear_cookies()` re-creates it in the
//! slot's new browser with the same proxy and those cookies, so the scraper only retries the one
//! step that failed with `BrowserError::Gone`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::network::CookieParam;
use chromiumoxide::cdp::browser_protocol::storage::{
    ClearCookiesParams, GetCookiesParams, SetCookiesParams,
};
use chromiumoxide::cdp::browser_protocol::target::CreateBrowserContextParams;
use tokio::sync::Semaphore;

use crate::cookies::StoredCookie;
use crate::error::{BrowserError, cdp};
use crate::filter::RequestFilter;
use crate::launch::Live;
use crate::page::{PageEntry, PageHome, PageLease, PageOwner};
use crate::slots::PoolInner;
use crate::sync::lock;

/// What an account's context is made of.
#[derive(Debug, Clone, Default)]
pub struct ContextSpec {
    /// The account (username); used in logs only.
    pub key: String,
    /// The account's proxy; `None`: direct.
    pub proxy: Option<ProxySpec>,
    /// Cookies to start with (a stored session).
    pub cookies: Vec<StoredCookie>,
}

/// A proxy for one context. Credentials are answered to the proxy's `407` challenges and never
/// put into a URL or a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxySpec {
    /// `scheme://host:port` (`http://`, `https://`, `socks5://`), without credentials.
    pub server: String,
    /// `(username, password)` for the proxy's Basic challenge.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for ProxySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxySpec")
            .field("server", &self.server)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl ProxySpec {
    fn check(&self) -> Result<(), BrowserError> {
        if self.server.contains('@') {
            // Do not echo the server: it may hold the credentials.
            return Err(BrowserError::Proxy(
                "the proxy server URL must not contain credentials; pass them in \
                 ProxySpec::credentials"
                    .into(),
            ));
        }
        if !self.server.contains("://") {
            return Err(BrowserError::Proxy(format!(
                "proxy server {:?} must be scheme://host:port",
                self.server
            )));
        }
        Ok(())
    }
}

/// One account's browser context. Dropping it without [`AccountContext::close`] disposes the
/// context in the background.
pub struct AccountContext {
    inner: Arc<CtxInner>,
}

impl fmt::Debug for AccountContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountContext")
            .field("key", &self.inner.home.key)
            .field("slot", &self.inner.slot)
            .field("proxy", &self.inner.proxy)
            .finish()
    }
}

pub(crate) struct CtxInner {
    /// What the context's pages share with it (pool, account key, idle pages, closed flag).
    home: PageHome,
    pub(crate) proxy: Option<ProxySpec>,
    /// Vets every request of the context's pages (see `filter.rs`).
    filter: Option<RequestFilter>,
    slot: usize,
    permits: Arc<Semaphore>,
    state: tokio::sync::Mutex<CtxState>,
}

impl PageOwner for CtxInner {
    fn home(&self) -> &PageHome {
        &self.home
    }
}

struct CtxState {
    live: Arc<Live>,
    id: BrowserContextId,
    /// The cookies to restore after a crash.
    known: Vec<StoredCookie>,
}

impl AccountContext {
    /// Creates the context in `slot`'s browser. On failure the slot's place is given back.
    pub(crate) async fn create(
        pool: Arc<PoolInner>,
        slot: usize,
        spec: ContextSpec,
        filter: Option<RequestFilter>,
    ) -> Result<AccountContext, BrowserError> {
        let res = async {
            if let Some(p) = &spec.proxy {
                p.check()?;
            }
            let params = to_params(&spec.cookies)?;
            let live = pool.ensure_live(slot).await?;
            let id = create_in(&pool, &live, spec.proxy.as_ref(), &params).await?;
            Ok::<_, BrowserError>(CtxState {
                live,
                id,
                known: spec.cookies.clone(),
            })
        }
        .await;
        let state = match res {
            Ok(s) => s,
            Err(e) => {
                pool.release(slot);
                return Err(e);
            }
        };
        let permits = Arc::new(Semaphore::new(pool.cfg.pages_per_account));
        Ok(AccountContext {
            inner: Arc::new(CtxInner {
                home: PageHome {
                    pool,
                    key: spec.key,
                    idle: Mutex::new(Vec::new()),
                    closed: AtomicBool::new(false),
                },
                proxy: spec.proxy,
                filter,
                slot,
                permits,
                state: tokio::sync::Mutex::new(state),
            }),
        })
    }

    /// A page of this context, for one run at a time. Waits while `pages_per_account` leases
    /// are out. Reuses a returned page when it is still healthy.
    pub async fn lease(&self) -> Result<PageLease, BrowserError> {
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| BrowserError::Gone)?;
        let inner = &self.inner;
        let entry = inner
            .retrying(|live: Arc<Live>, id: BrowserContextId| async move {
                loop {
                    let next = lock(&inner.home.idle).pop();
                    match next {
                        Some(e)
                            if Arc::ptr_eq(&e.live, &live)
                                && e.reusable(inner.home.pool.cfg.page_max_uses) =>
                        {
                            return Ok(e);
                        }
                        Some(e) => e.discard(),
                        None => break,
                    }
                }
                PageEntry::create(
                    &inner.home.pool,
                    &live,
                    &id,
                    inner.proxy.as_ref().and_then(|p| p.credentials.as_ref()),
                    inner.filter.as_ref(),
                )
                .await
            })
            .await?;
        Ok(PageLease::new(entry, self.inner.clone(), permit))
    }

    /// The context's cookies, read from the browser (and remembered for crash recovery).
    pub async fn cookies(&self) -> Result<Vec<StoredCookie>, BrowserError> {
        let inner = &self.inner;
        let mut st = inner.state.lock().await;
        let cookies = inner
            .retrying_locked(
                &mut st,
                |live: Arc<Live>, id: BrowserContextId| async move {
                    let b = live.browser.read().await;
                    let get = GetCookiesParams {
                        browser_context_id: Some(id.clone()),
                    };
                    let res =
                        tokio::time::timeout(inner.home.pool.cfg.request_timeout, b.execute(get))
                            .await
                            .map_err(|_| BrowserError::Timeout("reading cookies".into()))?
                            .map_err(|e| cdp("reading cookies", e))?;
                    Ok(res
                        .result
                        .cookies
                        .iter()
                        .map(StoredCookie::from_cdp)
                        .collect::<Vec<_>>())
                },
            )
            .await?;
        st.known = cookies.clone();
        Ok(cookies)
    }

    /// Adds (or replaces, by name, domain and path) cookies in the context's jar.
    pub async fn set_cookies(&self, cookies: &[StoredCookie]) -> Result<(), BrowserError> {
        let params = to_params(cookies)?;
        let params = &params;
        let inner = &self.inner;
        let mut st = inner.state.lock().await;
        inner
            .retrying_locked(
                &mut st,
                |live: Arc<Live>, id: BrowserContextId| async move {
                    set_in(&inner.home.pool, &live, &id, params).await
                },
            )
            .await?;
        for c in cookies {
            st.known
                .retain(|k| !(k.name == c.name && k.domain == c.domain && k.path == c.path));
            st.known.push(c.clone());
        }
        Ok(())
    }

    /// Empties the context's jar (e.g. before a fresh login).
    pub async fn clear_cookies(&self) -> Result<(), BrowserError> {
        let inner = &self.inner;
        let mut st = inner.state.lock().await;
        inner
            .retrying_locked(
                &mut st,
                |live: Arc<Live>, id: BrowserContextId| async move {
                    let b = live.browser.read().await;
                    let clear = ClearCookiesParams {
                        browser_context_id: Some(id.clone()),
                    };
                    tokio::time::timeout(inner.home.pool.cfg.request_timeout, b.execute(clear))
                        .await
                        .map_err(|_| BrowserError::Timeout("clearing cookies".into()))?
                        .map_err(|e| cdp("clearing cookies", e))?;
                    Ok(())
                },
            )
            .await?;
        st.known.clear();
        Ok(())
    }

    /// Disposes the context (and its pages) in the browser.
    pub async fn close(self) {
        self.inner.home.closed.store(true, Ordering::SeqCst);
        let idle = std::mem::take(&mut *lock(&self.inner.home.idle));
        drop(idle);
        let st = self.inner.state.lock().await;
        if !st.live.is_gone() {
            let b = st.live.browser.read().await;
            match tokio::time::timeout(
                self.inner.home.pool.cfg.request_timeout,
                b.dispose_browser_context(st.id.clone()),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(key = %self.inner.home.key, error = %e, "disposing a browser context")
                }
                Err(_) => {
                    tracing::debug!(key = %self.inner.home.key, "disposing a browser context timed out")
                }
            }
        }
    }
}

impl CtxInner {
    /// Runs `op` on the current context; when it fails because the browser died, re-creates the
    /// context in the new browser and runs it once more.
    ///
    /// `op` gets owned handles (the live browser, the context id), not `&CtxState`: an async
    /// closure over a borrowed argument makes the caller's future `Send` only for one lifetime,
    /// and the host spawns these futures on a multi-threaded runtime.
    async fn retrying<T, F, Fut>(&self, op: F) -> Result<T, BrowserError>
    where
        F: Fn(Arc<Live>, BrowserContextId) -> Fut,
        Fut: std::future::Future<Output = Result<T, BrowserError>>,
    {
        let mut st = self.state.lock().await;
        self.retrying_locked(&mut st, op).await
    }

    async fn retrying_locked<T, F, Fut>(&self, st: &mut CtxState, op: F) -> Result<T, BrowserError>
    where
        F: Fn(Arc<Live>, BrowserContextId) -> Fut,
        Fut: std::future::Future<Output = Result<T, BrowserError>>,
    {
        if self.home.closed.load(Ordering::SeqCst) || self.home.pool.is_shut() {
            return Err(BrowserError::Gone);
        }
        self.ensure_current(st).await?;
        match op(st.live.clone(), st.id.clone()).await {
            Ok(v) => Ok(v),
            Err(e) => {
                if st.live.is_gone() || !st.live.check(Some(self.home.pool.probe_timeout())).await {
                    tracing::warn!(key = %self.home.key, "browser died under the context; re-creating it");
                    self.ensure_current(st).await?;
                    op(st.live.clone(), st.id.clone()).await
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Moves the context to the slot's current browser if the one it lived in is gone.
    async fn ensure_current(&self, st: &mut CtxState) -> Result<(), BrowserError> {
        // A cheap local check (handler verdict, exit status): a browser killed a moment ago
        // must not hand out its dead pages.
        if !st.live.is_gone() && st.live.check(None).await {
            return Ok(());
        }
        let live = self.home.pool.ensure_live(self.slot).await?;
        let params = to_params(&st.known)?;
        let id = create_in(&self.home.pool, &live, self.proxy.as_ref(), &params).await?;
        // Pages of the old browser are useless now.
        let stale = std::mem::take(&mut *lock(&self.home.idle));
        drop(stale);
        tracing::info!(key = %self.home.key, generation = live.generation, cookies = st.known.len(), "context re-created after a browser restart");
        st.live = live;
        st.id = id;
        Ok(())
    }
}

impl Drop for CtxInner {
    fn drop(&mut self) {
        self.home.pool.release(self.slot);
        if self.home.closed.load(Ordering::SeqCst) {
            return;
        }
        // Dropped without close(): dispose in the background when a runtime is there.
        let st = self.state.get_mut();
        if st.live.is_gone() {
            return;
        }
        let (live, id) = (st.live.clone(), st.id.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let b = live.browser.read().await;
                let _ = b.dispose_browser_context(id).await;
            });
        }
    }
}

fn to_params(cookies: &[StoredCookie]) -> Result<Vec<CookieParam>, BrowserError> {
    cookies.iter().map(StoredCookie::to_param).collect()
}

/// `Target.createBrowserContext` with the proxy, then the cookies.
async fn create_in(
    pool: &PoolInner,
    live: &Live,
    proxy: Option<&ProxySpec>,
    cookies: &[CookieParam],
) -> Result<BrowserContextId, BrowserError> {
    let mut p = CreateBrowserContextParams::builder();
    if let Some(proxy) = proxy {
        p = p.proxy_server(proxy.server.clone());
        if !pool.cfg.proxy_bypass_list.is_empty() {
            p = p.proxy_bypass_list(pool.cfg.proxy_bypass_list.clone());
        }
    }
    let id = {
        let b = live.browser.read().await;
        tokio::time::timeout(
            pool.cfg.request_timeout,
            b.create_browser_context(p.build()),
        )
        .await
        .map_err(|_| BrowserError::Timeout("creating a browser context".into()))?
        .map_err(|e| cdp("creating a browser context", e))?
    };
    if !cookies.is_empty() {
        set_in(pool, live, &id, cookies).await?;
    }
    Ok(id)
}

/// `Storage.setCookies` for one context (the browser-level call, so no page is needed).
async fn set_in(
    pool: &PoolInner,
    live: &Live,
    id: &BrowserContextId,
    cookies: &[CookieParam],
) -> Result<(), BrowserError> {
    let b = live.browser.read().await;
    let mut set = SetCookiesParams::new(cookies.to_vec());
    set.browser_context_id = Some(id.clone());
    tokio::time::timeout(pool.cfg.request_timeout, b.execute(set))
        .await
        .map_err(|_| BrowserError::Timeout("setting cookies".into()))?
        .map_err(|e| cdp("setting cookies", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_debug_hides_credentials() {
        let p = ProxySpec {
            server: "http://127.0.0.1:8080".into(),
            credentials: Some(("user".into(), "hunter2".into())),
        };
        let s = format!("{p:?}");
        assert!(
            s.contains("127.0.0.1:8080") && !s.contains("hunter2") && !s.contains("user"),
            "{s}"
        );
    }

    #[test]
    fn proxy_urls_with_credentials_are_refused_without_echoing_them() {
        let p = ProxySpec {
            server: "http://user:hunter2@127.0.0.1:8080".into(),
            credentials: None,
        };
        let e = p.check().unwrap_err();
        assert!(e.is_proxy());
        assert!(!e.to_string().contains("hunter2"));
        let p = ProxySpec {
            server: "127.0.0.1:8080".into(),
            credentials: None,
        };
        assert!(
            p.check()
                .unwrap_err()
                .to_string()
                .contains("scheme://host:port")
        );
    }
}
