//! `/api/v1/rules`: validation naming the field (nothing stored), list filters, patch,
//! delete, the `waiting_for_processor` state, and a rule created while prices flow.

use std::time::Duration;

use serde_json::{Value, json};

use super::pipeline::replay_market;
use super::rig::{BOTH, Rig, write_csv};

const T0: i64 = 1_764_300_000_000;

fn btc_above(v: f64) -> Value {
    json!({"user_id": "u1", "symbol": "BTCUSDT", "condition": {"op": "above", "value": v}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_get_a_4xx_naming_the_field_and_nothing_is_stored() {
    let files = tempfile::tempdir().unwrap();
    let csv = write_csv(files.path(), "p.csv", &[(T0, "BTCUSDT", 1.0)]);
    let rig = Rig::start(super::rig::Backend::Embedded, &replay_market(&csv, 1.0, "")).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"symbol": "BTCUSDT", "condition": {"op": "above", "value": 1}}),
            "user_id",
        ),
        (
            json!({"user_id": "u", "symbol": "btc/usdt", "condition": {"op": "above", "value": 1}}),
            "symbol",
        ),
        (
            json!({"user_id": "u", "symbol": "BTCUSDT", "condition": {"op": "sideways", "value": 1}}),
            "condition.op",
        ),
        (
            json!({"user_id": "u", "symbol": "BTCUSDT", "condition": {"op": "above", "value": "high"}}),
            "condition.value",
        ),
        (
            json!({"user_id": "u", "symbol": "BTCUSDT", "condition": {"op": "above", "value": 0}}),
            "condition.value",
        ),
        (
            json!({"user_id": "u", "symbol": "BTCUSDT", "condition": {"op": "pct_change", "value": 5}}),
            "condition.window_secs",
        ),
        (
            json!({"user_id": "u", "symbol": "BTCUSDT", "condition": {"op": "above", "value": 1}, "trigger": {"mode": "cooldown"}}),
            "trigger.cooldown_secs",
        ),
        (
            json!({"user_id": "u", "symbol": "BTCUSDT", "condition": {"op": "above", "value": 1}, "expires_at": "soon"}),
            "expires_at",
        ),
        (
            json!({"user_id": "u", "symbol": "BTCUSDT", "condition": {"op": "above", "value": 1}, "channels": ["sms"]}),
            "channels[0]",
        ),
        (
            json!({"user_id": "u", "symbol": "BTCUSDT", "condition": {"op": "above", "value": 1}, "colour": "red"}),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let (status, v) = rig.post("/api/v1/rules", body.clone()).await;
        assert_eq!(status, 400, "{body} → {v}");
        assert_eq!(v["error"]["code"], "invalid_field", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(field),
            "{body}: message {msg:?} should name {field}"
        );
    }
    let r = rig
        .http
        .post(format!("{}/api/v1/rules", rig.api))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let (_, list) = rig.get("/api/v1/rules").await;
    assert_eq!(list["rules"].as_array().unwrap().len(), 0, "{list}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_created_listed_patched_and_deleted() {
    for backend in BOTH {
        let files = tempfile::tempdir().unwrap();
        let csv = write_csv(files.path(), "p.csv", &[(T0, "BTCUSDT", 1.0)]);
        let rig = Rig::start(backend, &replay_market(&csv, 1.0, "")).await;
        let a = rig.rule(btc_above(70_000.0)).await;
        assert!(a["id"].as_str().unwrap().starts_with("r_"));
        assert_eq!(a["state"], "active");
        assert_eq!(a["processor"], "threshold");
        assert!(a["created_at"].is_string());
        rig.rule(json!({"id": "eth-1", "user_id": "u2", "symbol": "ETHUSDT",
            "condition": {"op": "pct_change", "value": 3, "direction": "down", "window_secs": 300},
            "trigger": {"mode": "cooldown", "cooldown_secs": 600},
            "expires_at": "2099-01-01T00:00:00Z", "channels": ["telegram", "email"], "note": "dip"}))
            .await;
        let waiting = rig
            .rule(json!({"user_id": "u1", "symbol": "SOLUSDT",
                "condition": {"op": "below", "value": 100}, "processor": "fancy-ml"}))
            .await;
        assert_eq!(waiting["state"], "waiting_for_processor");
        let (status, _) = rig.post("/api/v1/rules", json!({"id": "eth-1", "user_id": "u", "symbol": "ETHUSDT", "condition": {"op": "above", "value": 1}})).await;
        assert_eq!(status, 409);

        let (_, all) = rig.get("/api/v1/rules").await;
        assert_eq!(all["rules"].as_array().unwrap().len(), 3);
        let (_, u1) = rig.get("/api/v1/rules?user_id=u1").await;
        assert_eq!(u1["rules"].as_array().unwrap().len(), 2);
        let (_, eth) = rig.get("/api/v1/rules?symbol=ETHUSDT").await;
        assert_eq!(eth["rules"][0]["id"], "eth-1");
        assert_eq!(eth["rules"][0]["condition"]["window_secs"], 300);

        let (status, p) = rig
            .patch(
                "/api/v1/rules/eth-1",
                json!({"note": null, "enabled": false}),
            )
            .await;
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["state"], "disabled");
        assert!(p.get("note").is_none_or(Value::is_null));
        let (status, p) = rig
            .patch("/api/v1/rules/eth-1", json!({"symbol": "BTCUSDT"}))
            .await;
        assert_eq!(status, 400);
        assert!(p["error"]["message"].as_str().unwrap().contains("symbol"));
        let (status, p) = rig
            .patch(
                "/api/v1/rules/eth-1",
                json!({"condition": {"op": "above", "value": -3}}),
            )
            .await;
        assert_eq!(status, 400);
        assert!(
            p["error"]["message"]
                .as_str()
                .unwrap()
                .contains("condition.value"),
            "{p}"
        );
        let (_, still) = rig.get("/api/v1/rules/eth-1").await;
        assert_eq!(
            still["condition"]["op"], "pct_change",
            "a refused patch changes nothing"
        );

        let id = a["id"].as_str().unwrap();
        assert_eq!(rig.delete(&format!("/api/v1/rules/{id}")).await, 204);
        assert_eq!(rig.delete(&format!("/api/v1/rules/{id}")).await, 404);
        let (status, _) = rig.get(&format!("/api/v1/rules/{id}")).await;
        assert_eq!(status, 404);
        rig.handle().flush().await;
        let (_, all) = rig.get("/api/v1/rules").await;
        assert_eq!(
            all["rules"].as_array().unwrap().len(),
            2,
            "deleted rules stay deleted"
        );
        rig.stop().await;
    }
}

