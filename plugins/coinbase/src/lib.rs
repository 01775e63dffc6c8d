//! `coinbase`: parses Coinbase Advanced Trade WebSocket payloads into price ticks.
//!
//! Every message shares one envelope:
//! `{"channel": "ticker", "client_id": "", "timestamp": "2025-11-28T03:20:00.123456789Z",
//! "sequence_num": 7, "events": [...]}`.
//!
//! | channel | result |
//! |---|---|
//! | `ticker`, `ticker_batch` | one tick per `events[].tickers[]` entry |
//! | `heartbeats`, `subscriptions` | no ticks, `heartbeat = true` |
//! | anything else | error naming the channel |
//! | `{"type": "error", "message": ...}` | error carrying the server's message |
//!
//! A ticker entry maps to a tick as: `product_id` without its dashes, upper-cased
//! (`BTC-USD` → `BTCUSD`, `BTC-USDT` → `BTCUSDT`) → symbol; `price` → price;
//! `volume_24_h` → volume; `best_bid` / `best_ask` → bid / ask. Volume, bid and ask are
//! optional: missing, `null` or an empty string means none. Numbers are decimal strings on
//! the wire; JSON numbers are accepted too. A price (and bid/ask) must be finite and > 0,
//! a volume finite and >= 0.
//!
//! Ticker entries carry no time of their own, so every tick of a message takes the
//! envelope `timestamp` (RFC 3339, parsed here without a date crate to keep the guest
//! small), or the receive time when the envelope has none. `sequence_num` and `client_id`
//! are not read: a parsed payload has no place for them, and the host's heartbeat
//! watchdog is what notices a dead connection.
//!
//! A ticker message with no ticker entries still proves the stream alive, so it is a
//! heartbeat. Anything malformed is rejected with an error naming the field and the value.
//!
//! `subscribe_message` builds `{"type":"subscribe","product_ids":["BTC-USD",...],
//! "channel":"ticker"}`. Coinbase takes one channel per subscribe message and the host
//! sends one message, so this is the ticker (or the first requested channel) only. Idle
//! channels are closed after about a minute, so a live connection should also send
//! `{"type":"subscribe","product_ids":[...],"channel":"heartbeats"}`; that second message
//! is the host's (or the feed config's) job. Public market-data channels need no `jwt`.

use impressox_plugin_sdk::types::{ParsedPayload, PriceTick, SubscribeRequest};
use impressox_plugin_sdk::{FeedParser, export_feed_parser};
use serde_json::{Map, Value};

/// The plugin.
pub struct Coinbase;

impl FeedParser for Coinbase {
    const NAME: &'static str = "coinbase";
    const DESCRIPTION: &'static str =
        "Coinbase Advanced Trade WebSocket: ticker, ticker_batch, heartbeats, subscriptions";

    fn subscribe_message(request: SubscribeRequest) -> Option<String> {
        subscribe_message(&request)
    }

    fn parse(payload: Vec<u8>, received_ms: i64) -> Result<ParsedPayload, String> {
        parse(&payload, received_ms)
    }
}

export_feed_parser!(Coinbase);

/// Quote currencies recognised when turning `BTCUSD` back into `BTC-USD`, matched as
/// suffixes. None is a suffix of another, so `BTCUSDT` can only split as `BTC-USDT`.
const QUOTES: [&str; 7] = ["USDT", "USDC", "USD", "EUR", "GBP", "BTC", "ETH"];

/// Build the subscribe message; `None` when there is no symbol to subscribe to.
pub fn subscribe_message(request: &SubscribeRequest) -> Option<String> {
    let mut products: Vec<String> = Vec::new();
    for symbol in &request.symbols {
        let symbol = symbol.trim();
        if symbol.is_empty() {
            continue;
        }
        let product = product_id(symbol);
        if !products.contains(&product) {
            products.push(product);
        }
    }
    if products.is_empty() {
        return None;
    }
    let channel = request
        .channels
        .iter()
        .map(|c| c.trim())
        .find(|c| !c.is_empty())
        .unwrap_or("ticker");
    // Written by hand to keep Coinbase's documented key order (a `json!` map sorts keys);
    // `Value`'s Display escapes the strings.
    let products = Value::from(products);
    let channel = Value::from(channel);
    Some(format!(
        r#"{{"type":"subscribe","product_ids":{products},"channel":{channel}}}"#
    ))
}

