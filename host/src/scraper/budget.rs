//! Request budgets per (account, GraphQL operation) (design §3.5). Pure: the clock is
//! passed in as `now_ms`.
//!
//! X grants each account a number of requests per operation per 15-minute window and
//! says how many are left in `x-rate-limit-*` headers, which the parser turns into
//! `rate-limit` records. Rules:
//! - a record replaces the operation's entry (the newest response wins; the records of one
//!   capture are applied in capture order);
//! - before any header, the operation starts from `default_budgets` (or
//!   `unknown_operation_budget`) and every captured response of it is counted locally; the
//!   window starts at the first request;
//! - once the reset time (or the local window) has passed, the entry is back at its limit;
//! - a request may be sent while `remaining ≥ n + budget_reserve`.
//!
//! An account whose budget for an operation is spent skips targets needing it until the
//! reset, and stays usable for the others: budgets are not an account state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::LimitsConfig;
use crate::bindings::types::RateLimit;

/// Where a budget's numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetSource {
    /// X's `x-rate-limit-*` headers.
    Headers,
    /// `default_budgets`, counted locally.
    Default,
}

/// One operation's budget, as persisted in the account record
/// (`{"limit": 500, "remaining": 0, "reset": 1764300900, "source": "headers"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Requests per window.
    pub limit: u32,
    /// Requests left in the current window.
    pub remaining: u32,
    /// When the window resets, in seconds since the epoch.
    pub reset: i64,
    /// Headers or local counting.
    pub source: BudgetSource,
}

impl Budget {
    /// The budget as it stands at `now_ms`: full again once its window has passed.
    fn at(self, now_ms: i64) -> Budget {
        if now_ms >= self.reset.saturating_mul(1000) {
            Budget {
                remaining: self.limit,
                ..self
            }
        } else {
            self
        }
    }

    fn expired(&self, now_ms: i64) -> bool {
        now_ms >= self.reset.saturating_mul(1000)
    }
}

/// The configured numbers budgets are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetPolicy {
    /// Requests kept back per (account, operation).
    pub reserve: u32,
    /// The window of locally counted budgets, in seconds.
    pub window_secs: u64,
    /// Limits per operation before headers are seen.
    pub defaults: BTreeMap<String, u32>,
    /// The limit of an operation `defaults` does not name.
    pub unknown: u32,
}

impl BudgetPolicy {
    /// The policy of `[scraper.limits]`.
    pub fn from_config(limits: &LimitsConfig) -> BudgetPolicy {
        BudgetPolicy {
            reserve: limits.budget_reserve,
            window_secs: limits.window_secs,
            defaults: limits.default_budgets.clone(),
            unknown: limits.unknown_operation_budget,
        }
    }

    /// An operation's limit before headers say otherwise.
    pub fn default_limit(&self, operation: &str) -> u32 {
        self.defaults
            .get(operation)
            .copied()
            .unwrap_or(self.unknown)
    }
}

/// One account's budgets, by operation name. Serialized as a plain map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Budgets(BTreeMap<String, Budget>);

impl Budgets {
    /// Take in one parsed capture: `rate_limits` (the parser's records, in capture
    /// order) replace their operation's entry; `requests` (operation → responses
    /// captured) are counted locally for operations that got no record in this capture.
    pub fn apply_capture(
        &mut self,
        rate_limits: &[RateLimit],
        requests: &BTreeMap<String, u32>,
        policy: &BudgetPolicy,
        now_ms: i64,
    ) {
        for rl in rate_limits {
            self.0.insert(
                rl.endpoint.clone(),
                Budget {
                    limit: rl.limit,
                    remaining: rl.remaining.min(rl.limit),
                    reset: rl.reset_epoch_secs,
                    source: BudgetSource::Headers,
                },
            );
        }
        for (op, n) in requests {
            if *n == 0 || rate_limits.iter().any(|rl| &rl.endpoint == op) {
                continue;
            }
            self.count(op, *n, policy, now_ms);
        }
    }

