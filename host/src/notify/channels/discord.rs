//! The Discord channel: a POST of the formatter's message JSON (`content` of at most 2,000
//! characters and/or `embeds`) to the user's incoming-webhook URL. Text that is not a JSON
//! object is sent as `content`, cut to Discord's 2,000 characters.
//!
//! Limits: the spacing of `[notify.discord]` (5 per 2 s per webhook, as Discord's webhook
//! buckets), and what Discord says itself: a success whose `X-RateLimit-Remaining` is 0
//! holds the next send to that webhook for `X-RateLimit-Reset-After` seconds; a 429 carries
//! `retry_after` (seconds, fractional) in its JSON body, honoured to the millisecond for
//! the webhook (for every webhook when `global` is true), and the record waits it out.
//! 404 (the webhook was deleted) and other 4xx are permanent; 5xx retried.
//!
//! The URL is the credential (its path holds the token): errors show its origin only, and
//! requests pass the SSRF guard ([`super::http`]).

use std::collections::HashMap;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::Value;

use super::Channel;
use super::http::{HookClient, MAX_RETRY_AFTER_SECS, retry_after_header, status_outcome};
use crate::notify::config::DiscordConfig;
use crate::notify::limiter::Limit;
use crate::notify::record::{Delivery, Part, SendOutcome};
use crate::notify::webpush::shown_origin;

/// Discord's limit on `content`, in characters.
pub const MAX_CONTENT_CHARS: usize = 2000;
/// The key of a hold that applies to every webhook (a 429 with `global: true`).
const GLOBAL: &str = "";

pub struct Discord {
    client: HookClient,
    cfg: DiscordConfig,
    /// Webhook URL (or [`GLOBAL`]) → no send before this time (ms), as Discord said.
    holds: Mutex<HashMap<String, i64>>,
}

impl Discord {
    pub fn new(cfg: &DiscordConfig) -> anyhow::Result<Discord> {
        Ok(Discord {
            client: HookClient::new(
                "discord",
                cfg.allow_private_addresses,
                &cfg.proxy,
                cfg.timeout_secs,
            )?,
            cfg: cfg.clone(),
            holds: Mutex::new(HashMap::new()),
        })
    }

    fn hold(&self, key: &str, until_ms: i64) {
        let mut holds = self.holds.lock();
        let now = crate::util::now_ms();
        holds.retain(|_, t| *t > now);
        let e = holds.entry(key.to_string()).or_insert(until_ms);
        *e = (*e).max(until_ms);
    }
}

/// The request body for a part: the formatter's JSON object, or the text as `content`.
pub fn body(part: &Part) -> Value {
    match serde_json::from_str::<Value>(&part.text) {
        Ok(v @ Value::Object(_)) => v,
        _ => serde_json::json!({
            "content": part.text.chars().take(MAX_CONTENT_CHARS).collect::<String>(),
            "allowed_mentions": {"parse": []},
        }),
    }
}

/// Seconds (fractional) from a header or JSON number.
fn seconds(v: Option<&str>) -> Option<f64> {
    v?.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
}

#[async_trait]
impl Channel for Discord {
    fn name(&self) -> &'static str {
        "discord"
    }

    fn unconfigured(&self) -> Option<String> {
        None
    }

    fn limits(&self, target: &str) -> Vec<Limit> {
        vec![
            Limit::shared("discord:all".into(), self.cfg.global_per_sec, 1000.0),
            Limit::recipient(
                format!("discord:{target}"),
                self.cfg.per_webhook,
                self.cfg.window_secs * 1000.0,
            ),
        ]
    }

    fn not_before(&self, target: &str) -> i64 {
        let holds = self.holds.lock();
        let own = holds.get(target).copied().unwrap_or(0);
        own.max(holds.get(GLOBAL).copied().unwrap_or(0))
    }

    async fn send(&self, d: &Delivery, part: &Part, _index: usize) -> SendOutcome {
        let request = match self.client.post(&d.target).await {
            Ok(r) => r,
            Err(outcome) => return outcome,
        };
        let sent = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body(part).to_string())
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return self.client.send_failure(e),
        };
        let status = resp.status();
        let now = crate::util::now_ms();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let error = format!("Discord {} answered {status}", shown_origin(&d.target));
        if status.is_success() {
            // The bucket is empty: the next send waits for its reset.
            if header("x-ratelimit-remaining").as_deref().map(str::trim) == Some("0")
                && let Some(s) = seconds(header("x-ratelimit-reset-after").as_deref())
            {
                self.hold(&d.target, now + (s * 1000.0).ceil() as i64);
            }
            return SendOutcome::Sent;
        }
        if status.as_u16() == 429 {
            let header_secs = retry_after_header(&resp);
            let global = header("x-ratelimit-global").is_some();
            let text = resp.text().await.unwrap_or_default();
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let wait = json["retry_after"]
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .or(header_secs.map(|s| s as f64));
            let Some(wait) = wait.filter(|s| *s <= MAX_RETRY_AFTER_SECS as f64) else {
                return SendOutcome::Transient(error);
            };
            let until = now + (wait * 1000.0).ceil() as i64;
            let key = if global || json["global"] == true {
                GLOBAL
            } else {
                d.target.as_str()
            };
            self.hold(key, until);
            return SendOutcome::RateLimited {
                retry_after_secs: wait.ceil() as u64,
                error: format!("{error} (retry after {wait} s)"),
            };
        }
        // Discord's error JSON (`{"message": "Unknown Webhook", "code": 10015}`) says why.
        let text = resp.text().await.unwrap_or_default();
        let why = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(|m| crate::util::truncate(m, 200)));
        let error = match why {
            Some(m) => format!("{error}: {m}"),
            None => error,
        };
        status_outcome(status, None, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::record::ParseMode;

    fn part(text: &str) -> Part {
        Part {
            text: text.into(),
            subject: None,
            html: None,
            parse_mode: ParseMode::Plain,
        }
    }

    #[test]
    fn plain_text_becomes_content_cut_to_discords_limit() {
        let b = body(&part(&"é".repeat(2500)));
        assert_eq!(b["content"].as_str().unwrap().chars().count(), 2000);
        assert_eq!(b["allowed_mentions"]["parse"], serde_json::json!([]));
        let e = body(&part(r#"{"embeds":[{"title":"x"}]}"#));
        assert_eq!(e["embeds"][0]["title"], "x");
    }

    #[test]
    fn holds_apply_per_webhook_and_globally() {
        let d = Discord::new(&DiscordConfig::default()).unwrap();
        let far = crate::util::now_ms() + 60_000;
        d.hold("https://discord.com/api/webhooks/1/a", far);
        assert_eq!(d.not_before("https://discord.com/api/webhooks/1/a"), far);
        assert_eq!(d.not_before("https://discord.com/api/webhooks/2/b"), 0);
        d.hold(GLOBAL, far + 1);
        assert_eq!(
            d.not_before("https://discord.com/api/webhooks/2/b"),
            far + 1
        );
    }
}
