//! Native tests of the engine: each condition and trigger mode, the bookkeeping around
//! upserts, removals and primed prices, and a randomized comparison with a brute-force
//! implementation of the documented semantics.

use std::collections::{BTreeMap, VecDeque};

use impressox_plugin_sdk::types::{
    Alert, Condition, ConditionOp, Direction, Rule, RuleState, Tick, TickBatch, Trigger,
    TriggerMode,
};

use crate::Engine;
use crate::engine::{MAX_HISTORY, MAX_SYMBOL_ID};

// ------------------------------------------------------------------ helpers

fn rule(id: &str, sid: u32, op: ConditionOp, value: f64, mode: TriggerMode) -> Rule {
    Rule {
        id: id.to_string(),
        symbol: format!("SYM{sid}"),
        symbol_id: sid,
        condition: Condition {
            op,
            value,
            direction: Direction::Any,
            window_secs: 0,
        },
        trigger: Trigger {
            mode,
            cooldown_secs: if mode == TriggerMode::Cooldown { 60 } else { 0 },
        },
        expires_at_ms: None,
        state: RuleState {
            armed: true,
            last_fired_ms: None,
            fired_count: 0,
        },
    }
}

fn btc(id: &str, op: ConditionOp, value: f64, mode: TriggerMode) -> Rule {
    let mut r = rule(id, 0, op, value, mode);
    r.symbol = "BTCUSDT".to_string();
    r
}

fn pct(
    id: &str,
    sid: u32,
    value: f64,
    direction: Direction,
    window_secs: u32,
    mode: TriggerMode,
) -> Rule {
    let mut r = rule(id, sid, ConditionOp::PctChange, value, mode);
    r.condition.direction = direction;
    r.condition.window_secs = window_secs;
    r
}

fn tick(sid: u32, price: f64, ts_ms: i64) -> Tick {
    Tick {
        symbol_id: sid,
        price,
        ts_ms,
    }
}

/// Evaluate `(price, ts)` ticks of symbol 0 one batch each; return the ids that fired per tick.
fn run(engine: &mut Engine, ticks: &[(f64, i64)]) -> Vec<Vec<String>> {
    ticks
        .iter()
        .map(|&(price, ts)| {
            let batch = TickBatch::from_ticks(ts, vec![tick(0, price, ts)]);
            let mut ids: Vec<String> = engine
                .evaluate(&batch)
                .into_iter()
                .map(|a| a.rule_id)
                .collect();
            ids.sort();
            ids
        })
        .collect()
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn engine_with(rules: Vec<Rule>) -> Engine {
    let mut e = Engine::new();
    e.upsert_rules(rules).expect("valid rules");
    e
}

// ------------------------------------------------------------------ conditions

#[test]
fn above_fires_on_first_price_and_carries_alert_fields() {
    let mut e = engine_with(vec![btc(
        "a",
        ConditionOp::Above,
        70000.0,
        TriggerMode::Once,
    )]);
    let batch = TickBatch::from_ticks(5, vec![tick(0, 70123.4, 1000)]);
    let alerts = e.evaluate(&batch);
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.rule_id, "a");
    assert_eq!(a.symbol_id, 0);
    assert_eq!(a.price, 70123.4);
    assert_eq!(a.reference_price, None);
    assert_eq!(a.fired_at_ms, 1000);
    assert_eq!(a.reason, "BTCUSDT is above 70000 at 70123.4");
    assert!(!a.state.armed);
    assert_eq!(a.state.last_fired_ms, Some(1000));
    assert_eq!(a.state.fired_count, 1);
}

#[test]
fn above_is_strict() {
    let mut e = engine_with(vec![btc(
        "a",
        ConditionOp::Above,
        100.0,
        TriggerMode::Every,
    )]);
    assert_eq!(
        run(&mut e, &[(100.0, 1), (100.5, 2)]),
        vec![ids(&[]), ids(&["a"])]
    );
}

#[test]
fn below_fires_on_first_price_and_is_strict() {
    let mut e = engine_with(vec![
        btc("b1", ConditionOp::Below, 100.0, TriggerMode::Once),
        btc("b2", ConditionOp::Below, 90.0, TriggerMode::Once),
    ]);
    let out = e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 95.0, 1)]));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].reason, "BTCUSDT is below 100 at 95");
    assert_eq!(
        run(&mut e, &[(90.0, 2), (89.0, 3)]),
        vec![ids(&[]), ids(&["b2"])]
    );
}

#[test]
fn crosses_up_needs_a_previous_price() {
    let mut e = engine_with(vec![btc(
        "x",
        ConditionOp::CrossesUp,
        100.0,
        TriggerMode::Every,
    )]);
    // First price above the level: no crossing without a previous price.
    assert_eq!(
        run(&mut e, &[(105.0, 1), (99.0, 2), (100.0, 3), (100.5, 4)]),
        vec![ids(&[]), ids(&[]), ids(&[]), ids(&["x"])]
    );
}

