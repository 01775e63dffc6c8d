//! The notify worker (SPEC §9): notification requests from `notify:requests` (the market
//! monitor's alerts, and `POST /api/v1/notifications`) delivered to Telegram, email,
//! webhooks, Web Push, Discord, Slack and the console, each rendered by its notify-formatter plugin, honouring the
//! user's preferences, rate limits and retries, and never sent twice.
//!
//! - `request`: the request JSON and its validation;
//! - `prefs`, `quiet`: preferences, quiet hours (time zones), mutes;
//! - `webpush`: push subscriptions and the VAPID key; `subscriptions`: adding and dropping
//!   one in the stored preferences;
//! - `plan`: request + preferences → (channel, target) deliveries, rendering;
//! - `record`: the delivery record and its state machine (where "exactly once" lives);
//! - `log`: the collections in the document store and the queries over them;
//! - `limiter`: per-channel rate limits;
//! - `channels/`: console, telegram, email, webhook, webpush, discord, slack (`http`: what
//!   the ones that POST to a user's URL share);
//! - `intake`: the consumer-group loop that plans and records deliveries;
//! - `dispatch`: sends, outcomes, the due-poller (waits, retries, replays) and the sweeper;
//! - `service`: what the HTTP API asks of the worker;
//! - `commands`, `bot`: the Telegram bot's commands (`/start`, `/watch`, ...) by long
//!   polling, one poller across hosts.
//!
//! Design notes and the reasoning behind the guarantees: docs/design/notify.md.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::documents::Documents;
use crate::runtime::Runtime;
use crate::storage::Store;

pub mod bot;
pub mod channels;
pub mod commands;
pub mod config;
pub mod dispatch;
pub mod intake;
pub mod limiter;
pub mod log;
pub mod plan;
pub mod prefs;
pub mod quiet;
pub mod record;
pub mod request;
pub mod service;
pub mod subscriptions;
pub mod webpush;

use channels::Channels;
use config::NotifyConfig;
use limiter::Limiter;
use log::DeliveryLog;
use prefs::Preferences;
use record::Delivery;

/// How long a cached preferences read is trusted (a PUT on this host clears it at once).
const PREFS_TTL: Duration = Duration::from_secs(2);

/// Counters for `/metrics`.
#[derive(Default)]
pub struct NotifyStats {
    pub requests: AtomicU64,
    pub invalid_requests: AtomicU64,
    pub lease_lost: AtomicU64,
    pub interrupted: AtomicU64,
    pub in_flight: AtomicU64,
    /// (channel, outcome) → count of finished attempts and planning results.
    pub deliveries: Mutex<HashMap<(String, String), u64>>,
    /// From a record's planning to the channel accepting its last part.
    pub send_delay: crate::runtime::metrics::LatencyHistogram,
}

impl NotifyStats {
    pub fn count(&self, channel: &str, outcome: &str) {
        *self
            .deliveries
            .lock()
            .entry((channel.to_string(), outcome.to_string()))
            .or_default() += 1;
    }
}

/// What every part of the worker shares.
pub struct Shared {
    pub cfg: NotifyConfig,
    pub store: Arc<dyn Store>,
    pub log: DeliveryLog,
    pub runtime: Runtime,
    pub channels: Channels,
    pub limiter: Mutex<Limiter>,
    /// `<consumer>/<boot>`: who holds a claim.
    pub owner: String,
    /// The consumer name (host), shown in attempt logs.
    pub consumer: String,
    pub stats: NotifyStats,
    prefs_cache: Mutex<HashMap<String, (Instant, Option<Preferences>)>>,
    /// Records ready to go now (queued, not claimed yet), for the claimer.
    ready_tx: mpsc::UnboundedSender<Delivery>,
    /// Ids handed to the claimer and not finished yet, so the due-poller leaves them be.
    pending: Mutex<std::collections::HashSet<String>>,
    /// Send slots: a record is `sending` only while it holds one (until its outcome is
    /// written), so a crash leaves at most `max_in_flight` records of unknown fate.
    pub permits: Arc<tokio::sync::Semaphore>,
    /// Records intake inserted already claimed (a slot was free), with their slot.
    claimed_tx: mpsc::UnboundedSender<(Delivery, tokio::sync::OwnedSemaphorePermit)>,
    /// True once the worker is stopping: a sender waiting for a rate-limit slot gives its
    /// record back (`queued`) rather than leave it `sending` for the next start to find.
    pub draining: watch::Receiver<bool>,
}

