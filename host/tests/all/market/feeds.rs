//! The live sources against local stand-ins (SPEC §7, REFERENCE.md "Price feeds"): the
//! websocket source on the Binance stand-in (crossings fire, pings get pongs, bad frames
//! are counted and skipped, reconnects re-subscribe, a silent socket is detected and
//! replaced, connections rotate), the http-poll source on the CoinGecko stand-in (prices
//! stored, 429 `Retry-After` honoured, malformed bodies skipped, the demo key sent), and a
//! fallback source that is used only while its primary is stale.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use impressox_host::market::health::SourceState;
use impressox_host::util::now_ms;
use serde_json::{Value, json};

use super::pipeline::seed;
use super::rig::{Backend, Rig};
use crate::servers::binance_ws::BinanceStandIn;
use crate::servers::coingecko_http::{CoinGeckoStandIn, SIMPLE_PRICE_PATH};

/// How long a test waits for something that should happen promptly.
const WAIT: Duration = Duration::from_secs(20);

/// `[market]` head; `stale_after_secs` is the market-wide default.
fn market_head(stale_after_secs: u64) -> String {
    format!(
        "[market]\nconsole_alerts = false\ncommit_interval_ms = 50\n\
         stale_after_secs = {stale_after_secs}\n"
    )
}

/// A websocket source using the `binance` parser; `extra` is more TOML for the source.
fn ws_source(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[market.sources]]\nname = \"{name}\"\nkind = \"websocket\"\nparser = \"binance\"\n\
         url = \"{url}\"\n{extra}"
    )
}

/// An http-poll source on the CoinGecko stand-in, polling bitcoin/usd every 0.2 s.
fn gecko_source(name: &str, base: &str, extra: &str) -> String {
    format!(
        "[[market.sources]]\nname = \"{name}\"\nkind = \"http-poll\"\nparser = \"coingecko\"\n\
         url = \"{base}{SIMPLE_PRICE_PATH}?ids=bitcoin&vs_currencies=usd&include_last_updated_at=true\"\n\
         interval_secs = 0.2\n{extra}"
    )
}