/// `BTCUSD` → `BTC-USD`. A symbol that already has a dash is only upper-cased; one whose
/// quote is not in [`QUOTES`] is passed through as is, and Coinbase's error reply for it
/// then surfaces through `parse`.
fn product_id(symbol: &str) -> String {
    let symbol = symbol.to_ascii_uppercase();
    if symbol.contains('-') {
        return symbol;
    }
    for quote in QUOTES {
        if let Some(base) = symbol.strip_suffix(quote)
            && !base.is_empty()
        {
            return format!("{base}-{quote}");
        }
    }
    symbol
}

/// Parse one WebSocket text frame.
pub fn parse(payload: &[u8], received_ms: i64) -> Result<ParsedPayload, String> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err(format!("expected a JSON object, got {}", kind(&value)));
    };
    // Errors come without the envelope, so they are recognised before `channel` is required.
    if obj.get("type").and_then(Value::as_str) == Some("error") {
        return Err(error_reply(&obj));
    }
    let channel = match obj.get("channel") {
        Some(Value::String(c)) => c.as_str(),
        Some(other) => return Err(format!("envelope field `channel` is not a string: {other}")),
        None => return Err("message has no field `channel` and is not an error".to_string()),
    };
    match channel {
        "ticker" | "ticker_batch" => ticker_message(channel, &obj, received_ms),
        // Neither carries a price, but both prove the connection is alive.
        "heartbeats" | "subscriptions" => Ok(ParsedPayload {
            ticks: Vec::new(),
            heartbeat: true,
        }),
        other => Err(format!("unsupported channel `{other}`")),
    }
}

/// `{"type":"error","message":"failure to subscribe"}`; some replies add a `reason`.
fn error_reply(obj: &Map<String, Value>) -> String {
    let text = |key: &str| {
        obj.get(key).and_then(|v| match v {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::String(_) | Value::Null => None,
            other => Some(other.to_string()),
        })
    };
    let message = text("message").unwrap_or_else(|| "no message".to_string());
    match text("reason") {
        Some(reason) => format!("Coinbase error: {message} ({reason})"),
        None => format!("Coinbase error: {message}"),
    }
}

/// A `ticker` or `ticker_batch` message: every ticker of every event.
fn ticker_message(
    channel: &str,
    obj: &Map<String, Value>,
    received_ms: i64,
) -> Result<ParsedPayload, String> {
    let ts_ms = match obj.get("timestamp") {
        None | Some(Value::Null) => received_ms,
        Some(Value::String(s)) => rfc3339_ms(s).map_err(|why| {
            format!("envelope field `timestamp` is not an RFC 3339 time: {s:?} ({why})")
        })?,
        Some(other) => {
            return Err(format!(
                "envelope field `timestamp` is not a string: {other}"
            ));
        }
    };
    let events = match obj.get("events") {
        Some(Value::Array(events)) => events,
        Some(other) => {
            return Err(format!(
                "{channel} message field `events` is not an array: {}",
                kind(other)
            ));
        }
        None => return Err(format!("{channel} message missing field `events`")),
    };
    let mut ticks = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let event = event
            .as_object()
            .ok_or_else(|| format!("{channel} events[{i}] is not an object"))?;
        let tickers = match event.get("tickers") {
            Some(Value::Array(tickers)) => tickers,
            Some(other) => {
                return Err(format!(
                    "{channel} events[{i}] field `tickers` is not an array: {}",
                    kind(other)
                ));
            }
            None => return Err(format!("{channel} events[{i}] missing field `tickers`")),
        };
        for (j, entry) in tickers.iter().enumerate() {
            ticks.push(
                ticker(entry, ts_ms)
                    .map_err(|e| format!("{channel} events[{i}].tickers[{j}]: {e}"))?,
            );
        }
    }
    let heartbeat = ticks.is_empty();
    Ok(ParsedPayload { ticks, heartbeat })
}