#[test]
fn crosses_up_boundaries_and_alert_fields() {
    let mut e = engine_with(vec![btc(
        "x",
        ConditionOp::CrossesUp,
        70000.0,
        TriggerMode::Every,
    )]);
    e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 70000.0, 1)]));
    // prev == value counts (prev <= value < cur).
    let out = e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 70100.0, 2)]));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].reason, "BTCUSDT crossed above 70000");
    assert_eq!(out[0].reference_price, Some(70000.0));
    assert_eq!(out[0].price, 70100.0);
    // Landing exactly on the value is not above it.
    assert_eq!(
        run(&mut e, &[(69000.0, 3), (70000.0, 4), (69999.0, 5)]),
        vec![ids(&[]), ids(&[]), ids(&[])]
    );
}

#[test]
fn crosses_down() {
    let mut e = engine_with(vec![btc(
        "x",
        ConditionOp::CrossesDown,
        100.0,
        TriggerMode::Every,
    )]);
    let out = run(
        &mut e,
        &[(101.0, 1), (100.0, 2), (99.0, 3), (101.0, 4), (98.0, 5)],
    );
    assert_eq!(
        out,
        vec![ids(&[]), ids(&[]), ids(&["x"]), ids(&[]), ids(&["x"])]
    );
    let out = e.evaluate(&TickBatch::from_ticks(
        0,
        vec![tick(0, 102.0, 6), tick(0, 97.5, 7)],
    ));
    assert_eq!(out[0].reason, "BTCUSDT crossed below 100");
    assert_eq!(out[0].reference_price, Some(102.0));
}

#[test]
fn crossing_within_one_batch_uses_the_previous_tick() {
    let mut e = engine_with(vec![btc(
        "x",
        ConditionOp::CrossesUp,
        100.0,
        TriggerMode::Every,
    )]);
    let batch = TickBatch::from_ticks(
        0,
        vec![tick(0, 99.0, 1), tick(0, 101.0, 2), tick(0, 102.0, 3)],
    );
    let out = e.evaluate(&batch);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].fired_at_ms, 2);
    assert_eq!(out[0].reference_price, Some(99.0));
}

#[test]
fn previous_price_carries_across_batches() {
    let mut e = engine_with(vec![btc(
        "x",
        ConditionOp::CrossesUp,
        100.0,
        TriggerMode::Once,
    )]);
    assert!(
        e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 99.0, 1)]))
            .is_empty()
    );
    let out = e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 100.5, 2)]));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].reference_price, Some(99.0));
}

#[test]
fn pct_change_up_down_any() {
    let mut e = engine_with(vec![
        pct("up", 0, 5.0, Direction::Up, 300, TriggerMode::Once),
        pct("down", 0, 5.0, Direction::Down, 300, TriggerMode::Once),
        pct("any", 0, 3.0, Direction::Any, 300, TriggerMode::Once),
    ]);
    let mut out = e.evaluate(&TickBatch::from_ticks(
        0,
        vec![tick(0, 100.0, 0), tick(0, 105.2, 60_000)],
    ));
    out.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].rule_id, "any");
    assert_eq!(out[1].rule_id, "up");
    assert_eq!(out[1].reason, "SYM0 up 5.2% in 300s");
    assert_eq!(out[1].reference_price, Some(100.0));
    // 105.2 -> 99 is -5.9% inside the window, but the window's start is still 100: -1%.
    assert!(
        e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 99.0, 120_000)]))
            .is_empty()
    );
    // Once 100 and 105.2 left the window (ts > 360s), 99 at 120s is the reference.
    let out = e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 94.0, 400_000)]));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rule_id, "down");
    assert_eq!(out[0].reference_price, Some(99.0));
    assert_eq!(out[0].reason, "SYM0 down 5.05% in 300s");
}

#[test]
fn pct_change_window_edges_are_inclusive() {
    let mut e = engine_with(vec![pct(
        "p",
        0,
        10.0,
        Direction::Up,
        10,
        TriggerMode::Every,
    )]);
    // The point at exactly ts - window is inside the window.
    assert_eq!(
        run(&mut e, &[(100.0, 0), (110.0, 10_000)]),
        vec![ids(&[]), ids(&["p"])]
    );
    // A lone price has change 0.
    let mut e = engine_with(vec![pct(
        "p",
        0,
        0.01,
        Direction::Any,
        10,
        TriggerMode::Every,
    )]);
    assert_eq!(run(&mut e, &[(100.0, 0)]), vec![ids(&[])]);
}

#[test]
fn pct_every_rearms_when_change_falls_back() {
    let mut e = engine_with(vec![pct(
        "p",
        0,
        2.0,
        Direction::Up,
        60,
        TriggerMode::Every,
    )]);
    let out = run(
        &mut e,
        &[
            (100.0, 0),
            (103.0, 1000),
            (104.0, 2000),
            (101.0, 3000),
            (103.0, 4000),
        ],
    );
    assert_eq!(
        out,
        vec![ids(&[]), ids(&["p"]), ids(&[]), ids(&[]), ids(&["p"])]
    );
}

#[test]
fn pct_uses_the_primed_price_as_history() {
    let mut e = engine_with(vec![pct("p", 0, 5.0, Direction::Up, 60, TriggerMode::Once)]);
    e.prime_prices(&[(0, 100.0, 1_000)]);
    assert_eq!(run(&mut e, &[(106.0, 30_000)]), vec![ids(&["p"])]);
}

