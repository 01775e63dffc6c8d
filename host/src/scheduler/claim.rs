//! The claim protocol: one shared record per schedule in the store, and the pure
//! transitions hosts make on it (docs/design/scheduler.md).
//!
//! The record ([`ScheduleState`]) holds the next occurrence no host has taken yet and the
//! occurrences taken and not finished ([`Claim`]s: waiting, or running under a host's
//! [`Lease`]). Every change is computed here from the record a host read, and written
//! with the store's compare-and-set on the record's version: of several hosts that read
//! the same version, one write wins and the others re-read and re-plan. So:
//! - an occurrence is taken once: taking it moves `next_ms` past it in the same write;
//! - a claim runs on one host at a time: starting it sets the lease in the same write,
//!   and only a lease past its end (by the store's clock) may be taken over — which
//!   counts a new attempt;
//! - a run-now request is a claim like any other, so it runs once whichever host takes it.
//!
//! [`step`] is the one transition: it applies finished runs, renews this host's leases,
//! takes over lapsed ones, takes what has come due (applying the catch-up window and the
//! overlap policy) and starts what may start, reporting what it did as [`Effect`]s for
//! the worker to carry out once the write has won.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::config::{Overlap, Schedule};

/// Most claims one schedule keeps waiting; further occurrences are skipped (and logged),
/// so a long outage of a frequent schedule cannot grow the record without bound.
pub const MAX_BACKLOG: usize = 100;
/// Most missed occurrences counted one by one when skipping a stretch of them.
const MAX_COUNTED: u64 = 10_000_000;

/// Which definition a record follows. A host whose definition is older than the record's
/// leaves the schedule alone until it has re-read it, so two hosts never flip the timing
/// back and forth.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefStamp {
    /// The definition's identity: `config`, or the id an API-made one got at creation
    /// (a schedule deleted and made again under its name is a new one).
    pub uid: String,
    /// Its revision: 0 for config ones, the document's revision for API-made ones.
    pub rev: u64,
    /// What decides when occurrences fall ([`Schedule::timing_fingerprint`]).
    pub timing: String,
}

/// Why a claim exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// An occurrence taken in time.
    Schedule,
    /// A missed occurrence run after an outage, inside the catch-up window.
    CatchUp,
    /// `POST /api/v1/schedules/{name}/run`.
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch_up",
            Trigger::Manual => "manual",
        }
    }
}

/// A host running a claim, until `until_ms` (store clock) unless renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The worker instance (`host/boot`): a restarted host is another owner.
    pub owner: String,
    /// The host's name, for the history.
    pub host: String,
    pub started_ms: i64,
    pub until_ms: i64,
}

/// An occurrence taken and not finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Unique within the schedule: the occurrence's time in ms, or `m<n>` for run-now.
    pub id: String,
    /// The occurrence's time (for a run-now: when it was asked for).
    pub occ_ms: i64,
    pub trigger: Trigger,
    /// Tries started so far.
    pub attempt: u32,
    /// A retry waits until then.
    #[serde(default)]
    pub not_before_ms: i64,
    /// Set while a host runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// The last failed try's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The last finished occurrence, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    pub id: String,
    pub occ_ms: i64,
    pub finished_ms: i64,
    pub attempt: u32,
    pub outcome: String,
}

/// The shared record of one schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    pub def: DefStamp,
    /// The next occurrence no host has taken (it may be in the past after an outage);
    /// `None`: no further occurrence.
    pub next_ms: Option<i64>,
    /// Claims, oldest first.
    #[serde(default)]
    pub runs: Vec<Claim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<LastRun>,
    /// Run-now requests made so far (their claim ids).
    #[serde(default)]
    pub manual_seq: u64,
    /// The schedule (this `def.uid`) was deleted through the API: nothing starts. A
    /// schedule made again under the name has another uid and plans afresh.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

