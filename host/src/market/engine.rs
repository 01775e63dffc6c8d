//! The evaluation loop: one OS thread that owns the rules, the latest prices and the
//! rule-processor sessions.
//!
//! Each cycle takes what the sources sent (up to `batch_max_ticks` ticks), filters it
//! (stale ticks, fallback ticks while the primary is healthy), hands it in batches of
//! `batch_max_ticks` to every rule processor that has rules, and turns each alert into a
//! notification request for `notify:requests` with idempotency key
//! `rule-<id>-<fired second>`. Then, after any alert or every `commit_interval_ms`, one
//! transaction enqueues the requests and writes rule states, prices and checkpoints.
//!
//! Each rule processor runs as one instance per `rules_per_instance` of its rules (a
//! "shard"), each loaded by its own `init`. A shard whose call fails — say its instance
//! runs out of memory loading its rules — stops only its own rules: the other shards and
//! processors keep evaluating every batch, its rules are reported `processor_failing`
//! with the error (API, `/metrics`), and it is retried with a doubling backoff (at once
//! when one of its rules is removed, which may have been the one it failed on). New rules
//! go to shards that work.
//!
//! Why nothing is lost or doubled across a crash: a checkpoint is only written after the
//! alerts of every tick before it are enqueued, so a restart re-plays at most the ticks
//! since the last commit; re-firing on those ticks yields the same keys, which the store
//! refuses to enqueue twice. Store errors (Redis restarting) are retried until they
//! succeed, and so is a commit refused because `notify:requests` is at its bound
//! (back-pressure: the alerts wait in the engine until the notify worker catches up);
//! meanwhile the sources wait on the full channel instead of dropping ticks.
//!
//! Stopping is bounded: once [`StopSignal::stop`] names a deadline (the end of
//! `[market] shutdown_grace_secs`), a store call still failing or pending at that moment is
//! given up and the engine ends without its last commit. Nothing is lost by that: the
//! checkpoints of the uncommitted ticks were not written either, so the next start replays
//! them and fires their alerts again under the same keys.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::cluster::owned::{Deferred, Owned};
use super::config::{MarketConfig, SourceConfig, SourceKind};
use super::health::{MarketStats, SourceHealth, SourceState};
pub use super::input::{Input, SourceBatch};
use super::rules::{Firing, Mode, Op, RuleRecord, fmt_num};
use crate::bindings::types::{Alert, Rule, Tick, TickBatch};
use crate::runtime::invoke::{RuleProcessorInit, Session};
use crate::runtime::{CallError, PluginHandle, Runtime};
use crate::storage::{Fenced, MarketCommit, PricePoint, Store, StreamFull};
use crate::util::{now_ms, rfc3339_ms};

/// How the monitor tells the engine thread it is stopping, and until when it may still
/// wait for the store. Not a message on the input channel: that channel is bounded, and
/// full exactly when the engine is stuck waiting for the store.
pub struct StopSignal(watch::Sender<Option<tokio::time::Instant>>);

impl StopSignal {
    pub fn new() -> (StopSignal, StopWatch) {
        let (tx, rx) = watch::channel(None);
        (StopSignal(tx), StopWatch(rx))
    }

    /// Stop: store calls still failing or pending at `deadline` are given up.
    pub fn stop(&self, deadline: tokio::time::Instant) {
        self.0.send_replace(Some(deadline));
    }
}

/// The engine's side of [`StopSignal`].
#[derive(Clone)]
pub struct StopWatch(watch::Receiver<Option<tokio::time::Instant>>);

impl StopWatch {
    /// The deadline has passed.
    fn expired(&self) -> bool {
        self.0
            .borrow()
            .is_some_and(|d| tokio::time::Instant::now() >= d)
    }

    /// Run `fut` to its end, or `None` once the stop deadline passes first (a future that
    /// is ready at once still completes).
    async fn until_deadline<T>(&mut self, fut: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::pin!(fut);
        loop {
            let deadline = *self.0.borrow_and_update();
            if let Some(d) = deadline {
                return tokio::time::timeout_at(d, &mut fut).await.ok();
            }
            tokio::select! {
                v = &mut fut => return Some(v),
                changed = self.0.changed() => {
                    if changed.is_err() {
                        // The monitor is gone without stopping: nobody waits for an end.
                        return Some(fut.await);
                    }
                }
            }
        }
    }
}

/// Everything the engine starts with.
pub struct EngineSetup {
    pub config: MarketConfig,
    pub health: Vec<Arc<SourceHealth>>,
    pub stats: Arc<MarketStats>,
    pub store: Arc<dyn Store>,
    pub runtime: Runtime,
    pub tokio: tokio::runtime::Handle,
    pub rules: Vec<RuleRecord>,
    pub latest: Vec<PricePoint>,
    pub stop: StopWatch,
    /// Several hosts: evaluate only the partitions this host holds (none until the
    /// coordinator hands some over).
    pub cluster: Option<ClusterSetup>,
}

/// The engine's part of `[market]` for several hosts.
#[derive(Debug, Clone)]
pub struct ClusterSetup {
    pub partitions: u32,
    pub lease_ms: u64,
    /// This host's name: its source checkpoints are its own.
    pub host: String,
}

#[derive(Clone, Copy)]
struct Latest {
    price: f64,
    ts_ms: i64,
    source: usize,
    dirty: bool,
    last_history_ts: i64,
}

