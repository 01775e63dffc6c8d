//! The account pool (design §3.7, §3.8): which account runs a target, with which browser
//! context, proxy and session; what each step's capture does to the account (budgets,
//! state); and what is persisted (`scraper:accounts` in the key-value store).
//!
//! - An account is picked when it is usable (`state::AccountRecord::usable`), its budgets
//!   allow the step's operations, one of its page permits is free (at most
//!   `pages_per_account`, never more than 2), and this host holds its store lease
//!   (`scraper:account:<username>`: several hosts never drive one account at once).
//! - Its browser context is created on first use with its sticky proxy and its stored
//!   session's cookies; closed when the account is locked, banned or refused, or when its
//!   proxy is rotated out (a context's proxy is fixed at creation).
//! - Sessions are saved after a login and after every run whose cookie jar changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use anyhow::Result;
use impressox_browser::{
    AccountContext, BrowserError, BrowserPool, Capture, ContextSpec, PageLease, ProxySpec,
};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::accounts::Account;
use super::budget::BudgetPolicy;
use super::config::ScraperConfig;
use super::login::{self, LoginOutcome};
use super::metrics::Metrics;
use super::outcome::Outcome;
use super::proxies::{Assignment, ProxyBook, ProxyUrl};
use super::session::{Session, Sessions};
use super::state::{AccountRecord, Action, State, StatePolicy, Transition};
use crate::bindings::types::ScrapeResult;
use crate::storage::Store;
use crate::util::rfc3339_ms;

const RECORDS: &str = "scraper:accounts";
/// A host's claim on an account, renewed at every step.
const ACCOUNT_LEASE_MS: u64 = 120_000;

fn now_ms() -> i64 {
    crate::util::now_ms()
}

/// One account's live state in this process.
struct Slot {
    account: Account,
    record: Mutex<AccountRecord>,
    permits: Arc<Semaphore>,
    context: tokio::sync::Mutex<Option<Arc<AccountContext>>>,
    /// Whether the context holds a session (stored cookies applied, or a login done).
    has_session: AtomicBool,
    /// Digest of the last saved cookie jar: save only what changed.
    saved_digest: Mutex<Option<String>>,
    in_flight: AtomicUsize,
    /// Held while the account logs in. Fix (seen in the log of
    /// `accounts::two_first_runs_at_once_log_in_once_and_read_to_the_end`): two runs of one
    /// account (two pages) starting without a session both drove the login form at once —
    /// two logins where one is needed, which X flags. Logins of one account are now one at a
    /// time, and a run that waited finds the session the other one made.
    login_lock: tokio::sync::Mutex<()>,
    /// Counts successful logins, so a run whose rejected session was already replaced by
    /// another run's login does not log in (and clear that new session) again.
    session_generation: AtomicU64,
}

struct Inner {
    cfg: Arc<ScraperConfig>,
    browser: BrowserPool,
    store: Arc<dyn Store>,
    sessions: Sessions,
    metrics: Arc<Metrics>,
    budget_policy: BudgetPolicy,
    state_policy: StatePolicy,
    owner: String,
    slots: Vec<Arc<Slot>>,
    proxies: Mutex<ProxyBook>,
    /// The proxy each account's current context was created with.
    context_proxy: Mutex<BTreeMap<String, Option<String>>>,
    direct_logged: AtomicBool,
}

/// The pool; cheap to clone.
#[derive(Clone)]
pub struct AccountPool {
    inner: Arc<Inner>,
}

/// An account picked for a run: holds one of its page permits until dropped.
pub struct AccountLease {
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    _permit: OwnedSemaphorePermit,
}

/// What a step's capture means for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// The session was rejected: log in once and repeat the step.
    SessionRejected,
    /// End the run.
    Stop(Outcome),
}