fn crosses(id: &str, op: &str, value: f64) -> String {
    seed(
        id,
        "BTCUSDT",
        &format!("{{ op = \"{op}\", value = {value} }}"),
        "{ mode = \"every\" }",
    )
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Poll a synchronous condition every 10 ms; panics with `what` after `timeout`.
async fn until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `GET /api/v1/prices/BTCUSDT` after committing everything evaluated so far.
async fn btc_price(rig: &Rig) -> (u16, Value) {
    rig.handle().flush().await;
    rig.get("/api/v1/prices/BTCUSDT").await
}

/// Poll the prices API until `check` accepts the answer; returns that answer.
async fn until_price(rig: &Rig, what: &str, check: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, v) = btc_price(rig).await;
        if check(status, &v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the price API to show {what}; last answer {status}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A raw-stream trade whose price is not a number.
fn trade_with_bad_price(ts_ms: i64) -> String {
    json!({
        "e": "trade", "E": ts_ms, "s": "BTCUSDT", "t": 1, "p": "abc", "q": "0.01000000",
        "T": ts_ms, "m": false, "M": true,
    })
    .to_string()
}

/// Sends a BTCUSDT trade at `price` (timestamped now) every 200 ms until dropped, so a
/// source with a short `stale_after` stays healthy.
struct Feeder(tokio::task::JoinHandle<()>);

impl Feeder {
    fn start(binance: Arc<BinanceStandIn>, price: f64) -> Feeder {
        Feeder(tokio::spawn(async move {
            loop {
                binance.send_trade("BTCUSDT", price, now_ms());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }))
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Test 1 (and 7 on Redis): a crossing fires exactly once, a ping is answered, malformed
/// frames are counted and skipped, and later trades still fire.
async fn websocket_trades_pings_and_bad_frames(backend: Backend) {
    let binance = BinanceStandIn::start().await;
    let url = format!("{}/ws/btcusdt@trade", binance.url());
    // A long stale_after: no watchdog reconnect may lose frames in this test.
    let market = market_head(30)
        + &ws_source("binance", &url, "")
        + &crosses("up100", "crosses_up", 100.0)
        + &crosses("down100", "crosses_down", 100.0);
    let mut rig = Rig::start(backend, &market).await;
    let health = rig.handle().health[0].clone();
    assert!(
        binance.wait_connections(1, WAIT).await,
        "{backend:?}: the source never connected"
    );
    assert_eq!(binance.paths(), ["/ws/btcusdt@trade"]);

    // 90 → 95 → 105 → 110 crosses 100 once, at 105.
    let mut up_ts = 0;
    for price in [90.0, 95.0, 105.0, 110.0] {
        let ts = now_ms();
        if price == 105.0 {
            up_ts = ts;
        }
        binance.send_trade("BTCUSDT", price, ts);
    }
    rig.wait_requests(1, WAIT).await;

    // A server ping gets a pong with the same payload.
    binance.send_ping(b"hb-1");
    until(WAIT, "the pong", || !binance.pongs().is_empty()).await;
    assert_eq!(binance.pongs(), [b"hb-1".to_vec()]);

    // Two malformed frames: counted, skipped, the connection kept.
    binance.send_text("{not json");
    binance.send_text(&trade_with_bad_price(now_ms()));
    until(WAIT, "two parse errors", || load(&health.parse_errors) >= 2).await;
    assert!(
        health
            .last_error
            .lock()
            .as_deref()
            .is_some_and(|e| e.contains("malformed")),
        "{:?}",
        health.last_error.lock()
    );

    // Later trades still flow: 110 → 90 crosses the other rule.
    let down_ts = now_ms();
    binance.send_trade("BTCUSDT", 90.0, down_ts);
    rig.wait_requests(2, WAIT).await;
    // Nothing more may come (no duplicate, no second crossing).
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.collect().await;
    let up_key = format!("rule-up100-{}", up_ts.div_euclid(1000));
    let down_key = format!("rule-down100-{}", down_ts.div_euclid(1000));
    assert_eq!(
        rig.keys(),
        [down_key.clone(), up_key.clone()],
        "{backend:?}"
    );
    let (req, _) = &rig.seen[&up_key];
    assert_eq!(req["data"]["source"], "binance");
    assert_eq!(req["data"]["price"], 105.0);
    assert_eq!(req["data"]["reference_price"], 95.0);

    // Exact counters: 5 trades, 2 rejected frames, 8 messages (5 + ping + 2).
    assert_eq!(load(&health.ticks), 5, "{backend:?}");
    assert_eq!(load(&health.parse_errors), 2, "{backend:?}");
    assert_eq!(load(&health.messages), 8, "{backend:?}");
    assert_eq!(load(&health.reconnects), 0, "{backend:?}");
    assert_eq!(binance.connections(), 1, "{backend:?}");
    assert_eq!(health.state(), SourceState::Up);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_trades_fire_pings_get_pongs_and_bad_frames_are_skipped() {
    websocket_trades_pings_and_bad_frames(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_trades_fire_pings_get_pongs_and_bad_frames_are_skipped_on_redis() {
    websocket_trades_pings_and_bad_frames(Backend::Redis).await;
}

/// The SUBSCRIBE requests the stand-in received, parsed.
fn subscribes(binance: &BinanceStandIn) -> Vec<Value> {
    binance
        .received()
        .iter()
        .filter_map(|t| serde_json::from_str::<Value>(t).ok())
        .filter(|v| v["method"] == "SUBSCRIBE")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_reconnects_after_a_cut_and_subscribes_again() {
    let binance = BinanceStandIn::start().await;
    let url = format!("{}/ws", binance.url());
    let market = market_head(30)
        + &ws_source(
            "binance",
            &url,
            "symbols = [\"BTCUSDT\"]\nchannels = [\"trade\"]\n",
        )
        + &crosses("up100", "crosses_up", 100.0);
    let mut rig = Rig::start(Backend::Embedded, &market).await;
    let health = rig.handle().health[0].clone();
    until(WAIT, "the first SUBSCRIBE", || {
        subscribes(&binance).len() == 1
    })
    .await;
    binance.send_trade("BTCUSDT", 95.0, now_ms());
    until(WAIT, "the first trade", || load(&health.ticks) == 1).await;

    // A network cut: no close frame.
    binance.close_abruptly();
    until(WAIT, "the second SUBSCRIBE", || {
        subscribes(&binance).len() == 2
    })
    .await;
    assert_eq!(binance.connections(), 2);
    assert_eq!(load(&health.reconnects), 1);
    let subs = subscribes(&binance);
    for (i, s) in subs.iter().enumerate() {
        assert_eq!(s["params"], json!(["btcusdt@trade"]), "{s}");
        assert_eq!(
            s["id"],
            i + 1,
            "each connection's request has a new id: {s}"
        );
    }
    assert!(rig.seen.is_empty());

    // A crossing after the reconnect fires.
    binance.send_trade("BTCUSDT", 96.0, now_ms());
    let ts = now_ms();
    binance.send_trade("BTCUSDT", 110.0, ts);
    rig.wait_requests(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    rig.collect().await;
    assert_eq!(rig.keys(), [format!("rule-up100-{}", ts.div_euclid(1000))]);
    assert_eq!(load(&health.ticks), 3);
    // The SUBSCRIBE acks are heartbeats, not malformed messages.
    assert_eq!(load(&health.parse_errors), 0);
    assert_eq!(health.state(), SourceState::Up);
    assert_eq!(binance.connected(), 1, "the cut connection is gone");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_websocket_goes_stale_reconnects_and_recovers() {
    let binance = Arc::new(BinanceStandIn::start().await);
    let url = format!("{}/ws/btcusdt@trade", binance.url());
    let market = market_head(1) + &ws_source("binance", &url, "");
    let _feeder = Feeder::start(binance.clone(), 100.0);
    let rig = Rig::start(Backend::Embedded, &market).await;
    let health = rig.handle().health[0].clone();
    until(WAIT, "ticks", || {
        load(&health.ticks) >= 2 && health.state() == SourceState::Up
    })
    .await;
    let v = until_price(&rig, "a fresh price", |s, v| {
        s == 200 && v["stale"] == false
    })
    .await;
    assert_eq!(v["source"], "binance");
    assert_eq!(v["source_state"], "up", "{v}");
    assert_eq!(v["price"], 100.0);

    // Silence: the socket stays open but nothing arrives, not even pongs.
    let connections = binance.connections();
    let stale_events = load(&health.stale_events);
    binance.set_silent(true);
    until(WAIT, "the source to go stale", || {
        health.state() == SourceState::Stale
    })
    .await;
    assert!(load(&health.stale_events) > stale_events);
    assert!(
        binance.wait_connections(connections + 1, WAIT).await,
        "the client did not reconnect after going stale"
    );
    assert!(load(&health.reconnects) >= 1);
    // Still stale: the new connection is silent too.
    assert_eq!(health.state(), SourceState::Stale);
    let (status, v) = btc_price(&rig).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["stale"], true, "{v}");
    assert_eq!(v["source_state"], "stale", "{v}");

    // Data flows again.
    let ticks = load(&health.ticks);
    binance.set_silent(false);
    until(WAIT, "data after the silence", || {
        load(&health.ticks) > ticks + 1 && health.state() == SourceState::Up
    })
    .await;
    let v = until_price(&rig, "a fresh price again", |s, v| {
        s == 200 && v["stale"] == false && v["source_state"] == "up"
    })
    .await;
    assert_eq!(v["source"], "binance");
    assert_eq!(load(&health.parse_errors), 0);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_connections_rotate_at_max_connection_secs() {
    let binance = BinanceStandIn::start().await;
    let url = format!("{}/ws/btcusdt@trade", binance.url());
    let market = market_head(30) + &ws_source("binance", &url, "max_connection_secs = 1\n");
    let rig = Rig::start(Backend::Embedded, &market).await;
    let health = rig.handle().health[0].clone();
    assert!(
        binance.wait_connections(3, WAIT).await,
        "expected 3 connections (2 rotations), saw {}",
        binance.connections()
    );
    // Rotation is not an error: nothing stale, nothing recorded as failed.
    assert!(load(&health.reconnects) >= 2);
    assert_eq!(load(&health.stale_events), 0);
    assert_eq!(*health.last_error.lock(), None);
    // Each replaced connection is closed, not leaked.
    until(WAIT, "a single open connection", || {
        binance.connected() == 1
    })
    .await;
    // The current connection delivers.
    until(WAIT, "a trade on a rotated connection", || {
        binance.send_trade("BTCUSDT", 100.0, now_ms());
        load(&health.ticks) >= 1
    })
    .await;
    assert_eq!(load(&health.parse_errors), 0);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_poll_stores_prices_honours_429_skips_bad_bodies_and_sends_the_key() {
    const KEY_VAR: &str = "IMPRESSOX_FEEDS_TEST_CG_DEMO_KEY";
    // SAFETY: a variable no other test or thread reads or writes.
    unsafe { std::env::set_var(KEY_VAR, "cg-demo-key-1") };
    let gecko = CoinGeckoStandIn::start().await;
    let secs = now_ms().div_euclid(1000);
    gecko.set_price("bitcoin", 70_000.5, secs);
    // The price is set once: a long stale_after keeps its timestamp fresh enough.
    let market = market_head(30)
        + &gecko_source(
            "gecko",
            &gecko.url(),
            &format!("api_key_env = \"{KEY_VAR}\"\n"),
        );
    let rig = Rig::start(Backend::Embedded, &market).await;
    let health = rig.handle().health[0].clone();

    // Prices reach the store as BTCUSDT.
    let v = until_price(&rig, "the CoinGecko price", |s, _| s == 200).await;
    assert_eq!(v["price"], 70_000.5, "{v}");
    assert_eq!(v["ts_ms"], secs * 1000);
    assert_eq!(v["source"], "gecko");
    assert_eq!(v["source_state"], "up");
    assert_eq!(v["stale"], false);

    // The demo key is sent on every request, to the configured URL.
    until(WAIT, "a few polls", || gecko.requests().len() >= 3).await;
    let requests = gecko.requests();
    for (_, path, key) in &requests {
        assert!(path.starts_with(SIMPLE_PRICE_PATH), "{path}");
        assert_eq!(key.as_deref(), Some("cg-demo-key-1"), "{path}");
    }
    let gaps = |r: &[(Instant, String, Option<String>)]| -> Vec<Duration> {
        r.windows(2).map(|w| w[1].0 - w[0].0).collect()
    };
    // Polling at the interval: not every gap is a long one.
    let normal = gaps(&requests);
    assert!(
        normal.iter().any(|g| *g < Duration::from_millis(600)),
        "{normal:?}"
    );

    // A 429 with Retry-After: 1 holds the next poll back by at least ~1 s.
    let before = gecko.requests().len();
    gecko.fail_next_with_429(1, Some(1));
    until(WAIT, "the 429 to be handled", || {
        health
            .last_error
            .lock()
            .as_deref()
            .is_some_and(|e| e.contains("429"))
    })
    .await;
    let after_429 = gecko.requests().len();
    until(WAIT, "polls after the 429", || {
        gecko.requests().len() >= after_429 + 2
    })
    .await;
    let requests = gecko.requests();
    let around = gaps(&requests[before.saturating_sub(1)..]);
    assert!(
        around.iter().any(|g| *g >= Duration::from_millis(950)),
        "no gap of ~1 s after the 429: {around:?}"
    );
    assert_eq!(load(&health.parse_errors), 0);

    // A malformed body is a parse error; polling goes on and recovers.
    gecko.set_body_override(Some(r#"{"bitcoin": {"usd": 70"#.into()));
    until(WAIT, "parse errors on consecutive polls", || {
        load(&health.parse_errors) >= 2
    })
    .await;
    assert!(
        health
            .last_error
            .lock()
            .as_deref()
            .is_some_and(|e| e.contains("malformed")),
        "{:?}",
        health.last_error.lock()
    );
    gecko.set_body_override(None);
    let secs = now_ms().div_euclid(1000);
    gecko.set_price("bitcoin", 71_000.0, secs);
    let v = until_price(&rig, "the new price", |s, v| {
        s == 200 && v["price"] == 71_000.0
    })
    .await;
    assert_eq!(v["ts_ms"], secs * 1000);
    assert_eq!(health.state(), SourceState::Up);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_source_is_used_only_while_its_primary_is_stale() {
    let binance = Arc::new(BinanceStandIn::start().await);
    let gecko = CoinGeckoStandIn::start().await;
    let ws_url = format!("{}/ws/btcusdt@trade", binance.url());
    let market = market_head(30)
        + &ws_source("binance", &ws_url, "stale_after_secs = 2\n")
        + &gecko_source("gecko", &gecko.url(), "fallback_for = [\"binance\"]\n")
        + &crosses("up100", "crosses_up", 100.0);
    // The primary sends prices below the level; the fallback has none yet.
    let _feeder = Feeder::start(binance.clone(), 90.0);
    let mut rig = Rig::start(Backend::Embedded, &market).await;
    let primary = rig.handle().health[0].clone();
    let fallback = rig.handle().health[1].clone();
    let stats = rig.handle().stats.clone();
    until(WAIT, "the primary's prices", || {
        load(&primary.ticks) >= 2 && primary.state() == SourceState::Up
    })
    .await;

    // The fallback's price is above the level, but the primary is healthy: shadowed.
    let secs = now_ms().div_euclid(1000);
    gecko.set_price("bitcoin", 110.0, secs);
    until(WAIT, "shadowed fallback ticks", || {
        load(&stats.ticks_shadowed) >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.handle().flush().await;
    rig.collect().await;
    assert!(
        rig.seen.is_empty(),
        "fired while the primary was healthy: {:?}",
        rig.seen
    );
    assert!(load(&fallback.ticks) >= 3);
    let (_, v) = btc_price(&rig).await;
    assert_eq!(v["source"], "binance", "{v}");
    assert_eq!(v["price"], 90.0, "{v}");

    // The primary goes silent: past its stale_after the fallback's ticks are used.
    binance.set_silent(true);
    until(WAIT, "the primary to go stale", || {
        primary.state() == SourceState::Stale
    })
    .await;
    rig.wait_requests(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.collect().await;
    let key = format!("rule-up100-{secs}");
    assert_eq!(rig.keys(), std::slice::from_ref(&key));
    let (req, _) = &rig.seen[&key];
    assert_eq!(req["data"]["source"], "gecko", "{req}");
    assert_eq!(req["data"]["price"], 110.0);
    assert_eq!(req["data"]["reference_price"], 90.0);
    let (_, v) = btc_price(&rig).await;
    assert_eq!(v["source"], "gecko", "{v}");
    assert_eq!(v["price"], 110.0, "{v}");
    rig.stop().await;
}