/// Every page of `path` (which carries `limit=`), followed by `next_offset` to the end.
async fn all_pages(rig: &Rig, path: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut offset = 0;
    loop {
        let (status, page) = rig.get(&format!("{path}&offset={offset}")).await;
        assert_eq!(status, 200, "{path}: {page}");
        let rules = page["rules"].as_array().unwrap();
        assert!(rules.len() <= 3, "{path}: a page holds at most `limit`");
        ids.extend(rules.iter().map(|r| r["id"].as_str().unwrap().to_string()));
        match page["next_offset"].as_u64() {
            Some(next) => {
                assert_eq!(next as usize, offset + rules.len(), "{path}: {page}");
                offset = next as usize;
            }
            None => return ids,
        }
    }
}

/// `limit`/`offset` pages walk the same rules as the unpaged list, in creation order, with
/// the user and symbol filters alone and together, and skip a rule deleted meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_pages_follow_next_offset_through_every_filter() {
    for backend in BOTH {
        let files = tempfile::tempdir().unwrap();
        let csv = write_csv(files.path(), "p.csv", &[(T0, "BTCUSDT", 1.0)]);
        let rig = Rig::start(backend, &replay_market(&csv, 1.0, "")).await;
        let mut created = Vec::new();
        for i in 0..10 {
            let symbol = if i % 2 == 0 { "BTCUSDT" } else { "ETHUSDT" };
            let user = if i % 3 == 0 { "u1" } else { "u2" };
            let r = rig
                .rule(
                    json!({"id": format!("p{i:02}"), "user_id": user, "symbol": symbol,
                    "condition": {"op": "above", "value": 1 + i}}),
                )
                .await;
            created.push((r["id"].as_str().unwrap().to_string(), user, symbol));
        }
        let expect = |user: Option<&str>, symbol: Option<&str>| -> Vec<String> {
            created
                .iter()
                .filter(|(_, u, s)| user.is_none_or(|x| x == *u) && symbol.is_none_or(|x| x == *s))
                .map(|(id, _, _)| id.clone())
                .collect()
        };
        for (query, user, symbol) in [
            ("", None, None),
            ("&user_id=u1", Some("u1"), None),
            ("&symbol=ethusdt", None, Some("ETHUSDT")),
            ("&user_id=u2&symbol=BTCUSDT", Some("u2"), Some("BTCUSDT")),
        ] {
            let paged = all_pages(&rig, &format!("/api/v1/rules?limit=3{query}")).await;
            assert_eq!(paged, expect(user, symbol), "{backend:?} {query}");
            let unpaged_path = match query.strip_prefix('&') {
                Some(q) => format!("/api/v1/rules?{q}"),
                None => "/api/v1/rules".to_string(),
            };
            let (_, unpaged) = rig.get(&unpaged_path).await;
            let mut unpaged: Vec<String> = unpaged["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect();
            unpaged.sort();
            let mut sorted = paged.clone();
            sorted.sort();
            assert_eq!(sorted, unpaged, "{backend:?} {query}: paged = unpaged");
        }
        assert_eq!(rig.delete("/api/v1/rules/p04").await, 204);
        let paged = all_pages(&rig, "/api/v1/rules?limit=3").await;
        assert!(!paged.contains(&"p04".to_string()), "{paged:?}");
        assert_eq!(paged.len(), 9, "{backend:?}");
        let (status, v) = rig.get("/api/v1/rules?limit=abc").await;
        assert_eq!(status, 400, "{v}");
        rig.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_created_while_prices_flow_fires() {
    let files = tempfile::tempdir().unwrap();
    // The crossing comes 3 s of file time after the start, played in real time.
    let rows = [
        (T0, "BTCUSDT", 100.0),
        (T0 + 3000, "BTCUSDT", 100.0),
        (T0 + 3500, "BTCUSDT", 120.0),
    ];
    let csv = write_csv(files.path(), "p.csv", &rows);
    let mut rig = Rig::start(super::rig::Backend::Embedded, &replay_market(&csv, 1.0, "")).await;
    rig.rule(json!({"id": "late", "user_id": "u1", "symbol": "BTCUSDT",
        "condition": {"op": "crosses_up", "value": 110}}))
        .await;
    rig.wait_requests(1, Duration::from_secs(10)).await;
    assert_eq!(rig.keys(), vec![format!("rule-late-{}", T0 / 1000 + 3)]);
    rig.stop().await;
}
