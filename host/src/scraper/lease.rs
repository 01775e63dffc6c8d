//! A target's lease while its run goes (issue 12, item 4).
//!
//! A target runs on one host at a time: the host that takes the store lease
//! `scraper:target:<id>` for `target_lease_secs`. A run may last longer than that (a deep
//! backfill, slow pages), so a keeper renews the lease every third of its time to live for
//! as long as the run goes; another host never takes over a live run, while a host that
//! dies stops renewing and its lease lapses within `target_lease_secs`.
//!
//! When a renewal finds the lease held by someone else (this host was paused or cut off
//! for longer than the lease), or the store cannot be reached until the lease may have
//! lapsed, the keeper tells the run to finish at its next step boundary
//! ([`RunStop::lease_lost`]): two hosts should not read one target at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::stopping::RunStop;
use crate::storage::Store;

/// The lease name of a target.
pub fn target_lease(target_id: &str) -> String {
    format!("scraper:target:{target_id}")
}

/// Renews one lease in the background until [`LeaseKeeper::stop`].
pub struct LeaseKeeper {
    done: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl LeaseKeeper {
    /// Keep `name`, just acquired by `owner` for `ttl`, for the run `run`.
    pub fn start(
        store: Arc<dyn Store>,
        name: String,
        owner: String,
        ttl: Duration,
        run: RunStop,
    ) -> LeaseKeeper {
        let (done, done_rx) = watch::channel(false);
        let task = tokio::spawn(keep(store, name, owner, ttl, run, done_rx));
        LeaseKeeper { done, task }
    }

    /// Stop renewing. Returns once no renewal is in flight, so a release that follows is
    /// never undone by a late renewal.
    pub async fn stop(self) {
        self.done.send_replace(true);
        let _ = self.task.await;
    }
}

async fn keep(
    store: Arc<dyn Store>,
    name: String,
    owner: String,
    ttl: Duration,
    run: RunStop,
    mut done: watch::Receiver<bool>,
) {
    let every = (ttl / 3).max(Duration::from_millis(100));
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            _ = done.wait_for(|d| *d) => return,
            () = tokio::time::sleep(every) => {}
        }
        match store.acquire_lease(&name, &owner, ttl_ms).await {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => {
                tracing::warn!(
                    worker = "x-scraper", lease = %name,
                    "another host holds the target's lease now; the run stops at its next step"
                );
                run.lease_lost();
                return;
            }
            Err(err) => {
                // The next attempt would come after the lease ran out: stop rather than risk
                // two hosts on one target.
                let lapses = renewed.elapsed() + every >= ttl;
                tracing::warn!(
                    worker = "x-scraper", lease = %name, error = %format!("{err:#}"),
                    stopping = lapses, "renewing the target's lease failed"
                );
                if lapses {
                    run.lease_lost();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scraper::stopping::{StopCause, Stopper};
    use crate::storage::StoreLimits;
    use crate::storage::embedded::EmbeddedStore;

    fn store_in(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        Arc::new(
            EmbeddedStore::open(&dir.path().join("store.redb"), StoreLimits::default()).unwrap(),
        )
    }

    // A TTL of seconds, not milliseconds: on a loaded 2-core CI machine a renewal can be
    // late by a few hundred milliseconds, which a 300 ms lease did not survive.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kept_lease_outlives_its_ttl_and_a_stopped_keeper_lets_it_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir);
        let ttl = Duration::from_secs(3);
        let ttl_ms = ttl.as_millis() as u64;
        assert!(store.acquire_lease("l", "me", ttl_ms).await.unwrap());
        let stopper = Stopper::default();
        let run = stopper.run_signal();
        let keeper = LeaseKeeper::start(store.clone(), "l".into(), "me".into(), ttl, run.clone());
        tokio::time::sleep(ttl * 2).await;
        assert!(
            !store.acquire_lease("l", "other", ttl_ms).await.unwrap(),
            "still held"
        );
        assert_eq!(run.cause(), None);
        keeper.stop().await;
        store.release_lease("l", "me").await.unwrap();
        tokio::time::sleep(ttl).await;
        assert!(
            store.acquire_lease("l", "other", ttl_ms).await.unwrap(),
            "no renewal after stop"
        );
    }

    #[tokio::test]
    async fn a_lease_taken_over_stops_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir);
        // Lapsed already (as after a long pause), and another host took it.
        assert!(store.acquire_lease("l", "other", 60_000).await.unwrap());
        let stopper = Stopper::default();
        let run = stopper.run_signal();
        let keeper = LeaseKeeper::start(
            store.clone(),
            "l".into(),
            "me".into(),
            Duration::from_millis(300),
            run.clone(),
        );
        tokio::time::timeout(Duration::from_secs(5), run.finishing())
            .await
            .expect("the run is told");
        assert_eq!(run.cause(), Some(StopCause::LeaseLost));
        keeper.stop().await;
    }
}
