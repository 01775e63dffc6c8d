//! The task that keeps this host's share of the partitions: every third of a lease it
//! heartbeats and renews (one script), tells the engine about leases lost, takes free
//! partitions up to its fair share, and gives up partitions over it — only after the
//! engine committed them, so the next owner starts from their last state and nothing
//! is evaluated twice or skipped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{mpsc, oneshot, watch};

use super::{ClusterView, fair_share, partition_of};
use crate::market::input::Input;
use crate::market::rules::RuleRecord;
use crate::storage::Store;

pub struct Coordinator {
    pub view: Arc<ClusterView>,
    pub store: Arc<dyn Store>,
    pub tx: mpsc::Sender<Input>,
    held: BTreeMap<u32, String>,
    /// Whether the leases of an earlier process under this name were taken back.
    adopted: bool,
}

impl Coordinator {
    pub fn new(view: Arc<ClusterView>, store: Arc<dyn Store>, tx: mpsc::Sender<Input>) -> Self {
        Coordinator {
            view,
            store,
            tx,
            held: BTreeMap::new(),
            adopted: false,
        }
    }

    /// The wait between rounds: a third of a lease, so two renewals may fail before the
    /// lease runs out.
    fn period(&self) -> Duration {
        Duration::from_millis((self.view.lease_ms / 3).max(50))
    }

