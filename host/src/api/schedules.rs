//! `/api/v1/schedules`: the scheduler's schedules with their next and last run and
//! state, recent runs, run-now, and create / change / pause / resume / delete for
//! API-made ones (`[[schedules]]` from the config file are read-only here, as scrape
//! targets from the config are).
//!
//! Everything goes through the shared store and document store (`scheduler::service`),
//! so the routes work in a process without the scheduler worker, and a run-now asked of
//! any host runs once. A change made here is signalled to every host, which picks it up
//! at once (this one) or within `[scheduler] refresh_ms` (the others).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::scheduler::catalog::{self, CatalogError, Definition};
use crate::scheduler::claim::ScheduleState;
use crate::scheduler::{history, service};
use crate::util::{now_ms, rfc3339_ms};

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> ApiError {
        match e {
            CatalogError::Invalid(f) => ApiError::invalid("invalid_field", f.to_string()),
            CatalogError::Syntax(_) => ApiError::invalid("invalid_json", e.to_string()),
            CatalogError::Exists(_) | CatalogError::Conflict(_) => {
                ApiError::conflict(e.to_string())
            }
            CatalogError::ReadOnly(_) => ApiError::conflict_because("read_only", e.to_string()),
            CatalogError::NotFound(_) => ApiError::not_found(e.to_string()),
            CatalogError::Store(e) => ApiError::store(e),
        }
    }
}

fn config_names(state: &ApiState) -> Vec<String> {
    state
        .services
        .schedules
        .iter()
        .map(|d| d.name().to_string())
        .collect()
}

/// A schedule as the API shows it: its spec, origin, state, next and last run, and the
/// occurrences taken and not finished.
fn view(d: &Definition, st: Option<&ScheduleState>) -> Value {
    let spec = &d.schedule.spec;
    let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
    let running = st.is_some_and(ScheduleState::running);
    // Paused wins over running: a run that started before the pause still finishes (it shows
    // under `in_flight`), but the schedule itself is paused the moment the call returns.
    let state = if !spec.enabled {
        "paused"
    } else if running {
        "running"
    } else {
        "active"
    };
    let next = if spec.enabled {
        st.and_then(|s| s.next_ms)
            .or_else(|| d.schedule.timing.next_after(now_ms()))
            .map(|t| rfc3339_ms(d.schedule.planned_ms(t)))
    } else {
        None
    };
    let last = st.and_then(|s| s.last.as_ref()).map(|l| {
        json!({"id": l.id, "scheduled_at": rfc3339_ms(l.occ_ms), "finished_at": rfc3339_ms(l.finished_ms),
            "attempt": l.attempt, "outcome": l.outcome})
    });
    let in_flight: Vec<Value> = st
        .map(|s| {
            s.runs
                .iter()
                .map(|c| {
                    let mut r = json!({"id": c.id, "scheduled_at": rfc3339_ms(c.occ_ms),
                        "trigger": c.trigger.as_str(), "attempt": c.attempt,
                        "state": if c.lease.is_some() { "running" } else { "waiting" }});
                    if let Some(l) = &c.lease {
                        r["host"] = json!(l.host);
                        r["started_at"] = json!(rfc3339_ms(l.started_ms));
                    } else if c.not_before_ms > 0 {
                        r["not_before"] = json!(rfc3339_ms(c.not_before_ms));
                    }
                    if let Some(e) = &c.last_error {
                        r["last_error"] = json!(e);
                    }
                    r
                })
                .collect()
        })
        .unwrap_or_default();
    if let Value::Object(o) = &mut v {
        o.insert("origin".into(), json!(d.origin.as_str()));
        o.insert("state".into(), json!(state));
        o.insert("next_run_at".into(), json!(next));
        o.insert("last_run".into(), json!(last));
        o.insert("in_flight".into(), json!(in_flight));
        if let Some(c) = d.created_ms {
            o.insert("created_at".into(), json!(rfc3339_ms(c)));
        }
    }
    v
}

