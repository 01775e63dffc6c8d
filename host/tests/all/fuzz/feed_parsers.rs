//! The bundled feed-parser plugins (`binance`, `coinbase`, `coingecko`, `replay-rows`),
//! called the way a market source calls them: `PluginHandle::parse_feed` on the host's
//! runtime, with the payload as it came off the wire.
//!
//! Generated, per plugin: its real message shapes (trades, tickers, klines, book tickers,
//! arrays, combined streams, acks, error replies, heartbeats, CSV and JSONL rows), edited
//! (see [`super::mutate`]: prices as strings, numbers or junk, fields dropped or retyped,
//! huge and deeply nested values, unicode symbols), CSV-like lines, and raw bytes, with
//! any receive time. Checked: the plugin answers every payload — ticks or a parse error
//! with words in it — and never traps, times out or hits a limit (any of which would
//! cost the host an instance and count towards quarantine); every tick it returns has a
//! symbol, a finite price > 0, a finite volume >= 0 and a finite bid and ask > 0 when it
//! has them, as each plugin's documentation promises.

use std::panic::AssertUnwindSafe;

use bolero::generator::TypeGenerator;
use impressox_host::config::Config;
use impressox_host::runtime::{PluginHandle, Runtime};

use super::mutate::{Doc, Grammar, Text};
use super::{Meter, budget};

const BINANCE: &[&str] = &[
    r#"{"e":"trade","E":1764300000123,"s":"BTCUSDT","t":5123456789,"p":"70123.40000000","q":"0.00150000","T":1764300000120,"m":true,"M":true}"#,
    r#"{"e":"aggTrade","E":1764300000200,"s":"BTCUSDT","a":26129,"p":"70000.01","q":"0.5","f":100,"l":105,"T":1764300000199,"m":true,"M":true}"#,
    r#"{"e":"24hrMiniTicker","E":1764300001000,"s":"BNBUSDT","c":"612.30000000","o":"600.00000000","h":"615.00000000","l":"598.10000000","v":"12345.67000000","q":"7512345.10000000"}"#,
    r#"{"e":"24hrTicker","E":1764300001000,"s":"BTCUSDT","p":"100.0","P":"0.14","c":"70100.00","Q":"0.1","b":"70099.99","B":"1.2","a":"70100.01","A":"0.8","o":"70000","h":"71000","l":"69000","v":"1234.5","q":"86000000"}"#,
    r#"{"e":"kline","E":1764300002000,"s":"BTCUSDT","k":{"t":1764300000000,"T":1764300059999,"s":"BTCUSDT","i":"1m","o":"70000.00","c":"70050.50","h":"70100.00","l":"69950.00","v":"12.5","x":false}}"#,
    r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#,
    r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1764300000123,"s":"BTCUSDT","p":"70123.4","q":"0.0015","T":1764300000120}}"#,
    r#"{"stream":"solusdt@bookTicker","data":{"u":1,"b":"150","B":"1","a":"152","A":"1"}}"#,
    r#"{"stream":"!miniTicker@arr","data":[{"e":"24hrMiniTicker","E":1,"s":"BTCUSDT","c":"70000","v":"10"},{"e":"24hrMiniTicker","E":2,"s":"ETHUSDT","c":"3500","v":"20"}]}"#,
    r#"{"result":null,"id":1}"#,
    r#"{"error":{"code":2,"msg":"Invalid request: unknown variable"},"id":7}"#,
];

