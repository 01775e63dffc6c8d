//! `webpush-payload`: renders a notification as the JSON a Web Push service worker shows
//! with `registration.showNotification(title, options)`:
//!
//! ```json
//! {"title": "🚨 BTCUSDT above 70000", "body": "BTCUSDT is 70123.40 (Binance)",
//!  "tag": "rule-42", "renotify": true, "requireInteraction": true,
//!  "timestamp": 1764300000000,
//!  "data": {"url": "/alerts/42", "notification_id": "rule-42-1764300000",
//!           "kind": "price_alert", "priority": "critical"}}
//! ```
//!
//! - `tag`: `rule-<id>` for an alert (a newer alert of the rule replaces the one shown),
//!   else the notification id; `renotify` so a replacement still alerts.
//! - `data.url`: the request's `data.url` when it gives one, else `/alerts/<rule id>` for an
//!   alert, else `/notifications/<id>`: a path the page's service worker opens (relative to
//!   its own origin) when the notification is clicked.
//! - Critical notifications get `🚨 ` before the title and `requireInteraction`.
//! - A push message holds 4,096 bytes once encrypted, so the payload is at most
//!   [`MAX_PAYLOAD`] bytes of JSON: the body is cut first (at a character boundary, with
//!   `…`), then the title.
//!
//! Any other channel gets plain text (`[CRITICAL] ` marker, title, newline, body).

use impressox_plugin_sdk::types::{Notification, ParseMode, Priority, RenderedMessage};
use impressox_plugin_sdk::{NotifyFormatter, export_notify_formatter};
use serde_json::{Value, json};

/// The largest plaintext that fits a 4,096-byte `aes128gcm` push message (86 bytes of
/// header, 1 of padding delimiter and 16 of tag taken off).
pub const MAX_PAYLOAD: usize = 4096 - 86 - 1 - 16;

/// The plugin.
pub struct WebPushPayload;

impl NotifyFormatter for WebPushPayload {
    const NAME: &'static str = "webpush-payload";
    const DESCRIPTION: &'static str =
        "Web Push payload JSON (title, body, tag, data.url; cut to fit); plain text elsewhere";

    fn format(n: Notification, channel: String) -> Result<Vec<RenderedMessage>, String> {
        if channel != "webpush" {
            return Ok(vec![plain(&n)]);
        }
        Ok(vec![RenderedMessage {
            text: payload(&n, MAX_PAYLOAD),
            subject: None,
            html: None,
            parse_mode: ParseMode::Plain,
        }])
    }
}

export_notify_formatter!(WebPushPayload);

fn plain(n: &Notification) -> RenderedMessage {
    let marker = match n.priority {
        Priority::Critical => "[CRITICAL] ",
        Priority::Normal => "",
    };
    let text = if n.body.is_empty() {
        format!("{marker}{}", n.title)
    } else {
        format!("{marker}{}\n{}", n.title, n.body)
    };
    RenderedMessage {
        text,
        subject: None,
        html: None,
        parse_mode: ParseMode::Plain,
    }
}