    /// Count `n` requests of `operation` sent without a header answer.
    fn count(&mut self, operation: &str, n: u32, policy: &BudgetPolicy, now_ms: i64) {
        let window_end = now_ms
            .div_euclid(1000)
            .saturating_add(i64::try_from(policy.window_secs).unwrap_or(i64::MAX));
        let entry = self.0.entry(operation.to_string()).or_insert(Budget {
            limit: policy.default_limit(operation),
            remaining: policy.default_limit(operation),
            reset: window_end,
            source: BudgetSource::Default,
        });
        if entry.expired(now_ms) {
            // A new window starts with this request.
            entry.remaining = entry.limit;
            entry.reset = window_end;
        }
        entry.remaining = entry.remaining.saturating_sub(n);
    }

    /// `operation`'s budget at `now_ms` (a full default one when never seen).
    pub fn get(&self, operation: &str, policy: &BudgetPolicy, now_ms: i64) -> Budget {
        match self.0.get(operation) {
            Some(b) => b.at(now_ms),
            None => {
                let limit = policy.default_limit(operation);
                Budget {
                    limit,
                    remaining: limit,
                    reset: 0,
                    source: BudgetSource::Default,
                }
            }
        }
    }

    /// Whether `n` more requests of `operation` leave the reserve untouched.
    pub fn can_spend(&self, operation: &str, n: u32, policy: &BudgetPolicy, now_ms: i64) -> bool {
        u64::from(self.get(operation, policy, now_ms).remaining)
            >= u64::from(n) + u64::from(policy.reserve)
    }

    /// Whether a step triggering one request of each of `operations` may run.
    pub fn can_spend_all(&self, operations: &[&str], policy: &BudgetPolicy, now_ms: i64) -> bool {
        operations
            .iter()
            .all(|op| self.can_spend(op, 1, policy, now_ms))
    }

    /// When every one of `operations` can be spent again (ms since the epoch): `None`
    /// when they can now.
    pub fn spendable_at(
        &self,
        operations: &[&str],
        policy: &BudgetPolicy,
        now_ms: i64,
    ) -> Option<i64> {
        operations
            .iter()
            .filter(|op| !self.can_spend(op, 1, policy, now_ms))
            .map(|op| self.get(op, policy, now_ms).reset.saturating_mul(1000))
            .max()
    }

    /// Every known operation's budget at `now_ms`, for the API and metrics.
    pub fn view(&self, now_ms: i64) -> BTreeMap<String, Budget> {
        self.0
            .iter()
            .map(|(op, b)| (op.clone(), b.at(now_ms)))
            .collect()
    }

