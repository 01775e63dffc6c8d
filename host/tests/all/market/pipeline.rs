//! Replay → replay-rows parser → threshold processor → `notify:requests`, on both stores:
//! exactly the expected firings, each once; a hot swap of the processor mid-stream loses
//! and doubles nothing; prices and rule states are visible through the API.

use std::time::Duration;

use super::rig::{BOTH, Backend, Rig, eventually, sawtooth, write_csv};
use crate::harness::write_atomically;

const T0: i64 = 1_764_300_000_000;

/// BTC oscillates 100 → 110 → 90 → 110 → 90 (1 s per step of 2), ETH falls once.
fn oscillation() -> Vec<(i64, &'static str, f64)> {
    let mut rows = Vec::new();
    let path = [
        100.0, 102.0, 104.0, 106.0, 108.0, 110.0, 104.0, 98.0, 92.0, 90.0, 96.0, 102.0, 106.0,
        110.0, 100.0, 94.0, 90.0,
    ];
    for (i, p) in path.iter().enumerate() {
        let ts = T0 + i as i64 * 1000;
        rows.push((ts, "BTCUSDT", *p));
        rows.push((ts + 500, "ETHUSDT", 3000.0 - 10.0 * i as f64));
    }
    rows
}

/// `[market]` with one replay source and `rules` as `[[market.rules]]` TOML.
pub fn replay_market(path: &std::path::Path, speed: f64, rules: &str) -> String {
    format!(
        "[market]\nconsole_alerts = false\ncommit_interval_ms = 50\n\
         [[market.sources]]\nname = \"file\"\nkind = \"replay\"\nparser = \"replay-rows\"\n\
         path = \"{}\"\nspeed = {speed}\n{rules}",
        path.display()
    )
}

/// A seeded rule as TOML.
pub fn seed(id: &str, symbol: &str, condition: &str, trigger: &str) -> String {
    format!(
        "[[market.rules]]\nid = \"{id}\"\nuser_id = \"u1\"\nsymbol = \"{symbol}\"\n\
         condition = {condition}\ntrigger = {trigger}\n"
    )
}

fn oscillation_rules() -> String {
    [
        seed(
            "up105",
            "BTCUSDT",
            "{ op = \"crosses_up\", value = 105 }",
            "{ mode = \"every\" }",
        ),
        seed(
            "down95",
            "BTCUSDT",
            "{ op = \"crosses_down\", value = 95 }",
            "{ mode = \"every\" }",
        ),
        seed(
            "above108",
            "BTCUSDT",
            "{ op = \"above\", value = 108 }",
            "{ mode = \"once\" }",
        ),
        seed(
            "eth2950",
            "ETHUSDT",
            "{ op = \"below\", value = 2950 }",
            "{ mode = \"once\" }",
        ),
    ]
    .concat()
}

