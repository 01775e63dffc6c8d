//! Creating, reading, listing and deleting alert rules: the one code path that
//! `POST/GET/DELETE /api/v1/rules` and the Telegram bot's `/watch`, `/alerts` and
//! `/unwatch` share, so a rule made in a chat is checked, stored and handed to the market
//! engine exactly as one made over HTTP.
//!
//! The store is written first (so a success is durable), then the change is announced in
//! the store (several hosts: the owner of the rule's partition hears of it there) and the
//! local market engine is told; the call returns once it applied the change. A delete tells the engine first, so
//! it cannot write the rule back after the store forgot it.
//!
//! A create is checked against the [`RulePolicy`] (rules per user, rules in all, which
//! symbols), counted and inserted under a [`CreateGuard`], so the API and the bot refuse
//! alike and concurrent creates cannot overshoot a limit.

use crate::input::FieldError;
use crate::market::MarketHandle;
use crate::market::rule_limits::{CreateGuard, RulePolicy, SymbolRefused, count_rules};
use crate::market::rules::{RuleRecord, RuleSpec, RuleState};
use crate::runtime::Runtime;
use crate::storage::Store;

/// Why a rule operation failed; each caller words it for its own users.
#[derive(Debug)]
pub enum RuleOpError {
    /// A field of the spec is wrong; nothing was stored.
    Invalid(FieldError),
    /// A rule with this id exists already.
    Exists(String),
    /// No rule with this id (or none the caller may touch).
    NotFound(String),
    /// The stored record does not parse.
    Unreadable { id: String, error: String },
    /// The user has `[market] max_rules_per_user` rules already.
    UserLimit { user_id: String, limit: usize },
    /// The store holds `[market] max_rules` rules already.
    TotalLimit { limit: usize },
    /// The symbol is not one rules may watch (`[market] rule_symbols`).
    Symbol(SymbolRefused),
    /// Another create held the create lease too long; nothing was stored.
    Busy,
    /// The store failed.
    Store(anyhow::Error),
}

impl std::fmt::Display for RuleOpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleOpError::Invalid(e) => write!(f, "{e}"),
            RuleOpError::Exists(id) => write!(f, "a rule with id `{id}` exists"),
            RuleOpError::NotFound(id) => write!(f, "no rule with id `{id}`"),
            RuleOpError::Unreadable { id, error } => {
                write!(f, "rule `{id}` is stored unreadably: {error}")
            }
            RuleOpError::UserLimit { user_id, limit } => write!(
                f,
                "user `{user_id}` has {limit} rules, the most [market] max_rules_per_user \
                 allows; delete one before creating another"
            ),
            RuleOpError::TotalLimit { limit } => write!(
                f,
                "the store holds {limit} rules, the most [market] max_rules allows; no rule \
                 can be created until some are deleted"
            ),
            RuleOpError::Symbol(r) => write!(f, "{r}"),
            RuleOpError::Busy => write!(
                f,
                "other rules were being created for too long; nothing was stored, try again"
            ),
            RuleOpError::Store(e) => write!(f, "the store failed: {e}"),
        }
    }
}

impl std::error::Error for RuleOpError {}

/// Validate `spec` and check it against `policy`, refuse an id that exists, store the
/// new record and tell the engine. An existing id is reported before any limit, so a
/// replayed create (the bot's `/watch` after a crash) finds its rule.
pub async fn create_rule(
    store: &dyn Store,
    market: Option<&MarketHandle>,
    policy: &RulePolicy,
    spec: RuleSpec,
) -> Result<RuleRecord, RuleOpError> {
    spec.validate(true).map_err(RuleOpError::Invalid)?;
    policy
        .check_symbol(store, &spec.symbol)
        .await
        .map_err(RuleOpError::Store)?
        .map_err(RuleOpError::Symbol)?;
    let guard = CreateGuard::acquire(store)
        .await
        .map_err(RuleOpError::Store)?
        .ok_or(RuleOpError::Busy)?;
    let inserted = insert_within_limits(store, policy, spec).await;
    guard.release().await;
    let rule = inserted?;
    announce(store, &rule.id, false).await?;
    if let Some(m) = market {
        m.upsert(rule.clone(), false).await;
    }
    Ok(rule)
}