#[test]
fn pct_history_is_bounded() {
    let mut e = engine_with(vec![pct(
        "p",
        0,
        50.0,
        Direction::Up,
        4_000_000,
        TriggerMode::Every,
    )]);
    let ticks: Vec<Tick> = (0..MAX_HISTORY as i64 + 10)
        .map(|i| tick(0, 100.0, i))
        .collect();
    assert!(e.evaluate(&TickBatch::from_ticks(0, ticks)).is_empty());
    // The oldest points were dropped but the reference is still a price of the window.
    let out = e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 151.0, 1 << 20)]));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].reference_price, Some(100.0));
}

// ------------------------------------------------------------------ trigger modes

#[test]
fn once_never_fires_again() {
    let mut e = engine_with(vec![btc("a", ConditionOp::Above, 100.0, TriggerMode::Once)]);
    let out = run(
        &mut e,
        &[(101.0, 1), (102.0, 2), (99.0, 3), (101.0, 4), (150.0, 5)],
    );
    assert_eq!(
        out,
        vec![ids(&["a"]), ids(&[]), ids(&[]), ids(&[]), ids(&[])]
    );
    let state = e.rule_state("a").expect("rule");
    assert!(!state.armed);
    assert_eq!(state.fired_count, 1);
}

#[test]
fn once_crossing_fires_once() {
    let mut e = engine_with(vec![btc(
        "x",
        ConditionOp::CrossesUp,
        100.0,
        TriggerMode::Once,
    )]);
    let out = run(&mut e, &[(99.0, 1), (101.0, 2), (99.0, 3), (101.0, 4)]);
    assert_eq!(out, vec![ids(&[]), ids(&["x"]), ids(&[]), ids(&[])]);
}

#[test]
fn every_level_has_hysteresis() {
    let mut e = engine_with(vec![btc(
        "a",
        ConditionOp::Above,
        100.0,
        TriggerMode::Every,
    )]);
    let out = run(
        &mut e,
        &[
            (101.0, 1),
            (102.0, 2),
            (103.0, 3),
            (100.0, 4),
            (101.0, 5),
            (101.5, 6),
        ],
    );
    assert_eq!(
        out,
        vec![
            ids(&["a"]),
            ids(&[]),
            ids(&[]),
            ids(&[]),
            ids(&["a"]),
            ids(&[])
        ]
    );
    assert_eq!(e.rule_state("a").expect("rule").fired_count, 2);
}

#[test]
fn every_below_has_hysteresis() {
    let mut e = engine_with(vec![btc(
        "b",
        ConditionOp::Below,
        100.0,
        TriggerMode::Every,
    )]);
    let out = run(
        &mut e,
        &[(101.0, 1), (99.0, 2), (98.0, 3), (100.0, 4), (99.9, 5)],
    );
    assert_eq!(
        out,
        vec![ids(&[]), ids(&["b"]), ids(&[]), ids(&[]), ids(&["b"])]
    );
}

#[test]
fn every_crossing_fires_on_each_crossing_and_reports_disarmed() {
    let mut e = engine_with(vec![btc(
        "x",
        ConditionOp::CrossesUp,
        100.0,
        TriggerMode::Every,
    )]);
    e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 99.0, 1)]));
    let out = e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 101.0, 2)]));
    assert!(!out[0].state.armed);
    assert!(!e.rule_state("x").expect("rule").armed);
    // The next tick shows the condition false again: re-armed.
    assert!(
        e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 99.0, 3)]))
            .is_empty()
    );
    assert!(e.rule_state("x").expect("rule").armed);
    let out = e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 100.5, 4)]));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state.fired_count, 2);
}

#[test]
fn every_disarmed_by_the_host_waits_for_a_false_condition() {
    let mut r = btc("a", ConditionOp::Above, 100.0, TriggerMode::Every);
    r.state.armed = false;
    let mut e = engine_with(vec![r]);
    let out = run(&mut e, &[(101.0, 1), (99.0, 2), (101.0, 3)]);
    assert_eq!(out, vec![ids(&[]), ids(&[]), ids(&["a"])]);

    // Condition already false at the first tick: re-armed right away.
    let mut r = btc("b", ConditionOp::Above, 100.0, TriggerMode::Every);
    r.state.armed = false;
    let mut e = engine_with(vec![r]);
    assert_eq!(
        run(&mut e, &[(99.0, 1), (101.0, 2)]),
        vec![ids(&[]), ids(&["b"])]
    );

    // A disarmed crossing that holds on the first tick does not fire; the next one does.
    let mut r = btc("x", ConditionOp::CrossesUp, 100.0, TriggerMode::Every);
    r.state.armed = false;
    let mut e = engine_with(vec![r]);
    e.prime_prices(&[(0, 99.0, 0)]);
    assert_eq!(
        run(&mut e, &[(101.0, 1), (99.0, 2), (101.0, 3)]),
        vec![ids(&[]), ids(&[]), ids(&["x"])]
    );
}

