//! Dispatch: claiming records right before they are sent, sending them, writing their
//! outcomes, and the two periodic jobs that keep the log moving.
//!
//! - The claimer: records that may go now arrive unclaimed (stored `queued`, held back
//!   from the due-poller for [`HOLD_MS`](super::intake::HOLD_MS)). It claims them in group commits, only as many
//!   as there are free send slots (`max_in_flight`), so the records a crash can leave
//!   `sending` — whose fate is unknown — are only those really in flight.
//! - Senders: one task per claimed record, sending its parts in order at their reserved
//!   rate-limit slots, then applying the outcome to the record.
//! - The outcome writer: group-commits outcomes as compare-and-set writes. A write that
//!   finds another revision means another host's sweeper declared the claim interrupted
//!   (this host outlived its lease): logged and counted, never retried.
//! - The due-poller: finds `queued` records that are due (rate-limit slots, quiet hours,
//!   retries, replays, formatters that were not loaded, and records a stopped host held)
//!   and hands them to the claimer — on any host; the claim's compare-and-set picks one.
//! - The sweeper: a `sending` record whose lease ran out belongs to a host that died or
//!   froze mid-send; it becomes a dead letter `interrupted` (or is queued again where the
//!   channel's `on_ambiguous = "retry"`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};

use super::intake::{NOW_SLACK_MS, render_into};
use super::record::{Delivery, SendOutcome, State};
use super::request::NotificationRequest;
use super::{Shared, bump, consumer_of};

/// A part is sent only while at least this share of the lease is left: the lease is at
/// least twice the slowest send (config validation), so a send that starts cannot outlive
/// the claim and race the sweeper.
const LEASE_LEFT_TO_START: i64 = 2;
/// How long shutdown waits for sends in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until `drain` turns true; `shutdown` (set first) stops the poller and sweeper.
pub async fn run(
    sh: Arc<Shared>,
    mut ready_rx: mpsc::UnboundedReceiver<Delivery>,
    mut claimed_rx: mpsc::UnboundedReceiver<(Delivery, OwnedSemaphorePermit)>,
    shutdown: watch::Receiver<bool>,
    mut drain: watch::Receiver<bool>,
) {
    let (commit_tx, commit_rx) = mpsc::unbounded_channel::<Outcome>();
    let committer = tokio::spawn(commit_loop(sh.clone(), commit_rx));
    let poller = tokio::spawn(poll_loop(sh.clone(), shutdown.clone()));
    let sweeper = tokio::spawn(sweep_loop(sh.clone(), shutdown.clone()));
    let permits = sh.permits.clone();
    loop {
        if *drain.borrow() {
            break;
        }
        let first = tokio::select! {
            biased;
            c = claimed_rx.recv() => match c {
                Some((d, permit)) => {
                    spawn_send(&sh, d, permit, &commit_tx);
                    continue;
                }
                None => break,
            },
            d = ready_rx.recv() => match d { Some(d) => d, None => break },
            _ = drain.changed() => continue,
        };
        // While waiting for a free send slot, keep starting the records intake inserted
        // already claimed: they hold the slots this wait is for.
        let permit = loop {
            tokio::select! {
                biased;
                c = claimed_rx.recv() => match c {
                    Some((d, p)) => spawn_send(&sh, d, p, &commit_tx),
                    None => break None,
                },
                p = permits.clone().acquire_owned() => break p.ok(),
                _ = drain.changed() => break None,
            }
        };
        let Some(permit) = permit else {
            sh.done(&first.id); // stays queued; due for a poller shortly
            continue;
        };
        let mut batch = vec![(first, permit)];
        while batch.len() < sh.cfg.batch_size {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                break;
            };
            match ready_rx.try_recv() {
                Ok(d) => batch.push((d, permit)),
                Err(_) => break,
            }
        }
        claim_and_send(&sh, batch, &commit_tx).await;
    }
    let _ = poller.await;
    let _ = sweeper.await;
    // Records not claimed stay `queued` and fall due for the next start (or another host);
    // records intake claimed are still sent.
    ready_rx.close();
    claimed_rx.close();
    while let Ok((d, permit)) = claimed_rx.try_recv() {
        spawn_send(&sh, d, permit, &commit_tx);
    }
    let all = sh.cfg.max_in_flight as u32;
    if tokio::time::timeout(DRAIN_TIMEOUT, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "notify: sends still in flight after {DRAIN_TIMEOUT:?}; their records stay `sending` and will be swept as interrupted"
        );
    }
    drop(commit_tx);
    // Senders still running hold the writer open; do not wait for them forever.
    let _ = tokio::time::timeout(Duration::from_secs(5), committer).await;
}

