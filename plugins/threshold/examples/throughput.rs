//! Native throughput of [`threshold::Engine`] on the benchmark's shape: 100,000 rules over
//! 1,000 symbols (about 100 per symbol, all ops and trigger modes mixed, levels within ±5%
//! of the price), random-walk ticks in batches of 1,000.
//!
//! `cargo run --release -p threshold --example throughput [batches] [n_ops 1-5] [n_modes 1-3]`

use std::time::Instant;

use impressox_plugin_sdk::types::{
    Condition, ConditionOp, Direction, Rule, RuleState, Tick, TickBatch, Trigger, TriggerMode,
};
use threshold::Engine;

const SYMBOLS: u32 = 1_000;
const RULES: usize = 100_000;
const BATCH: usize = 1_000;

/// xorshift64, so the example needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn main() {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let batches = arg(1, 2_000) as usize;
    // How many of the ops / modes (in the order listed below) to use: 5 and 3 = all.
    let n_ops = arg(2, 5).clamp(1, 5);
    let n_modes = arg(3, 3).clamp(1, 3);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let base: Vec<f64> = (0..SYMBOLS).map(|i| 10.0 + f64::from(i) * 7.3).collect();
    let ops = [
        ConditionOp::Above,
        ConditionOp::Below,
        ConditionOp::CrossesUp,
        ConditionOp::CrossesDown,
        ConditionOp::PctChange,
    ];
    let modes = [TriggerMode::Once, TriggerMode::Every, TriggerMode::Cooldown];
    let rules: Vec<Rule> = (0..RULES)
        .map(|i| {
            let sid = (i % SYMBOLS as usize) as u32;
            let op = ops[(rng.next() % n_ops) as usize];
            let mode = modes[(rng.next() % n_modes) as usize];
            let value = if op == ConditionOp::PctChange {
                1.0 + rng.unit() * 4.0
            } else {
                base[sid as usize] * (0.95 + rng.unit() * 0.1)
            };
            Rule {
                id: format!("rule-{i}"),
                symbol: format!("SYM{sid}USDT"),
                symbol_id: sid,
                condition: Condition {
                    op,
                    value,
                    direction: Direction::Any,
                    window_secs: 300,
                },
                trigger: Trigger {
                    mode,
                    cooldown_secs: 60,
                },
                expires_at_ms: None,
                state: RuleState {
                    armed: true,
                    last_fired_ms: None,
                    fired_count: 0,
                },
            }
        })
        .collect();
    let mut engine = Engine::new();
    let t = Instant::now();
    if let Err(e) = engine.upsert_rules(rules) {
        eprintln!("upsert failed: {e}");
        return;
    }
    println!("upsert of {RULES} rules: {:?}", t.elapsed());

    let mut price = base.clone();
    let mut ts = 1_700_000_000_000i64;
    let mut make_batch = |rng: &mut Rng| -> TickBatch {
        let ticks = (0..BATCH)
            .map(|_| {
                let sid = (rng.next() % u64::from(SYMBOLS)) as u32;
                let p = &mut price[sid as usize];
                *p *= 1.0 + (rng.unit() - 0.5) * 0.002;
                ts += 1;
                Tick {
                    symbol_id: sid,
                    price: *p,
                    ts_ms: ts,
                }
            })
            .collect();
        TickBatch::from_ticks(ts, ticks)
    };
    // Warm up: the first tick of each symbol evaluates all its rules and builds its indexes.
    let warm = make_batch(&mut rng);
    let mut alerts = engine.evaluate(&warm).len();
    let prepared: Vec<TickBatch> = (0..batches).map(|_| make_batch(&mut rng)).collect();

    let t = Instant::now();
    for b in &prepared {
        alerts += engine.evaluate(b).len();
    }
    let secs = t.elapsed().as_secs_f64();
    let ticks = (batches * BATCH) as f64;
    println!(
        "{batches} batches x {BATCH} ticks: {:.2} M ticks/s ({:.0} ns/tick), {alerts} alerts",
        ticks / secs / 1e6,
        secs * 1e9 / ticks
    );
}
