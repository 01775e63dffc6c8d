//! The worker loop: one task per host that keeps every schedule's shared record in a
//! cache, wakes when one of them needs a look (an occurrence comes due, a lease needs
//! renewing or has lapsed, a retry is due, a try finished), plans the change with
//! [`claim::step`] and writes all changes of one moment in one compare-and-set batch.
//! A lost write re-reads the record from the answer and plans again.
//!
//! The store's clock decides: each answer carries it, and the worker keeps the offset
//! of its own clock from it, so hosts with skewed clocks still agree on when an
//! occurrence is due and when a lease has lapsed.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{mpsc, watch};

use super::Shared;
use super::catalog::{self, Definition};
use super::claim::{self, Ctx, Effect, Finished, ScheduleState, Trigger};
use super::history::{self, HistoryWriter, TryRecord};
use super::runner::{Done, Pool, Try};
use super::service;
use crate::storage::{ScheduleCas, ScheduleWrite};
use crate::util::{now_ms, rfc3339_ms};

/// How many records one load batch carries at most.
const BATCH: usize = 512;
/// How many records one write batch carries at most. Small batches in an order of each
/// host's own let two hosts waking at the same moment each win a share of the
/// occurrences, rather than one host winning every one of them in one big script and
/// starting them all itself.
const WRITE_BATCH: usize = 64;
/// How often the history is pruned (by every host; pruning twice is harmless).
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// A schedule that could not act (its plugin missing here, the store failing) is
/// looked at again after this long.
const RECHECK_MS: i64 = 1000;
/// Tries a host takes at most, per plugin-call thread (`[scheduler] max_concurrent_runs`):
/// those beyond the threads wait in this host's queue, started within moments (tasks are
/// short next to the schedules' periods), while a host cannot take more than it will
/// begin soon and leave nothing for the others.
const TAKEN_PER_THREAD: usize = 16;
/// How long before its time an idle schedule's occurrence is taken (`claim::claim_ahead`):
/// the claim's write is done when the time comes and the try begins on the dot, instead
/// of after every host has planned and written all that fell due at that instant.
const CLAIM_AHEAD_MS: i64 = 150;

struct Entry {
    def: Definition,
    state: Option<ScheduleState>,
    version: u64,
    /// The record was read at least once.
    loaded: bool,
    /// When to look again (store clock).
    wake: Option<i64>,
    /// Claims this host is running.
    mine: HashSet<String>,
    /// Tries finished here and not yet written.
    finished: Vec<(Finished, Option<i64>)>,
    dirty: bool,
}

impl Entry {
    fn new(def: Definition) -> Entry {
        Entry {
            def,
            state: None,
            version: 0,
            loaded: false,
            wake: None,
            mine: HashSet::new(),
            finished: Vec::new(),
            dirty: true,
        }
    }
}

pub(super) struct Loop {
    shared: Arc<Shared>,
    entries: BTreeMap<String, Entry>,
    /// The store's clock minus this host's.
    offset_ms: i64,
    in_flight: usize,
    pool: Pool,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    history: HistoryWriter,
    signal: Option<String>,
    waiting_logged: HashSet<String>,
}

impl Loop {
    pub(super) fn new(shared: Arc<Shared>, history: HistoryWriter) -> Loop {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let pool = Pool::new(shared.cfg.max_concurrent_runs);
        Loop {
            shared,
            entries: BTreeMap::new(),
            offset_ms: 0,
            in_flight: 0,
            pool,
            done_tx,
            done_rx,
            history,
            signal: None,
            waiting_logged: HashSet::new(),
        }
    }

    fn now(&self) -> i64 {
        now_ms() + self.offset_ms
    }

    fn observe_clock(&mut self, store_now: i64) {
        self.offset_ms = store_now - now_ms();
    }