/// Claim a batch in one write and start a sender for each record won.
async fn claim_and_send(
    sh: &Arc<Shared>,
    batch: Vec<(Delivery, OwnedSemaphorePermit)>,
    commit_tx: &mpsc::UnboundedSender<Outcome>,
) {
    let now = crate::util::now_ms();
    let (mut records, permits): (Vec<Delivery>, Vec<OwnedSemaphorePermit>) =
        batch.into_iter().unzip();
    for d in &mut records {
        d.claim(&sh.owner, now, sh.cfg.lease_secs * 1000);
    }
    let revs = match sh.log.replace_all(&records).await {
        Ok(revs) => revs,
        Err(e) => {
            // Nothing claimed: they stay queued and the due-poller offers them again.
            tracing::warn!(error = %format!("{e:#}"), records = records.len(), "notify: claiming deliveries failed");
            for d in &records {
                sh.done(&d.id);
            }
            return;
        }
    };
    for ((mut d, permit), rev) in records.into_iter().zip(permits).zip(revs) {
        let Some(rev) = rev else {
            sh.done(&d.id); // another host claimed or changed it first
            continue;
        };
        d.rev = rev;
        spawn_send(sh, d, permit, commit_tx);
    }
}

/// Send a claimed record in its own task; the outcome goes to the writer with the slot.
fn spawn_send(
    sh: &Arc<Shared>,
    d: Delivery,
    permit: OwnedSemaphorePermit,
    commit_tx: &mpsc::UnboundedSender<Outcome>,
) {
    let (sh, tx) = (sh.clone(), commit_tx.clone());
    tokio::spawn(async move {
        let d = send_one(&sh, d).await;
        // The send slot is freed only once the outcome is written, so the records a
        // crash can leave `sending` never outnumber `max_in_flight`.
        let _ = tx.send((d, permit));
    });
}

