//! Prices: the latest price of each symbol and a chart of one symbol's recent history
//! (`GET /api/v1/prices/{symbol}?history=`'s handler).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::super::{ApiError, ApiState, prices as api};
use super::{Ctx, age, cell, chart, error_box, page_response, query, st, urlencode};

/// Points of history the chart draws.
const HISTORY: usize = 300;

#[derive(Deserialize, Default)]
pub struct PricesQuery {
    symbol: Option<String>,
    msg: Option<String>,
}

pub async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<PricesQuery>,
) -> Response {
    let ctx = Ctx::from(&state, &headers, q.msg.clone());
    // One entry per configured symbol: bounded by the configuration, not by users.
    let latest = match state.store() {
        Ok(s) => s.latest_prices().await.map_err(ApiError::store),
        Err(e) => Err(e),
    };
    let mut symbols: Vec<String> = latest
        .as_ref()
        .map(|l| l.iter().map(|p| p.symbol.clone()).collect())
        .unwrap_or_default();
    symbols.sort();
    let chosen = q
        .symbol
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| symbols.first().cloned());
    let detail = match &chosen {
        Some(sym) => Some(match query(json!({ "history": HISTORY })) {
            Ok(qq) => api::get(st(&state), Path(sym.clone()), qq)
                .await
                .map(|axum::Json(v)| v),
            Err(e) => Err(e),
        }),
        None => None,
    };
    page_response(
        "Prices",
        "/ui/prices",
        &ctx,
        html! {
            @match &latest {
                Err(e) => (error_box(e)),
                Ok(list) if list.is_empty() => p.muted { "No price stored yet." },
                Ok(list) => {
                    table #prices {
                        tr { th { "symbol" } th { "price" } th { "source" } th { "age" } }
                        @for p in list {
                            tr {
                                td { a href=(format!("/ui/prices?symbol={}", urlencode(&p.symbol))) { (p.symbol) } }
                                td { (p.price) } td { (p.source) }
                                td { (age(crate::util::now_ms() - p.ts_ms)) }
                            }
                        }
                    }
                }
            }
            @if let (Some(sym), Some(detail)) = (&chosen, &detail) {
                h2 { (sym) }
                @match detail {
                    Err(e) => (error_box(e)),
                    Ok(v) => {
                        p { "Latest " strong { (cell(&v["price"])) } " from " (cell(&v["source"])) " at " (cell(&v["ts"]))
                            @if v["stale"].as_bool() == Some(true) { " " span.badge.stale { "stale" } } }
                        @let points: Vec<(i64, f64)> = v["history"].as_array().map(|h| h.iter().filter_map(|p| Some((p["ts_ms"].as_i64()?, p["price"].as_f64()?))).collect()).unwrap_or_default();
                        (chart::line(&points, &format!("{sym}: the last {} prices", points.len())))
                    }
                }
            }
        },
    )
}
