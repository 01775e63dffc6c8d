//! A Web Push service and its browsers, for the notify worker's `webpush` channel.
//!
//! A [`Browser`] does what a browser does when a page calls `pushManager.subscribe()`: it
//! makes a P-256 key pair and a 16-byte auth secret and gets an endpoint from the push
//! service ([`PushService::subscribe`]), giving the page the `PushSubscription` JSON. The
//! service serves `POST /push/{id}` as a push service does (RFC 8030): it checks the VAPID
//! `Authorization: vapid t=<JWT>, k=<key>` (RFC 8292: ES256 signature by `k`, `k` the
//! application server key the subscription was made with, `aud` this service's origin,
//! `exp` in the future and within 24 h, a `sub` contact), answers 401 when it fails, and
//! then plays the browser: it decrypts the `aes128gcm` body with the subscriber's private
//! key and auth secret (RFC 8291, web-push-native's decrypt) and records the payload.
//!
//! Answers: 201 by default; scripted per subscription: 410 (the subscription is gone from
//! then on, as a real service does after an unsubscribe), 404, 429 with `Retry-After`, 500.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parking_lot::Mutex;
use serde_json::{Value, json};
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256PublicKeyLike, ES256KeyPair, ES256PublicKey,
};
use web_push_native::jwt_simple::claims::{Audiences, NoCustomClaims};
use web_push_native::jwt_simple::common::VerificationOptions;
use web_push_native::p256;

use super::telegram::HttpServer;

/// An answer the test chooses for the next push to a subscription.
#[derive(Clone, Debug, PartialEq)]
pub enum PushReply {
    Created,
    /// 410: the user unsubscribed; every later push to it gets 410 too.
    Gone,
    /// 404: the subscription expired (gone from then on as well).
    NotFound,
    /// 429 with `Retry-After: N`.
    TooMany(u64),
    ServerError,
}

/// One push as the service saw it.
#[derive(Clone, Debug)]
pub struct PushRequest {
    pub subscription: String,
    pub status: u16,
    /// Why the VAPID check failed, if it did.
    pub vapid_error: Option<String>,
    /// The JWT's claims, when it verified.
    pub claims: Option<Value>,
    /// The decrypted payload (JSON), when it decrypted.
    pub payload: Option<Value>,
    pub payload_error: Option<String>,
    pub body_len: usize,
    pub ttl: Option<String>,
    pub urgency: Option<String>,
    pub topic: Option<String>,
    pub content_encoding: Option<String>,
    pub at: Instant,
}

/// A browser's side of one subscription: what only the browser knows.
pub struct Browser {
    pub secret: p256::SecretKey,
    pub auth: [u8; 16],
    /// The `PushSubscription` JSON the page hands the server.
    pub subscription: Value,
    pub id: String,
}

impl Browser {
    pub fn endpoint(&self) -> String {
        self.subscription["endpoint"].as_str().unwrap().to_string()
    }
}

struct Subscriber {
    secret: p256::SecretKey,
    auth: [u8; 16],
    /// The application server key the page subscribed with.
    server_key: String,
}

#[derive(Default)]
struct ServiceState {
    subscribers: HashMap<String, Arc<Subscriber>>,
    gone: HashSet<String>,
    queued: HashMap<String, VecDeque<PushReply>>,
    received: Vec<PushRequest>,
}

pub struct PushService {
    http: HttpServer,
    state: Arc<Mutex<ServiceState>>,
}

fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

fn unb64(text: &str) -> Option<Vec<u8>> {
    data_encoding::BASE64URL_NOPAD
        .decode(text.trim_end_matches('=').as_bytes())
        .ok()
}