#[test]
fn cooldown_level_fires_again_while_true_after_the_cooldown() {
    let mut r = btc("c", ConditionOp::Above, 100.0, TriggerMode::Cooldown);
    r.trigger.cooldown_secs = 10;
    let mut e = engine_with(vec![r]);
    let out = run(
        &mut e,
        &[
            (101.0, 0),
            (102.0, 5_000),
            (101.0, 9_999),
            (101.0, 10_000),
            (101.0, 15_000),
            (99.0, 20_000),
        ],
    );
    assert_eq!(
        out,
        vec![
            ids(&["c"]),
            ids(&[]),
            ids(&[]),
            ids(&["c"]),
            ids(&[]),
            ids(&[])
        ]
    );
    // Becomes true again after the cooldown: fires at once.
    let out = e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 100.5, 21_000)]));
    assert_eq!(out.len(), 1);
    assert!(out[0].state.armed);
    assert_eq!(out[0].state.fired_count, 3);
    // Becomes true again inside the cooldown: waits for it to end.
    let out = run(&mut e, &[(99.0, 22_000), (101.0, 23_000), (101.0, 31_000)]);
    assert_eq!(out, vec![ids(&[]), ids(&[]), ids(&["c"])]);
}

#[test]
fn cooldown_respects_a_persisted_last_fired_time() {
    let mut r = btc("c", ConditionOp::Below, 100.0, TriggerMode::Cooldown);
    r.trigger.cooldown_secs = 60;
    r.state.last_fired_ms = Some(1_000);
    r.state.armed = false; // ignored in cooldown mode
    let mut e = engine_with(vec![r]);
    assert_eq!(
        run(&mut e, &[(90.0, 30_000), (90.0, 61_000)]),
        vec![ids(&[]), ids(&["c"])]
    );
}

#[test]
fn cooldown_crossing() {
    let mut r = btc("x", ConditionOp::CrossesDown, 100.0, TriggerMode::Cooldown);
    r.trigger.cooldown_secs = 10;
    let mut e = engine_with(vec![r]);
    let out = run(
        &mut e,
        &[
            (101.0, 0),
            (99.0, 1_000),
            (101.0, 2_000),
            (99.0, 3_000),
            (101.0, 20_000),
            (99.0, 21_000),
        ],
    );
    assert_eq!(
        out,
        vec![
            ids(&[]),
            ids(&["x"]),
            ids(&[]),
            ids(&[]),
            ids(&[]),
            ids(&["x"])
        ]
    );
}

#[test]
fn cooldown_pct() {
    let mut r = pct("p", 0, 1.0, Direction::Any, 60, TriggerMode::Cooldown);
    r.trigger.cooldown_secs = 5;
    let mut e = engine_with(vec![r]);
    let out = run(
        &mut e,
        &[(100.0, 0), (102.0, 1_000), (102.0, 2_000), (102.0, 6_000)],
    );
    assert_eq!(out, vec![ids(&[]), ids(&["p"]), ids(&[]), ids(&["p"])]);
}

// ------------------------------------------------------------------ expiry, priming, changes

#[test]
fn expired_rules_never_fire() {
    let mut a = btc("a", ConditionOp::Above, 100.0, TriggerMode::Every);
    a.expires_at_ms = Some(10);
    let mut x = btc("x", ConditionOp::CrossesUp, 100.0, TriggerMode::Every);
    x.expires_at_ms = Some(10);
    let mut p = pct("p", 0, 1.0, Direction::Any, 60, TriggerMode::Every);
    p.expires_at_ms = Some(10);
    let mut c = btc("c", ConditionOp::Above, 100.0, TriggerMode::Cooldown);
    c.expires_at_ms = Some(10);
    let mut e = engine_with(vec![a, x, p, c]);
    // At ts 10 everything has expired, although all conditions hold.
    let out = run(&mut e, &[(99.0, 9), (101.0, 10), (99.0, 11), (150.0, 12)]);
    assert_eq!(out, vec![ids(&[]), ids(&[]), ids(&[]), ids(&[])]);
    // Before the expiry they fire.
    let mut a = btc("a", ConditionOp::Above, 100.0, TriggerMode::Once);
    a.expires_at_ms = Some(10);
    let mut e = engine_with(vec![a]);
    assert_eq!(run(&mut e, &[(101.0, 9)]), vec![ids(&["a"])]);
}

#[test]
fn primed_price_is_the_previous_price() {
    let mut e = engine_with(vec![btc(
        "x",
        ConditionOp::CrossesUp,
        100.0,
        TriggerMode::Once,
    )]);
    e.prime_prices(&[
        (0, 99.0, 1),
        (7, 5.0, 1),
        (MAX_SYMBOL_ID, 1.0, 1),
        (0, f64::NAN, 2),
    ]);
    assert_eq!(e.last_price(0), Some((99.0, 1)));
    assert_eq!(e.last_price(7), Some((5.0, 1)));
    let out = e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 101.0, 2)]));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].reference_price, Some(99.0));
}

