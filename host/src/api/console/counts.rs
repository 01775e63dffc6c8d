//! The overview's document-store counts (dead letters of notifications and of events),
//! kept for a few seconds and refreshed behind the pages.
//!
//! Redis answers its sizes in O(1) (XLEN, ZCARD); a document count is a query whose cost
//! grows with the collection and with the store (about 1 ms on the embedded store, about
//! 200 ms on SecantusDB at 50,000 delivery records). The overview polls every 5 s from
//! every open tab, so the counts are shared: a request finds them at most [`TTL_MS`] old,
//! or older ones while one refresh runs in the background (stale while revalidating).
//! A process's first request waits at most [`FIRST_WAIT`] for the first count, then shows
//! the counts as pending (the 5-second poll fills them in): no overview waits for a slow
//! store. A failed count is shown as unknown, not as a failed page.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::super::ApiState;
use crate::util::now_ms;

/// How long counts are fresh.
pub const TTL_MS: i64 = 5_000;

/// How long the first overview of a process waits for the first counts: well inside the
/// overview's 50 ms budget (docs/BENCHMARKS.md).
pub const FIRST_WAIT: Duration = Duration::from_millis(20);

/// Dead-letter counts and when they were taken.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeadCounts {
    pub notifications: Option<u64>,
    pub events: Option<u64>,
    pub taken_ms: i64,
}

struct Inner {
    /// `None` until the first count is taken; every refresh replaces it.
    kept: watch::Sender<Option<DeadCounts>>,
    refreshing: AtomicBool,
}

/// Shared by every request of one API router.
#[derive(Clone)]
pub struct CountsCache(Arc<Inner>);

impl Default for CountsCache {
    fn default() -> Self {
        CountsCache(Arc::new(Inner {
            kept: watch::Sender::new(None),
            refreshing: AtomicBool::new(false),
        }))
    }
}

impl CountsCache {
    /// The counts: fresh ones, else the kept ones while a refresh runs, else (the first
    /// time) the first count if it comes within [`FIRST_WAIT`], else `None` (pending).
    pub async fn dead_letters(&self, state: &ApiState) -> Option<DeadCounts> {
        let kept = *self.0.kept.borrow();
        match kept {
            Some(c) if now_ms() - c.taken_ms < TTL_MS => Some(c),
            Some(c) => {
                self.refresh(state);
                Some(c)
            }
            None => {
                // Subscribed before the refresh starts, so its answer cannot be missed.
                let mut rx = self.0.kept.subscribe();
                self.refresh(state);
                match tokio::time::timeout(FIRST_WAIT, rx.wait_for(Option::is_some)).await {
                    Ok(Ok(c)) => *c,
                    _ => None,
                }
            }
        }
    }

    /// Starts one count in the background unless one runs already.
    fn refresh(&self, state: &ApiState) {
        if self.0.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (this, state) = (self.clone(), state.clone());
        tokio::spawn(async move {
            let fresh = take(&state).await;
            this.0.kept.send_replace(Some(fresh));
            this.0.refreshing.store(false, Ordering::Release);
        });
    }
}

async fn take(state: &ApiState) -> DeadCounts {
    let mut counts = DeadCounts {
        taken_ms: now_ms(),
        ..Default::default()
    };
    if let Some(docs) = &state.services.docs {
        let (n, e) = tokio::join!(
            crate::notify::service::dead_count(docs),
            crate::events::dead_letters::count(docs)
        );
        counts.notifications = n
            .inspect_err(|err| tracing::warn!(error = %format!("{err:#}"), "console: counting notification dead letters failed"))
            .ok();
        counts.events = e
            .inspect_err(|err| tracing::warn!(error = %format!("{err:#}"), "console: counting event dead letters failed"))
            .ok();
    }
    counts
}
