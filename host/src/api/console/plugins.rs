//! Plugins: identity, state, calls, errors, latency, last error; the reload button
//! (`POST /api/v1/plugins/reload`'s handler). Quarantined and failed plugins stand out.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use serde_json::Value;

use super::super::{ApiState, plugins as api};
use super::{Ctx, Flash, after_action, button_form, cell, page_response, st};

pub async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Response {
    let ctx = Ctx::from(&state, &headers, flash.msg);
    let axum::Json(list) = api::list(st(&state)).await;
    let empty = Vec::new();
    let plugins = list["plugins"].as_array().unwrap_or(&empty);
    let us = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "–".to_string(), |u| format!("{u:.0} µs"))
    };
    page_response(
        "Plugins",
        "/ui/plugins",
        &ctx,
        html! {
            p { (button_form("/ui/plugins/reload", &ctx, "Reload all plugins", "")) " "
                span.muted { "Rescans the plugin folder, reloads every file and clears quarantine." } }
            table #plugins {
                tr { th { "name" } th { "version" } th { "kind" } th { "file" } th { "sha256" } th { "state" }
                     th { "calls" } th { "errors" } th { "p50" } th { "p99" } th { "last error" } }
                @for p in plugins {
                    @let state_name = p["state"].as_str().unwrap_or("");
                    tr class=[match state_name { "quarantined" | "failed" => Some("bad"), _ => None }] data-plugin=(p["name"].as_str().unwrap_or("")) {
                        td { strong { (cell(&p["name"])) } }
                        td { (cell(&p["version"])) }
                        td { (cell(&p["kind"])) }
                        td.mono { (cell(&p["file"])) }
                        td.mono { (p["sha256"].as_str().map_or("–", |s| &s[..s.len().min(16)])) }
                        td { span class=(format!("badge {state_name}")) { (state_name) } }
                        td { (cell(&p["calls"])) }
                        td { (cell(&p["errors"])) }
                        td { (us(&p["p50_us"])) }
                        td { (us(&p["p99_us"])) }
                        td.mono { (cell(if p["last_error"].is_null() { &p["last_load_error"] } else { &p["last_error"] })) }
                    }
                }
            }
        },
    )
}

pub async fn reload(State(state): State<ApiState>) -> Response {
    let outcome = api::reload(st(&state)).await.map(|axum::Json(v)| {
        let n = v["plugins"].as_array().map_or(0, Vec::len);
        format!("reloaded: {n} plugins")
    });
    after_action("/ui/plugins", outcome)
}
