//! The delivery record: one document per (notification id, channel, target) in the
//! `deliveries` collection, and its state transitions as pure functions.
//!
//! The record is where "never sent twice" lives. Its `_id` is derived from the triple, so
//! a second planning of the same notification (a re-read stream entry, a second host)
//! meets the existing record and does nothing. Every later change is a compare-and-set on
//! `_rev`, so of two hosts racing for one record exactly one wins. States:
//!
//! ```text
//! queued ──claim──▶ sending ──▶ sent
//!   ▲                 │ ├──▶ queued   (429 with retry_after, transient error, retries left)
//!   │                 │ └──▶ dead     (permanent error, retries exhausted, unknown fate)
//!   └──── replay ──── dead
//! skipped: muted or disabled by the user (final)
//! ```
//!
//! A record is `sending` only between its claim and the send's outcome; a host that dies
//! in that window leaves it `sending`, and the sweeper turns it into a dead letter
//! `interrupted` ("may have been delivered") rather than sending it again, because no
//! channel can tell whether the message went out (docs/design/notify.md §3.5).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::{OnAmbiguous, RetryConfig};
use super::request::Priority;
use crate::documents::Doc;

/// The target shown for a delivery that has no address.
pub const NO_TARGET: &str = "-";

/// The collection of delivery records.
pub const DELIVERIES: &str = "deliveries";

/// The reason of a record whose target is gone (a push subscription the browser dropped).
pub const TARGET_GONE: &str = "subscription_gone";

/// Attempts kept in `history`.
const HISTORY_LEN: usize = 20;
/// 429s with `retry_after` honoured before the record gives up (they do not count as attempts).
const MAX_RATE_LIMITED: u32 = 50;

/// Where a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Queued,
    Sending,
    Sent,
    Skipped,
    Dead,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Skipped => "skipped",
            State::Dead => "dead",
        }
    }
}

/// How a rendered part is marked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParseMode {
    Plain,
    MarkdownV2,
    Html,
}

/// One message to send, rendered by the channel's formatter at planning, so every
/// attempt sends the same text even if the formatter is swapped meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    pub parse_mode: ParseMode,
}

/// One attempt, as shown by `GET /api/v1/notifications/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptLog {
    pub n: u32,
    pub host: String,
    pub started_ms: i64,
    pub ended_ms: i64,
    /// `sent`, `rate_limited`, `transient`, `permanent`, `ambiguous`, `interrupted`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

/// The delivery record (stored as JSON; `_rev` is the backend's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_rev", default, skip_serializing)]
    pub rev: u64,
    pub notification_id: String,
    pub user_id: String,
    pub kind: String,
    pub priority: Priority,
    pub channel: String,
    pub target: String,
    pub state: State,
    /// Why it waits or why it ended: `rate_limited`, `quiet_hours`, `retry`,
    /// `formatter_unavailable`, `muted`, `channel_disabled`, `no_address`,
    /// `channel_unconfigured`, `formatter_rejected`, `permanent`, `exhausted`,
    /// `ambiguous`, `interrupted`, `invalid_request`, `replayed`, `subscription_gone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When a `queued` record is due (ms); 0 otherwise.
    pub due_at_ms: i64,
    /// `<consumer>/<boot>` holding a `sending` claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Until when the claim holds; 0 when unclaimed.
    pub lease_until_ms: i64,
    /// A `queued` record whose rate-limit slot this owner already reserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_owner: Option<String>,
    pub attempt: u32,
    /// +1 on every replay, which also resets the attempt budget.
    pub generation: u32,
    pub attempts_in_generation: u32,
    pub rate_limited: u32,
    /// The formatter that rendered `parts` (`name@version`).
    pub formatter: String,
    pub parts: Vec<Part>,
    /// Parts already accepted by the channel; a retry resumes after them.
    pub parts_sent: u32,
    /// Rate-limit slots reserved by `slot_owner` (or the claiming host) for each part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_slots: Vec<i64>,
    pub history: Vec<AttemptLog>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The request as JSON text (webhook bodies carry its `data`).
    pub request_json: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// When it reached `sent`, `skipped` or `dead`; 0 before.
    pub final_ms: i64,
}

/// The record id of (notification id, channel, target): `d_` + 32 hex digits of SHA-256.
pub fn delivery_id(notification_id: &str, channel: &str, target: &str) -> String {
    let mut h = Sha256::new();
    h.update(notification_id.as_bytes());
    h.update([0]);
    h.update(channel.as_bytes());
    h.update([0]);
    h.update(target.as_bytes());
    format!("d_{}", &hex::encode(h.finalize())[..32])
}

