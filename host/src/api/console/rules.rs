//! Rules: a page at a time (`GET /api/v1/rules?limit=&offset=`'s handler, read through
//! the stores' rule indexes), filtered by user and symbol; enable and disable through
//! `PATCH /api/v1/rules/{id}`'s handler.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::super::{ApiState, rules as api};
use super::{Ctx, after_action, button_form, cell, error_box, page_response, query, st, urlencode};

/// Rules a console page shows.
pub const PAGE: usize = 50;

#[derive(Deserialize, Default)]
pub struct RulesQuery {
    user_id: Option<String>,
    symbol: Option<String>,
    offset: Option<usize>,
    msg: Option<String>,
}

pub async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<RulesQuery>,
) -> Response {
    let ctx = Ctx::from(&state, &headers, q.msg.clone());
    let user = q.user_id.clone().filter(|s| !s.is_empty());
    let symbol = q.symbol.clone().filter(|s| !s.is_empty());
    let offset = q.offset.unwrap_or(0);
    let result = match query::<api::ListQuery>(json!({
        "user_id": user, "symbol": symbol, "limit": PAGE, "offset": offset,
    })) {
        Ok(qq) => api::list(st(&state), qq).await.map(|axum::Json(v)| v),
        Err(e) => Err(e),
    };
    let filters = format!(
        "user_id={}&symbol={}",
        urlencode(user.as_deref().unwrap_or("")),
        urlencode(symbol.as_deref().unwrap_or(""))
    );
    let here = format!("/ui/rules?{filters}&offset={offset}");
    page_response(
        "Rules",
        "/ui/rules",
        &ctx,
        html! {
            form.filters method="get" action="/ui/rules" {
                label { "user" input name="user_id" value=(user.as_deref().unwrap_or("")); }
                label { "symbol" input name="symbol" value=(symbol.as_deref().unwrap_or("")); }
                button type="submit" { "Filter" }
            }
            @match &result {
                Err(e) => (error_box(e)),
                Ok(v) => {
                    @let empty = Vec::new();
                    @let rules = v["rules"].as_array().unwrap_or(&empty);
                    @if rules.is_empty() { p.muted { "No rules here." } }
                    @else {
                        table #rules {
                            tr { th { "id" } th { "user" } th { "symbol" } th { "condition" } th { "trigger" }
                                 th { "state" } th { "last fired" } th { "note" } th { "" } }
                            @for r in rules {
                                @let id = r["id"].as_str().unwrap_or("");
                                @let enabled = r["enabled"].as_bool().unwrap_or(true);
                                tr class=[(!enabled).then_some("warn")] data-rule=(id) {
                                    td.mono { (id) }
                                    td { (cell(&r["user_id"])) }
                                    td { (cell(&r["symbol"])) }
                                    td { (cell(&r["condition"])) }
                                    td { (cell(&r["trigger"])) }
                                    td { span class=(format!("badge {}", r["state"].as_str().unwrap_or(""))) { (cell(&r["state"])) } }
                                    td { (cell(&r["last_fired_at"])) }
                                    td { (cell(&r["note"])) }
                                    td {
                                        @let action = format!("/ui/rules/{}/enabled?enabled={}&back={}", urlencode(id), !enabled, urlencode(&here));
                                        (button_form(&action, &ctx, if enabled { "Disable" } else { "Enable" }, "secondary"))
                                    }
                                }
                            }
                        }
                    }
                    div.pager {
                        @if offset > 0 {
                            a href=(format!("/ui/rules?{filters}&offset={}", offset.saturating_sub(PAGE))) { "← previous" }
                        }
                        span.muted { "rules " (offset + 1) "–" (offset + rules.len()) }
                        @if let Some(next) = v["next_offset"].as_u64() {
                            a #next href=(format!("/ui/rules?{filters}&offset={next}")) { "next →" }
                        }
                    }
                }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct EnabledQuery {
    enabled: bool,
    back: Option<String>,
}

/// Enable or disable one rule: the API's PATCH handler with `{"enabled": ...}`.
pub async fn set_enabled(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<EnabledQuery>,
) -> Response {
    // The guard checked the form's CSRF token; the form has nothing else.
    let patch = Bytes::from(json!({ "enabled": q.enabled }).to_string());
    let outcome = api::patch(st(&state), Path(id.clone()), patch)
        .await
        .map(|_| {
            format!(
                "rule {id} {}",
                if q.enabled { "enabled" } else { "disabled" }
            )
        });
    after_action(q.back.as_deref().unwrap_or("/ui/rules"), outcome)
}
