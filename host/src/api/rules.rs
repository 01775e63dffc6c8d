//! `/api/v1/rules`: create, list (filter by `user_id`, `symbol`), get, patch, delete.
//!
//! Creating, listing and deleting go through [`crate::market::rule_ops`], the code path
//! the Telegram bot's commands share: the store is written first (so the answer is
//! durable), then the market engine is told and the call returns once it applied the
//! change. Bodies are checked field by field; an error names the field and nothing is
//! stored.
//!
//! A create beyond `[market]`'s limits is refused and stores nothing: 409
//! `rule_limit_per_user` (the user has `max_rules_per_user` rules), 409 `rule_limit_total`
//! (the store holds `max_rules`), 400 `unknown_symbol` (not a symbol `rule_symbols`
//! allows; the message lists some that are). 409, not 429: waiting does not help, deleting
//! a rule does.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ApiError, ApiState};
use crate::input::{BodyError, parse_json};
use crate::market::rule_ops::{self, RuleOpError};
use crate::market::rules::{RuleRecord, RuleSpec};
use crate::util::{now_ms, rfc3339_ms};

/// Parse a JSON body into `T`, naming the failing field.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    parse_json(body).map_err(|e| match e {
        BodyError::Syntax(msg) => ApiError::invalid("invalid_json", format!("the body is {msg}")),
        BodyError::Field(f) => ApiError::invalid("invalid_field", f.to_string()),
    })
}

impl From<RuleOpError> for ApiError {
    fn from(e: RuleOpError) -> ApiError {
        match e {
            RuleOpError::Invalid(f) => ApiError::invalid("invalid_field", f.to_string()),
            RuleOpError::Exists(_) => ApiError::conflict(e.to_string()),
            RuleOpError::NotFound(_) => ApiError::not_found(e.to_string()),
            RuleOpError::Unreadable { ref id, .. } => {
                // The parse error quotes the stored record: log it, do not answer it.
                tracing::error!(error = %e, "a stored rule does not parse");
                ApiError::unavailable_because(
                    "rule_unreadable",
                    &format!("rule `{id}` is stored in a form this host cannot read"),
                )
            }
            RuleOpError::UserLimit { .. } => {
                ApiError::conflict_because("rule_limit_per_user", e.to_string())
            }
            RuleOpError::TotalLimit { .. } => {
                ApiError::conflict_because("rule_limit_total", e.to_string())
            }
            RuleOpError::Symbol(r) => ApiError::invalid("unknown_symbol", r.to_string()),
            RuleOpError::Busy => ApiError::unavailable_because("busy", &e.to_string()),
            RuleOpError::Store(e) => ApiError::store(e),
        }
    }
}

/// A rule as the API shows it: the record plus `state`, `last_fired_at` and the
/// processor that evaluates it.
pub fn view(state: &ApiState, r: &RuleRecord) -> Value {
    let market = state.services.market.as_ref();
    let processor = rule_ops::processor_of(market, r);
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.insert("processor".into(), json!(processor));
        o.insert(
            "state".into(),
            json!(rule_ops::state_of(&state.runtime, market, r, now_ms())),
        );
        o.insert(
            "last_fired_at".into(),
            json!(r.firing.last_fired_ms.map(rfc3339_ms)),
        );
        if let Some(error) = rule_ops::failure_of(market, r) {
            o.insert("processor_error".into(), json!(error));
        }
    }
    v
}

pub async fn create(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let spec: RuleSpec = parse_body(&body)?;
    let rule = rule_ops::create_rule(
        state.store()?.as_ref(),
        state.services.market.as_ref(),
        &state.services.rules,
        spec,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&state, &rule))))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub user_id: Option<String>,
    pub symbol: Option<String>,
    /// A page of at most `limit` rules (1 to 500); with `offset`, from that position.
    /// The answer then carries `next_offset` (null on the last page).
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