/// Waits before a failing shard is called again: the next batch after its first failure
/// (most failures are one bad call), then from `RETRY_MIN` doubling to `RETRY_MAX`, so an
/// instance that fails slowly (a deadline, a memory cap while loading) costs the engine
/// thread one call per wait rather than one per batch.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// A rule processor: its plugin and its instances (shards).
struct Processor {
    handle: PluginHandle,
    shards: Vec<Shard>,
    /// Which shard evaluates each of its rules.
    shard_of: HashMap<String, usize>,
}

/// One instance of a rule processor and the rules it is loaded with.
struct Shard {
    session: Session,
    rules: BTreeSet<String>,
    /// Set while its calls fail; it is skipped until `retry_at`.
    failure: Option<Failure>,
    /// The plugin is not loaded (logged once; not a failure of the shard).
    waiting: bool,
}

struct Failure {
    error: Arc<str>,
    retry_at: Instant,
    backoff: Duration,
}

impl Processor {
    fn new(handle: PluginHandle) -> Processor {
        Processor {
            handle,
            shards: Vec::new(),
            shard_of: HashMap::new(),
        }
    }

    /// Put rule `id` in the first working shard with room, or in a new one.
    fn place(&mut self, id: &str, per_instance: usize) -> usize {
        if let Some(&i) = self.shard_of.get(id) {
            return i;
        }
        let room = self
            .shards
            .iter()
            .position(|s| s.rules.len() < per_instance && s.failure.is_none());
        let i = room.unwrap_or_else(|| {
            self.shards.push(Shard {
                session: self.handle.session(),
                rules: BTreeSet::new(),
                failure: None,
                waiting: false,
            });
            self.shards.len() - 1
        });
        self.shards[i].rules.insert(id.to_string());
        self.shard_of.insert(id.to_string(), i);
        i
    }

    /// Take rule `id` out of its shard (and out of the failing rules); the shard's index.
    /// A failing shard is retried at the next batch (the rule may have been what it
    /// failed on); an emptied one lets its instance and its failure go.
    fn take(&mut self, id: &str, stats: &MarketStats) -> Option<usize> {
        let i = self.shard_of.remove(id)?;
        stats.clear_failing([&id.to_string()]);
        let shard = &mut self.shards[i];
        shard.rules.remove(id);
        if let Some(f) = &mut shard.failure {
            f.retry_at = Instant::now();
        }
        if shard.rules.is_empty() {
            shard.session = self.handle.session();
            if shard.failure.take().is_some() {
                stats.instances_failing.fetch_sub(1, Ordering::Relaxed);
            }
        }
        Some(i)
    }
}

impl Shard {
    /// Whether to call it now: it has rules and is not waiting out a failure.
    fn due(&self, now: Instant) -> bool {
        !self.rules.is_empty() && self.failure.as_ref().is_none_or(|f| now >= f.retry_at)
    }

    /// Record the outcome of a call: a failure (logged when it starts, its rules marked,
    /// its retry pushed back) or a success (cleared). `NotLoaded` is no failure: its rules
    /// are `waiting_for_processor` and the first batch after the load evaluates them.
    fn record<T>(
        &mut self,
        result: &Result<T, CallError>,
        processor: &str,
        index: usize,
        stats: &MarketStats,
    ) {
        match result {
            Ok(_) => {
                if self.waiting {
                    tracing::info!(processor, "rule processor loaded; its rules are evaluated");
                    self.waiting = false;
                }
                if self.failure.take().is_some() {
                    tracing::info!(
                        processor,
                        instance = index,
                        rules = self.rules.len(),
                        "rule processor instance evaluates again"
                    );
                    stats.instances_failing.fetch_sub(1, Ordering::Relaxed);
                    stats.clear_failing(&self.rules);
                }
            }
            Err(CallError::NotLoaded(_)) => {
                if !self.waiting {
                    tracing::warn!(
                        processor,
                        "rule processor not loaded; its rules wait for it (logged once)"
                    );
                    self.waiting = true;
                }
            }
            Err(e) => {
                stats.evaluate_errors.fetch_add(1, Ordering::Relaxed);
                let error: Arc<str> = e.to_string().into();
                let now = Instant::now();
                match &mut self.failure {
                    Some(f) => {
                        f.backoff = (f.backoff * 2).clamp(RETRY_MIN, RETRY_MAX);
                        f.retry_at = now + f.backoff;
                        if f.error != error {
                            f.error = error.clone();
                            stats.set_failing(&self.rules, &error);
                        }
                    }
                    None => {
                        tracing::warn!(processor, instance = index, rules = self.rules.len(), error = %e,
                            "rule processor instance failed; its rules wait, the others are evaluated, retrying with backoff");
                        stats.instances_failing.fetch_add(1, Ordering::Relaxed);
                        stats.set_failing(&self.rules, &error);
                        self.failure = Some(Failure {
                            error,
                            retry_at: now,
                            backoff: Duration::ZERO,
                        });
                    }
                }
            }
        }
    }
}

struct Symbols {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Symbols {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_string(), id);
        self.names.push(name.to_string());
        id
    }
}

