//! `/api/v1/plugins`: status of every plugin, one plugin, and a forced rescan.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::runtime::PluginStatus;

pub async fn list(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({"plugins": state.runtime.statuses()}))
}

pub async fn get(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<PluginStatus>, ApiError> {
    state
        .runtime
        .statuses()
        .into_iter()
        .find(|s| s.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no plugin named `{name}`")))
}

/// Rescan the directory, reload every file and clear quarantine; answers when done.
pub async fn reload(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let runtime = state.runtime.clone();
    let trigger = state.rescan.clone();
    tokio::task::spawn_blocking(move || match trigger {
        Some(t) => {
            t.rescan_and_wait(true);
        }
        None => {
            runtime.rescan(true);
        }
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "plugin reload did not finish");
        ApiError::unavailable_because(
            "reload_failed",
            "the reload did not finish; the host's log has the details",
        )
    })?;
    Ok(Json(
        json!({"reloaded": true, "plugins": state.runtime.statuses()}),
    ))
}
