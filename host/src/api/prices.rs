//! `GET /api/v1/prices/{symbol}`: the latest stored price, its source, its age, and
//! whether it is stale (its source is stale, or it is older than the source's
//! `stale_after`). `?history=N` adds the last N points of the recent history.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::market::health::SourceState;
use crate::util::{now_ms, rfc3339_ms};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceQuery {
    history: Option<usize>,
}

pub async fn get(
    State(state): State<ApiState>,
    Path(symbol): Path<String>,
    Query(q): Query<PriceQuery>,
) -> Result<Json<Value>, ApiError> {
    let symbol = symbol.to_ascii_uppercase();
    let store = state.store()?;
    let p = store
        .latest_price(&symbol)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| ApiError::not_found(format!("no price for `{symbol}` yet")))?;
    let age_ms = now_ms() - p.ts_ms;
    let health = state
        .services
        .market
        .as_ref()
        .and_then(|m| m.source(&p.source).cloned());
    let (source_state, stale) = match &health {
        Some(h) => {
            let st = h.state();
            let live = h.kind != "replay";
            (
                Some(st),
                st == SourceState::Stale || (live && age_ms > h.stale_after_ms),
            )
        }
        None => (None, false),
    };
    let mut v = json!({
        "symbol": p.symbol,
        "price": p.price,
        "ts": rfc3339_ms(p.ts_ms),
        "ts_ms": p.ts_ms,
        "age_ms": age_ms,
        "source": p.source,
        "source_state": source_state,
        "stale": stale,
    });
    if let Some(n) = q.history {
        let hist = store
            .price_history(&symbol, n.min(10_000))
            .await
            .map_err(ApiError::store)?;
        v["history"] = json!(
            hist.iter()
                .map(|h| json!({"price": h.price, "ts_ms": h.ts_ms, "source": h.source}))
                .collect::<Vec<_>>()
        );
    }
    Ok(Json(v))
}
