//! Account states and their transitions (design §3.6, record §3.8). Pure: the clock is
//! passed in as `now_ms`.
//!
//! The parser decides what a capture says about the account (`account-signal`, see
//! `plugins/x-timeline/src/signals.rs`); this module decides what happens to the account:
//!
//! | seen | becomes | effect ([`Action`]) |
//! |---|---|---|
//! | `ok` | `active` | go on |
//! | `rate-limited` | `rate_limited` until the capture's latest reset, else now + `rate_limited_fallback_secs` | reschedule the target (another account, or `until`) |
//! | `locked` | `locked`, checked again after `locked_recheck_secs` | close the context |
//! | `banned` | `banned` (until its line's fingerprint changes) | close the context |
//! | `bad-auth` | `logging_in` | delete the session, log in, retry the step once |
//! | `bad-auth` in the first step after a fresh login | `banned` | close the context: X no longer accepts the account |
//! | login form rejects the credentials | `login_failed`, retried after `login_retry_secs` | close the context |
//!
//! The record is what the key-value store keeps per account (`scraper:accounts`, key =
//! username) and holds no secret: the fingerprint is a hash prefix.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::budget::Budgets;
use super::config::LimitsConfig;
use crate::bindings::types::{AccountSignal, RateLimit};

/// An account's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Usable.
    #[default]
    Active,
    /// Resting until `until_ms`; active again after it.
    RateLimited,
    /// X locked it (captcha / confirmation); one light run checks it after `until_ms`.
    Locked,
    /// Suspended; never used until its line in `accounts_file` changes.
    Banned,
    /// X's login form refused the credentials; tried again after `until_ms` or when the
    /// line changes.
    LoginFailed,
    /// Its session was rejected and a login is under way.
    LoggingIn,
}

impl State {
    /// The name used in records, logs, the API and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::RateLimited => "rate_limited",
            State::Locked => "locked",
            State::Banned => "banned",
            State::LoginFailed => "login_failed",
            State::LoggingIn => "logging_in",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The timers of `[scraper.limits]`, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatePolicy {
    /// Rest after a rate limit without a reset time.
    pub rate_limited_fallback_ms: i64,
    /// Wait before a locked account is checked again.
    pub locked_recheck_ms: i64,
    /// Wait before a refused login is tried again.
    pub login_retry_ms: i64,
}

impl StatePolicy {
    /// The policy of `[scraper.limits]`.
    pub fn from_config(limits: &LimitsConfig) -> StatePolicy {
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        StatePolicy {
            rate_limited_fallback_ms: ms(limits.rate_limited_fallback_secs),
            locked_recheck_ms: ms(limits.locked_recheck_secs),
            login_retry_ms: ms(limits.login_retry_secs),
        }
    }
}

/// What the runner does after a step's signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Carry on with the run.
    Continue,
    /// End the run; the target goes to another account or waits until `until_ms`.
    Reschedule {
        /// When this account may be used again.
        until_ms: i64,
    },
    /// Delete the stored session, clear the context's cookies, log in, retry the step once.
    Relogin,
    /// End the run and close the account's browser context.
    CloseContext,
}

/// One transition: from, to, what to do, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The username.
    pub account: String,
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// What the runner does.
    pub action: Action,
    /// Until when (rate limits, lock re-checks, login retries), ms since the epoch.
    pub until_ms: Option<i64>,
    /// Why, for the log and the API (no secrets: operation names and counts).
    pub reason: Option<String>,
}

impl Transition {
    /// Whether the state changed: only then is it logged at `warn` and counted.
    pub fn changed(&self) -> bool {
        self.from != self.to
    }
}

impl fmt::Display for Transition {
    /// `account alice: rate_limited until 2025-11-28T03:35:00Z (UserTweets 0/500)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "account {}: {}", self.account, self.to)?;
        if let Some(until) = self.until_ms {
            match jiff::Timestamp::from_millisecond(until) {
                Ok(t) => write!(f, " until {}", t.round(jiff::Unit::Second).unwrap_or(t))?,
                Err(_) => write!(f, " until {until} ms")?,
            }
        }
        if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        Ok(())
    }
}

