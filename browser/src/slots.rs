//! The pool's shared state below its public face ([`crate::pool::BrowserPool`]): the
//! browser slots, context placement, launching with backoff, and the supervisor that
//! relaunches a dead browser. Contexts and pages hold an `Arc<PoolInner>`, so it lives below
//! them (`context.rs`, `page.rs`), as does the pool.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::network::ResourceType;
use tokio::task::JoinHandle;

use crate::config::PoolConfig;
use crate::error::BrowserError;
use crate::launch::{self, Live};
use crate::sync::lock;

/// How long a polite `Browser.close` may take before the process is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

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

impl PoolInner {
    /// Builds the pool's shared state and starts its supervisor.
    pub(crate) fn start(cfg: PoolConfig, blocked: Arc<[ResourceType]>) -> Arc<PoolInner> {
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
        inner
    }

    /// Process ids of the running browsers.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.slots
            .iter()
            .filter_map(|s| lock(&s.current).clone())
            .filter(|l| !l.is_gone())
            .filter_map(|l| l.pid)
            .collect()
    }

    /// How many times a browser was relaunched after it died.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// Closes every browser (politely, then by kill).
    pub(crate) async fn shutdown(&self) {
        self.shut.store(true, Ordering::SeqCst);
        if let Some(task) = lock(&self.supervisor).take() {
            task.abort();
        }
        for slot in &self.slots {
            // Wait for a launch in progress, so its browser is not left behind.
            let _guard = slot.launching.lock().await;
            let live = lock(&slot.current).take();
            if let Some(live) = live {
                live.stop(CLOSE_GRACE).await;
            }
        }
    }

    pub(crate) fn is_shut(&self) -> bool {
        self.shut.load(Ordering::SeqCst)
    }

    /// Picks the slot with the fewest contexts that still has room.
    pub(crate) fn place(&self) -> Result<usize, BrowserError> {
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