impl ScheduleState {
    pub fn parse(json: &str) -> Result<ScheduleState, serde_json::Error> {
        serde_json::from_str(json)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether a claim is running.
    pub fn running(&self) -> bool {
        self.runs.iter().any(|c| c.lease.is_some())
    }
}

/// How a try ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TryOutcome {
    /// The task's report.
    Ok { summary: String, data_json: String },
    /// The task returned an error, or its call failed (trap, limit).
    Error(String),
    /// The call passed its deadline.
    Timeout(String),
    /// The try never began: the plugin was unloaded between the claim and the call. The
    /// claim goes back to waiting without counting a try.
    NotRun(String),
}

impl TryOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            TryOutcome::Ok { .. } => "ok",
            TryOutcome::Error(_) => "error",
            TryOutcome::Timeout(_) => "timeout",
            TryOutcome::NotRun(_) => "not_run",
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            TryOutcome::Ok { .. } => None,
            TryOutcome::Error(e) | TryOutcome::Timeout(e) | TryOutcome::NotRun(e) => Some(e),
        }
    }
}

/// A try this host finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub id: String,
    pub attempt: u32,
    pub owner: String,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub outcome: TryOutcome,
}

/// Why occurrences were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Older than the catch-up window.
    CatchUpWindow,
    /// A run was in flight (`overlap = "skip"`, or `queue_one` with one waiting).
    Overlap,
    /// [`MAX_BACKLOG`] claims were waiting already.
    Backlog,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::CatchUpWindow => "catch_up_window",
            SkipReason::Overlap => "overlap",
            SkipReason::Backlog => "backlog",
        }
    }
}

/// What a won write obliges the worker to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Run this claim here, as try `attempt`.
    Start {
        id: String,
        occ_ms: i64,
        trigger: Trigger,
        attempt: u32,
    },
    /// Occurrences dropped: `count` of them, from `first_ms` to `last_ms`.
    Skipped {
        reason: SkipReason,
        first_ms: i64,
        last_ms: i64,
        count: u64,
    },
    /// Missed occurrences taken to run late (inside the window).
    CaughtUp { count: u64 },
    /// A try this host finished is recorded; `retry_at_ms` when another try follows.
    Recorded {
        finished: Finished,
        occ_ms: i64,
        trigger: Trigger,
        retry_at_ms: Option<i64>,
    },
    /// A try this host finished whose claim had been taken over meanwhile (its lease
    /// lapsed): the try happened, and is recorded as such.
    Superseded {
        finished: Finished,
        occ_ms: i64,
        trigger: Trigger,
    },
    /// Another host's try whose lease lapsed: it is lost; `retried` when the occurrence
    /// gets another try.
    Lost {
        id: String,
        occ_ms: i64,
        trigger: Trigger,
        attempt: u32,
        lease: Lease,
        retried: bool,
    },
}

/// What [`step`] needs to know besides the record.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub schedule: &'a Schedule,
    /// This host's definition of the schedule.
    pub stamp: &'a DefStamp,
    /// This worker instance (`host/boot`) and host name.
    pub owner: &'a str,
    pub host: &'a str,
    /// The store's clock.
    pub now_ms: i64,
    pub lease_ms: i64,
    /// Claims of this schedule this host is running now (their ids).
    pub mine: &'a HashSet<String>,
    /// How many runs this host may start now.
    pub free_slots: usize,
    /// Whether the schedule's plugin is loaded here: a host without it takes nothing.
    pub can_run: bool,
    /// How long before its time an occurrence may be taken when nothing of the schedule
    /// is running or waiting (so the overlap policy is not in question): the host then
    /// starts it at its time, its claim already written ([`claim_ahead`] decides).
    pub ahead_ms: i64,
}

/// The outcome of [`step`].
#[derive(Debug)]
pub struct Step {
    pub state: ScheduleState,
    pub effects: Vec<Effect>,
    /// Whether `state` differs from the record read (a write is needed).
    pub changed: bool,
}