/// One entry of `tickers[]`.
fn ticker(entry: &Value, ts_ms: i64) -> Result<PriceTick, String> {
    let obj = entry
        .as_object()
        .ok_or_else(|| format!("ticker is not an object: {}", kind(entry)))?;
    let product = match obj.get("product_id") {
        Some(Value::String(s))
            if !s.trim().is_empty()
                && !s
                    .trim()
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control()) =>
        {
            s.trim()
        }
        Some(other) => return Err(format!("field `product_id` is not a product: {other}")),
        None => return Err("missing field `product_id`".to_string()),
    };
    // Errors past this point name the product: "BTC-USD: field `price` ...".
    let with_product = |e: String| format!("{product}: {e}");
    let price = match obj.get("price") {
        None | Some(Value::Null) => return Err(with_product("missing field `price`".into())),
        Some(v) => match number("price", v).map_err(with_product)? {
            Some(p) => check_price("price", p).map_err(with_product)?,
            None => return Err(with_product("field `price` is empty".into())),
        },
    };
    let volume = optional(obj, "volume_24_h", check_volume).map_err(with_product)?;
    let bid = optional(obj, "best_bid", check_price).map_err(with_product)?;
    let ask = optional(obj, "best_ask", check_price).map_err(with_product)?;
    Ok(PriceTick {
        symbol: product.replace('-', "").to_uppercase(),
        price,
        ts_ms,
        volume,
        bid,
        ask,
    })
}

/// An optional number: missing, `null` or `""` is none; anything else must be valid.
fn optional(
    obj: &Map<String, Value>,
    key: &str,
    check: fn(&str, f64) -> Result<f64, String>,
) -> Result<Option<f64>, String> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => number(key, v)?.map(|n| check(key, n)).transpose(),
    }
}

/// A decimal string or JSON number; `Ok(None)` for `null` and the empty string.
fn number(key: &str, v: &Value) -> Result<Option<f64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| format!("field `{key}` is not a decimal number: {v}")),
        Value::Number(n) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("field `{key}` is not a decimal number: {v}")),
        other => Err(format!("field `{key}` is not a decimal number: {other}")),
    }
}

fn check_price(key: &str, p: f64) -> Result<f64, String> {
    if p.is_finite() && p > 0.0 {
        Ok(p)
    } else {
        Err(format!("field `{key}` is not a positive finite price: {p}"))
    }
}

fn check_volume(key: &str, v: f64) -> Result<f64, String> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("field `{key}` is not a finite quantity >= 0: {v}"))
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 time such as
/// `2025-11-28T03:20:00.123456789Z` or `2025-11-28T05:20:00+02:00`.
///
/// Accepts `T`, `t` or a space between date and time, `Z`/`z` or `±hh:mm`, and any number
/// of fractional digits (truncated to the millisecond, which floors for times after 1970).
/// A leap second (`:60`) is read as `:59.999`, so ticks never go back in time around it.
pub fn rfc3339_ms(s: &str) -> Result<i64, &'static str> {
    let b = s.as_bytes();
    let year = digits(b, 0, 4).ok_or("bad year")?;
    expect(b, 4, b"-").ok_or("expected `-` after the year")?;
    let month = digits(b, 5, 2).ok_or("bad month")?;
    expect(b, 7, b"-").ok_or("expected `-` after the month")?;
    let day = digits(b, 8, 2).ok_or("bad day")?;
    expect(b, 10, b"Tt ").ok_or("expected `T` between date and time")?;
    let hour = digits(b, 11, 2).ok_or("bad hour")?;
    expect(b, 13, b":").ok_or("expected `:` after the hour")?;
    let minute = digits(b, 14, 2).ok_or("bad minute")?;
    expect(b, 16, b":").ok_or("expected `:` after the minute")?;
    let mut second = digits(b, 17, 2).ok_or("bad second")?;

    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err("no digits after the decimal point");
        }
        // The first three digits, right-padded: ".5" is 500 ms, ".123456789" is 123 ms.
        for k in 0..3 {
            let d = match b.get(start + k) {
                Some(c) if start + k < i => i64::from(c - b'0'),
                _ => 0,
            };
            millis = millis * 10 + d;
        }
    }

    let offset_minutes = match b.get(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2).ok_or("bad offset hours")?;
            expect(b, i + 3, b":").ok_or("expected `:` in the offset")?;
            let om = digits(b, i + 4, 2).ok_or("bad offset minutes")?;
            if oh > 23 || om > 59 {
                return Err("offset out of range");
            }
            i += 6;
            let minutes = oh * 60 + om;
            if sign == b'-' { -minutes } else { minutes }
        }
        _ => return Err("missing time zone (`Z` or `±hh:mm`)"),
    };
    if i != b.len() {
        return Err("unexpected characters after the time zone");
    }

    if !(1..=12).contains(&month) {
        return Err("month out of range");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("day out of range");
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err("time of day out of range");
    }
    if second == 60 {
        second = 59;
        millis = 999;
    }

    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1_000 + millis)
}

