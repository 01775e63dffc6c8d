//! A tiny stand-in of X: a profile page whose script fetches a paged GraphQL timeline (page 2
//! on scroll, then the end), a `302 → /login` route, a form, a cookie setter and an image.
//! Every request is recorded with its cookies, user agent and whether it came through the
//! proxy stand-in.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub cookie: String,
    pub user_agent: String,
    pub via_proxy: bool,
    /// The `tab` variable of GraphQL calls (a per-tab id kept in sessionStorage).
    pub tab: Option<String>,
}

#[derive(Default)]
struct Inner {
    seen: Mutex<Vec<Seen>>,
}

pub struct Site {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const PROFILE: &str = r#"<!doctype html><html><head><title>profile</title></head><body>
<img src="/img/avatar.png" width="10" height="10">
<div id="tl"></div>
<script>
if (!sessionStorage.tab) sessionStorage.tab = String(Math.random()).slice(2);
let page = 0, busy = false, done = false;
async function more() {
  if (busy || done) return; busy = true; page++;
  const vars = {page, tab: sessionStorage.tab};
  const r = await fetch('/i/api/graphql/Q1/UserTweets?variables=' + encodeURIComponent(JSON.stringify(vars)));
  const j = await r.json();
  for (const it of j.data.items) {
    const d = document.createElement('article');
    d.setAttribute('data-testid', 'tweet'); d.style.height = '400px'; d.textContent = it;
    document.getElementById('tl').appendChild(d);
  }
  if (!j.data.more) done = true;
  busy = false;
}
more();
addEventListener('scroll', () => { if (innerHeight + scrollY >= document.body.scrollHeight - 400) more(); });
</script></body></html>"#;

const LOGIN: &str = r#"<!doctype html><html><body><h1>Log in</h1></body></html>"#;

const FORM: &str = r#"<!doctype html><html><body>
<input id="name" autocomplete="username">
<button id="go" onclick="document.getElementById('out').innerText = 'clicked'">Go</button>
<div id="out"></div>
<script>
document.getElementById('name').addEventListener('keydown', (e) => {
  if (e.key === 'Enter') {
    const d = document.createElement('div'); d.id = 'greeting';
    d.innerText = 'Hello ' + document.getElementById('name').value;
    document.body.appendChild(d);
  }
});
</script></body></html>"#;

/// A 1x1 transparent PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

impl Site {
    pub async fn start() -> Site {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/u/{handle}", get(profile))
            .route("/i/api/graphql/{qid}/{op}", get(graphql))
            .route("/redirect", get(|| async { Redirect::to("/login") }))
            .route("/login", get(|| async { Html(LOGIN) }))
            .route("/form", get(|| async { Html(FORM) }))
            .route("/set-cookie", get(set_cookie))
            .route("/img/{name}", get(image))
            .with_state(inner.clone())
            .layer(axum::middleware::from_fn_with_state(inner.clone(), record));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Site { addr, inner, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn seen_for(&self, prefix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.starts_with(prefix))
            .collect()
    }
}

async fn record(
    State(inner): State<Arc<Inner>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let h = req.headers();
    let get = |n: header::HeaderName| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let tab = variables(req.uri().query().unwrap_or(""))
        .and_then(|v| v.get("tab").and_then(|t| t.as_str()).map(str::to_string));
    let seen = Seen {
        path,
        cookie: get(header::COOKIE),
        user_agent: get(header::USER_AGENT),
        via_proxy: h.contains_key("x-standin-proxy"),
        tab,
    };
    inner.seen.lock().unwrap().push(seen);
    next.run(req).await
}

fn variables(query: &str) -> Option<serde_json::Value> {
    let raw = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("variables="))?;
    let decoded = percent_decode(raw);
    serde_json::from_str(&decoded).ok()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn profile(Path(_handle): Path<String>) -> Html<&'static str> {
    Html(PROFILE)
}

#[derive(serde::Deserialize)]
struct Gql {
    variables: String,
}

async fn graphql(Path((_qid, op)): Path<(String, String)>, Query(q): Query<Gql>) -> Response {
    let vars: serde_json::Value = serde_json::from_str(&q.variables).unwrap_or_default();
    let page = vars.get("page").and_then(|p| p.as_u64()).unwrap_or(1);
    let items: Vec<String> = (1..=10)
        .map(|i| format!("{op} page {page} item-{i}"))
        .collect();
    let body = serde_json::json!({"data": {"page": page, "items": items, "more": page < 2}});
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::HeaderName::from_static("x-rate-limit-limit"),
                "500".to_string(),
            ),
            (
                header::HeaderName::from_static("x-rate-limit-remaining"),
                (500 - page).to_string(),
            ),
            (
                header::HeaderName::from_static("x-rate-limit-reset"),
                "1900000000".to_string(),
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn set_cookie() -> Response {
    let mut h = HeaderMap::new();
    h.insert(
        header::SET_COOKIE,
        "sid=from-site; Path=/; HttpOnly".parse().unwrap(),
    );
    (h, Html("<!doctype html><p>cookie set</p>")).into_response()
}

async fn image() -> Response {
    ([(header::CONTENT_TYPE, "image/png")], PNG).into_response()
}
