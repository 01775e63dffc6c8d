//! Dead letters of notifications and of events, newest first (`GET
//! /api/v1/dead-letters`'s handler, at most [`LIMIT`] of each), with replay (`POST
//! /api/v1/dead-letters/{id}/replay`'s handler) and, for events, purge (`DELETE
//! /api/v1/dead-letters/{id}`'s handler). A notification's dead letter stays with its
//! delivery history, so the API, and so the console, purges only events'.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::super::{ApiState, events as events_api, notifications as api};
use super::{Ctx, after_action, button_form, cell, listing, page_response, query, st, urlencode};

/// Dead letters a page lists.
pub const LIMIT: usize = 100;

#[derive(Deserialize, Default)]
pub struct DeadQuery {
    source: Option<String>,
    msg: Option<String>,
}

pub async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<DeadQuery>,
) -> Response {
    let ctx = Ctx::from(&state, &headers, q.msg.clone());
    let source = q
        .source
        .clone()
        .filter(|s| s == "notifications" || s == "events");
    let result = match query::<api::DeadLetterQuery>(json!({ "source": source, "limit": LIMIT })) {
        Ok(qq) => api::dead_letters(st(&state), qq)
            .await
            .map(|axum::Json(v)| v),
        Err(e) => Err(e),
    };
    let here = format!(
        "/ui/dead-letters?source={}",
        urlencode(source.as_deref().unwrap_or(""))
    );
    page_response(
        "Dead letters",
        "/ui/dead-letters",
        &ctx,
        html! {
            form.filters method="get" action="/ui/dead-letters" {
                label { "source"
                    select name="source" {
                        option value="" selected[source.is_none()] { "both" }
                        option value="notifications" selected[source.as_deref() == Some("notifications")] { "notifications" }
                        option value="events" selected[source.as_deref() == Some("events")] { "events" }
                    }
                }
                button type="submit" { "Show" }
            }
            (listing(&result, "dead_letters", "No dead letters.", |items| html! {
                p.muted { "The newest " (items.len()) " (at most " (LIMIT) ")." }
                table #dead-letters {
                    tr { th { "id" } th { "kind" } th { "what" } th { "reason" } th { "last error" } th { "attempts" } th { "dead since" } th { "" } }
                    @for d in items {
                        @let id = d["id"].as_str().unwrap_or("");
                        @let is_event = d["kind"] == "event";
                        tr data-dead-letter=(id) {
                            td.mono { (id) }
                            td { (cell(&d["kind"])) }
                            td {
                                @if is_event { "stream " (cell(&d["stream"])) }
                                @else { a href=(format!("/ui/notifications?id={}", urlencode(d["notification_id"].as_str().unwrap_or("")))) { (cell(&d["notification_id"])) }
                                        " · " (cell(&d["channel"])) " → " span.mono { (cell(&d["target"])) } }
                            }
                            td { (cell(&d["reason"])) }
                            td.mono { (cell(&d["last_error"])) }
                            td { (cell(&d["attempts"])) }
                            td { (cell(&d["dead_at"])) }
                            td {
                                (button_form(&format!("/ui/dead-letters/{}/replay?back={}", urlencode(id), urlencode(&here)), &ctx, "Replay", ""))
                                @if is_event {
                                    " " (button_form(&format!("/ui/dead-letters/{}/purge?back={}", urlencode(id), urlencode(&here)), &ctx, "Purge", "danger"))
                                }
                            }
                        }
                    }
                }
            }))
        },
    )
}

#[derive(Deserialize, Default)]
pub struct Back {
    back: Option<String>,
}

pub async fn replay(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(b): Query<Back>,
) -> Response {
    let outcome = api::replay(st(&state), Path(id.clone()))
        .await
        .map(|_| format!("replayed {id}"));
    after_action(b.back.as_deref().unwrap_or("/ui/dead-letters"), outcome)
}

pub async fn purge(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(b): Query<Back>,
) -> Response {
    let outcome = events_api::purge(st(&state), Path(id.clone()))
        .await
        .map(|_| format!("purged {id}"));
    after_action(b.back.as_deref().unwrap_or("/ui/dead-letters"), outcome)
}