/// Send the record's remaining parts; returns the record with the outcome applied.
async fn send_one(sh: &Shared, mut d: Delivery) -> Delivery {
    sh.stats.in_flight.fetch_add(1, Ordering::Relaxed);
    let started = crate::util::now_ms();
    let Some(channel) = sh.channels.get(d.channel.as_str()).cloned() else {
        let out = SendOutcome::Permanent(format!("no channel {:?}", d.channel));
        finish(sh, &mut d, &out, started);
        sh.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        return d;
    };
    let mut outcome = SendOutcome::Sent;
    let mut draining = sh.draining.clone();
    for i in d.parts_sent as usize..d.parts.len() {
        // Waiting for this part's rate-limit slot: nothing of it has left, so when the
        // worker stops meanwhile the record goes back to `queued` (due at the slot) instead
        // of staying `sending`, which the next start would have to call "interrupted".
        if let Some(&slot) = d.part_slots.get(i) {
            let wait = slot - crate::util::now_ms();
            if wait > 0 && !wait_unless_draining(&mut draining, wait).await {
                return hand_back(sh, d, slot);
            }
        }
        // The gate: real send starts per key stay within the limits even when this
        // send is late for its slot.
        let limits = channel.limits(&d.target);
        loop {
            let now = crate::util::now_ms();
            // What the receiver said about its own limits comes first (Discord's buckets).
            let hold = channel.not_before(&d.target);
            if hold > now {
                if !wait_unless_draining(&mut draining, hold - now).await {
                    return hand_back(sh, d, hold);
                }
                continue;
            }
            let verdict = sh.limiter.lock().admit(&limits, now);
            match verdict {
                Ok(()) => break,
                Err(at) => {
                    if !wait_unless_draining(&mut draining, at - now).await {
                        return hand_back(sh, d, at);
                    }
                }
            }
        }
        let lease_ms = sh.cfg.lease_secs as i64 * 1000;
        if crate::util::now_ms() > d.lease_until_ms - lease_ms / LEASE_LEFT_TO_START {
            // Sending now could outlive the claim and race the sweeper: give it back.
            d.unclaim(crate::util::now_ms());
            sh.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
            return d;
        }
        let part = d.parts[i].clone();
        match channel.send(&d, &part, i).await {
            SendOutcome::Sent => d.parts_sent += 1,
            other => {
                outcome = other;
                break;
            }
        }
    }
    if let SendOutcome::RateLimited {
        retry_after_secs, ..
    } = &outcome
    {
        let until = crate::util::now_ms() + (*retry_after_secs).min(86_400) as i64 * 1000;
        let mut limiter = sh.limiter.lock();
        for l in channel.limits(&d.target).iter().filter(|l| !l.shared) {
            limiter.penalize(&l.key, until);
        }
    }
    if let SendOutcome::Gone(_) = &outcome {
        forget_gone_target(sh, &d).await;
    }
    if outcome == SendOutcome::Sent {
        let delay_ms = (crate::util::now_ms() - d.created_ms).max(0) as u64;
        sh.stats.send_delay.record(delay_ms * 1_000_000);
    }
    finish(sh, &mut d, &outcome, started);
    sh.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    d
}

/// A push service said the subscription is gone: drop it from the user's preferences, so
/// no later notification is planned for it. A failure is logged and the record still ends
/// `skipped`; the next send to that subscription meets the same answer and tries again.
async fn forget_gone_target(sh: &Shared, d: &Delivery) {
    let Some(sub) = super::webpush::Subscription::from_target(&d.target) else {
        return;
    };
    let removed =
        super::subscriptions::remove(&sh.log, &d.user_id, &sub.endpoint, crate::util::now_ms())
            .await;
    sh.forget_preferences(&d.user_id);
    match removed {
        Ok(true) => {
            tracing::info!(delivery = %d.id, user = %d.user_id, endpoint = %sub.shown(), "notify: a push subscription is gone; removed from the preferences")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(delivery = %d.id, user = %d.user_id, error = %format!("{e:#}"), "notify: removing a gone push subscription failed")
        }
    }
}

/// Sleep `ms` (at least 1); false if the worker started stopping first.
async fn wait_unless_draining(draining: &mut watch::Receiver<bool>, ms: i64) -> bool {
    tokio::select! {
        biased;
        _ = draining.wait_for(|d| *d) => false,
        _ = tokio::time::sleep(Duration::from_millis(ms.max(1) as u64)) => true,
    }
}

/// Give a claimed record back unsent (the worker stops while it waits for `due_at_ms`);
/// its outcome writer stores it `queued`.
fn hand_back(sh: &Shared, mut d: Delivery, due_at_ms: i64) -> Delivery {
    d.hand_back(crate::util::now_ms(), due_at_ms);
    tracing::info!(delivery = %d.id, channel = %d.channel, parts_sent = d.parts_sent, "notify: stopping; a delivery waiting for its rate-limit slot goes back to the queue");
    sh.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    d
}

fn finish(sh: &Shared, d: &mut Delivery, outcome: &SendOutcome, started: i64) {
    let now = crate::util::now_ms();
    if let SendOutcome::Transient(e)
    | SendOutcome::Permanent(e)
    | SendOutcome::Ambiguous(e)
    | SendOutcome::Gone(e) = outcome
    {
        tracing::info!(delivery = %d.id, channel = %d.channel, outcome = outcome.label(), error = %e, "notify: send failed");
    }
    d.finish(
        outcome,
        &sh.consumer,
        started,
        now,
        &sh.cfg.retry,
        sh.cfg.on_ambiguous(&d.channel),
        fastrand::f64(),
    );
    sh.stats.count(&d.channel, outcome.label());
}