/// The part of [`create_rule`] that runs under the create guard.
async fn insert_within_limits(
    store: &dyn Store,
    policy: &RulePolicy,
    spec: RuleSpec,
) -> Result<RuleRecord, RuleOpError> {
    if let Some(id) = &spec.id
        && store
            .get_rule(id)
            .await
            .map_err(RuleOpError::Store)?
            .is_some()
    {
        return Err(RuleOpError::Exists(id.clone()));
    }
    let (total, mine) = count_rules(store, &spec.user_id)
        .await
        .map_err(RuleOpError::Store)?;
    if mine >= policy.max_rules_per_user {
        return Err(RuleOpError::UserLimit {
            user_id: spec.user_id,
            limit: policy.max_rules_per_user,
        });
    }
    if total >= policy.max_rules {
        return Err(RuleOpError::TotalLimit {
            limit: policy.max_rules,
        });
    }
    let rule = RuleRecord::create(spec);
    save_rule(store, &rule).await?;
    Ok(rule)
}

/// The rule `id`.
pub async fn load_rule(store: &dyn Store, id: &str) -> Result<RuleRecord, RuleOpError> {
    let json = store
        .get_rule(id)
        .await
        .map_err(RuleOpError::Store)?
        .ok_or_else(|| RuleOpError::NotFound(id.to_string()))?;
    serde_json::from_str(&json).map_err(|e| RuleOpError::Unreadable {
        id: id.to_string(),
        error: e.to_string(),
    })
}

/// Write a record as it is (the engine is not told; see [`create_rule`]).
pub async fn save_rule(store: &dyn Store, rule: &RuleRecord) -> Result<(), RuleOpError> {
    let json = serde_json::to_string(rule).map_err(|e| RuleOpError::Store(e.into()))?;
    store
        .put_rule(&rule.id, &json)
        .await
        .map_err(RuleOpError::Store)
}

/// Tell the host that evaluates rule `id` (several hosts: whichever owns its partition)
/// that it changed; `keep_firing`: its engine keeps the firing state it has.
pub async fn announce(store: &dyn Store, id: &str, keep_firing: bool) -> Result<(), RuleOpError> {
    store
        .rule_changed(id, keep_firing)
        .await
        .map_err(RuleOpError::Store)
}

/// Rules of `user_id` and/or on `symbol` (case-insensitive), oldest first. Unreadable
/// records are left out (the engine logs them at start-up).
pub async fn list_rules(
    store: &dyn Store,
    user_id: Option<&str>,
    symbol: Option<&str>,
) -> Result<Vec<RuleRecord>, RuleOpError> {
    let all = store.list_rules().await.map_err(RuleOpError::Store)?;
    let mut rules: Vec<RuleRecord> = all
        .iter()
        .filter_map(|j| serde_json::from_str(j).ok())
        .filter(|r: &RuleRecord| user_id.is_none_or(|u| r.user_id == u))
        .filter(|r: &RuleRecord| symbol.is_none_or(|s| r.symbol.eq_ignore_ascii_case(s)))
        .collect();
    rules.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    Ok(rules)
}

/// The most rules one page holds (`GET /api/v1/rules?limit=`, the console).
pub const MAX_PAGE: usize = 500;

