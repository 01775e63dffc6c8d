//! A webhook receiver for the notify worker's `webhook` channel (docs/design/notify.md §6.4, §7.2).
//!
//! It serves `POST /hook/{name}` (one receiver can stand for several users' endpoints), checks
//! `X-Impressox-Signature: t=<unix secs>,v1=<hex>` the way a careful receiver would (HMAC-SHA256
//! of `"<t>." ‖ body` with the shared secret, and `t` within 300 s of now), and records every
//! delivery with its `X-Impressox-Delivery` and `X-Impressox-Attempt` headers and whether the
//! signature held. What it answers is up to the test: one-shot queues and defaults, per hook or
//! for all, of 200, 204, 410, 500, 429 with `Retry-After`, any other status, or no answer at all.
//! A bad signature is only recorded unless [`WebhookReceiver::reject_bad_signatures`] is on, so
//! that tests of retries are not entangled with signing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde_json::Value;
use sha2::Sha256;

use super::telegram::HttpServer;

type HmacSha256 = Hmac<Sha256>;

/// How far a signature's timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// An answer to a delivery, chosen by the test.
#[derive(Clone, Debug, PartialEq)]
pub enum HookReply {
    /// 200 with an empty JSON object.
    Ok,
    /// 204, no body.
    NoContent,
    /// 410: the endpoint is gone for good.
    Gone,
    /// 500.
    ServerError,
    /// 429 with `Retry-After: N` (delta-seconds).
    RetryAfter(u64),
    /// Any other status, with an empty body.
    Status(u16),
    /// No answer ever: the request stays open until the client gives up or the receiver is
    /// dropped.
    Hang,
}

/// One delivery as the receiver saw it.
#[derive(Clone, Debug)]
pub struct HookRequest {
    /// The `{name}` in `/hook/{name}`.
    pub name: String,
    /// `X-Impressox-Delivery`.
    pub delivery_id: Option<String>,
    /// `X-Impressox-Attempt`, if a number.
    pub attempt: Option<u32>,
    /// The body as JSON, `Null` if it is not JSON.
    pub body: Value,
    pub raw_body: Vec<u8>,
    /// `X-Impressox-Signature` as sent.
    pub signature: Option<String>,
    /// The signature is valid for the receiver's secret and its timestamp is within
    /// [`TOLERANCE_SECS`] of the arrival time.
    pub signature_ok: bool,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    pub at: Instant,
    /// Arrival as Unix milliseconds.
    pub wall_ms: i64,
    /// The HTTP status answered; 0 for [`HookReply::Hang`].
    pub status: u16,
}

pub struct WebhookReceiver {
    http: HttpServer,
    shared: Arc<Shared>,
}

struct Shared {
    secret: Vec<u8>,
    state: Mutex<ReceiverState>,
}

#[derive(Default)]
struct ReceiverState {
    received: Vec<HookRequest>,
    /// One-shot answers per hook name (`Some`) or for any hook (`None`).
    queued: HashMap<Option<String>, VecDeque<HookReply>>,
    defaults: HashMap<Option<String>, HookReply>,
    reject_bad_signatures: bool,
}

impl WebhookReceiver {
    /// Serve on `127.0.0.1` on a port the kernel picks, verifying with `secret`. Must be called
    /// inside a tokio runtime.
    pub async fn start(secret: &str) -> WebhookReceiver {
        let shared = Arc::new(Shared {
            secret: secret.as_bytes().to_vec(),
            state: Mutex::new(ReceiverState::default()),
        });
        let router = Router::new()
            .route("/hook/{name}", post(handle))
            .with_state(shared.clone());
        WebhookReceiver {
            http: HttpServer::start(router, "webhook receiver").await,
            shared,
        }
    }

