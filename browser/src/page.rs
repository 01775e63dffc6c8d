//! `PageLease`: one page of an account context, used by one run at a time — navigate and
//! capture, scroll and capture, the DOM helpers the login driver needs, and recycling
//! (docs/design/x-scraper.md §2.5, §2.7).
//!
//! A page is set up before its first navigation: user agent, service workers bypassed (every
//! GraphQL fetch must be a plain page request to be seen), the capture task, and — when the
//! browser intercepts — the paused-request task and the proxy's credentials. Dropping a lease
//! returns the page to its context; it is closed instead after `page_max_uses` navigations, a
//! renderer crash, or a step that timed out (its state is then unknown).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::browser::BrowserContextId;
use chromiumoxide::cdp::browser_protocol::network::SetBypassServiceWorkerParams;
use chromiumoxide::cdp::browser_protocol::page::NavigateParams;
use chromiumoxide::cdp::browser_protocol::target::CreateTargetParams;
use chromiumoxide::error::CdpError;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use crate::capture::{Capture, Expect, Recorder, is_login_url};
use crate::error::{BrowserError, cdp, is_connection_error};
use crate::filter::RequestFilter;
use crate::intercept;
use crate::launch::Live;
use crate::slots::PoolInner;
use crate::sync::lock;

/// How often a step re-checks the page's URL and the capture, besides being woken by events.
const TICK: Duration = Duration::from_millis(50);
/// How often `wait_for_any` evaluates the selectors.
const POLL: Duration = Duration::from_millis(100);

/// A page and the tasks that serve it.
pub(crate) struct PageEntry {
    page: Page,
    pub(crate) live: Arc<Live>,
    recorder: Recorder,
    interceptor: Option<JoinHandle<()>>,
    /// Navigations done with this page.
    uses: u32,
    /// A step timed out on it: its state is unknown, replace it.
    spoiled: bool,
}

impl PageEntry {
    /// Opens a page in the context and prepares it (see the module docs).
    pub(crate) async fn create(
        pool: &PoolInner,
        live: &Arc<Live>,
        ctx: &BrowserContextId,
        proxy_credentials: Option<&(String, String)>,
        filter: Option<&RequestFilter>,
    ) -> Result<PageEntry, BrowserError> {
        let rt = pool.cfg.request_timeout;
        if filter.is_some() && !live.intercepting {
            // Without the Fetch domain nothing would be vetted: refuse rather than render
            // unguarded.
            return Err(BrowserError::Launch(
                "a request filter needs request interception: block_resources must not be empty"
                    .into(),
            ));
        }
        let page = {
            let b = live.browser.read().await;
            let mut t = CreateTargetParams::new("about:blank");
            t.browser_context_id = Some(ctx.clone());
            // Each page in its own window: two pages of one account are two tabs of one
            // window otherwise, and Chromium stops rendering the tab that is not in front
            // (no scroll events, input that never lands), which ends a run after page 1.
            t.new_window = Some(true);
            tokio::time::timeout(rt, b.new_page(t))
                .await
                .map_err(|_| BrowserError::Timeout("opening a page".into()))?
                .map_err(|e| cdp("opening a page", e))?
        };
        let setup = async {
            // Listeners first: nothing the page does may be missed.
            let recorder = Recorder::start(&page, pool.cfg.max_body_bytes, rt).await?;
            let interceptor = if live.intercepting {
                Some(intercept::start(&page, pool.blocked.clone(), filter.cloned()).await?)
            } else {
                None
            };
            if let Some(creds) = proxy_credentials {
                intercept::authenticate(&page, creds).await?;
            }
            // Both are round trips to Chromium, so Fetch.enable (queued by authenticate) is in
            // place before the first navigation.
            page.set_user_agent(live.user_agent.as_str()).await?;
            page.execute(SetBypassServiceWorkerParams::new(true))
                .await?;
            Ok::<_, CdpError>((recorder, interceptor))
        };
        let (recorder, interceptor) = match tokio::time::timeout(rt, setup).await {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), page.close()).await;
                return Err(cdp("preparing a page", e));
            }
            Err(_) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), page.close()).await;
                return Err(BrowserError::Timeout("preparing a page".into()));
            }
        };
        live.watch_crash(
            page.target_id().inner(),
            recorder.crashed.clone(),
            recorder.changed.clone(),
        );
        Ok(PageEntry {
            page,
            live: live.clone(),
            recorder,
            interceptor,
            uses: 0,
            spoiled: false,
        })
    }

    /// Whether the page may serve another lease.
    pub(crate) fn reusable(&self, max_uses: u32) -> bool {
        !self.spoiled
            && !self.recorder.crashed.load(Ordering::SeqCst)
            && self.uses < max_uses
            && !self.live.is_gone()
    }

    /// Drops the page (closed in the background, see `Drop`).
    pub(crate) fn discard(self) {}
}

