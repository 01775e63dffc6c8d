//! `POST /api/v1/rules` and `PATCH /api/v1/rules/{id}` bodies, through
//! `impressox_host::api::fuzzing`: the exact parsing and validation the routes run before
//! they touch the store (limits and storage are not the parser's and stay out).
//!
//! Generated: the README's and SPEC's rule bodies (every op and trigger mode, with and
//! without the optional fields) and patch bodies, edited (see [`super::mutate`]), and raw
//! bytes. Checked: no panic; a refusal is a 400 `invalid_json` or `invalid_field` whose
//! message names the field in backticks; an accepted rule survives what the store does to
//! it (JSON out and back in, the record the engine and the bot read) unchanged and still
//! valid, and renders for a processor and a notification title; an accepted patch keeps
//! the rule's identity, re-arms exactly when the condition or trigger changed, and leaves
//! a rule that validates.

use impressox_host::api::fuzzing::{Refusal, create_rule_body, patch_rule_body};
use impressox_host::market::rules::{RuleRecord, RuleSpec};

use super::mutate::{Doc, Grammar, Number};
use super::{Meter, budget};

const RULES: &[&str] = &[
    r#"{"user_id": "u1", "symbol": "BTCUSDT", "condition": {"op": "crosses_up", "value": 97000},
        "trigger": {"mode": "cooldown", "cooldown_secs": 600}, "channels": ["telegram"], "note": "breakout"}"#,
    r#"{"id": "rule-42", "user_id": "u1", "symbol": "BTCUSDT", "condition": {"op": "above", "value": 70000},
        "trigger": {"mode": "once"}, "expires_at": "2099-12-31T00:00:00Z", "channels": ["telegram", "email"],
        "processor": "threshold", "note": "ATH watch"}"#,
    r#"{"user_id": "u2", "symbol": "ETHUSDT", "condition": {"op": "pct_change", "value": -2.5,
        "direction": "down", "window_secs": 3600}, "trigger": {"mode": "every"}}"#,
    r#"{"user_id": "demo", "symbol": "SOLUSDT", "condition": {"op": "below", "value": 150.25}}"#,
    r#"{"user_id": "u3", "symbol": "XRPUSDT", "condition": {"op": "crosses_down", "value": 0.5},
        "channels": ["webhook", "console"], "expires_at": "2099-01-01T12:00:00.123+02:00"}"#,
];

const PATCHES: &[&str] = &[
    r#"{"enabled": false}"#,
    r#"{"note": "moved", "channels": ["email"]}"#,
    r#"{"condition": {"op": "above", "value": 71000}}"#,
    r#"{"trigger": {"mode": "cooldown", "cooldown_secs": 60}, "expires_at": null}"#,
    r#"{"condition": {"op": "pct_change", "value": 5, "direction": "up", "window_secs": 600}}"#,
    r#"{"processor": "threshold", "note": null, "expires_at": "2099-06-01T00:00:00Z"}"#,
    r#"{}"#,
];

/// Field names, values and near misses of the rule format.
const WORDS: &[&str] = &[
    "id",
    "user_id",
    "symbol",
    "condition",
    "op",
    "value",
    "direction",
    "window_secs",
    "trigger",
    "mode",
    "cooldown_secs",
    "expires_at",
    "channels",
    "processor",
    "note",
    "enabled",
    "state",
    "firing",
    "created_at",
    "BTCUSDT",
    "btcusdt",
    "BTC/USDT",
    "B",
    "ETHUSDT1234567890ABCDEFGH",
    "above",
    "below",
    "crosses_up",
    "crosses_down",
    "pct_change",
    "Above",
    "up",
    "down",
    "any",
    "once",
    "every",
    "cooldown",
    "telegram",
    "email",
    "webhook",
    "console",
    "sms",
    "threshold",
    "u1",
    "r_0123456789abcdef",
    "rule-42_a.b:c@d",
    "2099-12-31T00:00:00Z",
    "2001-01-01T00:00:00Z",
    "2099-02-30T00:00:00Z",
    "9999-12-31T23:59:59.999Z",
    "2099-12-31T23:59:60Z",
    "2099-12-31T00:00:00+14:00",
    "2099-12-31T00:00:00-23:59",
    "2099-12-31t00:00:00z",
    "2099-12-31 00:00:00Z",
    "+275760-09-13T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "2099-12-31T00:00:00.1234567891234Z",
    "70000",
    "1e3",
    "0",
    "",
    "null",
    "true",
];

fn assert_clean_refusal(what: &str, (status, code, message): &Refusal, body: &[u8]) {
    let input = String::from_utf8_lossy(body);
    assert_eq!(*status, 400, "{what}: {code} {message} for {input:?}");
    assert!(
        matches!(*code, "invalid_json" | "invalid_field"),
        "{what}: code {code} for {input:?}"
    );
    if *code == "invalid_field" {
        // `condition.value: ...`, "`id` cannot be changed": the field, in backticks.
        assert!(
            message.matches('`').count() >= 2,
            "{what}: the refusal names no field: {message:?} for {input:?}"
        );
    }
    super::assert_names_something(what, message, body);
}