/// One page of rules of `user_id` and/or on `symbol` (case-insensitive), oldest first,
/// from position `offset`: the rules and the offset of the next page, if there is one.
/// Read through the store's rule indexes: a page costs its own size, whatever the store
/// holds. With both filters the user's index is read (a user's rules are bounded by
/// `max_rules_per_user`) and the symbol is matched on it.
pub async fn page_rules(
    store: &dyn Store,
    user_id: Option<&str>,
    symbol: Option<&str>,
    offset: usize,
    limit: usize,
) -> Result<(Vec<RuleRecord>, Option<usize>), RuleOpError> {
    use crate::storage::RuleScope;
    let limit = limit.clamp(1, MAX_PAGE);
    let parse = |all: Vec<String>| -> Vec<RuleRecord> {
        all.iter()
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect()
    };
    let (scope, also_symbol) = match (user_id, symbol) {
        (Some(u), s) => (RuleScope::User(u.to_string()), s),
        (None, Some(s)) => (RuleScope::Symbol(s.to_string()), None),
        (None, None) => (RuleScope::All, None),
    };
    let Some(symbol) = also_symbol else {
        // One more than asked says whether a next page exists.
        let mut page = parse(
            store
                .page_rules(&scope, offset, limit + 1)
                .await
                .map_err(RuleOpError::Store)?,
        );
        let next = (page.len() > limit).then_some(offset + limit);
        page.truncate(limit);
        return Ok((page, next));
    };
    // Both filters: walk the user's rules in chunks, counting matches to `offset`.
    let mut skipped = 0;
    let mut out = Vec::new();
    let mut at = 0;
    const CHUNK: usize = 500;
    loop {
        let chunk = parse(
            store
                .page_rules(&scope, at, CHUNK)
                .await
                .map_err(RuleOpError::Store)?,
        );
        let done = chunk.len() < CHUNK;
        at += CHUNK;
        for r in chunk {
            if !r.symbol.eq_ignore_ascii_case(symbol) {
                continue;
            }
            if skipped < offset {
                skipped += 1;
            } else if out.len() < limit {
                out.push(r);
            } else {
                return Ok((out, Some(offset + limit)));
            }
        }
        if done {
            return Ok((out, None));
        }
    }
}

/// Delete the rule `id`; with `owner`, only if it belongs to that user (a rule of
/// another user is reported as not found, so its existence is not revealed). Returns the
/// deleted record.
pub async fn delete_rule(
    store: &dyn Store,
    market: Option<&MarketHandle>,
    id: &str,
    owner: Option<&str>,
) -> Result<RuleRecord, RuleOpError> {
    let rule = load_rule(store, id).await?;
    if owner.is_some_and(|o| o != rule.user_id) {
        return Err(RuleOpError::NotFound(id.to_string()));
    }
    // The engine first, so it cannot write the rule back after the store forgot it.
    if let Some(m) = market {
        m.remove(id).await;
    }
    store.delete_rule(id).await.map_err(RuleOpError::Store)?;
    announce(store, id, false).await?;
    Ok(rule)
}

/// The processor that evaluates `rule` in this process: its own, or the market
/// monitor's default (`threshold` when no monitor runs here).
pub fn processor_of(market: Option<&MarketHandle>, rule: &RuleRecord) -> String {
    match (&rule.processor, market) {
        (Some(p), _) => p.clone(),
        (None, Some(m)) => m.default_processor.to_string(),
        (None, None) => "threshold".into(),
    }
}

/// The state a rule is reported in, e.g. `waiting_for_processor` while its plugin is not
/// loaded, `processor_failing` while the instance evaluating it fails (see
/// [`failure_of`]).
pub fn state_of(
    runtime: &Runtime,
    market: Option<&MarketHandle>,
    rule: &RuleRecord,
    now_ms: i64,
) -> RuleState {
    let loaded = runtime.loaded_plugin(&processor_of(market, rule)).is_some();
    match rule.state(loaded, now_ms) {
        RuleState::Active if failure_of(market, rule).is_some() => RuleState::ProcessorFailing,
        state => state,
    }
}

/// Why the processor instance that evaluates `rule` in this process fails, if it does.
pub fn failure_of(market: Option<&MarketHandle>, rule: &RuleRecord) -> Option<String> {
    market?.stats.rule_failure(&rule.id)
}
