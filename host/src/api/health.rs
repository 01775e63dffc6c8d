//! `/healthz` (the process answers) and `/readyz` (plugins loaded, store reachable).
//!
//! A store that cannot be reached is named by backend (`redis`, `mongodb`) only; what its
//! server or driver said is logged, not answered (it can hold addresses and internals).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, ApiState};

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let loaded = state.runtime.loaded_names();
    let failed: Vec<String> = state
        .runtime
        .statuses()
        .into_iter()
        .filter(|s| s.state != crate::runtime::State::Active)
        .map(|s| s.name)
        .collect();
    if loaded.is_empty() {
        return Err(ApiError::unavailable("no plugin is loaded yet"));
    }
    if let Some(store) = &state.services.store
        && let Err(e) = store.ping().await
    {
        tracing::warn!(backend = store.backend(), error = %format!("{e:#}"), "readyz: the store is not reachable");
        return Err(ApiError::unavailable_because(
            "store_unavailable",
            &format!("the {} store is not reachable", store.backend()),
        ));
    }
    if let Some(docs) = &state.services.docs
        && let Err(e) = docs.ping().await
    {
        tracing::warn!(backend = docs.backend(), error = %format!("{e:#}"), "readyz: the document store is not reachable");
        return Err(ApiError::unavailable_because(
            "documents_unavailable",
            &format!("the {} document store is not reachable", docs.backend()),
        ));
    }
    Ok(Json(
        json!({"status": "ready", "plugins": loaded, "not_active": failed}),
    ))
}
