//! The test market: 100 symbols whose prices swing on sine waves of different periods,
//! 10,000 rules on them (crossings that fire every time, levels that fire once), and
//! the alert keys a run left in `notify:requests`.

use std::path::{Path, PathBuf};

use impressox_host::market::rules::{RuleRecord, RuleSpec};
use impressox_host::storage::{NOTIFY_REQUESTS, Store};

/// Feed time of the first row (2025-11-28), seconds apart per step.
pub const T0: i64 = 1_764_300_000_000;
pub const SYMBOLS: usize = 100;
pub const STEPS: usize = 240;
pub const RULES_PER_SYMBOL: usize = 100;

pub fn symbol(i: usize) -> String {
    format!("C{i:03}USDT")
}

/// Price of symbol `k` at step `t`: 100 ± 20 on a sine of period 30..80 steps.
fn price(k: usize, t: usize) -> f64 {
    let period = 30.0 + (k * 7 % 50) as f64;
    let phase = (k % 13) as f64 * 0.37;
    let p = 100.0 + 20.0 * (std::f64::consts::TAU * t as f64 / period + phase).sin();
    (p * 100.0).round() / 100.0
}

/// Write the replay CSV: one row per symbol per step, each symbol's ticks a few ms apart
/// so every tick time is distinct.
pub fn write(dir: &Path) -> PathBuf {
    let mut text = String::from("ts_ms,symbol,price,volume\n");
    for t in 0..STEPS {
        for k in 0..SYMBOLS {
            let ts = T0 + t as i64 * 1000 + k as i64;
            text.push_str(&format!("{ts},{},{},1\n", symbol(k), price(k, t)));
        }
    }
    let path = dir.join("feed.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// The 10,000 rules: per symbol 25 crosses-up and 25 crosses-down (every), 25 above and
/// 25 below (once), levels spread over 81..119.
pub fn rules() -> Vec<RuleRecord> {
    let mut out = Vec::with_capacity(SYMBOLS * RULES_PER_SYMBOL);
    for k in 0..SYMBOLS {
        for j in 0..RULES_PER_SYMBOL {
            let level = 81.0 + (j % 25) as f64 * 1.5 + (k % 3) as f64 * 0.25;
            let (op, mode) = match j / 25 {
                0 => ("crosses_up", "every"),
                1 => ("crosses_down", "every"),
                2 => ("above", "once"),
                _ => ("below", "once"),
            };
            let spec: RuleSpec = serde_json::from_value(serde_json::json!({
                "id": format!("r{k:03}-{j:03}"),
                "user_id": format!("u{}", k % 10),
                "symbol": symbol(k),
                "condition": {"op": op, "value": level},
                "trigger": {"mode": mode},
            }))
            .unwrap();
            out.push(RuleRecord::create(spec));
        }
    }
    out
}

/// Store every rule (before the hosts start).
pub async fn store_rules(store: &dyn Store) {
    for r in rules() {
        store
            .put_rule(&r.id, &serde_json::to_string(&r).unwrap())
            .await
            .unwrap();
    }
}

/// Every key in `notify:requests`, read with a fresh consumer group, in stream order.
pub async fn alert_keys(store: &dyn Store, group: &str) -> Vec<String> {
    let mut keys = Vec::new();
    loop {
        let got = store
            .read_new(NOTIFY_REQUESTS, group, "audit", 5000, 0)
            .await
            .unwrap();
        if got.is_empty() {
            return keys;
        }
        keys.extend(got.into_iter().map(|e| e.key));
    }
}
