//! The bundled plugins that use capabilities for real: `price-digest` and `whale-alert`,
//! on the embedded stores and on Redis with MongoDB.

use impressox_host::bindings::types::{Event, Field, Outcome, TaskRun};
use impressox_host::storage::{MarketCommit, NOTIFY_REQUESTS, PricePoint};
use serde_json::{Value, json};

use super::{Backend, CapsHost};

const DIGEST: &str = "[plugins.grants.price-digest]\nprices = true\nkv = true\nnotify = true\n\
    [plugins.settings.price-digest]\nsymbols = [\"BTCUSDT\", \"ETHUSDT\"]\nusers = [\"u1\", \"u2\"]\n";

fn set_price(h: &CapsHost, symbol: &str, price: f64) {
    let p = PricePoint {
        symbol: symbol.into(),
        price,
        ts_ms: impressox_host::util::now_ms(),
        source: "binance".into(),
    };
    let commit = MarketCommit {
        latest: vec![p.clone()],
        history: vec![p],
        ..Default::default()
    };
    impressox_host::runtime::deadline::io_runtime()
        .block_on(h.store.commit_market(&commit))
        .unwrap();
}

fn digest_run(h: &CapsHost, at: i64) -> Result<Value, String> {
    let run = TaskRun {
        schedule: "morning".into(),
        scheduled_at_ms: at,
        attempt: 1,
        args_json: String::new(),
    };
    let report = h.runtime.plugin("price-digest").run_task(&run).unwrap()?;
    Ok(serde_json::from_str(&report.data_json).unwrap())
}

fn status(h: &CapsHost, id: &str) -> Option<Value> {
    impressox_host::runtime::deadline::io_runtime()
        .block_on(impressox_host::notify::service::status(&h.docs, id))
        .unwrap()
}

fn price_digest(h: CapsHost, name: &str) {
    h.load(test_artifacts::PRICE_DIGEST, "price-digest");
    set_price(&h, "BTCUSDT", 100_000.0);
    let first = digest_run(&h, 1_000).unwrap();
    let text = first["text"].as_str().unwrap();
    assert_eq!(
        text, "BTCUSDT 100000.00 (first digest)\nETHUSDT: no price yet",
        "{name}"
    );
    set_price(&h, "BTCUSDT", 101_000.0);
    set_price(&h, "ETHUSDT", 3_000.0);
    let second = digest_run(&h, 2_000).unwrap();
    assert_eq!(
        second["text"],
        json!("BTCUSDT 101000.00 (+1.00% since the last digest)\nETHUSDT 3000.00 (first digest)"),
        "{name}"
    );
    // A retry of the second occurrence, after prices moved again: the same text, and no
    // second notification.
    set_price(&h, "BTCUSDT", 120_000.0);
    let retried = digest_run(&h, 2_000).unwrap();
    assert_eq!(retried["text"], second["text"], "{name}");
    let rt = impressox_host::runtime::deadline::io_runtime();
    assert_eq!(
        rt.block_on(h.store.stream_len(NOTIFY_REQUESTS)).unwrap(),
        4,
        "{name}: 2 runs × 2 users"
    );
    for user in ["u1", "u2"] {
        let s = status(&h, &format!("price-digest:digest-2000-{user}")).unwrap();
        assert_eq!(s["source"], json!("plugin:price-digest"), "{name}");
        assert_eq!(s["request"]["user_id"], json!(user), "{name}");
        assert_eq!(s["request"]["body"], second["text"], "{name}");
    }
}

#[test]
fn price_digest_reports_changes_once_per_user_embedded() {
    price_digest(CapsHost::new(&Backend::Embedded, DIGEST), "embedded");
}

#[test]
fn price_digest_reports_changes_once_per_user_redis_mongodb() {
    let redis = Backend::redis();
    let mongo = Backend::mongo();
    price_digest(
        CapsHost::new(&redis, &format!("{}{DIGEST}", mongo.toml())),
        "redis+mongodb",
    );
}