/// What a send came to.
#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// Every part was accepted.
    Sent,
    /// The channel said "too many requests, retry after this many seconds".
    RateLimited {
        retry_after_secs: u64,
        error: String,
    },
    /// Failed in a way a retry may fix; nothing was delivered.
    Transient(String),
    /// Failed in a way a retry cannot fix.
    Permanent(String),
    /// The request left and no answer came: it may or may not have arrived.
    Ambiguous(String),
    /// The target no longer exists (a push subscription the browser dropped: 404 or 410).
    /// Final and not a dead letter: nothing a retry or a replay could deliver to.
    Gone(String),
}

impl SendOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            SendOutcome::Sent => "sent",
            SendOutcome::RateLimited { .. } => "rate_limited",
            SendOutcome::Transient(_) => "transient",
            SendOutcome::Permanent(_) => "permanent",
            SendOutcome::Ambiguous(_) => "ambiguous",
            SendOutcome::Gone(_) => "gone",
        }
    }
}

/// The delay before retry `n` (1-based): doubling from `base_ms`, capped at `max_ms`,
/// then shortened by up to `jitter` of itself (`random` in 0..1).
pub fn backoff_ms(cfg: &RetryConfig, n: u32, random: f64) -> u64 {
    let exp = n.saturating_sub(1).min(40);
    let d = cfg.base_ms.saturating_mul(1u64 << exp).min(cfg.max_ms);
    ((d as f64) * (1.0 - cfg.jitter * random.clamp(0.0, 1.0))).round() as u64
}

/// Who and where a new record is for.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub notification_id: String,
    pub user_id: String,
    pub kind: String,
    pub priority: Priority,
    pub channel: String,
    pub target: String,
    pub request_json: String,
}

impl Delivery {
    /// A fresh record, `queued` and due now, with its id derived from the triple.
    pub fn new(n: NewDelivery, now_ms: i64) -> Delivery {
        Delivery {
            id: delivery_id(&n.notification_id, &n.channel, &n.target),
            rev: 0,
            notification_id: n.notification_id,
            user_id: n.user_id,
            kind: n.kind,
            priority: n.priority,
            channel: n.channel,
            target: n.target,
            state: State::Queued,
            reason: None,
            due_at_ms: now_ms,
            owner: None,
            lease_until_ms: 0,
            slot_owner: None,
            attempt: 0,
            generation: 0,
            attempts_in_generation: 0,
            rate_limited: 0,
            formatter: String::new(),
            parts: Vec::new(),
            parts_sent: 0,
            part_slots: Vec::new(),
            history: Vec::new(),
            last_error: None,
            request_json: n.request_json,
            created_ms: now_ms,
            updated_ms: now_ms,
            final_ms: 0,
        }
    }