/// Keys of the firings the oscillation must produce.
fn expected() -> Vec<String> {
    let s = |i: i64| (T0 / 1000) + i;
    let mut keys = vec![
        format!("rule-up105-{}", s(3)),
        format!("rule-up105-{}", s(12)),
        format!("rule-down95-{}", s(8)),
        format!("rule-down95-{}", s(15)),
        format!("rule-above108-{}", s(5)),
        // ETH 3000 - 10 i < 2950 first at i = 6 (2940), at ts + 500 ms.
        format!("rule-eth2950-{}", s(6)),
    ];
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_prices_fire_each_rule_exactly_once_per_crossing() {
    for backend in BOTH {
        let files = tempfile::tempdir().unwrap();
        let csv = write_csv(files.path(), "prices.csv", &oscillation());
        let mut rig = Rig::start(backend, &replay_market(&csv, 0.0, &oscillation_rules())).await;
        rig.wait_requests(expected().len(), Duration::from_secs(20))
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        rig.collect().await;
        assert_eq!(rig.keys(), expected(), "{backend:?}");

        // The request carries what the notify worker needs.
        let (req, _) = &rig.seen[&format!("rule-above108-{}", T0 / 1000 + 5)];
        assert_eq!(req["user_id"], "u1");
        assert_eq!(req["kind"], "price_alert");
        assert_eq!(req["title"], "BTCUSDT above 108");
        assert_eq!(req["data"]["price"], 110.0);
        assert_eq!(req["data"]["source"], "file");

        // Rule states: `once` rules fired, `every` rules still active.
        rig.handle().flush().await;
        let (_, r) = rig.get("/api/v1/rules/above108").await;
        assert_eq!(r["state"], "fired", "{r}");
        assert!(r["last_fired_at"].is_string());
        let (_, r) = rig.get("/api/v1/rules/up105").await;
        assert_eq!(r["state"], "active");
        assert_eq!(r["firing"]["fired_count"], 2);

        // The latest price and its recent history are stored.
        let (status, p) = rig.get("/api/v1/prices/btcusdt?history=100").await;
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["price"], 90.0);
        assert_eq!(p["source"], "file");
        assert_eq!(p["ts_ms"], T0 + 16_000);
        assert_eq!(p["history"].as_array().unwrap().len(), 17);
        let (status, _) = rig.get("/api/v1/prices/DOGEUSDT").await;
        assert_eq!(status, 404);

        // Metrics show the pipeline and the source.
        let text = rig
            .http
            .get(format!("{}/metrics", rig.api))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("impressox_market_alerts_total 6"), "{text}");
        assert!(
            text.contains("impressox_source_ticks_total{source=\"file\"} 34"),
            "{text}"
        );
        rig.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_swapped_mid_stream_loses_and_doubles_nothing() {
    for backend in BOTH {
        // 600 s of a 40-unit sawtooth: 60 crossings each way, replayed over ~3 s.
        let rows = sawtooth(T0, 600);
        let files = tempfile::tempdir().unwrap();
        let csv = write_csv(files.path(), "saw.csv", &rows);
        let rules = seed(
            "up",
            "BTCUSDT",
            "{ op = \"crosses_up\", value = 121 }",
            "{ mode = \"every\" }",
        ) + &seed(
            "down",
            "BTCUSDT",
            "{ op = \"crosses_down\", value = 119 }",
            "{ mode = \"every\" }",
        );
        let mut rig = Rig::start(backend, &replay_market(&csv, 200.0, &rules)).await;
        // Swap threshold.wasm three times while the file plays.
        let bytes = std::fs::read(test_artifacts::THRESHOLD).unwrap();
        let path = rig.host.config.plugin_dir().join("threshold.wasm");
        for n in 0..3u8 {
            tokio::time::sleep(Duration::from_millis(600)).await;
            let mut b = bytes.clone();
            // A custom section with a new name: a new file, the same plugin.
            b.extend_from_slice(&[0x00, 0x04, 0x03, b'x', b'y', n]);
            write_atomically(&path, &b);
            rig.host.runtime.load_file(&path).unwrap();
        }
        rig.wait_requests(60, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        rig.collect().await;
        let keys = rig.keys();
        assert_eq!(keys.len(), 60, "{backend:?}: {keys:?}");
        let swaps = rig
            .host
            .runtime
            .statuses()
            .into_iter()
            .find(|s| s.name == "threshold")
            .unwrap()
            .swaps;
        assert!(swaps >= 3, "threshold swapped {swaps} times");
        rig.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_replay_row_is_counted_and_the_rest_flows() {
    let files = tempfile::tempdir().unwrap();
    let csv = files.path().join("bad.csv");
    std::fs::write(
        &csv,
        format!(
            "ts_ms,symbol,price\n{T0},BTCUSDT,100\n{},BTCUSDT,not-a-price\n{},BTCUSDT,-5\n{},BTCUSDT,120\n",
            T0 + 1000,
            T0 + 2000,
            T0 + 3000
        ),
    )
    .unwrap();
    let market = replay_market(&csv, 0.0, "").replace("speed = 0", "speed = 0\nchunk_lines = 100");
    let rig = Rig::start(Backend::Embedded, &market).await;
    let handle = rig.handle().clone();
    eventually(Duration::from_secs(10), "the replay to finish", || {
        let h = handle.clone();
        async move { h.health[0].ticks.load(std::sync::atomic::Ordering::Relaxed) == 2 }
    })
    .await;
    assert_eq!(
        handle.health[0]
            .parse_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    handle.flush().await;
    let (_, p) = rig.get("/api/v1/prices/BTCUSDT").await;
    assert_eq!(p["price"], 120.0);
    rig.stop().await;
}
