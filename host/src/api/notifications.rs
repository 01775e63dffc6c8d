//! `/api/v1/notifications` (enqueue, idempotent on `id`; delivery status per channel) and
//! `/api/v1/dead-letters` (list, replay).
//!
//! A request is recorded and put on `notify:requests`, where the notify worker (on this
//! host or another) takes it. The same id with the same body is one notification (200
//! `duplicate`); the same id with another body is refused (409). While the stream is at
//! its bound (`[market] stream_maxlen` entries the notify worker has not taken) the
//! request is refused with 503 `queue_full` and `Retry-After`, and nothing is stored.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::notify::request::NotificationRequest;
use crate::notify::service::{self, ReplayError, Submitted};

pub async fn create(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = NotificationRequest::parse(
        std::str::from_utf8(&body)
            .map_err(|_| ApiError::invalid("invalid_json", "the body is not UTF-8 text"))?,
    )
    .map_err(|e| ApiError::invalid("invalid_field", e.to_string()))?;
    let (store, docs) = (state.store()?, state.docs()?);
    match service::submit(store, docs, &req)
        .await
        .map_err(ApiError::store)?
    {
        Submitted::Queued => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": req.id, "status": "queued"})),
        )),
        Submitted::Duplicate => {
            let status = service::status(docs, &req.id)
                .await
                .map_err(ApiError::store)?
                .and_then(|v| v.get("status").cloned())
                .unwrap_or(json!("queued"));
            Ok((
                StatusCode::OK,
                Json(json!({"id": req.id, "status": status, "duplicate": true})),
            ))
        }
        Submitted::IdReused => Err(ApiError::conflict(format!(
            "notification id `{}` was used before for a different request; use a new id",
            req.id
        ))),
        Submitted::Full(full) => Err(ApiError::busy(
            "queue_full",
            format!(
                "{full}. Notification `{}` was not accepted; send it again after the Retry-After delay",
                req.id
            ),
            QUEUE_FULL_RETRY_AFTER_SECS,
        )),
    }
}

/// What a refusal at the stream's bound suggests waiting: the notify worker takes a
/// batch every few hundred milliseconds when it runs.
const QUEUE_FULL_RETRY_AFTER_SECS: u64 = 5;

pub async fn get(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    service::status(state.docs()?, &id)
        .await
        .map_err(ApiError::store)?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no notification `{id}` is known (yet: an alert is recorded when the notify worker takes it)"
            ))
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// `notifications` or `events`; both when absent.
    source: Option<String>,
    channel: Option<String>,
    user_id: Option<String>,
    /// Events of this stream only (implies `source=events`).
    stream: Option<String>,
    reason: Option<String>,
    limit: Option<usize>,
}

pub async fn dead_letters(
    State(state): State<ApiState>,
    Query(q): Query<DeadLetterQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid(
            "invalid_field",
            "`limit`: between 1 and 500",
        ));
    }
    let (notifications, events) = match q.source.as_deref() {
        None => (
            q.stream.is_none(),
            q.channel.is_none() && q.user_id.is_none(),
        ),
        Some("notifications") => (true, false),
        Some("events") => (false, true),
        Some(other) => {
            return Err(ApiError::invalid(
                "invalid_field",
                format!("`source`: `notifications` or `events`, not `{other}`"),
            ));
        }
    };
    let docs = state.docs()?;
    let mut items = Vec::new();
    if notifications {
        items = service::dead_letters(
            docs,
            q.channel.as_deref(),
            q.user_id.as_deref(),
            q.reason.as_deref(),
            limit,
        )
        .await
        .map_err(ApiError::store)?;
    }
    if events {
        let list = crate::events::dead_letters::list(docs, q.stream.as_deref(), limit)
            .await
            .map_err(ApiError::store)?;
        items.extend(
            list.iter()
                .filter(|d| {
                    q.reason
                        .as_deref()
                        .is_none_or(|r| d.get("reason").and_then(Value::as_str) == Some(r))
                })
                .map(crate::events::dead_letters::view),
        );
        // Newest first across both kinds (RFC 3339 times in UTC sort as text).
        items.sort_by(|a, b| {
            let t = |v: &Value| v["dead_at"].as_str().unwrap_or_default().to_string();
            t(b).cmp(&t(a))
        });
        items.truncate(limit);
    }
    Ok(Json(json!({"dead_letters": items})))
}

pub async fn replay(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if super::events::is_event_dead_letter(&id) {
        return super::events::replay(&state, &id).await;
    }
    match service::replay(state.docs()?, &id)
        .await
        .map_err(ApiError::store)?
    {
        Ok(d) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": d.id, "state": d.state.as_str()})),
        )),
        Err(ReplayError::NotFound) => Err(ApiError::not_found(format!("no dead letter `{id}`"))),
        Err(ReplayError::NotDead(state)) => Err(ApiError::conflict(format!(
            "`{id}` is {state}, not a dead letter (replayed already?)"
        ))),
        Err(ReplayError::NotReplayable(why)) => Err(ApiError::invalid("not_replayable", why)),
        Err(ReplayError::Raced) => Err(ApiError::conflict(format!(
            "`{id}` changed at the same moment (another replay?); look again"
        ))),
    }
}