impl PushService {
    pub async fn start() -> PushService {
        let state = Arc::new(Mutex::new(ServiceState::default()));
        // The origin is known once the server listens; the JWT's `aud` must be exactly it.
        let origin = Arc::new(Mutex::new(String::new()));
        let router = Router::new()
            .route("/push/{id}", post(handle))
            .with_state((state.clone(), origin.clone()));
        let http = HttpServer::start(router, "push service").await;
        *origin.lock() = format!("http://{}", http.addr());
        PushService { http, state }
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.http.addr())
    }

    /// A browser subscribes with the application server key `server_key` (base64url):
    /// a fresh key pair and auth secret, and an endpoint on this service.
    pub fn subscribe(&self, server_key: &str) -> Browser {
        // The browser's key pair, from a cryptographic generator (jwt-simple's, over p256).
        let secret = p256::SecretKey::from_slice(&ES256KeyPair::generate().to_bytes()).unwrap();
        let mut auth = [0u8; 16];
        auth.copy_from_slice(&ES256KeyPair::generate().to_bytes()[..16]);
        let id = format!("s{:016x}", fastrand::u64(..));
        let public = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
            &secret.public_key(),
            false,
        );
        let subscription = json!({
            "endpoint": format!("{}/push/{id}", self.origin()),
            "expirationTime": null,
            "keys": {"p256dh": b64(public.as_bytes()), "auth": b64(&auth)},
        });
        self.state.lock().subscribers.insert(
            id.clone(),
            Arc::new(Subscriber {
                secret: secret.clone(),
                auth,
                server_key: server_key.to_string(),
            }),
        );
        Browser {
            secret,
            auth,
            subscription,
            id,
        }
    }

    pub fn reply_next(&self, id: &str, replies: impl IntoIterator<Item = PushReply>) {
        self.state
            .lock()
            .queued
            .entry(id.to_string())
            .or_default()
            .extend(replies);
    }

    pub fn received(&self) -> Vec<PushRequest> {
        self.state.lock().received.clone()
    }

    pub fn received_count(&self) -> usize {
        self.state.lock().received.len()
    }

    /// Pushes that reached subscription `id`, in order.
    pub fn received_by(&self, id: &str) -> Vec<PushRequest> {
        self.state
            .lock()
            .received
            .iter()
            .filter(|r| r.subscription == id)
            .cloned()
            .collect()
    }

    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.received_count() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }
}

type Shared = (Arc<Mutex<ServiceState>>, Arc<Mutex<String>>);