#[test]
fn older_primed_prices_are_ignored_and_priming_after_ticks_resets_prev() {
    let mut e = engine_with(vec![btc(
        "x",
        ConditionOp::CrossesDown,
        100.0,
        TriggerMode::Every,
    )]);
    e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 99.0, 10)]));
    e.prime_prices(&[(0, 150.0, 5)]);
    assert_eq!(e.last_price(0), Some((99.0, 10)));
    // A newer primed price replaces the previous price (e.g. from a fallback source).
    e.prime_prices(&[(0, 150.0, 20)]);
    let out = e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 98.0, 30)]));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].reference_price, Some(150.0));
}

#[test]
fn symbol_without_rules_still_records_its_price() {
    let mut e = Engine::new();
    e.evaluate(&TickBatch::from_ticks(0, vec![tick(3, 99.0, 1)]));
    assert_eq!(e.last_price(3), Some((99.0, 1)));
    e.upsert_rules(vec![rule(
        "x",
        3,
        ConditionOp::CrossesUp,
        100.0,
        TriggerMode::Once,
    )])
    .expect("valid");
    let out = e.evaluate(&TickBatch::from_ticks(0, vec![tick(3, 101.0, 2)]));
    assert_eq!(out.len(), 1);
}

#[test]
fn upsert_replaces_rule_and_state() {
    let mut e = engine_with(vec![btc("a", ConditionOp::Above, 100.0, TriggerMode::Once)]);
    assert_eq!(run(&mut e, &[(101.0, 1)]), vec![ids(&["a"])]);
    // Same id, new level and fresh state: fires at the next tick where it holds.
    e.upsert_rules(vec![btc("a", ConditionOp::Above, 105.0, TriggerMode::Once)])
        .expect("valid");
    assert_eq!(e.rule_count(), 1);
    assert_eq!(
        run(&mut e, &[(104.0, 2), (106.0, 3)]),
        vec![ids(&[]), ids(&["a"])]
    );
    // A new rule that is already true fires at the next tick, although the price did not
    // move across its level.
    e.upsert_rules(vec![btc("b", ConditionOp::Below, 200.0, TriggerMode::Once)])
        .expect("valid");
    assert_eq!(run(&mut e, &[(106.0, 4)]), vec![ids(&["b"])]);
    // Moving a rule to another symbol.
    e.upsert_rules(vec![rule(
        "b",
        1,
        ConditionOp::Below,
        200.0,
        TriggerMode::Once,
    )])
    .expect("valid");
    assert_eq!(e.rule_count(), 2);
    assert_eq!(run(&mut e, &[(106.0, 5)]), vec![ids(&[])]);
    let out = e.evaluate(&TickBatch::from_ticks(0, vec![tick(1, 50.0, 6)]));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].symbol_id, 1);
}

#[test]
fn remove_rules() {
    let mut e = engine_with(vec![
        btc("a", ConditionOp::Above, 100.0, TriggerMode::Every),
        btc("b", ConditionOp::Above, 101.0, TriggerMode::Every),
        btc("c", ConditionOp::Above, 102.0, TriggerMode::Every),
    ]);
    e.remove_rules(&["a", "unknown"]);
    assert_eq!(e.rule_count(), 2);
    assert_eq!(run(&mut e, &[(103.0, 1)]), vec![ids(&["b", "c"])]);
    e.remove_rules(&[String::from("c")]);
    assert_eq!(
        run(&mut e, &[(99.0, 2), (103.0, 3)]),
        vec![ids(&[]), ids(&["b"])]
    );
    e.remove_rules(&["b"]);
    assert_eq!(e.rule_count(), 0);
    assert!(e.rule_state("b").is_none());
    assert_eq!(
        run(&mut e, &[(99.0, 4), (103.0, 5)]),
        vec![ids(&[]), ids(&[])]
    );
}

#[test]
fn validation_names_rule_and_field_and_changes_nothing() {
    let mut e = Engine::new();
    let good = btc("good", ConditionOp::Above, 1.0, TriggerMode::Once);
    let cases = [
        (
            btc("v", ConditionOp::Above, f64::NAN, TriggerMode::Once),
            "condition.value",
        ),
        (
            btc("v", ConditionOp::Below, f64::INFINITY, TriggerMode::Once),
            "condition.value",
        ),
        (
            pct("p", 0, 0.0, Direction::Up, 60, TriggerMode::Once),
            "condition.value",
        ),
        (
            pct("p", 0, -1.0, Direction::Up, 60, TriggerMode::Once),
            "condition.value",
        ),
        (
            pct("w", 0, 1.0, Direction::Up, 0, TriggerMode::Once),
            "condition.window-secs",
        ),
        (
            {
                let mut r = btc("c", ConditionOp::Above, 1.0, TriggerMode::Cooldown);
                r.trigger.cooldown_secs = 0;
                r
            },
            "trigger.cooldown-secs",
        ),
        (
            rule(
                "s",
                MAX_SYMBOL_ID,
                ConditionOp::Above,
                1.0,
                TriggerMode::Once,
            ),
            "symbol-id",
        ),
        (btc("", ConditionOp::Above, 1.0, TriggerMode::Once), "`id`"),
    ];
    for (bad, field) in cases {
        let id = bad.id.clone();
        let err = e
            .upsert_rules(vec![good.clone(), bad])
            .expect_err("invalid rule accepted");
        assert!(err.contains(field), "{err}");
        assert!(err.contains(&format!("`{id}`")) || id.is_empty(), "{err}");
        assert_eq!(e.rule_count(), 0, "a failed upsert must change nothing");
    }
}

