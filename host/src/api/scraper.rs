//! `/api/v1/scraper`: scrape targets (list, create, delete) and the accounts view
//! (docs/design/x-scraper.md §3.8, §4.1).
//!
//! Targets live in the document store and these routes read and write them there, so
//! they work in a process that does not run the x-scraper worker (an API-only host, or
//! one with the worker disabled); a worker in this process is woken after a create, so
//! the new target runs now rather than at the next tick. The accounts view is the
//! worker's in-memory pool and needs the worker: 503 without it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::rules::parse_body;
use super::{ApiError, ApiState};
use crate::scraper::config::ScraperConfig;
use crate::scraper::targets::{
    self, TargetDefaults, TargetKind, TargetOpError, TargetRecord, TargetSpec,
};
use crate::util::{now_ms, rfc3339_ms};

impl From<TargetOpError> for ApiError {
    fn from(e: TargetOpError) -> ApiError {
        match e {
            TargetOpError::Invalid(f) => ApiError::invalid("invalid_field", f.to_string()),
            TargetOpError::Exists(_) | TargetOpError::NotDeletable { .. } => {
                ApiError::conflict(e.to_string())
            }
            TargetOpError::NotFound(_) => ApiError::not_found(e.to_string()),
            TargetOpError::Store(e) => ApiError::store(e),
        }
    }
}

/// A target as the API shows it: the stored record with `id` for `_id`, without the
/// backend's `_rev`, plus `next_run_at`.
pub fn view(r: &TargetRecord) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        if let Some(id) = o.remove("_id") {
            o.insert("id".into(), id);
        }
        o.remove("_rev");
        o.insert("next_run_at".into(), json!(rfc3339_ms(r.next_run_ms)));
    }
    v
}

/// `[scraper]`'s settings for targets that do not set their own: from the configuration
/// this process was started with, else the worker's, else the built-in defaults.
fn defaults(state: &ApiState) -> TargetDefaults {
    if let Some(d) = state.services.scraper_defaults {
        return d;
    }
    match &state.services.scraper {
        Some(h) => crate::scraper::worker::target_defaults(h.config()),
        None => crate::scraper::worker::target_defaults(&ScraperConfig::default()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    kind: Option<String>,
}

pub async fn list(
    State(state): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let kind = match q.kind.as_deref() {
        None => None,
        Some("user") => Some(TargetKind::User),
        Some("search") => Some(TargetKind::Search),
        Some(other) => {
            return Err(ApiError::invalid(
                "invalid_field",
                format!("`kind`: `{other}` is not a target kind; use `user` or `search`"),
            ));
        }
    };
    let found = targets::list(state.docs()?.as_ref(), kind)
        .await
        .map_err(ApiError::store)?;
    let views: Vec<Value> = found.iter().map(view).collect();
    Ok(Json(json!({"targets": views})))
}

pub async fn create(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let spec: TargetSpec = parse_body(&body)?;
    let record =
        targets::create_api_target(state.docs()?.as_ref(), &spec, &defaults(&state), now_ms())
            .await?;
    if let Some(worker) = &state.services.scraper {
        worker.wake();
    }
    Ok((StatusCode::CREATED, Json(view(&record))))
}

pub async fn delete(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    targets::delete(state.docs()?.as_ref(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn accounts(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let worker = state.services.scraper.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "the x-scraper worker is not running in this process; add `x-scraper` to [workers] enabled",
        )
    })?;
    Ok(Json(worker.pool().view().await))
}