    /// Run until `stop` turns true, then give runs in flight `grace_ms` to finish.
    ///
    /// The loop itself never waits for the document store: the definitions are read by
    /// [`feed`] and the history is pruned and written by tasks of their own, so a slow
    /// document store delays neither an occurrence nor a lease renewal.
    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let (refresh_tx, mut refresh_rx) = mpsc::channel(4);
        tokio::spawn(feed(self.shared.clone(), refresh_tx, stop.clone()));
        if let Some(first) = refresh_rx.recv().await {
            self.refresh(first).await;
        }
        let mut next_prune = Instant::now() + Duration::from_secs(30);
        loop {
            let wake_at = self.next_wake_instant();
            tokio::select! {
                _ = stop.changed() => break,
                got = self.done_rx.recv() => {
                    if let Some(d) = got {
                        self.on_done(d);
                    }
                    while let Ok(d) = self.done_rx.try_recv() {
                        self.on_done(d);
                    }
                }
                got = refresh_rx.recv() => {
                    if let Some(r) = got {
                        self.refresh(r).await;
                    }
                }
                _ = tokio::time::sleep_until(wake_at.into()) => {}
            }
            self.sync_due().await;
            if Instant::now() >= next_prune {
                next_prune = Instant::now() + PRUNE_EVERY;
                self.prune();
            }
        }
        self.drain().await;
    }

    /// Stop starting tries; let those in flight finish within the grace period and write
    /// their outcomes. One still running after it is left to its lease.
    async fn drain(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(self.shared.cfg.grace_ms);
        if self.in_flight > 0 {
            tracing::info!(
                worker = "scheduler",
                in_flight = self.in_flight,
                "shutting down: waiting for tries in flight"
            );
        }
        self.shared
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
        while self.in_flight > 0 {
            match tokio::time::timeout_at(deadline.into(), self.done_rx.recv()).await {
                Ok(Some(d)) => {
                    self.on_done(d);
                    self.sync_due().await;
                }
                _ => break,
            }
        }
        if self.in_flight > 0 {
            tracing::warn!(
                worker = "scheduler",
                in_flight = self.in_flight,
                "shutting down with tries still running; their leases lapse and another host tries them again"
            );
        }
    }

    fn next_wake_instant(&self) -> Instant {
        let now = self.now();
        let soonest = self
            .entries
            .values()
            .filter_map(|e| if e.dirty { Some(now) } else { e.wake })
            .min();
        match soonest {
            Some(t) => Instant::now() + Duration::from_millis((t - now).clamp(0, 60_000) as u64),
            None => Instant::now() + Duration::from_secs(60),
        }
    }

    fn on_done(&mut self, d: Done) {
        let was_full = self.in_flight >= self.shared.cfg.max_concurrent_runs * TAKEN_PER_THREAD;
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(e) = self.entries.get_mut(&d.schedule) else {
            // Deleted meanwhile: record the try all the same.
            let f = &d.finished;
            self.history.push(history::finished_doc(
                &d.schedule,
                &f.id,
                Trigger::Schedule,
                f.id.parse().unwrap_or(f.started_ms),
                &self.shared.host,
                &f.owner,
                f.started_ms,
                f.finished_ms,
                f.attempt,
                &f.outcome,
                None,
                true,
            ));
            return;
        };
        e.finished.push((d.finished, d.lag_ms));
        e.dirty = true;
        if !was_full {
            return;
        }
        // A slot is free again: schedules with waiting claims may start one.
        for e in self.entries.values_mut() {
            if e.state
                .as_ref()
                .is_some_and(|s| s.runs.iter().any(|c| c.lease.is_none()))
            {
                e.dirty = true;
            }
        }
    }

    /// Take in re-read definitions (config + API) and, when asked or signalled, re-read
    /// every record.
    async fn refresh(&mut self, r: Refresh) {
        let mut defs = self.shared.config_defs.clone();
        match r.api {
            Some(api) => {
                for d in api {
                    if !defs.iter().any(|c| c.name() == d.name()) {
                        defs.push(d);
                    }
                }
            }
            None => {
                // The document store did not answer: keep the API-made ones known.
                for e in self.entries.values() {
                    if e.def.origin == catalog::Origin::Api {
                        defs.push(e.def.clone());
                    }
                }
            }
        }
        let names: HashSet<String> = defs.iter().map(|d| d.name().to_string()).collect();
        let gone: Vec<String> = self
            .entries
            .keys()
            .filter(|n| !names.contains(*n))
            .cloned()
            .collect();
        for n in gone {
            if let Some(e) = self.entries.get(&n)
                && (!e.mine.is_empty() || !e.finished.is_empty())
            {
                continue; // keep it until its tries here are written
            }
            tracing::info!(worker = "scheduler", schedule = %n, "schedule removed");
            self.entries.remove(&n);
        }
        for d in defs {
            match self.entries.get_mut(d.name()) {
                Some(e) => {
                    if e.def.stamp != d.stamp || e.def.schedule.spec != d.schedule.spec {
                        e.dirty = true;
                    }
                    e.def = d;
                }
                None => {
                    tracing::info!(worker = "scheduler", schedule = %d.name(), origin = d.origin.as_str(), "schedule added");
                    self.entries.insert(d.name().to_string(), Entry::new(d));
                }
            }
        }
        let signalled = r.signal != self.signal;
        self.signal = r.signal;
        if r.reload_all || signalled {
            let all: Vec<String> = self.entries.keys().cloned().collect();
            self.load(&all).await;
        }
    }

    /// Read the records of `names` into the cache.
    async fn load(&mut self, names: &[String]) {
        for chunk in names.chunks(BATCH) {
            match self.shared.store.schedule_load(chunk).await {
                Ok(read) => {
                    self.observe_clock(read.now_ms);
                    for (name, record) in chunk.iter().zip(read.records) {
                        if let Some(e) = self.entries.get_mut(name) {
                            e.state = record.json.as_deref().and_then(|j| parse_state(name, j));
                            e.version = record.version;
                            e.loaded = true;
                            e.dirty = true;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(worker = "scheduler", error = %format!("{e:#}"),
                        "could not read the schedules' records; retrying");
                }
            }
        }
    }

    /// Plan and write every schedule that needs a look now.
    async fn sync_due(&mut self) {
        let now = self.now();
        let mut names: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.dirty || e.wake.is_some_and(|w| w <= now))
            .map(|(n, _)| n.clone())
            .collect();
        let unloaded: Vec<String> = names
            .iter()
            .filter(|n| self.entries.get(*n).is_some_and(|e| !e.loaded))
            .cloned()
            .collect();
        if !unloaded.is_empty() {
            self.load(&unloaded).await;
        }
        for _round in 0..8 {
            if names.is_empty() {
                break;
            }
            names = self.sync_round(names).await;
        }
    }

    /// One planning and writing round; returns the names whose write lost.
    async fn sync_round(&mut self, mut names: Vec<String>) -> Vec<String> {
        fastrand::shuffle(&mut names);
        let now = self.now();
        let stopping = self
            .shared
            .stopping
            .load(std::sync::atomic::Ordering::Acquire);
        let max = self.shared.cfg.max_concurrent_runs * TAKEN_PER_THREAD;
        let lease_ms = self.shared.cfg.lease_ms as i64;
        let mut reserved = 0usize;
        let mut writes = Vec::new();
        let mut plans: Vec<(String, claim::Step, usize)> = Vec::new();
        for name in names {
            let shared = self.shared.clone();
            let Some(e) = self.entries.get_mut(&name) else {
                continue;
            };
            e.dirty = false;
            if !e.loaded {
                e.wake = Some(now + RECHECK_MS);
                continue;
            }
            if e.state
                .as_ref()
                .is_some_and(|s| s.deleted && s.def.uid == e.def.stamp.uid)
            {
                // Deleted through the API (this host has not re-read the definitions
                // yet): start nothing; record what finished here.
                e.wake = None;
                e.mine.clear();
                let done: Vec<Finished> = e.finished.drain(..).map(|(f, _)| f).collect();
                for f in done {
                    self.history.push(history::finished_doc(
                        &name,
                        &f.id,
                        Trigger::Schedule,
                        f.id.parse().unwrap_or(f.started_ms),
                        &shared.host,
                        &f.owner,
                        f.started_ms,
                        f.finished_ms,
                        f.attempt,
                        &f.outcome,
                        None,
                        false,
                    ));
                }
                continue;
            }
            let plugin = &e.def.schedule.spec.plugin;
            let can_run = !stopping && shared.runtime.loaded_plugin(plugin).is_some();
            if !can_run && !stopping && self.waiting_logged.insert(name.clone()) {
                tracing::warn!(worker = "scheduler", schedule = %name, %plugin,
                    "waiting for the schedule's task plugin to load; nothing runs until it does");
            } else if can_run {
                self.waiting_logged.remove(&name);
            }
            let free = max.saturating_sub(self.in_flight + reserved);
            let finished: Vec<Finished> = e.finished.iter().map(|(f, _)| f.clone()).collect();
            let step = claim::step(
                e.state.as_ref(),
                &Ctx {
                    schedule: &e.def.schedule,
                    stamp: &e.def.stamp,
                    owner: &shared.owner,
                    host: &shared.host,
                    now_ms: now,
                    lease_ms,
                    mine: &e.mine,
                    free_slots: free,
                    can_run,
                    ahead_ms: CLAIM_AHEAD_MS,
                },
                &finished,
            );
            let starts = step
                .effects
                .iter()
                .filter(|x| matches!(x, Effect::Start { .. }))
                .count();
            if step.changed {
                reserved += starts;
                writes.push(ScheduleWrite {
                    name: name.clone(),
                    version: e.version,
                    json: Some(step.state.to_json()),
                });
                plans.push((name, step, finished.len()));
            } else {
                // Nothing to write (a superseded try only needs its record).
                let effects = step.effects;
                let n = finished.len();
                self.apply(&name, effects, n, now);
                self.rewake(&name, now, can_run);
            }
        }
        // The batches go out together (Redis pipelines them on one connection) and are
        // carried out as each answer arrives, so the first starts do not wait for the last
        // write.
        let mut batches = Vec::new();
        let mut plans = plans.into_iter();
        for chunk in writes.chunks(WRITE_BATCH) {
            let chunk_plans: Vec<_> = plans.by_ref().take(chunk.len()).collect();
            batches.push((chunk.to_vec(), chunk_plans));
        }
        let mut in_flight: FuturesUnordered<_> = batches
            .into_iter()
            .map(|(w, p)| {
                let store = self.shared.store.clone();
                async move { (store.schedule_cas(&w).await, p) }
            })
            .collect();
        let mut lost = Vec::new();
        while let Some((reply, chunk_plans)) = in_flight.next().await {
            let reply = match reply {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(worker = "scheduler", error = %format!("{e:#}"),
                        "could not write the schedules' records; retrying shortly");
                    for (name, _, _) in &chunk_plans {
                        if let Some(e) = self.entries.get_mut(name) {
                            e.wake = Some(now + RECHECK_MS / 2);
                        }
                    }
                    continue;
                }
            };
            self.observe_clock(reply.now_ms);
            for (outcome, (name, step, n_finished)) in reply.outcomes.into_iter().zip(chunk_plans) {
                match outcome {
                    ScheduleCas::Written { version } => {
                        if let Some(e) = self.entries.get_mut(&name) {
                            e.state = Some(step.state);
                            e.version = version;
                        }
                        self.apply(&name, step.effects, n_finished, reply.now_ms);
                        self.rewake(&name, reply.now_ms, true);
                    }
                    ScheduleCas::Conflict(record) => {
                        if let Some(e) = self.entries.get_mut(&name) {
                            e.state = record.json.as_deref().and_then(|j| parse_state(&name, j));
                            e.version = record.version;
                        }
                        lost.push(name);
                    }
                }
            }
        }
        lost
    }

    fn rewake(&mut self, name: &str, now: i64, can_run: bool) {
        let owner = self.shared.owner.clone();
        let lease_ms = self.shared.cfg.lease_ms as i64;
        let Some(e) = self.entries.get_mut(name) else {
            return;
        };
        let mut wake = e
            .state
            .as_ref()
            .and_then(|s| claim::next_wake(s, &e.def.schedule, &owner, lease_ms, CLAIM_AHEAD_MS));
        // Something due that could not be done now (no plugin here, no free slot, an
        // older definition here): look again shortly rather than spin.
        if let Some(w) = wake
            && (w <= now || !can_run)
        {
            wake = Some(w.max(now + if can_run { 200 } else { RECHECK_MS }));
        }
        e.wake = wake;
    }

    /// Carry out what a won write (or a no-write step) obliges.
    fn apply(&mut self, name: &str, effects: Vec<Effect>, n_finished: usize, now: i64) {
        let shared = self.shared.clone();
        let host = shared.host.as_str();
        let Some(e) = self.entries.get_mut(name) else {
            return;
        };
        let lags: Vec<(String, Option<i64>)> = e
            .finished
            .drain(..n_finished.min(e.finished.len()))
            .map(|(f, lag)| {
                e.mine.remove(&f.id);
                (f.id, lag)
            })
            .collect();
        let sched = e.def.schedule.clone();
        for effect in effects {
            match effect {
                Effect::Start {
                    id,
                    occ_ms,
                    trigger,
                    attempt,
                } => {
                    e.mine.insert(id.clone());
                    self.in_flight += 1;
                    let t = Try {
                        schedule: name.to_string(),
                        plugin: sched.spec.plugin.clone(),
                        claim_id: id,
                        occ_ms,
                        planned_ms: sched.planned_ms(occ_ms),
                        attempt,
                        args_json: sched.args_json.clone(),
                        timeout_ms: sched.timeout_ms,
                        owner: shared.owner.clone(),
                        timed: trigger != Trigger::Manual && attempt == 1,
                    };
                    let early_ms = if t.timed { t.planned_ms - now } else { 0 };
                    if early_ms > 0 {
                        // Taken ahead of its time: begin at it.
                        let (pool, runtime) = (self.pool.clone(), shared.runtime.clone());
                        let (offset, done) = (self.offset_ms, self.done_tx.clone());
                        tokio::spawn(async move {
                            loop {
                                let left = t.planned_ms - (now_ms() + offset);
                                if left <= 0 {
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis(left as u64)).await;
                            }
                            pool.submit(runtime, t, offset, done);
                        });
                    } else {
                        self.pool.submit(
                            shared.runtime.clone(),
                            t,
                            self.offset_ms,
                            self.done_tx.clone(),
                        );
                    }
                }
                Effect::Skipped {
                    reason,
                    first_ms,
                    last_ms,
                    count,
                } => {
                    shared.stats.skipped(name, reason.as_str(), count);
                    match reason {
                        claim::SkipReason::CatchUpWindow | claim::SkipReason::Backlog => {
                            tracing::warn!(worker = "scheduler", schedule = %name,
                                reason = reason.as_str(), count,
                                first = %rfc3339_ms(first_ms), last = %rfc3339_ms(last_ms),
                                "skipped occurrences missed outside the catch-up window")
                        }
                        claim::SkipReason::Overlap => {
                            tracing::info!(worker = "scheduler", schedule = %name,
                                occurrence = %rfc3339_ms(first_ms),
                                "skipped an occurrence: a run is still in flight (overlap)")
                        }
                    }
                    self.history.push(history::skipped_doc(
                        name, reason, first_ms, last_ms, count, host, now,
                    ));
                }
                Effect::CaughtUp { count } => {
                    shared.stats.caught_up(name, count);
                    tracing::info!(worker = "scheduler", schedule = %name, count,
                        "catching up missed occurrences inside the window, oldest first");
                }
                Effect::Recorded {
                    finished,
                    occ_ms,
                    trigger,
                    retry_at_ms,
                } => {
                    let label = finished.outcome.label();
                    shared.stats.tried(name, label);
                    shared
                        .stats
                        .duration(name, finished.finished_ms - finished.started_ms);
                    if let Some((_, Some(lag))) = lags.iter().find(|(id, _)| *id == finished.id) {
                        shared.stats.started(name, *lag);
                    }
                    if let Some(err) = finished.outcome.error() {
                        tracing::warn!(worker = "scheduler", schedule = %name, run = %finished.id,
                            attempt = finished.attempt, outcome = label, error = %err,
                            retry_at = %retry_at_ms.map(rfc3339_ms).unwrap_or_default(),
                            "scheduled task try failed");
                    }
                    self.history.push(history::finished_doc(
                        name,
                        &finished.id,
                        trigger,
                        occ_ms,
                        host,
                        &finished.owner,
                        finished.started_ms,
                        finished.finished_ms,
                        finished.attempt,
                        &finished.outcome,
                        retry_at_ms,
                        false,
                    ));
                }
                Effect::Superseded {
                    finished,
                    occ_ms,
                    trigger,
                } => {
                    shared.stats.tried(name, finished.outcome.label());
                    tracing::error!(worker = "scheduler", schedule = %name, run = %finished.id,
                        attempt = finished.attempt,
                        "a try ended after this host's lease on it had lapsed and another host took the occurrence over; renew leases faster than `lease_ms` (is the store slow?)");
                    self.history.push_replacing(history::finished_doc(
                        name,
                        &finished.id,
                        trigger,
                        occ_ms,
                        host,
                        &finished.owner,
                        finished.started_ms,
                        finished.finished_ms,
                        finished.attempt,
                        &finished.outcome,
                        None,
                        true,
                    ));
                }
                Effect::Lost {
                    id,
                    occ_ms,
                    trigger,
                    attempt,
                    lease,
                    retried,
                } => {
                    shared.stats.tried(name, "lost");
                    tracing::warn!(worker = "scheduler", schedule = %name, run = %id, attempt,
                        lost_host = %lease.host, retried,
                        "a try's host stopped renewing its lease mid-run; the try is lost");
                    let error = format!(
                        "host `{}` stopped renewing its lease mid-run (killed or cut off)",
                        lease.host
                    );
                    self.history.push(
                        TryRecord {
                            schedule: name,
                            claim_id: &id,
                            trigger,
                            occ_ms,
                            attempt,
                            host: &lease.host,
                            owner: &lease.owner,
                            started_ms: lease.started_ms,
                            finished_ms: None,
                            outcome: "lost",
                            summary: None,
                            error: Some(&error),
                            retry_at_ms: None,
                            superseded: false,
                        }
                        .to_doc(),
                    );
                }
            }
        }
    }

    /// Prune the history past its retention, in a task of its own.
    fn prune(&self) {
        let names: Vec<String> = self.entries.keys().cloned().collect();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let cfg = &shared.cfg;
            match history::prune(
                &*shared.docs,
                &names,
                cfg.history_days,
                cfg.history_per_schedule,
                now_ms(),
            )
            .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(worker = "scheduler", removed = n, "run history pruned"),
                Err(e) => tracing::warn!(worker = "scheduler", error = %format!("{e:#}"),
                    "could not prune the run history"),
            }
        });
    }
}