#[test]
fn bad_ticks_are_ignored() {
    let mut e = engine_with(vec![btc(
        "x",
        ConditionOp::CrossesUp,
        100.0,
        TriggerMode::Every,
    )]);
    let batch = TickBatch::from_ticks(
        0,
        vec![
            tick(0, 99.0, 1),
            tick(0, f64::NAN, 2),
            tick(0, f64::INFINITY, 3),
            tick(0, -5.0, 4),
            tick(0, 0.0, 5),
            tick(u32::MAX, 1.0, 6),
            tick(MAX_SYMBOL_ID, 1.0, 7),
            tick(0, 101.0, 8),
        ],
    );
    let out = e.evaluate(&batch);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].reference_price, Some(99.0));
}

#[test]
fn many_rules_on_a_big_move() {
    // A jump across many levels visits all of them, in one tick.
    let rules: Vec<Rule> = (0..100)
        .map(|i| {
            btc(
                &format!("r{i:03}"),
                ConditionOp::CrossesUp,
                100.0 + f64::from(i),
                TriggerMode::Every,
            )
        })
        .collect();
    let mut e = engine_with(rules);
    assert_eq!(run(&mut e, &[(50.0, 1)]), vec![ids(&[])]);
    let out = e.evaluate(&TickBatch::from_ticks(0, vec![tick(0, 149.5, 2)]));
    assert_eq!(out.len(), 50);
    let out = e.evaluate(&TickBatch::from_ticks(
        0,
        vec![tick(0, 10.0, 3), tick(0, 1000.0, 4)],
    ));
    assert_eq!(out.len(), 100);
}

#[test]
fn fmt_of_reasons() {
    let r = pct("p", 0, 1.0, Direction::Any, 60, TriggerMode::Once);
    assert_eq!(crate::engine::reason(&r, 1.0, 12.0), "SYM0 up 12% in 60s");
    assert_eq!(
        crate::engine::reason(&r, 1.0, -0.374),
        "SYM0 down 0.37% in 60s"
    );
}

// ------------------------------------------------------------------ randomized comparison

/// xorshift64: deterministic and dependency-free.
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
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The semantics written as plainly as possible: every rule on every tick.
#[derive(Default)]
struct Brute {
    rules: Vec<Rule>,
    last: BTreeMap<u32, (f64, i64)>,
    history: BTreeMap<u32, VecDeque<(i64, f64)>>,
}

impl Brute {
    fn upsert(&mut self, rules: Vec<Rule>) {
        for r in rules {
            match self.rules.iter().position(|x| x.id == r.id) {
                Some(i) => {
                    let old = self.rules[i].symbol_id;
                    self.rules[i] = r;
                    self.forget_history_if_no_rules(old);
                }
                None => self.rules.push(r),
            }
        }
    }

    fn remove(&mut self, ids: &[String]) {
        for id in ids {
            if let Some(i) = self.rules.iter().position(|x| &x.id == id) {
                let old = self.rules.remove(i).symbol_id;
                self.forget_history_if_no_rules(old);
            }
        }
    }

    fn forget_history_if_no_rules(&mut self, sid: u32) {
        if !self.rules.iter().any(|r| r.symbol_id == sid) {
            self.history.remove(&sid);
        }
    }

    fn prime(&mut self, prices: &[(u32, f64, i64)]) {
        for &(sid, price, ts) in prices {
            if price > 0.0 && price.is_finite() && self.last.get(&sid).is_none_or(|l| ts >= l.1) {
                self.last.insert(sid, (price, ts));
            }
        }
    }