/// A finished send and the send slot it holds until its outcome is written.
type Outcome = (Delivery, OwnedSemaphorePermit);

/// Write outcomes in batches (compare-and-set on the revision each claim wrote).
async fn commit_loop(sh: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Outcome>) {
    let max = sh.cfg.batch_size;
    while let Some(first) = rx.recv().await {
        let mut items = vec![first];
        while items.len() < max {
            match rx.try_recv() {
                Ok(o) => items.push(o),
                Err(_) => break,
            }
        }
        let (batch, _permits): (Vec<Delivery>, Vec<OwnedSemaphorePermit>) =
            items.into_iter().unzip();
        let mut failures = 0u32;
        loop {
            match sh.log.replace_all(&batch).await {
                Ok(revs) => {
                    for (d, rev) in batch.iter().zip(revs) {
                        sh.done(&d.id);
                        if rev.is_none() {
                            bump(&sh.stats.lease_lost);
                            tracing::error!(delivery = %d.id, state = d.state.as_str(), "notify: the record changed under this host's claim (its lease ran out and another host swept it); this outcome is not recorded");
                        }
                    }
                    break;
                }
                Err(e) => {
                    // Keep the outcomes and try again: the sends happened.
                    failures += 1;
                    let wait = Duration::from_millis((100u64 << failures.min(8)).min(10_000));
                    tracing::warn!(error = %format!("{e:#}"), records = batch.len(), "notify: writing outcomes failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// Claim due `queued` records.
async fn poll_loop(sh: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let every = Duration::from_millis(sh.cfg.poll_interval_ms.max(1));
    // Passes that found nothing to do back off (up to 20 intervals), so a page of
    // records this host is already sending is not re-read at full speed.
    let mut idle = 0u32;
    loop {
        let (more, acted) = match poll_once(&sh).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "notify: polling due deliveries failed");
                (false, false)
            }
        };
        if *shutdown.borrow() {
            return;
        }
        idle = if acted { 0 } else { (idle + 1).min(20) };
        if !more {
            tokio::select! {
                _ = tokio::time::sleep(every * idle.max(1)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// One pass; returns (the page was full, something was done). Nothing due is "nothing
/// done" only when records were found; an empty result keeps the normal cadence.
pub async fn poll_once(sh: &Shared) -> Result<(bool, bool)> {
    let now = crate::util::now_ms();
    let limit = sh.cfg.batch_size;
    let due = sh.log.due(now, limit).await?;
    let page = due.len();
    let mut acted = 0;
    let mut changed = Vec::new();
    if page == 0 {
        return Ok((false, true));
    }
    for mut d in due {
        if sh.is_pending(&d.id) {
            continue; // on its way through this host's claimer
        }
        acted += 1;
        if d.parts.is_empty() {
            let Ok(req) = serde_json::from_str::<NotificationRequest>(&d.request_json) else {
                d.end_unsent(
                    State::Dead,
                    "invalid_request",
                    Some("the stored request is unreadable".into()),
                    now,
                );
                changed.push(d);
                continue;
            };
            if !render_into(sh, &mut d, &req, now) {
                changed.push(d);
                continue;
            }
        }
        let Some(channel) = sh.channels.get(d.channel.as_str()) else {
            d.end_unsent(
                State::Dead,
                "channel_unconfigured",
                Some(format!("no channel {:?}", d.channel)),
                now,
            );
            changed.push(d);
            continue;
        };
        if let Some(why) = channel.unconfigured() {
            d.end_unsent(State::Dead, "channel_unconfigured", Some(why), now);
            changed.push(d);
            continue;
        }
        let remaining = d.parts.len().saturating_sub(d.parts_sent as usize);
        let own_slots = d.slot_owner.as_deref() == Some(sh.owner.as_str())
            && d.part_slots.len() >= d.parts.len();
        if !own_slots {
            let slots =
                sh.limiter
                    .lock()
                    .reserve(&channel.limits(&d.target), remaining.max(1) as u32, now);
            // Slots are indexed by part; earlier parts were sent already.
            let mut by_part = vec![now; d.parts_sent as usize];
            by_part.extend(&slots);
            if slots[0] > now + NOW_SLACK_MS {
                let owner = sh.owner.clone();
                d.postpone(slots[0], "rate_limited", Some(&owner), by_part, now);
                changed.push(d);
                continue;
            }
            d.part_slots = by_part;
        }
        sh.ready(d);
    }
    let revs = sh.log.replace_all(&changed).await?;
    for (d, rev) in changed.into_iter().zip(revs) {
        if rev.is_some() && matches!(d.state, State::Dead | State::Skipped) {
            sh.stats
                .count(&d.channel, d.reason.as_deref().unwrap_or("dead"));
        }
    }
    Ok((page == limit && acted > 0, acted > 0 || page == 0))
}

async fn sweep_loop(sh: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let every = Duration::from_millis((sh.cfg.lease_secs * 1000 / 10).clamp(200, 5000));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        // Limiter state of keys idle for a while no longer constrains anything.
        sh.limiter
            .lock()
            .forget_before(crate::util::now_ms() - 60_000);
        if let Err(e) = sweep_expired(&sh).await {
            tracing::warn!(error = %format!("{e:#}"), "notify: sweeping expired claims failed");
        }
        ticks += 1;
        // Retention, about hourly.
        if ticks.is_multiple_of((3_600_000 / every.as_millis() as u64).max(1)) {
            match sh
                .log
                .purge(crate::util::now_ms(), sh.cfg.retention_days)
                .await
            {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "notify: old records purged"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "notify: purging old records failed")
                }
            }
        }
    }
}

/// Settle `sending` records whose lease ran out.
pub async fn sweep_expired(sh: &Shared) -> Result<()> {
    let now = crate::util::now_ms();
    let expired = sh.log.expired(now, sh.cfg.batch_size).await?;
    interrupt(sh, expired, now).await
}

/// At start-up: records this consumer left `sending` under an earlier boot are settled
/// at once (that process is gone; no need to wait for its lease).
pub async fn sweep_previous_lives(sh: &Shared) -> Result<()> {
    let now = crate::util::now_ms();
    loop {
        let sending = sh.log.sending(10_000).await?;
        let mine: Vec<Delivery> = sending
            .into_iter()
            .filter(|d| {
                d.owner
                    .as_deref()
                    .is_some_and(|o| consumer_of(o) == sh.consumer && o != sh.owner)
            })
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        let n = mine.len();
        interrupt(sh, mine, now).await?;
        tracing::warn!(
            records = n,
            "notify: settled deliveries an earlier run of this host left mid-send"
        );
        if n < 10_000 {
            return Ok(());
        }
    }
}

async fn interrupt(sh: &Shared, records: Vec<Delivery>, now: i64) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut changed = records;
    for d in &mut changed {
        let on_ambiguous = sh.cfg.on_ambiguous(&d.channel);
        let owner = d.owner.clone().unwrap_or_default();
        if owner == sh.owner && !sh.is_pending(&d.id) {
            // Claimed by this very process but never handed to a sender (a claim batch
            // that failed halfway on a store without batch atomicity): known unsent.
            d.unclaim(now);
            continue;
        }
        d.interrupt(&sh.consumer, now, on_ambiguous);
        tracing::warn!(delivery = %d.id, channel = %d.channel, %owner, state = d.state.as_str(), "notify: a send was interrupted (its host stopped mid-send)");
    }
    let revs = sh.log.replace_all(&changed).await?;
    for (d, rev) in changed.iter().zip(revs) {
        if rev.is_some() {
            bump(&sh.stats.interrupted);
            sh.stats.count(&d.channel, "interrupted");
        }
    }
    Ok(())
}