async fn definition(state: &ApiState, name: &str) -> Result<Definition, ApiError> {
    if let Some(d) = state.services.schedules.iter().find(|d| d.name() == name) {
        return Ok(d.clone());
    }
    match catalog::api_definition(state.docs()?.as_ref(), name).await {
        Ok(Some((d, _))) => Ok(d),
        Ok(None) => Err(ApiError::not_found(format!("no schedule named `{name}`"))),
        Err(e) => Err(ApiError::store(e)),
    }
}

async fn state_of(state: &ApiState, name: &str) -> Result<Option<ScheduleState>, ApiError> {
    let (mut states, _) = service::states(state.store()?.as_ref(), &[name.to_string()])
        .await
        .map_err(ApiError::store)?;
    Ok(states.pop().flatten())
}

/// Tell every host (this one at once) that something changed.
async fn changed(state: &ApiState) {
    if let Ok(store) = state.store()
        && let Err(e) = service::signal(store.as_ref()).await
    {
        tracing::warn!(error = %format!("{e:#}"), "could not signal a schedule change; hosts see it at their next refresh");
    }
    if let Some(s) = &state.services.scheduler {
        s.wake();
    }
}

pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let defs = service::definitions(&state.services.schedules, state.docs()?.as_ref())
        .await
        .map_err(ApiError::store)?;
    let names: Vec<String> = defs.iter().map(|d| d.name().to_string()).collect();
    let (states, _) = service::states(state.store()?.as_ref(), &names)
        .await
        .map_err(ApiError::store)?;
    let views: Vec<Value> = defs
        .iter()
        .zip(&states)
        .map(|(d, s)| view(d, s.as_ref()))
        .collect();
    Ok(Json(json!({"schedules": views})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    runs: Option<usize>,
}

pub async fn get(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(q): Query<GetQuery>,
) -> Result<Json<Value>, ApiError> {
    let d = definition(&state, &name).await?;
    let st = state_of(&state, &name).await?;
    let limit = q.runs.unwrap_or(20).clamp(1, 500);
    let mut runs = history::recent(state.docs()?.as_ref(), &name, limit)
        .await
        .map_err(ApiError::store)?;
    for r in &mut runs {
        r.remove("_rev");
        if let Some(id) = r.remove("_id") {
            r.insert("record_id".into(), id);
        }
    }
    let mut v = view(&d, st.as_ref());
    v["recent_runs"] = json!(runs);
    Ok(Json(v))
}

pub async fn create(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let d = catalog::create(
        state.docs()?.as_ref(),
        &body,
        &config_names(&state),
        now_ms(),
    )
    .await?;
    changed(&state).await;
    Ok((StatusCode::CREATED, Json(view(&d, None))))
}

pub async fn patch(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let d = catalog::patch(
        state.docs()?.as_ref(),
        &name,
        &body,
        &config_names(&state),
        now_ms(),
    )
    .await?;
    changed(&state).await;
    let st = state_of(&state, &name).await?;
    Ok(Json(view(&d, st.as_ref())))
}

async fn set_enabled(state: &ApiState, name: &str, enabled: bool) -> Result<Json<Value>, ApiError> {
    let body = json!({ "enabled": enabled }).to_string();
    let d = catalog::patch(
        state.docs()?.as_ref(),
        name,
        body.as_bytes(),
        &config_names(state),
        now_ms(),
    )
    .await?;
    changed(state).await;
    let st = state_of(state, name).await?;
    Ok(Json(view(&d, st.as_ref())))
}

pub async fn pause(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&state, &name, false).await
}

pub async fn resume(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&state, &name, true).await
}

pub async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    catalog::delete(state.docs()?.as_ref(), &name, &config_names(&state)).await?;
    service::forget(state.store()?.as_ref(), &name)
        .await
        .map_err(ApiError::store)?;
    if let Some(s) = &state.services.scheduler {
        s.wake();
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn run_now(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    definition(&state, &name).await?;
    let id = service::run_now(state.store()?.as_ref(), &name)
        .await
        .map_err(ApiError::store)?;
    if let Some(s) = &state.services.scheduler {
        s.wake();
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"schedule": name, "run_id": id, "state": "waiting"})),
    ))
}