/// `text` cut to at most `max_chars` characters, with `…` when cut.
fn cut(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The payload JSON, at most `max_bytes` long.
pub fn payload(n: &Notification, max_bytes: usize) -> String {
    let data: Value = serde_json::from_str(&n.data_json).unwrap_or(Value::Null);
    let rule = data.get("rule_id").and_then(Value::as_str);
    let critical = n.priority == Priority::Critical;
    let url = data
        .get("url")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| match rule {
            Some(r) => format!("/alerts/{r}"),
            None => format!("/notifications/{}", n.id),
        });
    let tag = match rule {
        Some(r) => format!("rule-{r}"),
        None => n.id.clone(),
    };
    let title = if critical {
        format!("🚨 {}", n.title)
    } else {
        n.title.clone()
    };
    let build = |title: &str, body: &str| {
        let mut v = json!({
            "title": title,
            "body": body,
            "tag": tag,
            "renotify": true,
            "timestamp": n.created_at_ms,
            "data": {
                "url": url,
                "notification_id": n.id,
                "kind": n.kind,
                "priority": if critical { "critical" } else { "normal" },
            },
        });
        if critical {
            v["requireInteraction"] = json!(true);
        }
        v.to_string()
    };
    let full = build(&title, &n.body);
    if full.len() <= max_bytes {
        return full;
    }
    // Cut the title only if it alone does not fit, then give the body what is left: the
    // longest cut of each that fits, found by bisection on its length in characters (JSON
    // escaping makes bytes per character vary).
    let title = if build(&title, "").len() <= max_bytes {
        title
    } else {
        cut(
            &title,
            longest(title.chars().count(), |k| {
                build(&cut(&title, k), "").len() <= max_bytes
            }),
        )
    };
    let keep = longest(n.body.chars().count(), |k| {
        build(&title, &cut(&n.body, k)).len() <= max_bytes
    });
    build(&title, &cut(&n.body, keep))
}

/// The largest `k` in `0..=max` for which `fits(k)` holds, `fits` being monotone (true up to
/// some point); 0 when nothing fits.
fn longest(max: usize, fits: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, max);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) { lo = mid } else { hi = mid - 1 }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(priority: Priority, body: &str, data: &str) -> Notification {
        Notification {
            id: "rule-42-1764300000".into(),
            user_id: "u1".into(),
            kind: "price_alert".into(),
            priority,
            title: "BTCUSDT above 70000".into(),
            body: body.into(),
            data_json: data.into(),
            created_at_ms: 1_764_300_000_000,
        }
    }

    #[test]
    fn an_alert_links_to_its_rule_and_replaces_by_tag() {
        let p: Value = serde_json::from_str(&payload(
            &n(Priority::Normal, "b", r#"{"rule_id":"42"}"#),
            MAX_PAYLOAD,
        ))
        .unwrap();
        assert_eq!(p["title"], "BTCUSDT above 70000");
        assert_eq!(p["tag"], "rule-42");
        assert_eq!(p["data"]["url"], "/alerts/42");
        assert_eq!(p["data"]["notification_id"], "rule-42-1764300000");
        assert!(p.get("requireInteraction").is_none());
        let other: Value = serde_json::from_str(&payload(
            &n(Priority::Normal, "b", r#"{"url":"https://app.example/x"}"#),
            MAX_PAYLOAD,
        ))
        .unwrap();
        assert_eq!(other["data"]["url"], "https://app.example/x");
        assert_eq!(other["tag"], "rule-42-1764300000");
    }

    #[test]
    fn critical_stands_out() {
        let p: Value =
            serde_json::from_str(&payload(&n(Priority::Critical, "b", "{}"), MAX_PAYLOAD)).unwrap();
        assert!(p["title"].as_str().unwrap().starts_with("🚨 "));
        assert_eq!(p["requireInteraction"], true);
        assert_eq!(p["data"]["priority"], "critical");
    }

    #[test]
    fn a_long_body_is_cut_to_fit_and_stays_json() {
        for body in ["x".repeat(20_000), "é\"\\<".repeat(5000), "🚀".repeat(5000)] {
            let text = payload(&n(Priority::Normal, &body, "{}"), MAX_PAYLOAD);
            assert!(text.len() <= MAX_PAYLOAD, "{}", text.len());
            let p: Value = serde_json::from_str(&text).unwrap();
            assert!(p["body"].as_str().unwrap().ends_with('…'));
            // Most of the room is used.
            assert!(text.len() > MAX_PAYLOAD / 2, "{}", text.len());
        }
    }

    #[test]
    fn other_channels_get_plain_text() {
        let out =
            WebPushPayload::format(n(Priority::Critical, "b", "{}"), "console".into()).unwrap();
        assert_eq!(out[0].text, "[CRITICAL] BTCUSDT above 70000\nb");
    }
}
