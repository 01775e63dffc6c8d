//! `threshold`: the bundled rule processor (price levels, crossings, percent changes).
//!
//! The logic lives in [`Engine`], a plain Rust struct that a benchmark or test can drive
//! natively; the plugin export is a thin wrapper over one global engine (wasm instances are
//! single-threaded, so a `thread_local!` `RefCell` is enough).
//!
//! # Semantics
//!
//! Every tick is evaluated against the rules of its symbol id, in batch order. `prev` is the
//! previous price of that symbol: from an earlier tick (of this batch or an earlier one) or
//! from `prime-prices`.
//!
//! Conditions (`value` is the rule's `condition.value`, `cur` the tick's price):
//! - `above`: `cur > value`; `below`: `cur < value`. These are levels: they hold whenever
//!   true, including on the very first price ever seen for the symbol.
//! - `crosses-up`: `prev <= value < cur`; `crosses-down`: `prev >= value > cur`. Without a
//!   `prev` there is no crossing.
//! - `pct-change`: a per-symbol history of `(ts, price)` covers the largest window among the
//!   symbol's pct rules (at most [`engine::MAX_HISTORY`] points). The reference is the oldest
//!   price inside `[ts - window, ts]` (the current tick included, so a lone price has change
//!   0), and `change = (cur - reference) / reference * 100`. Direction `up` holds when
//!   `change >= value`, `down` when `change <= -value`, `any` when `|change| >= value`.
//!   An empty history is seeded with the symbol's previous price (which may be primed), and
//!   the history is dropped while the symbol has no pct rules.
//!
//! Trigger modes:
//! - `once`: fires the first time the condition holds while armed, then stays disarmed
//!   for good.
//! - `every`: fires when the condition holds while armed and disarms; it re-arms at the
//!   first tick where the condition is false again. A level rule therefore fires once per
//!   excursion above (or below) its level, not on every tick; a crossing fires on every
//!   crossing.
//! - `cooldown`: fires whenever the condition holds and the rule never fired or
//!   `ts - last_fired_ms >= cooldown_secs * 1000`. `armed` is ignored (and reported true).
//!
//! A rule with `expires-at-ms` never fires at a tick with `ts >= expires-at-ms`; its
//! bookkeeping (re-arming) still follows the ticks. Expiry assumes each symbol's tick times
//! do not go backwards.
//!
//! An alert carries the tick's price and time (`fired-at-ms`), the reference price (`prev`
//! for crossings, the window's start for pct-change, none for levels), a reason such as
//! `BTCUSDT crossed above 70000`, `BTCUSDT is above 70000 at 70123.4` or
//! `BTCUSDT up 5.2% in 300s`, and the rule's new state (`last-fired-ms` = tick time,
//! `fired-count` + 1, `armed` false for once/every, true for cooldown).
//!
//! Ticks with a non-finite or non-positive price are ignored (they neither fire nor become
//! `prev`), as are symbol ids of [`engine::MAX_SYMBOL_ID`] or more.
//!
//! `upsert-rules` validates every rule first (non-empty id, symbol id in range, finite
//! `value`; for pct-change `value > 0` and `window-secs > 0`; for cooldown
//! `cooldown-secs > 0`) and changes nothing when one is invalid; the error names the rule id
//! and the field. Upserting an existing id replaces the rule and its state with the ones
//! given.
//!
//! # Performance
//!
//! Per tick the engine does not loop over the symbol's rules: above/below/crossing rules are
//! kept in per-symbol vectors sorted by value, with a cursor at the last price, and a tick
//! visits only the values between the previous and the current price, i.e. the rules whose
//! condition changes; a tick that moves inside the gap between the nearest values costs
//! a few compares on a small per-symbol entry. Level `cooldown` rules that are currently
//! true sit in a small list. Pct rules need the price history updated on every tick of
//! their symbol; they are grouped by window and direction and indexed by value like the
//! levels, so again only rules whose condition changes are visited. See [`engine`] for the
//! details and invariants. Changes (upsert, remove, prime) mark the symbol dirty; its next
//! tick evaluates all its rules directly and rebuilds the indexes.

pub mod engine;

use std::cell::RefCell;

use impressox_plugin_sdk::types::{Alert, Rule, TickBatch};
use impressox_plugin_sdk::{RuleProcessor, export_rule_processor};

pub use engine::Engine;

thread_local! {
    /// The instance's rules and prices. The host re-sends every rule to a fresh instance.
    static ENGINE: RefCell<Engine> = RefCell::new(Engine::new());
}

/// The plugin: a thin wrapper over the instance's [`Engine`].
pub struct Threshold;

impl RuleProcessor for Threshold {
    const NAME: &'static str = "threshold";
    const DESCRIPTION: &'static str =
        "above/below, crossings and percent change, with once/every/cooldown triggers";

    fn upsert_rules(rules: Vec<Rule>) -> Result<(), String> {
        ENGINE.with_borrow_mut(|e| e.upsert_rules(rules))
    }

    fn remove_rules(ids: Vec<String>) {
        ENGINE.with_borrow_mut(|e| e.remove_rules(&ids));
    }

    fn prime_prices(prices: Vec<(u32, f64, i64)>) {
        ENGINE.with_borrow_mut(|e| e.prime_prices(&prices));
    }

    fn evaluate(batch: TickBatch) -> Vec<Alert> {
        ENGINE.with_borrow_mut(|e| e.evaluate(&batch))
    }
}

export_rule_processor!(Threshold);

#[cfg(test)]
mod tests;
