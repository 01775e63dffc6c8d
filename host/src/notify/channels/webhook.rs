//! The webhook channel: an HTTP POST of the notification as JSON, signed so the receiver
//! can tell it came from this host and was not replayed later.
//!
//! Signature header: `X-Impressox-Signature: t=<unix seconds>,v1=<hex>` where
//! `hex = HMAC-SHA256(secret, "<t>." + body)`. A receiver recomputes it over the raw body
//! and refuses a `t` more than five minutes away from its clock. `X-Impressox-Delivery`
//! (stable across retries) lets a receiver drop a repeat.
//!
//! Requests go through [`crate::net::Outbound`], the SSRF guard: unless
//! `allow_private_addresses`, a URL whose host is or resolves to a non-public address
//! (loopback, private, link-local, CGNAT, NAT64 or 6to4 of one, ...) is refused as a
//! permanent failure, the connection goes to exactly the addresses that were checked, and
//! proxies from the environment are ignored (only `[notify.webhook] proxy` is used).
//! Redirects are not followed (a 3xx is permanent).

use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Channel, Secrets};
use crate::net::guard::guard_error;
use crate::net::{GuardError, Outbound, OutboundPolicy};
use crate::notify::config::WebhookConfig;
use crate::notify::limiter::Limit;
use crate::notify::record::{Delivery, Part, SendOutcome};

pub const SIGNATURE_HEADER: &str = "X-Impressox-Signature";
pub const DELIVERY_HEADER: &str = "X-Impressox-Delivery";
pub const ATTEMPT_HEADER: &str = "X-Impressox-Attempt";

pub struct Webhook {
    outbound: Outbound,
    secret: Option<String>,
    cfg: WebhookConfig,
}

impl Webhook {
    pub fn new(cfg: &WebhookConfig, secrets: &Secrets) -> anyhow::Result<Webhook> {
        let outbound = Outbound::new(&OutboundPolicy {
            allow_private_addresses: cfg.allow_private_addresses,
            proxy: Some(cfg.proxy.clone()).filter(|p| !p.is_empty()),
            timeout: Duration::from_secs(cfg.timeout_secs),
            connect_timeout: Duration::from_secs(5),
            max_redirects: 0,
            ..Default::default()
        })?;
        Ok(Webhook {
            outbound,
            secret: secrets.get(&cfg.secret_env),
            cfg: cfg.clone(),
        })
    }
}

/// `v1` of the signature: hex HMAC-SHA256 over `"<t>." + body`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The JSON body for a delivery and one rendered part.
pub fn body(d: &Delivery, part: &Part) -> Vec<u8> {
    let req: Value = serde_json::from_str(&d.request_json).unwrap_or(Value::Null);
    let v = json!({
        "id": d.notification_id,
        "delivery_id": d.id,
        "user_id": d.user_id,
        "kind": d.kind,
        "priority": d.priority,
        "title": req.get("title").cloned().unwrap_or(Value::Null),
        "body": req.get("body").cloned().unwrap_or(Value::Null),
        "data": req.get("data").cloned().unwrap_or_else(|| json!({})),
        "channel": "webhook",
        "text": part.text,
        "created_at": crate::util::rfc3339_ms(d.created_ms),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// What the guard's verdict means for a delivery: a refused destination stays refused
/// (permanent), a name that did not resolve may resolve later (transient).
fn guard_outcome(e: &GuardError) -> SendOutcome {
    match e {
        GuardError::Refused(r) => SendOutcome::Permanent(format!(
            "{r}; refused (set [notify.webhook] allow_private_addresses to allow it)"
        )),
        GuardError::Lookup { .. } => SendOutcome::Transient(e.to_string()),
    }
}

/// What a request that got no answer comes to.
fn send_failure(e: reqwest::Error) -> SendOutcome {
    // The resolver refused the name, or could not resolve it: nothing was sent.
    if let Some(g) = guard_error(&e) {
        return guard_outcome(g);
    }
    let (connect, builder) = (e.is_connect(), e.is_builder());
    // Without the URL: its path is often the receiver's credential.
    let text = e.without_url().to_string();
    if connect {
        SendOutcome::Transient(text)
    } else if builder {
        SendOutcome::Permanent(text)
    } else {
        SendOutcome::Ambiguous(text)
    }
}

/// The longest `Retry-After` waited for; beyond it the answer counts as a plain failure.
const MAX_RETRY_AFTER_SECS: u64 = 3600;

/// Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date.
pub fn retry_after_secs(value: &str, now_ms: i64) -> Option<u64> {
    let v = value.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(s);
    }
    let at = jiff::fmt::rfc2822::parse(v)
        .ok()?
        .timestamp()
        .as_millisecond();
    Some(((at - now_ms).max(0) as u64).div_ceil(1000))
}

#[async_trait]
impl Channel for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn unconfigured(&self) -> Option<String> {
        self.secret.is_none().then(|| {
            format!(
                "no signing secret: set the environment variable {} ([notify.webhook] secret_env)",
                self.cfg.secret_env
            )
        })
    }

    fn limits(&self, target: &str) -> Vec<Limit> {
        vec![
            Limit::shared("hook:all".into(), self.cfg.global_per_sec, 1000.0),
            Limit::recipient(format!("hook:{target}"), self.cfg.per_url_per_sec, 1000.0),
        ]
    }

    async fn send(&self, d: &Delivery, part: &Part, _index: usize) -> SendOutcome {
        let Some(secret) = &self.secret else {
            return SendOutcome::Permanent(self.unconfigured().unwrap_or_default());
        };
        let url = match reqwest::Url::parse(&d.target) {
            Ok(u) => u,
            Err(e) => return SendOutcome::Permanent(format!("not a URL: {e}")),
        };
        let request = match self.outbound.request(reqwest::Method::POST, url).await {
            Ok(r) => r,
            Err(e) => return guard_outcome(&e),
        };
        let body = body(d, part);
        let t = crate::util::now_ms() / 1000;
        let signature = format!("t={t},v1={}", sign(secret.as_bytes(), t, &body));
        let sent = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, &d.id)
            .header(ATTEMPT_HEADER, d.attempt.to_string())
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return send_failure(e),
        };
        let status = resp.status();
        let error = format!(
            "{} answered {status}",
            crate::notify::service::shown_target("webhook", &d.target)
        );
        if status.is_success() {
            SendOutcome::Sent
        } else if status.as_u16() == 429 {
            let secs = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after_secs(v, crate::util::now_ms()));
            match secs.filter(|s| *s <= MAX_RETRY_AFTER_SECS) {
                Some(s) => SendOutcome::RateLimited {
                    retry_after_secs: s,
                    error,
                },
                None => SendOutcome::Transient(error),
            }
        } else if status.is_server_error() {
            SendOutcome::Transient(error)
        } else {
            SendOutcome::Permanent(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_reference_vector() {
        // Computed with Python's hmac module.
        let body = br#"{"id":"rule-42-1764300000","title":"BTCUSDT above 70000"}"#;
        assert_eq!(
            sign(b"whsec_test", 1_764_300_000, body),
            "65b03e7696322c1eece3407897746c4fe5c4d8b314efb547f4dd71a24db28589"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(retry_after_secs("2", 0), Some(2));
        let now = crate::util::parse_rfc3339_ms("2026-11-29T10:00:00Z").unwrap();
        assert_eq!(
            retry_after_secs("Sun, 29 Nov 2026 10:00:05 GMT", now),
            Some(5)
        );
        assert_eq!(retry_after_secs("soon", now), None);
    }
}
