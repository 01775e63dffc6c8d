//! Discord and Slack incoming webhooks, for the notify worker's `discord` and `slack`
//! channels: one server serving both paths, each with its service's limits and answers.
//!
//! - Discord, `POST /api/webhooks/{id}/{token}`: JSON with `content` (at most 2,000
//!   characters) and/or `embeds`, else 400 with Discord's error JSON. A bucket of 5 requests
//!   per 2 s per webhook: every answer carries `X-RateLimit-Limit`, `-Remaining`,
//!   `-Reset-After` and `-Bucket`; a request over the bucket gets 429 with
//!   `{"message": "You are being rate limited.", "retry_after": <s>, "global": false}` and
//!   `Retry-After`. Success is 204. Scripted: 404 `Unknown Webhook`, 500.
//! - Slack, `POST /services/{a}/{b}/{c}`: JSON with `text` and/or `blocks`, else 400
//!   `invalid_payload`. One message per second per webhook: faster gets 429 with
//!   `Retry-After: 1` and body `rate_limited`. Success is 200 `ok`. Scripted: 404 `no_service`,
//!   500.
//!
//! Every request is recorded with its status, so a test can check what was accepted, what
//! was refused for going too fast, and that nothing was accepted twice.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::telegram::HttpServer;

/// Discord's webhook bucket: this many requests per [`DISCORD_WINDOW`].
pub const DISCORD_PER_WINDOW: usize = 5;
pub const DISCORD_WINDOW: Duration = Duration::from_secs(2);
/// Slack: one per this.
pub const SLACK_PERIOD: Duration = Duration::from_secs(1);
/// How much earlier than the limit a request may arrive and still count as within it: the
/// host spaces its sends by when it begins them, and a loaded machine delays one arrival
/// more than the next (a real service's counters are no finer than this).
pub const ARRIVAL_GRACE: Duration = Duration::from_millis(60);

/// A scripted answer (before the limits are applied).
#[derive(Clone, Debug, PartialEq)]
pub enum ChatReply {
    NotFound,
    ServerError,
    /// 429 with this `retry_after` (seconds) although the bucket has room.
    RateLimited(f64),
}

#[derive(Clone, Debug)]
pub struct ChatRequest {
    /// `discord` or `slack`.
    pub service: &'static str,
    /// The webhook's path after the service prefix.
    pub hook: String,
    pub body: Value,
    pub status: u16,
    pub at: Instant,
}

#[derive(Default)]
struct HooksState {
    received: Vec<ChatRequest>,
    /// Accepted request times per webhook (the limiter's memory).
    accepted: HashMap<String, VecDeque<Instant>>,
    queued: HashMap<String, VecDeque<ChatReply>>,
}

pub struct ChatHooks {
    http: HttpServer,
    state: Arc<Mutex<HooksState>>,
}

impl ChatHooks {
    pub async fn start() -> ChatHooks {
        let state = Arc::new(Mutex::new(HooksState::default()));
        let router = Router::new()
            .route("/api/webhooks/{id}/{token}", post(discord))
            .route("/services/{a}/{b}/{c}", post(slack))
            .with_state(state.clone());
        ChatHooks {
            http: HttpServer::start(router, "chat webhooks").await,
            state,
        }
    }

    /// A Discord webhook URL; `name` tells webhooks apart.
    pub fn discord_url(&self, name: &str) -> String {
        format!("http://{}/api/webhooks/{name}/tok-{name}", self.http.addr())
    }

    /// A Slack webhook URL.
    pub fn slack_url(&self, name: &str) -> String {
        format!("http://{}/services/T0/{name}/tok-{name}", self.http.addr())
    }

    pub fn reply_next(&self, hook: &str, replies: impl IntoIterator<Item = ChatReply>) {
        self.state
            .lock()
            .queued
            .entry(hook.to_string())
            .or_default()
            .extend(replies);
    }

    pub fn received(&self) -> Vec<ChatRequest> {
        self.state.lock().received.clone()
    }

    /// Requests a webhook accepted (2xx), in order.
    pub fn accepted(&self, hook: &str) -> Vec<ChatRequest> {
        self.received()
            .into_iter()
            .filter(|r| r.hook == hook && (200..300).contains(&r.status))
            .collect()
    }

