//! A forward HTTP proxy stand-in (docs/design/x-scraper.md §5.4), for the scraper's
//! per-account proxies: Chromium sends it absolute-form requests (`GET http://127.0.0.1:P/...`)
//! and it forwards them to the loopback stand-ins.
//!
//! - Forwarding goes through a `reqwest::Client` with `.no_proxy()` (never a proxy of the
//!   environment) and redirects off: the browser must see X's `302 → /login` itself, or the
//!   product could not tell a ban from a page. Each forwarded request gains
//!   `x-standin-proxy: <name>`, which the X stand-in records as `via_proxy`.
//! - Only `http://` to loopback hosts is forwarded. `CONNECT` (Chromium's own background
//!   traffic, e.g. `www.google.com:443`, even with background networking off) and any other
//!   host get 403 and are counted as foreign, so a test never reaches the internet.
//! - `require_credentials` makes it answer 407 with `Proxy-Authenticate: Basic realm="standin"`
//!   until `Proxy-Authorization` matches; `stop` closes the port and cuts open connections, so
//!   the browser gets `net::ERR_PROXY_CONNECTION_FAILED` rather than a silent direct connection.
//!
//! axum serves it: hyper accepts absolute-form targets and axum's fallback catches every path,
//! `CONNECT`'s empty one included.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

use super::telegram::HttpServer;

/// Headers that belong to one hop and are never passed on (RFC 9110 §7.6.1), plus the ones the
/// forwarding client and the server set themselves.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct ProxiedRequest {
    pub at: Instant,
    pub method: String,
    /// The target's authority, `127.0.0.1:P` (for `CONNECT`, what was asked for).
    pub host: String,
    /// The target's path and query.
    pub path: String,
    /// Whether a `Proxy-Authorization` header came along (right or wrong).
    pub had_auth: bool,
    /// `CONNECT`, or a host that is not loopback: refused with 403.
    pub foreign: bool,
    /// The status answered (the site's, when forwarded); 0 while unanswered.
    pub status: u16,
}

pub struct HttpProxy {
    addr: SocketAddr,
    http: Option<HttpServer>,
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    client: reqwest::Client,
    state: Mutex<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    /// The `Proxy-Authorization` value demanded, `Basic <base64(user:pass)>`.
    credentials: Option<String>,
    requests: Vec<ProxiedRequest>,
}

impl HttpProxy {
    /// Serve on `127.0.0.1` on a port the kernel picks; `name` goes into `x-standin-proxy`.
    /// Must be called inside a tokio runtime.
    pub async fn start(name: &str) -> HttpProxy {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the proxy's HTTP client");
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            client,
            state: Mutex::new(ProxyState::default()),
        });
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let http = HttpServer::start(router, "proxy stand-in").await;
        HttpProxy {
            addr: http.addr(),
            http: Some(http),
            shared,
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// `http://127.0.0.1:P`, the proxy's URL for a client (or a `proxies_file` line).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:P`.
    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    /// From now on, answer 407 unless `Proxy-Authorization` is Basic with these credentials.
    pub fn require_credentials(&self, user: &str, password: &str) {
        let token = data_encoding::BASE64.encode(format!("{user}:{password}").as_bytes());
        self.shared.state.lock().credentials = Some(format!("Basic {token}"));
    }

    /// Close the port and cut every open connection: the proxy is down from now on.
    pub fn stop(&mut self) {
        self.http = None;
    }

    pub fn is_stopped(&self) -> bool {
        self.http.is_none()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.shared.state.lock().requests.clone()
    }

    /// How many requests were forwarded to `host` (`127.0.0.1:P`, or `127.0.0.1` for any
    /// port): refused ones (407, foreign) do not count.
    pub fn count_for(&self, host: &str) -> usize {
        self.shared
            .state
            .lock()
            .requests
            .iter()
            .filter(|r| !r.foreign && r.status != 407 && r.status != 0)
            .filter(|r| r.host == host || r.host.rsplit_once(':').is_some_and(|(h, _)| h == host))
            .count()
    }

    /// How many requests were refused as foreign (`CONNECT`, hosts that are not loopback).
    pub fn foreign(&self) -> usize {
        self.shared
            .state
            .lock()
            .requests
            .iter()
            .filter(|r| r.foreign)
            .count()
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let authority = parts
        .uri
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let host_only = parts.uri.host().unwrap_or("").to_owned();
    let foreign = parts.method == Method::CONNECT
        || parts.uri.scheme_str() != Some("http")
        || !is_loopback(&host_only);
    let auth = parts
        .headers
        .get(header::PROXY_AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let index = {
        let mut state = shared.state.lock();
        state.requests.push(ProxiedRequest {
            at: Instant::now(),
            method: parts.method.to_string(),
            host: authority,
            path: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            had_auth: auth.is_some(),
            foreign,
            status: 0,
        });
        state.requests.len() - 1
    };

    let response = if foreign {
        text(
            StatusCode::FORBIDDEN,
            "the proxy stand-in forwards http:// to loopback only",
        )
    } else {
        let wanted = shared.state.lock().credentials.clone();
        if wanted.is_some() && wanted != auth {
            let mut response = text(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "proxy credentials required",
            );
            response.headers_mut().insert(
                header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"standin\""),
            );
            response
        } else {
            forward(
                &shared,
                parts.method,
                parts.uri.to_string(),
                parts.headers,
                body,
            )
            .await
        }
    };
    shared.state.lock().requests[index].status = response.status().as_u16();
    response
}

async fn forward(
    shared: &Shared,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
        return text(StatusCode::BAD_REQUEST, "unreadable request body");
    };
    let mut outgoing = HeaderMap::new();
    for (name, value) in &headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            outgoing.append(name.clone(), value.clone());
        }
    }
    outgoing.insert(
        "x-standin-proxy",
        HeaderValue::from_str(&shared.name).expect("proxy names are header-safe"),
    );
    let sent = shared
        .client
        .request(method, &url)
        .headers(outgoing)
        .body(body)
        .send()
        .await;
    let upstream = match sent {
        Ok(upstream) => upstream,
        Err(_) => return text(StatusCode::BAD_GATEWAY, "upstream unreachable"),
    };
    let status = upstream.status();
    let mut back = HeaderMap::new();
    for (name, value) in upstream.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            // `append`, so several Set-Cookie headers all arrive.
            back.append(name.clone(), value.clone());
        }
    }
    let Ok(bytes) = upstream.bytes().await else {
        return text(StatusCode::BAD_GATEWAY, "upstream body cut off");
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = back;
    response
}