/// `len` ASCII digits at `at`, as a number; `None` if out of bounds or not all digits.
fn digits(b: &[u8], at: usize, len: usize) -> Option<i64> {
    let field = b.get(at..at + len)?;
    field.iter().try_fold(0i64, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

/// `Some(())` when the byte at `at` is one of `allowed`.
fn expect(b: &[u8], at: usize, allowed: &[u8]) -> Option<()> {
    b.get(at).filter(|c| allowed.contains(c)).map(|_| ())
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm: years
/// start in March so the leap day falls at the end, and 400-year eras repeat exactly).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-11-28T03:20:00Z.
    const T0: i64 = 1_764_300_000_000;

    fn ok(payload: &str) -> ParsedPayload {
        parse(payload.as_bytes(), 1_000).unwrap_or_else(|e| panic!("{payload}: {e}"))
    }

    fn err(payload: &str) -> String {
        match parse(payload.as_bytes(), 1_000) {
            Ok(p) => panic!("{payload}: parsed to {} ticks", p.ticks.len()),
            Err(e) => e,
        }
    }

    /// A ticker message holding one ticker entry given as JSON object members.
    fn one_ticker(members: &str) -> String {
        format!(
            r#"{{"channel":"ticker","client_id":"","timestamp":"2025-11-28T03:20:00Z","sequence_num":3,"events":[{{"type":"update","tickers":[{{"type":"ticker",{members}}}]}}]}}"#
        )
    }

    fn one(payload: &str) -> PriceTick {
        let mut p = ok(payload);
        assert!(!p.heartbeat);
        assert_eq!(p.ticks.len(), 1, "{payload}");
        p.ticks.remove(0)
    }

    const TICKER: &str = r#"{
      "channel": "ticker", "client_id": "", "timestamp": "2025-11-28T03:20:00.123456789Z",
      "sequence_num": 0,
      "events": [{"type": "snapshot", "tickers": [
        {"type": "ticker", "product_id": "BTC-USD", "price": "96123.45", "volume_24_h": "16038.28770938",
         "low_24_h": "95000", "high_24_h": "97000", "low_52_w": "15460", "high_52_w": "108000",
         "price_percent_chg_24_h": "-1.25", "best_bid": "96123.44", "best_bid_quantity": "0.5",
         "best_ask": "96123.46", "best_ask_quantity": "0.25"},
        {"type": "ticker", "product_id": "ETH-USDT", "price": "3601.2", "volume_24_h": "1200.5",
         "best_bid": "3601.1", "best_ask": "3601.3"},
        {"type": "ticker", "product_id": "sol-usdc", "price": 240.125, "volume_24_h": 0}
      ]}]
    }"#;

    #[test]
    fn ticker_with_several_tickers() {
        let p = ok(TICKER);
        assert!(!p.heartbeat);
        let got: Vec<_> = p
            .ticks
            .iter()
            .map(|t| (t.symbol.as_str(), t.price, t.ts_ms, t.volume, t.bid, t.ask))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "BTCUSD",
                    96123.45,
                    T0 + 123,
                    Some(16038.28770938),
                    Some(96123.44),
                    Some(96123.46)
                ),
                (
                    "ETHUSDT",
                    3601.2,
                    T0 + 123,
                    Some(1200.5),
                    Some(3601.1),
                    Some(3601.3)
                ),
                ("SOLUSDC", 240.125, T0 + 123, Some(0.0), None, None),
            ]
        );
    }

    #[test]
    fn ticker_batch_and_several_events() {
        let p = ok(
            r#"{"channel":"ticker_batch","client_id":"","timestamp":"2025-11-28T03:20:01Z","sequence_num":9,
                "events":[{"type":"update","tickers":[{"type":"ticker","product_id":"BTC-USD","price":"96000"}]},
                          {"type":"update","tickers":[{"type":"ticker","product_id":"ETH-EUR","price":"3100.5"}]}]}"#,
        );
        let got: Vec<_> = p
            .ticks
            .iter()
            .map(|t| (t.symbol.as_str(), t.price, t.ts_ms))
            .collect();
        assert_eq!(
            got,
            vec![
                ("BTCUSD", 96000.0, T0 + 1000),
                ("ETHEUR", 3100.5, T0 + 1000)
            ]
        );
        // No ticker entries: alive, nothing to report.
        let p = ok(
            r#"{"channel":"ticker_batch","timestamp":"2025-11-28T03:20:01Z","events":[{"type":"update","tickers":[]}]}"#,
        );
        assert!(p.heartbeat && p.ticks.is_empty());
        assert!(ok(r#"{"channel":"ticker","events":[]}"#).heartbeat);
    }

    #[test]
    fn heartbeats_are_heartbeats() {
        let p = ok(
            r#"{"channel":"heartbeats","client_id":"","timestamp":"2025-11-28T03:20:26.122969572Z","sequence_num":12,
                "events":[{"current_time":"2025-11-28 03:20:26.121961769 +0000 UTC m=+91717.525857105","heartbeat_counter":"3049"}]}"#,
        );
        assert!(p.heartbeat);
        assert!(p.ticks.is_empty());
    }

    #[test]
    fn subscriptions_ack_is_a_heartbeat() {
        let p = ok(
            r#"{"channel":"subscriptions","client_id":"","timestamp":"2025-11-28T03:20:00.5Z","sequence_num":1,
                "events":[{"subscriptions":{"ticker":["BTC-USD","ETH-USD"],"heartbeats":["heartbeats"]}}]}"#,
        );
        assert!(p.heartbeat && p.ticks.is_empty());
    }

    #[test]
    fn error_message() {
        assert_eq!(
            err(r#"{"type":"error","message":"failure to subscribe"}"#),
            "Coinbase error: failure to subscribe"
        );
        assert_eq!(
            err(
                r#"{"type":"error","message":"Failed to subscribe","reason":"BTC-XYZ is not a valid product"}"#
            ),
            "Coinbase error: Failed to subscribe (BTC-XYZ is not a valid product)"
        );
        assert_eq!(err(r#"{"type":"error"}"#), "Coinbase error: no message");
    }

    #[test]
    fn missing_or_empty_best_bid_and_ask() {
        let t = one(&one_ticker(r#""product_id":"BTC-USD","price":"96000.5""#));
        assert_eq!((t.bid, t.ask, t.volume), (None, None, None));
        let t = one(&one_ticker(
            r#""product_id":"BTC-USD","price":"96000.5","best_bid":"","best_ask":"96000.6","volume_24_h":"""#,
        ));
        assert_eq!((t.bid, t.ask, t.volume), (None, Some(96000.6), None));
        let t = one(&one_ticker(
            r#""product_id":"BTC-USD","price":"96000.5","best_bid":null,"best_ask":"  ""#,
        ));
        assert_eq!((t.bid, t.ask), (None, None));
    }

    #[test]
    fn bad_price_string() {
        let e = err(&one_ticker(r#""product_id":"BTC-USD","price":"96,000.5""#));
        assert_eq!(
            e,
            r#"ticker events[0].tickers[0]: BTC-USD: field `price` is not a decimal number: "96,000.5""#
        );
        assert!(
            err(&one_ticker(r#""product_id":"BTC-USD","price":"""#)).contains("`price` is empty")
        );
        assert!(err(&one_ticker(r#""product_id":"BTC-USD""#)).contains("missing field `price`"));
        assert!(err(&one_ticker(r#""product_id":"BTC-USD","price":true"#)).contains("`price`"));
        assert!(
            err(&one_ticker(
                r#""product_id":"BTC-USD","price":"1","best_ask":"x""#
            ))
            .contains("`best_ask` is not a decimal number: \"x\"")
        );
    }

    #[test]
    fn non_positive_or_non_finite_price() {
        for bad in ["-96000", "0", "NaN", "inf", "-0"] {
            let e = err(&one_ticker(&format!(
                r#""product_id":"BTC-USD","price":"{bad}""#
            )));
            assert!(
                e.contains("`price` is not a positive finite price"),
                "{bad}: {e}"
            );
        }
        assert!(
            err(&one_ticker(
                r#""product_id":"BTC-USD","price":"1","best_bid":"-1""#
            ))
            .contains("`best_bid` is not a positive")
        );
        assert!(
            err(&one_ticker(
                r#""product_id":"BTC-USD","price":"1","volume_24_h":"-3""#
            ))
            .contains("`volume_24_h` is not a finite quantity")
        );
    }

    #[test]
    fn timestamp_with_offset() {
        let msg = |ts: &str| {
            format!(
                r#"{{"channel":"ticker","timestamp":"{ts}","events":[{{"tickers":[{{"product_id":"BTC-USD","price":"1"}}]}}]}}"#
            )
        };
        assert_eq!(one(&msg("2025-11-28T05:20:00+02:00")).ts_ms, T0);
        assert_eq!(one(&msg("2025-11-27T22:50:00-04:30")).ts_ms, T0);
        assert_eq!(one(&msg("2025-11-28T03:20:00-00:00")).ts_ms, T0);
        assert_eq!(one(&msg("2025-11-28 03:20:00z")).ts_ms, T0);
        // Without a timestamp the receive time stands in.
        let t = one(
            r#"{"channel":"ticker","events":[{"tickers":[{"product_id":"BTC-USD","price":"1"}]}]}"#,
        );
        assert_eq!(t.ts_ms, 1_000);
        // Bad timestamps name the field and the value.
        let e = err(&msg("2025-11-28T03:20:00"));
        assert!(
            e.starts_with(
                r#"envelope field `timestamp` is not an RFC 3339 time: "2025-11-28T03:20:00""#
            ),
            "{e}"
        );
        for bad in [
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-11-28T24:00:00Z",
            "2025-11-28T03:20:00+24:00",
            "2025-11-28T03:20:00+0200",
            "2025-11-28T03:20:00ZZ",
            "2025-11-28",
            "yesterday",
            "",
        ] {
            assert!(err(&msg(bad)).contains("`timestamp`"), "{bad}");
        }
        assert!(
            err(r#"{"channel":"ticker","timestamp":1764300000,"events":[]}"#)
                .contains("`timestamp` is not a string: 1764300000")
        );
    }

    #[test]
    fn fractional_seconds_of_any_length() {
        for (ts, want) in [
            ("2025-11-28T03:20:00Z", T0),
            ("2025-11-28T03:20:00.5Z", T0 + 500),
            ("2025-11-28T03:20:00.12Z", T0 + 120),
            ("2025-11-28T03:20:00.123Z", T0 + 123),
            ("2025-11-28T03:20:00.123999Z", T0 + 123),
            ("2025-11-28T03:20:00.167359596Z", T0 + 167),
            ("2025-11-28T03:20:00.000000000001+00:00", T0),
            ("2025-11-28T05:20:00.75+02:00", T0 + 750),
        ] {
            assert_eq!(rfc3339_ms(ts), Ok(want), "{ts}");
        }
        assert!(rfc3339_ms("2025-11-28T03:20:00.Z").is_err());
        assert!(rfc3339_ms("2025-11-28T03:20:00.12a4Z").is_err());
    }

    #[test]
    fn calendar_edges() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(rfc3339_ms("1969-12-31T23:59:59Z"), Ok(-1_000));
        assert_eq!(rfc3339_ms("2000-03-01T00:00:00Z"), Ok(951_868_800_000));
        assert_eq!(rfc3339_ms("2024-02-29T12:00:00Z"), Ok(1_709_208_000_000));
        assert_eq!(rfc3339_ms("2100-02-29T00:00:00Z"), Err("day out of range"));
        // A leap second stays within its minute.
        assert_eq!(rfc3339_ms("2016-12-31T23:59:60Z"), Ok(1_483_228_799_999));
    }

    #[test]
    fn non_json() {
        assert!(err("").contains("not valid JSON"));
        assert!(err("{\"channel\":\"ticker\"").contains("not valid JSON"));
        assert!(err("hello").contains("not valid JSON"));
        assert!(parse(&[0xff, 0xfe, 0x00], 0).is_err());
    }

    #[test]
    fn wrong_shape() {
        assert_eq!(
            err(r#"[{"channel":"ticker","events":[]}]"#),
            "expected a JSON object, got an array"
        );
        assert_eq!(err("42"), "expected a JSON object, got a number");
        assert_eq!(
            err(r#"{"channel":"ticker","events":{"tickers":[]}}"#),
            "ticker message field `events` is not an array: an object"
        );
        assert_eq!(
            err(r#"{"channel":"ticker"}"#),
            "ticker message missing field `events`"
        );
        assert_eq!(
            err(r#"{"channel":"ticker","events":[5]}"#),
            "ticker events[0] is not an object"
        );
        assert_eq!(
            err(r#"{"channel":"ticker","events":[{"type":"update"}]}"#),
            "ticker events[0] missing field `tickers`"
        );
        assert_eq!(
            err(r#"{"channel":"ticker_batch","events":[{"tickers":"BTC-USD"}]}"#),
            "ticker_batch events[0] field `tickers` is not an array: a string"
        );
        assert_eq!(
            err(
                r#"{"channel":"ticker","events":[{"tickers":[{"product_id":"BTC-USD","price":"1"},[]]}]}"#
            ),
            "ticker events[0].tickers[1]: ticker is not an object: an array"
        );
        assert_eq!(
            err(r#"{"channel":"ticker","events":[{"tickers":[{"price":"1"}]}]}"#),
            "ticker events[0].tickers[0]: missing field `product_id`"
        );
        assert!(
            err(r#"{"channel":"ticker","events":[{"tickers":[{"product_id":" ","price":"1"}]}]}"#)
                .contains("`product_id` is not a product")
        );
        assert_eq!(
            err(r#"{"channel":"level2","events":[]}"#),
            "unsupported channel `level2`"
        );
        assert_eq!(
            err(r#"{"channel":7}"#),
            "envelope field `channel` is not a string: 7"
        );
        assert_eq!(
            err(r#"{"hello":"world"}"#),
            "message has no field `channel` and is not an error"
        );
    }

    #[test]
    fn subscribe() {
        let req = SubscribeRequest {
            symbols: vec![
                "BTCUSD".into(),
                "btcusdt".into(),
                "ETHUSDC".into(),
                "SOL-EUR".into(),
                "ETHBTC".into(),
                "BTCUSD".into(),
                " ".into(),
            ],
            channels: vec![],
            request_id: 7,
        };
        let msg = subscribe_message(&req).expect("message");
        assert_eq!(
            msg,
            r#"{"type":"subscribe","product_ids":["BTC-USD","BTC-USDT","ETH-USDC","SOL-EUR","ETH-BTC"],"channel":"ticker"}"#
        );
        // The first non-empty requested channel wins; unknown quotes pass through.
        let req = SubscribeRequest {
            symbols: vec!["ADAGBP".into(), "XYZDAI".into(), "USD".into()],
            channels: vec!["".into(), "ticker_batch".into(), "heartbeats".into()],
            request_id: 1,
        };
        let v: Value =
            serde_json::from_str(&subscribe_message(&req).expect("message")).expect("json");
        assert_eq!(v["type"], "subscribe");
        assert_eq!(v["channel"], "ticker_batch");
        assert_eq!(
            v["product_ids"],
            serde_json::json!(["ADA-GBP", "XYZDAI", "USD"])
        );
        let empty = SubscribeRequest {
            symbols: vec![],
            channels: vec!["ticker".into()],
            request_id: 1,
        };
        assert_eq!(subscribe_message(&empty), None);
    }

    #[test]
    fn symbols_round_trip_through_subscribe() {
        // What we subscribe to comes back as the symbol we asked for.
        for symbol in ["BTCUSD", "BTCUSDT", "ETHUSDC", "SOLEUR", "ETHBTC"] {
            let req = SubscribeRequest {
                symbols: vec![symbol.into()],
                channels: vec![],
                request_id: 1,
            };
            let msg = subscribe_message(&req).expect("message");
            let v: Value = serde_json::from_str(&msg).expect("json");
            let product = v["product_ids"][0].as_str().expect("product id");
            let t = one(&one_ticker(&format!(
                r#""product_id":"{product}","price":"1""#
            )));
            assert_eq!(t.symbol, symbol);
        }
    }
}