const COINBASE: &[&str] = &[
    r#"{"channel": "ticker", "client_id": "", "timestamp": "2025-11-28T03:20:00.123456789Z", "sequence_num": 0,
        "events": [{"type": "snapshot", "tickers": [
          {"type": "ticker", "product_id": "BTC-USD", "price": "96123.45", "volume_24_h": "16038.28770938",
           "price_percent_chg_24_h": "-1.25", "best_bid": "96123.44", "best_ask": "96123.46"},
          {"type": "ticker", "product_id": "sol-usdc", "price": 240.125, "volume_24_h": 0}]}]}"#,
    r#"{"channel":"ticker_batch","client_id":"","timestamp":"2025-11-28T03:20:01Z","sequence_num":9,
        "events":[{"type":"update","tickers":[{"type":"ticker","product_id":"ETH-EUR","price":"3100.5","best_bid":"","volume_24_h":null}]}]}"#,
    r#"{"channel":"heartbeats","client_id":"","timestamp":"2025-11-28T03:20:26.122969572Z","sequence_num":12,
        "events":[{"current_time":"2025-11-28 03:20:26.121961769 +0000 UTC m=+91717.525857105","heartbeat_counter":"3049"}]}"#,
    r#"{"channel":"subscriptions","client_id":"","timestamp":"2025-11-28T03:20:00Z","sequence_num":1,
        "events":[{"subscriptions":{"ticker":["BTC-USD"]}}]}"#,
    r#"{"type":"error","message":"failure to subscribe"}"#,
    r#"{"channel":"ticker","events":[]}"#,
];

const COINGECKO: &[&str] = &[
    r#"{"bitcoin":{"usd":70123.4,"usd_24h_change":1.2,"last_updated_at":1764300000},"ethereum":{"usd":3500.5,"usd_24h_vol":12345.5,"usd_24h_change":-0.4}}"#,
    r#"{"bitcoin":{"usd":70000,"eur":65000,"eur_24h_change":1.0},"foo-coin":{"usd":"1.5"}}"#,
    r#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit."}}"#,
    r#"{"error":"invalid vs_currency"}"#,
    r#"{}"#,
];

const REPLAY_ROWS: &[&str] = &[
    r#"{"ts_ms":1764300000000,"symbol":"BTCUSDT","price":70123.4,"volume":1.5}"#,
    r#"{"ts":1764300000000,"symbol":"ethusdt","price":"3500.25","volume":"2","bid":"3500.2","ask":3500.3}"#,
    r#"{"ts_ms":1,"symbol":"X","price":2,"bid":1.5,"ask":2.5,"volume":null}"#,
];

/// Words the payloads are made of, for all four plugins.
const WORDS: &[&str] = &[
    "e",
    "E",
    "s",
    "p",
    "q",
    "T",
    "c",
    "v",
    "b",
    "a",
    "u",
    "k",
    "stream",
    "data",
    "result",
    "error",
    "id",
    "trade",
    "aggTrade",
    "24hrMiniTicker",
    "24hrTicker",
    "kline",
    "depthUpdate",
    "btcusdt@trade",
    "!miniTicker@arr",
    "@",
    "channel",
    "ticker",
    "ticker_batch",
    "heartbeats",
    "events",
    "tickers",
    "product_id",
    "price",
    "volume_24_h",
    "best_bid",
    "best_ask",
    "type",
    "timestamp",
    "BTC-USD",
    "-",
    "bitcoin",
    "usd",
    "usd_24h_vol",
    "last_updated_at",
    "status",
    "ts_ms",
    "ts",
    "symbol",
    "volume",
    "bid",
    "ask",
    "BTCUSDT",
    "70000",
    "0",
    "-1",
    "1e308",
    "1e-320",
    "NaN",
    "inf",
    "-0",
    "0x10",
    "",
    "2025-11-28T03:20:00Z",
    "2025-13-45T99:99:99Z",
    "9999-12-31T23:59:59.999999999Z",
    "1970-01-01T00:00:00Z",
    "0000-01-01T00:00:00+99:99",
    "ts_ms,symbol,price,volume",
];

/// A payload: an edited message, CSV-like lines, or raw bytes.
#[derive(Debug, Clone, TypeGenerator)]
enum Payload {
    Message(Doc),
    Lines(Vec<Vec<Text>>),
}

#[derive(Debug, Clone, TypeGenerator)]
struct Input {
    payload: Payload,
    received_ms: i64,
}

struct Feed {
    _dir: tempfile::TempDir,
    _runtime: Runtime,
    parser: PluginHandle,
    grammar: Grammar,
}

