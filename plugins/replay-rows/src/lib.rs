//! `replay-rows`: parses rows of a replay file (JSONL or CSV) into price ticks.
//!
//! A payload is normally one row; a payload holding several lines is parsed line by line.
//! Each line is one of:
//! - JSONL: `{"ts_ms": 1764300000000, "symbol": "BTCUSDT", "price": 70123.4, "volume": 1.5}`.
//!   `ts` is accepted instead of `ts_ms` (milliseconds either way); `price`, `volume`,
//!   and the optional `bid`/`ask` may be numbers or decimal strings.
//! - CSV: `ts_ms,symbol,price[,volume]` (fields trimmed, a symbol may be double-quoted;
//!   an empty volume is none).
//! - a CSV header (first field starting with `ts`, e.g. `ts_ms,symbol,price,volume`), an
//!   empty line or a `#` comment: no tick.
//!
//! A payload without any tick is a heartbeat. Symbols are upper-cased. A price must be
//! finite and > 0, a volume finite and >= 0; errors name the line (when there are
//! several), the field and the value.

use impressox_plugin_sdk::types::{ParsedPayload, PriceTick};
use impressox_plugin_sdk::{FeedParser, export_feed_parser};
use serde_json::{Map, Value};

/// The plugin.
pub struct ReplayRows;

impl FeedParser for ReplayRows {
    const NAME: &'static str = "replay-rows";
    const DESCRIPTION: &'static str =
        "replay files: JSONL or CSV rows (ts_ms, symbol, price, volume)";

    fn parse(payload: Vec<u8>, _received_ms: i64) -> Result<ParsedPayload, String> {
        parse(&payload)
    }
}

export_feed_parser!(ReplayRows);

/// Parse one payload (normally one row). Replay rows carry their own time, so the receive
/// time is not needed.
pub fn parse(payload: &[u8]) -> Result<ParsedPayload, String> {
    let text = std::str::from_utf8(payload).map_err(|e| format!("row is not UTF-8: {e}"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut ticks = Vec::with_capacity(lines.len());
    for (n, line) in lines.iter().enumerate() {
        let tick = parse_line(line).map_err(|e| {
            if lines.len() > 1 {
                format!("line {}: {e}", n + 1)
            } else {
                e
            }
        })?;
        ticks.extend(tick);
    }
    let heartbeat = ticks.is_empty();
    Ok(ParsedPayload { ticks, heartbeat })
}

/// One non-empty line; `None` for headers and comments.
fn parse_line(line: &str) -> Result<Option<PriceTick>, String> {
    if line.starts_with('#') {
        return Ok(None);
    }
    if line.starts_with('{') {
        return parse_json(line).map(Some);
    }
    parse_csv(line)
}

fn parse_json(line: &str) -> Result<PriceTick, String> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| format!("JSON row is not valid JSON: {e}"))?;
    let obj = value.as_object().ok_or("JSON row is not an object")?;
    let ts_ms = match (obj.get("ts_ms"), obj.get("ts")) {
        (Some(v), _) => json_time("ts_ms", v)?,
        (None, Some(v)) => json_time("ts", v)?,
        (None, None) => return Err("JSON row missing field `ts_ms` (or `ts`)".to_string()),
    };
    let symbol = match obj.get("symbol") {
        Some(Value::String(s)) => symbol(s)?,
        Some(other) => return Err(format!("JSON row field `symbol` is not a string: {other}")),
        None => return Err("JSON row missing field `symbol`".to_string()),
    };
    let price = match obj.get("price") {
        Some(v) => check_price("price", json_number("price", v)?)?,
        None => return Err("JSON row missing field `price`".to_string()),
    };
    Ok(PriceTick {
        symbol,
        price,
        ts_ms,
        volume: optional(obj, "volume", check_volume)?,
        bid: optional(obj, "bid", check_price)?,
        ask: optional(obj, "ask", check_price)?,
    })
}

fn optional(
    obj: &Map<String, Value>,
    key: &str,
    check: fn(&str, f64) -> Result<f64, String>,
) -> Result<Option<f64>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => check(key, json_number(key, v)?).map(Some),
    }
}

fn json_number(key: &str, v: &Value) -> Result<f64, String> {
    let parsed = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| format!("field `{key}` is not a number: {v}"))
}

fn json_time(key: &str, v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("field `{key}` is not an integer time in ms: {v}"))
}

fn parse_csv(line: &str) -> Result<Option<PriceTick>, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let first = fields.first().copied().unwrap_or_default();
    if first
        .trim_matches('"')
        .to_ascii_lowercase()
        .starts_with("ts")
    {
        return Ok(None); // header
    }
    let [ts, sym, p, rest @ ..] = fields.as_slice() else {
        return Err(format!(
            "CSV row needs ts_ms,symbol,price[,volume], got {} field(s)",
            fields.len()
        ));
    };
    if rest.len() > 1 {
        return Err(format!(
            "CSV row needs ts_ms,symbol,price[,volume], got {} fields",
            fields.len()
        ));
    }
    let ts_ms = ts
        .parse::<i64>()
        .map_err(|_| format!("field `ts_ms` is not an integer time in ms: {ts:?}"))?;
    let price_value = p
        .parse::<f64>()
        .map_err(|_| format!("field `price` is not a number: {p:?}"))?;
    let volume = match rest.first() {
        None | Some(&"") => None,
        Some(v) => Some(check_volume(
            "volume",
            v.parse::<f64>()
                .map_err(|_| format!("field `volume` is not a number: {v:?}"))?,
        )?),
    };
    Ok(Some(PriceTick {
        symbol: symbol(sym.trim_matches('"'))?,
        price: check_price("price", price_value)?,
        ts_ms,
        volume,
        bid: None,
        ask: None,
    }))
}

