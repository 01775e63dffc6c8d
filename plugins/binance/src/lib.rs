//! `binance`: parses Binance spot WebSocket payloads into price ticks.
//!
//! Accepted frames (raw streams, or combined streams wrapped as
//! `{"stream": "btcusdt@trade", "data": {...}}`):
//!
//! | event | price | volume | bid / ask | time |
//! |---|---|---|---|---|
//! | `trade` (`e`="trade"), `aggTrade` | `p` | `q` | – | `T`, else `E` |
//! | `24hrMiniTicker` (`<s>@miniTicker`) | `c` | `v` | – | `E` |
//! | `24hrTicker` (`<s>@ticker`) | `c` | `v` | `b` / `a` | `E` |
//! | `kline` (`<s>@kline_<i>`) | `k.c` | `k.v` | – | `E` |
//! | bookTicker (no `e`; has `u`, `s`, `b`, `B`, `a`, `A`) | mid of `b` and `a` | – | `b` / `a` | `E` if present, else the receive time |
//!
//! An array (`!miniTicker@arr`, `!ticker@arr`) yields one tick per element. Subscription
//! acks (`{"result": null, "id": 1}`) are heartbeats without ticks; error replies
//! (`{"error": {"code": 2, "msg": "..."}, "id": 1}`) are errors.
//!
//! Prices and quantities are decimal strings on the wire; JSON numbers are accepted too.
//! A price (and bid/ask) must be finite and > 0, a volume finite and >= 0; otherwise the
//! payload is rejected with an error naming the event and the field, as is a missing
//! field (`trade event missing field `p``) or an unknown event type. Symbols come from
//! `s`, upper-cased; a combined-stream frame without `s` takes it from the stream name.
//!
//! `subscribe_message` builds `{"method":"SUBSCRIBE","params":["btcusdt@trade",...],"id":N}`
//! from every symbol (lower-cased) × channel; a channel starting with `!` (e.g.
//! `!miniTicker@arr`) is an all-market stream and is added once, as given.

use impressox_plugin_sdk::types::{ParsedPayload, PriceTick, SubscribeRequest};
use impressox_plugin_sdk::{FeedParser, export_feed_parser};
use serde_json::{Map, Value};

/// The plugin.
pub struct Binance;

impl FeedParser for Binance {
    const NAME: &'static str = "binance";
    const DESCRIPTION: &'static str =
        "Binance spot WebSocket: trade, aggTrade, miniTicker, ticker, bookTicker, kline";

    fn subscribe_message(request: SubscribeRequest) -> Option<String> {
        subscribe_message(&request)
    }

    fn parse(payload: Vec<u8>, received_ms: i64) -> Result<ParsedPayload, String> {
        parse(&payload, received_ms)
    }
}

export_feed_parser!(Binance);

/// Build the live `SUBSCRIBE` message; `None` when there is nothing to subscribe to.
pub fn subscribe_message(request: &SubscribeRequest) -> Option<String> {
    let mut params: Vec<String> = Vec::new();
    for channel in &request.channels {
        let channel = channel.trim();
        if channel.is_empty() {
            continue;
        }
        if channel.starts_with('!') {
            if !params.iter().any(|p| p == channel) {
                params.push(channel.to_string());
            }
            continue;
        }
        for symbol in &request.symbols {
            let symbol = symbol.trim();
            if !symbol.is_empty() {
                params.push(format!("{}@{channel}", symbol.to_ascii_lowercase()));
            }
        }
    }
    if params.is_empty() {
        return None;
    }
    // Written by hand to keep Binance's documented key order (a `json!` map sorts keys).
    let params = Value::from(params);
    Some(format!(
        r#"{{"method":"SUBSCRIBE","params":{params},"id":{}}}"#,
        request.request_id
    ))
}

/// Parse one WebSocket text frame.
pub fn parse(payload: &[u8], received_ms: i64) -> Result<ParsedPayload, String> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| format!("not valid JSON: {e}"))?;
    match value {
        Value::Object(obj) => {
            if let Some(data) = obj.get("data") {
                // Combined stream: {"stream": "btcusdt@trade", "data": {...}}.
                let stream = obj.get("stream").and_then(Value::as_str);
                return parse_data(data, stream, received_ms);
            }
            if obj.contains_key("id") && (obj.contains_key("result") || obj.contains_key("error")) {
                return control_reply(&obj);
            }
            Ok(ParsedPayload {
                ticks: vec![parse_event(&obj, None, received_ms)?],
                heartbeat: false,
            })
        }
        Value::Array(items) => parse_array(&items, None, received_ms),
        other => Err(format!(
            "expected a JSON object or array, got {}",
            kind(&other)
        )),
    }
}

