//! `coingecko`: parses CoinGecko `GET /api/v3/simple/price` bodies into price ticks.
//!
//! Input: `{"bitcoin": {"usd": 70123.4, "usd_24h_change": 1.2, "usd_24h_vol": 3.1e10,
//! "last_updated_at": 1764300000}, ...}`. Every coin id yields one tick per quote currency
//! it carries (a key without an underscore, such as `usd` or `eur`); the `<cur>_24h_vol`
//! key, when present, becomes the tick's volume. Other keys (`usd_24h_change`,
//! `usd_market_cap`, ...) are ignored.
//!
//! Symbols: the coin id maps to an exchange base asset through a fixed table of
//! well-known ids (`bitcoin` → `BTC`, `ethereum` → `ETH`, `solana` → `SOL`, ... see
//! [`base_asset`]); a `usd` quote is named `USDT`, so `bitcoin`/`usd` is `BTCUSDT`, the same
//! symbol the exchange feeds use. Any other quote is upper-cased (`bitcoin`/`eur` →
//! `BTCEUR`). An id not in the table is upper-cased with everything but ASCII letters and
//! digits dropped, and its usd quote is named `USD` (not `USDT`, since nothing says the
//! coin trades against USDT anywhere): `foo-coin`/`usd` → `FOOCOINUSD`.
//!
//! Time: `last_updated_at` (seconds) × 1000, else the receive time.
//!
//! An empty object is a successful poll without prices (heartbeat). CoinGecko's error
//! bodies (`{"status": {"error_code": 429, "error_message": "..."}}`, `{"error": "..."}`)
//! and prices that are not finite and > 0 are errors that name the problem.

use impressox_plugin_sdk::types::{ParsedPayload, PriceTick};
use impressox_plugin_sdk::{FeedParser, export_feed_parser};
use serde_json::{Map, Value};

/// The plugin.
pub struct CoinGecko;

impl FeedParser for CoinGecko {
    const NAME: &'static str = "coingecko";
    const DESCRIPTION: &'static str = "CoinGecko /api/v3/simple/price bodies";

    fn parse(payload: Vec<u8>, received_ms: i64) -> Result<ParsedPayload, String> {
        parse(&payload, received_ms)
    }
}

export_feed_parser!(CoinGecko);

/// Well-known CoinGecko ids and their exchange base asset.
const KNOWN: &[(&str, &str)] = &[
    ("bitcoin", "BTC"),
    ("ethereum", "ETH"),
    ("solana", "SOL"),
    ("binancecoin", "BNB"),
    ("ripple", "XRP"),
    ("cardano", "ADA"),
    ("dogecoin", "DOGE"),
    ("tron", "TRX"),
    ("the-open-network", "TON"),
    ("polkadot", "DOT"),
    ("chainlink", "LINK"),
    ("avalanche-2", "AVAX"),
    ("litecoin", "LTC"),
    ("bitcoin-cash", "BCH"),
    ("shiba-inu", "SHIB"),
    ("stellar", "XLM"),
    ("uniswap", "UNI"),
    ("near", "NEAR"),
    ("aptos", "APT"),
    ("sui", "SUI"),
    ("pepe", "PEPE"),
    ("matic-network", "MATIC"),
    ("polygon-ecosystem-token", "POL"),
    ("arbitrum", "ARB"),
    ("optimism", "OP"),
    ("cosmos", "ATOM"),
];

/// The exchange base asset of a CoinGecko id, when it is a well-known one.
pub fn base_asset(id: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(known, _)| *known == id)
        .map(|(_, base)| *base)
}

/// The exchange-style symbol for a coin id and quote currency (see the crate docs).
pub fn symbol_for(id: &str, currency: &str) -> String {
    let currency = currency.to_ascii_uppercase();
    match base_asset(id) {
        Some(base) if currency == "USD" => format!("{base}USDT"),
        Some(base) => format!("{base}{currency}"),
        None => {
            let base: String = id.chars().filter(char::is_ascii_alphanumeric).collect();
            format!("{}{currency}", base.to_ascii_uppercase())
        }
    }
}

/// Parse one `/simple/price` body received at `received_ms`.
pub fn parse(payload: &[u8], received_ms: i64) -> Result<ParsedPayload, String> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(coins) = value else {
        return Err("expected a JSON object of coin ids".to_string());
    };
    if let Some(error) = api_error(&coins) {
        return Err(error);
    }
    let mut ticks = Vec::new();
    for (id, entry) in &coins {
        let Value::Object(fields) = entry else {
            return Err(format!("`{id}` is not an object"));
        };
        coin_ticks(id, fields, received_ms, &mut ticks)?;
    }
    let heartbeat = ticks.is_empty();
    Ok(ParsedPayload { ticks, heartbeat })
}