struct Engine {
    config: MarketConfig,
    sources: Vec<SourceConfig>,
    health: Vec<Arc<SourceHealth>>,
    /// `fallback_for` as source indices.
    primaries: Vec<Vec<usize>>,
    stats: Arc<MarketStats>,
    store: Arc<dyn Store>,
    runtime: Runtime,
    tokio: tokio::runtime::Handle,
    symbols: Symbols,
    latest: Vec<Option<Latest>>,
    /// The last price each symbol had in an evaluated batch: what a fresh processor
    /// instance is primed with, so a swap mid-stream compares the next tick with the
    /// price before it (not with a later one already taken from the queue).
    evaluated: Vec<Option<(f64, i64)>>,
    /// Per source: wall-clock ms it last delivered each symbol.
    seen: Vec<HashMap<u32, i64>>,
    rules: HashMap<String, RuleRecord>,
    processors: HashMap<String, Processor>,
    dirty_rules: BTreeSet<String>,
    checkpoints: HashMap<usize, String>,
    history: Vec<PricePoint>,
    /// Notification requests waiting for this cycle's commit, with their partitions
    /// (0 on one host).
    requests: Vec<(u32, String, String)>,
    /// When the oldest message behind `requests` arrived.
    requests_received: Option<Instant>,
    last_commit: Instant,
    stop: StopWatch,
    /// A commit was given up (stopping): no later one may be written, since it would
    /// carry later checkpoints without the given-up alerts.
    gave_up: bool,
    /// Several hosts: the partitions held and the ticks of the others.
    cluster: Option<Owned>,
    /// Several hosts: this host's name, which its checkpoints carry.
    host: Option<String>,
}

/// Run the engine until `Input::Shutdown` or until every sender is gone. `ready` is
/// signalled once the rule processors hold their rules, so sources start after that.
pub fn run(setup: EngineSetup, mut rx: mpsc::Receiver<Input>, ready: std::sync::mpsc::Sender<()>) {
    let mut engine = Engine::new(setup);
    engine.warm_up();
    let _ = ready.send(());
    let tick_wait = Duration::from_millis(engine.config.commit_interval_ms.max(10));
    loop {
        let first = engine
            .tokio
            .block_on(async { tokio::time::timeout(tick_wait, rx.recv()).await });
        let mut inputs = Vec::new();
        match first {
            Ok(Some(i)) => inputs.push(i),
            Ok(None) => break,
            Err(_) => {}
        }
        // Take whatever else is queued, up to one batch worth of ticks.
        let mut ticks: usize = inputs
            .iter()
            .map(|i| match i {
                Input::Batch(b) => b.ticks.len(),
                _ => 0,
            })
            .sum();
        // Under load a cycle grows (up to `cycle_max_ticks`) while the previous commit
        // syncs: one durable write then covers many batches.
        while ticks < engine.config.cycle_max_ticks {
            match rx.try_recv() {
                Ok(i) => {
                    if let Input::Batch(b) = &i {
                        ticks += b.ticks.len();
                    }
                    inputs.push(i);
                }
                Err(_) => break,
            }
        }
        if !engine.cycle(inputs) || engine.stop.expired() {
            break;
        }
    }
    if engine.commit() {
        tracing::info!("market engine stopped");
    } else {
        tracing::warn!(
            "market engine stopped without its last commit (the store did not take it within \
             the shutdown grace period); the next start replays those ticks from the last \
             checkpoint, firing their alerts under the same keys"
        );
    }
}

impl Engine {
    fn new(s: EngineSetup) -> Engine {
        let sources = s.config.sources.clone();
        let primaries = sources
            .iter()
            .map(|src| {
                src.fallback_for
                    .iter()
                    .filter_map(|n| sources.iter().position(|p| &p.name == n))
                    .collect()
            })
            .collect();
        let mut engine = Engine {
            seen: vec![HashMap::new(); sources.len()],
            sources,
            primaries,
            config: s.config,
            health: s.health,
            stats: s.stats,
            store: s.store,
            runtime: s.runtime,
            tokio: s.tokio,
            symbols: Symbols {
                ids: HashMap::new(),
                names: Vec::new(),
            },
            latest: Vec::new(),
            evaluated: Vec::new(),
            rules: HashMap::new(),
            processors: HashMap::new(),
            dirty_rules: BTreeSet::new(),
            checkpoints: HashMap::new(),
            history: Vec::new(),
            requests: Vec::new(),
            requests_received: None,
            last_commit: Instant::now(),
            stop: s.stop,
            gave_up: false,
            cluster: s
                .cluster
                .as_ref()
                .map(|c| Owned::new(c.partitions, c.lease_ms)),
            host: s.cluster.map(|c| c.host),
        };
        for p in s.latest {
            let sid = engine.symbols.intern(&p.symbol) as usize;
            let source = engine
                .sources
                .iter()
                .position(|c| c.name == p.source)
                .unwrap_or(usize::MAX);
            engine.ensure_sym(sid);
            engine.evaluated[sid] = Some((p.price, p.ts_ms));
            engine.latest[sid] = Some(Latest {
                price: p.price,
                ts_ms: p.ts_ms,
                source,
                dirty: false,
                last_history_ts: p.ts_ms,
            });
        }
        for r in s.rules {
            engine.insert_rule(r);
        }
        tracing::info!(
            rules = engine.rules.len(),
            symbols = engine.symbols.names.len(),
            "market engine started"
        );
        engine
    }

