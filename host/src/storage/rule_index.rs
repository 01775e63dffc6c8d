//! The rule indexes both stores keep beside the rules, so a page of rules (the console's,
//! `GET /api/v1/rules?limit=`) reads that page and nothing more.
//!
//! Three orders of the same entries, each `"<created_at> <id>"`: all rules, one user's
//! rules, one symbol's rules (upper case). `created_at` is RFC 3339 in one format, so the
//! entries sort by creation time, then id: the order `GET /api/v1/rules` always had. A
//! rule's user, symbol and creation time never change, so only a create (the first
//! `put_rule` of an id) and a delete touch an index; they are written in the same
//! transaction as the rule.

use serde::Deserialize;

/// Which rules a page is taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleScope {
    All,
    User(String),
    /// Matched without regard to case.
    Symbol(String),
}

impl RuleScope {
    /// The index's name: `all`, `u:<user>`, `s:<SYMBOL>`.
    pub fn key(&self) -> String {
        match self {
            RuleScope::All => "all".into(),
            RuleScope::User(u) => format!("u:{u}"),
            RuleScope::Symbol(s) => format!("s:{}", s.to_ascii_uppercase()),
        }
    }
}

/// What the indexes need of a stored rule.
#[derive(Debug, Deserialize)]
pub struct IndexedRule {
    pub id: String,
    pub user_id: String,
    pub symbol: String,
    pub created_at: String,
}

impl IndexedRule {
    /// Read the indexed fields of a rule's JSON.
    pub fn from_json(json: &str) -> anyhow::Result<IndexedRule> {
        serde_json::from_str(json).map_err(|e| anyhow::anyhow!("a rule record does not parse: {e}"))
    }

    /// The indexed fields, or `None` (logged) for a record without them.
    pub fn indexable(json: &str) -> Option<IndexedRule> {
        match IndexedRule::from_json(json) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "a rule record without user, symbol or creation time is in no index");
                None
            }
        }
    }

    /// The entry in each index.
    pub fn entry(&self) -> String {
        format!("{} {}", self.created_at, self.id)
    }

    /// The index names this rule is in.
    pub fn scopes(&self) -> [String; 3] {
        [
            RuleScope::All.key(),
            RuleScope::User(self.user_id.clone()).key(),
            RuleScope::Symbol(self.symbol.clone()).key(),
        ]
    }
}

/// The rule id of an index entry.
pub fn id_of_entry(entry: &str) -> &str {
    entry.split_once(' ').map_or(entry, |(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_sort_by_creation_then_id_and_give_back_the_id() {
        let r = IndexedRule::from_json(
            r#"{"id":"r 1","user_id":"u","symbol":"btcusdt","created_at":"2026-01-01T00:00:00.000Z","x":1}"#,
        )
        .unwrap();
        assert_eq!(r.entry(), "2026-01-01T00:00:00.000Z r 1");
        assert_eq!(id_of_entry(&r.entry()), "r 1");
        assert_eq!(r.scopes()[2], "s:BTCUSDT");
        assert!("2026-01-01T00:00:00.000Z b" < "2026-01-01T00:00:00.001Z a");
    }
}