impl Drop for PageEntry {
    fn drop(&mut self) {
        if let Some(t) = self.interceptor.take() {
            t.abort();
        }
        self.live.unwatch_crash(self.page.target_id().inner());
        if self.live.is_gone() {
            return;
        }
        let page = self.page.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), page.close()).await;
            });
        }
    }
}

/// What a context shares with its pages: where a returned page goes, and whether the
/// context still takes pages back.
pub(crate) struct PageHome {
    pub(crate) pool: Arc<PoolInner>,
    /// The account's key, for logs.
    pub(crate) key: String,
    /// Pages returned by dropped leases, ready for the next lease. A std mutex: `Drop` of a
    /// lease must be able to push without awaiting.
    pub(crate) idle: Mutex<Vec<PageEntry>>,
    pub(crate) closed: AtomicBool,
}

/// The context a lease belongs to, as its pages see it. A lease holds its owner, so the
/// context outlives its leased pages; the owner's own type (`context::CtxInner`) stays
/// above this file.
pub(crate) trait PageOwner: Send + Sync {
    fn home(&self) -> &PageHome;
}

/// One page of an account context, held by one run. Drop it to give the page back.
pub struct PageLease {
    entry: Option<PageEntry>,
    ctx: Arc<dyn PageOwner>,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for PageLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageLease")
            .field("account", &self.ctx.home().key)
            .field("uses", &self.entry.as_ref().map(|e| e.uses))
            .finish()
    }
}

impl Drop for PageLease {
    fn drop(&mut self) {
        let Some(entry) = self.entry.take() else {
            return;
        };
        if !self.ctx.home().closed.load(Ordering::SeqCst)
            && entry.reusable(self.ctx.home().pool.cfg.page_max_uses)
        {
            lock(&self.ctx.home().idle).push(entry);
        }
        // Else the entry drops here and its page is closed.
    }
}

impl PageLease {
    pub(crate) fn new(
        entry: PageEntry,
        ctx: Arc<dyn PageOwner>,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        PageLease {
            entry: Some(entry),
            ctx,
            _permit: permit,
        }
    }

    fn entry(&self) -> Result<&PageEntry, BrowserError> {
        match &self.entry {
            Some(e) if !e.live.is_gone() => Ok(e),
            _ => Err(BrowserError::Gone),
        }
    }

    fn entry_mut(&mut self) -> Result<&mut PageEntry, BrowserError> {
        match &mut self.entry {
            Some(e) if !e.live.is_gone() => Ok(e),
            _ => Err(BrowserError::Gone),
        }
    }

    fn cfg(&self) -> &crate::config::PoolConfig {
        &self.ctx.home().pool.cfg
    }

    /// Turns a failed command into `Gone` when the browser turns out to be dead.
    async fn failed(&self, what: &str, e: CdpError) -> BrowserError {
        let Some(entry) = &self.entry else {
            return BrowserError::Gone;
        };
        if entry.live.is_gone()
            || (is_connection_error(&e)
                && !entry
                    .live
                    .check(Some(self.ctx.home().pool.probe_timeout()))
                    .await)
        {
            return BrowserError::Gone;
        }
        cdp(what, e)
    }

