//! `BrowserPool`: browser slots, context placement, the supervisor that relaunches a dead
//! browser, and shutdown (docs/design/x-scraper.md §2.3).
//!
//! A slot holds at most one running browser ([`Live`]) at a time. Browsers launch lazily, on
//! the first context placed in the slot. When a browser dies (the handler task saw the
//! connection fail, the process exited, or a version probe timed out) the slot's `Live` is
//! marked gone: pages of it answer `Gone` at once, and the supervisor relaunches the slot (with
//! backoff 1 s → 30 s, ±20 %) when contexts live there. Contexts re-create themselves in the new
//! browser on their next call (`context.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::network::ResourceType;
use tokio::task::JoinHandle;

use crate::config::PoolConfig;
use crate::context::{AccountContext, ContextSpec};
use crate::error::BrowserError;
use crate::launch::{self, Live};

/// How long a polite `Browser.close` may take before the process is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A pool of headless Chromium processes hosting one browser context per account.
/// Cheap to clone; every clone is the same pool.
#[derive(Clone)]
pub struct BrowserPool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for BrowserPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserPool")
            .field("browsers", &self.inner.slots.len())
            .field("pids", &self.browser_pids())
            .field("restarts", &self.restarts())
            .finish()
    }
}

pub(crate) struct PoolInner {
    pub(crate) cfg: PoolConfig,
    pub(crate) blocked: Arc<[ResourceType]>,
    slots: Vec<Slot>,
    /// Contexts placed per slot.
    placed: Mutex<Vec<usize>>,
    restarts: AtomicU64,
    shut: AtomicBool,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Slot {
    current: Mutex<Option<Arc<Live>>>,
    /// Serialises launches of this slot and holds its backoff.
    launching: tokio::sync::Mutex<Backoff>,
    /// The slot's previous browser died: the next launch is a restart.
    lost: AtomicBool,
}

#[derive(Default)]
struct Backoff {
    failures: u32,
    next_attempt: Option<Instant>,
    last_error: String,
}

impl BrowserPool {
    /// Validates the configuration, sweeps profile directories of dead processes and starts the
    /// supervisor. Browsers are launched on demand by [`BrowserPool::context`].
    pub async fn start(cfg: PoolConfig) -> Result<BrowserPool, BrowserError> {
        cfg.validate()?;
        let blocked: Arc<[ResourceType]> = cfg.blocked_types()?.into();
        if let Err(e) = tokio::fs::metadata(&cfg.executable).await {
            return Err(BrowserError::Launch(format!(
                "{} is not usable ({e}): install Chromium (apt-get install -y chromium) or set \
                 [scraper.browser] executable",
                cfg.executable.display()
            )));
        }
        tokio::fs::create_dir_all(&cfg.profile_root)
            .await
            .map_err(|e| {
                BrowserError::Launch(format!(
                    "cannot create the profile root {}: {e}",
                    cfg.profile_root.display()
                ))
            })?;
        let root = cfg.profile_root.clone();
        let _ = tokio::task::spawn_blocking(move || launch::sweep_stale_profiles(&root)).await;

        let inner = Arc::new(PoolInner {
            slots: (0..cfg.browsers).map(|_| Slot::default()).collect(),
            placed: Mutex::new(vec![0; cfg.browsers]),
            blocked,
            cfg,
            restarts: AtomicU64::new(0),
            shut: AtomicBool::new(false),
            supervisor: Mutex::new(None),
        });
        let task = tokio::spawn(supervise(Arc::downgrade(&inner)));
        *lock(&inner.supervisor) = Some(task);
        Ok(BrowserPool { inner })
    }

    /// Creates a browser context for one account in the least loaded browser (launching it if
    /// needed), with the account's proxy and cookies.
    pub async fn context(&self, spec: ContextSpec) -> Result<AccountContext, BrowserError> {
        if self.inner.is_shut() {
            return Err(BrowserError::Gone);
        }
        let slot = self.inner.place()?;
        AccountContext::create(self.inner.clone(), slot, spec).await
    }

    /// Process ids of the running browsers (for metrics, memory figures and tests).
    pub fn browser_pids(&self) -> Vec<u32> {
        self.inner
            .slots
            .iter()
            .filter_map(|s| lock(&s.current).clone())
            .filter(|l| !l.is_gone())
            .filter_map(|l| l.pid)
            .collect()
    }

    /// How many times a browser was relaunched after it died.
    pub fn restarts(&self) -> u64 {
        self.inner.restarts.load(Ordering::SeqCst)
    }

    /// Closes every browser (politely, then by kill), reaps the processes and removes their
    /// profile directories. Contexts and pages answer `Gone` afterwards.
    pub async fn shutdown(&self) {
        self.inner.shut.store(true, Ordering::SeqCst);
        if let Some(task) = lock(&self.inner.supervisor).take() {
            task.abort();
        }
        for slot in &self.inner.slots {
            // Wait for a launch in progress, so its browser is not left behind.
            let _guard = slot.launching.lock().await;
            let live = lock(&slot.current).take();
            if let Some(live) = live {
                live.stop(CLOSE_GRACE).await;
            }
        }
    }
}

impl PoolInner {
    pub(crate) fn is_shut(&self) -> bool {
        self.shut.load(Ordering::SeqCst)
    }

