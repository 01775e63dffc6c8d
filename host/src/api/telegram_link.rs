//! `POST /api/v1/users/{user_id}/telegram-link`: a one-time code that links a Telegram
//! chat to an existing user. The user sends `/start <code>` to the bot within 15 minutes;
//! the bot then delivers that user's Telegram notifications to the chat and acts for the
//! user on `/watch`, `/alerts`, `/unwatch` and `/mute`. (An addition to SPEC §6: without
//! it, `/start` could only link a chat to a new user `tg-<chat id>`.)

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::input::valid_key;
use crate::notify::bot::create_link_code;
use crate::util::rfc3339_ms;

pub async fn create(
    State(state): State<ApiState>,
    Path(user_id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !valid_key(&user_id, 128) {
        return Err(ApiError::invalid(
            "invalid_field",
            "`user_id`: 1-128 characters of letters, digits and - _ . : @",
        ));
    }
    let link = create_link_code(state.docs()?.as_ref(), &user_id)
        .await
        .map_err(ApiError::store)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "code": link.code,
            "expires_at": rfc3339_ms(link.expires_ms),
            "command": format!("/start {}", link.code),
        })),
    ))
}