/// Apply this host's finished tries, renew and take over leases, take due occurrences
/// and start what may start. `current` is the record as read (`None`: none yet).
pub fn step(current: Option<&ScheduleState>, ctx: &Ctx<'_>, finished: &[Finished]) -> Step {
    let mut state = current.cloned().unwrap_or_default();
    let mut effects = Vec::new();
    let sched = ctx.schedule;
    let now = ctx.now_ms;

    // The definition: a newer one here re-plans from now (what a changed or resumed
    // schedule missed is not caught up); an older one here waits for the re-read.
    let stale_def = state.def.uid == ctx.stamp.uid && state.def.rev > ctx.stamp.rev;
    if !stale_def && state.def != *ctx.stamp {
        // A new record, or another definition: plan from now.
        if state.def.uid != ctx.stamp.uid {
            state.deleted = false;
        }
        state.next_ms = sched.timing.next_after(now);
        state.def = ctx.stamp.clone();
    }

    for f in finished {
        apply_finished(&mut state, sched, f, now, &mut effects);
    }

    for claim in state.runs.iter_mut() {
        if let Some(lease) = &mut claim.lease
            && lease.owner == ctx.owner
            && ctx.mine.contains(&claim.id)
            && lease.until_ms - now <= ctx.lease_ms * 2 / 3
        {
            lease.until_ms = now + ctx.lease_ms;
        }
    }
    take_over_lapsed(&mut state, ctx, &mut effects);

    if !stale_def && ctx.can_run && sched.spec.enabled {
        let horizon = now + claim_ahead(&state, ctx.ahead_ms);
        take_due(&mut state, sched, now, horizon, &mut effects);
    }
    if !stale_def && ctx.can_run {
        start_runnable(&mut state, ctx, &mut effects);
    }

    let changed = current != Some(&state);
    Step {
        state,
        effects,
        changed,
    }
}

fn apply_finished(
    state: &mut ScheduleState,
    sched: &Schedule,
    f: &Finished,
    now: i64,
    effects: &mut Vec<Effect>,
) {
    let Some(pos) = state.runs.iter().position(|c| {
        c.id == f.id
            && c.attempt == f.attempt
            && c.lease.as_ref().is_some_and(|l| l.owner == f.owner)
    }) else {
        // Taken over (our lease lapsed), or the schedule was deleted meanwhile.
        let (occ_ms, trigger) = state.runs.iter().find(|c| c.id == f.id).map_or(
            (f.id.parse().unwrap_or(f.started_ms), Trigger::Schedule),
            |c| (c.occ_ms, c.trigger),
        );
        effects.push(Effect::Superseded {
            finished: f.clone(),
            occ_ms,
            trigger,
        });
        return;
    };
    let retry = f.outcome.error().is_some() && f.attempt <= sched.spec.retries;
    let claim = &mut state.runs[pos];
    let (occ_ms, trigger) = (claim.occ_ms, claim.trigger);
    if let TryOutcome::NotRun(_) = f.outcome {
        claim.lease = None;
        claim.attempt = claim.attempt.saturating_sub(1);
        claim.not_before_ms = now + 1000;
        return;
    }
    if retry {
        let at = now + sched.retry_delay_ms(f.attempt);
        claim.lease = None;
        claim.not_before_ms = at;
        claim.last_error = f.outcome.error().map(|e| crate::util::truncate(e, 512));
        effects.push(Effect::Recorded {
            finished: f.clone(),
            occ_ms,
            trigger,
            retry_at_ms: Some(at),
        });
    } else {
        state.runs.remove(pos);
        state.last = Some(LastRun {
            id: f.id.clone(),
            occ_ms,
            finished_ms: f.finished_ms,
            attempt: f.attempt,
            outcome: f.outcome.label().to_string(),
        });
        effects.push(Effect::Recorded {
            finished: f.clone(),
            occ_ms,
            trigger,
            retry_at_ms: None,
        });
    }
}

