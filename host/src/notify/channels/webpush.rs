//! The Web Push channel (RFC 8030): one POST per message to the subscription's push
//! service, the payload encrypted for the browser (RFC 8291, `aes128gcm` of RFC 8188) and
//! the request signed with VAPID (RFC 8292). The cryptography is web-push-native's.
//!
//! - Target: a subscription's canonical JSON ([`Subscription::target`]), so the record
//!   holds the keys its sends need.
//! - Payload: the formatter's JSON (`title`, `body`, `tag`, `data.url`, ...) for the page's
//!   service worker; text that is not JSON is sent as `{"title": text}`. It must fit 4,096
//!   bytes once encrypted, so at most [`MAX_PLAINTEXT`] bytes: the bundled formatter cuts
//!   to fit; anything larger is refused here (permanent) rather than sent to get a 413.
//! - Headers: `TTL` (`[notify.webpush] ttl_secs`), `Urgency` (`high` for critical,
//!   `normal` otherwise), `Topic` (from the alert's rule, so a newer alert for the same
//!   rule replaces one the browser has not shown yet), `Authorization: vapid t=…, k=…`.
//!   The VAPID token (`aud` the endpoint's origin, `exp` 12 h ahead) is signed once per
//!   origin and reused for an hour: push services accept any unexpired token, and one
//!   ECDSA signature per message would cost as much as the encryption.
//! - Answers: 201 (and any 2xx) sent; 404 or 410 the subscription is gone
//!   ([`SendOutcome::Gone`]: the dispatcher drops it from the preferences); 429 waits
//!   `Retry-After`; 5xx retried; anything else (400, 401/403 for a refused VAPID token,
//!   413) is permanent.
//! - Endpoints pass the SSRF guard like webhook URLs ([`super::http`]).

use std::collections::HashMap;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::http::{HookClient, retry_after_header, status_outcome};
use super::{Channel, Secrets};
use crate::notify::config::WebPushConfig;
use crate::notify::limiter::Limit;
use crate::notify::record::{Delivery, Part, SendOutcome};
use crate::notify::request::Priority;
use crate::notify::webpush::{Subscription, Vapid, decode_b64url};

/// The largest plaintext that fits a 4,096-byte push message: the `aes128gcm` header (86
/// bytes with a 65-byte key id), the padding delimiter (1) and the AEAD tag (16) take the rest.
pub const MAX_PLAINTEXT: usize = 4096 - 86 - 1 - 16;
/// How long a VAPID token is valid (RFC 8292 allows at most 24 h).
const TOKEN_VALID_SECS: u64 = 12 * 3600;
/// How long a signed token is reused before a fresh one is signed.
const TOKEN_REUSE_MS: i64 = 3600 * 1000;

pub struct WebPush {
    client: HookClient,
    vapid: Option<Vapid>,
    cfg: WebPushConfig,
    /// `Authorization` values per origin, with when they were signed.
    tokens: Mutex<HashMap<String, (i64, String)>>,
}

