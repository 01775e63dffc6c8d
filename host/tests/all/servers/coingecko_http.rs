//! A local stand-in for CoinGecko's `GET /api/v3/simple/price` (REFERENCE.md, "Price feeds").
//!
//! It answers in CoinGecko's shape, only for the ids asked for (unknown ids are left out, as
//! CoinGecko does), and with `usd_24h_change` / `last_updated_at` only when the query asks for
//! them. A test sets prices, makes the next requests fail with 429 (optionally with
//! `Retry-After`), or serves a malformed body, and reads back every request with its time and
//! demo key, e.g. to check the client's polling interval and backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::task::AbortHandle;

/// The path the client polls.
pub const SIMPLE_PRICE_PATH: &str = "/api/v3/simple/price";

/// CoinGecko's body for a 429 (demo and public plans).
pub const RATE_LIMIT_BODY: &str = r#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit. Please visit https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate limits."}}"#;

pub struct CoinGeckoStandIn {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<Inner>>,
    server: AbortHandle,
}

#[derive(Default)]
struct Inner {
    prices: HashMap<String, Price>,
    fail_429: usize,
    retry_after_secs: Option<u64>,
    body_override: Option<String>,
    requests: Vec<(Instant, String, Option<String>)>,
}

#[derive(Clone, Copy)]
struct Price {
    usd: f64,
    change_24h: f64,
    last_updated_at: i64,
}

impl CoinGeckoStandIn {
    /// Serve on `127.0.0.1` on a port the kernel picks. Must be called inside a tokio runtime.
    pub async fn start() -> CoinGeckoStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the CoinGecko stand-in");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(Inner::default()));
        // One handler for every path, so requests to a wrong path are recorded too and show up
        // in a failing test's `requests()`.
        let router = Router::new().fallback(handle).with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("CoinGecko stand-in");
        })
        .abort_handle();
        CoinGeckoStandIn {
            addr,
            state,
            server,
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:P`; the client appends `/api/v3/simple/price?...`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Set (or replace) a coin's USD price, with a 24 h change of 0.
    pub fn set_price(&self, id: &str, usd: f64, last_updated_at: i64) {
        self.set_price_with_change(id, usd, 0.0, last_updated_at);
    }

    /// Set (or replace) a coin's USD price and 24 h change in percent.
    pub fn set_price_with_change(&self, id: &str, usd: f64, change_24h: f64, last_updated_at: i64) {
        self.state.lock().prices.insert(
            id.to_owned(),
            Price {
                usd,
                change_24h,
                last_updated_at,
            },
        );
    }

    /// Forget a coin: it is left out of answers from now on, as an unknown id would be.
    pub fn remove_price(&self, id: &str) {
        self.state.lock().prices.remove(id);
    }

    /// The next `n` requests get 429 with CoinGecko's error body, and a `Retry-After` header
    /// (seconds) when given.
    pub fn fail_next_with_429(&self, n: usize, retry_after_secs: Option<u64>) {
        let mut state = self.state.lock();
        state.fail_429 = n;
        state.retry_after_secs = retry_after_secs;
    }

    /// While `Some`, every successful answer is this body verbatim (status 200, JSON content
    /// type), e.g. a truncated or malformed document; `None` goes back to real answers.
    pub fn set_body_override(&self, body: Option<String>) {
        self.state.lock().body_override = body;
    }

    /// Every request so far, in order: when it arrived, its path and query as sent, and its
    /// `x-cg-demo-api-key` header.
    pub fn requests(&self) -> Vec<(Instant, String, Option<String>)> {
        self.state.lock().requests.clone()
    }
}

impl Drop for CoinGeckoStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(State(state): State<Arc<Mutex<Inner>>>, request: Request) -> Response {
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let api_key = request
        .headers()
        .get("x-cg-demo-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    let mut state = state.lock();
    state
        .requests
        .push((Instant::now(), path_and_query, api_key));

    // The rate limit counts every request, whatever its path, as CoinGecko's does.
    if state.fail_429 > 0 {
        state.fail_429 -= 1;
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "application/json")],
            RATE_LIMIT_BODY,
        )
            .into_response();
        if let Some(secs) = state.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return response;
    }

    if request.uri().path() != SIMPLE_PRICE_PATH {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"Incorrect path. Please check https://www.coingecko.com/api/documentation"}"#,
        )
            .into_response();
    }
    if let Some(body) = &state.body_override {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body.clone(),
        )
            .into_response();
    }

    // axum's decoding, so percent-encoded commas between ids (`bitcoin%2Cethereum`) work too.
    let query = Query::<HashMap<String, String>>::try_from_uri(request.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let flag = |name: &str| query.get(name).is_some_and(|v| v == "true");
    let list = |name: &str| -> Vec<String> {
        query
            .get(name)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let wants_usd = list("vs_currencies").iter().any(|c| c == "usd");
    let mut answer = Map::new();
    for id in list("ids") {
        let Some(price) = state.prices.get(&id) else {
            continue;
        };
        let mut fields = Map::new();
        // Only USD is known here; other currencies are left out, as with a coin that has no quote.
        if wants_usd {
            fields.insert("usd".into(), json!(price.usd));
            if flag("include_24hr_change") {
                fields.insert("usd_24h_change".into(), json!(price.change_24h));
            }
        }
        if flag("include_last_updated_at") {
            fields.insert("last_updated_at".into(), json!(price.last_updated_at));
        }
        answer.insert(id, Value::Object(fields));
    }
    axum::Json(Value::Object(answer)).into_response()
}