impl Shared {
    /// A user's preferences, from a short-lived cache.
    pub async fn preferences(&self, user_id: &str) -> Result<Option<Preferences>> {
        if let Some((at, p)) = self.prefs_cache.lock().get(user_id)
            && at.elapsed() < PREFS_TTL
        {
            return Ok(p.clone());
        }
        let p = match self.log.preferences(user_id).await {
            Ok(p) => p.map(|(p, _)| p),
            // A document this version cannot read must not stall every request behind it:
            // this user's requests are planned as without preferences (and it is logged).
            Err(e) if e.downcast_ref::<serde_json::Error>().is_some() => {
                tracing::error!(user = user_id, error = %e, "notify: stored preferences are unreadable; planning without them");
                None
            }
            Err(e) => return Err(e),
        };
        let mut cache = self.prefs_cache.lock();
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(user_id.to_string(), (Instant::now(), p.clone()));
        Ok(p)
    }

    pub fn forget_preferences(&self, user_id: &str) {
        self.prefs_cache.lock().remove(user_id);
    }

    /// Hand a record that may go now (stored `queued`, held back from the due-poller
    /// for a moment) to the claimer, which claims it right before its send.
    pub fn ready(&self, d: Delivery) {
        if !self.pending.lock().insert(d.id.clone()) {
            return; // already on its way
        }
        if let Err(e) = self.ready_tx.send(d) {
            // Shutting down: it stays queued and is due shortly, for the next start.
            self.pending.lock().remove(&e.0.id);
        }
    }

    /// Hand a record inserted already claimed (holding `permit`) to the senders.
    pub fn claimed(&self, d: Delivery, permit: tokio::sync::OwnedSemaphorePermit) {
        self.pending.lock().insert(d.id.clone());
        if let Err(e) = self.claimed_tx.send((d, permit)) {
            // Shutting down: the record stays `sending` and is settled by the sweeper.
            self.pending.lock().remove(&(e.0).0.id);
        }
    }

    /// A record handed to the claimer is finished (or was not claimed).
    pub fn done(&self, id: &str) {
        self.pending.lock().remove(id);
    }

    /// How many records are on their way through this host's claimer and senders.
    pub fn pending_len(&self) -> usize {
        self.pending.lock().len()
    }

    /// Is a record on its way through this host's claimer and senders?
    pub fn is_pending(&self, id: &str) -> bool {
        self.pending.lock().contains(id)
    }
}

/// What a caller can hand the worker besides the configuration.
#[derive(Clone, Default)]
pub struct Extras {
    /// Where console lines go.
    pub console: channels::console::Sink,
    /// Secrets by variable name, consulted before the environment.
    pub secrets: channels::Secrets,
    /// The market monitor of this process, told about rules the bot's `/watch` and
    /// `/unwatch` create and delete (without it the rules are stored, and a monitor
    /// elsewhere loads them when it starts).
    pub market: Option<crate::market::MarketHandle>,
}

impl std::fmt::Debug for Extras {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extras")
            .field("console", &self.console)
            .field("secrets", &self.secrets)
            .field("market", &self.market.as_ref().map(|_| "MarketHandle"))
            .finish()
    }
}

/// A running notify worker.
pub struct NotifyWorker {
    pub handle: NotifyHandle,
    shutdown: watch::Sender<bool>,
    drain: watch::Sender<bool>,
    intake: Vec<JoinHandle<()>>,
    /// The Telegram command poller, when `[notify.telegram] commands` and a token.
    bot: Option<JoinHandle<()>>,
    dispatch: JoinHandle<()>,
}

/// What the API uses.
#[derive(Clone)]
pub struct NotifyHandle {
    pub shared: Arc<Shared>,
}

impl NotifyWorker {
    /// Start with console output on stdout.
    pub async fn start(
        config: &Config,
        runtime: Runtime,
        store: Arc<dyn Store>,
        docs: Arc<dyn Documents>,
    ) -> Result<NotifyWorker> {
        Self::start_with(config, runtime, store, docs, Extras::default()).await
    }

