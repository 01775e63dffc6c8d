//! The overview's document-store counts (dead letters of notifications and of events),
//! kept for a few seconds and refreshed behind the pages.
//!
//! Redis answers its sizes in O(1) (XLEN, ZCARD); a document count is a query whose cost
//! grows with the collection. The overview polls every 5 s from every open tab, so the
//! counts are shared: a request finds them at most [`TTL_MS`] old, or older ones while one
//! refresh runs in the background (stale while revalidating). Only the first request of a
//! process waits for a count. A failed count is shown as unknown, not as a failed page.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::super::ApiState;
use crate::util::now_ms;

/// How long counts are fresh.
pub const TTL_MS: i64 = 5_000;

/// Dead-letter counts and when they were taken.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeadCounts {
    pub notifications: Option<u64>,
    pub events: Option<u64>,
    pub taken_ms: i64,
}

#[derive(Default)]
struct Inner {
    kept: Mutex<Option<DeadCounts>>,
    refreshing: AtomicBool,
}

/// Shared by every request of one API router.
#[derive(Clone, Default)]
pub struct CountsCache(Arc<Inner>);

impl CountsCache {
    /// The counts: fresh ones, else the kept ones while a refresh runs, else (the first
    /// time) taken now.
    pub async fn dead_letters(&self, state: &ApiState) -> DeadCounts {
        let kept = *self.0.kept.lock();
        match kept {
            Some(c) if now_ms() - c.taken_ms < TTL_MS => c,
            Some(c) => {
                if !self.0.refreshing.swap(true, Ordering::AcqRel) {
                    let (this, state) = (self.clone(), state.clone());
                    tokio::spawn(async move {
                        let fresh = take(&state).await;
                        *this.0.kept.lock() = Some(fresh);
                        this.0.refreshing.store(false, Ordering::Release);
                    });
                }
                c
            }
            None => {
                let fresh = take(state).await;
                *self.0.kept.lock() = Some(fresh);
                fresh
            }
        }
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