impl WebPush {
    pub fn new(cfg: &WebPushConfig, secrets: &Secrets) -> anyhow::Result<WebPush> {
        let vapid = match secrets.get(&cfg.private_key_env) {
            // The error names the variable, never its value.
            Some(text) => Some(Vapid::from_private_b64(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{} ([notify.webpush] private_key_env): {e}",
                    cfg.private_key_env
                )
            })?),
            None => None,
        };
        Ok(WebPush {
            client: HookClient::new(
                "webpush",
                cfg.allow_private_addresses,
                &cfg.proxy,
                cfg.timeout_secs,
            )?,
            vapid,
            cfg: cfg.clone(),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The VAPID public key the pages subscribe with, when a private key is configured.
    pub fn public_key(&self) -> Option<&str> {
        self.vapid.as_ref().map(Vapid::public_key)
    }

    /// The `Authorization` header for `endpoint`'s origin, signed afresh when old.
    fn authorization(&self, vapid: &Vapid, endpoint: &reqwest::Url) -> anyhow::Result<String> {
        let origin = endpoint.origin().ascii_serialization();
        let now = crate::util::now_ms();
        if let Some((at, value)) = self.tokens.lock().get(&origin)
            && now - at < TOKEN_REUSE_MS
        {
            return Ok(value.clone());
        }
        let value = vapid.authorization(endpoint.as_str(), TOKEN_VALID_SECS, &self.cfg.subject)?;
        let mut tokens = self.tokens.lock();
        if tokens.len() > 10_000 {
            tokens.clear();
        }
        tokens.insert(origin, (now, value.clone()));
        Ok(value)
    }
}

/// The `Topic` for a delivery: derived from the alert's rule (`data.rule_id`), so a newer
/// alert of that rule replaces an undelivered older one; none for other notifications.
/// 32 characters of base64url, as RFC 8030 allows.
pub fn topic(request_json: &str) -> Option<String> {
    let req: Value = serde_json::from_str(request_json).ok()?;
    let rule = req.get("data")?.get("rule_id")?.as_str()?;
    let user = req.get("user_id").and_then(Value::as_str).unwrap_or("");
    let digest = Sha256::digest(format!("{user}\0{rule}").as_bytes());
    Some(crate::notify::webpush::encode_b64url(&digest[..24]))
}

/// The plaintext for a part: the formatter's JSON object as it is, other text as a title.
pub fn payload(part: &Part) -> Vec<u8> {
    match serde_json::from_str::<Value>(&part.text) {
        Ok(Value::Object(_)) => part.text.clone().into_bytes(),
        _ => serde_json::json!({"title": part.text})
            .to_string()
            .into_bytes(),
    }
}

/// Encrypt `plaintext` for `sub` (RFC 8291); a subscription whose keys do not decode is a
/// permanent failure.
pub fn encrypt(sub: &Subscription, plaintext: Vec<u8>) -> Result<Vec<u8>, String> {
    let p256dh = decode_b64url(&sub.keys.p256dh).ok_or("keys.p256dh is not base64url")?;
    let auth = decode_b64url(&sub.keys.auth)
        .filter(|a| a.len() == 16)
        .ok_or("keys.auth is not a 16-byte secret")?;
    let public = web_push_native::p256::PublicKey::from_sec1_bytes(&p256dh)
        .map_err(|_| "keys.p256dh is not a P-256 public key")?;
    let auth = web_push_native::Auth::clone_from_slice(&auth);
    web_push_native::encrypt(plaintext, &public, &auth).map_err(|e| e.to_string())
}

#[async_trait]
impl Channel for WebPush {
    fn name(&self) -> &'static str {
        "webpush"
    }

    fn unconfigured(&self) -> Option<String> {
        self.vapid.is_none().then(|| {
            format!(
                "no VAPID key: set the environment variable {} ([notify.webpush] private_key_env; \
                 `impressox webpush keygen` makes one)",
                self.cfg.private_key_env
            )
        })
    }

    fn limits(&self, target: &str) -> Vec<Limit> {
        let endpoint = Subscription::from_target(target)
            .map(|s| s.endpoint)
            .unwrap_or_else(|| target.to_string());
        vec![
            Limit::shared("push:all".into(), self.cfg.global_per_sec, 1000.0),
            Limit::recipient(
                format!("push:{endpoint}"),
                self.cfg.per_subscription_per_sec,
                1000.0,
            ),
        ]
    }

    async fn send(&self, d: &Delivery, part: &Part, _index: usize) -> SendOutcome {
        let Some(vapid) = &self.vapid else {
            return SendOutcome::Permanent(self.unconfigured().unwrap_or_default());
        };
        let Some(sub) = Subscription::from_target(&d.target) else {
            return SendOutcome::Permanent("the target is not a push subscription".into());
        };
        let plaintext = payload(part);
        if plaintext.len() > MAX_PLAINTEXT {
            return SendOutcome::Permanent(format!(
                "the formatter's payload is {} bytes; a push message holds at most {MAX_PLAINTEXT} \
                 (the formatter must cut it)",
                plaintext.len()
            ));
        }
        let endpoint = match reqwest::Url::parse(&sub.endpoint) {
            Ok(u) => u,
            Err(_) => return SendOutcome::Permanent("the endpoint is not a URL".into()),
        };
        let authorization = match self.authorization(vapid, &endpoint) {
            Ok(a) => a,
            Err(e) => return SendOutcome::Permanent(e.to_string()),
        };
        let body = match encrypt(&sub, plaintext) {
            Ok(b) => b,
            Err(e) => return SendOutcome::Permanent(format!("encrypting the payload: {e}")),
        };
        let request = match self.client.post(&sub.endpoint).await {
            Ok(r) => r,
            Err(outcome) => return outcome,
        };
        let urgency = match d.priority {
            Priority::Critical => "high",
            Priority::Normal => "normal",
        };
        let mut request = request
            .header("TTL", self.cfg.ttl_secs.to_string())
            .header("Urgency", urgency)
            .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::AUTHORIZATION, authorization);
        if let Some(topic) = topic(&d.request_json) {
            request = request.header("Topic", topic);
        }
        let resp = match request.body(body).send().await {
            Ok(r) => r,
            Err(e) => return self.client.send_failure(e),
        };
        let status = resp.status();
        let error = format!("the push service {} answered {status}", sub.shown());
        if matches!(status.as_u16(), 404 | 410) {
            return SendOutcome::Gone(format!(
                "{error}: the subscription expired or the user unsubscribed; it was removed"
            ));
        }
        status_outcome(status, retry_after_header(&resp), error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topic_follows_the_rule_and_fits_rfc_8030() {
        let a = topic(r#"{"user_id":"u1","data":{"rule_id":"r1"}}"#).unwrap();
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(
            a,
            topic(r#"{"user_id":"u1","data":{"rule_id":"r1"}}"#).unwrap()
        );
        assert_ne!(
            a,
            topic(r#"{"user_id":"u1","data":{"rule_id":"r2"}}"#).unwrap()
        );
        assert_eq!(topic(r#"{"user_id":"u1","data":{}}"#), None);
    }

    #[test]
    fn plain_text_becomes_a_title() {
        let part = |t: &str| Part {
            text: t.into(),
            subject: None,
            html: None,
            parse_mode: crate::notify::record::ParseMode::Plain,
        };
        assert_eq!(payload(&part(r#"{"title":"x"}"#)), br#"{"title":"x"}"#);
        assert_eq!(payload(&part("BTC up")), br#"{"title":"BTC up"}"#);
    }

    #[test]
    fn a_payload_of_the_largest_size_encrypts_to_4096_bytes() {
        let key = "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY";
        let sub = Subscription {
            endpoint: "https://push.example/x".into(),
            expiration_time: None,
            keys: crate::notify::webpush::SubscriptionKeys {
                p256dh: key.into(),
                auth: "_ordMnz7uTCmrpBTeUV4Bw".into(),
            },
        };
        let body = encrypt(&sub, vec![b'x'; MAX_PLAINTEXT]).unwrap();
        assert_eq!(body.len(), 4096);
    }
}
