//! The webhook channel: an HTTP POST of the notification as JSON, signed so the receiver
//! can tell it came from this host and was not replayed later.
//!
//! Signature header: `X-Impressox-Signature: t=<unix seconds>,v1=<hex>` where
//! `hex = HMAC-SHA256(secret, "<t>." + body)`. A receiver recomputes it over the raw body
//! and refuses a `t` more than five minutes away from its clock. `X-Impressox-Delivery`
//! (stable across retries) lets a receiver drop a repeat.
//!
//! Requests go through the SSRF guard as every URL a user gives does ([`super::http`]).

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::http::{HookClient, retry_after_header, status_outcome};
use super::{Channel, Secrets};
use crate::notify::config::WebhookConfig;
use crate::notify::limiter::Limit;
use crate::notify::record::{Delivery, Part, SendOutcome};

pub const SIGNATURE_HEADER: &str = "X-Impressox-Signature";
pub const DELIVERY_HEADER: &str = "X-Impressox-Delivery";
pub const ATTEMPT_HEADER: &str = "X-Impressox-Attempt";

pub struct Webhook {
    client: HookClient,
    secret: Option<String>,
    cfg: WebhookConfig,
}

impl Webhook {
    pub fn new(cfg: &WebhookConfig, secrets: &Secrets) -> anyhow::Result<Webhook> {
        let client = HookClient::new(
            "webhook",
            cfg.allow_private_addresses,
            &cfg.proxy,
            cfg.timeout_secs,
        )?;
        Ok(Webhook {
            client,
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
        let request = match self.client.post(&d.target).await {
            Ok(r) => r,
            Err(outcome) => return outcome,
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
            Err(e) => return self.client.send_failure(e),
        };
        let status = resp.status();
        let error = format!(
            "{} answered {status}",
            crate::notify::service::shown_target("webhook", &d.target)
        );
        status_outcome(status, retry_after_header(&resp), error)
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
}