impl Feed {
    /// A runtime with one feed parser loaded. The call deadline is the production
    /// default's order (a second), so a timeout means a hang, not a busy CI machine.
    fn load(artifact: &str, name: &str, examples: &[&str]) -> Feed {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("impressox.toml");
        std::fs::write(
            &path,
            "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\ncall_timeout_ms = 2000\n",
        )
        .unwrap();
        let config = Config::load_with_env(Some(&path), &[]).unwrap();
        std::fs::create_dir_all(config.plugin_dir()).unwrap();
        let runtime = Runtime::new(&config).unwrap();
        let file = config.plugin_dir().join(format!("{name}.wasm"));
        std::fs::copy(artifact, &file).unwrap();
        runtime
            .load_file(&file)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        Feed {
            parser: runtime.plugin(name),
            _runtime: runtime,
            _dir: dir,
            grammar: Grammar::json(examples, WORDS),
        }
    }
}

fn check(feed: &AssertUnwindSafe<Feed>, input: &Input, meter: &Meter) {
    let payload = match &input.payload {
        Payload::Message(doc) => feed.grammar.render_json(doc),
        Payload::Lines(lines) => lines
            .iter()
            .take(16)
            .map(|fields| {
                let fields: Vec<String> = fields.iter().take(8).map(|t| t.render(WORDS)).collect();
                fields.join(",")
            })
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes(),
    };
    meter.input(&payload, || {
        let shown = || String::from_utf8_lossy(&payload[..payload.len().min(2000)]).into_owned();
        match feed.parser.parse_feed(&payload, input.received_ms) {
            Ok(Ok(parsed)) => {
                for t in &parsed.ticks {
                    let ok = !t.symbol.trim().is_empty()
                        && t.price.is_finite()
                        && t.price > 0.0
                        && t.volume.is_none_or(|v| v.is_finite() && v >= 0.0)
                        && t.bid.is_none_or(|b| b.is_finite() && b > 0.0)
                        && t.ask.is_none_or(|a| a.is_finite() && a > 0.0);
                    assert!(
                        ok,
                        "{}: an impossible tick {t:?} from {:?}",
                        feed.parser.name(),
                        shown()
                    );
                }
            }
            Ok(Err(message)) => {
                super::assert_names_something(feed.parser.name(), &message, &payload)
            }
            Err(e) => panic!(
                "{}: the call failed: {e}; payload {:?}",
                feed.parser.name(),
                shown()
            ),
        }
    });
}

#[test]
fn binance() {
    let feed = AssertUnwindSafe(Feed::load(test_artifacts::BINANCE, "binance", BINANCE));
    let meter = Meter::start("feed_binance");
    bolero::check!()
        .with_type::<Input>()
        .with_test_time(budget())
        .for_each(|input| check(&feed, input, &meter));
    meter.finish();
}

#[test]
fn coinbase() {
    let feed = AssertUnwindSafe(Feed::load(test_artifacts::COINBASE, "coinbase", COINBASE));
    let meter = Meter::start("feed_coinbase");
    bolero::check!()
        .with_type::<Input>()
        .with_test_time(budget())
        .for_each(|input| check(&feed, input, &meter));
    meter.finish();
}

#[test]
fn coingecko() {
    let feed = AssertUnwindSafe(Feed::load(
        test_artifacts::COINGECKO,
        "coingecko",
        COINGECKO,
    ));
    let meter = Meter::start("feed_coingecko");
    bolero::check!()
        .with_type::<Input>()
        .with_test_time(budget())
        .for_each(|input| check(&feed, input, &meter));
    meter.finish();
}

#[test]
fn replay_rows() {
    let feed = AssertUnwindSafe(Feed::load(
        test_artifacts::REPLAY_ROWS,
        "replay-rows",
        REPLAY_ROWS,
    ));
    let meter = Meter::start("feed_replay_rows");
    bolero::check!()
        .with_type::<Input>()
        .with_test_time(budget())
        .for_each(|input| check(&feed, input, &meter));
    meter.finish();
}