/// What the key-value store keeps per account (design §3.8).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountRecord {
    /// The state.
    pub state: State,
    /// `rate_limited`: when it ends; `locked`: when to check again; `login_failed`: when
    /// to retry.
    pub until_ms: Option<i64>,
    /// Why the account left `active` (operation and budget, X's error, the login step).
    pub reason: Option<String>,
    /// The fingerprint of the account's line when the state was set.
    pub fingerprint: String,
    /// The sticky proxy, `scheme://host:port`.
    pub proxy: Option<String>,
    /// Request budgets per operation.
    pub budgets: Budgets,
    /// Last successful login.
    pub last_login_ms: Option<i64>,
    /// Last step run with the account.
    pub last_used_ms: Option<i64>,
    /// Pages captured with the account, ever.
    pub pages: u64,
    /// A login just succeeded and no step has run since: a rejected session now means
    /// X refuses the account itself.
    pub fresh_login: bool,
}

impl AccountRecord {
    /// A record for a newly seen account.
    pub fn new(fingerprint: &str) -> AccountRecord {
        AccountRecord {
            fingerprint: fingerprint.to_string(),
            ..AccountRecord::default()
        }
    }

    /// Apply a step's account signal (budgets are applied separately, first, by
    /// [`Budgets::apply_capture`]). `rate_limits` are the same capture's records.
    pub fn apply_signal(
        &mut self,
        account: &str,
        signal: AccountSignal,
        rate_limits: &[RateLimit],
        policy: &StatePolicy,
        now_ms: i64,
    ) -> Transition {
        let fresh_login = std::mem::take(&mut self.fresh_login);
        match signal {
            AccountSignal::Ok => self.set(account, State::Active, None, None, Action::Continue),
            AccountSignal::RateLimited => {
                let latest_reset = rate_limits
                    .iter()
                    .map(|rl| rl.reset_epoch_secs.saturating_mul(1000))
                    .filter(|reset| *reset > now_ms)
                    .max();
                let until = latest_reset
                    .unwrap_or_else(|| now_ms.saturating_add(policy.rate_limited_fallback_ms));
                let reason = rate_limits
                    .iter()
                    .find(|rl| rl.remaining == 0)
                    .map(|rl| format!("{} {}/{}", rl.endpoint, rl.remaining, rl.limit))
                    .unwrap_or_else(|| "rate limited without budget headers".into());
                self.set(
                    account,
                    State::RateLimited,
                    Some(until),
                    Some(reason),
                    Action::Reschedule { until_ms: until },
                )
            }
            AccountSignal::Locked => self.set(
                account,
                State::Locked,
                Some(now_ms.saturating_add(policy.locked_recheck_ms)),
                Some(
                    "X locked the account (error 326, 88 with budget left, or /account/access)"
                        .into(),
                ),
                Action::CloseContext,
            ),
            AccountSignal::Banned => self.set(
                account,
                State::Banned,
                None,
                Some("X suspended the account (error 64 or HTTP 403)".into()),
                Action::CloseContext,
            ),
            AccountSignal::BadAuth if fresh_login => self.set(
                account,
                State::Banned,
                None,
                Some("session rejected right after a fresh login".into()),
                Action::CloseContext,
            ),
            AccountSignal::BadAuth => self.set(
                account,
                State::LoggingIn,
                None,
                Some("session rejected; logging in again".into()),
                Action::Relogin,
            ),
        }
    }

    /// The login form accepted the credentials and the session is stored.
    pub fn login_succeeded(&mut self, account: &str, now_ms: i64) -> Transition {
        self.last_login_ms = Some(now_ms);
        let t = self.set(account, State::Active, None, None, Action::Continue);
        self.fresh_login = true;
        t
    }

    /// The login did not succeed: refused credentials, a code X asked for and the account
    /// lacks, or a form that never showed. `reason` must hold no secret.
    pub fn login_failed(
        &mut self,
        account: &str,
        reason: &str,
        policy: &StatePolicy,
        now_ms: i64,
    ) -> Transition {
        self.set(
            account,
            State::LoginFailed,
            Some(now_ms.saturating_add(policy.login_retry_ms)),
            Some(reason.to_string()),
            Action::CloseContext,
        )
    }

    /// The account's line in `accounts_file` now has `fingerprint`. A changed line means
    /// the operator fixed or replaced the credentials: `banned` and `login_failed` are
    /// lifted (the next run logs in afresh).
    pub fn update_fingerprint(&mut self, account: &str, fingerprint: &str) -> Option<Transition> {
        if self.fingerprint == fingerprint {
            return None;
        }
        self.fingerprint = fingerprint.to_string();
        matches!(self.state, State::Banned | State::LoginFailed).then(|| {
            self.set(
                account,
                State::Active,
                None,
                Some("credentials changed in accounts_file".into()),
                Action::Continue,
            )
        })
    }

