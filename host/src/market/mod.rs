//! The market monitor (SPEC §7): price sources → feed-parser plugins → rule-processor
//! plugins → notification requests on `notify:requests`.
//!
//! - `sources/`: one tokio task per `[[market.sources]]` entry (websocket, http-poll,
//!   replay), each parsing its payloads with its parser plugin;
//! - `engine`: one thread that batches ticks into the rule processors and enqueues alerts;
//! - `rules`: the rule JSON, its validation, and the stored record;
//! - `rule_ops`: create/list/delete a rule (store + engine), shared by the API and the
//!   Telegram bot; `rule_limits`: the limits a create is checked against (rules per
//!   user, in all, which symbols);
//! - `console`: prints notification requests until the notify worker consumes them;
//! - `health`: per-source state and counters for `/metrics` and the prices API;
//! - `cluster`: several hosts on one Redis, each partition of the symbols evaluated by
//!   the one host holding its lease.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::runtime::Runtime;
use crate::storage::{NOTIFY_REQUESTS, Store};

pub mod cluster;
pub mod config;
pub mod console;
pub mod engine;
pub mod health;
pub mod input;
pub mod rule_limits;
pub mod rule_ops;
pub mod rules;
pub mod sources;

use engine::{Input, StopSignal};
use health::{MarketStats, SourceHealth};
use rules::RuleRecord;

/// What the API needs from a running market monitor.
#[derive(Clone)]
pub struct MarketHandle {
    tx: mpsc::Sender<Input>,
    pub health: Arc<Vec<Arc<SourceHealth>>>,
    pub stats: Arc<MarketStats>,
    pub default_processor: Arc<str>,
    /// Several hosts: the partitions held and the leases (API, `/metrics`). Rule changes
    /// then reach the engine through the store's change stream, not through this handle.
    pub cluster: Option<Arc<cluster::ClusterView>>,
}