    /// Start each processor's instance now (loading every rule can take a while with
    /// many rules), rather than on the first tick, which would then wait for it.
    fn warm_up(&mut self) {
        let empty = TickBatch::from_ticks(now_ms(), Vec::new());
        let now = Instant::now();
        for (name, p) in self.processors.iter_mut() {
            for (index, shard) in p.shards.iter_mut().enumerate() {
                if !shard.due(now) {
                    continue;
                }
                let result = {
                    let mut init =
                        initializer(&self.rules, &shard.rules, &self.symbols, &self.evaluated);
                    shard.session.evaluate(&mut init, &empty)
                };
                shard.record(&result, name, index, &self.stats);
            }
        }
    }

    fn ensure_sym(&mut self, sid: usize) {
        if self.latest.len() <= sid {
            self.latest.resize(sid + 1, None);
            self.evaluated.resize(sid + 1, None);
        }
    }

    fn default_processor(&self) -> &str {
        &self.config.default_processor
    }

    /// Track a rule without calling any plugin (the next call's init loads it).
    fn insert_rule(&mut self, r: RuleRecord) {
        let sid = self.symbols.intern(&r.symbol) as usize;
        self.ensure_sym(sid);
        let proc_name = r.processor_or(&self.config.default_processor).to_string();
        if r.is_live() {
            let runtime = &self.runtime;
            self.processors
                .entry(proc_name.clone())
                .or_insert_with(|| Processor::new(runtime.plugin(&proc_name)))
                .place(&r.id, self.config.rules_per_instance.max(1));
        }
        self.rules.insert(r.id.clone(), r);
    }

    /// One cycle; false to stop.
    fn cycle(&mut self, inputs: Vec<Input>) -> bool {
        let mut batch: Vec<Tick> = Vec::new();
        let mut oldest: Option<Instant> = None;
        let mut stop = false;
        let mut flushes = Vec::new();
        let now = now_ms();
        for input in inputs {
            match input {
                Input::Batch(b) => {
                    oldest = Some(oldest.map_or(b.received, |o| o.min(b.received)));
                    self.take_ticks(b, now, &mut batch);
                }
                Input::Upsert {
                    rule,
                    keep_firing,
                    done,
                } => {
                    // Ticks before the change are evaluated under the old rule.
                    self.evaluate(&mut batch, oldest.take());
                    self.upsert(*rule, keep_firing);
                    let _ = done.send(());
                }
                Input::Remove { id, done } => {
                    self.evaluate(&mut batch, oldest.take());
                    self.remove(&id);
                    let _ = done.send(());
                }
                Input::Flush(done) => flushes.push(done),
                Input::Shutdown => stop = true,
                Input::Acquired {
                    parts,
                    rules,
                    latest,
                    done,
                } => {
                    self.evaluate(&mut batch, oldest.take());
                    self.acquire(parts, rules, latest, &mut batch);
                    let _ = done.send(());
                }
                Input::Release { parts, done } => {
                    // Everything evaluated so far is committed before the partitions go,
                    // so the next owner starts exactly where this host stopped.
                    self.evaluate(&mut batch, oldest.take());
                    let committed = self.commit();
                    self.drop_partitions(&parts);
                    let _ = done.send(committed);
                }
                Input::Lost { parts } => self.drop_partitions(&parts),
            }
        }
        self.evaluate(&mut batch, oldest);
        let mut committed = true;
        if !self.requests.is_empty()
            || !flushes.is_empty()
            || stop
            || self.last_commit.elapsed() >= Duration::from_millis(self.config.commit_interval_ms)
        {
            committed = self.commit();
        }
        // A flush that was not committed (stopping) is not answered: its caller sees the
        // engine go away.
        if committed {
            for f in flushes {
                let _ = f.send(());
            }
        }
        !stop && committed
    }

