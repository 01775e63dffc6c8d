//! Rules through the API (found by the fuzz target `crate::fuzz::rules::patch_bodies`).

use impressox_host::api::Services;
use impressox_host::api::fuzzing::patch_rule_body;
use impressox_host::market::config::RuleSymbols;
use impressox_host::market::rule_limits::RulePolicy;
use impressox_host::market::rules::RuleRecord;
use impressox_host::storage::StoreLimits;

use crate::harness::*;

/// The `"condition":{...}` text of an API answer.
fn condition_text(answer: &str) -> String {
    let start = answer.find("\"condition\":").expect("a condition");
    let end = start + answer[start..].find('}').expect("its end");
    answer[start..=end].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_that_does_not_name_the_condition_leaves_it_exactly_as_it_was() {
    let host = host();
    std::fs::create_dir_all(host.config.data_dir()).unwrap();
    let store = impressox_host::storage::open(&host.config, StoreLimits::default())
        .await
        .unwrap();
    let (base, _server) = serve_api(
        host.runtime.clone(),
        Services {
            store: Some(store),
            // The rule is created before any feed prices its symbol.
            rules: RulePolicy {
                symbols: RuleSymbols::Any,
                ..RulePolicy::default()
            },
            ..Default::default()
        },
    )
    .await;
    let base = format!("{base}/api/v1");
    let http = reqwest::Client::new();

    // A level whose shortest decimal form has 17 digits: serde_json's default parser
    // read it back one unit in the last place off.
    let created = http
        .post(format!("{base}/rules"))
        .header("content-type", "application/json")
        .body(r#"{"id": "r1", "user_id": "u1", "symbol": "BTCUSDT", "condition": {"op": "crosses_up", "value": 1081145385545629696}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created = created.text().await.unwrap();
    for note in ["first", "second"] {
        let patched = http
            .patch(format!("{base}/rules/r1"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"note": "{note}"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 200);
        let patched = patched.text().await.unwrap();
        assert_eq!(condition_text(&patched), condition_text(&created));
    }

    // A rule that fired stays fired: the patch did not change what fires it.
    let mut rule: RuleRecord = serde_json::from_str(&created).unwrap();
    rule.firing.armed = false;
    rule.firing.fired_count = 1;
    let (after, reset) = patch_rule_body(rule.clone(), br#"{"note": "x"}"#).unwrap();
    assert!(!reset, "a note re-armed the rule");
    assert_eq!(after.firing, rule.firing);
    assert_eq!(after.condition, rule.condition);
}