#[test]
fn price_digest_without_users_fails_with_the_setting_to_fix() {
    let h = CapsHost::new(
        &Backend::Embedded,
        "[plugins.grants.price-digest]\nprices = true\nkv = true\nnotify = true\n",
    );
    h.load(test_artifacts::PRICE_DIGEST, "price-digest");
    let e = digest_run(&h, 1).unwrap_err();
    assert!(e.contains("[plugins.settings.price-digest]"), "{e}");
}

const WHALE: &str = "[plugins.grants.whale-alert]\ndocs = [\"whales\"]\nnotify = true\n\
    [plugins.settings.whale-alert]\nthreshold_usd = 1000000\nusers = [\"u1\"]\n";

fn transfer(id: &str, fields: &[(&str, &str)]) -> Event {
    Event {
        stream: "chain:transfers".into(),
        id: id.into(),
        fields: fields
            .iter()
            .map(|(n, v)| Field {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        attempt: 1,
        received_at_ms: 5,
    }
}

fn whale_alert(h: CapsHost, name: &str) {
    h.load(test_artifacts::WHALE_ALERT, "whale-alert");
    let handle = h.runtime.plugin("whale-alert");
    let rt = impressox_host::runtime::deadline::io_runtime();
    let big = transfer(
        "1-0",
        &[
            ("tx", "0xabc"),
            ("amount_usd", "2500000"),
            ("asset", "USDT"),
            ("chain", "ethereum"),
        ],
    );
    assert_eq!(handle.handle_event(&big).unwrap(), Outcome::Ack, "{name}");
    // The same transfer again (a redelivery under another entry id): one document, one
    // notification.
    let again = Event {
        id: "2-0".into(),
        attempt: 2,
        ..big.clone()
    };
    assert_eq!(handle.handle_event(&again).unwrap(), Outcome::Ack, "{name}");
    let small = transfer("3-0", &[("tx", "0xdef"), ("amount_usd", "999")]);
    assert_eq!(handle.handle_event(&small).unwrap(), Outcome::Ack, "{name}");
    let bad = transfer("4-0", &[("amount_usd", "5000000")]);
    assert!(
        matches!(handle.handle_event(&bad).unwrap(), Outcome::DeadLetter(why) if why.contains("`tx`")),
        "{name}"
    );

    let stored = rt
        .block_on(h.docs.get("plugin.whale-alert.whales", "0xabc"))
        .unwrap()
        .unwrap();
    assert_eq!(stored["amount_usd"], json!(2_500_000.0), "{name}");
    assert_eq!(
        stored["event_id"],
        json!("1-0"),
        "{name}: the first sighting is kept"
    );
    assert!(
        rt.block_on(h.docs.get("plugin.whale-alert.whales", "0xdef"))
            .unwrap()
            .is_none(),
        "{name}"
    );
    assert_eq!(
        rt.block_on(h.store.stream_len(NOTIFY_REQUESTS)).unwrap(),
        1,
        "{name}"
    );
    let s = status(&h, "whale-alert:whale-0xabc-u1").unwrap();
    assert_eq!(s["source"], json!("plugin:whale-alert"), "{name}");
    assert_eq!(
        s["request"]["title"],
        json!("Whale transfer: $2500000 in USDT"),
        "{name}"
    );
}

#[test]
fn whale_alert_stores_and_notifies_each_big_transfer_once_embedded() {
    whale_alert(CapsHost::new(&Backend::Embedded, WHALE), "embedded");
}

#[test]
fn whale_alert_stores_and_notifies_each_big_transfer_once_redis_mongodb() {
    let redis = Backend::redis();
    let mongo = Backend::mongo();
    whale_alert(
        CapsHost::new(&redis, &format!("{}{WHALE}", mongo.toml())),
        "redis+mongodb",
    );
}