impl MarketHandle {
    /// Tell the engine about a created or changed rule; returns once it is applied. With
    /// several hosts the change announced in the store reaches whichever host owns the
    /// rule (`cluster::changes`), so nothing is sent here.
    pub async fn upsert(&self, rule: RuleRecord, keep_firing: bool) {
        if self.cluster.is_some() {
            return;
        }
        let (done, wait) = oneshot::channel();
        let sent = self.tx.send(Input::Upsert {
            rule: Box::new(rule),
            keep_firing,
            done,
        });
        if sent.await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Tell the engine a rule is gone; returns once it no longer evaluates or writes it.
    /// With several hosts see [`MarketHandle::upsert`] (a clustered commit never writes
    /// back a deleted rule).
    pub async fn remove(&self, id: &str) {
        if self.cluster.is_some() {
            return;
        }
        let (done, wait) = oneshot::channel();
        if self
            .tx
            .send(Input::Remove {
                id: id.to_string(),
                done,
            })
            .await
            .is_ok()
        {
            let _ = wait.await;
        }
    }

    /// Commit everything evaluated so far.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Input::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Health of the source named `name`.
    pub fn source(&self, name: &str) -> Option<&Arc<SourceHealth>> {
        self.health.iter().find(|h| h.name == name)
    }
}

/// A running market monitor.
pub struct MarketMonitor {
    pub handle: MarketHandle,
    shutdown: watch::Sender<bool>,
    /// Tells the engine thread the deadline of its last commit.
    stop: StopSignal,
    grace: std::time::Duration,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    engine: Option<std::thread::JoinHandle<()>>,
    /// Several hosts: the lease task, whose leases are given up after the last commit.
    coordinator: Option<tokio::task::JoinHandle<cluster::coordinator::Coordinator>>,
}

/// The consumer groups that read this monitor's alerts, created before the first alert:
/// a stream is trimmed only below what every existing group acknowledged, so a group
/// that did not exist yet (a notify worker starting after the monitor, on this host or
/// another) would otherwise find its first alerts trimmed by a faster group. The notify
/// worker's group always, except for the console-only run (`console_alerts` without the
/// notify worker in this process), where no notify worker is meant to read them and its
/// group would only fill the stream to its bound.
pub fn alert_groups(config: &Config) -> Vec<&str> {
    let market = &config.market;
    let notify_here = config.workers.runs("notify");
    let mut groups = Vec::new();
    if !market.console_alerts || notify_here {
        groups.push(config.notify.group.as_str());
    }
    if market.console_alerts {
        groups.push(console::GROUP);
    }
    groups
}

impl MarketMonitor {
    /// Seed the configured rules, load state from the store and start sources, engine
    /// and (if configured) the console printer. Call inside a tokio runtime.
    pub async fn start(
        config: &Config,
        runtime: Runtime,
        store: Arc<dyn Store>,
    ) -> Result<MarketMonitor> {
        // rustls needs one process-wide crypto provider for wss:// and https:// feeds.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let market = config.market.clone();
        market.validate()?;
        // Several hosts share the Redis store (one alone is a cluster of one); the
        // embedded store serves one host, as `Config::validate` told the user.
        let clustered = store.backend() == "redis";
        if !clustered && market.partitions.is_some() {
            anyhow::bail!(
                "[market] partitions needs the Redis store: the embedded store serves one host"
            );
        }
        let host = market.host_name();
        for seed in &market.rules {
            let id = seed.id.clone().unwrap_or_default();
            if store.get_rule(&id).await?.is_none() {
                let rec = RuleRecord::create(seed.clone());
                store.put_rule(&id, &serde_json::to_string(&rec)?).await?;
                // Several hosts: the owner of its partition may be running already.
                store.rule_changed(&id, false).await?;
                tracing::info!(rule = %id, "seeded rule from [[market.rules]]");
            }
        }
        let mut rules = Vec::new();
        // Several hosts: the engine gets its partitions' rules as it takes them.
        let all_rules = if clustered {
            Vec::new()
        } else {
            store.list_rules().await?
        };
        for json in all_rules {
            match serde_json::from_str::<RuleRecord>(&json) {
                Ok(r) => rules.push(r),
                Err(e) => {
                    tracing::error!(error = %e, record = %crate::util::truncate(&json, 200), "unreadable rule record skipped")
                }
            }
        }
        for group in alert_groups(config) {
            store
                .ensure_group(NOTIFY_REQUESTS, group)
                .await
                .with_context(|| {
                    format!("creating consumer group `{group}` on {NOTIFY_REQUESTS}")
                })?;
        }
        // A console group left from a run with console_alerts on would hold every alert it
        // never printed, until the stream is full.
        if !market.console_alerts && store.drop_group(NOTIFY_REQUESTS, console::GROUP).await? {
            tracing::info!(
                group = console::GROUP,
                "console_alerts is off: removed the console printer's consumer group from {NOTIFY_REQUESTS}"
            );
        }
        let latest = if clustered {
            Vec::new()
        } else {
            store.latest_prices().await?
        };
        let cluster_setup = clustered.then(|| engine::ClusterSetup {
            partitions: market.partitions.unwrap_or(config::DEFAULT_PARTITIONS),
            lease_ms: market.lease_secs * 1000,
            host: host.clone(),
        });
        let health: Vec<Arc<SourceHealth>> = market
            .sources
            .iter()
            .map(|s| {
                let stale = s.stale_after_secs.unwrap_or(market.stale_after_secs) as i64 * 1000;
                let kind = match s.kind {
                    config::SourceKind::Websocket => "websocket",
                    config::SourceKind::HttpPoll => "http-poll",
                    config::SourceKind::Replay => "replay",
                };
                Arc::new(SourceHealth::new(&s.name, kind, stale))
            })
            .collect();
        let stats = Arc::new(MarketStats::default());
        let (tx, rx) = mpsc::channel::<Input>(1024);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (stop, stop_watch) = StopSignal::new();
        let setup = engine::EngineSetup {
            config: market.clone(),
            health: health.clone(),
            stats: stats.clone(),
            store: store.clone(),
            runtime: runtime.clone(),
            tokio: tokio::runtime::Handle::current(),
            rules,
            latest,
            stop: stop_watch,
            cluster: cluster_setup.clone(),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let engine = std::thread::Builder::new()
            .name("market-engine".into())
            .spawn(move || engine::run(setup, rx, ready_tx))
            .context("failed to start the market engine thread")?;
        // Sources start once the processors hold their rules.
        let _ = tokio::task::spawn_blocking(move || ready_rx.recv()).await;
        let mut tasks = Vec::new();
        let mut view = None;
        let mut coordinator = None;
        if let Some(c) = &cluster_setup {
            let url = &config.storage.redis_url;
            // The change stream's end is noted before any partition's rules are loaded,
            // so no change falls between the two.
            let changes = cluster::changes::Changes::connect(url).await?;
            let leases = cluster::leases::Leases::connect(url).await?;
            let v = Arc::new(cluster::ClusterView::new(
                host.clone(),
                c.partitions,
                c.lease_ms,
                leases,
            ));
            tasks.push(tokio::spawn(changes.run(
                store.clone(),
                tx.clone(),
                shutdown_rx.clone(),
            )));
            let mut co =
                cluster::coordinator::Coordinator::new(v.clone(), store.clone(), tx.clone());
            // The first round before the sources start: this host's share is taken (or
            // its own leases back after a restart) before the first tick.
            if let Err(e) = co.round().await {
                tracing::warn!(error = %e, "market cluster: first lease round failed; retrying");
            }
            coordinator = Some(tokio::spawn(co.run(shutdown_rx.clone())));
            tracing::info!(host = %host, partitions = c.partitions, lease_secs = market.lease_secs, "market cluster: this host evaluates the partitions it holds");
            view = Some(v);
        }
        for (i, s) in market.sources.iter().enumerate() {
            let checkpoint = store
                .get_checkpoint(&engine::checkpoint_name(
                    &s.name,
                    cluster_setup.as_ref().map(|c| c.host.as_str()),
                ))
                .await?;
            let ctx = sources::SourceCtx {
                index: i,
                config: s.clone(),
                health: health[i].clone(),
                parser: runtime.plugin(&s.parser),
                tx: tx.clone(),
                shutdown: shutdown_rx.clone(),
                base_dir: config.base_dir.clone(),
                checkpoint,
            };
            tasks.push(sources::spawn(ctx));
        }
        if market.console_alerts {
            tasks.push(tokio::spawn(console::run(
                store.clone(),
                shutdown_rx.clone(),
            )));
        }
        tracing::info!(sources = market.sources.len(), "market monitor running");
        Ok(MarketMonitor {
            handle: MarketHandle {
                tx,
                health: Arc::new(health),
                stats,
                default_processor: market.default_processor.as_str().into(),
                cluster: view,
            },
            shutdown,
            stop,
            grace: std::time::Duration::from_secs(market.shutdown_grace_secs),
            tasks,
            engine: Some(engine),
            coordinator,
        })
    }

    /// Stop the sources, let the engine evaluate and commit what it has, and wait — all
    /// within `[market] shutdown_grace_secs`. A store that is down (or a full stream) gets
    /// until then to take the last commit; after it the engine gives up and the
    /// uncommitted ticks are replayed from the last checkpoint at the next start.
    pub async fn stop(mut self) {
        let deadline = tokio::time::Instant::now() + self.grace;
        let _ = self.shutdown.send(true);
        self.stop.stop(deadline);
        for mut t in self.tasks.drain(..) {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                t.abort();
            }
        }
        // Evaluate what the sources sent before they stopped. The channel is full when
        // the engine waits for the store; the stop signal reaches it anyway.
        let _ = tokio::time::timeout_at(deadline, self.handle.tx.send(Input::Shutdown)).await;
        let Some(engine) = self.engine.take() else {
            return;
        };
        // The engine gives its store calls up at the deadline; a moment more for it to
        // notice. Polled rather than joined, so a stuck thread cannot hold shutdown.
        let give_up = deadline + std::time::Duration::from_secs(1);
        while !engine.is_finished() {
            if tokio::time::Instant::now() >= give_up {
                tracing::error!(
                    "the market engine did not stop within the shutdown grace period; leaving it"
                );
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let _ = engine.join();
        // The last commit is in: the other hosts may take the partitions at once.
        if let Some(c) = self.coordinator.take()
            && let Ok(Ok(mut c)) = tokio::time::timeout(std::time::Duration::from_secs(2), c).await
        {
            c.release_all().await;
        }
    }
}