/// CoinGecko's error shapes: `{"status": {"error_code", "error_message"}}` and
/// `{"error": "..."}`.
fn api_error(body: &Map<String, Value>) -> Option<String> {
    if let Some(status) = body.get("status").and_then(Value::as_object)
        && (status.contains_key("error_code") || status.contains_key("error_message"))
    {
        let code = status
            .get("error_code")
            .map(Value::to_string)
            .unwrap_or_else(|| "?".into());
        let msg = status
            .get("error_message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        return Some(format!("CoinGecko error {code}: {msg}"));
    }
    match body.get("error") {
        Some(Value::String(msg)) => Some(format!("CoinGecko error: {msg}")),
        Some(other) => Some(format!("CoinGecko error: {other}")),
        None => None,
    }
}

fn coin_ticks(
    id: &str,
    fields: &Map<String, Value>,
    received_ms: i64,
    ticks: &mut Vec<PriceTick>,
) -> Result<(), String> {
    let ts_ms = match fields.get("last_updated_at") {
        None | Some(Value::Null) => received_ms,
        Some(v) => v
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e13)
            .map(|s| (s * 1000.0) as i64)
            .ok_or_else(|| format!("`{id}.last_updated_at` is not a time in seconds: {v}"))?,
    };
    // Quote currencies are the keys without an underscore (`usd`, `eur`, `btc`).
    for (currency, value) in fields.iter().filter(|(k, _)| !k.contains('_')) {
        // A symbol is made of the id's letters and digits and the currency code; a key
        // that gives none (fuzzing found `{" ": {" ": 1}}`) would be a tick for no symbol.
        let currency_ok =
            !currency.is_empty() && currency.chars().all(|c| c.is_ascii_alphanumeric());
        if !currency_ok || !id.chars().any(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "`{id}.{currency}`: no symbol can be made of this coin id and currency \
                 (letters and digits expected)"
            ));
        }
        let price = value
            .as_f64()
            .filter(|p| p.is_finite() && *p > 0.0)
            .ok_or_else(|| format!("`{id}.{currency}` is not a positive finite price: {value}"))?;
        let volume = fields
            .get(&format!("{currency}_24h_vol"))
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite() && *v >= 0.0);
        ticks.push(PriceTick {
            symbol: symbol_for(id, currency),
            price,
            ts_ms,
            volume,
            bid: None,
            ask: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> ParsedPayload {
        parse(body.as_bytes(), 5_000).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    fn err(body: &str) -> String {
        match parse(body.as_bytes(), 5_000) {
            Ok(p) => panic!("{body}: parsed to {} ticks", p.ticks.len()),
            Err(e) => e,
        }
    }

    #[test]
    fn simple_price_body() {
        let p = ok(
            r#"{"bitcoin":{"usd":70123.4,"usd_24h_change":1.2,"last_updated_at":1764300000},"ethereum":{"usd":3500.5,"usd_24h_vol":12345.5,"usd_24h_change":-0.4}}"#,
        );
        assert!(!p.heartbeat);
        let mut got: Vec<(String, f64, i64, Option<f64>)> = p
            .ticks
            .into_iter()
            .map(|t| (t.symbol, t.price, t.ts_ms, t.volume))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            vec![
                ("BTCUSDT".to_string(), 70123.4, 1_764_300_000_000, None),
                // No last_updated_at: the receive time.
                ("ETHUSDT".to_string(), 3500.5, 5_000, Some(12345.5)),
            ]
        );
    }

    #[test]
    fn symbols() {
        assert_eq!(symbol_for("solana", "usd"), "SOLUSDT");
        assert_eq!(symbol_for("bitcoin", "eur"), "BTCEUR");
        assert_eq!(symbol_for("avalanche-2", "usd"), "AVAXUSDT");
        assert_eq!(symbol_for("foo-coin", "usd"), "FOOCOINUSD");
        assert_eq!(symbol_for("foo-coin", "eur"), "FOOCOINEUR");
    }

    #[test]
    fn keys_that_make_no_symbol_are_errors() {
        assert!(err(r#"{" ": {" ": 1}}"#).contains("no symbol"));
        assert!(err(r#"{"bitcoin": {"u sd": 1}}"#).contains("no symbol"));
        assert!(err(r#"{"--": {"usd": 1}}"#).contains("no symbol"));
    }

    #[test]
    fn several_currencies() {
        let p = ok(r#"{"bitcoin":{"usd":70000,"eur":65000,"eur_24h_change":1.0}}"#);
        let mut s: Vec<String> = p.ticks.into_iter().map(|t| t.symbol).collect();
        s.sort();
        assert_eq!(s, vec!["BTCEUR", "BTCUSDT"]);
    }

    #[test]
    fn empty_body_is_a_heartbeat() {
        let p = ok("{}");
        assert!(p.heartbeat && p.ticks.is_empty());
        // An id without any quote is no price, not an error.
        assert!(ok(r#"{"bitcoin":{}}"#).heartbeat);
    }

    #[test]
    fn errors() {
        assert!(err("not json").contains("not valid JSON"));
        assert!(err("[]").contains("object"));
        assert_eq!(
            err(
                r#"{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit."}}"#
            ),
            "CoinGecko error 429: You've exceeded the Rate Limit."
        );
        assert_eq!(
            err(r#"{"error":"invalid vs_currency"}"#),
            "CoinGecko error: invalid vs_currency"
        );
        assert!(err(r#"{"bitcoin":5}"#).contains("`bitcoin` is not an object"));
        assert!(err(r#"{"bitcoin":{"usd":null}}"#).contains("`bitcoin.usd`"));
        assert!(err(r#"{"bitcoin":{"usd":-3}}"#).contains("`bitcoin.usd`"));
        assert!(err(r#"{"bitcoin":{"usd":"70000"}}"#).contains("`bitcoin.usd`"));
        assert!(
            err(r#"{"bitcoin":{"usd":1,"last_updated_at":"yesterday"}}"#)
                .contains("last_updated_at")
        );
    }
}