impl AccountPool {
    /// Build the pool: persisted records are read back (state, budgets, sticky proxy), and
    /// an account whose line changed since its record was written gets its `banned` or
    /// `login_failed` lifted.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        cfg: Arc<ScraperConfig>,
        browser: BrowserPool,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        owner: String,
        accounts: Vec<Account>,
        proxies: Vec<ProxyUrl>,
    ) -> Result<AccountPool> {
        let mut book = ProxyBook::new(
            proxies,
            cfg.limits.proxy_failures_before_rotation,
            cfg.limits.proxy_retry_after_secs,
        );
        let per_account = cfg.browser.pages_per_account.clamp(1, 2) as usize;
        let mut slots = Vec::with_capacity(accounts.len());
        for account in accounts {
            let mut record = match store.kv_get(RECORDS, &account.username).await? {
                Some(text) => serde_json::from_str(&text).unwrap_or_else(|err| {
                    tracing::warn!(account = %account.username, error = %err, "account record unreadable; starting afresh");
                    AccountRecord::new(&account.fingerprint)
                }),
                None => AccountRecord::new(&account.fingerprint),
            };
            if let Some(t) = record.update_fingerprint(&account.username, &account.fingerprint) {
                tracing::warn!("{t}");
            }
            // A login under way when the process stopped never finished.
            if record.state == State::LoggingIn {
                record.state = State::Active;
            }
            if let Some(server) = &record.proxy {
                book.restore(&account.username, server);
            }
            slots.push(Arc::new(Slot {
                account,
                record: Mutex::new(record),
                permits: Arc::new(Semaphore::new(per_account)),
                context: tokio::sync::Mutex::new(None),
                has_session: AtomicBool::new(false),
                saved_digest: Mutex::new(None),
                in_flight: AtomicUsize::new(0),
                login_lock: tokio::sync::Mutex::new(()),
                session_generation: AtomicU64::new(0),
            }));
        }
        Ok(AccountPool {
            inner: Arc::new(Inner {
                budget_policy: BudgetPolicy::from_config(&cfg.limits),
                state_policy: StatePolicy::from_config(&cfg.limits),
                sessions: Sessions::new(store.clone()),
                cfg,
                browser,
                store,
                metrics,
                owner,
                slots,
                proxies: Mutex::new(book),
                context_proxy: Mutex::new(BTreeMap::new()),
                direct_logged: AtomicBool::new(false),
            }),
        })
    }

    /// The browser pool (metrics, tests).
    pub fn browser(&self) -> &BrowserPool {
        &self.inner.browser
    }

    /// An account able to run a step that triggers `ops` now: usable, budgets left, a free
    /// page permit, and held by this host. Fewest pages in flight first, then the one with
    /// the most budget left for the first operation.
    pub async fn pick(&self, ops: &[&str]) -> Option<AccountLease> {
        let now = now_ms();
        let policy = &self.inner.budget_policy;
        let mut candidates: Vec<(usize, u32, Arc<Slot>)> = Vec::new();
        for slot in &self.inner.slots {
            let mut rec = slot.record.lock();
            if let Some(t) = rec.refresh(&slot.account.username, now) {
                self.inner.note(&t);
            }
            if !rec.usable(now) || !rec.budgets.can_spend_all(ops, policy, now) {
                continue;
            }
            if slot.permits.available_permits() == 0 {
                continue;
            }
            let remaining = ops
                .first()
                .map(|op| rec.budgets.get(op, policy, now).remaining)
                .unwrap_or(0);
            candidates.push((
                slot.in_flight.load(Ordering::Relaxed),
                remaining,
                slot.clone(),
            ));
        }
        candidates.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        for (_, _, slot) in candidates {
            let Ok(permit) = slot.permits.clone().try_acquire_owned() else {
                continue;
            };
            let name = format!("scraper:account:{}", slot.account.username);
            match self
                .inner
                .store
                .acquire_lease(&name, &self.inner.owner, ACCOUNT_LEASE_MS)
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "account lease failed");
                    continue;
                }
            }
            slot.in_flight.fetch_add(1, Ordering::Relaxed);
            return Some(AccountLease {
                inner: self.inner.clone(),
                slot,
                _permit: permit,
            });
        }
        None
    }

    /// When some account may run `ops` again (for a target that found none): the
    /// earliest end of a rate limit or budget window; `None` if no account ever will
    /// (all banned or refused) or one may now.
    pub fn next_chance_ms(&self, ops: &[&str]) -> Option<i64> {
        let now = now_ms();
        self.inner
            .slots
            .iter()
            .filter_map(|slot| {
                let rec = slot.record.lock();
                let state_at = match rec.state {
                    State::Banned => return None,
                    State::Active | State::LoggingIn => now,
                    _ => rec.until_ms.unwrap_or(now),
                };
                let budget_at = rec
                    .budgets
                    .spendable_at(ops, &self.inner.budget_policy, now)
                    .unwrap_or(now);
                Some(state_at.max(budget_at))
            })
            .min()
    }

    /// The accounts view of `GET /api/v1/scraper/accounts` — no password, email, TOTP
    /// secret, cookie or proxy credential.
    pub async fn view(&self) -> Value {
        let now = now_ms();
        let mut accounts = Vec::new();
        for slot in &self.inner.slots {
            let user = &slot.account.username;
            let session = match self.inner.sessions.load(user).await {
                Ok(Some(s)) => json!({"present": true, "saved_at": rfc3339_ms(s.saved_at_ms)}),
                _ => json!({"present": false}),
            };
            let rec = slot.record.lock().clone();
            let state = if rec.state == State::RateLimited && rec.until_ms.is_some_and(|u| u <= now)
            {
                State::Active
            } else {
                rec.state
            };
            accounts.push(json!({
                "username": user,
                "state": state.as_str(),
                "until": rec.until_ms.filter(|_| state != State::Active).map(rfc3339_ms),
                "reason": rec.reason.clone().filter(|_| state != State::Active),
                "proxy": rec.proxy,
                "session": session,
                "has_totp": slot.account.totp.is_some(),
                "budgets": rec.budgets.view(now),
                "in_flight": slot.in_flight.load(Ordering::Relaxed),
                "last_login_at": rec.last_login_ms.map(rfc3339_ms),
                "last_used_at": rec.last_used_ms.map(rfc3339_ms),
                "pages": rec.pages,
            }));
        }
        let proxies = self.inner.proxies.lock().report(now);
        json!({"accounts": accounts, "proxies": proxies})
    }

    /// Accounts by state, for `/metrics`.
    pub fn states(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for slot in &self.inner.slots {
            *out.entry(slot.record.lock().state.as_str().to_string())
                .or_default() += 1;
        }
        out
    }

    /// Save every context's cookies (shutdown).
    pub async fn save_sessions(&self) {
        for slot in &self.inner.slots {
            let ctx = slot.context.lock().await.clone();
            if let Some(ctx) = ctx {
                self.inner.save_session_if_changed(slot, &ctx).await;
            }
        }
    }

    /// Give up this host's account leases (shutdown). Without it a restarted host (a new
    /// owner name) found every account held by its former self and ran nothing until the
    /// leases expired (`ACCOUNT_LEASE_MS`, two minutes).
    pub async fn release_leases(&self) {
        for slot in &self.inner.slots {
            let name = format!("scraper:account:{}", slot.account.username);
            if let Err(err) = self
                .inner
                .store
                .release_lease(&name, &self.inner.owner)
                .await
            {
                tracing::warn!(account = %slot.account.username, error = %format!("{err:#}"), "releasing the account lease failed");
            }
        }
    }
}

