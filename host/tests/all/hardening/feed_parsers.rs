//! The bundled feed-parser plugins, called through the runtime as a market source calls
//! them (found by the fuzz targets in `crate::fuzz`).

use impressox_host::bindings::types::ParsedPayload;

use crate::harness::*;

fn parse(artifact: &str, name: &str, payload: &str) -> Result<ParsedPayload, String> {
    let h = host();
    h.load(artifact, &format!("{name}.wasm"));
    h.runtime
        .plugin(name)
        .parse_feed(payload.as_bytes(), 1_764_300_000_000)
        .expect("the plugin answers")
}

#[test]
fn a_binance_book_ticker_at_the_largest_prices_has_a_finite_mid_price() {
    // Each side is a valid price; their sum is not a finite number.
    let max = f64::MAX;
    let payload = format!(r#"{{"u":1,"s":"BTCUSDT","b":"{max:e}","B":"1","a":"{max:e}","A":"1"}}"#);
    let parsed = parse(test_artifacts::BINANCE, "binance", &payload).expect("a valid book ticker");
    let tick = &parsed.ticks[0];
    assert!(
        tick.price.is_finite() && tick.price > 0.0,
        "mid price {} from {payload}",
        tick.price
    );
    assert_eq!(tick.price, max);
    // Ordinary prices keep their exact mid.
    let parsed = parse(
        test_artifacts::BINANCE,
        "binance",
        r#"{"u":1,"s":"BNBUSDT","b":"25.3519","B":"1","a":"25.3652","A":"1"}"#,
    )
    .unwrap();
    assert_eq!(parsed.ticks[0].price, (25.3519 + 25.3652) / 2.0);
}