    fn take_ticks(&mut self, b: SourceBatch, now: i64, batch: &mut Vec<Tick>) {
        let src = b.source;
        let live = self.sources[src].kind != SourceKind::Replay;
        let stale_after = self.health[src].stale_after_ms;
        for t in b.ticks {
            if !(t.price.is_finite() && t.price > 0.0) {
                continue;
            }
            if live && t.ts_ms < now - stale_after {
                self.stats.ticks_stale.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let sid = self.symbols.intern(&t.symbol);
            self.seen[src].insert(sid, now);
            if self.shadowed(src, sid, now) {
                self.stats.ticks_shadowed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if let Some(c) = &mut self.cluster {
                let p = c.partition(sid, &t.symbol);
                // Kept whoever evaluates it: a host taking the partition over evaluates
                // the ticks after its last commit from here (this host too, after its
                // lease lapsed and its uncommitted work was dropped).
                c.buffer(p, src, sid, t.price, t.ts_ms);
                if !c.owns(p) {
                    continue;
                }
                if c.evaluated_before(sid, t.ts_ms) {
                    self.stats
                        .ticks_evaluated_before
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            self.accept(src, sid, t.price, t.ts_ms, batch);
        }
        if let Some(c) = b.checkpoint {
            self.checkpoints.insert(src, c);
        }
    }

    /// Take a tick this host evaluates: latest price, history, and the batch.
    fn accept(&mut self, src: usize, sid: u32, price: f64, ts_ms: i64, batch: &mut Vec<Tick>) {
        self.ensure_sym(sid as usize);
        let interval = self.config.history_interval_ms as i64;
        let slot = &mut self.latest[sid as usize];
        let last_history_ts = match slot {
            Some(l) if ts_ms - l.last_history_ts < interval => l.last_history_ts,
            _ => {
                self.history.push(PricePoint {
                    symbol: self.symbols.names[sid as usize].clone(),
                    price,
                    ts_ms,
                    source: self.sources[src].name.clone(),
                });
                ts_ms
            }
        };
        *slot = Some(Latest {
            price,
            ts_ms,
            source: src,
            dirty: true,
            last_history_ts,
        });
        batch.push(Tick {
            symbol_id: sid,
            price,
            ts_ms,
        });
    }

    /// A fallback source's tick is not used while one of its primaries is healthy for
    /// that symbol: not marked stale, and it delivered the symbol within `stale_after`.
    /// (A primary that is reconnecting or rotating with a fresh price still counts.)
    fn shadowed(&self, src: usize, sid: u32, now: i64) -> bool {
        self.primaries[src].iter().any(|&p| {
            let h = &self.health[p];
            h.state() != SourceState::Stale
                && self.seen[p]
                    .get(&sid)
                    .is_some_and(|t| now - t <= h.stale_after_ms)
        })
    }

    /// Evaluate and empty `batch`; returns how many alerts were enqueued.
    fn evaluate(&mut self, batch: &mut Vec<Tick>, received: Option<Instant>) -> usize {
        if batch.is_empty() {
            return 0;
        }
        let all = std::mem::take(batch);
        let mut fired = 0;
        for chunk in all.chunks(self.config.batch_max_ticks.max(1)) {
            fired += self.evaluate_batch(chunk.to_vec(), received);
        }
        fired
    }

    /// One processor call per processor for one batch.
    fn evaluate_batch(&mut self, ticks: Vec<Tick>, received: Option<Instant>) -> usize {
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .ticks_evaluated
            .fetch_add(ticks.len() as u64, Ordering::Relaxed);
        let tick_batch = TickBatch::from_ticks(now_ms(), ticks);
        let mut alerts = Vec::new();
        let now = Instant::now();
        // Every due shard of every processor, each on its own: one that fails (or waits
        // out its backoff) holds up no other.
        for (name, p) in self.processors.iter_mut() {
            for (index, shard) in p.shards.iter_mut().enumerate() {
                if !shard.due(now) {
                    continue;
                }
                let started = Instant::now();
                let result = {
                    let mut init =
                        initializer(&self.rules, &shard.rules, &self.symbols, &self.evaluated);
                    shard.session.evaluate(&mut init, &tick_batch)
                };
                self.stats
                    .evaluate_latency
                    .record(started.elapsed().as_nanos() as u64);
                shard.record(&result, name, index, &self.stats);
                if let Ok(a) = result {
                    alerts.extend(a);
                }
            }
        }
        for t in tick_batch.iter() {
            self.evaluated[t.symbol_id as usize] = Some((t.price, t.ts_ms));
        }
        let fired = alerts.len();
        self.enqueue(alerts, received);
        fired
    }

    /// Record each alert's firing state and stage its notification request for the
    /// cycle's commit.
    fn enqueue(&mut self, alerts: Vec<Alert>, received: Option<Instant>) {
        let mut items = Vec::with_capacity(alerts.len());
        for a in alerts {
            let Some(rule) = self.rules.get_mut(&a.rule_id) else {
                continue;
            };
            rule.firing = Firing {
                armed: a.state.armed,
                last_fired_ms: a.state.last_fired_ms,
                fired_count: a.state.fired_count,
            };
            self.dirty_rules.insert(rule.id.clone());
            let source = self
                .latest
                .get(a.symbol_id as usize)
                .copied()
                .flatten()
                .and_then(|l| self.sources.get(l.source))
                .map(|s| s.name.clone())
                .unwrap_or_default();
            let part = match &mut self.cluster {
                Some(c) => c.partition(a.symbol_id, &rule.symbol),
                None => 0,
            };
            let key = format!("rule-{}-{}", rule.id, a.fired_at_ms.div_euclid(1000));
            let body = notification_request(rule, &a, &key, &source).to_string();
            if rule.trigger.mode == Mode::Once
                && let Some(p) = self
                    .processors
                    .get_mut(rule.processor_or(&self.config.default_processor))
            {
                p.take(&rule.id, &self.stats);
            }
            items.push((part, key, body));
        }
        if items.is_empty() {
            return;
        }
        self.requests.extend(items);
        if let Some(r) = received {
            self.requests_received = Some(self.requests_received.map_or(r, |o| o.min(r)));
        }
    }

    /// Run a store operation until it succeeds, backing off; store outages and a full
    /// `notify:requests` must not lose alerts or checkpoints. `None` only when stopping
    /// and the grace period ran out first.
    fn until_stored<T, F, Fut>(&self, what: &str, mut op: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        let mut delay = Duration::from_millis(50);
        let mut waiting_for_room = false;
        let mut stop = self.stop.clone();
        loop {
            match self.tokio.block_on(stop.until_deadline(op()))? {
                Ok(v) => {
                    if waiting_for_room {
                        tracing::info!("{what}: the stream has room again; the engine goes on");
                    }
                    return Some(v);
                }
                Err(e) => match StreamFull::find(&e) {
                    Some(full) => {
                        // Back-pressure: the alerts stay here (and the sources wait) until
                        // the consumers catch up. Logged once per episode.
                        if !waiting_for_room {
                            tracing::warn!(error = %full, "{what}: waiting for room (back-pressure); no alert is dropped");
                            waiting_for_room = true;
                        }
                    }
                    None => {
                        self.stats.store_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "store failed to {what}; retrying");
                    }
                },
            }
            // The timer is made inside the runtime: this thread is not one of its own.
            self.tokio
                .block_on(stop.until_deadline(async { tokio::time::sleep(delay).await }))?;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    fn upsert(&mut self, mut rule: RuleRecord, keep_firing: bool) {
        if let Some(c) = &mut self.cluster
            && !c.owns(super::cluster::partition_of(&rule.symbol, c.partitions))
        {
            // Another host's rule, or one of a partition this host is taking over now.
            c.defer(Deferred::Upsert(Box::new(rule), keep_firing));
            return;
        }
        if let Some(old) = self.rules.get(&rule.id) {
            if keep_firing {
                rule.firing = old.firing;
            }
            let old_proc = old.processor_or(self.default_processor()).to_string();
            self.unplace(&old_proc, &rule.id);
        }
        let id = rule.id.clone();
        let live = rule.is_live();
        let proc_name = rule.processor_or(self.default_processor()).to_string();
        self.insert_rule(rule);
        self.dirty_rules.insert(id.clone());
        if !live {
            return;
        }
        let Some(p) = self.processors.get_mut(&proc_name) else {
            return;
        };
        let Some(shard) = p.shard_of.get(&id).and_then(|&i| p.shards.get_mut(i)) else {
            return;
        };
        // A session that still has to start loads every rule, this one included.
        if shard.session.needs_init() {
            return;
        }
        let sid = self.symbols.ids[&self.rules[&id].symbol];
        let wit = self.rules[&id].to_wit(sid);
        let mut init = initializer(&self.rules, &shard.rules, &self.symbols, &self.evaluated);
        match shard.session.upsert_rules(&mut init, &[wit]) {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => {
                tracing::warn!(rule = %id, processor = %proc_name, error = %msg, "processor refused the rule")
            }
            Err(e) => {
                tracing::warn!(rule = %id, processor = %proc_name, error = %e, "processor not reachable; the rule loads when it is")
            }
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(c) = &mut self.cluster
            && !self.rules.contains_key(id)
        {
            c.defer(Deferred::Remove(id.to_string()));
        }
        self.dirty_rules.remove(id);
        let Some(old) = self.rules.remove(id) else {
            return;
        };
        let proc_name = old.processor_or(self.default_processor()).to_string();
        self.unplace(&proc_name, id);
    }

    /// Take rule `id` out of processor `proc_name`: out of its shard, out of the failing
    /// rules, and out of the shard's live instance.
    fn unplace(&mut self, proc_name: &str, id: &str) {
        let Some(p) = self.processors.get_mut(proc_name) else {
            return;
        };
        let Some(i) = p.take(id, &self.stats) else {
            return;
        };
        let shard = &mut p.shards[i];
        if !shard.rules.is_empty() && !shard.session.needs_init() {
            let mut init = initializer(&self.rules, &shard.rules, &self.symbols, &self.evaluated);
            let _ = shard.session.remove_rules(&mut init, &[id.to_string()]);
        }
    }

    /// Enqueue staged requests and write dirty rules, prices, history and checkpoints in
    /// one transaction. False only when stopping and the store did not take it within
    /// the grace period (then the engine ends; the next start replays from the last
    /// checkpoint). Several hosts: the commit is fenced with the leases of the partitions
    /// held; a partition whose lease another host holds now is dropped with its
    /// uncommitted work (its new owner evaluates it from the last commit) and the rest is
    /// committed.
    fn commit(&mut self) -> bool {
        if self.gave_up {
            return false;
        }
        let staged = std::mem::take(&mut self.requests);
        let mut parts: Vec<u32> = staged.iter().map(|(p, _, _)| *p).collect();
        let mut commit = MarketCommit {
            requests: staged.into_iter().map(|(_, k, b)| (k, b)).collect(),
            ..Default::default()
        };
        let received = self.requests_received.take();
        for id in std::mem::take(&mut self.dirty_rules) {
            if let Some(r) = self.rules.get(&id)
                && let Ok(json) = serde_json::to_string(r)
            {
                commit.rules.push((id, json));
            }
        }
        for sid in 0..self.latest.len() {
            let owned = self.owns_symbol(&self.symbols.names[sid]);
            if let Some(l) = &mut self.latest[sid]
                && l.dirty
            {
                l.dirty = false;
                if !owned {
                    continue;
                }
                commit.latest.push(PricePoint {
                    symbol: self.symbols.names[sid].clone(),
                    price: l.price,
                    ts_ms: l.ts_ms,
                    source: self
                        .sources
                        .get(l.source)
                        .map(|s| s.name.clone())
                        .unwrap_or_default(),
                });
            }
        }
        commit.history = std::mem::take(&mut self.history);
        commit.history.retain(|h| self.owns_symbol(&h.symbol));
        for (src, c) in std::mem::take(&mut self.checkpoints) {
            commit.checkpoints.push((
                checkpoint_name(&self.sources[src].name, self.host.as_deref()),
                c,
            ));
        }
        self.last_commit = Instant::now();
        let store = self.store.clone();
        let started = Instant::now();
        let ids = loop {
            if let Some(c) = &self.cluster {
                commit.fence = c.fence();
            }
            if commit.requests.is_empty()
                && commit.rules.is_empty()
                && commit.latest.is_empty()
                && commit.history.is_empty()
                && commit.checkpoints.is_empty()
            {
                return true;
            }
            let shared = Arc::new(commit);
            let outcome = self.until_stored("commit market state", || {
                let (store, commit) = (store.clone(), shared.clone());
                async move {
                    match store.commit_market(&commit).await {
                        Ok(ids) => Ok(Ok(ids)),
                        Err(e) => match Fenced::find(&e) {
                            Some(f) => Ok(Err(f.lost.clone())),
                            None => Err(e),
                        },
                    }
                }
            });
            commit = Arc::try_unwrap(shared).unwrap_or_else(|a| (*a).clone());
            match outcome {
                None => {
                    tracing::warn!(
                        alerts = commit.requests.len(),
                        checkpoints = commit.checkpoints.len(),
                        "market engine: commit given up at the end of the shutdown grace period"
                    );
                    self.gave_up = true;
                    return false;
                }
                Some(Ok(ids)) => break ids,
                Some(Err(lost)) => {
                    let lost: Vec<u32> = lost
                        .iter()
                        .filter_map(|k| Owned::partition_of_key(k))
                        .collect();
                    tracing::warn!(partitions = ?lost, "market engine: commit refused, another host holds these partitions now; their uncommitted work is left to it");
                    self.stats.commits_fenced.fetch_add(1, Ordering::Relaxed);
                    self.drop_partitions(&lost);
                    let keep: Vec<bool> = parts.iter().map(|p| !lost.contains(p)).collect();
                    let mut i = 0;
                    commit.requests.retain(|_| {
                        i += 1;
                        keep[i - 1]
                    });
                    parts.retain(|p| !lost.contains(p));
                    commit.rules.retain(|(id, _)| self.rules.contains_key(id));
                    commit.latest.retain(|p| self.owns_symbol(&p.symbol));
                    commit.history.retain(|p| self.owns_symbol(&p.symbol));
                }
            }
        };
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        self.stats
            .commit_latency
            .record(started.elapsed().as_nanos() as u64);
        let latency = received.map(|r| r.elapsed().as_nanos() as u64);
        for ((key, _), id) in commit.requests.iter().zip(ids) {
            match id {
                Some(_) => {
                    self.stats.alerts.fetch_add(1, Ordering::Relaxed);
                    if let Some(ns) = latency {
                        self.stats.alert_latency.record(ns);
                    }
                    tracing::debug!(%key, "alert enqueued");
                }
                None => {
                    self.stats.alerts_duplicate.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%key, "alert already enqueued before; not repeated");
                }
            }
        }
        true
    }

    /// Whether this host evaluates `symbol` (always, on one host).
    fn owns_symbol(&self, symbol: &str) -> bool {
        self.cluster
            .as_ref()
            .is_none_or(|c| c.owns(super::cluster::partition_of(symbol, c.partitions)))
    }

    /// Take over partitions: their committed prices become each symbol's last evaluated
    /// price and floor, their committed rules are loaded (with changes that arrived while
    /// the leases were being taken), and the ticks this host kept of them since then are
    /// evaluated into `batch`.
    fn acquire(
        &mut self,
        parts: Vec<(u32, String)>,
        rules: Vec<RuleRecord>,
        latest: Vec<PricePoint>,
        batch: &mut Vec<Tick>,
    ) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.take(&parts);
        let ps: Vec<u32> = parts.iter().map(|(p, _)| *p).collect();
        for p in latest {
            let sid = self.symbols.intern(&p.symbol);
            self.ensure_sym(sid as usize);
            let source = self
                .sources
                .iter()
                .position(|c| c.name == p.source)
                .unwrap_or(usize::MAX);
            self.evaluated[sid as usize] = Some((p.price, p.ts_ms));
            self.latest[sid as usize] = Some(Latest {
                price: p.price,
                ts_ms: p.ts_ms,
                source,
                dirty: false,
                last_history_ts: p.ts_ms,
            });
            if let Some(c) = &mut self.cluster {
                c.set_floor(sid, &p.symbol, p.ts_ms);
            }
        }
        let loaded = rules.len();
        for r in rules {
            self.symbols.intern(&r.symbol);
            self.rules.insert(r.id.clone(), r);
        }
        let deferred = self
            .cluster
            .as_mut()
            .map(|c| c.take_deferred())
            .unwrap_or_default();
        for d in deferred {
            match d {
                Deferred::Upsert(mut rule, keep_firing) => {
                    if !self.owns_symbol(&rule.symbol) {
                        continue;
                    }
                    if keep_firing && let Some(old) = self.rules.get(&rule.id) {
                        rule.firing = old.firing;
                    }
                    self.symbols.intern(&rule.symbol);
                    self.dirty_rules.insert(rule.id.clone());
                    self.rules.insert(rule.id.clone(), *rule);
                }
                Deferred::Remove(id) => {
                    self.rules.remove(&id);
                    self.dirty_rules.remove(&id);
                }
            }
        }
        self.reset_processors();
        let buffered = self
            .cluster
            .as_mut()
            .map(|c| c.drain(&ps))
            .unwrap_or_default();
        let mut caught_up = 0u64;
        for b in buffered {
            if self
                .cluster
                .as_ref()
                .is_some_and(|c| c.evaluated_before(b.sid, b.ts_ms))
            {
                continue;
            }
            self.accept(b.source, b.sid, b.price, b.ts_ms, batch);
            caught_up += 1;
        }
        self.stats
            .ticks_caught_up
            .fetch_add(caught_up, Ordering::Relaxed);
        tracing::info!(partitions = ?ps, rules = loaded, ticks_caught_up = caught_up, "market engine: evaluating newly held partitions from their last commit");
    }

    /// Stop evaluating `parts` (given up after their commit, or lost): their rules and
    /// uncommitted work go.
    fn drop_partitions(&mut self, parts: &[u32]) {
        let Some(c) = self.cluster.as_mut() else {
            return;
        };
        c.drop_parts(parts);
        let n = c.partitions;
        let of = |symbol: &str| super::cluster::partition_of(symbol, n);
        self.rules.retain(|_, r| !parts.contains(&of(&r.symbol)));
        let rules = &self.rules;
        self.dirty_rules.retain(|id| rules.contains_key(id));
        self.requests.retain(|(p, _, _)| !parts.contains(p));
        self.history.retain(|h| !parts.contains(&of(&h.symbol)));
        for (sid, slot) in self.latest.iter_mut().enumerate() {
            if let Some(l) = slot
                && parts.contains(&of(&self.symbols.names[sid]))
            {
                l.dirty = false;
            }
        }
        self.reset_processors();
    }

    /// Fresh processor instances for the rules held now: each loads its rules and the
    /// last evaluated prices at its next call (after partitions changed hands).
    fn reset_processors(&mut self) {
        for p in self.processors.values() {
            for s in &p.shards {
                self.stats.clear_failing(&s.rules);
                if s.failure.is_some() {
                    self.stats.instances_failing.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        self.processors.clear();
        let mut rules: Vec<RuleRecord> = std::mem::take(&mut self.rules).into_values().collect();
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        for r in rules {
            self.insert_rule(r);
        }
    }
}

/// The checkpoint key of a source; with several hosts each host's own (`@<host>`), since
/// each reads every feed at its own pace.
pub fn checkpoint_name(source: &str, host: Option<&str>) -> String {
    match host {
        Some(h) => format!("source:{source}@{h}"),
        None => format!("source:{source}"),
    }
}

/// The `init` a session runs on each fresh instance: every live rule of the processor,
/// then the last known prices, so crossings compare with the real previous price.
fn initializer<'a>(
    rules: &'a HashMap<String, RuleRecord>,
    ids: &'a BTreeSet<String>,
    symbols: &'a Symbols,
    evaluated: &'a [Option<(f64, i64)>],
) -> impl FnMut(&mut RuleProcessorInit<'_>) -> wasmtime::Result<()> + 'a {
    move |p| {
        let wit: Vec<Rule> = ids
            .iter()
            .filter_map(|id| rules.get(id))
            .filter(|r| r.is_live())
            .filter_map(|r| {
                let sid = *symbols.ids.get(&r.symbol)?;
                let mut w = r.to_wit(sid);
                rearm(r, &mut w, evaluated.get(sid as usize).copied().flatten());
                Some(w)
            })
            .collect();
        for chunk in wit.chunks(10_000) {
            if let Err(msg) = p.upsert_rules(chunk)? {
                tracing::warn!(error = %msg, "rule processor refused rules while loading");
            }
        }
        let prices: Vec<(u32, f64, i64)> = evaluated
            .iter()
            .enumerate()
            .filter_map(|(sid, l)| l.map(|(price, ts)| (sid as u32, price, ts)))
            .collect();
        p.prime_prices(&prices)?;
        tracing::info!(
            rules = wit.len(),
            prices = prices.len(),
            "rule processor instance loaded"
        );
        Ok(())
    }
}

/// Apply a re-arm the previous instance did without telling us. Processors report a
/// rule's state only when it fires, and a disarmed `every` rule re-arms silently once its
/// condition turns false; a processor treats a disarmed rule it is handed as "waiting for
/// a false condition". So before handing a rule to a fresh instance (swap, restart):
/// a level rule is armed if its condition is false at the last evaluated price, and a
/// crossing is always armed once a price is known (it cannot hold on two ticks in a row,
/// so the tick after any firing re-armed it).
fn rearm(r: &RuleRecord, w: &mut Rule, last: Option<(f64, i64)>) {
    if r.trigger.mode != Mode::Every || w.state.armed {
        return;
    }
    let Some((price, _)) = last else {
        return;
    };
    let v = r.condition.value;
    w.state.armed = match r.condition.op {
        Op::Above => price <= v,
        Op::Below => price >= v,
        Op::CrossesUp | Op::CrossesDown => true,
        Op::PctChange => false,
    };
}

/// The notification request for an alert (SPEC §9 shape).
fn notification_request(
    rule: &RuleRecord,
    a: &Alert,
    key: &str,
    source: &str,
) -> serde_json::Value {
    let price = fmt_num(a.price);
    let body = if source.is_empty() {
        format!("{} is {price}: {}", rule.symbol, a.reason)
    } else {
        format!("{} is {price} ({source}): {}", rule.symbol, a.reason)
    };
    let mut req = json!({
        "id": key,
        "user_id": rule.user_id,
        "kind": "price_alert",
        "priority": "normal",
        "title": rule.title(),
        "body": body,
        "data": {
            "rule_id": rule.id,
            "symbol": rule.symbol,
            "price": a.price,
            "reference_price": a.reference_price,
            "fired_at": rfc3339_ms(a.fired_at_ms),
            "reason": a.reason,
            "source": source,
            "note": rule.note,
        },
    });
    if let Some(ch) = &rule.channels {
        req["channels"] = json!(ch);
    }
    req
}
