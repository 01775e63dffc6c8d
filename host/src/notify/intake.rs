//! Intake: the consumer-group loop on `notify:requests`.
//!
//! Per batch of entries: parse each request (an unreadable one becomes a dead letter
//! `invalid_request` with the reason, so nothing vanishes silently), record the request,
//! plan its deliveries against the user's preferences, render each through its formatter,
//! reserve rate-limit slots, and insert every delivery record in one write. Only then are
//! the entries acked. A crash anywhere before the ack leaves the entries pending: they
//! are read again (by this consumer on restart, or by another host after
//! `claim_idle_secs`), planned again, and every insert meets the record written the first
//! time (same id) and does nothing. Records that may go now are handed to this host's
//! claimer, which claims each right before its send.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::watch;

use super::Shared;
use super::log::{NOTIFICATIONS, notification_doc};
use super::plan::{self, Planned, RenderError, Start};
use super::record::{DELIVERIES, Delivery, NO_TARGET, NewDelivery, State};
use super::request::{NotificationRequest, Priority};
use crate::documents::{Write, WriteOutcome};
use crate::storage::{NOTIFY_REQUESTS, StreamEntry};

/// A slot this close to now counts as now.
pub const NOW_SLACK_MS: i64 = 5;
/// A record handed to this host's claimer is due for the due-poller only this much later,
/// so the poller does not race the claimer, yet takes it over if this host stops.
pub const HOLD_MS: i64 = 10_000;
/// How long a record waits for its formatter plugin to be loaded before it is dead.
pub const FORMATTER_PATIENCE_MS: i64 = 10 * 60 * 1000;
/// The delay between checks for a formatter that is not loaded.
pub const FORMATTER_RETRY_MS: i64 = 5000;