fn symbol(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("field `symbol` is not a symbol: {s:?}"));
    }
    Ok(s.to_uppercase())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(row: &str) -> ParsedPayload {
        parse(row.as_bytes()).unwrap_or_else(|e| panic!("{row}: {e}"))
    }

    fn one(row: &str) -> PriceTick {
        let mut p = ok(row);
        assert!(!p.heartbeat);
        assert_eq!(p.ticks.len(), 1, "{row}");
        p.ticks.remove(0)
    }

    fn err(row: &str) -> String {
        match parse(row.as_bytes()) {
            Ok(p) => panic!("{row}: parsed to {} ticks", p.ticks.len()),
            Err(e) => e,
        }
    }

    #[test]
    fn jsonl() {
        let t = one(r#"{"ts_ms":1764300000000,"symbol":"BTCUSDT","price":70123.4,"volume":1.5}"#);
        assert_eq!(
            (t.symbol.as_str(), t.price, t.ts_ms, t.volume),
            ("BTCUSDT", 70123.4, 1764300000000, Some(1.5))
        );
        let t = one("{\"ts\":5,\"symbol\":\"ethusdt\",\"price\":\"3500.25\"}\n");
        assert_eq!(
            (t.symbol.as_str(), t.price, t.ts_ms, t.volume),
            ("ETHUSDT", 3500.25, 5, None)
        );
        let t = one(r#"{"ts_ms":1,"symbol":"X","price":2,"bid":1.5,"ask":2.5,"volume":null}"#);
        assert_eq!((t.bid, t.ask, t.volume), (Some(1.5), Some(2.5), None));
    }

    #[test]
    fn csv() {
        let t = one("1764300000000,BTCUSDT,70123.4,0.25");
        assert_eq!(
            (t.symbol.as_str(), t.price, t.ts_ms, t.volume),
            ("BTCUSDT", 70123.4, 1764300000000, Some(0.25))
        );
        let t = one(" 2 , \"solusdt\" , 150.5 \r\n");
        assert_eq!(
            (t.symbol.as_str(), t.price, t.ts_ms, t.volume),
            ("SOLUSDT", 150.5, 2, None)
        );
        assert_eq!(one("3,BTCUSDT,1,").volume, None);
    }

    #[test]
    fn header_empty_and_comment_are_heartbeats() {
        for row in [
            "ts_ms,symbol,price,volume",
            "ts_ms,symbol,price",
            "\"ts\",\"symbol\",\"price\"",
            "",
            "  \n",
            "# replay of 2025-11-28",
        ] {
            let p = ok(row);
            assert!(p.heartbeat && p.ticks.is_empty(), "{row:?}");
        }
        // A BOM before the header of the first row.
        assert!(ok("\u{feff}ts_ms,symbol,price").heartbeat);
    }

    #[test]
    fn several_lines() {
        let p = ok(
            "ts_ms,symbol,price\n1,BTCUSDT,70000\n{\"ts_ms\":2,\"symbol\":\"BTCUSDT\",\"price\":70001}\n",
        );
        let got: Vec<(i64, f64)> = p.ticks.iter().map(|t| (t.ts_ms, t.price)).collect();
        assert_eq!(got, vec![(1, 70000.0), (2, 70001.0)]);
        assert!(err("1,BTCUSDT,1\n2,BTCUSDT,x").starts_with("line 2: "));
    }

    #[test]
    fn errors() {
        assert!(err("1,BTCUSDT").contains("got 2 field"));
        assert!(err("1,BTCUSDT,1,2,3").contains("got 5 fields"));
        assert!(err("abc,BTCUSDT,1").contains("`ts_ms`"));
        assert!(err("1,BTCUSDT,zero").contains("`price` is not a number"));
        assert!(err("1,BTCUSDT,0").contains("positive"));
        assert!(err("1,BTCUSDT,-2").contains("positive"));
        assert!(err("1,BTCUSDT,NaN").contains("positive"));
        assert!(err("1,BTCUSDT,inf").contains("positive"));
        assert!(err("1,BTCUSDT,1,-1").contains("`volume`"));
        assert!(err("1,,1").contains("`symbol`"));
        assert!(err(r#"{"symbol":"X","price":1}"#).contains("`ts_ms`"));
        assert!(err(r#"{"ts_ms":1,"price":1}"#).contains("`symbol`"));
        assert!(err(r#"{"ts_ms":1,"symbol":"X"}"#).contains("`price`"));
        assert!(err(r#"{"ts_ms":1.5,"symbol":"X","price":1}"#).contains("`ts_ms`"));
        assert!(err(r#"{"ts_ms":1,"symbol":7,"price":1}"#).contains("`symbol`"));
        assert!(err(r#"{"ts_ms":1,"symbol":"X","price":[1]}"#).contains("`price`"));
        assert!(err(r#"{"ts_ms":1,"symbol":"X","price":1,"bid":0}"#).contains("`bid`"));
        assert!(err(r#"{"ts_ms":1,"#).contains("not valid JSON"));
        assert!(err("\u{0}\u{1}").contains("field"));
        assert!(parse(&[0xff, 0xfe]).is_err());
    }
}
