//! Schedules (next and last run; run now, pause, resume through the API's own handlers)
//! and event listeners (stream length, pending entries: `GET /api/v1/listeners`).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;

use super::super::{ApiError, ApiState, events as events_api, schedules as api};
use super::{Ctx, Flash, after_action, button_form, cell, listing, page_response, st, urlencode};

pub async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Response {
    let ctx = Ctx::from(&state, &headers, flash.msg);
    let schedules = api::list(st(&state)).await.map(|axum::Json(v)| v);
    let listeners = events_api::listeners(st(&state))
        .await
        .map(|axum::Json(v)| v);
    page_response(
        "Schedules & listeners",
        "/ui/schedules",
        &ctx,
        html! {
            h2 { "Schedules" }
            (listing(&schedules, "schedules", "No schedules.", |list| html! {
                table #schedules {
                    tr { th { "name" } th { "plugin" } th { "when" } th { "state" } th { "next run" } th { "last run" } th { "in flight" } th { "" } }
                    @for s in list {
                        @let name = s["name"].as_str().unwrap_or("");
                        @let state_name = s["state"].as_str().unwrap_or("");
                        @let enc = urlencode(name);
                        tr data-schedule=(name) {
                            td { strong { (name) } " " span.muted { (cell(&s["origin"])) } }
                            td { (cell(&s["plugin"])) }
                            td.mono { (cell(if s["cron"].is_null() { &s["every"] } else { &s["cron"] })) }
                            td { span class=(format!("badge {state_name}")) { (state_name) } }
                            td { (cell(&s["next_run_at"])) }
                            td { @if s["last_run"].is_null() { span.muted { "never" } }
                                 @else { (cell(&s["last_run"]["finished_at"])) " " (cell(&s["last_run"]["outcome"])) } }
                            td { (s["in_flight"].as_array().map_or(0, Vec::len)) }
                            td {
                                (button_form(&format!("/ui/schedules/{enc}/run"), &ctx, "Run now", ""))
                                " "
                                @if state_name == "paused" {
                                    (button_form(&format!("/ui/schedules/{enc}/resume"), &ctx, "Resume", "secondary"))
                                } @else {
                                    (button_form(&format!("/ui/schedules/{enc}/pause"), &ctx, "Pause", "secondary"))
                                }
                            }
                        }
                    }
                }
            }))
            h2 { "Listeners" }
            (listing(&listeners, "listeners", "No listeners configured.", |list| html! {
                table #listeners {
                    tr { th { "name" } th { "stream" } th { "group" } th { "plugin" } th { "stream length (lag)" } th { "pending" } th { "runs here" } th { "events here" } }
                    @for l in list {
                        tr {
                            td { (cell(&l["name"])) } td.mono { (cell(&l["stream"])) } td { (cell(&l["group"])) }
                            td { (cell(&l["plugin"])) } td { (cell(&l["stream_length"])) } td { (cell(&l["pending"])) }
                            td { (cell(&l["running_here"])) } td { (cell(&l["this_host"]["events"])) }
                        }
                    }
                }
            }))
        },
    )
}

/// Run now, pause or resume: the API's handler of the same name.
pub async fn act(
    State(state): State<ApiState>,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    let p = || Path(name.clone());
    let outcome = match action.as_str() {
        "run" => api::run_now(st(&state), p())
            .await
            .map(|(_, axum::Json(v))| {
                format!("{name}: run {} queued", v["run_id"].as_str().unwrap_or(""))
            }),
        "pause" => api::pause(st(&state), p())
            .await
            .map(|_| format!("{name} paused")),
        "resume" => api::resume(st(&state), p())
            .await
            .map(|_| format!("{name} resumed")),
        other => Err(ApiError::not_found(format!("no schedule action `{other}`"))),
    };
    after_action("/ui/schedules", outcome)
}