    pub async fn wait_accepted(&self, hook: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.accepted(hook).len() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

fn record(state: &mut HooksState, service: &'static str, hook: &str, body: Value, status: u16) {
    state.received.push(ChatRequest {
        service,
        hook: hook.to_string(),
        body,
        status,
        at: Instant::now(),
    });
}

async fn discord(
    State(state): State<Arc<Mutex<HooksState>>>,
    Path((id, _token)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let now = Instant::now();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock();
    let times = s.accepted.entry(id.clone()).or_default();
    while times
        .front()
        .is_some_and(|t| now - *t >= DISCORD_WINDOW - ARRIVAL_GRACE)
    {
        times.pop_front();
    }
    let reset_after = times
        .front()
        .map(|t| (DISCORD_WINDOW - (now - *t)).as_secs_f64())
        .unwrap_or(DISCORD_WINDOW.as_secs_f64());
    let full = times.len() >= DISCORD_PER_WINDOW;
    let scripted = s.queued.get_mut(&id).and_then(VecDeque::pop_front);
    let content_ok = json["content"]
        .as_str()
        .is_none_or(|c| c.chars().count() <= 2000);
    let has_message = json["content"].is_string() || json["embeds"].is_array();
    let (status, answer, retry) = match scripted {
        Some(ChatReply::NotFound) => (
            StatusCode::NOT_FOUND,
            json!({"message": "Unknown Webhook", "code": 10015}),
            None,
        ),
        Some(ChatReply::ServerError) => (StatusCode::INTERNAL_SERVER_ERROR, json!({}), None),
        Some(ChatReply::RateLimited(secs)) => (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"message": "You are being rate limited.", "retry_after": secs, "global": false}),
            Some(secs),
        ),
        None if full => (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"message": "You are being rate limited.", "retry_after": reset_after, "global": false}),
            Some(reset_after),
        ),
        None if !has_message || !content_ok => (
            StatusCode::BAD_REQUEST,
            json!({"message": "Cannot send an empty message or content over 2000", "code": 50006}),
            None,
        ),
        None => {
            s.accepted.get_mut(&id).unwrap().push_back(now);
            (StatusCode::NO_CONTENT, Value::Null, None)
        }
    };
    let remaining = DISCORD_PER_WINDOW.saturating_sub(s.accepted.get(&id).map_or(0, VecDeque::len));
    record(&mut s, "discord", &id, json, status.as_u16());
    drop(s);
    let mut response = if answer.is_null() {
        status.into_response()
    } else {
        (status, axum::Json(answer)).into_response()
    };
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(DISCORD_PER_WINDOW));
    h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    h.insert(
        "x-ratelimit-reset-after",
        HeaderValue::from_str(&format!("{reset_after:.3}")).unwrap(),
    );
    h.insert("x-ratelimit-bucket", HeaderValue::from_static("b-hook"));
    if let Some(secs) = retry {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs.ceil() as u64));
    }
    response
}

async fn slack(
    State(state): State<Arc<Mutex<HooksState>>>,
    Path((_a, b, _c)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let now = Instant::now();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock();
    let last = s.accepted.get(&b).and_then(|q| q.back().copied());
    let too_fast = last.is_some_and(|t| now - t < SLACK_PERIOD - ARRIVAL_GRACE);
    let scripted = s.queued.get_mut(&b).and_then(VecDeque::pop_front);
    let ok_body = json["text"].is_string() || json["blocks"].is_array();
    let (status, text, retry) = match scripted {
        Some(ChatReply::NotFound) => (StatusCode::NOT_FOUND, "no_service", None),
        Some(ChatReply::ServerError) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error", None),
        Some(ChatReply::RateLimited(secs)) => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            Some(secs.ceil() as u64),
        ),
        None if too_fast => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", Some(1)),
        None if !ok_body => (StatusCode::BAD_REQUEST, "invalid_payload", None),
        None => {
            s.accepted.entry(b.clone()).or_default().push_back(now);
            (StatusCode::OK, "ok", None)
        }
    };
    record(&mut s, "slack", &b, json, status.as_u16());
    drop(s);
    let mut response = (status, text).into_response();
    if let Some(secs) = retry {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