    /// Navigates to `url` and captures the step: matching responses until the expected
    /// operations arrived and the page settled, a login/lock URL, or the step timeout.
    pub async fn open(
        &mut self,
        url: &str,
        expect: Expect,
        with_html: bool,
    ) -> Result<Capture, BrowserError> {
        let deadline = Instant::now() + self.cfg().step_timeout;
        let step_timeout = self.cfg().step_timeout;
        let e = self.entry_mut()?;
        e.uses += 1;
        e.recorder.with(|s| s.reset(Instant::now()));
        let crashed = e.recorder.crashed.clone();
        let changed = e.recorder.changed.clone();
        // The navigation answers only after `load`; a renderer crash never gets there, so it is
        // watched alongside instead of waiting out the step timeout.
        let crash = async {
            loop {
                let notified = changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if crashed.load(Ordering::SeqCst) {
                    return;
                }
                notified.await;
            }
        };
        let nav = tokio::select! {
            r = tokio::time::timeout(step_timeout, e.page.execute(NavigateParams::new(url))) => Some(r),
            () = crash => None,
        };
        let res = match nav {
            None => {
                return Err(BrowserError::Navigation(format!(
                    "opening {url}: the page's renderer crashed; the page will be replaced"
                )));
            }
            Some(Err(_)) => {
                e.spoiled = true;
                return Err(BrowserError::Timeout(format!(
                    "opening {url}: the page did not load within the step timeout"
                )));
            }
            Some(Ok(Err(err))) => {
                e.spoiled = true;
                return Err(self.failed(&format!("opening {url}"), err).await);
            }
            Some(Ok(Ok(r))) => r.result,
        };
        if let Some(text) = res.error_text {
            return Err(navigation_error(url, &text));
        }
        if let Some(loader) = &res.loader_id {
            e.recorder.with(|s| s.set_loader(loader.inner()));
        }
        let timed_out = match self.wait_step(&expect, deadline).await? {
            StepEnd::Settled | StepEnd::Login => false,
            StepEnd::TimedOut => true,
        };
        self.finish(with_html, timed_out, false).await
    }

