//! `prices` from a real component, on the embedded store and on Redis: what the market
//! monitor stored, read-only, with its age and staleness.

use impressox_host::storage::{MarketCommit, PricePoint};
use serde_json::json;

use super::{Backend, CapsHost, err, ok};

const PROBE: &str = "caps-probe";
const GRANT_ALL: &str =
    "[plugins.grants.caps-probe]\nkv = true\ndocs = [\"things\"]\nnotify = true\nprices = true\n";

fn point(symbol: &str, price: f64, ts_ms: i64) -> PricePoint {
    PricePoint {
        symbol: symbol.into(),
        price,
        ts_ms,
        source: "binance".into(),
    }
}

fn latest_and_recent_with_staleness(backend: Backend) {
    let name = backend.name();
    let h = CapsHost::new(
        &backend,
        &format!("{GRANT_ALL}[market]\nstale_after_secs = 30\n"),
    );
    h.load(test_artifacts::GUEST_CAPS_PROBE, PROBE);
    let now = impressox_host::util::now_ms();
    let history = vec![
        point("BTCUSDT", 97_000.0, now - 3_000),
        point("BTCUSDT", 97_100.0, now - 2_000),
        point("BTCUSDT", 97_200.0, now - 1_000),
        point("ETHUSDT", 3_500.0, now - 120_000),
    ];
    let commit = MarketCommit {
        latest: vec![history[2].clone(), history[3].clone()],
        history,
        ..Default::default()
    };
    impressox_host::runtime::deadline::io_runtime()
        .block_on(h.store.commit_market(&commit))
        .unwrap();
    let r = h.ops(
        PROBE,
        json!([
            ["prices.latest", "BTCUSDT"],
            ["prices.latest", "ethusdt"],
            ["prices.latest", "SOLUSDT"],
            ["prices.recent", "BTCUSDT", 2],
            ["prices.recent", "BTCUSDT", 5000],
            ["prices.latest", "../BTC"],
        ]),
    );
    let btc = ok(&r[0]);
    assert_eq!(btc["price"], json!(97_200.0), "{name}");
    assert_eq!(btc["source"], json!("binance"), "{name}");
    assert_eq!(btc["stale"], json!(false), "{name}");
    assert!(btc["age_ms"].as_i64().unwrap() >= 1_000, "{name}: {btc}");
    let eth = ok(&r[1]);
    assert_eq!(eth["symbol"], json!("ETHUSDT"), "{name}");
    assert_eq!(
        eth["stale"],
        json!(true),
        "{name}: two minutes old, stale after 30 s"
    );
    assert_eq!(ok(&r[2]), &json!(null), "{name}");
    let recent = ok(&r[3]).as_array().unwrap();
    let prices: Vec<f64> = recent
        .iter()
        .map(|p| p["price"].as_f64().unwrap())
        .collect();
    assert_eq!(
        prices,
        vec![97_100.0, 97_200.0],
        "{name}: the newest two, oldest first"
    );
    assert!(err(&r[4]).contains("max_recent"), "{name}: {}", r[4]);
    assert!(err(&r[5]).contains("not a symbol"), "{name}: {}", r[5]);
}

#[test]
fn prices_latest_and_recent_with_staleness_embedded() {
    latest_and_recent_with_staleness(Backend::Embedded);
}

#[test]
fn prices_latest_and_recent_with_staleness_redis() {
    latest_and_recent_with_staleness(Backend::redis());
}