impl Inner {
    /// Log and count a state change once.
    fn note(&self, t: &Transition) {
        if t.changed() {
            tracing::warn!(worker = "x-scraper", "{t}");
            self.metrics.transition(t.to.as_str());
        }
    }

    async fn persist(&self, slot: &Slot) {
        let text = match serde_json::to_string(&*slot.record.lock()) {
            Ok(t) => t,
            Err(_) => return,
        };
        if let Err(err) = self
            .store
            .kv_put(RECORDS, &slot.account.username, &text)
            .await
        {
            tracing::warn!(account = %slot.account.username, error = %format!("{err:#}"), "saving the account record failed");
        }
    }

    async fn save_session_if_changed(&self, slot: &Slot, ctx: &AccountContext) {
        if !slot.has_session.load(Ordering::Acquire) {
            return;
        }
        let Ok(jar) = ctx.cookies().await else {
            return;
        };
        if !Session::has_cookie(&jar, &self.cfg.login.success_cookie) {
            return;
        }
        let digest = Session::digest(&jar);
        if slot.saved_digest.lock().as_deref() == Some(digest.as_str()) {
            return;
        }
        let session = Session {
            cookies: jar,
            saved_at_ms: now_ms(),
            base_url: self.cfg.base_url.clone(),
        };
        match self.sessions.save(&slot.account.username, &session).await {
            Ok(()) => *slot.saved_digest.lock() = Some(digest),
            Err(err) => {
                tracing::warn!(account = %slot.account.username, error = %format!("{err:#}"), "saving the session failed")
            }
        }
    }