/// What the store does to a record: JSON out, JSON in.
fn stored(rule: &RuleRecord) -> RuleRecord {
    let json = serde_json::to_string(rule).expect("a rule serialises");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("stored rule {json} reads back: {e}"))
}

/// Invariants of a rule the API accepted.
fn assert_sound(rule: &RuleRecord, body: &[u8]) {
    let input = String::from_utf8_lossy(body);
    assert_eq!(
        &stored(rule),
        rule,
        "the rule changes when stored and read back; body {input:?}"
    );
    rule.spec()
        .validate(false)
        .unwrap_or_else(|e| panic!("an accepted rule no longer validates ({e}); body {input:?}"));
    let _ = (
        rule.to_wit(0),
        rule.title(),
        rule.is_live(),
        rule.state(true, 0),
    );
}

#[test]
fn create_bodies() {
    let grammar = Grammar::json(RULES, WORDS);
    let meter = Meter::start("rules_create");
    bolero::check!()
        .with_type::<Doc>()
        .with_test_time(budget())
        .for_each(|doc| {
            let body = grammar.render_json(doc);
            meter.input(&body, || match create_rule_body(&body) {
                Ok(spec) => {
                    // The JSON the API answers with parses to the same accepted spec.
                    let again = serde_json::to_vec(&spec).expect("a spec serialises");
                    let reparsed: RuleSpec = create_rule_body(&again).unwrap_or_else(|r| {
                        panic!("{r:?}: an accepted rule, re-sent, is refused; body {again:?}")
                    });
                    assert_eq!(reparsed, spec, "body {:?}", String::from_utf8_lossy(&body));
                    assert_sound(&RuleRecord::create(spec), &body);
                }
                Err(refusal) => assert_clean_refusal("create", &refusal, &body),
            })
        });
    meter.finish();
}

/// A patch body, and the stored rule it is applied to: an example, perhaps with another
/// price level and after it fired.
#[derive(Debug, Clone, bolero::generator::TypeGenerator)]
struct Patch {
    rule: u8,
    value: Option<Number>,
    fired: bool,
    body: Doc,
}

#[test]
fn patch_bodies() {
    let rules: Vec<RuleRecord> = RULES
        .iter()
        .map(|r| RuleRecord::create(create_rule_body(r.as_bytes()).expect("example rule")))
        .collect();
    let grammar = Grammar::json(PATCHES, WORDS);
    let meter = Meter::start("rules_patch");
    bolero::check!()
        .with_type::<Patch>()
        .with_test_time(budget())
        .for_each(|patch| {
            let body = grammar.render_json(&patch.body);
            let mut before = rules[usize::from(patch.rule) % rules.len()].clone();
            if let Some(value) = patch.value.as_ref().and_then(|n| n.value().as_f64()) {
                let mut spec = before.spec();
                spec.condition.value = value;
                if spec.validate(false).is_ok() {
                    before.condition = spec.condition;
                }
            }
            if patch.fired {
                before.firing.armed = false;
                before.firing.fired_count = 1;
                before.firing.last_fired_ms = Some(1_764_300_000_000);
            }
            meter.input(&body, || match patch_rule_body(before.clone(), &body) {
                Ok((after, reset)) => {
                    let input = String::from_utf8_lossy(&body);
                    assert_eq!(
                        (&after.id, &after.user_id, &after.symbol, &after.created_at),
                        (
                            &before.id,
                            &before.user_id,
                            &before.symbol,
                            &before.created_at
                        ),
                        "a patch changed the rule's identity; body {input:?}"
                    );
                    // What the patch does not name stays as it was.
                    let named: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_slice(&body).expect("an accepted patch is an object");
                    if !named.contains_key("condition") {
                        assert_eq!(
                            after.condition, before.condition,
                            "the condition changed under a patch that does not name it; \
                             body {input:?}"
                        );
                    }
                    if !named.contains_key("trigger") {
                        assert_eq!(
                            after.trigger, before.trigger,
                            "the trigger changed under a patch that does not name it; \
                             body {input:?}"
                        );
                    }
                    let changed =
                        after.condition != before.condition || after.trigger != before.trigger;
                    assert_eq!(
                        reset, changed,
                        "re-armed ({reset}) although the condition and trigger changed: \
                         {changed}; body {input:?}"
                    );
                    if !reset {
                        assert_eq!(
                            after.firing, before.firing,
                            "firing state lost; body {input:?}"
                        );
                    }
                    assert_sound(&after, &body);
                }
                Err(refusal) => assert_clean_refusal("patch", &refusal, &body),
            })
        });
    meter.finish();
}