    /// Navigates to `url` for its rendered DOM (any site, no capture expected): after the
    /// load, waits until `document.readyState` is `complete` and the document's size has
    /// not changed for `quiet` (scripts that fill the page have run), at most until the step
    /// timeout, and returns the main frame's final URL and its HTML.
    pub async fn render(
        &mut self,
        url: &str,
        quiet: Duration,
    ) -> Result<(String, String), BrowserError> {
        let deadline = Instant::now() + self.cfg().step_timeout;
        self.open(url, Expect::default(), false).await?;
        let probe = "document.readyState === 'complete' ? \
                     document.documentElement.outerHTML.length : -1";
        let mut last = -2i64;
        let mut since = Instant::now();
        loop {
            let e = self.entry()?;
            let now_len = match e.page.evaluate(probe).await {
                Ok(v) => v.into_value::<i64>().unwrap_or(-1),
                Err(err) if is_connection_error(&err) => {
                    let err = self.failed("reading the rendered page", err).await;
                    if err.is_gone() {
                        return Err(err);
                    }
                    -1
                }
                // A navigation by the page's script replaces the execution context.
                Err(_) => -1,
            };
            let now = Instant::now();
            if now_len != last {
                last = now_len;
                since = now;
            } else if now_len >= 0 && now.duration_since(since) >= quiet {
                break;
            }
            if now >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let final_url = self.main_url().await?;
        let html = self.html().await?;
        Ok((final_url, html))
    }

    /// Scrolls to the bottom and captures what the page's own script loads. When no matching
    /// request starts, nudges (up 400 px, down again) every `nudge_wait`; after `scroll_nudges`
    /// attempts (at least one) without a request it returns `end_of_timeline = true`.
    pub async fn scroll_more(
        &mut self,
        expect: Expect,
        with_html: bool,
    ) -> Result<Capture, BrowserError> {
        let attempts = self.cfg().scroll_nudges.max(1);
        let nudge_wait = self.cfg().nudge_wait;
        self.entry()?
            .recorder
            .with(|s| s.begin_step(Instant::now()));
        let mut started = false;
        for attempt in 0..attempts {
            let js = if attempt == 0 {
                SCROLL_BOTTOM.to_string()
            } else {
                format!("window.scrollBy(0, -400); {SCROLL_BOTTOM}")
            };
            self.eval_unit(&js, "scrolling").await?;
            match self.wait_started(Instant::now() + nudge_wait).await? {
                Started::Yes => {
                    started = true;
                    break;
                }
                Started::Login => return self.finish(with_html, false, false).await,
                Started::No => {}
            }
        }
        if !started {
            return self.finish(with_html, false, true).await;
        }
        let deadline = Instant::now() + self.cfg().step_timeout;
        let timed_out = matches!(self.wait_step(&expect, deadline).await?, StepEnd::TimedOut);
        self.finish(with_html, timed_out, false).await
    }

    /// Waits until one of `selectors` matches an element; `Some(index)` of the first that
    /// matches, `None` at the timeout. Polls one evaluate every 100 ms (chromiumoxide 0.9 has no
    /// `wait_for_selector`).
    pub async fn wait_for_any(
        &self,
        selectors: &[&str],
        timeout: Duration,
    ) -> Result<Option<usize>, BrowserError> {
        let sels = serde_json::to_string(selectors)
            .map_err(|e| BrowserError::Cdp(format!("encoding selectors: {e}")))?;
        let js = format!(
            "(() => {{ const s = {sels}; for (let i = 0; i < s.length; i++) \
             {{ try {{ if (document.querySelector(s[i])) return i; }} catch (e) {{}} }} return -1; }})()"
        );
        let deadline = Instant::now() + timeout;
        loop {
            let e = self.entry()?;
            match e.page.evaluate(js.as_str()).await {
                Ok(v) => {
                    if let Ok(i) = v.into_value::<i64>()
                        && i >= 0
                    {
                        return Ok(usize::try_from(i).ok());
                    }
                }
                // During a navigation the execution context comes and goes: keep polling
                // unless the browser itself is gone.
                Err(err) if is_connection_error(&err) => {
                    let err = self.failed("waiting for selectors", err).await;
                    if err.is_gone() {
                        return Err(err);
                    }
                }
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Clicks the element matching `selector` and types `text` into it, key by key (real key
    /// events, as a user would; React forms ignore a plain `value` assignment). Does not submit:
    /// see [`PageLease::press_enter`]. The text never appears in errors.
    pub async fn type_into(&self, selector: &str, text: &str) -> Result<(), BrowserError> {
        let e = self.entry()?;
        let what = format!("typing into {selector:?}");
        let el = match e.page.find_element(selector).await {
            Ok(el) => el,
            Err(err) => return Err(self.element_error(selector, err).await),
        };
        if let Err(err) = el.click().await {
            return Err(self.failed(&what, err).await);
        }
        if let Err(err) = el.type_str(text).await {
            // chromiumoxide's message names the key only for unknown characters; keep it out.
            let _ = err;
            return Err(BrowserError::Cdp(format!(
                "{what}: a key could not be typed"
            )));
        }
        Ok(())
    }

    /// Presses Enter in the element matching `selector` (submits a login step).
    pub async fn press_enter(&self, selector: &str) -> Result<(), BrowserError> {
        let e = self.entry()?;
        let el = match e.page.find_element(selector).await {
            Ok(el) => el,
            Err(err) => return Err(self.element_error(selector, err).await),
        };
        if let Err(err) = el.press_key("Enter").await {
            return Err(self
                .failed(&format!("pressing Enter in {selector:?}"), err)
                .await);
        }
        Ok(())
    }

    /// Clicks the element matching `selector`.
    pub async fn click(&self, selector: &str) -> Result<(), BrowserError> {
        let e = self.entry()?;
        let el = match e.page.find_element(selector).await {
            Ok(el) => el,
            Err(err) => return Err(self.element_error(selector, err).await),
        };
        if let Err(err) = el.click().await {
            return Err(self.failed(&format!("clicking {selector:?}"), err).await);
        }
        Ok(())
    }

    /// The `innerText` of the first element matching `selector`; `None` when there is none.
    pub async fn inner_text(&self, selector: &str) -> Result<Option<String>, BrowserError> {
        let sel = serde_json::to_string(selector)
            .map_err(|e| BrowserError::Cdp(format!("encoding selector: {e}")))?;
        let js = format!(
            "(() => {{ const e = document.querySelector({sel}); return e ? e.innerText : null; }})()"
        );
        let e = self.entry()?;
        match e.page.evaluate(js.as_str()).await {
            Ok(v) => Ok(v.into_value::<Option<String>>().unwrap_or(None)),
            Err(err) => Err(self
                .failed(&format!("reading the text of {selector:?}"), err)
                .await),
        }
    }

    /// The HTTP status of the main document's response, as the page's navigation timing
    /// reports it; `None` when it has none (`about:blank`, a `data:` page).
    pub async fn document_status(&self) -> Result<Option<u16>, BrowserError> {
        let js = "(() => { const n = performance.getEntriesByType('navigation')[0]; \
                  return n && n.responseStatus ? n.responseStatus : 0; })()";
        let e = self.entry()?;
        match e.page.evaluate(js).await {
            Ok(v) => Ok(v
                .into_value::<i64>()
                .ok()
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| *s > 0)),
            Err(err) => Err(self.failed("reading the document's status", err).await),
        }
    }

    /// The main frame's URL (after redirects).
    pub async fn current_url(&self) -> Result<String, BrowserError> {
        let e = self.entry()?;
        match e.page.url().await {
            Ok(u) => Ok(u.unwrap_or_default()),
            Err(err) => Err(self.failed("reading the page URL", err).await),
        }
    }

    /// The page's HTML (doctype and `documentElement.outerHTML`).
    pub async fn html(&self) -> Result<String, BrowserError> {
        let e = self.entry()?;
        match e.page.content().await {
            Ok(h) => Ok(h),
            Err(err) => Err(self.failed("reading the page HTML", err).await),
        }
    }

    async fn element_error(&self, selector: &str, err: CdpError) -> BrowserError {
        if is_connection_error(&err) {
            return self.failed(&format!("finding {selector:?}"), err).await;
        }
        BrowserError::Navigation(format!("no element matches {selector:?} on the page"))
    }

    async fn eval_unit(&self, js: &str, what: &str) -> Result<(), BrowserError> {
        let e = self.entry()?;
        match e.page.evaluate(js).await {
            Ok(_) => Ok(()),
            Err(err) => Err(self.failed(what, err).await),
        }
    }

    async fn main_url(&self) -> Result<String, BrowserError> {
        self.current_url().await
    }

    /// Waits for the step's end (see `open`).
    async fn wait_step(
        &mut self,
        expect: &Expect,
        deadline: Instant,
    ) -> Result<StepEnd, BrowserError> {
        let settle = self.cfg().settle;
        loop {
            let e = self.entry()?;
            let changed = e.recorder.changed.clone();
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if e.recorder.crashed.load(Ordering::SeqCst) {
                return Err(BrowserError::Navigation(
                    "the page's renderer crashed; the page will be replaced".into(),
                ));
            }
            if is_login_url(&self.main_url().await?) {
                return Ok(StepEnd::Login);
            }
            let now = Instant::now();
            if e.recorder.with(|s| s.settled(expect, settle, now)) {
                return Ok(StepEnd::Settled);
            }
            if now >= deadline {
                if let Some(e) = &mut self.entry {
                    e.spoiled = true;
                }
                return Ok(StepEnd::TimedOut);
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(TICK.min(deadline - now)) => {}
            }
        }
    }

    /// Waits until a matching request started in this step.
    async fn wait_started(&self, until: Instant) -> Result<Started, BrowserError> {
        loop {
            let e = self.entry()?;
            let changed = e.recorder.changed.clone();
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if e.recorder.with(|s| s.started()) > 0 {
                return Ok(Started::Yes);
            }
            if is_login_url(&self.main_url().await?) {
                return Ok(Started::Login);
            }
            let now = Instant::now();
            if now >= until {
                return Ok(Started::No);
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(TICK.min(until - now)) => {}
            }
        }
    }

    async fn finish(
        &mut self,
        with_html: bool,
        timed_out: bool,
        end_of_timeline: bool,
    ) -> Result<Capture, BrowserError> {
        let url = self.main_url().await?;
        let html = if with_html {
            Some(self.html().await?)
        } else {
            None
        };
        let responses = self.entry()?.recorder.with(|s| s.take_done());
        let captured_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Ok(Capture {
            url,
            html,
            responses,
            captured_at_ms,
            timed_out,
            end_of_timeline,
        })
    }
}

const SCROLL_BOTTOM: &str =
    "window.scrollTo(0, (document.scrollingElement || document.documentElement).scrollHeight)";

enum StepEnd {
    Settled,
    Login,
    TimedOut,
}

enum Started {
    Yes,
    No,
    Login,
}

/// `Page.navigate`'s `errorText`: proxy failures are the proxy's, the rest the target's.
fn navigation_error(url: &str, text: &str) -> BrowserError {
    if text.starts_with("net::ERR_PROXY_") || text.starts_with("net::ERR_TUNNEL_CONNECTION_FAILED")
    {
        BrowserError::Proxy(format!("opening {url}: {text}"))
    } else {
        BrowserError::Navigation(format!("opening {url}: {text}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_net_errors_are_proxy_errors() {
        assert!(navigation_error("http://a/", "net::ERR_PROXY_CONNECTION_FAILED").is_proxy());
        assert!(navigation_error("http://a/", "net::ERR_TUNNEL_CONNECTION_FAILED").is_proxy());
        let e = navigation_error("http://a/", "net::ERR_CONNECTION_REFUSED");
        assert!(!e.is_proxy());
        assert!(e.to_string().contains("http://a/"));
    }
}