/// Leases past their end (store clock) whose holder is not this host running them: the
/// try is lost; the occurrence gets another try while it has retries left.
fn take_over_lapsed(state: &mut ScheduleState, ctx: &Ctx<'_>, effects: &mut Vec<Effect>) {
    let now = ctx.now_ms;
    let retries = ctx.schedule.spec.retries;
    let mut finished_lost = Vec::new();
    for claim in state.runs.iter_mut() {
        let Some(lease) = &claim.lease else {
            continue;
        };
        let ours_running = lease.owner == ctx.owner && ctx.mine.contains(&claim.id);
        if ours_running || lease.until_ms >= now {
            continue;
        }
        let lease = lease.clone();
        let retried = claim.attempt <= retries;
        effects.push(Effect::Lost {
            id: claim.id.clone(),
            occ_ms: claim.occ_ms,
            trigger: claim.trigger,
            attempt: claim.attempt,
            lease: lease.clone(),
            retried,
        });
        claim.lease = None;
        claim.not_before_ms = now;
        claim.last_error = Some(format!(
            "host `{}` stopped renewing its lease mid-run",
            lease.host
        ));
        if !retried {
            finished_lost.push(claim.id.clone());
        }
    }
    for id in finished_lost {
        if let Some(pos) = state.runs.iter().position(|c| c.id == id) {
            let claim = state.runs.remove(pos);
            state.last = Some(LastRun {
                id: claim.id,
                occ_ms: claim.occ_ms,
                finished_ms: now,
                attempt: claim.attempt,
                outcome: "lost".into(),
            });
        }
    }
}

/// Take the occurrences that have come due: skip those past the catch-up window, then
/// admit the rest under the overlap policy.
/// How far ahead of its time the next occurrence may be taken: `ahead_ms` while no claim
/// of the schedule is running or waiting, else not at all (whether it overlaps one is
/// decided at its time, as if it were never taken early).
pub fn claim_ahead(state: &ScheduleState, ahead_ms: i64) -> i64 {
    if state.runs.is_empty() { ahead_ms } else { 0 }
}

/// Take the occurrences planned up to `horizon` (`now`, or a little later: [`claim_ahead`]).
fn take_due(
    state: &mut ScheduleState,
    sched: &Schedule,
    now: i64,
    horizon: i64,
    effects: &mut Vec<Effect>,
) {
    let mut window_skips: Option<(i64, i64, u64)> = None;
    let mut due = Vec::new();
    while let Some(occ) = state.next_ms {
        let planned = sched.planned_ms(occ);
        if planned > horizon {
            break;
        }
        if now - planned > sched.catch_up_ms {
            // Every occurrence before `resume` is older than the window; count them
            // without planning each (a day of a 1s schedule is 86,400 of them).
            let resume = sched
                .timing
                .next_after(now - sched.catch_up_ms - sched.jitter_ms - 1)
                .filter(|r| *r > occ);
            let (last, count, next) = match resume {
                Some(resume) => {
                    let count = 1 + sched.timing.count_between(occ, resume - 1, MAX_COUNTED);
                    (last_before(sched, occ, resume), count, Some(resume))
                }
                None => (occ, 1, sched.timing.next_after(occ)),
            };
            let (first, _, n) = window_skips.unwrap_or((occ, occ, 0));
            window_skips = Some((first, last, n + count));
            state.next_ms = next;
            continue;
        }
        due.push(occ);
        state.next_ms = sched.timing.next_after(occ);
    }
    if let Some((first_ms, last_ms, count)) = window_skips {
        effects.push(Effect::Skipped {
            reason: SkipReason::CatchUpWindow,
            first_ms,
            last_ms,
            count,
        });
    }
    if due.is_empty() {
        return;
    }
    // All but the newest were missed: they are caught up.
    let newest = due.len() - 1;
    let had_claims = !state.runs.is_empty();
    let waiting = state.runs.iter().any(|c| c.lease.is_none());
    let mut admitted = Vec::new();
    let mut skipped = Vec::new();
    for (i, occ) in due.into_iter().enumerate() {
        let admit = match sched.spec.overlap {
            Overlap::Allow => true,
            Overlap::Skip => !had_claims,
            Overlap::QueueOne => !had_claims || (!waiting && admitted.is_empty()),
        };
        if !admit {
            skipped.push((occ, SkipReason::Overlap));
        } else if state.runs.len() >= MAX_BACKLOG {
            skipped.push((occ, SkipReason::Backlog));
        } else {
            let trigger = if i < newest {
                Trigger::CatchUp
            } else {
                Trigger::Schedule
            };
            admitted.push(trigger);
            state.runs.push(Claim {
                id: occ.to_string(),
                occ_ms: occ,
                trigger,
                attempt: 0,
                not_before_ms: 0,
                lease: None,
                last_error: None,
            });
        }
    }
    let caught_up = admitted.iter().filter(|t| **t == Trigger::CatchUp).count() as u64;
    if caught_up > 0 {
        effects.push(Effect::CaughtUp { count: caught_up });
    }
    for (occ, reason) in skipped {
        effects.push(Effect::Skipped {
            reason,
            first_ms: occ,
            last_ms: occ,
            count: 1,
        });
    }
}