    /// The stored document.
    pub fn to_doc(&self) -> Doc {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => Doc::new(),
        }
    }

    pub fn from_doc(doc: Doc) -> anyhow::Result<Delivery> {
        Ok(serde_json::from_value(serde_json::Value::Object(doc))?)
    }

    fn finalize(&mut self, state: State, reason: Option<&str>, now_ms: i64) {
        self.part_slots.clear();
        self.state = state;
        self.reason = reason.map(str::to_string);
        self.owner = None;
        self.lease_until_ms = 0;
        self.due_at_ms = 0;
        self.slot_owner = None;
        self.updated_ms = now_ms;
        self.final_ms = now_ms;
    }

    fn requeue(&mut self, due_at_ms: i64, reason: &str, now_ms: i64) {
        self.part_slots.clear();
        self.state = State::Queued;
        self.reason = Some(reason.into());
        self.owner = None;
        self.lease_until_ms = 0;
        self.slot_owner = None;
        self.due_at_ms = due_at_ms;
        self.updated_ms = now_ms;
    }

    /// `queued` → `sending` for `owner` until `now + lease_ms`.
    pub fn claim(&mut self, owner: &str, now_ms: i64, lease_ms: u64) {
        self.state = State::Sending;
        self.owner = Some(owner.into());
        self.lease_until_ms = now_ms + lease_ms as i64;
        self.attempt += 1;
        self.attempts_in_generation += 1;
        self.due_at_ms = 0;
        self.updated_ms = now_ms;
    }

    /// Stay `queued`, due later (a rate-limit slot or a formatter that is not loaded
    /// yet); `slots` are the part slots `slot_owner` reserved, if any.
    pub fn postpone(
        &mut self,
        due_at_ms: i64,
        reason: &str,
        slot_owner: Option<&str>,
        slots: Vec<i64>,
        now: i64,
    ) {
        self.requeue(due_at_ms, reason, now);
        self.slot_owner = slot_owner.map(str::to_string);
        self.part_slots = slots;
    }

    /// A claim given back unused (the lease ran too short to start a send).
    pub fn unclaim(&mut self, now_ms: i64) {
        self.attempt = self.attempt.saturating_sub(1);
        self.attempts_in_generation = self.attempts_in_generation.saturating_sub(1);
        self.requeue(now_ms, "retry", now_ms);
    }

    /// A claim given back because the host stops while the record waits for its next
    /// part's rate-limit slot: nothing of that part left, so it is `queued` again, due at
    /// the slot (not `sending`, which the next start would call "interrupted"). Parts
    /// already sent stay counted and are not sent again.
    pub fn hand_back(&mut self, now_ms: i64, due_at_ms: i64) {
        self.attempt = self.attempt.saturating_sub(1);
        self.attempts_in_generation = self.attempts_in_generation.saturating_sub(1);
        self.requeue(due_at_ms.max(now_ms), "host_stopped", now_ms);
    }

    /// Apply a send's outcome to a `sending` record.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &mut self,
        outcome: &SendOutcome,
        host: &str,
        started_ms: i64,
        now_ms: i64,
        retry: &RetryConfig,
        on_ambiguous: OnAmbiguous,
        random: f64,
    ) {
        let (error, retry_after_secs) = match outcome {
            SendOutcome::Sent => (None, None),
            SendOutcome::RateLimited {
                retry_after_secs,
                error,
            } => (Some(error.clone()), Some(*retry_after_secs)),
            SendOutcome::Transient(e)
            | SendOutcome::Permanent(e)
            | SendOutcome::Ambiguous(e)
            | SendOutcome::Gone(e) => (Some(e.clone()), None),
        };
        self.push_history(AttemptLog {
            n: self.attempt,
            host: host.into(),
            started_ms,
            ended_ms: now_ms,
            outcome: outcome.label().into(),
            error: error.clone(),
            retry_after_secs,
        });
        if error.is_some() {
            self.last_error = error;
        }
        match outcome {
            SendOutcome::Sent => self.finalize(State::Sent, None, now_ms),
            SendOutcome::RateLimited {
                retry_after_secs, ..
            } => {
                // Not an attempt against the budget: the channel told us exactly when.
                self.attempts_in_generation = self.attempts_in_generation.saturating_sub(1);
                self.rate_limited += 1;
                if self.rate_limited > MAX_RATE_LIMITED {
                    self.finalize(State::Dead, Some("exhausted"), now_ms);
                } else {
                    let wait_ms = (*retry_after_secs).min(86_400).saturating_mul(1000) as i64;
                    let due = now_ms.saturating_add(wait_ms);
                    self.requeue(due, "rate_limited", now_ms);
                }
            }
            SendOutcome::Transient(_) => self.retry_or_die("exhausted", now_ms, retry, random),
            SendOutcome::Permanent(_) => self.finalize(State::Dead, Some("permanent"), now_ms),
            SendOutcome::Gone(_) => self.finalize(State::Skipped, Some(TARGET_GONE), now_ms),
            SendOutcome::Ambiguous(_) => match on_ambiguous {
                OnAmbiguous::Retry => self.retry_or_die("ambiguous", now_ms, retry, random),
                OnAmbiguous::DeadLetter => self.finalize(State::Dead, Some("ambiguous"), now_ms),
            },
        }
    }

    fn retry_or_die(&mut self, dead_reason: &str, now_ms: i64, retry: &RetryConfig, random: f64) {
        if self.attempts_in_generation >= retry.max_attempts {
            self.finalize(State::Dead, Some(dead_reason), now_ms);
        } else {
            let delay = backoff_ms(retry, self.attempts_in_generation, random);
            self.requeue(now_ms + delay as i64, "retry", now_ms);
        }
    }

    /// A `sending` record whose owner is gone (lease expired, or a dead boot of ours).
    pub fn interrupt(&mut self, host: &str, now_ms: i64, on_ambiguous: OnAmbiguous) {
        let error = format!(
            "the host ({}) stopped while sending; the message may have been delivered. \
             Replay only if the user did not get it",
            self.owner.as_deref().unwrap_or("?")
        );
        self.push_history(AttemptLog {
            n: self.attempt,
            host: host.into(),
            started_ms: self.updated_ms,
            ended_ms: now_ms,
            outcome: "interrupted".into(),
            error: Some(error.clone()),
            retry_after_secs: None,
        });
        self.last_error = Some(error);
        match on_ambiguous {
            OnAmbiguous::Retry => self.requeue(now_ms, "interrupted", now_ms),
            OnAmbiguous::DeadLetter => self.finalize(State::Dead, Some("interrupted"), now_ms),
        }
    }

    /// `dead` → `queued` now, with a fresh attempt budget.
    pub fn replay(&mut self, now_ms: i64) {
        self.generation += 1;
        self.attempts_in_generation = 0;
        self.rate_limited = 0;
        self.final_ms = 0;
        self.requeue(now_ms, "replayed", now_ms);
    }

    /// A record that ends before any send.
    pub fn end_unsent(&mut self, state: State, reason: &str, error: Option<String>, now_ms: i64) {
        self.last_error = error;
        self.finalize(state, Some(reason), now_ms);
    }

    fn push_history(&mut self, a: AttemptLog) {
        self.history.push(a);
        if self.history.len() > HISTORY_LEN {
            let excess = self.history.len() - HISTORY_LEN;
            self.history.drain(..excess);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample(now: i64) -> Delivery {
        let mut d = Delivery::new(
            NewDelivery {
                notification_id: "rule-42-1764300000".into(),
                user_id: "u1".into(),
                kind: "price_alert".into(),
                priority: Priority::Normal,
                channel: "telegram".into(),
                target: "123456".into(),
                request_json: "{}".into(),
            },
            now,
        );
        d.rev = 1;
        d.formatter = "telegram-markdown@0.1.0".into();
        d.parts = vec![Part {
            text: "hi".into(),
            subject: None,
            html: None,
            parse_mode: ParseMode::MarkdownV2,
        }];
        d
    }

    fn retry() -> RetryConfig {
        RetryConfig {
            max_attempts: 3,
            base_ms: 1000,
            max_ms: 10_000,
            jitter: 0.5,
        }
    }

    #[test]
    fn delivery_id_is_stable_and_distinct() {
        let a = delivery_id("rule-42-1764300000", "telegram", "123456");
        assert_eq!(a, delivery_id("rule-42-1764300000", "telegram", "123456"));
        assert_eq!(a.len(), 34);
        assert_ne!(a, delivery_id("rule-42-1764300000", "email", "123456"));
        assert_ne!(a, delivery_id("rule-42-1764300000", "telegram", "1234567"));
        // The separator keeps ("a", "bc") and ("ab", "c") apart.
        assert_ne!(delivery_id("a", "bc", "x"), delivery_id("ab", "c", "x"));
    }

    #[test]
    fn sent_is_final() {
        let mut d = sample(0);
        d.claim("h/1", 10, 1000);
        assert_eq!(
            (d.state, d.attempt, d.lease_until_ms),
            (State::Sending, 1, 1010)
        );
        d.finish(
            &SendOutcome::Sent,
            "h",
            10,
            20,
            &retry(),
            OnAmbiguous::DeadLetter,
            0.0,
        );
        assert_eq!(
            (d.state, d.final_ms, d.owner.clone()),
            (State::Sent, 20, None)
        );
        assert_eq!(d.history[0].outcome, "sent");
    }

    #[test]
    fn a_claim_handed_back_at_shutdown_is_queued_at_its_slot_with_sent_parts_kept() {
        let mut d = sample(0);
        d.parts.push(d.parts[0].clone());
        d.claim("h/1", 10, 1000);
        d.parts_sent = 1;
        d.hand_back(20, 900);
        assert_eq!(
            (d.state, d.reason.as_deref(), d.due_at_ms, d.owner.clone()),
            (State::Queued, Some("host_stopped"), 900, None)
        );
        assert_eq!((d.attempt, d.parts_sent, d.lease_until_ms), (0, 1, 0));
        // A slot already past: due now.
        d.claim("h/1", 30, 1000);
        d.hand_back(40, 35);
        assert_eq!(d.due_at_ms, 40);
    }

    #[test]
    fn retry_after_is_exact_and_not_counted() {
        let mut d = sample(0);
        d.claim("h/1", 10, 1000);
        let rl = SendOutcome::RateLimited {
            retry_after_secs: 2,
            error: "Too Many Requests: retry after 2".into(),
        };
        d.finish(&rl, "h", 10, 20, &retry(), OnAmbiguous::DeadLetter, 0.7);
        assert_eq!(d.state, State::Queued);
        assert_eq!(d.due_at_ms, 2020);
        assert_eq!(d.attempts_in_generation, 0);
        assert_eq!(d.rate_limited, 1);
        assert_eq!(d.history[0].retry_after_secs, Some(2));
    }

    #[test]
    fn transient_failures_back_off_then_die_exhausted() {
        let mut d = sample(0);
        let mut now = 0;
        for n in 1..=3 {
            d.claim("h/1", now, 1000);
            d.finish(
                &SendOutcome::Transient("500".into()),
                "h",
                now,
                now,
                &retry(),
                OnAmbiguous::DeadLetter,
                0.0,
            );
            if n < 3 {
                assert_eq!(d.state, State::Queued);
                assert_eq!(d.due_at_ms - now, 1000 << (n - 1));
                now = d.due_at_ms;
            }
        }
        assert_eq!(d.state, State::Dead);
        assert_eq!(d.reason.as_deref(), Some("exhausted"));
        assert_eq!(d.history.len(), 3);
    }

    #[test]
    fn permanent_and_ambiguous_go_to_dead_letters() {
        let mut d = sample(0);
        d.claim("h/1", 0, 1000);
        let p = SendOutcome::Permanent("Forbidden".into());
        d.finish(&p, "h", 0, 1, &retry(), OnAmbiguous::DeadLetter, 0.0);
        assert_eq!(
            (d.state, d.reason.as_deref()),
            (State::Dead, Some("permanent"))
        );
        let mut d = sample(0);
        d.claim("h/1", 0, 1000);
        let a = SendOutcome::Ambiguous("timeout".into());
        d.finish(&a, "h", 0, 1, &retry(), OnAmbiguous::DeadLetter, 0.0);
        assert_eq!(
            (d.state, d.reason.as_deref()),
            (State::Dead, Some("ambiguous"))
        );
        let mut d = sample(0);
        d.claim("h/1", 0, 1000);
        d.finish(&a, "h", 0, 1, &retry(), OnAmbiguous::Retry, 0.0);
        assert_eq!(d.state, State::Queued);
    }

    #[test]
    fn a_gone_target_is_skipped_not_a_dead_letter() {
        let mut d = sample(0);
        d.claim("h/1", 0, 1000);
        let g = SendOutcome::Gone("push service answered 410 Gone".into());
        d.finish(&g, "h", 0, 1, &retry(), OnAmbiguous::DeadLetter, 0.0);
        assert_eq!(
            (d.state, d.reason.as_deref()),
            (State::Skipped, Some(TARGET_GONE))
        );
        assert_eq!(d.history[0].outcome, "gone");
        assert!(d.last_error.as_deref().unwrap().contains("410"));
    }

    #[test]
    fn interrupted_then_replayed_gets_a_fresh_budget() {
        let mut d = sample(0);
        d.claim("h/1", 0, 1000);
        d.interrupt("h2", 5000, OnAmbiguous::DeadLetter);
        assert_eq!(
            (d.state, d.reason.as_deref()),
            (State::Dead, Some("interrupted"))
        );
        assert!(
            d.last_error
                .as_deref()
                .unwrap()
                .contains("may have been delivered")
        );
        d.replay(6000);
        assert_eq!(
            (d.state, d.due_at_ms, d.generation),
            (State::Queued, 6000, 1)
        );
        assert_eq!(d.attempts_in_generation, 0);
        assert_eq!(d.final_ms, 0);
    }

    #[test]
    fn backoff_grows_within_jitter_bounds() {
        let cfg = retry();
        for n in 1..8 {
            let full = (1000u64 << (n - 1)).min(10_000);
            assert_eq!(backoff_ms(&cfg, n, 0.0), full);
            let least = backoff_ms(&cfg, n, 0.999_999);
            assert!(least >= full / 2 && least <= full, "{n}: {least}");
        }
    }

    #[test]
    fn the_record_round_trips_through_a_document() {
        let d = sample(5);
        let doc = d.to_doc();
        assert!(!doc.contains_key("_rev"), "the backend owns _rev");
        let mut stored = doc.clone();
        stored.insert("_rev".into(), 1.into());
        assert_eq!(Delivery::from_doc(stored).unwrap(), d);
    }
}