/// The `data` of a combined-stream frame.
fn parse_data(
    data: &Value,
    stream: Option<&str>,
    received_ms: i64,
) -> Result<ParsedPayload, String> {
    match data {
        Value::Object(obj) => Ok(ParsedPayload {
            ticks: vec![parse_event(obj, stream, received_ms)?],
            heartbeat: false,
        }),
        Value::Array(items) => parse_array(items, stream, received_ms),
        other => Err(format!(
            "combined stream `data` must be an object or array, got {}",
            kind(other)
        )),
    }
}

fn parse_array(
    items: &[Value],
    stream: Option<&str>,
    received_ms: i64,
) -> Result<ParsedPayload, String> {
    let mut ticks = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let obj = item
            .as_object()
            .ok_or_else(|| format!("array element {i} is not an object"))?;
        ticks.push(
            parse_event(obj, stream, received_ms).map_err(|e| format!("array element {i}: {e}"))?,
        );
    }
    // An empty array carries no price but shows the stream is alive.
    let heartbeat = ticks.is_empty();
    Ok(ParsedPayload { ticks, heartbeat })
}

/// `{"result": null, "id": 1}` acknowledges a (un)subscription; `{"error": ..}` refuses it.
fn control_reply(obj: &Map<String, Value>) -> Result<ParsedPayload, String> {
    if let Some(error) = obj.get("error") {
        let id = obj.get("id").map(Value::to_string).unwrap_or_default();
        let code = error
            .get("code")
            .map(Value::to_string)
            .unwrap_or_else(|| "?".into());
        let msg = error
            .get("msg")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        return Err(format!("request {id} refused: error {code}: {msg}"));
    }
    Ok(ParsedPayload {
        ticks: Vec::new(),
        heartbeat: true,
    })
}

/// One event object.
fn parse_event(
    obj: &Map<String, Value>,
    stream: Option<&str>,
    received_ms: i64,
) -> Result<PriceTick, String> {
    let Some(event_type) = obj.get("e") else {
        if ["u", "b", "a"].iter().all(|k| obj.contains_key(*k)) {
            return book_ticker(obj, stream, received_ms);
        }
        return Err("event has no type field `e` and is not a bookTicker".to_string());
    };
    let event_type = event_type
        .as_str()
        .ok_or("event type `e` is not a string")?;
    let ev = Event {
        name: event_type,
        obj,
    };
    match event_type {
        "trade" | "aggTrade" => {
            let ts = match obj.get("T") {
                Some(_) => ev.time("T")?,
                None => ev.time("E")?,
            };
            Ok(PriceTick {
                symbol: ev.symbol(stream)?,
                price: ev.price("p")?,
                ts_ms: ts,
                volume: Some(ev.volume("q")?),
                bid: None,
                ask: None,
            })
        }
        "24hrMiniTicker" => Ok(PriceTick {
            symbol: ev.symbol(stream)?,
            price: ev.price("c")?,
            ts_ms: ev.time("E")?,
            volume: Some(ev.volume("v")?),
            bid: None,
            ask: None,
        }),
        "24hrTicker" => Ok(PriceTick {
            symbol: ev.symbol(stream)?,
            price: ev.price("c")?,
            ts_ms: ev.time("E")?,
            volume: Some(ev.volume("v")?),
            bid: ev.optional_price("b")?,
            ask: ev.optional_price("a")?,
        }),
        "kline" => {
            let k = obj.get("k").ok_or("kline event missing field `k`")?;
            let k = k
                .as_object()
                .ok_or("kline event field `k` is not an object")?;
            let bar = Event {
                name: "kline",
                obj: k,
            };
            Ok(PriceTick {
                symbol: ev.symbol(stream)?,
                price: bar.price_named("c", "k.c")?,
                ts_ms: ev.time("E")?,
                volume: Some(bar.volume_named("v", "k.v")?),
                bid: None,
                ask: None,
            })
        }
        other => Err(format!("unsupported event type `{other}`")),
    }
}