    /// Close (and forget) an account's context.
    async fn drop_context(&self, slot: &Slot) {
        let ctx = slot.context.lock().await.take();
        slot.has_session.store(false, Ordering::Release);
        self.context_proxy.lock().remove(&slot.account.username);
        if let Some(ctx) = ctx
            && let Ok(ctx) = Arc::try_unwrap(ctx)
        {
            ctx.close().await;
        }
    }
}

impl AccountLease {
    pub fn username(&self) -> &str {
        &self.slot.account.username
    }

    /// Whether the context holds a session (call after [`AccountLease::context`]).
    pub fn has_session(&self) -> bool {
        self.slot.has_session.load(Ordering::Acquire)
    }

    /// The account's state reason (for a run's error text).
    pub fn reason(&self) -> Option<String> {
        self.slot.record.lock().reason.clone()
    }

    /// The account's browser context, created on first use with its sticky proxy and its
    /// stored session.
    pub async fn context(&self) -> Result<Arc<AccountContext>, BrowserError> {
        let inner = &self.inner;
        let user = &self.slot.account.username;
        let mut guard = self.slot.context.lock().await;
        if let Some(ctx) = guard.as_ref() {
            // A context created before its proxy was rotated out is replaced.
            let wanted = inner.proxies.lock().assigned(user).map(str::to_string);
            let current = inner.context_proxy.lock().get(user).cloned().flatten();
            if wanted == current || inner.proxies.lock().is_empty() {
                return Ok(ctx.clone());
            }
            if let Some(old) = guard.take()
                && let Ok(old) = Arc::try_unwrap(old)
            {
                old.close().await;
            }
            self.slot.has_session.store(false, Ordering::Release);
        }
        let proxy = match inner.proxies.lock().assign(user, now_ms()) {
            Assignment::Proxy(url) => Some(url),
            Assignment::NoneConfigured => None,
            Assignment::NoneHealthy => {
                if !inner.cfg.allow_direct {
                    return Err(BrowserError::Proxy(
                        "no healthy proxy is left and allow_direct = false".into(),
                    ));
                }
                if !inner.direct_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "no healthy proxy is left; accounts run without one (allow_direct = true)"
                    );
                }
                None
            }
        };
        let session = match inner.sessions.load(user).await {
            Ok(Some(s)) if s.base_url == inner.cfg.base_url => Some(s),
            Ok(_) => None,
            Err(err) => {
                tracing::warn!(account = %user, error = %format!("{err:#}"), "reading the session failed; logging in");
                None
            }
        };
        let cookies = session
            .as_ref()
            .map(|s| s.cookies.clone())
            .unwrap_or_default();
        *self.slot.saved_digest.lock() = session.as_ref().map(|s| Session::digest(&s.cookies));
        let spec = ContextSpec {
            key: user.clone(),
            proxy: proxy.as_ref().map(|p| ProxySpec {
                server: p.server(),
                credentials: p
                    .credentials()
                    .map(|(u, pw)| (u.to_string(), pw.to_string())),
            }),
            cookies,
        };
        let ctx = Arc::new(inner.browser.context(spec).await?);
        self.slot
            .has_session
            .store(session.is_some(), Ordering::Release);
        let server = proxy.as_ref().map(|p| p.server());
        inner
            .context_proxy
            .lock()
            .insert(user.clone(), server.clone());
        if server.is_some() {
            self.slot.record.lock().proxy = server;
        }
        *guard = Some(ctx.clone());
        Ok(ctx)
    }

    /// The count of this account's successful logins so far (see
    /// [`AccountLease::relogin`]).
    pub fn session_generation(&self) -> u64 {
        self.slot.session_generation.load(Ordering::Acquire)
    }

    /// Make sure the context holds a session: log in through the form unless it does (or
    /// another run of the account logged in while this one waited for it). True when there
    /// is a session; false when X refused the login.
    pub async fn ensure_session(
        &self,
        context: &AccountContext,
        page: &mut PageLease,
    ) -> Result<bool, BrowserError> {
        let _one_login = self.slot.login_lock.lock().await;
        if self.has_session() {
            return Ok(true);
        }
        self.login(context, page).await
    }

    /// X rejected the session a step was run with (the account's session generation was
    /// `seen` then): forget it and log in once — unless another run of the account already
    /// logged in since, whose fresh session is kept. True when there is a session.
    pub async fn relogin(
        &self,
        context: &AccountContext,
        page: &mut PageLease,
        seen: u64,
    ) -> Result<bool, BrowserError> {
        let _one_login = self.slot.login_lock.lock().await;
        if self.session_generation() != seen && self.has_session() {
            return Ok(true);
        }
        self.session_rejected(context).await?;
        self.login(context, page).await
    }

    /// Log in through the form. True when logged in (session stored); false when X
    /// refused (the account is `login_failed` and its context closed).
    async fn login(
        &self,
        context: &AccountContext,
        page: &mut PageLease,
    ) -> Result<bool, BrowserError> {
        let inner = &self.inner;
        let cfg = &inner.cfg;
        let url = cfg.login_url();
        let user = self.username().to_string();
        match login::login(&self.slot.account, context, page, &url, &cfg.login).await? {
            LoginOutcome::LoggedIn(jar) => {
                inner.metrics.logins_ok.inc();
                let session = Session {
                    cookies: jar,
                    saved_at_ms: now_ms(),
                    base_url: cfg.base_url.clone(),
                };
                if let Err(err) = inner.sessions.save(&user, &session).await {
                    tracing::warn!(account = %user, error = %format!("{err:#}"), "saving the new session failed");
                }
                *self.slot.saved_digest.lock() = Some(Session::digest(&session.cookies));
                self.slot.has_session.store(true, Ordering::Release);
                self.slot.session_generation.fetch_add(1, Ordering::AcqRel);
                let t = self.slot.record.lock().login_succeeded(&user, now_ms());
                inner.note(&t);
                inner.persist(&self.slot).await;
                Ok(true)
            }
            LoginOutcome::Refused(reason) => {
                inner.metrics.logins_failed.inc();
                let t = self.slot.record.lock().login_failed(
                    &user,
                    &reason,
                    &inner.state_policy,
                    now_ms(),
                );
                inner.note(&t);
                inner.persist(&self.slot).await;
                Ok(false)
            }
        }
    }

    /// X rejected the stored session: forget it and clear the context's cookies.
    async fn session_rejected(&self, context: &AccountContext) -> Result<(), BrowserError> {
        let user = self.username();
        if let Err(err) = self.inner.sessions.delete(user).await {
            tracing::warn!(account = %user, error = %format!("{err:#}"), "deleting the rejected session failed");
        }
        *self.slot.saved_digest.lock() = None;
        self.slot.has_session.store(false, Ordering::Release);
        context.clear_cookies().await
    }

    /// Take in a step's capture: budgets from its rate-limit records (or counted locally),
    /// then the account signal; the verdict tells the runner what to do.
    pub async fn observe(&self, capture: &Capture, result: &ScrapeResult) -> Verdict {
        let inner = &self.inner;
        let now = now_ms();
        let mut requests: BTreeMap<String, u32> = BTreeMap::new();
        for r in &capture.responses {
            if let Some(op) = impressox_browser::operation(&r.url) {
                *requests.entry(op.to_string()).or_default() += 1;
            }
        }
        let (t, state) = {
            let mut rec = self.slot.record.lock();
            rec.budgets
                .apply_capture(&result.rate_limits, &requests, &inner.budget_policy, now);
            rec.last_used_ms = Some(now);
            let t = rec.apply_signal(
                self.username(),
                result.account_signal,
                &result.rate_limits,
                &inner.state_policy,
                now,
            );
            let state = rec.state;
            (t, state)
        };
        inner.note(&t);
        inner.persist(&self.slot).await;
        let name = format!("scraper:account:{}", self.username());
        let _ = inner
            .store
            .acquire_lease(&name, &inner.owner, ACCOUNT_LEASE_MS)
            .await;
        match t.action {
            Action::Continue => Verdict::Continue,
            Action::Relogin => Verdict::SessionRejected,
            Action::Reschedule { .. } => Verdict::Stop(Outcome::RateLimited),
            Action::CloseContext => {
                inner.drop_context(&self.slot).await;
                Verdict::Stop(match state {
                    State::Locked => Outcome::Locked,
                    State::LoginFailed => Outcome::LoginFailed,
                    _ => Outcome::Banned,
                })
            }
        }
    }

    /// Whether the next step (triggering `ops`) fits the budgets.
    pub fn can_spend(&self, ops: &[&str]) -> bool {
        self.slot
            .record
            .lock()
            .budgets
            .can_spend_all(ops, &self.inner.budget_policy, now_ms())
    }

    /// `UserTweets 1/500` for the first of `ops` that is spent.
    pub fn budget_note(&self, ops: &[&str]) -> String {
        let rec = self.slot.record.lock();
        let policy = &self.inner.budget_policy;
        let now = now_ms();
        ops.iter()
            .find(|op| !rec.budgets.can_spend(op, 1, policy, now))
            .map(|op| format!("budget spent: {}", rec.budgets.describe(op, policy, now)))
            .unwrap_or_else(|| "budget spent".into())
    }

    /// A step went through the account's proxy.
    pub async fn proxy_ok(&self) {
        let server = self
            .inner
            .context_proxy
            .lock()
            .get(self.username())
            .cloned()
            .flatten();
        if let Some(server) = server {
            self.inner.proxies.lock().record_success(&server);
        }
    }

    /// A step failed because of the account's proxy; at the configured count in a row the
    /// proxy is rotated out and its accounts' contexts are re-created elsewhere.
    pub async fn proxy_failed(&self, err: &BrowserError) {
        let inner = &self.inner;
        inner.metrics.proxy_failures.inc();
        let server = inner
            .context_proxy
            .lock()
            .get(self.username())
            .cloned()
            .flatten();
        let Some(server) = server else {
            tracing::warn!(account = self.username(), error = %err, "proxy failure without a proxy");
            return;
        };
        tracing::warn!(account = self.username(), proxy = %server, error = %err, "proxy failure");
        let rotation = inner.proxies.lock().record_failure(&server, now_ms());
        if let Some(rotation) = rotation {
            tracing::warn!(worker = "x-scraper", "{rotation}");
            for user in &rotation.accounts {
                if let Some(slot) = inner.slots.iter().find(|s| &s.account.username == user) {
                    // Its session is in the store: the new context starts with it.
                    if let Some(ctx) = slot.context.lock().await.clone() {
                        inner.save_session_if_changed(slot, &ctx).await;
                    }
                    inner.drop_context(slot).await;
                    slot.record.lock().proxy = None;
                }
            }
        }
    }

    /// The run is over: count its pages, save the session if X rotated a cookie, persist.
    pub async fn finish(&self, pages: u32) {
        let ctx = self.slot.context.lock().await.clone();
        if let Some(ctx) = ctx {
            self.inner.save_session_if_changed(&self.slot, &ctx).await;
        }
        self.slot.record.lock().pages += u64::from(pages);
        self.inner.persist(&self.slot).await;
    }
}

impl Drop for AccountLease {
    fn drop(&mut self) {
        self.slot.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