    /// Lazily end a rate limit whose time has passed (the pool calls this when picking).
    pub fn refresh(&mut self, account: &str, now_ms: i64) -> Option<Transition> {
        let over = self.until_ms.is_some_and(|until| until <= now_ms);
        (self.state == State::RateLimited && over)
            .then(|| self.set(account, State::Active, None, None, Action::Continue))
    }

    /// Whether a run may use the account now: active, a rate limit that has ended, a lock
    /// due for its check, or a refused login due for a retry. A login under way belongs
    /// to its run; a ban is final until the line changes.
    pub fn usable(&self, now_ms: i64) -> bool {
        let due = self.until_ms.is_none_or(|until| until <= now_ms);
        match self.state {
            State::Active => true,
            State::RateLimited | State::Locked | State::LoginFailed => due,
            State::Banned | State::LoggingIn => false,
        }
    }

    fn set(
        &mut self,
        account: &str,
        to: State,
        until_ms: Option<i64>,
        reason: Option<String>,
        action: Action,
    ) -> Transition {
        let from = self.state;
        self.state = to;
        self.until_ms = until_ms;
        self.reason = reason.clone();
        Transition {
            account: account.to_string(),
            from,
            to,
            action,
            until_ms,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_300_000_000;

    fn policy() -> StatePolicy {
        StatePolicy::from_config(&LimitsConfig::default())
    }

    fn rl(op: &str, remaining: u32, reset_secs: i64) -> RateLimit {
        RateLimit {
            endpoint: op.into(),
            limit: 500,
            remaining,
            reset_epoch_secs: reset_secs,
        }
    }

    fn apply(r: &mut AccountRecord, s: AccountSignal, rls: &[RateLimit]) -> Transition {
        r.apply_signal("alice", s, rls, &policy(), NOW)
    }

    #[test]
    fn ok_keeps_or_makes_active_and_ends_the_fresh_login() {
        let mut r = AccountRecord::new("fp");
        let t = apply(&mut r, AccountSignal::Ok, &[]);
        assert_eq!(
            (t.from, t.to, t.action),
            (State::Active, State::Active, Action::Continue)
        );
        assert!(!t.changed());
        // A locked account's check run comes back ok: unlocked.
        r.state = State::Locked;
        r.until_ms = Some(NOW - 1);
        let t = apply(&mut r, AccountSignal::Ok, &[]);
        assert_eq!((t.from, t.to), (State::Locked, State::Active));
        assert_eq!(r.until_ms, None);
        r.login_succeeded("alice", NOW);
        apply(&mut r, AccountSignal::Ok, &[]);
        assert!(!r.fresh_login);
    }

    #[test]
    fn rate_limited_rests_until_the_latest_reset() {
        let mut r = AccountRecord::new("fp");
        let reset = NOW / 1000 + 600;
        let t = apply(
            &mut r,
            AccountSignal::RateLimited,
            &[
                rl("UserByScreenName", 400, reset - 100),
                rl("UserTweets", 0, reset),
            ],
        );
        assert_eq!(t.to, State::RateLimited);
        assert_eq!(
            t.action,
            Action::Reschedule {
                until_ms: reset * 1000
            }
        );
        assert_eq!(r.until_ms, Some(reset * 1000));
        assert_eq!(r.reason.as_deref(), Some("UserTweets 0/500"));
        assert!(
            t.to_string()
                .starts_with("account alice: rate_limited until 2025-"),
            "{t}"
        );
        assert!(t.to_string().ends_with("Z (UserTweets 0/500)"), "{t}");
        assert!(!r.usable(NOW));
        assert!(r.refresh("alice", reset * 1000 - 1).is_none());
        let back = r.refresh("alice", reset * 1000).unwrap();
        assert_eq!((back.from, back.to), (State::RateLimited, State::Active));
        assert!(r.usable(reset * 1000));
    }

    #[test]
    fn rate_limited_without_a_future_reset_uses_the_fallback() {
        let mut r = AccountRecord::new("fp");
        // A 429 without headers, plus a stale record whose reset has passed.
        let t = apply(
            &mut r,
            AccountSignal::RateLimited,
            &[rl("UserTweets", 3, NOW / 1000 - 5)],
        );
        assert_eq!(t.until_ms, Some(NOW + 900_000));
        assert_eq!(
            r.reason.as_deref(),
            Some("rate limited without budget headers")
        );
    }

    #[test]
    fn locked_closes_the_context_and_is_rechecked_later() {
        let mut r = AccountRecord::new("fp");
        let t = apply(&mut r, AccountSignal::Locked, &[]);
        assert_eq!((t.to, t.action), (State::Locked, Action::CloseContext));
        assert_eq!(r.until_ms, Some(NOW + 21_600_000));
        assert!(!r.usable(NOW + 21_600_000 - 1));
        assert!(r.usable(NOW + 21_600_000));
        // It stays locked until the check run says otherwise.
        assert!(r.refresh("alice", NOW + 21_600_000).is_none());
        assert_eq!(r.state, State::Locked);
    }

    #[test]
    fn banned_closes_the_context_for_good() {
        let mut r = AccountRecord::new("fp");
        let t = apply(&mut r, AccountSignal::Banned, &[]);
        assert_eq!((t.to, t.action), (State::Banned, Action::CloseContext));
        assert!(!r.usable(i64::MAX));
        assert!(r.refresh("alice", i64::MAX).is_none());
    }

    #[test]
    fn bad_auth_with_an_old_session_logs_in_again() {
        let mut r = AccountRecord::new("fp");
        let t = apply(&mut r, AccountSignal::BadAuth, &[]);
        assert_eq!((t.to, t.action), (State::LoggingIn, Action::Relogin));
        assert!(!r.usable(NOW));
        let t = r.login_succeeded("alice", NOW + 5);
        assert_eq!((t.from, t.to), (State::LoggingIn, State::Active));
        assert_eq!(r.last_login_ms, Some(NOW + 5));
        assert!(r.fresh_login);
    }

    #[test]
    fn bad_auth_after_fresh_login_is_a_ban() {
        let mut r = AccountRecord::new("fp");
        apply(&mut r, AccountSignal::BadAuth, &[]);
        r.login_succeeded("alice", NOW);
        let t = apply(&mut r, AccountSignal::BadAuth, &[]);
        assert_eq!(
            (t.from, t.to, t.action),
            (State::Active, State::Banned, Action::CloseContext)
        );
        assert_eq!(
            r.reason.as_deref(),
            Some("session rejected right after a fresh login")
        );

        // Once a step after the login went through, a later rejection is a plain relogin.
        let mut r = AccountRecord::new("fp");
        r.login_succeeded("alice", NOW);
        apply(&mut r, AccountSignal::Ok, &[]);
        assert_eq!(
            apply(&mut r, AccountSignal::BadAuth, &[]).to,
            State::LoggingIn
        );
    }

    #[test]
    fn rejected_login_fails_until_retry_or_new_credentials() {
        let mut r = AccountRecord::new("fp1");
        let t = r.login_failed("alice", "X said: Wrong password!", &policy(), NOW);
        assert_eq!((t.to, t.action), (State::LoginFailed, Action::CloseContext));
        assert_eq!(r.until_ms, Some(NOW + 86_400_000));
        assert!(!r.usable(NOW + 1));
        assert!(r.usable(NOW + 86_400_000));
        // Same line: nothing changes; a new line lifts it at once.
        assert!(r.update_fingerprint("alice", "fp1").is_none());
        let t = r.update_fingerprint("alice", "fp2").unwrap();
        assert_eq!((t.from, t.to), (State::LoginFailed, State::Active));
        assert!(r.usable(NOW + 1));
    }

    #[test]
    fn new_credentials_lift_a_ban_but_not_a_lock() {
        let mut r = AccountRecord::new("fp1");
        apply(&mut r, AccountSignal::Banned, &[]);
        assert_eq!(
            r.update_fingerprint("alice", "fp2").map(|t| t.to),
            Some(State::Active)
        );
        let mut r = AccountRecord::new("fp1");
        apply(&mut r, AccountSignal::Locked, &[]);
        assert!(r.update_fingerprint("alice", "fp2").is_none());
        assert_eq!((r.state, r.fingerprint.as_str()), (State::Locked, "fp2"));
    }

    #[test]
    fn record_round_trips_as_the_designed_json() {
        let mut r = AccountRecord::new("3f1c");
        r.proxy = Some("http://10.0.0.5:8080".into());
        apply(
            &mut r,
            AccountSignal::RateLimited,
            &[rl("UserTweets", 0, NOW / 1000 + 900)],
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["state"], "rate_limited");
        assert_eq!(json["until_ms"], NOW + 900_000);
        assert_eq!(json["reason"], "UserTweets 0/500");
        assert_eq!(json["fingerprint"], "3f1c");
        let back: AccountRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        // Records written by an older build (fewer fields) still load.
        let old: AccountRecord = serde_json::from_str(r#"{"state": "banned"}"#).unwrap();
        assert_eq!(old.state, State::Banned);
    }
}