    fn evaluate(&mut self, ticks: &[Tick]) -> Vec<Alert> {
        let mut out = Vec::new();
        for t in ticks {
            if !(t.price > 0.0 && t.price.is_finite()) {
                continue;
            }
            let (sid, cur, ts) = (t.symbol_id, t.price, t.ts_ms);
            let prev = self.last.insert(sid, (cur, ts));
            if !self.rules.iter().any(|r| r.symbol_id == sid) {
                continue;
            }
            let max_window = self
                .rules
                .iter()
                .filter(|r| r.symbol_id == sid && r.condition.op == ConditionOp::PctChange)
                .map(|r| i64::from(r.condition.window_secs) * 1000)
                .max();
            match max_window {
                Some(w) => {
                    let h = self.history.entry(sid).or_default();
                    if h.is_empty()
                        && let Some((p, pts)) = prev
                    {
                        h.push_back((pts, p));
                    }
                    h.push_back((ts, cur));
                    h.retain(|&(t, _)| t >= ts - w);
                    while h.len() > MAX_HISTORY {
                        h.pop_front();
                    }
                }
                None => {
                    self.history.remove(&sid);
                }
            }
            let prev = prev.map(|p| p.0);
            for r in self.rules.iter_mut().filter(|r| r.symbol_id == sid) {
                let v = r.condition.value;
                let (holds, reference, change) = match r.condition.op {
                    ConditionOp::Above => (cur > v, None, 0.0),
                    ConditionOp::Below => (cur < v, None, 0.0),
                    ConditionOp::CrossesUp => match prev {
                        Some(p) => (p <= v && v < cur, Some(p), 0.0),
                        None => (false, None, 0.0),
                    },
                    ConditionOp::CrossesDown => match prev {
                        Some(p) => (p >= v && v > cur, Some(p), 0.0),
                        None => (false, None, 0.0),
                    },
                    ConditionOp::PctChange => {
                        let w = i64::from(r.condition.window_secs) * 1000;
                        let h = &self.history[&sid];
                        let reference = h
                            .iter()
                            .find(|&&(t, _)| t >= ts - w && t <= ts)
                            .map(|&(_, p)| p);
                        match reference {
                            Some(rp) => {
                                let change = (cur - rp) / rp * 100.0;
                                let holds = match r.condition.direction {
                                    Direction::Up => change >= v,
                                    Direction::Down => change <= -v,
                                    Direction::Any => change.abs() >= v,
                                };
                                (holds, Some(rp), change)
                            }
                            None => (false, None, 0.0),
                        }
                    }
                };
                let expired = r.expires_at_ms.is_some_and(|e| ts >= e);
                let fires = match r.trigger.mode {
                    TriggerMode::Once => holds && r.state.armed && !expired,
                    TriggerMode::Every => {
                        if !holds {
                            r.state.armed = true;
                        }
                        holds && r.state.armed && !expired
                    }
                    TriggerMode::Cooldown => {
                        holds
                            && !expired
                            && r.state
                                .last_fired_ms
                                .is_none_or(|l| ts - l >= i64::from(r.trigger.cooldown_secs) * 1000)
                    }
                };
                if fires {
                    r.state.armed = r.trigger.mode == TriggerMode::Cooldown;
                    r.state.last_fired_ms = Some(ts);
                    r.state.fired_count += 1;
                    out.push(Alert {
                        rule_id: r.id.clone(),
                        symbol_id: sid,
                        price: cur,
                        reference_price: reference,
                        fired_at_ms: ts,
                        reason: crate::engine::reason(r, cur, change),
                        state: r.state,
                    });
                }
            }
        }
        out
    }
}

/// An alert as a comparable value.
fn key(a: &Alert) -> String {
    format!(
        "{} {} {} {:?} {} {} {} {:?} {}",
        a.fired_at_ms,
        a.rule_id,
        a.symbol_id,
        a.reference_price.map(f64::to_bits),
        a.price.to_bits(),
        a.reason,
        a.state.armed,
        a.state.last_fired_ms,
        a.state.fired_count
    )
}

/// Alerts in a canonical order: by time, then rule id (stable, so one rule's alerts at the
/// same time stay in tick order).
fn canonical(mut alerts: Vec<Alert>) -> Vec<String> {
    alerts.sort_by(|a, b| {
        a.fired_at_ms
            .cmp(&b.fired_at_ms)
            .then_with(|| a.rule_id.cmp(&b.rule_id))
    });
    alerts.iter().map(key).collect()
}

fn random_rule(rng: &mut Rng, id: String, symbols: u32, ts: i64) -> Rule {
    let sid = rng.below(u64::from(symbols)) as u32;
    let op = rng.pick(&[
        ConditionOp::Above,
        ConditionOp::Below,
        ConditionOp::CrossesUp,
        ConditionOp::CrossesDown,
        ConditionOp::PctChange,
    ]);
    let mode = rng.pick(&[TriggerMode::Once, TriggerMode::Every, TriggerMode::Cooldown]);
    let mut r = rule(&id, sid, op, 0.0, mode);
    // Levels on the same coarse grid as prices, so equalities happen often.
    r.condition.value = if op == ConditionOp::PctChange {
        0.5 * (1 + rng.below(8)) as f64
    } else {
        90.0 + 0.5 * rng.below(41) as f64
    };
    r.condition.direction = rng.pick(&[Direction::Up, Direction::Down, Direction::Any]);
    r.condition.window_secs = 1 + rng.below(30) as u32;
    r.trigger.cooldown_secs = 1 + rng.below(10) as u32;
    if rng.chance(15) {
        r.expires_at_ms = Some(ts + rng.below(200_000) as i64);
    }
    r.state.armed = rng.chance(80);
    if rng.chance(20) {
        r.state.last_fired_ms = Some(ts - rng.below(20_000) as i64);
        r.state.fired_count = rng.below(5) as u32;
    }
    r
}

