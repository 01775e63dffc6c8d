//! `GET/PUT /api/v1/users/{user_id}/preferences`: a user's channel addresses, enabled
//! channels, quiet hours and mutes. PUT replaces the whole document; every error names
//! the field and nothing is stored.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::Value;

use super::{ApiError, ApiState};
use crate::input::valid_key;
use crate::notify::log::{DeliveryLog, PREFERENCES};
use crate::notify::prefs::Preferences;

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
    serde_json::to_value(p).unwrap_or(Value::Null)
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
