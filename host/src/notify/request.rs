//! A notification request (SPEC §9): the JSON on `notify:requests` and the body of
//! `POST /api/v1/notifications`, its validation (errors name the field), and the body
//! hash that tells a retried request from an id reused for something else.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::input::{BodyError, FieldError, parse_json, valid_key};
use crate::market::rules::CHANNELS;

/// How urgent: `critical` bypasses quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Normal,
    Critical,
}

/// One notification request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationRequest {
    /// The idempotency key: the same id twice is one notification.
    pub id: String,
    pub user_id: String,
    /// e.g. `price_alert`; mutes and formatters key on it.
    pub kind: String,
    #[serde(default)]
    pub priority: Priority,
    pub title: String,
    #[serde(default)]
    pub body: String,
    /// Free-form JSON object for formatters and webhooks.
    #[serde(default = "empty_object")]
    pub data: Value,
    /// Absent: the user's enabled channels (or `console` without preferences).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

const MAX_TITLE: usize = 1024;
const MAX_BODY: usize = 16 * 1024;
const MAX_DATA: usize = 16 * 1024;

fn bad(field: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(field, message)
}

impl NotificationRequest {
    /// Parse JSON text (a stream entry), naming the field that is wrong.
    pub fn parse(text: &str) -> Result<NotificationRequest, FieldError> {
        let req: NotificationRequest = parse_json(text.as_bytes()).map_err(|e| match e {
            BodyError::Syntax(msg) => bad("body", msg),
            BodyError::Field(f) => f,
        })?;
        req.validate()?;
        Ok(req)
    }

    /// Check what types cannot say.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !valid_key(&self.id, 128) {
            return Err(bad(
                "id",
                "1-128 characters of letters, digits and - _ . : @",
            ));
        }
        if !valid_key(&self.user_id, 128) {
            return Err(bad(
                "user_id",
                "1-128 characters of letters, digits and - _ . : @",
            ));
        }
        if !valid_key(&self.kind, 64) {
            return Err(bad(
                "kind",
                "1-64 characters of letters, digits and - _ . : @",
            ));
        }
        if self.title.trim().is_empty() || self.title.len() > MAX_TITLE {
            return Err(bad("title", format!("1 to {MAX_TITLE} bytes")));
        }
        if self.body.len() > MAX_BODY {
            return Err(bad("body", format!("at most {MAX_BODY} bytes")));
        }
        if !self.data.is_object() {
            return Err(bad("data", "must be a JSON object"));
        }
        if self.data.to_string().len() > MAX_DATA {
            return Err(bad("data", format!("at most {MAX_DATA} bytes as JSON")));
        }
        if let Some(chs) = &self.channels {
            if chs.is_empty() {
                return Err(bad(
                    "channels",
                    "an empty list would deliver nowhere; name channels or leave it out",
                ));
            }
            for (i, ch) in chs.iter().enumerate() {
                if !CHANNELS.contains(&ch.as_str()) {
                    return Err(bad(
                        &format!("channels[{i}]"),
                        format!("unknown channel {ch:?}; one of {}", CHANNELS.join(", ")),
                    ));
                }
            }
        }
        Ok(())
    }

    /// SHA-256 of the request's canonical JSON (object keys sorted), hex: equal for the
    /// same request however its JSON was spelled, different when an id is reused.
    pub fn body_hash(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or(Value::Null);
        let mut canonical = String::new();
        write_canonical(&v, &mut canonical);
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// JSON with object keys in sorted order (independent of serde_json's `preserve_order`).
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = r#"{"id": "rule-42-1764300000", "user_id": "u1", "kind": "price_alert", "priority": "normal",
        "title": "BTCUSDT above 70000", "body": "BTCUSDT is 70123.40 (Binance)", "data": {"price": 70123.4},
        "channels": ["telegram"]}"#;

    #[test]
    fn the_spec_example_parses() {
        let r = NotificationRequest::parse(SPEC_EXAMPLE).unwrap();
        assert_eq!(r.priority, Priority::Normal);
        assert_eq!(r.channels.as_deref(), Some(&["telegram".to_string()][..]));
        assert_eq!(r.data["price"], 70123.4);
    }

    #[test]
    fn what_the_market_monitor_enqueues_parses() {
        // The engine's request shape (market/engine.rs): no channels, null fields in data.
        let text = r#"{"id":"rule-r1-1764300005","user_id":"demo","kind":"price_alert","priority":"normal",
            "title":"BTCUSDT above 108","body":"BTCUSDT is 110 (file): x","data":{"rule_id":"r1","note":null,"reference_price":null}}"#;
        let r = NotificationRequest::parse(text).unwrap();
        assert_eq!(r.channels, None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"user_id":"u","kind":"k","title":"t"}"#, "id"),
            (r#"{"id":"a b","user_id":"u","kind":"k","title":"t"}"#, "id"),
            (
                r#"{"id":"a","user_id":"u","kind":"k","title":"t","priority":"urgent"}"#,
                "priority",
            ),
            (r#"{"id":"a","user_id":"u","kind":"k","title":""}"#, "title"),
            (
                r#"{"id":"a","user_id":"u","kind":"k","title":"t","data":[1]}"#,
                "data",
            ),
            (
                r#"{"id":"a","user_id":"u","kind":"k","title":"t","channels":["sms"]}"#,
                "channels[0]",
            ),
            (
                r#"{"id":"a","user_id":"u","kind":"k","title":"t","colour":1}"#,
                "colour",
            ),
            (
                r#"{"id":"a","user_id":"u","kind":"k","title":"t","channels":[]}"#,
                "channels",
            ),
            (r#"{"id":"a","#, "body"),
        ];
        for (text, field) in cases {
            let err = NotificationRequest::parse(text).unwrap_err();
            assert_eq!(err.field, field, "{text}: {err}");
        }
        let long = format!(
            r#"{{"id":"a","user_id":"u","kind":"k","title":"t","body":"{}"}}"#,
            "x".repeat(MAX_BODY + 1)
        );
        assert_eq!(NotificationRequest::parse(&long).unwrap_err().field, "body");
    }

    #[test]
    fn the_body_hash_ignores_spelling_but_not_content() {
        let a = NotificationRequest::parse(SPEC_EXAMPLE).unwrap();
        let respelled = r#"{"channels":["telegram"],"data":{"price":70123.4},"body":"BTCUSDT is 70123.40 (Binance)",
            "title":"BTCUSDT above 70000","kind":"price_alert","user_id":"u1","id":"rule-42-1764300000"}"#;
        let b = NotificationRequest::parse(respelled).unwrap();
        assert_eq!(a.body_hash(), b.body_hash());
        let mut c = a.clone();
        c.title.push('!');
        assert_ne!(a.body_hash(), c.body_hash());
    }
}
