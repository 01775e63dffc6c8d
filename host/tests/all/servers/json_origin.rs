//! A local HTTP server for plugins' outbound requests: a small JSON API, redirects, large
//! bodies and a route that never answers. It runs on a runtime of its own, so tests that
//! call plugins synchronously can use it from any thread.
//!
//! Routes:
//! - `GET /price`: `{"bitcoin":{"usd":97000.5}}`.
//! - `GET /echo`: the request's method, headers and body, as JSON.
//! - `GET /redirect?to=<url>`: `302` to `<url>` (default `/price`).
//! - `GET /big?bytes=<n>`: a JSON string body of about `n` bytes, with a `content-length`.
//! - `GET /stream?bytes=<n>`: the same, chunked (no length known in advance).
//! - `GET /hang`: accepts the request and never answers.
//!
//! Every request is counted by path, so a test can tell "refused before connecting" from
//! "refused after".

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

pub const PRICE_BODY: &str = r#"{"bitcoin":{"usd":97000.5}}"#;

pub struct JsonOrigin {
    addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl JsonOrigin {
    /// Serve on `127.0.0.1` on a port the kernel picks.
    pub fn start() -> JsonOrigin {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the JSON origin");
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the JSON origin");
        let addr = listener.local_addr().unwrap();
        let router = Router::new().fallback(handle).with_state(hits.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        JsonOrigin {
            addr,
            hits,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests seen for `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().get(path).copied().unwrap_or(0)
    }

    /// Requests seen in all.
    pub fn total_hits(&self) -> usize {
        self.hits.lock().values().sum()
    }
}

impl Drop for JsonOrigin {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn handle(
    State(hits): State<Arc<Mutex<HashMap<String, usize>>>>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let path = request.uri().path().to_string();
    *hits.lock().entry(path.clone()).or_default() += 1;
    let bytes = || -> usize {
        query
            .get("bytes")
            .and_then(|b| b.parse().ok())
            .unwrap_or(1024)
    };
    match path.as_str() {
        "/price" => ([(header::CONTENT_TYPE, "application/json")], PRICE_BODY).into_response(),
        "/echo" => {
            let method = request.method().to_string();
            let headers: serde_json::Map<String, serde_json::Value> = request
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
                    )
                })
                .collect();
            let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let echo = serde_json::json!({
                "method": method,
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            });
            axum::Json(echo).into_response()
        }
        "/redirect" => {
            let to = query.get("to").cloned().unwrap_or_else(|| "/price".into());
            (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
        }
        "/big" => {
            let body = format!("\"{}\"", "x".repeat(bytes()));
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        "/stream" => {
            let n = bytes();
            let chunks = (0..n.div_ceil(8192)).map(move |i| {
                let len = 8192.min(n - i * 8192);
                Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; len]))
            });
            Body::from_stream(futures_util::stream::iter(chunks)).into_response()
        }
        "/hang" => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