    /// Run rounds until `shutdown`; the leases are given up by [`Coordinator::release_all`]
    /// after the engine's last commit.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Coordinator {
        loop {
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "market cluster: lease round failed; retrying (leases expire after lease_secs if this lasts)");
            }
            if crate::util::stopped_during(&mut shutdown, self.period()).await {
                return self;
            }
        }
    }

    /// One round: heartbeat and renew, drop what was lost, take or give up to the share.
    pub async fn round(&mut self) -> Result<()> {
        let view = self.view.clone();
        if !self.adopted {
            let back = view
                .leases
                .adopt(&view.host, view.lease_ms, view.partitions)
                .await?;
            self.adopted = true;
            if !back.is_empty() {
                tracing::info!(
                    partitions = back.len(),
                    "market cluster: took back the leases of this host's previous run"
                );
                self.take(back).await;
            }
        }
        let held: Vec<(u32, String)> = self.held.iter().map(|(p, t)| (*p, t.clone())).collect();
        let beat = view
            .leases
            .heartbeat(&view.host, view.lease_ms, &held)
            .await?;
        view.live_hosts
            .store(u64::from(beat.live_hosts), Ordering::Relaxed);
        if !beat.lost.is_empty() {
            tracing::warn!(partitions = ?beat.lost, "market cluster: leases lost (expired or taken over); their uncommitted work is dropped");
            for p in &beat.lost {
                self.held.remove(p);
            }
            view.lost
                .fetch_add(beat.lost.len() as u64, Ordering::Relaxed);
            view.set_held(&self.held);
            let _ = self.send(Input::Lost { parts: beat.lost }).await;
        }
        let share = fair_share(view.partitions, beat.live_hosts) as usize;
        if self.held.len() < share {
            let candidates = self.candidates();
            let got = view
                .leases
                .acquire(
                    &view.host,
                    view.lease_ms,
                    &candidates,
                    share - self.held.len(),
                )
                .await?;
            if !got.is_empty() {
                self.take(got).await;
            }
        } else if self.held.len() > share {
            self.give_up(self.held.len() - share).await?;
        }
        Ok(())
    }

    /// Partitions not held, starting at one that depends on the host name, so hosts
    /// starting together do not all race for the same ones.
    fn candidates(&self) -> Vec<u32> {
        let n = self.view.partitions;
        let start = partition_of(&self.view.host, n);
        (0..n)
            .map(|i| (start + i) % n)
            .filter(|p| !self.held.contains_key(p))
            .collect()
    }

    /// Hand newly leased partitions to the engine with their committed rules and prices
    /// (read now that the leases are ours, so no other host commits them meanwhile).
    /// Leases the engine could not be told about are given back.
    async fn take(&mut self, got: Vec<(u32, String)>) {
        let view = self.view.clone();
        let parts: Vec<u32> = got.iter().map(|(p, _)| *p).collect();
        let loaded = self.load(&parts).await;
        let (rules, latest) = match loaded {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "market cluster: could not load the rules of newly leased partitions; giving them back");
                let _ = view.leases.release(&got).await;
                return;
            }
        };
        let (done, wait) = oneshot::channel();
        let sent = self
            .send(Input::Acquired {
                parts: got.clone(),
                rules,
                latest,
                done,
            })
            .await;
        if !sent {
            let _ = view.leases.release(&got).await;
            return;
        }
        // The engine applies it in order with the ticks; the leases are ours already.
        let _ = tokio::time::timeout(self.period(), wait).await;
        view.acquired.fetch_add(got.len() as u64, Ordering::Relaxed);
        tracing::info!(partitions = ?parts, "market cluster: partitions taken");
        self.held.extend(got);
        view.set_held(&self.held);
    }

    async fn load(
        &self,
        parts: &[u32],
    ) -> Result<(Vec<RuleRecord>, Vec<crate::storage::PricePoint>)> {
        let n = self.view.partitions;
        let mine = |symbol: &str| parts.contains(&partition_of(symbol, n));
        let rules = self
            .store
            .list_rules()
            .await?
            .iter()
            .filter_map(|j| serde_json::from_str::<RuleRecord>(j).ok())
            .filter(|r| mine(&r.symbol))
            .collect();
        let latest = self
            .store
            .latest_prices()
            .await?
            .into_iter()
            .filter(|p| mine(&p.symbol))
            .collect();
        Ok((rules, latest))
    }

    /// Give up `count` partitions: the engine commits them and stops evaluating them,
    /// then the leases are deleted (compare-and-delete), so the next owner finds their
    /// last state and no moment is owned twice.
    async fn give_up(&mut self, count: usize) -> Result<()> {
        let parts: Vec<u32> = self.held.keys().rev().take(count).copied().collect();
        let (done, wait) = oneshot::channel();
        if !self
            .send(Input::Release {
                parts: parts.clone(),
                done,
            })
            .await
        {
            return Ok(());
        }
        // A commit waiting for a store that is down: keep the leases (renewed next round)
        // and try again later; the engine has stopped evaluating them either way.
        let Ok(Ok(_committed)) = tokio::time::timeout(self.period() * 2, wait).await else {
            tracing::warn!(partitions = ?parts, "market cluster: the engine did not commit the partitions to give up in time; trying again");
            return Ok(());
        };
        let released: Vec<(u32, String)> = parts
            .iter()
            .filter_map(|p| Some((*p, self.held.remove(p)?)))
            .collect();
        self.view.set_held(&self.held);
        self.view
            .released
            .fetch_add(released.len() as u64, Ordering::Relaxed);
        self.view.leases.release(&released).await?;
        tracing::info!(partitions = ?parts, "market cluster: partitions given up to rebalance");
        Ok(())
    }

    /// Send to the engine, waiting at most a period (the channel is full while the engine
    /// waits for the store). False if it was not sent.
    async fn send(&self, input: Input) -> bool {
        matches!(
            tokio::time::timeout(self.period(), self.tx.send(input)).await,
            Ok(Ok(()))
        )
    }

    /// Give up every lease (after the engine's last commit, on shutdown), so the other
    /// hosts take them at once instead of after `lease_secs`.
    pub async fn release_all(&mut self) {
        let held: Vec<(u32, String)> = std::mem::take(&mut self.held).into_iter().collect();
        self.view.set_held(&self.held);
        if let Err(e) = self.view.leases.release(&held).await {
            tracing::warn!(error = %e, "market cluster: could not give the leases up; the other hosts take them when they expire");
        } else if !held.is_empty() {
            self.view
                .released
                .fetch_add(held.len() as u64, Ordering::Relaxed);
            tracing::info!(partitions = held.len(), "market cluster: leases given up");
        }
    }
}
