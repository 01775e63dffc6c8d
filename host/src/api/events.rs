//! The events worker's resources: `POST /api/v1/streams/{stream}/events` (a producer
//! through the host, held to the stream's bound), `GET /api/v1/listeners` (each
//! listener with its stream's length and its group's pending count), and the event side
//! of `/api/v1/dead-letters` (replay, purge).
//!
//! Only streams a `[[listeners]]` entry reads take events here: a stream no group reads
//! would keep every entry (nothing is trimmed below what a group still needs) until it
//! refuses them all. The listeners' groups are created before the first append, so a
//! group that starts at `$` still sees the events sent before its host started.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ApiError, ApiState};
use crate::events::config::Start;
use crate::events::dead_letters::{self, ReplayRefused};
use crate::input::BodyError;
use crate::storage::StreamFull;

/// Most fields one event may carry.
const MAX_FIELDS: usize = 1000;
/// Suggested wait after a refusal at the bound.
const FULL_RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEvent {
    /// Field names to text values (numbers and booleans are written as text).
    fields: Map<String, Value>,
    /// An idempotency key: the same key twice on a stream is one event.
    #[serde(default)]
    id: Option<String>,
}

pub async fn append(
    State(state): State<ApiState>,
    Path(stream): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let listeners: Vec<_> = state
        .services
        .listeners
        .iter()
        .filter(|l| l.stream == stream)
        .collect();
    if listeners.is_empty() {
        return Err(ApiError::not_found(format!(
            "no [[listeners]] entry reads stream `{stream}`; events sent to it would never be handled"
        )));
    }
    let req: NewEvent = crate::input::parse_json(&body).map_err(|e| match e {
        BodyError::Syntax(msg) => ApiError::invalid("invalid_json", format!("the body is {msg}")),
        BodyError::Field(f) => ApiError::invalid("invalid_field", f.to_string()),
    })?;
    if req.fields.is_empty() || req.fields.len() > MAX_FIELDS {
        return Err(ApiError::invalid(
            "invalid_field",
            format!("`fields`: between 1 and {MAX_FIELDS} fields"),
        ));
    }
    let mut fields = Vec::with_capacity(req.fields.len());
    for (name, value) in req.fields {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!("`fields.{name}`: a string, number or boolean, not {other}"),
                ));
            }
        };
        fields.push((name, text));
    }
    if let Some(id) = &req.id
        && !crate::input::valid_key(id, 200)
    {
        return Err(ApiError::invalid(
            "invalid_field",
            "`id`: 1 to 200 letters, digits, `-`, `_`, `.`, `:` or `@`",
        ));
    }
    let store = state.store()?;
    for l in &listeners {
        store
            .ensure_group_at(&l.stream, &l.group, l.start == Start::End)
            .await
            .map_err(ApiError::store)?;
    }
    let maxlen = listeners.iter().map(|l| l.maxlen).min().unwrap_or(100_000);
    match store
        .append_event(&stream, req.id.as_deref(), &fields, maxlen)
        .await
    {
        Ok(Some(entry)) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"stream": stream, "entry_id": entry, "duplicate": false})),
        )),
        Ok(None) => Ok((
            StatusCode::OK,
            Json(json!({"stream": stream, "entry_id": null, "duplicate": true})),
        )),
        Err(e) => match StreamFull::find(&e) {
            Some(full) => Err(ApiError::busy(
                "stream_full",
                format!(
                    "{full}. The event was not accepted; send it again after the Retry-After delay"
                ),
                FULL_RETRY_AFTER_SECS,
            )),
            None => Err(ApiError::store(e)),
        },
    }
}

pub async fn listeners(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let store = state.store()?;
    let running = state.services.events.as_ref();
    let mut out = Vec::new();
    for l in &state.services.listeners {
        let len = store.stream_len(&l.stream).await.map_err(ApiError::store)?;
        let pending = store
            .pending_count(&l.stream, &l.group)
            .await
            .map_err(ApiError::store)?;
        let metrics = running
            .and_then(|h| h.listeners.iter().find(|x| x.cfg.name == l.name))
            .map(|x| {
                let m = &x.metrics;
                let counts: Map<String, Value> = m
                    .outcomes()
                    .iter()
                    .map(|(k, v)| (k.to_string(), json!(v)))
                    .collect();
                json!({ "events": counts, "claimed": m.claimed.load(std::sync::atomic::Ordering::Relaxed) })
            });
        out.push(json!({
            "name": l.name,
            "stream": l.stream,
            "group": l.group,
            "plugin": l.plugin,
            "stream_length": len,
            "pending": pending,
            "maxlen": l.maxlen,
            "max_attempts": l.max_attempts,
            "running_here": metrics.is_some(),
            "this_host": metrics,
        }));
    }
    Ok(Json(json!({ "listeners": out })))
}

/// Whether a dead-letter id is an event's (`ev-…`).
pub fn is_event_dead_letter(id: &str) -> bool {
    id.starts_with("ev-")
}

pub async fn replay(state: &ApiState, id: &str) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (store, docs) = (state.store()?, state.docs()?);
    match dead_letters::replay(store, docs, id)
        .await
        .map_err(ApiError::store)?
    {
        Ok(entry) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "state": "replayed", "entry_id": entry})),
        )),
        Err(ReplayRefused::NotFound) => Err(ApiError::not_found(format!("no dead letter `{id}`"))),
        Err(ReplayRefused::AlreadyReplayed(entry)) => Err(ApiError::conflict(format!(
            "`{id}` was replayed already (as entry `{entry}`)"
        ))),
        Err(ReplayRefused::Full(full)) => Err(ApiError::busy(
            "stream_full",
            format!("{full}. Nothing was replayed; try again after the Retry-After delay"),
            FULL_RETRY_AFTER_SECS,
        )),
        Err(ReplayRefused::Raced) => Err(ApiError::conflict(format!(
            "`{id}` changed at the same moment (another replay?); look again"
        ))),
    }
}

pub async fn purge(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !is_event_dead_letter(&id) {
        return Err(ApiError::invalid(
            "not_purgeable",
            "only event dead letters are purged here; a notification's dead letter stays with its delivery history",
        ));
    }
    if dead_letters::purge(state.docs()?, &id)
        .await
        .map_err(ApiError::store)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no dead letter `{id}`")))
    }
}
