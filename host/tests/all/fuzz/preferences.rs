//! `PUT /api/v1/users/{user_id}/preferences` bodies, through [`Preferences::parse`] (what
//! the route calls after checking the user id).
//!
//! Generated: the README's preferences and smaller ones (numeric chat ids, channel
//! names, quiet hours across midnight, mutes with and without kinds), edited (see
//! [`super::mutate`]) with time zones, addresses and URLs that are almost right, and raw
//! bytes. Checked: no panic; a refusal names a field of the document; accepted
//! preferences validate, come back unchanged from the document the store keeps, parse
//! again from the JSON the route answers with, and answer the questions the notify
//! worker asks of them (addresses, mutes, quiet hours) without panicking.

use impressox_host::notify::prefs::Preferences;

use super::mutate::{Doc, Grammar};
use super::{Meter, budget};

/// 2025-11-28T03:20:00Z: mutes before it are dropped on PUT.
const NOW: i64 = 1_764_300_000_000;

const PREFS: &[&str] = &[
    r#"{"channels": {"telegram": {"chat_id": "123456"}, "email": {"address": "a@example.com"},
               "webhook": {"url": "https://hooks.example.com/x"}},
  "enabled": ["telegram", "email"],
  "quiet_hours": {"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"},
  "mutes": [{"until": "2026-12-01T00:00:00Z", "kinds": ["price_alert"]}]}"#,
    r#"{"channels": {"telegram": {"chat_id": -1001234567890}, "console": {}}, "enabled": ["console", "telegram"]}"#,
    r#"{"channels": {"telegram": {"chat_id": "@impressox_news"}}, "quiet_hours": {"start": "09:30", "end": "17:45", "tz": "UTC"},
  "mutes": [{"until": "2030-01-01T00:00:00Z"}, {"until": "2020-01-01T00:00:00Z", "kinds": ["news"]}]}"#,
    r#"{}"#,
];

const WORDS: &[&str] = &[
    "channels",
    "telegram",
    "email",
    "webhook",
    "console",
    "chat_id",
    "address",
    "url",
    "enabled",
    "quiet_hours",
    "start",
    "end",
    "tz",
    "mutes",
    "until",
    "kinds",
    "sms",
    "price_alert",
    "123456",
    "-1001234567890",
    "0",
    "@abc",
    "@impressox_news",
    "9223372036854775808",
    "a@example.com",
    "a@b",
    "@example.com",
    "a@[127.0.0.1]",
    "\"quoted local\"@example.com",
    "https://hooks.example.com/x",
    "http://user:pw@example.com/",
    "https://",
    "ftp://example.com",
    "http://[::1]:8080/x",
    "http://xn--nxasmq6b.example/",
    "https://exa mple.com",
    "22:00",
    "07:00",
    "24:00",
    "23:60",
    "7:00",
    "+1:00",
    "00:00",
    "Europe/Berlin",
    "UTC",
    "Etc/GMT+12",
    "America/Argentina/Buenos_Aires",
    "europe/berlin",
    "Europe/Berln",
    "../../../../etc/localtime",
    "/etc/localtime",
    "posixrules",
    "EST5EDT,M3.2.0,M11.1.0",
    "2026-12-01T00:00:00Z",
    "2020-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "",
];

const FIELDS: &[&str] = &["channels", "enabled", "quiet_hours", "mutes", "body"];

#[test]
fn preference_bodies() {
    let grammar = Grammar::json(PREFS, WORDS);
    let meter = Meter::start("preferences");
    bolero::check!()
        .with_type::<Doc>()
        .with_test_time(budget())
        .for_each(|doc| {
            let body = grammar.render_json(doc);
            meter.input(&body, || match Preferences::parse(&body, NOW) {
                Ok(p) => assert_sound(&p, &body),
                Err(e) => {
                    let top = e.field.split(['.', '[']).next().unwrap_or("");
                    assert!(
                        FIELDS.contains(&top) || e.message.starts_with("unknown field"),
                        "the refusal names `{}`, not a field of the document: {e}; body {:?}",
                        e.field,
                        String::from_utf8_lossy(&body)
                    );
                    super::assert_names_something("preferences", &e.message, &body);
                }
            })
        });
    meter.finish();
}

fn assert_sound(p: &Preferences, body: &[u8]) {
    let input = String::from_utf8_lossy(body);
    p.validate()
        .unwrap_or_else(|e| panic!("accepted, yet invalid: {e}; body {input:?}"));
    let back = Preferences::from_doc(p.to_doc("u1", NOW))
        .unwrap_or_else(|e| panic!("the stored document does not read back: {e}; body {input:?}"));
    assert_eq!(&back, p, "changed by the store; body {input:?}");
    let answered = serde_json::to_vec(p).expect("preferences serialise");
    let again = Preferences::parse(&answered, NOW).unwrap_or_else(|e| {
        panic!("the route's answer, sent back, is refused: {e}; body {input:?}")
    });
    assert_eq!(&again, p, "body {input:?}");
    for channel in ["telegram", "email", "webhook", "console"] {
        let _ = p.address(channel);
    }
    for at in [NOW, NOW + 3_600_000 * 13, i64::MAX, i64::MIN, 0] {
        let _ = (p.muted("price_alert", at), p.quiet_until(at));
    }
}
