//! `/api/v1/rules`: create, list (filter by `user_id`, `symbol`), get, patch, delete.
//!
//! The store is written first (so the answer is durable), then the market engine is told
//! and the call returns once it applied the change. Bodies are checked field by field;
//! an error names the field and nothing is stored.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ApiError, ApiState};
use crate::input::{BodyError, parse_json};
use crate::market::rules::{RuleRecord, RuleSpec};
use crate::util::{now_ms, rfc3339_ms};

/// Parse a JSON body into `T`, naming the failing field.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    parse_json(body).map_err(|e| match e {
        BodyError::Syntax(msg) => ApiError::invalid("invalid_json", format!("the body is {msg}")),
        BodyError::Field(f) => ApiError::invalid("invalid_field", f.to_string()),
    })
}

/// A rule as the API shows it: the record plus `state`, `last_fired_at` and the
/// processor that evaluates it.
pub fn view(state: &ApiState, r: &RuleRecord) -> Value {
    let default = state
        .services
        .market
        .as_ref()
        .map(|m| m.default_processor.to_string())
        .unwrap_or_else(|| "threshold".into());
    let processor = r.processor_or(&default).to_string();
    let loaded = state.runtime.loaded_plugin(&processor).is_some();
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.insert("processor".into(), json!(processor));
        o.insert("state".into(), json!(r.state(loaded, now_ms())));
        o.insert(
            "last_fired_at".into(),
            json!(r.firing.last_fired_ms.map(rfc3339_ms)),
        );
    }
    v
}

async fn load(state: &ApiState, id: &str) -> Result<RuleRecord, ApiError> {
    let json = state
        .store()?
        .get_rule(id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| ApiError::not_found(format!("no rule with id `{id}`")))?;
    serde_json::from_str(&json)
        .map_err(|e| ApiError::unavailable(format!("rule `{id}` is stored unreadably: {e}")))
}

async fn save(state: &ApiState, r: &RuleRecord) -> Result<(), ApiError> {
    let json = serde_json::to_string(r).map_err(|e| ApiError::store(e.into()))?;
    state
        .store()?
        .put_rule(&r.id, &json)
        .await
        .map_err(ApiError::store)
}

pub async fn create(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let spec: RuleSpec = parse_body(&body)?;
    spec.validate(true)
        .map_err(|e| ApiError::invalid("invalid_field", e.to_string()))?;
    let store = state.store()?;
    if let Some(id) = &spec.id
        && store.get_rule(id).await.map_err(ApiError::store)?.is_some()
    {
        return Err(ApiError::conflict(format!("a rule with id `{id}` exists")));
    }
    let rule = RuleRecord::create(spec);
    save(&state, &rule).await?;
    if let Some(m) = &state.services.market {
        m.upsert(rule.clone(), false).await;
    }
    Ok((StatusCode::CREATED, Json(view(&state, &rule))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    user_id: Option<String>,
    symbol: Option<String>,
}

pub async fn list(
    State(state): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let all = state.store()?.list_rules().await.map_err(ApiError::store)?;
    let mut rules: Vec<RuleRecord> = all
        .iter()
        .filter_map(|j| serde_json::from_str(j).ok())
        .filter(|r: &RuleRecord| q.user_id.as_ref().is_none_or(|u| &r.user_id == u))
        .filter(|r: &RuleRecord| {
            q.symbol
                .as_ref()
                .is_none_or(|s| r.symbol.eq_ignore_ascii_case(s))
        })
        .collect();
    rules.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    let views: Vec<Value> = rules.iter().map(|r| view(&state, r)).collect();
    Ok(Json(json!({"rules": views})))
}

pub async fn get(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = load(&state, &id).await?;
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
    let patch: Map<String, Value> = parse_body(&body)?;
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
    let mut rule = load(&state, &id).await?;
    let mut spec = serde_json::to_value(rule.spec()).unwrap_or(Value::Null);
    let mut enabled = rule.enabled;
    for (key, value) in &patch {
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
    rule = RuleRecord {
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
    save(&state, &rule).await?;
    if let Some(m) = &state.services.market {
        m.upsert(rule.clone(), !reset).await;
    }
    Ok(Json(view(&state, &rule)))
}

pub async fn delete(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    load(&state, &id).await?;
    // The engine first, so it cannot write the rule back after the store forgot it.
    if let Some(m) = &state.services.market {
        m.remove(&id).await;
    }
    state
        .store()?
        .delete_rule(&id)
        .await
        .map_err(ApiError::store)?;
    Ok(StatusCode::NO_CONTENT)
}
