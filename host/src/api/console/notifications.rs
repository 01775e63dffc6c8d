//! Notifications: look one up by id (`GET /api/v1/notifications/{id}`'s handler) and see
//! each channel's delivery with every attempt. Targets are shown as the API shows them
//! (a webhook's or push endpoint's origin, never its path).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::super::{ApiState, notifications as api};
use super::{Ctx, cell, error_box, page_response, st};

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    id: Option<String>,
    msg: Option<String>,
}

pub async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<SearchQuery>,
) -> Response {
    let ctx = Ctx::from(&state, &headers, q.msg.clone());
    let id = q.id.clone().filter(|s| !s.trim().is_empty());
    let found = match &id {
        Some(id) => Some(
            api::get(st(&state), Path(id.trim().to_string()))
                .await
                .map(|axum::Json(v)| v),
        ),
        None => None,
    };
    page_response(
        "Notifications",
        "/ui/notifications",
        &ctx,
        html! {
            form.filters method="get" action="/ui/notifications" {
                label { "notification id" input name="id" value=(id.as_deref().unwrap_or("")) size="40"; }
                button type="submit" { "Find" }
            }
            @match &found {
                None => p.muted { "Enter a notification's id (an alert's id, or the id a producer gave)." },
                Some(Err(e)) => (error_box(e)),
                Some(Ok(n)) => {
                    table {
                        tr { th { "id" } td.mono { (cell(&n["id"])) } }
                        tr { th { "status" } td { span class=(format!("badge {}", n["status"].as_str().unwrap_or(""))) { (cell(&n["status"])) } } }
                        tr { th { "received" } td { (cell(&n["received_at"])) } }
                        tr { th { "source" } td { (cell(&n["source"])) } }
                    }
                    h2 { "Deliveries" }
                    @for d in n["deliveries"].as_array().into_iter().flatten() {
                        h3 { (cell(&d["channel"])) " → " span.mono { (cell(&d["target"])) } " "
                             span class=(format!("badge {}", d["state"].as_str().unwrap_or(""))) { (cell(&d["state"])) } }
                        p.muted { "attempts " (cell(&d["attempts"])) ", replays " (cell(&d["replays"]))
                                  @if !d["last_error"].is_null() { ", last error: " (cell(&d["last_error"])) } }
                        table.attempts {
                            tr { th { "attempt" } th { "host" } th { "started" } th { "ended" } th { "outcome" } th { "error" } }
                            @for h in d["history"].as_array().into_iter().flatten() {
                                tr { td { (cell(&h["attempt"])) } td { (cell(&h["host"])) } td { (cell(&h["started_at"])) }
                                     td { (cell(&h["ended_at"])) } td { (cell(&h["outcome"])) } td.mono { (cell(&h["error"])) } }
                            }
                        }
                    }
                }
            }
        },
    )
}
