//! A user's notification preferences (SPEC §9): channel addresses, enabled channels,
//! quiet hours with a time zone, and mutes. The JSON of
//! `GET/PUT /api/v1/users/{user_id}/preferences`, its validation (errors name the field),
//! and its document in the `preferences` collection (`_id` = user id).

use std::collections::BTreeSet;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::quiet::{self, QuietHours};
use super::webpush::{MAX_SUBSCRIPTIONS, Subscription, shown_origin};
use crate::documents::Doc;
use crate::input::{BodyError, FieldError, parse_json};
use crate::market::rules::CHANNELS;

/// Where a user's channels deliver.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelAddresses {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram: Option<TelegramAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webpush: Option<WebPushAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discord: Option<WebhookAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<WebhookAddress>,
}

/// A user's browsers: one push subscription each, each its own delivery target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebPushAddress {
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramAddress {
    /// A chat id (`123456`, `-100…` for groups) or a channel's `@name`; a JSON number or string.
    #[serde(deserialize_with = "string_or_integer")]
    pub chat_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailAddress {
    pub address: String,
}

/// A webhook URL (Discord, Slack, generic): its path is often the credential, so `Debug`
/// shows the origin only.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookAddress {
    pub url: String,
}

impl std::fmt::Debug for WebhookAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAddress")
            .field("url", &shown_origin(&self.url))
            .finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleAddress {}

/// A mute: no deliveries of the listed kinds (all kinds when empty) until `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mute {
    /// RFC 3339.
    pub until: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
}

/// The preferences document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    #[serde(default)]
    pub channels: ChannelAddresses,
    /// Channels used when a request names none.
    #[serde(default)]
    pub enabled: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mutes: Vec<Mute>,
}

fn string_or_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) if n.is_i64() => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a chat id (number or string), got {other}"
        ))),
    }
}

fn bad(field: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(field, message)
}

/// Is `chat_id` a Telegram chat id or channel username?
pub fn valid_chat_id(chat_id: &str) -> bool {
    if let Some(name) = chat_id.strip_prefix('@') {
        return (5..=32).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    }
    chat_id.parse::<i64>().is_ok_and(|n| n != 0)
}

/// Check a webhook URL's form (where it points is checked when it is called).
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("needs a host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials (they would be logged and stored)".into());
    }
    Ok(())
}

/// Check a Discord or Slack incoming-webhook URL: a webhook URL whose path carries the
/// service's own prefix (`/api/webhooks/` for Discord, `/services/` for Slack), so one
/// pasted into the other channel is caught here rather than at the first send.
pub fn check_chat_hook_url(url: &str, path_prefixes: &[&str]) -> Result<(), String> {
    check_webhook_url(url)?;
    let path = reqwest::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_default();
    if !path_prefixes.iter().any(|p| path.starts_with(p)) {
        return Err(format!(
            "not an incoming-webhook URL: its path must start with {}",
            path_prefixes.join(" or ")
        ));
    }
    Ok(())
}

/// Discord's webhook paths (with or without an API version).
pub const DISCORD_HOOK_PATHS: &[&str] = &["/api/webhooks/", "/api/v10/webhooks/"];
/// Slack's incoming-webhook path.
pub const SLACK_HOOK_PATHS: &[&str] = &["/services/"];

impl Preferences {
    /// Parse a PUT body, naming the field that is wrong. Expired mutes are dropped.
    pub fn parse(bytes: &[u8], now_ms: i64) -> Result<Preferences, FieldError> {
        let mut p: Preferences = parse_json(bytes).map_err(|e| match e {
            BodyError::Syntax(msg) => bad("body", msg),
            BodyError::Field(f) => f,
        })?;
        p.validate()?;
        p.canonicalize();
        p.mutes
            .retain(|m| crate::util::parse_rfc3339_ms(&m.until).is_some_and(|t| t > now_ms));
        Ok(p)
    }