    /// Picks the slot with the fewest contexts that still has room.
    fn place(&self) -> Result<usize, BrowserError> {
        let mut placed = lock(&self.placed);
        let (slot, n) = placed
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|&(_, n)| n)
            .unwrap_or((0, usize::MAX));
        if n >= self.cfg.contexts_per_browser {
            return Err(BrowserError::Full(format!(
                "{} browser(s) × {} contexts are all in use ([scraper.browser] browsers, \
                 contexts_per_browser)",
                self.cfg.browsers, self.cfg.contexts_per_browser
            )));
        }
        placed[slot] += 1;
        Ok(slot)
    }

    /// A context of `slot` was closed or dropped.
    pub(crate) fn release(&self, slot: usize) {
        if let Some(n) = lock(&self.placed).get_mut(slot) {
            *n = n.saturating_sub(1);
        }
    }

    fn placed_in(&self, slot: usize) -> usize {
        lock(&self.placed).get(slot).copied().unwrap_or(0)
    }

    /// The slot's running browser, launching (or relaunching) it when there is none.
    pub(crate) async fn ensure_live(&self, slot: usize) -> Result<Arc<Live>, BrowserError> {
        let s = self
            .slots
            .get(slot)
            .ok_or_else(|| BrowserError::Launch(format!("no browser slot {slot}")))?;
        if let Some(l) = self.current(slot) {
            return Ok(l);
        }
        let mut backoff = s.launching.lock().await;
        if self.is_shut() {
            return Err(BrowserError::Gone);
        }
        if let Some(l) = self.current(slot) {
            return Ok(l);
        }
        if let Some(at) = backoff.next_attempt
            && Instant::now() < at
        {
            return Err(BrowserError::Launch(format!(
                "browser {slot} is being relaunched; next attempt in {} ms after: {}",
                at.saturating_duration_since(Instant::now()).as_millis(),
                backoff.last_error
            )));
        }
        let old = lock(&s.current).take();
        if let Some(old) = old {
            s.lost.store(true, Ordering::SeqCst);
            old.stop(CLOSE_GRACE).await;
        }
        match launch::launch(&self.cfg, slot).await {
            Ok(live) => {
                let live = Arc::new(live);
                *backoff = Backoff::default();
                if s.lost.swap(false, Ordering::SeqCst) {
                    self.restarts.fetch_add(1, Ordering::SeqCst);
                    tracing::warn!(slot, generation = live.generation, "browser relaunched");
                }
                if self.is_shut() {
                    live.stop(CLOSE_GRACE).await;
                    return Err(BrowserError::Gone);
                }
                *lock(&s.current) = Some(live.clone());
                Ok(live)
            }
            Err(e) => {
                backoff.failures += 1;
                let exp =
                    BACKOFF_START.saturating_mul(1 << backoff.failures.min(6).saturating_sub(1));
                let delay = exp.min(BACKOFF_MAX).mul_f64(0.8 + 0.4 * fastrand::f64());
                backoff.next_attempt = Some(Instant::now() + delay);
                backoff.last_error = e.to_string();
                tracing::error!(slot, error = %e, retry_in_ms = delay.as_millis() as u64, "browser launch failed");
                Err(e)
            }
        }
    }

    /// The slot's browser if it is running and not known dead.
    fn current(&self, slot: usize) -> Option<Arc<Live>> {
        let s = self.slots.get(slot)?;
        lock(&s.current).clone().filter(|l| !l.is_gone())
    }

    /// How long a liveness probe may take.
    pub(crate) fn probe_timeout(&self) -> Duration {
        self.cfg.request_timeout.min(Duration::from_secs(5))
    }
}

/// Checks every browser each `probe_interval`; relaunches dead ones that host contexts, and
/// stops dead ones that host none (their directory and zombie are cleaned either way).
async fn supervise(pool: Weak<PoolInner>) {
    let interval = match pool.upgrade() {
        Some(p) => p.cfg.probe_interval.max(Duration::from_millis(100)),
        None => return,
    };
    loop {
        tokio::time::sleep(interval).await;
        let Some(p) = pool.upgrade() else { return };
        if p.is_shut() {
            return;
        }
        for (i, s) in p.slots.iter().enumerate() {
            let live = lock(&s.current).clone();
            let dead = match &live {
                Some(l) => l.is_gone() || !l.check(Some(p.probe_timeout())).await,
                // A failed relaunch is retried here once its backoff allows.
                None => s.lost.load(Ordering::SeqCst),
            };
            if !dead || p.is_shut() {
                continue;
            }
            if p.placed_in(i) > 0 {
                if let Err(e) = p.ensure_live(i).await {
                    tracing::debug!(slot = i, error = %e, "relaunch not done yet");
                }
            } else if let Some(l) = live {
                let _guard = s.launching.lock().await;
                let still_same = lock(&s.current)
                    .as_ref()
                    .is_some_and(|c| Arc::ptr_eq(c, &l));
                if still_same {
                    lock(&s.current).take();
                    s.lost.store(true, Ordering::SeqCst);
                    l.stop(CLOSE_GRACE).await;
                }
            }
        }
    }
}

/// Locks a std mutex, recovering from poisoning (the data stays consistent: every critical
/// section here is a single assignment or a small read).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
