//! A tiny forward proxy for `http://` absolute-form requests: forwards with a reqwest client
//! that ignores proxy settings and does not follow redirects (the browser must see a `302`),
//! marks forwarded requests with `x-standin-proxy`, counts requests, can demand Basic
//! credentials (407 + `Proxy-Authenticate`) and can be stopped. `CONNECT` is refused (Chromium's
//! own background `CONNECT www.google.com:443`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;

#[derive(Debug, Clone)]
pub struct ProxySeen {
    pub host: String,
    pub path: String,
    pub had_auth: bool,
}

struct Inner {
    seen: Mutex<Vec<ProxySeen>>,
    /// The `Proxy-Authorization` value required, if any.
    required: Option<String>,
    client: reqwest::Client,
}

pub struct Proxy {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Proxy {
    pub async fn start(credentials: Option<(&str, &str)>) -> Proxy {
        let required = credentials.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let inner = Arc::new(Inner {
            seen: Mutex::new(Vec::new()),
            required,
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        });
        let app = Router::new().fallback(forward).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Proxy {
            addr,
            inner,
            task: Some(task),
        }
    }

    pub fn server(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting: new connections are refused.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    pub fn seen(&self) -> Vec<ProxySeen> {
        self.inner.seen.lock().unwrap().clone()
    }

    /// Requests for `host` (e.g. the site's `127.0.0.1:port`).
    pub fn count_for(&self, host: &str) -> usize {
        self.seen().iter().filter(|s| s.host == host).count()
    }
}

async fn forward(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let host = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let had_auth = match &inner.required {
        Some(r) => req
            .headers()
            .get(header::PROXY_AUTHORIZATION)
            .is_some_and(|v| v.as_bytes() == r.as_bytes()),
        None => req.headers().contains_key(header::PROXY_AUTHORIZATION),
    };
    inner.seen.lock().unwrap().push(ProxySeen {
        host: host.clone(),
        path,
        had_auth,
    });
    if req.method() == Method::CONNECT {
        return StatusCode::FORBIDDEN.into_response();
    }
    if inner.required.is_some() && !had_auth {
        let mut r = StatusCode::PROXY_AUTHENTICATION_REQUIRED.into_response();
        r.headers_mut().insert(
            header::PROXY_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"standin\""),
        );
        return r;
    }
    let url = req.uri().to_string();
    let method = req.method().clone();
    let mut headers = req.headers().clone();
    for h in [
        header::PROXY_AUTHORIZATION,
        header::CONNECTION,
        header::HOST,
        header::HeaderName::from_static("proxy-connection"),
        header::HeaderName::from_static("keep-alive"),
    ] {
        headers.remove(h);
    }
    headers.insert("x-standin-proxy", HeaderValue::from_static("1"));
    let body = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let res = inner
        .client
        .request(method, &url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let res = match res {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = res.status();
    let mut out_headers = res.headers().clone();
    for h in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
    ] {
        out_headers.remove(h);
    }
    let bytes = res.bytes().await.unwrap_or_default();
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    *r.headers_mut() = out_headers;
    r
}