pub async fn run(sh: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let group = sh.cfg.group.clone();
    let consumer = sh.consumer.clone();
    let mut pending_done = false;
    let mut failures = 0u32;
    let mut last_claim = Instant::now() - Duration::from_secs(3600);
    let claim_every = Duration::from_millis((sh.cfg.claim_idle_secs * 1000 / 2).max(500));
    // Backpressure: read no more while this many records wait for the senders, so
    // entries stay in the stream (where another host can take them) rather than pile up
    // here past the hold that keeps the due-poller off them.
    let max_waiting = sh.cfg.max_in_flight + sh.cfg.batch_size;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if sh.pending_len() > max_waiting {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        let read = if !pending_done {
            sh.store
                .read_pending(NOTIFY_REQUESTS, &group, &consumer, sh.cfg.batch_size)
                .await
        } else if last_claim.elapsed() >= claim_every {
            last_claim = Instant::now();
            sh.store
                .claim_stale(
                    NOTIFY_REQUESTS,
                    &group,
                    &consumer,
                    sh.cfg.claim_idle_secs * 1000,
                    sh.cfg.batch_size,
                )
                .await
                .inspect(|e| {
                    if !e.is_empty() {
                        tracing::info!(
                            entries = e.len(),
                            "notify: took over entries another consumer left pending"
                        );
                    }
                })
        } else {
            sh.store
                .read_new(
                    NOTIFY_REQUESTS,
                    &group,
                    &consumer,
                    sh.cfg.batch_size,
                    sh.cfg.block_ms,
                )
                .await
        };
        let result = match read {
            Ok(entries) if entries.is_empty() => {
                pending_done = true;
                Ok(())
            }
            Ok(entries) => process(&sh, &entries).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => failures = 0,
            Err(e) => {
                // Un-acked entries stay pending; read them again after a pause.
                failures += 1;
                pending_done = false;
                let wait = Duration::from_millis((200u64 << failures.min(7)).min(30_000));
                tracing::warn!(error = %format!("{e:#}"), retry_in_ms = wait.as_millis() as u64, "notify: intake failed; the entries stay pending");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// Plan, record and ack one batch.
pub async fn process(sh: &Shared, entries: &[StreamEntry]) -> Result<()> {
    let now = crate::util::now_ms();
    let mut writes = Vec::new();
    let mut records = Vec::new();
    let mut seen = HashSet::new();
    for e in entries {
        match NotificationRequest::parse(&e.body) {
            Err(err) => {
                super::bump(&sh.stats.invalid_requests);
                tracing::warn!(entry = %e.id, key = %e.key, error = %err, "notify: unreadable request; recorded as a dead letter");
                if seen.insert(format!("invalid\0{}\0{}", e.key, e.id)) {
                    records.push(invalid_record(e, &err.to_string(), now));
                }
            }
            Ok(req) => {
                if !seen.insert(req.id.clone()) {
                    continue;
                }
                super::bump(&sh.stats.requests);
                writes.push(Write::Insert {
                    coll: NOTIFICATIONS.into(),
                    doc: notification_doc(&req, "stream", now),
                });
                let prefs = sh.preferences(&req.user_id).await?;
                for p in plan::plan(&req, prefs.as_ref(), &sh.cfg, now) {
                    records.push(build(sh, &req, p, now));
                }
            }
        }
    }
    // Records that may go now are inserted already claimed while send slots are free
    // (one write fewer than claiming them later); the rest wait for the claimer.
    let mut slots = Vec::with_capacity(records.len());
    for d in &mut records {
        let permit = if ready_now(d) {
            sh.permits.clone().try_acquire_owned().ok()
        } else {
            None
        };
        if permit.is_some() {
            d.claim(&sh.owner, now, sh.cfg.lease_secs * 1000);
        }
        slots.push(permit);
    }
    let first_record = writes.len();
    writes.extend(records.iter().map(|d| Write::Insert {
        coll: DELIVERIES.into(),
        doc: d.to_doc(),
    }));
    let outcomes = sh.log.docs.write(writes).await?;
    for ((mut d, permit), outcome) in records
        .into_iter()
        .zip(slots)
        .zip(&outcomes[first_record..])
    {
        if *outcome != WriteOutcome::Inserted {
            continue; // planned before (a re-read entry, another host): nothing to do
        }
        d.rev = 1;
        if let Some(permit) = permit {
            sh.claimed(d, permit);
            continue;
        }
        if d.state != State::Sending {
            sh.stats
                .count(&d.channel, d.reason.as_deref().unwrap_or(d.state.as_str()));
        }
        if ready_now(&d) {
            sh.ready(d);
        }
    }
    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    sh.store.ack(NOTIFY_REQUESTS, &sh.cfg.group, &ids).await?;
    Ok(())
}

/// A fresh record that may be sent now (not waiting, skipped or dead).
fn ready_now(d: &Delivery) -> bool {
    d.state == State::Queued && d.reason.is_none()
}

/// A fresh record for a planned delivery: rendered, with its rate-limit slots reserved,
/// claimed by this host when it can go now.
pub fn build(sh: &Shared, req: &NotificationRequest, p: Planned, now: i64) -> Delivery {
    let mut d = Delivery::new(
        NewDelivery {
            notification_id: req.id.clone(),
            user_id: req.user_id.clone(),
            kind: req.kind.clone(),
            priority: req.priority,
            channel: p.channel.clone(),
            target: p.target.clone(),
            request_json: serde_json::to_string(req).unwrap_or_default(),
        },
        now,
    );
    let wait = match p.start {
        Start::Skip { reason } => {
            d.end_unsent(State::Skipped, reason, None, now);
            return d;
        }
        Start::Dead { reason, error } => {
            d.end_unsent(State::Dead, reason, Some(error), now);
            return d;
        }
        Start::Now => None,
        Start::Wait { due_at_ms, reason } => Some((due_at_ms, reason)),
    };
    let Some(channel) = sh.channels.get(p.channel.as_str()) else {
        d.end_unsent(
            State::Dead,
            "channel_unconfigured",
            Some(format!("no channel {:?}", p.channel)),
            now,
        );
        return d;
    };
    if let Some(why) = channel.unconfigured() {
        d.end_unsent(State::Dead, "channel_unconfigured", Some(why), now);
        return d;
    }
    if !render_into(sh, &mut d, req, now) {
        return d;
    }
    if let Some((due, reason)) = wait {
        d.postpone(due, reason, None, Vec::new(), now);
        return d;
    }
    let slots = sh
        .limiter
        .lock()
        .reserve(&channel.limits(&d.target), d.parts.len() as u32, now);
    if slots[0] > now + NOW_SLACK_MS {
        let owner = sh.owner.clone();
        d.postpone(slots[0], "rate_limited", Some(&owner), slots, now);
    } else {
        // Goes now: straight to this host's claimer; due for any host's poller only
        // if this one stops before claiming it.
        d.due_at_ms = now + HOLD_MS;
        d.slot_owner = Some(sh.owner.clone());
        d.part_slots = slots;
    }
    d
}

/// Render the record's parts with its channel's formatter. On failure the record is
/// postponed (formatter not loaded yet) or dead (refused, or waited too long); returns
/// whether parts are there.
pub fn render_into(sh: &Shared, d: &mut Delivery, req: &NotificationRequest, now: i64) -> bool {
    let formatter = sh
        .cfg
        .formatters
        .get(&d.channel)
        .cloned()
        .unwrap_or_default();
    match plan::render(&sh.runtime, &formatter, req, &d.channel, d.created_ms) {
        Ok((parts, version)) => {
            d.parts = parts;
            d.formatter = version;
            true
        }
        Err(RenderError::Rejected(msg)) => {
            d.end_unsent(State::Dead, "formatter_rejected", Some(msg), now);
            false
        }
        Err(RenderError::Unavailable(msg) | RenderError::Failed(msg)) => {
            if now - d.created_ms > FORMATTER_PATIENCE_MS {
                d.end_unsent(State::Dead, "formatter_unavailable", Some(msg), now);
            } else {
                d.last_error = Some(msg);
                d.postpone(
                    now + FORMATTER_RETRY_MS,
                    "formatter_unavailable",
                    None,
                    Vec::new(),
                    now,
                );
            }
            false
        }
    }
}

/// A dead letter for an entry that is not a valid request.
fn invalid_record(e: &StreamEntry, error: &str, now: i64) -> Delivery {
    // The entry id too: entries without a key (a hand-written XADD) must not share one
    // record, so the id is derived from both.
    let mut d = Delivery::new(
        NewDelivery {
            notification_id: format!("{}#{}", e.key, e.id),
            user_id: String::new(),
            kind: String::new(),
            priority: Priority::Normal,
            channel: "intake".into(),
            target: NO_TARGET.into(),
            request_json: crate::util::truncate(&e.body, 4096),
        },
        now,
    );
    d.notification_id = if e.key.is_empty() {
        e.id.clone()
    } else {
        e.key.clone()
    };
    d.end_unsent(
        State::Dead,
        "invalid_request",
        Some(format!("stream entry {}: {error}", e.id)),
        now,
    );
    d
}