    /// Start with a chosen console sink and in-memory secrets (tests).
    pub async fn start_with(
        config: &Config,
        runtime: Runtime,
        store: Arc<dyn Store>,
        docs: Arc<dyn Documents>,
        extras: Extras,
    ) -> Result<NotifyWorker> {
        let cfg = config.notify.clone();
        let Extras {
            console,
            secrets,
            market,
        } = extras;
        let log = DeliveryLog::new(docs);
        log.ensure_indexes()
            .await
            .context("notify: creating the delivery log's indexes")?;
        let channels = channels::build(&cfg, console, &secrets)?;
        for ch in channels.values() {
            if let Some(why) = ch.unconfigured() {
                tracing::warn!(
                    channel = ch.name(),
                    "notify: channel unconfigured: {why}; its deliveries become dead letters until it is fixed"
                );
            }
        }
        // The group exists before anything reads or trims the stream: entries it has not
        // acknowledged are kept from now on (the market monitor creates it too).
        store
            .ensure_group(crate::storage::NOTIFY_REQUESTS, &cfg.group)
            .await
            .with_context(|| format!("notify: creating consumer group `{}`", cfg.group))?;
        let consumer = cfg.consumer_name();
        let owner = format!("{consumer}/{:016x}", fastrand::u64(..));
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        let (drain, drain_rx) = watch::channel(false);
        let (claimed_tx, claimed_rx) = mpsc::unbounded_channel();
        let max_in_flight = cfg.max_in_flight;
        let shared = Arc::new(Shared {
            limiter: Mutex::new(Limiter::new(cfg.rate_limits)),
            cfg,
            store,
            log,
            runtime,
            channels,
            owner,
            consumer,
            stats: NotifyStats::default(),
            prefs_cache: Mutex::new(HashMap::new()),
            ready_tx,
            pending: Mutex::new(Default::default()),
            permits: Arc::new(tokio::sync::Semaphore::new(max_in_flight)),
            claimed_tx,
            draining: drain_rx.clone(),
        });
        tracing::info!(owner = %shared.owner, "notify: starting");
        // Records this consumer left `sending` in an earlier life are settled before any
        // new claim, so none of them can be confused with a live one.
        dispatch::sweep_previous_lives(&shared).await?;
        let (shutdown, rx) = watch::channel(false);
        let dispatch = tokio::spawn(dispatch::run(
            shared.clone(),
            ready_rx,
            claimed_rx,
            rx.clone(),
            drain_rx,
        ));
        let bot = match secrets.get(&shared.cfg.telegram.token_env) {
            Some(token) if shared.cfg.telegram.commands => {
                let rules = crate::market::rule_limits::RulePolicy::from_config(&config.market);
                let bot = bot::CommandBot::new(shared.clone(), market, rules, token)?;
                Some(tokio::spawn(bot.run(rx.clone())))
            }
            _ => None,
        };
        let intake = vec![tokio::spawn(intake::run(shared.clone(), rx))];
        Ok(NotifyWorker {
            handle: NotifyHandle { shared },
            shutdown,
            drain,
            intake,
            bot,
            dispatch,
        })
    }

    /// Stop taking work, let sends in flight finish (10 s at most) and write their
    /// outcomes; records whose sender still waits for a rate-limit slot go back to
    /// `queued`, due at that slot, for the next start or another host.
    pub async fn stop(self) {
        // Intake first, so nothing it claims is left unsent; then the senders drain.
        let _ = self.shutdown.send(true);
        for t in self.intake {
            let _ = t.await;
        }
        // The poller stops mid-poll and releases its lease for another host.
        if let Some(t) = self.bot {
            let _ = t.await;
        }
        let _ = self.drain.send(true);
        let _ = self.dispatch.await;
        tracing::info!("notify: stopped");
    }
}

/// The boot id part of an owner string.
pub fn consumer_of(owner: &str) -> &str {
    owner.rsplit_once('/').map(|(c, _)| c).unwrap_or(owner)
}

/// Add one to a relaxed counter.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
