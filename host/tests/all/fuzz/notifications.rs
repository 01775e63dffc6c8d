//! `POST /api/v1/notifications` bodies (and `notify:requests` stream entries, which the
//! notify worker parses with the same [`NotificationRequest::parse`]).
//!
//! Generated: the README's request and the market monitor's, edited (see
//! [`super::mutate`]), and raw bytes; the route's UTF-8 check comes first, as in the
//! route. Checked: no panic; a refusal names a field (`id`, `channels[1]`, `body` for
//! syntax); an accepted request passes its own validation, survives the JSON round trip
//! the stream and the store put it through unchanged, and its idempotency hash is the
//! same for the request re-sent with its fields in another order.

use impressox_host::notify::request::NotificationRequest;
use serde_json::Value;

use super::mutate::{Doc, Grammar};
use super::{Meter, budget};

const REQUESTS: &[&str] = &[
    r#"{"id": "rule-42-1764300000", "user_id": "u1", "kind": "price_alert", "priority": "normal",
        "title": "BTCUSDT above 70000", "body": "BTCUSDT is 70123.40 (Binance)", "data": {"price": 70123.4},
        "channels": ["telegram"]}"#,
    r#"{"id":"rule-r1-1764300005","user_id":"demo","kind":"price_alert","priority":"normal",
        "title":"BTCUSDT above 108","body":"BTCUSDT is 110 (file): x",
        "data":{"rule_id":"r1","note":null,"reference_price":null}}"#,
    r#"{"id": "n-1", "user_id": "u2", "kind": "news", "priority": "critical", "title": "Halted",
        "channels": ["email", "webhook", "console"], "data": {"nested": {"list": [1, 2.5, "x", true]}}}"#,
];

const WORDS: &[&str] = &[
    "id",
    "user_id",
    "kind",
    "priority",
    "title",
    "body",
    "data",
    "channels",
    "normal",
    "critical",
    "urgent",
    "price_alert",
    "telegram",
    "email",
    "webhook",
    "console",
    "sms",
    "rule-42-1764300000",
    "u1",
    "a b",
    "price",
    "",
    " ",
];

/// Top-level fields of a request (`body` also stands for the body as a whole); a refusal
/// naming anything else must be about an unknown field.
const FIELDS: &[&str] = &[
    "id", "user_id", "kind", "priority", "title", "body", "data", "channels",
];

#[test]
fn request_bodies() {
    let grammar = Grammar::json(REQUESTS, WORDS);
    let meter = Meter::start("notifications");
    bolero::check!()
        .with_type::<Doc>()
        .with_test_time(budget())
        .for_each(|doc| {
            let body = grammar.render_json(doc);
            meter.input(&body, || {
                // The route refuses a body that is not UTF-8 before parsing it.
                let Ok(text) = std::str::from_utf8(&body) else {
                    return;
                };
                match NotificationRequest::parse(text) {
                    Ok(req) => assert_sound(&req, text),
                    Err(e) => {
                        let top = e.field.split(['.', '[']).next().unwrap_or("");
                        assert!(
                            FIELDS.contains(&top) || e.message.starts_with("unknown field"),
                            "the refusal names `{}`, which is not a field of the body: {e}; \
                             body {text:?}",
                            e.field
                        );
                        super::assert_names_something("notification", &e.message, &body);
                    }
                }
            })
        });
    meter.finish();
}

fn assert_sound(req: &NotificationRequest, text: &str) {
    req.validate()
        .unwrap_or_else(|e| panic!("accepted, yet invalid: {e}; body {text:?}"));
    let json = serde_json::to_string(req).expect("a request serialises");
    let again = NotificationRequest::parse(&json)
        .unwrap_or_else(|e| panic!("re-parsing {json} fails: {e}; body {text:?}"));
    assert_eq!(&again, req, "changed by a JSON round trip; body {text:?}");
    assert_eq!(again.body_hash(), req.body_hash(), "body {text:?}");
    // The same request with its fields (and data's) in reverse order.
    let mut reordered = serde_json::to_value(req).expect("a request as JSON");
    reverse_keys(&mut reordered);
    let respelled = NotificationRequest::parse(&reordered.to_string())
        .unwrap_or_else(|e| panic!("reordered request refused: {e}; body {text:?}"));
    assert_eq!(
        respelled.body_hash(),
        req.body_hash(),
        "the idempotency hash depends on field order; body {text:?}"
    );
}

fn reverse_keys(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
            entries.reverse();
            for (k, mut child) in entries {
                reverse_keys(&mut child);
                m.insert(k, child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(reverse_keys),
        _ => {}
    }
}
