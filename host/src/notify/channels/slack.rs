//! The Slack channel: a POST of the formatter's message JSON (`text` plus `blocks` in
//! mrkdwn) to the user's incoming-webhook URL. Text that is not a JSON object is sent as
//! `text`, escaped as Slack requires (`&`, `<`, `>`).
//!
//! Slack allows one message per second per webhook (`[notify.slack] per_webhook_per_sec`)
//! and answers a burst with 429 and `Retry-After`, which is honoured. Slack's errors are
//! short codes in a plain-text body (`invalid_payload`, `no_service`, `channel_is_archived`,
//! `action_prohibited`): shown with the status, and permanent for any 4xx; 5xx retried.
//!
//! The URL is the credential: errors show its origin only, and requests pass the SSRF guard
//! ([`super::http`]).

use async_trait::async_trait;
use serde_json::Value;

use super::Channel;
use super::http::{HookClient, retry_after_header, status_outcome};
use crate::notify::config::SlackConfig;
use crate::notify::limiter::Limit;
use crate::notify::record::{Delivery, Part, SendOutcome};
use crate::notify::webpush::shown_origin;

pub struct Slack {
    client: HookClient,
    cfg: SlackConfig,
}

impl Slack {
    pub fn new(cfg: &SlackConfig) -> anyhow::Result<Slack> {
        Ok(Slack {
            client: HookClient::new(
                "slack",
                cfg.allow_private_addresses,
                &cfg.proxy,
                cfg.timeout_secs,
            )?,
            cfg: cfg.clone(),
        })
    }
}

/// Slack's escaping of the three characters its markup gives meaning.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The request body for a part: the formatter's JSON object, or the escaped text.
pub fn body(part: &Part) -> Value {
    match serde_json::from_str::<Value>(&part.text) {
        Ok(v @ Value::Object(_)) => v,
        _ => serde_json::json!({"text": escape(&part.text)}),
    }
}

#[async_trait]
impl Channel for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn unconfigured(&self) -> Option<String> {
        None
    }

    fn limits(&self, target: &str) -> Vec<Limit> {
        vec![
            Limit::shared("slack:all".into(), self.cfg.global_per_sec, 1000.0),
            Limit::recipient(
                format!("slack:{target}"),
                self.cfg.per_webhook_per_sec,
                1000.0,
            ),
        ]
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
        let retry_after = retry_after_header(&resp);
        let mut error = format!("Slack {} answered {status}", shown_origin(&d.target));
        if !status.is_success() && status.as_u16() != 429 {
            let code = resp.text().await.unwrap_or_default();
            let code = crate::util::truncate(code.trim(), 100);
            if !code.is_empty() {
                error = format!("{error}: {code}");
            }
        }
        status_outcome(status, retry_after, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_as_slack_requires() {
        assert_eq!(escape("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
        let part = Part {
            text: "<!channel> BTC > 70k".into(),
            subject: None,
            html: None,
            parse_mode: crate::notify::record::ParseMode::Plain,
        };
        assert_eq!(body(&part)["text"], "&lt;!channel&gt; BTC &gt; 70k");
    }
}
