//! One listener's loop on one host: read a batch (entries waiting for a retry that are
//! due, entries of crashed hosts idle past `claim_idle`, then new ones), hand each event
//! to the handler plugin, and commit the outcome of the whole batch at once.
//!
//! - **Ack**: acknowledged in one store commit with the `kv` writes and `notify`
//!   enqueues the call made (`storage::events`), so they are applied exactly once.
//! - **Retry**, a trap, a timeout or a limit: the attempt is recorded (`attempts`) and
//!   the event waits `backoff` (doubling) on this host, still pending; after
//!   `max_attempts` it becomes a dead letter. None of the call's effects is applied.
//! - **Dead letter** (the handler's answer, `max_attempts`, or an entry that is not an
//!   event): stored in the dead-letter collection, then acknowledged.
//! - A handler that is not loaded (or is quarantined) is waited for: nothing is read and
//!   no attempt is counted meanwhile.
//!
//! Everything this host holds (in flight, or waiting for a retry) is renewed every third
//! of `claim_idle` (`Store::touch_pending`), so only a host that stopped renewing — one
//! that crashed — has its events taken over. On shutdown nothing new is read; the batch
//! in flight commits; the rest stays pending for another host, never acknowledged
//! unprocessed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::attempts::{self, Attempts, Failure};
use super::config::{ListenerConfig, Start};
use super::dead_letters::{self, DeadLetter, reason};
use super::metrics::ListenerMetrics;
use crate::bindings::types::{Event, Field, Outcome};
use crate::capabilities::effects::{BatchReads, Effects};
use crate::documents::{Documents, Write};
use crate::notify::log::{NOTIFICATIONS, notification_doc};
use crate::runtime::CallError;
use crate::runtime::{Kind, PluginHandle, Runtime};
use crate::storage::{EventCommit, PluginKvRefused, StaleAcks, Store, StreamEntry, StreamFull};
use crate::util::{now_ms, stopped_during};

/// Longest a read waits for new entries (so waiting retries and shutdown are noticed).
const READ_BLOCK: Duration = Duration::from_millis(500);
/// How often a listener working through a backlog trims what its acknowledgements freed
/// (a batch that is not full, the end of a backlog, always trims).
const TRIM_EVERY_MS: i64 = 250;
/// Pause after a store error before trying again.
const STORE_PAUSE: Duration = Duration::from_millis(500);

/// What one listener needs.
pub struct Listener {
    pub cfg: ListenerConfig,
    pub metrics: Arc<ListenerMetrics>,
    pub store: Arc<dyn Store>,
    pub docs: Arc<dyn Documents>,
    pub runtime: Runtime,
    pub consumer: String,
    /// `[capabilities.kv] max_keys`, which commits apply.
    pub kv_max_keys: u64,
    /// When a plain acknowledgement last trimmed the stream (ms since the epoch).
    pub last_trim_ms: AtomicI64,
}

/// An entry this host holds, with what it knows of its attempts.
struct Held {
    entry: StreamEntry,
    attempts: Option<Attempts>,
}

/// What became of one event in a batch.
enum Settled {
    Ack(Effects),
    /// Failed this attempt (the handler's `retry` or a failed call), with the error.
    Failed(String, bool),
    /// The handler said it will never succeed.
    Dead(String),
    /// Not handled at all (the plugin went away mid-batch): wait, no attempt counted.
    Deferred,
}

