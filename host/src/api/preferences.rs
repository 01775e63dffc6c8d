//! `GET/PUT /api/v1/users/{user_id}/preferences`: a user's channel addresses, enabled
//! channels, quiet hours and mutes. PUT replaces the whole document; every error names
//! the field and nothing is stored. Answers show secret-like addresses (Discord and Slack
//! webhook URLs, push subscriptions) by origin only.
//!
//! `POST/DELETE /api/v1/users/{user_id}/push-subscriptions` add or drop one browser's push
//! subscription (the page's `PushSubscription` JSON; DELETE needs its `endpoint`), and
//! `GET /api/v1/webpush/public-key` gives the page the VAPID key to subscribe with.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;

use super::{ApiError, ApiState};
use crate::input::valid_key;
use crate::notify::log::{DeliveryLog, PREFERENCES};
use crate::notify::prefs::Preferences;
use crate::notify::subscriptions::{self, Added};
use crate::notify::webpush::Subscription;

fn check_user(user_id: &str) -> Result<(), ApiError> {
    if valid_key(user_id, 128) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "invalid_field",
            "`user_id`: 1-128 characters of letters, digits and - _ . : @",
        ))
    }
}

fn view(p: &Preferences) -> Value {
    p.redacted()
}

pub async fn get(
    State(state): State<ApiState>,
    Path(user_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_user(&user_id)?;
    let log = DeliveryLog::new(state.docs()?.clone());
    match log.preferences(&user_id).await.map_err(ApiError::store)? {
        Some((p, _)) => Ok(Json(view(&p))),
        None => Err(ApiError::not_found(format!(
            "user `{user_id}` has no preferences"
        ))),
    }
}

pub async fn put(
    State(state): State<ApiState>,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_user(&user_id)?;
    let now = crate::util::now_ms();
    let prefs = Preferences::parse(&body, now)
        .map_err(|e| ApiError::invalid("invalid_field", e.to_string()))?;
    crate::documents::upsert(
        state.docs()?.as_ref(),
        PREFERENCES,
        prefs.to_doc(&user_id, now),
    )
    .await
    .map_err(ApiError::store)?;
    if let Some(n) = &state.services.notify {
        n.shared.forget_preferences(&user_id);
    }
    Ok(Json(view(&prefs)))
}

/// Parse a JSON body as `T`, naming the field that is wrong.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    crate::input::parse_json(body).map_err(|e| match e {
        crate::input::BodyError::Syntax(msg) => ApiError::invalid("invalid_json", msg),
        crate::input::BodyError::Field(f) => ApiError::invalid("invalid_field", f.to_string()),
    })
}

pub async fn add_push_subscription(
    State(state): State<ApiState>,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_user(&user_id)?;
    let sub: Subscription = parse_body(&body)?;
    let log = DeliveryLog::new(state.docs()?.clone());
    let added = subscriptions::add(&log, &user_id, &sub, crate::util::now_ms())
        .await
        .map_err(ApiError::store)?
        .map_err(|e| ApiError::invalid("invalid_field", e.to_string()))?;
    if let Some(n) = &state.services.notify {
        n.shared.forget_preferences(&user_id);
    }
    let (status, what) = match added {
        Added::New => (StatusCode::CREATED, "added"),
        Added::Updated => (StatusCode::OK, "updated"),
        Added::Unchanged => (StatusCode::OK, "unchanged"),
    };
    Ok((
        status,
        Json(serde_json::json!({"subscription": what, "endpoint": sub.shown()})),
    ))
}

/// The body of a DELETE: the subscription's endpoint (the whole `PushSubscription` JSON
/// is accepted too; only its endpoint counts).
#[derive(serde::Deserialize)]
struct EndpointOnly {
    endpoint: String,
}

pub async fn remove_push_subscription(
    State(state): State<ApiState>,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    check_user(&user_id)?;
    let v: Value = parse_body(&body)?;
    let EndpointOnly { endpoint } = serde_json::from_value(v).map_err(|_| {
        ApiError::invalid(
            "invalid_field",
            "`endpoint`: the subscription's endpoint URL is needed",
        )
    })?;
    let log = DeliveryLog::new(state.docs()?.clone());
    let removed = subscriptions::remove(&log, &user_id, &endpoint, crate::util::now_ms())
        .await
        .map_err(ApiError::store)?;
    if let Some(n) = &state.services.notify {
        n.shared.forget_preferences(&user_id);
    }
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "user `{user_id}` has no push subscription with that endpoint"
        )))
    }
}

pub async fn webpush_public_key(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    match &state.services.webpush_public_key {
        Some(key) => Ok(Json(serde_json::json!({"public_key": key}))),
        None => Err(ApiError::unavailable(
            "web push is not configured: set [notify.webpush] private_key_env's variable \
             (`impressox webpush keygen` makes a key pair)",
        )),
    }
}