/// Re-read definitions for the loop.
struct Refresh {
    /// The API-made schedules; `None` when the document store did not answer.
    api: Option<Vec<Definition>>,
    /// The change signal's value.
    signal: Option<String>,
    /// Re-read every record (the first read, or a change made on this host).
    reload_all: bool,
}

/// Read the API-made schedules and the change signal every `refresh_ms`, and at once when
/// a change was made on this host, for the loop.
async fn feed(shared: Arc<Shared>, tx: mpsc::Sender<Refresh>, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_millis(shared.cfg.refresh_ms);
    let mut asked = true;
    loop {
        let api = match catalog::api_definitions(&*shared.docs).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(worker = "scheduler", error = %format!("{e:#}"),
                    "could not read the API-made schedules; keeping the ones known");
                None
            }
        };
        let signal = shared
            .store
            .kv_get(service::SIGNAL_NS, service::SIGNAL_KEY)
            .await
            .ok()
            .flatten();
        let r = Refresh {
            api,
            signal,
            reload_all: asked,
        };
        if tx.send(r).await.is_err() {
            return;
        }
        asked = tokio::select! {
            _ = stop.changed() => return,
            _ = shared.wake.notified() => true,
            _ = tokio::time::sleep(every) => false,
        };
    }
}

fn parse_state(name: &str, json: &str) -> Option<ScheduleState> {
    match ScheduleState::parse(json) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(worker = "scheduler", schedule = %name, error = %e,
                "the schedule's shared record does not parse; it is planned anew");
            None
        }
    }
}