    /// A short text for logs and the account's `reason`: `UserTweets 0/500`.
    pub fn describe(&self, operation: &str, policy: &BudgetPolicy, now_ms: i64) -> String {
        let b = self.get(operation, policy, now_ms);
        format!("{operation} {}/{}", b.remaining, b.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_764_300_000_000;

    fn policy(reserve: u32) -> BudgetPolicy {
        let limits = LimitsConfig {
            budget_reserve: reserve,
            ..LimitsConfig::default()
        };
        BudgetPolicy::from_config(&limits)
    }

    fn rl(op: &str, limit: u32, remaining: u32, reset: i64) -> RateLimit {
        RateLimit {
            endpoint: op.into(),
            limit,
            remaining,
            reset_epoch_secs: reset,
        }
    }

    fn requests(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(op, n)| (op.to_string(), *n)).collect()
    }

    #[test]
    fn headers_replace_defaults() {
        let p = policy(1);
        let mut b = Budgets::default();
        assert_eq!(b.get("UserTweets", &p, T0).remaining, 500);
        let reset = T0 / 1000 + 600;
        b.apply_capture(
            &[
                rl("UserTweets", 500, 450, reset),
                rl("UserTweets", 500, 449, reset),
            ],
            &requests(&[("UserTweets", 2)]),
            &p,
            T0,
        );
        let got = b.get("UserTweets", &p, T0);
        // The later record wins, and the responses it covers are not counted again.
        assert_eq!(
            got,
            Budget {
                limit: 500,
                remaining: 449,
                reset,
                source: BudgetSource::Headers
            }
        );
        // The headers' limit wins over the configured one.
        b.apply_capture(
            &[rl("SearchTimeline", 180, 3, reset)],
            &BTreeMap::new(),
            &p,
            T0,
        );
        assert_eq!(b.get("SearchTimeline", &p, T0).limit, 180);
        assert_eq!(b.describe("SearchTimeline", &p, T0), "SearchTimeline 3/180");
    }

    #[test]
    fn reserve_is_kept_back() {
        let reset = T0 / 1000 + 600;
        let mut b = Budgets::default();
        b.apply_capture(
            &[rl("UserTweets", 500, 1, reset)],
            &BTreeMap::new(),
            &policy(1),
            T0,
        );
        assert!(!b.can_spend("UserTweets", 1, &policy(1), T0));
        assert!(b.can_spend("UserTweets", 1, &policy(0), T0));
        assert!(!b.can_spend("UserTweets", 2, &policy(0), T0));
        // Other operations are not affected.
        assert!(b.can_spend_all(&["UserByScreenName"], &policy(1), T0));
        assert!(!b.can_spend_all(&["UserByScreenName", "UserTweets"], &policy(1), T0));
        assert_eq!(
            b.spendable_at(&["UserByScreenName", "UserTweets"], &policy(1), T0),
            Some(reset * 1000)
        );
        assert_eq!(b.spendable_at(&["UserByScreenName"], &policy(1), T0), None);
    }

    #[test]
    fn refills_after_reset() {
        let p = policy(1);
        let reset = T0 / 1000 + 10;
        let mut b = Budgets::default();
        b.apply_capture(&[rl("UserTweets", 500, 0, reset)], &BTreeMap::new(), &p, T0);
        assert!(!b.can_spend("UserTweets", 1, &p, T0));
        assert!(!b.can_spend("UserTweets", 1, &p, reset * 1000 - 1));
        assert!(b.can_spend("UserTweets", 1, &p, reset * 1000));
        assert_eq!(b.view(reset * 1000)["UserTweets"].remaining, 500);
        // A request after the reset without headers starts a new local window.
        let later = reset * 1000 + 5_000;
        b.apply_capture(&[], &requests(&[("UserTweets", 1)]), &p, later);
        let got = b.get("UserTweets", &p, later);
        assert_eq!((got.remaining, got.reset), (499, later / 1000 + 900));
    }

    #[test]
    fn default_budget_counts_locally_until_headers() {
        let p = policy(1);
        let mut b = Budgets::default();
        b.apply_capture(&[], &requests(&[("SearchTimeline", 48)]), &p, T0);
        let got = b.get("SearchTimeline", &p, T0);
        assert_eq!(got.source, BudgetSource::Default);
        assert_eq!((got.limit, got.remaining), (50, 2));
        // The window started at the first request.
        assert_eq!(got.reset, T0 / 1000 + 900);
        b.apply_capture(&[], &requests(&[("SearchTimeline", 1)]), &p, T0 + 60_000);
        assert_eq!(
            b.get("SearchTimeline", &p, T0 + 60_000).reset,
            T0 / 1000 + 900
        );
        assert!(!b.can_spend("SearchTimeline", 1, &p, T0 + 60_000));
        assert!(b.can_spend("SearchTimeline", 1, &p, T0 + 900_000));
        // Unknown operations get unknown_operation_budget.
        assert_eq!(b.get("Bookmarks", &p, T0).limit, 50);
        // Headers arriving later take over.
        b.apply_capture(
            &[rl("SearchTimeline", 50, 40, T0 / 1000 + 300)],
            &BTreeMap::new(),
            &p,
            T0 + 61_000,
        );
        assert_eq!(
            b.get("SearchTimeline", &p, T0 + 61_000).source,
            BudgetSource::Headers
        );
    }

    #[test]
    fn budgets_round_trip_as_the_record_shape() {
        let p = policy(1);
        let mut b = Budgets::default();
        b.apply_capture(
            &[rl("UserTweets", 500, 0, 1_764_300_900)],
            &BTreeMap::new(),
            &p,
            T0,
        );
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(
            json,
            r#"{"UserTweets":{"limit":500,"remaining":0,"reset":1764300900,"source":"headers"}}"#
        );
        assert_eq!(serde_json::from_str::<Budgets>(&json).unwrap(), b);
    }
}