async fn handle(
    State((state, origin)): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let origin = origin.lock().clone();
    let (subscriber, gone) = {
        let s = state.lock();
        (s.subscribers.get(&id).cloned(), s.gone.contains(&id))
    };
    let mut req = PushRequest {
        subscription: id.clone(),
        status: 0,
        vapid_error: None,
        claims: None,
        payload: None,
        payload_error: None,
        body_len: body.len(),
        ttl: text("ttl"),
        urgency: text("urgency"),
        topic: text("topic"),
        content_encoding: text("content-encoding"),
        at: Instant::now(),
    };
    let status = match subscriber {
        None => StatusCode::NOT_FOUND,
        Some(_) if gone => StatusCode::GONE,
        Some(sub) => {
            match verify_vapid(text("authorization").as_deref(), &origin, &sub.server_key) {
                Err(e) => {
                    req.vapid_error = Some(e);
                    StatusCode::UNAUTHORIZED
                }
                Ok(claims) => {
                    req.claims = Some(claims);
                    // The browser's part: decrypt with what only it knows.
                    match decrypt(&sub, &body) {
                        Ok(p) => req.payload = Some(p),
                        Err(e) => req.payload_error = Some(e),
                    }
                    if body.len() > 4096 {
                        StatusCode::PAYLOAD_TOO_LARGE
                    } else if req.payload.is_none()
                        || req.content_encoding.as_deref() != Some("aes128gcm")
                    {
                        StatusCode::BAD_REQUEST
                    } else {
                        StatusCode::CREATED
                    }
                }
            }
        }
    };
    let mut retry_after = None;
    let status = if status == StatusCode::CREATED {
        let mut s = state.lock();
        match s.queued.get_mut(&id).and_then(VecDeque::pop_front) {
            None | Some(PushReply::Created) => StatusCode::CREATED,
            Some(PushReply::Gone) => {
                s.gone.insert(id.clone());
                StatusCode::GONE
            }
            Some(PushReply::NotFound) => {
                s.gone.insert(id.clone());
                StatusCode::NOT_FOUND
            }
            Some(PushReply::TooMany(secs)) => {
                retry_after = Some(secs);
                StatusCode::TOO_MANY_REQUESTS
            }
            Some(PushReply::ServerError) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    } else {
        status
    };
    req.status = status.as_u16();
    state.lock().received.push(req);
    let mut response = status.into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Check `vapid t=<JWT>, k=<key>` for this service (`origin`) and the subscription's server
/// key; the verified claims, or why not.
pub fn verify_vapid(
    authorization: Option<&str>,
    origin: &str,
    server_key: &str,
) -> Result<Value, String> {
    let value = authorization.ok_or("no Authorization header")?;
    let rest = value
        .strip_prefix("vapid ")
        .ok_or("the Authorization scheme is not vapid")?;
    let (mut t, mut k) = (None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.trim()),
            Some(("k", v)) => k = Some(v.trim()),
            _ => {}
        }
    }
    let (t, k) = (t.ok_or("no t=")?, k.ok_or("no k=")?);
    if k != server_key {
        return Err(format!(
            "k={k} is not the key the subscription was made with"
        ));
    }
    let key = ES256PublicKey::from_bytes(&unb64(k).ok_or("k is not base64url")?)
        .map_err(|e| format!("k is not a P-256 key: {e}"))?;
    let options = VerificationOptions {
        allowed_audiences: Some(HashSet::from([origin.to_string()])),
        time_tolerance: Some(web_push_native::jwt_simple::prelude::Duration::from_secs(0)),
        ..Default::default()
    };
    let claims = key
        .verify_token::<NoCustomClaims>(t, Some(options))
        .map_err(|e| format!("the JWT did not verify: {e}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = claims.expires_at.ok_or("the JWT has no exp")?.as_secs();
    if exp <= now || exp > now + 24 * 3600 {
        return Err(format!("exp {exp} is not within 24 h of now ({now})"));
    }
    let sub = claims.subject.clone().ok_or("the JWT has no sub")?;
    if !(sub.starts_with("mailto:") || sub.starts_with("https:")) {
        return Err(format!("sub {sub:?} is not a mailto: or https: contact"));
    }
    // Report the token's own audience (not `origin`), so a test that compares it with the
    // service's origin checks what the host signed.
    let aud = match claims.audiences.clone().ok_or("the JWT has no aud")? {
        Audiences::AsString(one) => one,
        Audiences::AsSet(set) if set.len() == 1 => set.into_iter().next().unwrap(),
        Audiences::AsSet(set) => return Err(format!("the JWT names {} audiences", set.len())),
    };
    Ok(json!({"aud": aud, "exp": exp, "sub": sub}))
}

fn decrypt(sub: &Subscriber, body: &[u8]) -> Result<Value, String> {
    let auth = web_push_native::Auth::clone_from_slice(&sub.auth);
    let plain = web_push_native::decrypt(body.to_vec(), &sub.secret, &auth)
        .map_err(|e| format!("decrypting: {e}"))?;
    serde_json::from_slice(&plain).map_err(|e| format!("the payload is not JSON: {e}"))
}

/// The public key (base64url) of a raw private key (base64url): what the page gets from
/// `GET /api/v1/webpush/public-key`, computed independently of the host.
pub fn public_key_of(private_b64: &str) -> String {
    let key = ES256KeyPair::from_bytes(&unb64(private_b64).unwrap()).unwrap();
    b64(&key.public_key().public_key().to_bytes_uncompressed())
}