/// The last occurrence before `before`, from `from` on (which is one).
fn last_before(sched: &Schedule, from: i64, before: i64) -> i64 {
    if let super::timing::Timing::Every { ms } = sched.timing {
        return (before - 1).div_euclid(ms) * ms;
    }
    let mut last = from;
    let mut n = 0;
    while let Some(next) = sched.timing.next_after(last) {
        if next >= before || n > 100_000 {
            break;
        }
        last = next;
        n += 1;
    }
    last
}

/// Start what may start here: every waiting claim with `overlap = "allow"`, else the
/// oldest one when none is running, within this host's free slots.
fn start_runnable(state: &mut ScheduleState, ctx: &Ctx<'_>, effects: &mut Vec<Effect>) {
    let now = ctx.now_ms;
    let mut slots = ctx.free_slots;
    let sequential = ctx.schedule.spec.overlap != Overlap::Allow;
    if sequential && state.running() {
        return;
    }
    for claim in state.runs.iter_mut() {
        if slots == 0 {
            break;
        }
        if claim.lease.is_some() {
            continue;
        }
        if claim.not_before_ms > now {
            if sequential {
                // Oldest first: a retry waiting for its backoff holds the queue.
                break;
            }
            continue;
        }
        claim.attempt += 1;
        claim.lease = Some(Lease {
            owner: ctx.owner.to_string(),
            host: ctx.host.to_string(),
            started_ms: now,
            until_ms: now + ctx.lease_ms,
        });
        slots -= 1;
        effects.push(Effect::Start {
            id: claim.id.clone(),
            occ_ms: claim.occ_ms,
            trigger: claim.trigger,
            attempt: claim.attempt,
        });
        if sequential {
            break;
        }
    }
}

/// Add a run-now claim; returns its id.
pub fn add_manual(state: &mut ScheduleState, now_ms: i64) -> String {
    state.manual_seq += 1;
    let id = format!("m{}", state.manual_seq);
    state.runs.push(Claim {
        id: id.clone(),
        occ_ms: now_ms,
        trigger: Trigger::Manual,
        attempt: 0,
        not_before_ms: 0,
        lease: None,
        last_error: None,
    });
    id
}