    /// Check what types cannot say.
    pub fn validate(&self) -> Result<(), FieldError> {
        if let Some(t) = &self.channels.telegram
            && !valid_chat_id(&t.chat_id)
        {
            return Err(bad(
                "channels.telegram.chat_id",
                "a chat id like 123456 or -1001234567890, or a channel's @name",
            ));
        }
        if let Some(e) = &self.channels.email
            && let Err(err) = lettre::Address::from_str(&e.address)
        {
            return Err(bad(
                "channels.email.address",
                format!("not an email address: {err}"),
            ));
        }
        if let Some(w) = &self.channels.webhook
            && let Err(msg) = check_webhook_url(&w.url)
        {
            return Err(bad("channels.webhook.url", msg));
        }
        if let Some(w) = &self.channels.webpush {
            if w.subscriptions.len() > MAX_SUBSCRIPTIONS {
                return Err(bad(
                    "channels.webpush.subscriptions",
                    format!("at most {MAX_SUBSCRIPTIONS} (one per browser)"),
                ));
            }
            let mut endpoints = BTreeSet::new();
            for (i, s) in w.subscriptions.iter().enumerate() {
                let field = format!("channels.webpush.subscriptions[{i}]");
                s.checked(&field)?;
                if !endpoints.insert(&s.endpoint) {
                    return Err(bad(
                        &format!("{field}.endpoint"),
                        "listed twice (one subscription per endpoint)",
                    ));
                }
            }
        }
        for (field, hook, paths) in [
            (
                "channels.discord.url",
                &self.channels.discord,
                DISCORD_HOOK_PATHS,
            ),
            ("channels.slack.url", &self.channels.slack, SLACK_HOOK_PATHS),
        ] {
            if let Some(h) = hook
                && let Err(msg) = check_chat_hook_url(&h.url, paths)
            {
                return Err(bad(field, msg));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, ch) in self.enabled.iter().enumerate() {
            let field = format!("enabled[{i}]");
            if !CHANNELS.contains(&ch.as_str()) {
                return Err(bad(
                    &field,
                    format!("unknown channel {ch:?}; one of {}", CHANNELS.join(", ")),
                ));
            }
            if !seen.insert(ch) {
                return Err(bad(&field, format!("{ch:?} is listed twice")));
            }
            if ch != "console" && self.targets(ch).is_empty() {
                return Err(bad(
                    &field,
                    format!("{ch:?} is enabled but channels.{ch} gives no address"),
                ));
            }
        }
        if let Some(q) = &self.quiet_hours {
            q.validate("quiet_hours")?;
        }
        for (i, m) in self.mutes.iter().enumerate() {
            if crate::util::parse_rfc3339_ms(&m.until).is_none() {
                return Err(bad(
                    &format!("mutes[{i}].until"),
                    "an RFC 3339 time, e.g. 2026-12-01T00:00:00Z",
                ));
            }
            for (j, k) in m.kinds.iter().enumerate() {
                if !crate::input::valid_key(k, 64) {
                    return Err(bad(
                        &format!("mutes[{i}].kinds[{j}]"),
                        "1-64 characters of letters, digits and - _ . : @",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Subscriptions in canonical form (validation passed).
    fn canonicalize(&mut self) {
        if let Some(w) = &mut self.channels.webpush {
            for s in &mut w.subscriptions {
                if let Ok(c) = s.checked("") {
                    *s = c;
                }
            }
        }
    }

    /// The delivery target on `channel`: a chat id, an address (lower-cased), a URL, or
    /// `stdout` for the console. For `webpush`, the first subscription (see [`Self::targets`]).
    pub fn address(&self, channel: &str) -> Option<String> {
        self.targets(channel).into_iter().next()
    }

    /// Every delivery target on `channel`: one, except for `webpush`, where each
    /// subscription (each browser) is its own target.
    pub fn targets(&self, channel: &str) -> Vec<String> {
        let c = &self.channels;
        let one = match channel {
            "telegram" => c.telegram.as_ref().map(|t| t.chat_id.clone()),
            "email" => c.email.as_ref().map(|e| e.address.to_ascii_lowercase()),
            "webhook" => c.webhook.as_ref().map(|w| w.url.clone()),
            "discord" => c.discord.as_ref().map(|w| w.url.clone()),
            "slack" => c.slack.as_ref().map(|w| w.url.clone()),
            "console" => Some("stdout".into()),
            "webpush" => {
                return c
                    .webpush
                    .as_ref()
                    .map(|w| w.subscriptions.iter().map(Subscription::target).collect())
                    .unwrap_or_default();
            }
            _ => None,
        };
        one.into_iter().collect()
    }

    /// The preferences as the API shows them: Discord and Slack webhook URLs (whose path is
    /// the credential) as their origin, and push subscriptions by endpoint origin without
    /// their keys. A PUT must send those in full again.
    pub fn redacted(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        for ch in ["discord", "slack"] {
            if let Some(url) = v["channels"][ch]["url"].as_str().map(shown_origin) {
                v["channels"][ch]["url"] = url.into();
            }
        }
        if let Some(w) = &self.channels.webpush {
            v["channels"]["webpush"]["subscriptions"] = w
                .subscriptions
                .iter()
                .map(|s| serde_json::json!({"endpoint": s.shown()}))
                .collect();
        }
        v
    }

    /// Is a mute covering `kind` active at `now_ms`?
    pub fn muted(&self, kind: &str, now_ms: i64) -> Option<&Mute> {
        self.mutes.iter().find(|m| {
            crate::util::parse_rfc3339_ms(&m.until).is_some_and(|until| until > now_ms)
                && (m.kinds.is_empty() || m.kinds.iter().any(|k| k == kind))
        })
    }

    /// When quiet hours hold `now_ms`, the instant they end.
    pub fn quiet_until(&self, now_ms: i64) -> Option<i64> {
        self.quiet_hours
            .as_ref()
            .and_then(|q| quiet::quiet_until(q, now_ms))
    }

    /// The stored document.
    pub fn to_doc(&self, user_id: &str, now_ms: i64) -> Doc {
        let mut doc = match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Doc::new(),
        };
        doc.insert("_id".into(), user_id.into());
        doc.insert("updated_ms".into(), now_ms.into());
        doc
    }

    /// Read a stored document back.
    pub fn from_doc(mut doc: Doc) -> anyhow::Result<Preferences> {
        doc.remove("_id");
        doc.remove("_rev");
        doc.remove("updated_ms");
        Ok(serde_json::from_value(Value::Object(doc))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_300_000_000; // 2025-11-28T03:20:00Z

    #[test]
    fn a_webhook_address_debug_shows_its_origin_only() {
        let a = WebhookAddress {
            url: "https://discord.com/api/webhooks/123/token-part".into(),
        };
        let shown = format!("{a:?}");
        assert!(shown.contains("https://discord.com/"), "{shown}");
        assert!(!shown.contains("token-part"), "{shown}");
    }

    #[test]
    fn the_spec_example_round_trips() {
        let text = br#"{"channels": {"telegram": {"chat_id": "123456"}, "email": {"address": "a@example.com"},
                "webhook": {"url": "https://hooks.example.com/x"}, "console": {}},
            "enabled": ["telegram", "console"],
            "quiet_hours": {"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"},
            "mutes": [{"until": "2026-12-01T00:00:00Z", "kinds": ["price_alert"]}]}"#;
        let p = Preferences::parse(text, NOW).unwrap();
        assert_eq!(p.address("telegram").as_deref(), Some("123456"));
        assert_eq!(p.mutes.len(), 1);
        let back = Preferences::from_doc(p.to_doc("u1", NOW)).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn a_numeric_chat_id_is_accepted() {
        let p =
            Preferences::parse(br#"{"channels":{"telegram":{"chat_id":-1001234}}}"#, NOW).unwrap();
        assert_eq!(p.address("telegram").as_deref(), Some("-1001234"));
    }

    #[test]
    fn validation_names_the_field() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"channels":{"telegram":{"chat_id":"abc"}}}"#,
                "channels.telegram.chat_id",
            ),
            (
                r#"{"channels":{"email":{"address":"not an address"}}}"#,
                "channels.email.address",
            ),
            (
                r#"{"channels":{"webhook":{"url":"ftp://x"}}}"#,
                "channels.webhook.url",
            ),
            (r#"{"enabled":["console","sms"]}"#, "enabled[1]"),
            (r#"{"enabled":["telegram"]}"#, "enabled[0]"),
            (r#"{"enabled":["console","console"]}"#, "enabled[1]"),
            (
                r#"{"quiet_hours":{"start":"25:00","end":"07:00","tz":"UTC"}}"#,
                "quiet_hours.start",
            ),
            (
                r#"{"quiet_hours":{"start":"07:00","end":"07:00","tz":"UTC"}}"#,
                "quiet_hours.end",
            ),
            (
                r#"{"quiet_hours":{"start":"22:00","end":"07:00","tz":"Europe/Berln"}}"#,
                "quiet_hours.tz",
            ),
            (r#"{"mutes":[{"until":"tomorrow"}]}"#, "mutes[0].until"),
            (
                r#"{"mutes":[{"until":"2030-01-01T00:00:00Z","kinds":["ok","a b"]}]}"#,
                "mutes[0].kinds[1]",
            ),
            (r#"{"colour":1}"#, "colour"),
            (
                r#"{"channels":{"discord":{"url":"https://hooks.slack.com/services/T/B/x"}}}"#,
                "channels.discord.url",
            ),
            (
                r#"{"channels":{"slack":{"url":"https://discord.com/api/webhooks/1/x"}}}"#,
                "channels.slack.url",
            ),
            (
                r#"{"channels":{"webpush":{"subscriptions":[{"endpoint":"https://p.example/x","keys":{"p256dh":"AA","auth":"AA"}}]}}}"#,
                "channels.webpush.subscriptions[0].keys.p256dh",
            ),
            (r#"{"enabled":["webpush"]}"#, "enabled[0]"),
        ];
        for (text, field) in cases {
            let err = Preferences::parse(text.as_bytes(), NOW).unwrap_err();
            assert_eq!(&err.field, field, "{text}: {err}");
        }
    }

    #[test]
    fn mutes_match_kinds_and_expire() {
        let p = Preferences::parse(
            br#"{"mutes":[{"until":"2030-01-01T00:00:00Z","kinds":["price_alert"]}]}"#,
            NOW,
        )
        .unwrap();
        assert!(p.muted("price_alert", NOW).is_some());
        assert!(p.muted("news", NOW).is_none());
        let later = crate::util::parse_rfc3339_ms("2030-01-01T00:00:01Z").unwrap();
        assert!(p.muted("price_alert", later).is_none());
        let all =
            Preferences::parse(br#"{"mutes":[{"until":"2030-01-01T00:00:00Z"}]}"#, NOW).unwrap();
        assert!(all.muted("anything", NOW).is_some());
        let expired =
            Preferences::parse(br#"{"mutes":[{"until":"2020-01-01T00:00:00Z"}]}"#, NOW).unwrap();
        assert!(expired.mutes.is_empty(), "expired mutes are dropped on PUT");
    }
}
