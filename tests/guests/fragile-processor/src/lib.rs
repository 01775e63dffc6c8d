//! A rule processor that runs out of memory while loading a rule on the symbol `OOMUSDT`,
//! as an instance does that is handed more rules than fit its memory cap; every other
//! rule fires once when its symbol ticks above its value. For the market engine's
//! isolation tests: an instance that fails in `init` must stop only its own rules.

use std::cell::RefCell;

use impressox_plugin_sdk::types::{Alert, Rule, TickBatch};
use impressox_plugin_sdk::{RuleProcessor, export_rule_processor};

thread_local!(static RULES: RefCell<Vec<Rule>> = const { RefCell::new(Vec::new()) });

/// The symbol whose rules exhaust the instance's memory.
const POISON: &str = "OOMUSDT";

struct Fragile;

impl RuleProcessor for Fragile {
    const NAME: &'static str = "fragile";

    fn upsert_rules(rules: Vec<Rule>) -> Result<(), String> {
        if rules.iter().any(|r| r.symbol == POISON) {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
            }
        }
        RULES.with(|all| {
            let mut all = all.borrow_mut();
            all.retain(|r| !rules.iter().any(|n| n.id == r.id));
            all.extend(rules);
        });
        Ok(())
    }

    fn remove_rules(ids: Vec<String>) {
        RULES.with(|all| all.borrow_mut().retain(|r| !ids.contains(&r.id)));
    }

    fn prime_prices(_: Vec<(u32, f64, i64)>) {}

    fn evaluate(batch: TickBatch) -> Vec<Alert> {
        let mut out = Vec::new();
        RULES.with(|all| {
            for rule in all.borrow_mut().iter_mut() {
                for t in batch.iter().filter(|t| t.symbol_id == rule.symbol_id) {
                    if rule.state.armed && t.price > rule.condition.value {
                        rule.state.armed = false;
                        rule.state.last_fired_ms = Some(t.ts_ms);
                        rule.state.fired_count += 1;
                        out.push(Alert {
                            rule_id: rule.id.clone(),
                            symbol_id: t.symbol_id,
                            price: t.price,
                            reference_price: None,
                            fired_at_ms: t.ts_ms,
                            reason: format!("{} is above {}", rule.symbol, rule.condition.value),
                            state: rule.state,
                        });
                    }
                }
            }
        });
        out
    }
}

export_rule_processor!(Fragile);