/// When this host should look at the record again: the next occurrence, a retry coming
/// due, a lease of its own to renew, or another host's lease to take over.
pub fn next_wake(
    state: &ScheduleState,
    sched: &Schedule,
    owner: &str,
    lease_ms: i64,
    ahead_ms: i64,
) -> Option<i64> {
    let mut wake: Option<i64> = None;
    let mut at = |t: i64| wake = Some(wake.map_or(t, |w| w.min(t)));
    if sched.spec.enabled
        && let Some(next) = state.next_ms
    {
        at(sched.planned_ms(next) - claim_ahead(state, ahead_ms));
    }
    let blocked = sched.spec.overlap != Overlap::Allow && state.running();
    for claim in &state.runs {
        match &claim.lease {
            Some(l) if l.owner == owner => at(l.until_ms - lease_ms * 2 / 3),
            Some(l) => at(l.until_ms + 1),
            // A waiting claim behind a running one starts when that one ends.
            None if blocked => {}
            None => at(claim.not_before_ms),
        }
    }
    wake
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::config::ScheduleSpec;

    const T0: i64 = 1_800_000_000_000;

    fn schedule(extra: &str) -> Schedule {
        let text = format!("name = \"s\"\nplugin = \"p\"\nevery = \"1s\"\n{extra}");
        toml::from_str::<ScheduleSpec>(&text)
            .unwrap()
            .check()
            .unwrap()
    }

    struct Host {
        owner: String,
        mine: HashSet<String>,
    }

    fn host(name: &str) -> Host {
        Host {
            owner: format!("{name}/boot"),
            mine: HashSet::new(),
        }
    }

    fn run(
        state: Option<&ScheduleState>,
        sched: &Schedule,
        h: &Host,
        now: i64,
        finished: &[Finished],
    ) -> Step {
        run_ahead(state, sched, h, now, finished, 0)
    }

    fn run_ahead(
        state: Option<&ScheduleState>,
        sched: &Schedule,
        h: &Host,
        now: i64,
        finished: &[Finished],
        ahead_ms: i64,
    ) -> Step {
        let stamp = DefStamp {
            uid: "config".into(),
            rev: 0,
            timing: sched.timing_fingerprint(),
        };
        step(
            state,
            &Ctx {
                schedule: sched,
                stamp: &stamp,
                owner: &h.owner,
                host: &h.owner,
                now_ms: now,
                lease_ms: 1000,
                mine: &h.mine,
                free_slots: 16,
                can_run: true,
                ahead_ms,
            },
            finished,
        )
    }

    fn starts(step: &Step) -> Vec<(String, u32)> {
        step.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Start { id, attempt, .. } => Some((id.clone(), *attempt)),
                _ => None,
            })
            .collect()
    }

    fn done(id: &str, attempt: u32, h: &Host, at: i64, ok: bool) -> Finished {
        Finished {
            id: id.into(),
            attempt,
            owner: h.owner.clone(),
            started_ms: at,
            finished_ms: at,
            outcome: if ok {
                TryOutcome::Ok {
                    summary: "fine".into(),
                    data_json: "{}".into(),
                }
            } else {
                TryOutcome::Error("boom".into())
            },
        }
    }

    #[test]
    fn a_new_record_plans_the_next_occurrence_and_two_hosts_take_it_once() {
        let s = schedule("");
        let a = host("a");
        let first = run(None, &s, &a, T0 + 100, &[]);
        assert_eq!(first.state.next_ms, Some(T0 + 1000));
        assert!(starts(&first).is_empty());
        // At the occurrence, host a takes it (its write wins); host b, planning from the
        // same record, would take the same one — but its write carries the old version
        // and loses; re-planned from a's record, it has nothing to do.
        let taken = run(Some(&first.state), &s, &a, T0 + 1000, &[]);
        assert_eq!(starts(&taken), [(format!("{}", T0 + 1000), 1)]);
        assert_eq!(taken.state.next_ms, Some(T0 + 2000));
        let b = host("b");
        let after = run(Some(&taken.state), &s, &b, T0 + 1001, &[]);
        assert!(starts(&after).is_empty());
        assert!(!after.changed);
    }

    #[test]
    fn an_idle_schedule_is_taken_ahead_of_its_time_and_a_busy_one_only_at_it() {
        let s = schedule("");
        let a = host("a");
        let planned = run_ahead(None, &s, &a, T0 + 100, &[], 150).state;
        assert_eq!(next_wake(&planned, &s, &a.owner, 1000, 150), Some(T0 + 850));
        assert!(starts(&run_ahead(Some(&planned), &s, &a, T0 + 849, &[], 150)).is_empty());
        // Inside the lead: taken and started now, for the worker to begin at its time.
        let taken = run_ahead(Some(&planned), &s, &a, T0 + 850, &[], 150);
        assert_eq!(starts(&taken), [(format!("{}", T0 + 1000), 1)]);
        assert_eq!(taken.state.next_ms, Some(T0 + 2000));
        // Still running near the next one (its lease renewed): nothing is taken early,
        // the wake is the occurrence's own time, and there the overlap policy decides.
        let mut running = host("a");
        running.mine.insert(format!("{}", T0 + 1000));
        let busy = run_ahead(Some(&taken.state), &s, &running, T0 + 1800, &[], 150).state;
        assert_eq!(next_wake(&busy, &s, &a.owner, 1000, 150), Some(T0 + 2000));
        let b = host("b");
        assert!(starts(&run_ahead(Some(&busy), &s, &b, T0 + 1900, &[], 150)).is_empty());
        let at_time = run_ahead(Some(&busy), &s, &b, T0 + 2000, &[], 150);
        assert!(at_time.effects.iter().any(|e| matches!(
            e,
            Effect::Skipped {
                reason: SkipReason::Overlap,
                ..
            }
        )));
    }

    #[test]
    fn a_lapsed_lease_is_taken_over_as_attempt_two() {
        let s = schedule("");
        let (a, b) = (host("a"), host("b"));
        let planned = run(None, &s, &a, T0, &[]).state;
        let taken = run(Some(&planned), &s, &a, T0 + 1000, &[]).state;
        // a dies. Before its lease ends (1000 ms) b leaves the claim alone.
        let early = run(Some(&taken), &s, &b, T0 + 1500, &[]);
        assert!(
            starts(&early)
                .iter()
                .all(|(id, _)| id != &format!("{}", T0 + 1000))
        );
        let late = run(Some(&taken), &s, &b, T0 + 2001, &[]);
        assert!(late.effects.iter().any(|e| matches!(
            e,
            Effect::Lost {
                attempt: 1,
                retried: true,
                ..
            }
        )));
        assert!(starts(&late).contains(&(format!("{}", T0 + 1000), 2)));
    }

    #[test]
    fn a_failed_try_is_retried_after_its_backoff_then_given_up() {
        let s = schedule("retries = 1\nbackoff = \"5s\"\ncatch_up = \"1h\"");
        let mut a = host("a");
        let planned = run(None, &s, &a, T0, &[]).state;
        let taken = run(Some(&planned), &s, &a, T0 + 1000, &[]).state;
        let id = format!("{}", T0 + 1000);
        a.mine.insert(id.clone());
        let failed = run(
            Some(&taken),
            &s,
            &a,
            T0 + 1100,
            &[done(&id, 1, &a, T0 + 1100, false)],
        );
        a.mine.clear();
        assert!(failed.effects.iter().any(
            |e| matches!(e, Effect::Recorded { retry_at_ms: Some(t), .. } if *t == T0 + 6100)
        ));
        // Sequential: the waiting retry holds the queue, so the next occurrences are
        // skipped as overlaps rather than run first.
        let waiting = run(Some(&failed.state), &s, &a, T0 + 3000, &[]);
        assert!(starts(&waiting).is_empty());
        let retried = run(Some(&waiting.state), &s, &a, T0 + 6100, &[]);
        assert!(starts(&retried).contains(&(id.clone(), 2)));
        a.mine.insert(id.clone());
        let gave_up = run(
            Some(&retried.state),
            &s,
            &a,
            T0 + 6200,
            &[done(&id, 2, &a, T0 + 6200, false)],
        );
        assert!(gave_up.state.runs.iter().all(|c| c.id != id));
        assert_eq!(gave_up.state.last.as_ref().unwrap().outcome, "error");
    }

    #[test]
    fn catch_up_runs_what_is_inside_the_window_oldest_first() {
        let s = schedule("catch_up = \"2500ms\"\noverlap = \"skip\"");
        let a = host("a");
        let planned = run(None, &s, &a, T0, &[]).state;
        // Down from T0 to T0+5500: occurrences at +1000 .. +5000. Inside the window
        // (now - 2500 = +3000): +3000, +4000, +5000.
        let back = run(Some(&planned), &s, &a, T0 + 5500, &[]);
        let skipped: Vec<_> = back
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Skipped {
                    reason: SkipReason::CatchUpWindow,
                    first_ms,
                    last_ms,
                    count,
                } => Some((*first_ms, *last_ms, *count)),
                _ => None,
            })
            .collect();
        assert_eq!(skipped, [(T0 + 1000, T0 + 2000, 2)]);
        let ids: Vec<_> = back
            .state
            .runs
            .iter()
            .map(|c| (c.occ_ms, c.trigger))
            .collect();
        assert_eq!(
            ids,
            [
                (T0 + 3000, Trigger::CatchUp),
                (T0 + 4000, Trigger::CatchUp),
                (T0 + 5000, Trigger::Schedule)
            ]
        );
        // One at a time, oldest first.
        assert_eq!(starts(&back), [(format!("{}", T0 + 3000), 1)]);
    }

    #[test]
    fn a_long_outage_is_skipped_in_one_step() {
        let s = schedule("catch_up = \"2s\"");
        let a = host("a");
        let planned = run(None, &s, &a, T0, &[]).state;
        let back = run(Some(&planned), &s, &a, T0 + 86_400_000, &[]);
        let count = back
            .effects
            .iter()
            .find_map(|e| match e {
                Effect::Skipped {
                    count,
                    reason: SkipReason::CatchUpWindow,
                    ..
                } => Some(*count),
                _ => None,
            })
            .unwrap();
        // A day of occurrences: all but the last three (inside the 2 s window) skipped.
        assert_eq!(count, 86_400 - 3);
        assert_eq!(back.state.runs.len(), 3);
    }

    #[test]
    fn overlap_policies() {
        for (policy, expect_waiting) in [("skip", 0), ("queue_one", 1), ("allow", 0)] {
            let mut a = host("a");
            let s = schedule(&format!("overlap = \"{policy}\""));
            let planned = run(None, &s, &a, T0, &[]).state;
            let first = run(Some(&planned), &s, &a, T0 + 1000, &[]);
            // Host a runs what it starts (so its leases are renewed, not taken over).
            a.mine.extend(starts(&first).into_iter().map(|(id, _)| id));
            let mut state = first.state;
            let mut started = 0;
            for k in 2..=4 {
                let st = run(Some(&state), &s, &a, T0 + k * 1000, &[]);
                started += starts(&st).len();
                a.mine.extend(starts(&st).into_iter().map(|(id, _)| id));
                state = st.state;
            }
            let waiting = state.runs.iter().filter(|c| c.lease.is_none()).count();
            assert_eq!(waiting, expect_waiting, "{policy}");
            if policy == "allow" {
                assert_eq!(started, 3, "allow starts each beside the first");
            } else {
                assert_eq!(started, 0, "{policy} starts nothing while one runs");
            }
        }
    }

    #[test]
    fn a_changed_definition_re_plans_and_an_older_one_waits() {
        let s = schedule("");
        let a = host("a");
        let planned = run(None, &s, &a, T0, &[]).state;
        let mut newer = planned.clone();
        newer.def.uid = "u1".into();
        newer.def.rev = 5;
        let stamp = DefStamp {
            uid: "u1".into(),
            rev: 4,
            timing: "old".into(),
        };
        let st = step(
            Some(&newer),
            &Ctx {
                schedule: &s,
                stamp: &stamp,
                owner: &a.owner,
                host: &a.owner,
                now_ms: T0 + 10_000,
                lease_ms: 1000,
                mine: &a.mine,
                free_slots: 4,
                can_run: true,
                ahead_ms: 0,
            },
            &[],
        );
        assert!(
            !st.changed,
            "a host with revision 4 leaves a revision-5 record alone"
        );
    }

    #[test]
    fn run_now_is_a_claim_like_any_other() {
        let s = schedule("enabled = false");
        let a = host("a");
        let mut state = run(None, &s, &a, T0, &[]).state;
        let id = add_manual(&mut state, T0 + 10);
        let st = run(Some(&state), &s, &a, T0 + 20, &[]);
        assert_eq!(starts(&st), [(id, 1)], "run-now runs even while paused");
    }
}