fn compare_with_brute_force(seed: u64, symbols: u32, rules: usize, rounds: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut engine = Engine::new();
    let mut brute = Brute::default();
    let mut ts: i64 = 1_000_000;
    let mut prices: Vec<f64> = (0..symbols + 1).map(|_| 100.0).collect();
    let mut next_id = 0usize;
    let mut new_rule = |rng: &mut Rng, ts: i64| {
        next_id += 1;
        random_rule(rng, format!("r{}", next_id % (rules * 2)), symbols, ts)
    };
    let initial: Vec<Rule> = (0..rules).map(|_| new_rule(&mut rng, ts)).collect();
    engine.upsert_rules(initial.clone()).expect("valid");
    brute.upsert(initial);

    for round in 0..rounds {
        // Changes between batches.
        if rng.chance(30) {
            let n = 1 + rng.below(8) as usize;
            let batch: Vec<Rule> = (0..n).map(|_| new_rule(&mut rng, ts)).collect();
            engine.upsert_rules(batch.clone()).expect("valid");
            brute.upsert(batch);
        }
        if rng.chance(20) {
            let ids: Vec<String> = (0..1 + rng.below(6))
                .map(|_| format!("r{}", rng.below(rules as u64 * 2)))
                .collect();
            engine.remove_rules(&ids);
            brute.remove(&ids);
        }
        if rng.chance(10) {
            let primed: Vec<(u32, f64, i64)> = (0..1 + rng.below(3))
                .map(|_| {
                    let sid = rng.below(u64::from(symbols) + 1) as u32;
                    (
                        sid,
                        90.0 + 0.5 * rng.below(41) as f64,
                        ts - rng.below(3_000) as i64,
                    )
                })
                .collect();
            engine.prime_prices(&primed);
            brute.prime(&primed);
        }
        // A batch of ticks: small steps on a 0.5 grid, sometimes a jump or a bad price.
        let n = 1 + rng.below(40) as usize;
        let mut ticks = Vec::with_capacity(n);
        for _ in 0..n {
            ts += rng.below(1_500) as i64;
            let sid = rng.below(u64::from(symbols) + 1) as u32;
            let p = &mut prices[sid as usize];
            *p = if rng.chance(5) {
                90.0 + 0.5 * rng.below(41) as f64
            } else {
                (*p + 0.5 * (rng.below(5) as f64 - 2.0)).clamp(85.0, 115.0)
            };
            let price = if rng.chance(2) { f64::NAN } else { *p };
            ticks.push(tick(sid, price, ts));
        }
        let got = canonical(engine.evaluate(&TickBatch::from_ticks(ts, ticks.clone())));
        let want = canonical(brute.evaluate(&ticks));
        assert_eq!(got, want, "seed {seed}, round {round}");
        assert_eq!(
            engine.rule_count(),
            brute.rules.len(),
            "seed {seed}, round {round}"
        );
        for r in &brute.rules {
            let s = engine.rule_state(&r.id).expect("rule present");
            assert_eq!(
                s.armed, r.state.armed,
                "armed of {} (seed {seed}, round {round})",
                r.id
            );
            assert_eq!(
                s.last_fired_ms, r.state.last_fired_ms,
                "seed {seed}, round {round}"
            );
            assert_eq!(
                s.fired_count, r.state.fired_count,
                "seed {seed}, round {round}"
            );
        }
    }
}

#[test]
fn randomized_matches_brute_force_few_rules() {
    for seed in 1..=40 {
        compare_with_brute_force(seed, 3, 12, 300);
    }
}

#[test]
fn randomized_matches_brute_force_many_rules() {
    for seed in 100..=110 {
        compare_with_brute_force(seed, 4, 300, 300);
    }
}

/// How a stream of ticks is cut into batches must not change what fires (the host's
/// batches follow load, not content).
#[test]
fn batch_boundaries_do_not_change_the_alerts() {
    let symbols = 50u32;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut rules = Vec::new();
    for s in 0..symbols {
        for r in 0..40 {
            let (op, mode, value) = match r % 4 {
                0 => (ConditionOp::Above, TriggerMode::Once, 100.0 + next() * 10.0),
                1 => (ConditionOp::Below, TriggerMode::Once, 90.0 + next() * 10.0),
                2 => (
                    ConditionOp::CrossesUp,
                    TriggerMode::Every,
                    90.0 + next() * 20.0,
                ),
                _ => (
                    ConditionOp::CrossesDown,
                    TriggerMode::Every,
                    90.0 + next() * 20.0,
                ),
            };
            rules.push(rule(&format!("r{s}-{r}"), s, op, value, mode));
        }
    }
    let mut price = vec![100.0f64; symbols as usize];
    let mut ticks = Vec::new();
    for i in 0..60_000i64 {
        let s = (i % symbols as i64) as usize;
        price[s] *= 1.0 + (next() - 0.5) * 0.004;
        ticks.push(tick(s as u32, price[s], 1_000_000 + i * 10));
    }
    let fire = |sizes: &[usize]| {
        let mut e = engine_with(rules.clone());
        let mut out = Vec::new();
        let mut at = 0;
        let mut k = 0;
        while at < ticks.len() {
            let n = sizes[k % sizes.len()].min(ticks.len() - at);
            k += 1;
            let batch = TickBatch::from_ticks(0, ticks[at..at + n].to_vec());
            out.extend(
                e.evaluate(&batch)
                    .into_iter()
                    .map(|a| format!("{} {} {}", a.rule_id, a.fired_at_ms, a.price)),
            );
            at += n;
        }
        out
    };
    let whole = fire(&[1000]);
    assert!(
        whole.len() > 100,
        "the walk should fire rules: {}",
        whole.len()
    );
    for sizes in [&[1][..], &[7, 993], &[333], &[5000, 1, 17]] {
        assert_eq!(fire(sizes), whole, "batch sizes {sizes:?}");
    }
}