impl Listener {
    /// Run until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let held: Arc<Mutex<HashSet<String>>> = Arc::default();
        let heartbeat = tokio::spawn(self.clone().heartbeat(held.clone(), stop.clone()));
        let cfg = &self.cfg;
        while let Err(e) = self
            .store
            .ensure_group_at(&cfg.stream, &cfg.group, cfg.start == Start::End)
            .await
        {
            tracing::warn!(worker = "events", listener = %cfg.name, error = %format!("{e:#}"),
                "events: cannot create the consumer group yet; retrying");
            if stopped_during(&mut stop, STORE_PAUSE).await {
                return;
            }
        }
        tracing::info!(worker = "events", listener = %cfg.name, stream = %cfg.stream,
            group = %cfg.group, plugin = %cfg.plugin, consumer = %self.consumer, "events: listening");
        let handle = self.runtime.plugin(&cfg.plugin);
        // Entries this host is waiting to retry, by when they are due.
        let mut waiting: BTreeMap<(i64, String), Held> = BTreeMap::new();
        // What this consumer held before a restart comes back first.
        let mut recovered = false;
        let claim_every = cfg.claim_idle / 4;
        let mut last_claim: Option<Instant> = None;
        let mut not_ready_logged = false;
        // New entries read ahead while the previous batch was handled (already held).
        let mut read_ahead: Vec<StreamEntry> = Vec::new();
        loop {
            if *stop.borrow() {
                break;
            }
            if let Some(why) = not_ready(&handle) {
                if !not_ready_logged {
                    tracing::warn!(worker = "events", listener = %cfg.name, plugin = %cfg.plugin,
                        "events: waiting for the handler: {why}; events stay in the stream");
                    not_ready_logged = true;
                }
                if stopped_during(&mut stop, Duration::from_millis(200)).await {
                    break;
                }
                continue;
            }
            not_ready_logged = false;
            let mut batch: Vec<Held> = Vec::new();
            let read_started = Instant::now();
            let gathered = self
                .gather(
                    &mut batch,
                    &mut read_ahead,
                    &mut waiting,
                    &mut recovered,
                    &mut last_claim,
                    claim_every,
                    &mut stop,
                )
                .await;
            if let Err(e) = gathered {
                tracing::warn!(worker = "events", listener = %cfg.name, error = %format!("{e:#}"),
                    "events: reading the stream failed; retrying");
                // Whatever was gathered stays pending; it is read again.
                for h in batch {
                    held.lock().remove(&h.entry.id);
                }
                if stopped_during(&mut stop, STORE_PAUSE).await {
                    break;
                }
                continue;
            }
            if batch.is_empty() {
                continue;
            }
            ListenerMetrics::add(
                &self.metrics.read_us,
                read_started.elapsed().as_micros() as u64,
            );
            {
                let mut h = held.lock();
                for item in &batch {
                    h.insert(item.entry.id.clone());
                }
            }
            // A full batch means a backlog: read the next one while this one is handled
            // and committed, so the store's work and the handler's overlap. What is read
            // ahead is held (renewed) like the rest, and stays pending at shutdown.
            let backlog = batch.len() >= cfg.batch && read_ahead.is_empty();
            let handled = self.process(&handle, batch, &mut waiting, &held, &mut stop);
            if backlog {
                let (_, next) = tokio::join!(handled, self.read_ahead());
                match next {
                    Ok(entries) => read_ahead = entries,
                    Err(e) => {
                        tracing::warn!(worker = "events", listener = %cfg.name, error = %format!("{e:#}"),
                            "events: reading ahead failed; the entries are read again")
                    }
                }
            } else {
                handled.await;
            }
            held.lock().extend(read_ahead.iter().map(|e| e.id.clone()));
        }
        heartbeat.abort();
        tracing::info!(worker = "events", listener = %cfg.name, waiting = waiting.len(),
            "events: listener stopped; events not handled stay pending for another host");
    }

    /// Up to a batch of new entries, without waiting for them.
    async fn read_ahead(&self) -> Result<Vec<StreamEntry>> {
        let cfg = &self.cfg;
        self.store
            .read_new(&cfg.stream, &cfg.group, &self.consumer, cfg.batch, 0)
            .await
    }

    /// Fill `batch`: due retries, then (now and then) entries idle past `claim_idle`,
    /// then new entries (those read ahead first).
    #[allow(clippy::too_many_arguments)]
    async fn gather(
        &self,
        batch: &mut Vec<Held>,
        read_ahead: &mut Vec<StreamEntry>,
        waiting: &mut BTreeMap<(i64, String), Held>,
        recovered: &mut bool,
        last_claim: &mut Option<Instant>,
        claim_every: Duration,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let cfg = &self.cfg;
        let want = cfg.batch;
        if !*recovered {
            let mine = self
                .store
                .read_pending(&cfg.stream, &cfg.group, &self.consumer, 100_000)
                .await?;
            if !mine.is_empty() {
                tracing::info!(worker = "events", listener = %cfg.name, entries = mine.len(),
                    "events: taking up entries this consumer held before it stopped");
            }
            let attempts = self.load_attempts(&mine).await?;
            for entry in mine {
                let a = attempts.get(&entry.id).cloned();
                let due = a.as_ref().map_or(0, |a| a.due_ms);
                waiting.insert(
                    (due, entry.id.clone()),
                    Held {
                        entry,
                        attempts: Some(a.unwrap_or_default()),
                    },
                );
            }
            *recovered = true;
        }
        let now = now_ms();
        while batch.len() < want {
            let Some(first) = waiting.first_key_value() else {
                break;
            };
            if first.0.0 > now {
                break;
            }
            let (_, h) = waiting.pop_first().expect("checked above");
            batch.push(h);
        }
        if batch.len() < want && last_claim.is_none_or(|t| t.elapsed() >= claim_every) {
            *last_claim = Some(Instant::now());
            let claimed = self
                .store
                .claim_stale(
                    &cfg.stream,
                    &cfg.group,
                    &self.consumer,
                    cfg.claim_idle.as_millis() as u64,
                    want - batch.len(),
                )
                .await?;
            // Our own waiting entries are renewed, so what comes back here is another
            // host's (or ours from before a restart, already taken up above).
            let claimed: Vec<StreamEntry> = claimed
                .into_iter()
                .filter(|e| !waiting.keys().any(|(_, id)| id == &e.id))
                .collect();
            if !claimed.is_empty() {
                ListenerMetrics::add(&self.metrics.claimed, claimed.len() as u64);
                tracing::info!(worker = "events", listener = %cfg.name, entries = claimed.len(),
                    "events: took over entries idle past claim_idle (a host stopped?)");
            }
            let attempts = self.load_attempts(&claimed).await?;
            for entry in claimed {
                let a = attempts.get(&entry.id).cloned().unwrap_or_default();
                batch.push(Held {
                    entry,
                    attempts: Some(a),
                });
            }
        }
        if batch.len() < want && !read_ahead.is_empty() {
            let take = (want - batch.len()).min(read_ahead.len());
            batch.extend(read_ahead.drain(..take).map(|entry| Held {
                entry,
                attempts: None,
            }));
        }
        if batch.len() < want && read_ahead.is_empty() {
            let block = if batch.is_empty() {
                let until_due = waiting
                    .first_key_value()
                    .map(|((due, _), _)| Duration::from_millis((due - now).max(1) as u64))
                    .unwrap_or(READ_BLOCK);
                until_due.min(READ_BLOCK)
            } else {
                Duration::ZERO
            };
            let read = self.store.read_new(
                &cfg.stream,
                &cfg.group,
                &self.consumer,
                want - batch.len(),
                block.as_millis() as u64,
            );
            let fresh = tokio::select! {
                r = read => r?,
                // A blocked read gives up at shutdown; entries it would have handed out
                // are not delivered (Redis hands them out only with the reply).
                _ = stop.changed() => Vec::new(),
            };
            for entry in fresh {
                batch.push(Held {
                    entry,
                    attempts: None,
                });
            }
        }
        Ok(())
    }

    async fn load_attempts(&self, entries: &[StreamEntry]) -> Result<HashMap<String, Attempts>> {
        if entries.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        let ns = attempts::namespace(&self.cfg.stream, &self.cfg.group);
        attempts::load(&self.store, &ns, &ids).await
    }

    /// Handle a batch and commit its outcome.
    async fn process(
        &self,
        handle: &PluginHandle,
        batch: Vec<Held>,
        waiting: &mut BTreeMap<(i64, String), Held>,
        held: &Arc<Mutex<HashSet<String>>>,
        stop: &mut watch::Receiver<bool>,
    ) {
        let cfg = &self.cfg;
        let now = now_ms();
        let mut calls: Vec<Held> = Vec::with_capacity(batch.len());
        let mut dead: Vec<(Held, &'static str, String)> = Vec::new();
        for item in batch {
            if let Some(why) = &item.entry.malformed {
                ListenerMetrics::add(&self.metrics.invalid, 1);
                let why = format!("entry {} is not a valid event: {why}", item.entry.id);
                dead.push((item, reason::INVALID_EVENT, why));
                continue;
            }
            if let Some(a) = &item.attempts
                && a.next() > cfg.max_attempts
            {
                // Its last attempt was recorded, then the host stopped before the dead letter.
                let last = a
                    .failures
                    .last()
                    .map(|f| f.error.clone())
                    .unwrap_or_default();
                let why = format!("{} attempts failed; the last: {last}", a.failures.len());
                dead.push((item, reason::MAX_ATTEMPTS, why));
                continue;
            }
            let due = item.attempts.as_ref().map_or(0, |a| a.due_ms);
            if due > now {
                waiting.insert((due, item.entry.id.clone()), item);
                continue;
            }
            calls.push(item);
        }
        let settled = self.call_all(handle, &calls).await;
        let version = handle
            .current()
            .map(|l| l.version.clone())
            .unwrap_or_default();
        let mut acks: Vec<(Held, Effects)> = Vec::new();
        for (item, outcome) in calls.into_iter().zip(settled) {
            match outcome {
                Settled::Ack(fx) => acks.push((item, fx)),
                Settled::Dead(why) => dead.push((item, reason::HANDLER, why)),
                Settled::Deferred => {
                    waiting.insert((now_ms() + 1000, item.entry.id.clone()), item);
                }
                Settled::Failed(error, is_retry) => {
                    if is_retry {
                        ListenerMetrics::add(&self.metrics.retried, 1);
                    } else {
                        ListenerMetrics::add(&self.metrics.failed, 1);
                    }
                    let item = self.record_failure(item, error.clone(), stop).await;
                    let attempt = item.attempts.as_ref().map_or(1, |a| a.next() - 1);
                    if attempt >= cfg.max_attempts {
                        let why = format!("{attempt} attempts failed; the last: {error}");
                        dead.push((item, reason::MAX_ATTEMPTS, why));
                    } else {
                        let due = item.attempts.as_ref().map_or(0, |a| a.due_ms);
                        waiting.insert((due, item.entry.id.clone()), item);
                    }
                }
            }
        }
        // Dead letters are stored before their ack: a crash in between stores the same
        // one again (its id comes from the entry).
        let mut dead_acks: Vec<Held> = Vec::new();
        for (item, why_reason, error) in dead {
            let failures = item
                .attempts
                .as_ref()
                .map(|a| a.failures.clone())
                .unwrap_or_default();
            let dl = DeadLetter {
                stream: cfg.stream.clone(),
                group: cfg.group.clone(),
                listener: cfg.name.clone(),
                entry_id: item.entry.id.clone(),
                fields: item.entry.fields.clone(),
                reason: why_reason,
                last_error: error.clone(),
                failures,
                plugin: cfg.plugin.clone(),
                plugin_version: version.clone(),
                maxlen: cfg.maxlen,
            };
            let stored = loop {
                match dead_letters::put(&self.docs, &dl).await {
                    Ok(id) => {
                        tracing::warn!(worker = "events", listener = %cfg.name, entry = %dl.entry_id,
                            dead_letter = %id, reason = why_reason, error = %crate::util::truncate(&error, 300),
                            "events: event moved to the dead-letter store");
                        ListenerMetrics::add(&self.metrics.dead_lettered, 1);
                        break true;
                    }
                    Err(e) => {
                        tracing::warn!(worker = "events", listener = %cfg.name, error = %format!("{e:#}"),
                            "events: storing a dead letter failed; retrying");
                        if stopped_during(stop, STORE_PAUSE).await {
                            break false;
                        }
                    }
                }
            };
            // Acknowledged only once its dead letter is stored; otherwise it stays pending
            // and is handled again by whoever holds it next.
            if stored {
                dead_acks.push(item);
            }
        }
        let commit_started = Instant::now();
        let retry = self.commit(acks, dead_acks, stop).await;
        ListenerMetrics::add(
            &self.metrics.commit_us,
            commit_started.elapsed().as_micros() as u64,
        );
        for item in retry {
            let due = item.attempts.as_ref().map_or(0, |a| a.due_ms);
            waiting.insert((due, item.entry.id.clone()), item);
        }
        // What waits for a retry stays held (renewed); the rest is settled.
        *held.lock() = waiting.values().map(|h| h.entry.id.clone()).collect();
    }

    /// Call the handler on every event, `concurrency` calls at a time.
    async fn call_all(&self, handle: &PluginHandle, calls: &[Held]) -> Vec<Settled> {
        if calls.is_empty() {
            return Vec::new();
        }
        let events: Vec<Event> = calls
            .iter()
            .map(|h| Event {
                stream: self.cfg.stream.clone(),
                id: h.entry.id.clone(),
                fields: h
                    .entry
                    .fields
                    .iter()
                    .map(|(name, value)| Field {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                attempt: h.attempts.as_ref().map_or(1, Attempts::next),
                received_at_ms: now_ms(),
            })
            .collect();
        let lanes = self.cfg.concurrency.min(events.len()).max(1);
        let per_lane = events.len().div_ceil(lanes);
        let handle = handle.clone();
        let metrics = self.metrics.clone();
        let reads = Arc::new(BatchReads::default());
        // The lanes are plain threads, outside any tokio runtime: a handler's store calls
        // then wait on the plugin I/O runtime directly (`runtime::deadline::wait`) instead
        // of on a thread spawned per call, which a runtime's blocking thread would need.
        let joined = tokio::task::spawn_blocking(move || {
            std::thread::scope(|scope| {
                let lanes: Vec<_> = events
                    .chunks(per_lane)
                    .map(|lane| {
                        let (handle, metrics, reads) = (&handle, &metrics, &reads);
                        scope.spawn(move || {
                            lane.iter()
                                .map(|event| {
                                    let started = Instant::now();
                                    let (outcome, fx) =
                                        handle.handle_event_collecting(event, reads);
                                    ListenerMetrics::add(&metrics.attempts, 1);
                                    ListenerMetrics::add(
                                        &metrics.handler_us,
                                        started.elapsed().as_micros() as u64,
                                    );
                                    ListenerMetrics::add(&metrics.handler_calls, 1);
                                    settle(outcome, fx)
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                lanes
                    .into_iter()
                    .flat_map(|l| match l.join() {
                        Ok(settled) => settled,
                        // A panic in the call path is a host bug; the events are retried
                        // later rather than lost.
                        Err(_) => (0..per_lane).map(|_| Settled::Deferred).collect(),
                    })
                    .collect::<Vec<_>>()
            })
        })
        .await;
        let mut out = match joined {
            Ok(out) => out,
            Err(e) => {
                tracing::error!(worker = "events", listener = %self.cfg.name, error = %e,
                    "events: the handler lanes failed");
                Vec::new()
            }
        };
        out.truncate(calls.len());
        while out.len() < calls.len() {
            out.push(Settled::Deferred);
        }
        out
    }

    /// Record a failed attempt of `item` (with its backoff) in the store, and return it
    /// with its record. The caller dead-letters it when that was the last attempt.
    async fn record_failure(
        &self,
        mut item: Held,
        error: String,
        stop: &mut watch::Receiver<bool>,
    ) -> Held {
        let cfg = &self.cfg;
        let mut a = item.attempts.take().unwrap_or_default();
        let attempt = a.next();
        a.failures.push(Failure {
            attempt,
            at_ms: now_ms(),
            host: self.consumer.clone(),
            error: crate::util::truncate(&error, 2048),
        });
        a.due_ms = now_ms() + cfg.backoff_before(attempt + 1).as_millis() as i64;
        if attempt < cfg.max_attempts {
            tracing::info!(worker = "events", listener = %cfg.name, entry = %item.entry.id, attempt,
                error = %crate::util::truncate(&error, 300), "events: attempt failed; retrying after the backoff");
        }
        let ns = attempts::namespace(&cfg.stream, &cfg.group);
        loop {
            match attempts::save(&self.store, &ns, &item.entry.id, &a).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(worker = "events", listener = %cfg.name, error = %format!("{e:#}"),
                        "events: recording a failed attempt failed; retrying");
                    if stopped_during(stop, STORE_PAUSE).await {
                        break;
                    }
                }
            }
        }
        item.attempts = Some(a);
        item
    }

    /// Acknowledge the handled events with their effects, and the dead letters, in one
    /// store commit. A `kv` refusal falls back to one commit per event, the refused one
    /// counting as a failed attempt (returned: it waits for its retry).
    async fn commit(
        &self,
        acks: Vec<(Held, Effects)>,
        dead: Vec<Held>,
        stop: &mut watch::Receiver<bool>,
    ) -> Vec<Held> {
        let none = Effects::default();
        let mut items: Vec<(&Held, &Effects)> = acks.iter().map(|(h, fx)| (h, fx)).collect();
        items.extend(dead.iter().map(|h| (h, &none)));
        if items.is_empty() {
            return Vec::new();
        }
        let refused = match self.commit_until_done(&items, stop).await {
            Ok(()) => {
                ListenerMetrics::add(&self.metrics.acked, acks.len() as u64);
                return Vec::new();
            }
            Err(e) if PluginKvRefused::find(&e).is_some() => e,
            Err(e) => {
                tracing::warn!(worker = "events", listener = %self.cfg.name, error = %format!("{e:#}"),
                    "events: commit abandoned at shutdown; the events stay pending for another host");
                return Vec::new();
            }
        };
        tracing::warn!(worker = "events", listener = %self.cfg.name, error = %refused,
            "events: a handler's kv writes were refused at commit; committing event by event");
        drop(items);
        let mut retry = Vec::new();
        for item in &dead {
            if let Err(e) = self.commit_until_done(&[(item, &none)], stop).await {
                tracing::warn!(worker = "events", listener = %self.cfg.name, error = %format!("{e:#}"),
                    "events: acknowledging a dead letter failed; it is handled again later");
            }
        }
        for (item, fx) in acks {
            match self.commit_until_done(&[(&item, &fx)], stop).await {
                Ok(()) => ListenerMetrics::add(&self.metrics.acked, 1),
                Err(e) => {
                    let Some(r) = PluginKvRefused::find(&e) else {
                        continue;
                    };
                    let why = format!("the handler's kv writes were refused at commit: {r}");
                    ListenerMetrics::add(&self.metrics.failed, 1);
                    retry.push(self.record_failure(item, why, stop).await);
                }
            }
        }
        retry
    }

    /// Commit `items` (acks with their effects), retrying store failures and waits at
    /// `notify:requests`' bound until it is done or the host stops. Entries no longer
    /// pending with this consumer (acked by an earlier try whose answer was lost, or taken
    /// over by another host) are left out with their effects, which are their holder's.
    /// A `kv` refusal is returned.
    async fn commit_until_done(
        &self,
        items: &[(&Held, &Effects)],
        stop: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let mut stale: HashSet<String> = HashSet::new();
        loop {
            let mut commit = EventCommit {
                stream: self.cfg.stream.clone(),
                group: self.cfg.group.clone(),
                consumer: self.consumer.clone(),
                kv_max_keys: self.kv_max_keys,
                ..Default::default()
            };
            let mut records = Vec::new();
            for (item, fx) in items.iter().filter(|(h, _)| !stale.contains(&h.entry.id)) {
                commit.acks.push(item.entry.id.clone());
                commit.kv.extend(fx.kv.iter().cloned());
                for (req, source) in &fx.notify {
                    if let Ok(body) = serde_json::to_string(req) {
                        commit.notify.push((req.id.clone(), body));
                        records.push(Write::Insert {
                            coll: NOTIFICATIONS.into(),
                            doc: notification_doc(req, source, now_ms()),
                        });
                    }
                }
                if item
                    .attempts
                    .as_ref()
                    .is_some_and(|a| !a.failures.is_empty())
                {
                    commit.forget.push((
                        attempts::namespace(&self.cfg.stream, &self.cfg.group),
                        item.entry.id.clone(),
                    ));
                }
            }
            if commit.acks.is_empty() {
                return Ok(());
            }
            // The notifications' records first (the document store is another server, so
            // this is at-least-once; a record whose queue entry is missing is completed by
            // the next commit of the same request, as `notify::service::submit_from` does).
            if !records.is_empty()
                && let Err(e) = self.docs.write(records).await
            {
                tracing::warn!(worker = "events", listener = %self.cfg.name, error = %format!("{e:#}"),
                    "events: recording notifications failed; retrying");
                if stopped_during(stop, STORE_PAUSE).await {
                    return Err(e);
                }
                continue;
            }
            // With nothing to apply, a stale entry's ack is harmless (its holder's ack
            // finds it gone), so a plain acknowledgement does without the check that it is
            // still ours — the commit's costliest part in Redis.
            let committed =
                if commit.kv.is_empty() && commit.notify.is_empty() && commit.forget.is_empty() {
                    let trim = self.trim_due(commit.acks.len() < self.cfg.batch);
                    self.store
                        .ack_maybe_trim(&commit.stream, &commit.group, &commit.acks, trim)
                        .await
                } else {
                    self.store.commit_events(&commit).await
                };
            let e = match committed {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if let Some(s) = StaleAcks::find(&e) {
                tracing::info!(worker = "events", listener = %self.cfg.name, entries = s.ids.len(),
                    "events: entries no longer held by this host are left to their holder");
                stale.extend(s.ids.iter().cloned());
                continue;
            }
            if PluginKvRefused::find(&e).is_some() {
                return Err(e);
            }
            if StreamFull::find(&e).is_some() {
                ListenerMetrics::add(&self.metrics.commit_waits, 1);
            } else {
                tracing::warn!(worker = "events", listener = %self.cfg.name, error = %format!("{e:#}"),
                    "events: commit failed; retrying");
            }
            if stopped_during(stop, STORE_PAUSE).await {
                return Err(e);
            }
        }
    }

    /// Whether this acknowledgement should trim the stream: at the end of a backlog
    /// (`caught_up`), or when the last trim is `TRIM_EVERY_MS` old. Trimming after every
    /// batch of a backlog cost Redis about a fifth of its work per event.
    fn trim_due(&self, caught_up: bool) -> bool {
        let now = now_ms();
        let last = self.last_trim_ms.load(Ordering::Relaxed);
        if caught_up || now - last >= TRIM_EVERY_MS {
            self.last_trim_ms.store(now, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Renew everything this host holds, every third of `claim_idle`.
    async fn heartbeat(
        self: Arc<Self>,
        held: Arc<Mutex<HashSet<String>>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let every = self.cfg.claim_idle / 3;
        loop {
            if stopped_during(&mut stop, every).await {
                return;
            }
            let ids: Vec<String> = held.lock().iter().cloned().collect();
            if ids.is_empty() {
                continue;
            }
            if let Err(e) = self
                .store
                .touch_pending(&self.cfg.stream, &self.cfg.group, &self.consumer, &ids)
                .await
            {
                tracing::warn!(worker = "events", listener = %self.cfg.name, error = %format!("{e:#}"),
                    "events: renewing held entries failed");
            }
        }
    }
}

/// Why the handler cannot take calls now, if so.
fn not_ready(handle: &PluginHandle) -> Option<String> {
    let Some(loaded) = handle.current() else {
        return Some("it is not loaded".into());
    };
    if loaded.kind != Kind::EventHandler {
        return Some(format!(
            "it is a {} plugin, not an event-handler",
            loaded.kind
        ));
    }
    handle
        .is_quarantined()
        .then(|| "it is quarantined after repeated failures (load a new file or reload)".into())
}

/// A call's result as the listener acts on it.
fn settle(outcome: Result<Outcome, CallError>, fx: Effects) -> Settled {
    match outcome {
        Ok(Outcome::Ack) => Settled::Ack(fx),
        Ok(Outcome::Retry(why)) => {
            Settled::Failed(format!("the handler asked to retry: {why}"), true)
        }
        Ok(Outcome::DeadLetter(why)) => Settled::Dead(why),
        Err(
            CallError::NotLoaded(_) | CallError::Quarantined { .. } | CallError::WrongKind { .. },
        ) => Settled::Deferred,
        Err(e) => Settled::Failed(e.to_string(), false),
    }
}
