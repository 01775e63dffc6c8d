//! The synthetic market both market benches replay: 1,000 symbols, a random walk of prices
//! per symbol, and 100 rules per symbol (levels and crossings within ±10 % of the start).
//! One copy, so the market bench and the cluster bench measure the same workload.

use std::io::Write;
use std::path::Path;

use impressox_host::market::rules::{RuleRecord, RuleSpec};

pub const SYMBOLS: usize = 1_000;
pub const RULES_PER_SYMBOL: usize = 100;
pub const T0: i64 = 1_764_300_000_000;

pub fn symbol(i: usize) -> String {
    format!("S{i:04}USDT")
}

/// A random walk per symbol, `n` rows round-robin over the symbols, `step_us` apart.
pub fn write_prices(path: &Path, n: usize, step_us: i64, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut price = vec![100.0f64; SYMBOLS];
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "ts_ms,symbol,price").unwrap();
    for i in 0..n {
        let s = i % SYMBOLS;
        price[s] *= 1.0 + (rng.f64() - 0.5) * 0.0004;
        writeln!(
            f,
            "{},{},{:.4}",
            T0 + (i as i64 * step_us) / 1000,
            symbol(s),
            price[s]
        )
        .unwrap();
    }
}

/// 100 rules per symbol: levels and crossings with thresholds within ±10% of the start.
pub fn rules(seed: u64) -> Vec<RuleRecord> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::with_capacity(SYMBOLS * RULES_PER_SYMBOL);
    for s in 0..SYMBOLS {
        for r in 0..RULES_PER_SYMBOL {
            // Levels start false (above 100..110, below 90..100), so alerts come from
            // price moves, not from a storm of rules that hold at the first tick.
            let (op, mode, value) = match r % 4 {
                0 => ("above", "once", 100.0 + rng.f64() * 10.0),
                1 => ("below", "once", 90.0 + rng.f64() * 10.0),
                2 => ("crosses_up", "every", 90.0 + rng.f64() * 20.0),
                _ => ("crosses_down", "every", 90.0 + rng.f64() * 20.0),
            };
            let spec: RuleSpec = serde_json::from_value(serde_json::json!({
                "id": format!("r{s}-{r}"), "user_id": format!("u{}", r % 50), "symbol": symbol(s),
                "condition": {"op": op, "value": value}, "trigger": {"mode": mode}
            }))
            .unwrap();
            out.push(RuleRecord::create(spec));
        }
    }
    out
}