    /// `http://127.0.0.1:P/hook/<name>`, the URL to put in a user's preferences.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/hook/{name}", self.http.addr())
    }

    /// Queue one-shot answers for the next deliveries to hook `name` (`None`: to any hook). A
    /// hook's own queue is used before the shared one, and both before the defaults.
    pub fn reply_next(&self, name: Option<&str>, replies: impl IntoIterator<Item = HookReply>) {
        self.shared
            .state
            .lock()
            .queued
            .entry(name.map(str::to_owned))
            .or_default()
            .extend(replies);
    }

    /// The answer once the queues are empty, for hook `name` (`None`: for any hook without its
    /// own default). Initially [`HookReply::Ok`].
    pub fn set_default_reply(&self, name: Option<&str>, reply: HookReply) {
        self.shared
            .state
            .lock()
            .defaults
            .insert(name.map(str::to_owned), reply);
    }

    /// When on, a delivery whose signature is not ok gets 401 (and is still recorded), whatever
    /// the scripted answer. Off by default.
    pub fn reject_bad_signatures(&self, on: bool) {
        self.shared.state.lock().reject_bad_signatures = on;
    }

    /// Every delivery so far, in arrival order.
    pub fn received(&self) -> Vec<HookRequest> {
        self.shared.state.lock().received.clone()
    }

    /// How many deliveries arrived so far (without copying them, for frequent polling).
    pub fn received_count(&self) -> usize {
        self.shared.state.lock().received.len()
    }

    /// Deliveries to hook `name`, in arrival order.
    pub fn received_by(&self, name: &str) -> Vec<HookRequest> {
        let state = self.shared.state.lock();
        state
            .received
            .iter()
            .filter(|r| r.name == name)
            .cloned()
            .collect()
    }

    /// Wait until at least `n` deliveries arrived (whatever they were answered); false on timeout.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.state.lock().received.len() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The hex `v1` of a signature: HMAC-SHA256(secret, `"<t>."` ‖ body).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A whole `X-Impressox-Signature` value: `t=<t>,v1=<hex>`.
pub fn signature_header(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", sign(secret, t, body))
}

/// Whether `header` signs `body` with `secret` and its `t` is within [`TOLERANCE_SECS`] of
/// `now_secs`. Any of several `v1=` entries may match (a sender rotating secrets sends both).
pub fn verify(secret: &[u8], header: &str, body: &[u8], now_secs: i64) -> bool {
    let mut t = None;
    let mut tags = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => tags.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now_secs - t).abs() > TOLERANCE_SECS {
        return false;
    }
    tags.iter().any(|tag| {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        // Constant-time comparison, as a receiver should do it.
        mac.verify_slice(tag).is_ok()
    })
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match answer(&shared, name, &headers, &body) {
        Some(response) => response,
        None => std::future::pending().await,
    }
}

/// Record a delivery and choose its answer, `None` for no answer ([`HookReply::Hang`]).
/// Synchronous, so the lock is never held across an await.
fn answer(shared: &Shared, name: String, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
    let at = Instant::now();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let signature = text("x-impressox-signature");
    let signature_ok = signature
        .as_deref()
        .is_some_and(|s| verify(&shared.secret, s, body, now.as_secs() as i64));

    let mut state = shared.state.lock();
    let reply = if state.reject_bad_signatures && !signature_ok {
        HookReply::Status(401)
    } else {
        state.next_reply(&name)
    };
    let response = match reply {
        HookReply::Ok => Some((StatusCode::OK, axum::Json(serde_json::json!({}))).into_response()),
        HookReply::NoContent => Some(StatusCode::NO_CONTENT.into_response()),
        HookReply::Gone => Some(StatusCode::GONE.into_response()),
        HookReply::ServerError => Some(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        HookReply::RetryAfter(secs) => {
            let mut response = StatusCode::TOO_MANY_REQUESTS.into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            Some(response)
        }
        HookReply::Status(status) => Some(
            StatusCode::from_u16(status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response(),
        ),
        HookReply::Hang => None,
    };
    state.received.push(HookRequest {
        name,
        delivery_id: text("x-impressox-delivery"),
        attempt: text("x-impressox-attempt").and_then(|a| a.trim().parse().ok()),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        raw_body: body.to_vec(),
        signature,
        signature_ok,
        content_type: text(header::CONTENT_TYPE.as_str()),
        user_agent: text(header::USER_AGENT.as_str()),
        at,
        wall_ms: now.as_millis() as i64,
        status: response.as_ref().map_or(0, |r| r.status().as_u16()),
    });
    response
}

impl ReceiverState {
    fn next_reply(&mut self, name: &str) -> HookReply {
        let own = Some(name.to_owned());
        if let Some(reply) = self.queued.get_mut(&own).and_then(VecDeque::pop_front) {
            return reply;
        }
        if let Some(reply) = self.queued.get_mut(&None).and_then(VecDeque::pop_front) {
            return reply;
        }
        self.defaults
            .get(&own)
            .or_else(|| self.defaults.get(&None))
            .cloned()
            .unwrap_or(HookReply::Ok)
    }
}