/// Without `limit` or `offset`: every matching rule (the original answer). With either: one
/// page, read through the store's rule indexes.
pub async fn list(
    State(state): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    if q.limit.is_some() || q.offset.is_some() {
        let limit = q.limit.unwrap_or(100);
        if !(1..=rule_ops::MAX_PAGE).contains(&limit) {
            return Err(ApiError::invalid(
                "invalid_field",
                format!("`limit`: between 1 and {}", rule_ops::MAX_PAGE),
            ));
        }
        let (rules, next) = rule_ops::page_rules(
            state.store()?.as_ref(),
            q.user_id.as_deref(),
            q.symbol.as_deref(),
            q.offset.unwrap_or(0),
            limit,
        )
        .await?;
        let views: Vec<Value> = rules.iter().map(|r| view(&state, r)).collect();
        return Ok(Json(json!({"rules": views, "next_offset": next})));
    }
    let rules = rule_ops::list_rules(
        state.store()?.as_ref(),
        q.user_id.as_deref(),
        q.symbol.as_deref(),
    )
    .await?;
    let views: Vec<Value> = rules.iter().map(|r| view(&state, r)).collect();
    Ok(Json(json!({"rules": views})))
}

pub async fn get(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = rule_ops::load_rule(state.store()?.as_ref(), &id).await?;
    Ok(Json(view(&state, &r)))
}

/// Fields a patch may change; `null` clears an optional one.
const PATCHABLE: &[&str] = &[
    "condition",
    "trigger",
    "expires_at",
    "channels",
    "processor",
    "note",
    "enabled",
];

pub async fn patch(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let patch = parse_patch(&body)?;
    let rule = rule_ops::load_rule(state.store()?.as_ref(), &id).await?;
    let (rule, reset) = apply_patch(rule, &patch)?;
    rule_ops::save_rule(state.store()?.as_ref(), &rule).await?;
    rule_ops::announce(state.store()?.as_ref(), &rule.id, !reset).await?;
    if let Some(m) = &state.services.market {
        m.upsert(rule.clone(), !reset).await;
    }
    Ok(Json(view(&state, &rule)))
}

/// A PATCH body: a JSON object of [`PATCHABLE`] fields. Checked before the rule is
/// looked up, so a malformed patch is a 400 whether or not the rule exists.
pub(super) fn parse_patch(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let patch: Map<String, Value> = parse_body(body)?;
    for key in patch.keys() {
        if !PATCHABLE.contains(&key.as_str()) {
            let why = if matches!(key.as_str(), "id" | "user_id" | "symbol") {
                "cannot be changed; create a new rule instead"
            } else {
                "is not a rule field"
            };
            return Err(ApiError::invalid("invalid_field", format!("`{key}` {why}")));
        }
    }
    Ok(patch)
}

/// `rule` with `patch` applied and validated, and whether the change re-arms it (its
/// condition or trigger changed, which clears the firing state). Pure: the caller stores
/// the result.
pub(super) fn apply_patch(
    rule: RuleRecord,
    patch: &Map<String, Value>,
) -> Result<(RuleRecord, bool), ApiError> {
    let mut spec = serde_json::to_value(rule.spec()).unwrap_or(Value::Null);
    let mut enabled = rule.enabled;
    for (key, value) in patch {
        if key == "enabled" {
            enabled = value.as_bool().ok_or_else(|| {
                ApiError::invalid("invalid_field", "`enabled`: expected true or false")
            })?;
            continue;
        }
        if let Value::Object(o) = &mut spec {
            if value.is_null() {
                if matches!(key.as_str(), "condition" | "trigger") {
                    return Err(ApiError::invalid(
                        "invalid_field",
                        format!("`{key}` cannot be removed"),
                    ));
                }
                o.remove(key);
            } else {
                o.insert(key.clone(), value.clone());
            }
        }
    }
    let new_spec: RuleSpec = parse_body(spec.to_string().as_bytes())?;
    let new_expiry = patch.get("expires_at").is_some_and(|v| !v.is_null());
    new_spec
        .validate(new_expiry)
        .map_err(|e| ApiError::invalid("invalid_field", e.to_string()))?;
    let reset = new_spec.condition != rule.condition || new_spec.trigger != rule.trigger;
    let firing = if reset {
        Default::default()
    } else {
        rule.firing
    };
    let rule = RuleRecord {
        id: rule.id,
        user_id: rule.user_id,
        symbol: rule.symbol,
        condition: new_spec.condition,
        trigger: new_spec.trigger,
        expires_at: new_spec.expires_at,
        channels: new_spec.channels,
        processor: new_spec.processor,
        note: new_spec.note,
        created_at: rule.created_at,
        enabled,
        firing,
    };
    Ok((rule, reset))
}

pub async fn delete(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    rule_ops::delete_rule(
        state.store()?.as_ref(),
        state.services.market.as_ref(),
        &id,
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