/// bookTicker: no event type and (on spot) no event time; the price is the mid.
fn book_ticker(
    obj: &Map<String, Value>,
    stream: Option<&str>,
    received_ms: i64,
) -> Result<PriceTick, String> {
    let ev = Event {
        name: "bookTicker",
        obj,
    };
    let bid = ev.price("b")?;
    let ask = ev.price("a")?;
    let ts = match obj.get("E") {
        Some(_) => ev.time("E")?,
        None => received_ms,
    };
    // Each side is finite; their sum need not be (two prices near f64::MAX). Halving
    // first cannot overflow; it is only the fallback, so ordinary mids stay bit-exact.
    let mid = (bid + ask) / 2.0;
    let mid = if mid.is_finite() {
        mid
    } else {
        bid / 2.0 + ask / 2.0
    };
    Ok(PriceTick {
        symbol: ev.symbol(stream)?,
        price: mid,
        ts_ms: ts,
        volume: None,
        bid: Some(bid),
        ask: Some(ask),
    })
}

/// Field access with errors that name the event and the field.
struct Event<'a> {
    name: &'a str,
    obj: &'a Map<String, Value>,
}

impl Event<'_> {
    fn field(&self, key: &str, label: &str) -> Result<&Value, String> {
        self.obj
            .get(key)
            .ok_or_else(|| format!("{} event missing field `{label}`", self.name))
    }

    fn number(&self, key: &str, label: &str) -> Result<f64, String> {
        let value = self.field(key, label)?;
        let parsed = match value {
            Value::String(s) => s.trim().parse::<f64>().ok(),
            Value::Number(n) => n.as_f64(),
            _ => None,
        };
        parsed.ok_or_else(|| {
            format!(
                "{} event field `{label}` is not a decimal number: {value}",
                self.name
            )
        })
    }

    fn price(&self, key: &str) -> Result<f64, String> {
        self.price_named(key, key)
    }

    fn price_named(&self, key: &str, label: &str) -> Result<f64, String> {
        let p = self.number(key, label)?;
        if p.is_finite() && p > 0.0 {
            Ok(p)
        } else {
            Err(format!(
                "{} event field `{label}` is not a positive finite price: {p}",
                self.name
            ))
        }
    }

    fn optional_price(&self, key: &str) -> Result<Option<f64>, String> {
        if self.obj.contains_key(key) {
            self.price(key).map(Some)
        } else {
            Ok(None)
        }
    }

    fn volume(&self, key: &str) -> Result<f64, String> {
        self.volume_named(key, key)
    }

    fn volume_named(&self, key: &str, label: &str) -> Result<f64, String> {
        let v = self.number(key, label)?;
        if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(format!(
                "{} event field `{label}` is not a finite quantity >= 0: {v}",
                self.name
            ))
        }
    }

    fn time(&self, key: &str) -> Result<i64, String> {
        let value = self.field(key, key)?;
        value.as_i64().ok_or_else(|| {
            format!(
                "{} event field `{key}` is not an integer time in ms: {value}",
                self.name
            )
        })
    }

    /// `s` upper-cased; without it, the symbol part of the combined stream's name.
    fn symbol(&self, stream: Option<&str>) -> Result<String, String> {
        match self.obj.get("s") {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_ascii_uppercase()),
            Some(other) => Err(format!(
                "{} event field `s` is not a symbol: {other}",
                self.name
            )),
            None => stream
                .and_then(|s| s.split('@').next())
                .filter(|s| !s.is_empty() && !s.starts_with('!'))
                .map(str::to_ascii_uppercase)
                .ok_or_else(|| format!("{} event missing field `s`", self.name)),
        }
    }
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

    fn ok(payload: &str) -> ParsedPayload {
        parse(payload.as_bytes(), 1_000).unwrap_or_else(|e| panic!("{payload}: {e}"))
    }

    fn one(payload: &str) -> PriceTick {
        let mut p = ok(payload);
        assert!(!p.heartbeat);
        assert_eq!(p.ticks.len(), 1);
        p.ticks.remove(0)
    }

    fn err(payload: &str) -> String {
        match parse(payload.as_bytes(), 1_000) {
            Ok(p) => panic!("{payload}: parsed to {} ticks", p.ticks.len()),
            Err(e) => e,
        }
    }

    const TRADE: &str = r#"{"e":"trade","E":1764300000123,"s":"BTCUSDT","t":5123456789,"p":"70123.40000000","q":"0.00150000","T":1764300000120,"m":true,"M":true}"#;

    #[test]
    fn trade() {
        let t = one(TRADE);
        assert_eq!(t.symbol, "BTCUSDT");
        assert_eq!(t.price, 70123.4);
        assert_eq!(t.volume, Some(0.0015));
        assert_eq!(t.ts_ms, 1764300000120);
        assert_eq!((t.bid, t.ask), (None, None));
    }

    #[test]
    fn trade_without_trade_time_uses_event_time() {
        let t = one(r#"{"e":"trade","E":1764300000123,"s":"ethusdt","p":"3500.1","q":"2"}"#);
        assert_eq!(t.ts_ms, 1764300000123);
        assert_eq!(t.symbol, "ETHUSDT");
    }

    #[test]
    fn agg_trade() {
        let t = one(
            r#"{"e":"aggTrade","E":1764300000200,"s":"BTCUSDT","a":26129,"p":"70000.01","q":"0.5","f":100,"l":105,"T":1764300000199,"m":true,"M":true}"#,
        );
        assert_eq!((t.price, t.ts_ms), (70000.01, 1764300000199));
    }

    #[test]
    fn mini_ticker() {
        let t = one(
            r#"{"e":"24hrMiniTicker","E":1764300001000,"s":"BNBUSDT","c":"612.30000000","o":"600.00000000","h":"615.00000000","l":"598.10000000","v":"12345.67000000","q":"7512345.10000000"}"#,
        );
        assert_eq!(
            (t.symbol.as_str(), t.price, t.ts_ms),
            ("BNBUSDT", 612.3, 1764300001000)
        );
        assert_eq!(t.volume, Some(12345.67));
    }

    #[test]
    fn full_ticker_has_bid_and_ask() {
        let t = one(
            r#"{"e":"24hrTicker","E":1764300001000,"s":"BTCUSDT","p":"100.0","P":"0.14","c":"70100.00","Q":"0.1","b":"70099.99","B":"1.2","a":"70100.01","A":"0.8","o":"70000","h":"71000","l":"69000","v":"1234.5","q":"86500000"}"#,
        );
        assert_eq!(
            (t.price, t.bid, t.ask),
            (70100.0, Some(70099.99), Some(70100.01))
        );
    }

    #[test]
    fn mini_ticker_array() {
        let p = ok(
            r#"[{"e":"24hrMiniTicker","E":1,"s":"BTCUSDT","c":"70000","o":"1","h":"1","l":"1","v":"10","q":"1"},{"e":"24hrMiniTicker","E":2,"s":"ETHUSDT","c":"3500","o":"1","h":"1","l":"1","v":"20","q":"1"}]"#,
        );
        assert!(!p.heartbeat);
        let got: Vec<(&str, f64, i64)> = p
            .ticks
            .iter()
            .map(|t| (t.symbol.as_str(), t.price, t.ts_ms))
            .collect();
        assert_eq!(got, vec![("BTCUSDT", 70000.0, 1), ("ETHUSDT", 3500.0, 2)]);
        assert!(ok("[]").heartbeat);
    }

    #[test]
    fn book_ticker_is_the_mid() {
        let t = one(
            r#"{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#,
        );
        assert_eq!(t.symbol, "BNBUSDT");
        assert!((t.price - 25.35855).abs() < 1e-9);
        assert_eq!((t.bid, t.ask), (Some(25.3519), Some(25.3652)));
        assert_eq!(t.ts_ms, 1_000, "no event time: the receive time");
        assert_eq!(t.volume, None);
        // A variant with an event time uses it.
        let t = one(r#"{"u":1,"E":1764300000000,"s":"BNBUSDT","b":"25","B":"1","a":"27","A":"1"}"#);
        assert_eq!((t.price, t.ts_ms), (26.0, 1764300000000));
    }

    #[test]
    fn kline() {
        let t = one(
            r#"{"e":"kline","E":1764300002000,"s":"BTCUSDT","k":{"t":1764300000000,"T":1764300059999,"s":"BTCUSDT","i":"1m","f":100,"L":200,"o":"70000.00","c":"70050.50","h":"70100.00","l":"69950.00","v":"12.5","n":100,"x":false,"q":"875000.0","V":"6.0","Q":"420000.0","B":"0"}}"#,
        );
        assert_eq!(
            (t.price, t.ts_ms, t.volume),
            (70050.5, 1764300002000, Some(12.5))
        );
    }

    #[test]
    fn combined_stream_wrapper() {
        let t = one(&format!(r#"{{"stream":"btcusdt@trade","data":{TRADE}}}"#));
        assert_eq!((t.symbol.as_str(), t.price), ("BTCUSDT", 70123.4));
        // Symbol from the stream name when `s` is absent.
        let t = one(
            r#"{"stream":"solusdt@bookTicker","data":{"u":1,"b":"150","B":"1","a":"152","A":"1"}}"#,
        );
        assert_eq!((t.symbol.as_str(), t.price), ("SOLUSDT", 151.0));
        let p = ok(
            r#"{"stream":"!miniTicker@arr","data":[{"e":"24hrMiniTicker","E":1,"s":"BTCUSDT","c":"70000","o":"1","h":"1","l":"1","v":"10","q":"1"}]}"#,
        );
        assert_eq!(p.ticks.len(), 1);
    }

    #[test]
    fn subscription_ack_is_a_heartbeat() {
        let p = ok(r#"{"result":null,"id":1}"#);
        assert!(p.heartbeat);
        assert!(p.ticks.is_empty());
        let e = err(r#"{"error":{"code":2,"msg":"Invalid request: unknown variable"},"id":7}"#);
        assert!(
            e.contains("error 2") && e.contains("Invalid request") && e.contains('7'),
            "{e}"
        );
    }

    #[test]
    fn malformed_frames() {
        assert!(err("").contains("not valid JSON"));
        assert!(err("{\"e\":\"trade\"").contains("not valid JSON"));
        assert!(err("\u{ff}\u{fe}").contains("not valid JSON"));
        assert!(err("42").contains("a number"));
        assert_eq!(
            err(r#"{"e":"trade","E":1,"s":"BTCUSDT","q":"1"}"#),
            "trade event missing field `p`"
        );
        assert_eq!(
            err(r#"{"e":"kline","E":1,"s":"BTCUSDT"}"#),
            "kline event missing field `k`"
        );
        assert!(err(r#"{"e":"kline","E":1,"s":"X","k":{"v":"1"}}"#).contains("`k.c`"));
        assert!(
            err(r#"{"e":"trade","E":1,"s":"BTCUSDT","p":"abc","q":"1"}"#)
                .contains("`p` is not a decimal")
        );
        assert!(
            err(r#"{"e":"trade","E":1,"s":"BTCUSDT","p":"-1","q":"1"}"#)
                .contains("`p` is not a positive")
        );
        assert!(
            err(r#"{"e":"trade","E":1,"s":"BTCUSDT","p":"0","q":"1"}"#)
                .contains("`p` is not a positive")
        );
        assert!(err(r#"{"e":"trade","E":1,"s":"BTCUSDT","p":"NaN","q":"1"}"#).contains("`p`"));
        assert!(err(r#"{"e":"trade","E":1,"s":"BTCUSDT","p":"inf","q":"1"}"#).contains("`p`"));
        assert!(err(r#"{"e":"trade","E":1,"s":"BTCUSDT","p":"1","q":"-1"}"#).contains("`q`"));
        assert!(err(r#"{"e":"trade","E":"soon","s":"BTCUSDT","p":"1","q":"1"}"#).contains("`E`"));
        assert_eq!(
            err(r#"{"e":"trade","E":1,"p":"1","q":"1"}"#),
            "trade event missing field `s`"
        );
        assert_eq!(
            err(r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT"}"#),
            "unsupported event type `depthUpdate`"
        );
        assert!(
            err(r#"{"u":1,"s":"X","b":"0","B":"1","a":"1","A":"1"}"#)
                .contains("bookTicker event field `b`")
        );
        assert!(err(r#"{"hello":"world"}"#).contains("no type field"));
        assert!(err(r#"[1]"#).contains("array element 0"));
        assert!(err(r#"{"stream":"x","data":5}"#).contains("`data`"));
    }

    #[test]
    fn subscribe() {
        let req = SubscribeRequest {
            symbols: vec!["BTCUSDT".into(), "EthUsdt".into()],
            channels: vec!["trade".into(), "kline_1m".into(), "!miniTicker@arr".into()],
            request_id: 7,
        };
        let msg = subscribe_message(&req).expect("message");
        assert!(
            msg.starts_with(r#"{"method":"SUBSCRIBE","params":["btcusdt@trade","#),
            "{msg}"
        );
        assert!(msg.ends_with(r#"],"id":7}"#), "{msg}");
        let v: Value = serde_json::from_str(&msg).expect("json");
        assert_eq!(v["method"], "SUBSCRIBE");
        assert_eq!(v["id"], 7);
        assert_eq!(
            v["params"],
            serde_json::json!([
                "btcusdt@trade",
                "ethusdt@trade",
                "btcusdt@kline_1m",
                "ethusdt@kline_1m",
                "!miniTicker@arr"
            ])
        );
        let empty = SubscribeRequest {
            symbols: vec![],
            channels: vec!["trade".into()],
            request_id: 1,
        };
        assert_eq!(subscribe_message(&empty), None);
    }
}
