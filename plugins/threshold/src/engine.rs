//! The rule engine behind the `threshold` plugin, usable natively (benchmarks, tests).
//!
//! See the crate documentation for the semantics; this module documents how they are made
//! fast.
//!
//! ## Layout
//! - `Engine::syms` is indexed by symbol id. Each `Sym` entry is small and holds what
//!   most ticks need: the last price, a tick counter, and a *quiet band*: an open price
//!   interval and a time before which a tick cannot change anything. A tick inside the
//!   band costs one index, a few compares and stores. A symbol without rules has an
//!   infinite band.
//! - Only when a tick leaves the band (or the symbol has pct rules) is the symbol's boxed
//!   `SymRules` touched. It owns the rules (`slots`) and four indexes sorted by threshold (`above`, `below`, `up` for
//!   crosses-up, `down` for crosses-down). Each index keeps a cursor: the number of keys on
//!   the "less" side of the last price, and caches the keys on either side of it. A tick
//!   moves the cursor from the previous price to the new one and visits only the keys it
//!   passes over, which are exactly the rules whose condition changes (or, for crossings,
//!   holds).
//! - Level `cooldown` rules whose condition is currently true sit in an `ActiveList`,
//!   since they may fire again without the price moving across their level; the earliest
//!   time one of them may fire bounds the quiet band.
//! - `pct-change` rules are grouped by window and direction (`PctGroup`). On every tick
//!   of such a symbol the history is updated and the reference price found once per
//!   distinct window (each window keeps a cursor to its oldest point, which only moves
//!   forward); within a group the condition is a level on the change, indexed like
//!   `above` rules, so again only the rules whose condition changes are visited.
//!
//! ## Laziness
//! Upserts, removals and primed prices only mark the symbol `dirty` (and empty its quiet
//! band). The next tick of a dirty symbol evaluates every rule of that symbol directly (the
//! plain definition) and then rebuilds the indexes from the new price, so indexes never
//! need incremental updates.
//!
//! ## Invariants between ticks (relative to the last price `L`)
//! - a level `every` rule that is disarmed has its condition true at `L` (so the move that
//!   makes it false passes over its key and re-arms it);
//! - a level `once` rule that is armed has its condition false at `L`, unless expired;
//! - a level `cooldown` rule is in its index's active list exactly when its condition is
//!   true at `L`;
//! - a crossing `every` rule is re-armed by the first tick after the one where its
//!   condition was last true (a crossing cannot hold twice in a row without a change of
//!   `prev`, and every tick where it holds visits it), so `true_seq` records that tick and
//!   the re-arm is applied lazily at the next visit.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::ops::Range;

use impressox_plugin_sdk::types::{
    Alert, ConditionOp, Direction, Rule, RuleState, Tick, TickBatch, TriggerMode,
};

/// Symbol ids must be below this. The host's ids are dense; the bound keeps a bad id from
/// making the engine allocate gigabytes.
pub const MAX_SYMBOL_ID: u32 = 1 << 20;

/// Most `(ts, price)` points kept per symbol for `pct-change` rules. When ticks arrive so
/// fast that a window holds more, the oldest points are dropped and the reference price is
/// the oldest point kept.
pub const MAX_HISTORY: usize = 1 << 16;

/// `true_seq` of a rule whose history is unknown (freshly upserted).
const NO_SEQ: u64 = u64::MAX;
/// `Slot::active` of a rule that is not in the active cooldown list.
const NOT_ACTIVE: u32 = u32::MAX;

/// One rule and the bookkeeping the indexes need.
struct Slot {
    rule: Rule,
    /// The rule id followed by the fixed part of the alert reason (the whole reason for
    /// crossings, `"SYM is above V at "` for levels, `"SYM "` for pct-change), built once:
    /// formatting the level per alert would cost more than the rest of the alert, and one
    /// allocation for both means an alert reads one cold cache line instead of two.
    text: Box<str>,
    /// Where the id ends in `text`.
    id_len: u32,
    /// For crossing `every` rules: the symbol's tick number at which the condition was
    /// last true, [`NO_SEQ`] when unknown.
    true_seq: u64,
    /// Position in the active cooldown list of its index ([`SymRules::active`] or its
    /// [`PctGroup::active`]), or [`NOT_ACTIVE`].
    active: u32,
}

/// Rules of one kind sorted by threshold, plus the cursor for the last price.
///
/// `STRICT` indexes (`above`, `up`: conditions `price > key`, `prev <= key < price`)
/// count `key < L` below the cursor; the others (`below`, `down`) count `key <= L`.
struct Index {
    /// `(key, slot)` sorted by key; one vector so a visit reads one cache line.
    entries: Vec<(f64, u32)>,
    pos: usize,
    /// `keys[pos - 1]`, or -inf.
    lo: f64,
    /// `keys[pos]`, or +inf.
    hi: f64,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            entries: Vec::new(),
            pos: 0,
            lo: f64::NEG_INFINITY,
            hi: f64::INFINITY,
        }
    }
}

impl Index {
    /// Sort the pairs by key and place the cursor for `c`.
    fn build<const STRICT: bool>(&mut self, mut pairs: Vec<(f64, u32)>, c: f64) {
        pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        self.entries = pairs;
        self.pos = self
            .entries
            .partition_point(|&(k, _)| below_cursor::<STRICT>(k, c));
        self.refresh();
    }

    fn key(&self, i: usize) -> Option<f64> {
        self.entries.get(i).map(|e| e.0)
    }

    fn refresh(&mut self) {
        self.lo = self
            .pos
            .checked_sub(1)
            .and_then(|p| self.key(p))
            .unwrap_or(f64::NEG_INFINITY);
        self.hi = self.key(self.pos).unwrap_or(f64::INFINITY);
    }

    /// The price rose to `c`: move the cursor past the keys that are now below it and
    /// return their positions.
    #[inline]
    fn rise<const STRICT: bool>(&mut self, c: f64) -> Range<usize> {
        let start = self.pos;
        if below_cursor::<STRICT>(self.hi, c) {
            let mut p = start + 1;
            while self.key(p).is_some_and(|k| below_cursor::<STRICT>(k, c)) {
                p += 1;
            }
            self.pos = p;
            self.refresh();
        }
        start..self.pos
    }

    /// The price fell to `c`: move the cursor back over the keys that are no longer below
    /// it and return their positions.
    #[inline]
    fn fall<const STRICT: bool>(&mut self, c: f64) -> Range<usize> {
        let end = self.pos;
        if !below_cursor::<STRICT>(self.lo, c) {
            let mut p = end - 1;
            while p > 0
                && self
                    .key(p - 1)
                    .is_some_and(|k| !below_cursor::<STRICT>(k, c))
            {
                p -= 1;
            }
            self.pos = p;
            self.refresh();
        }
        self.pos..end
    }

    fn slots_in(&self, range: Range<usize>) -> impl Iterator<Item = u32> + '_ {
        self.entries
            .get(range)
            .unwrap_or_default()
            .iter()
            .map(|e| e.1)
    }
}

/// Whether `key` counts below the cursor of an index at price `price`.
#[inline]
fn below_cursor<const STRICT: bool>(key: f64, price: f64) -> bool {
    if STRICT { key < price } else { key <= price }
}

/// A cooldown rule whose (level) condition is true at the last price.
struct Active {
    /// Earliest tick time at which it may fire again.
    next_ms: i64,
    slot: u32,
}

/// The cooldown rules of one index whose conditions currently hold: they may fire again
/// without the price moving across their level.
struct ActiveList {
    entries: Vec<Active>,
    /// Lower bound of the entries' `next_ms`, so the list is skipped while all cool down.
    min_next: i64,
}

impl Default for ActiveList {
    fn default() -> Self {
        ActiveList {
            entries: Vec::new(),
            min_next: i64::MAX,
        }
    }
}

impl ActiveList {
    fn clear(&mut self) {
        self.entries.clear();
        self.min_next = i64::MAX;
    }

    /// The earliest time a tick may fire one of the entries.
    fn due_ms(&self) -> i64 {
        if self.entries.is_empty() {
            i64::MAX
        } else {
            self.min_next
        }
    }

    /// Slot `i`'s condition now holds.
    fn add(&mut self, slot: &mut Slot, i: u32) {
        if slot.active != NOT_ACTIVE {
            return;
        }
        let next_ms = next_eligible(&slot.rule);
        self.min_next = self.min_next.min(next_ms);
        slot.active = self.entries.len() as u32;
        self.entries.push(Active { next_ms, slot: i });
    }

    /// Slot `i`'s condition no longer holds.
    fn remove(&mut self, slots: &mut [Slot], i: u32) {
        let Some(slot) = slots.get_mut(i as usize) else {
            return;
        };
        let pos = slot.active as usize;
        slot.active = NOT_ACTIVE;
        if pos < self.entries.len() {
            self.entries.swap_remove(pos);
            if let Some(moved) = self.entries.get(pos)
                && let Some(moved_slot) = slots.get_mut(moved.slot as usize)
            {
                moved_slot.active = pos as u32;
            }
        }
    }

    /// Fire the entries that have cooled down by this tick.
    fn fire_due(
        &mut self,
        slots: &mut [Slot],
        tick: &Tick,
        reference: Option<f64>,
        change: f64,
        out: &mut Vec<Alert>,
    ) {
        let ts = tick.ts_ms;
        if ts < self.min_next {
            return;
        }
        let mut min_next = i64::MAX;
        for a in &mut self.entries {
            if ts >= a.next_ms
                && let Some(slot) = slots.get_mut(a.slot as usize)
                && !expired(&slot.rule, ts)
            {
                out.push(fire(slot, tick, reference, change));
                a.next_ms = next_eligible(&slot.rule);
            }
            min_next = min_next.min(a.next_ms);
        }
        self.min_next = min_next;
    }
}

/// The `pct-change` rules of one symbol with one window and one direction.
///
/// Their conditions are levels on one number, `x` = `change` (up), `-change` (down) or
/// `|change|` (any): a rule holds when `value <= x`. So they get the same treatment as
/// `above` rules on the price: an index sorted by value with a cursor at the last `x`, and
/// a list of the cooldown rules that currently hold.
struct PctGroup {
    /// Index into [`SymRules::windows`].
    window: u32,
    direction: Direction,
    /// Keys are the rules' values; non-strict (`key <= x` counts below the cursor).
    index: Index,
    active: ActiveList,
}

impl PctGroup {
    /// The number the group's conditions compare with their values; -inf without a
    /// reference price, so that nothing holds.
    fn x(&self, change: Option<f64>) -> f64 {
        match (change, self.direction) {
            (None, _) => f64::NEG_INFINITY,
            (Some(c), Direction::Up) => c,
            (Some(c), Direction::Down) => -c,
            (Some(c), Direction::Any) => c.abs(),
        }
    }
}

/// One distinct pct window of a symbol and the absolute history index of its oldest
/// point (only moves forward, as ticks arrive in time order).
struct Window {
    window_ms: i64,
    start: u64,
}

/// `(ts, price)` points, oldest first; `base` is the absolute index of the front.
#[derive(Default)]
struct History {
    points: VecDeque<(i64, f64)>,
    base: u64,
}

impl History {
    fn clear(&mut self) {
        self.base += self.points.len() as u64;
        self.points.clear();
    }

    /// Append a point and drop what the largest window no longer needs. An empty history
    /// is first seeded with the previous price, so a window can reach back before the first
    /// tick seen with pct rules.
    fn record(&mut self, prev: Option<(f64, i64)>, tick: &Tick, max_window_ms: i64) {
        if self.points.is_empty()
            && let Some((price, ts)) = prev
        {
            self.points.push_back((ts, price));
        }
        self.points.push_back((tick.ts_ms, tick.price));
        let floor = tick.ts_ms.saturating_sub(max_window_ms);
        while self.points.front().is_some_and(|&(ts, _)| ts < floor)
            || self.points.len() > MAX_HISTORY
        {
            self.points.pop_front();
            self.base += 1;
        }
    }

    /// The oldest price inside `[ts - window, ts]`, by binary search.
    fn reference(&self, ts: i64, window_ms: i64) -> Option<f64> {
        let floor = ts.saturating_sub(window_ms);
        let i = self.points.partition_point(|&(t, _)| t < floor);
        self.points.get(i).map(|&(_, price)| price)
    }

    /// The same, advancing a window's cursor instead of searching.
    fn reference_from(&self, window: &mut Window, ts: i64) -> Option<f64> {
        let floor = ts.saturating_sub(window.window_ms);
        let mut i = window.start.saturating_sub(self.base) as usize;
        while self.points.get(i).is_some_and(|&(t, _)| t < floor) {
            i += 1;
        }
        window.start = self.base + i as u64;
        self.points.get(i).map(|&(_, price)| price)
    }
}

/// Everything about one symbol that has rules. `repr(C)` keeps the fields every slow tick
/// reads together at the front.
#[derive(Default)]
#[repr(C)]
struct SymRules {
    /// Rules changed (or the last price was primed) since the indexes were built.
    dirty: bool,
    /// The largest window among all pct rules (fired `once` ones included, so the history
    /// does not depend on which rules fired); `None` without pct rules.
    max_window_ms: Option<i64>,
    history: History,
    windows: Vec<Window>,
    /// Sorted by window.
    pct: Vec<PctGroup>,
    above: Index,
    below: Index,
    up: Index,
    down: Index,
    active: ActiveList,
    slots: Vec<Slot>,
}

/// A price interval `(lo, hi)` and a time `due_ms`: a tick with a price inside and a time
/// before it cannot change any above/below/crossing rule of the symbol. `pct` says whether
/// the symbol has pct rules, which need every tick.
#[derive(Clone, Copy)]
struct Quiet {
    lo: f64,
    hi: f64,
    due_ms: i64,
    pct: bool,
}

impl Quiet {
    const ALWAYS: Quiet = Quiet {
        lo: f64::NEG_INFINITY,
        hi: f64::INFINITY,
        due_ms: i64::MAX,
        pct: false,
    };
    const NEVER: Quiet = Quiet {
        lo: f64::INFINITY,
        hi: f64::NEG_INFINITY,
        due_ms: i64::MIN,
        pct: true,
    };
}

/// Per symbol id: the hot data of every tick.
struct Sym {
    /// NaN when no price was seen yet.
    last_price: f64,
    last_ts: i64,
    quiet: Quiet,
    /// Ticks seen (for the lazy re-arm of crossing `every` rules).
    seq: u64,
    rules: Option<Box<SymRules>>,
}

impl Sym {
    fn new() -> Self {
        Sym {
            last_price: f64::NAN,
            last_ts: 0,
            quiet: Quiet::ALWAYS,
            seq: 0,
            rules: None,
        }
    }

    fn last(&self) -> Option<(f64, i64)> {
        (!self.last_price.is_nan()).then_some((self.last_price, self.last_ts))
    }

    /// Rules or the previous price changed: evaluate everything at the next tick.
    fn mark_dirty(&mut self) {
        if let Some(rules) = self.rules.as_deref_mut() {
            rules.dirty = true;
            self.quiet = Quiet::NEVER;
        }
    }
}

/// The rule engine. See the crate documentation for the semantics.
pub struct Engine {
    syms: Vec<Sym>,
    /// Rule id -> (symbol id, position in that symbol's `slots`). A `BTreeMap` rather than
    /// a `HashMap`: a `HashMap`'s random seed would make the component import
    /// `wasi:random`, and upserts are not the hot path.
    by_id: std::collections::BTreeMap<String, (u32, u32)>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.by_id.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with no rules and no prices.
    pub fn new() -> Self {
        Engine {
            syms: Vec::new(),
            by_id: std::collections::BTreeMap::new(),
        }
    }

    /// Number of rules held.
    pub fn rule_count(&self) -> usize {
        self.by_id.len()
    }

    /// The last price and its time seen for a symbol id (from a tick or `prime_prices`).
    pub fn last_price(&self, symbol_id: u32) -> Option<(f64, i64)> {
        self.syms.get(symbol_id as usize).and_then(Sym::last)
    }

    /// The current state of a rule, as it would be persisted now.
    pub fn rule_state(&self, id: &str) -> Option<RuleState> {
        let &(sid, pos) = self.by_id.get(id)?;
        let sym = self.syms.get(sid as usize)?;
        let slot = sym.rules.as_deref()?.slots.get(pos as usize)?;
        let mut state = slot.rule.state;
        // Apply a pending lazy re-arm (see the module docs).
        if needs_lazy_rearm(&slot.rule) && slot.true_seq < sym.seq {
            state.armed = true;
        }
        Some(state)
    }

    /// Add or replace rules by id. All rules are validated first; on an error nothing is
    /// changed and the message names the rule and the field.
    pub fn upsert_rules(&mut self, rules: Vec<Rule>) -> Result<(), String> {
        for rule in &rules {
            validate(rule)?;
        }
        for rule in rules {
            self.insert(rule);
        }
        Ok(())
    }

    /// Forget rules by id; unknown ids are ignored.
    pub fn remove_rules<S: AsRef<str>>(&mut self, ids: &[S]) {
        for id in ids {
            if let Some((sid, pos)) = self.by_id.remove(id.as_ref()) {
                self.remove_slot(sid, pos);
            }
        }
    }

    /// Set the last known `(symbol_id, price, ts_ms)` per symbol, so crossings right after a
    /// (re)load compare with the real previous price. A point older than the price already
    /// known, a non-finite or non-positive price, or an id of [`MAX_SYMBOL_ID`] or more is
    /// ignored.
    pub fn prime_prices(&mut self, prices: &[(u32, f64, i64)]) {
        for &(sid, price, ts) in prices {
            if !valid_price(price) {
                continue;
            }
            let Some(sym) = self.sym_mut(sid) else {
                continue;
            };
            if sym.last().is_some_and(|(_, last_ts)| ts < last_ts) {
                continue;
            }
            sym.last_price = price;
            sym.last_ts = ts;
            // The indexes' cursors describe the old price.
            sym.mark_dirty();
        }
    }

    /// Evaluate a batch; returns one alert per firing, in tick order.
    pub fn evaluate(&mut self, batch: &TickBatch) -> Vec<Alert> {
        let mut out = Vec::new();
        let ticks: Vec<Tick> = batch.iter().collect();
        self.evaluate_ticks(&ticks, &mut out);
        out
    }

    /// Evaluate ticks in order, appending alerts to `out` (lets a caller reuse the vector).
    /// Ticks with a non-finite or non-positive price, or a symbol id of [`MAX_SYMBOL_ID`] or
    /// more, are skipped.
    pub fn evaluate_ticks(&mut self, ticks: &[Tick], out: &mut Vec<Alert>) {
        for tick in ticks {
            let c = tick.price;
            if !valid_price(c) {
                continue;
            }
            let idx = tick.symbol_id as usize;
            if idx >= self.syms.len() && self.sym_mut(tick.symbol_id).is_none() {
                continue;
            }
            let Some(sym) = self.syms.get_mut(idx) else {
                continue;
            };
            let prev = sym.last();
            sym.last_price = c;
            sym.last_ts = tick.ts_ms;
            sym.seq += 1;
            let q = sym.quiet;
            let level_quiet = c > q.lo && c < q.hi && tick.ts_ms < q.due_ms;
            if level_quiet && !q.pct {
                continue;
            }
            if let Some(rules) = sym.rules.as_deref_mut() {
                sym.quiet = rules.on_tick(prev, tick, sym.seq, level_quiet, out);
            }
        }
    }

    /// The entry for a symbol id, growing the table when needed; `None` past the bound.
    fn sym_mut(&mut self, sid: u32) -> Option<&mut Sym> {
        if sid >= MAX_SYMBOL_ID {
            return None;
        }
        let idx = sid as usize;
        if idx >= self.syms.len() {
            self.syms.resize_with(idx + 1, Sym::new);
        }
        self.syms.get_mut(idx)
    }

    fn insert(&mut self, rule: Rule) {
        let sid = rule.symbol_id;
        if let Some(&(old_sid, pos)) = self.by_id.get(&rule.id) {
            if old_sid == sid {
                if let Some(sym) = self.syms.get_mut(sid as usize)
                    && let Some(slot) = sym
                        .rules
                        .as_deref_mut()
                        .and_then(|r| r.slots.get_mut(pos as usize))
                {
                    *slot = Slot::new(rule);
                    sym.mark_dirty();
                    return;
                }
            } else {
                self.by_id.remove(&rule.id);
                self.remove_slot(old_sid, pos);
            }
        }
        // `validate` checked the bound, so this always finds the entry.
        let Some(sym) = self.sym_mut(sid) else { return };
        let rules = sym.rules.get_or_insert_with(Box::default);
        let pos = rules.slots.len() as u32;
        let id = rule.id.clone();
        rules.slots.push(Slot::new(rule));
        sym.mark_dirty();
        self.by_id.insert(id, (sid, pos));
    }

    fn remove_slot(&mut self, sid: u32, pos: u32) {
        let Some(sym) = self.syms.get_mut(sid as usize) else {
            return;
        };
        let Some(rules) = sym.rules.as_deref_mut() else {
            return;
        };
        let pos = pos as usize;
        if pos >= rules.slots.len() {
            return;
        }
        rules.slots.swap_remove(pos);
        if let Some(moved) = rules.slots.get(pos)
            && let Some(entry) = self.by_id.get_mut(&moved.rule.id)
        {
            entry.1 = pos as u32;
        }
        if rules.slots.is_empty() {
            // Back to the one-index fast path; the price history goes with the rules.
            sym.rules = None;
            sym.quiet = Quiet::ALWAYS;
        } else {
            sym.mark_dirty();
        }
    }
}

impl Slot {
    fn new(rule: Rule) -> Self {
        let s = &rule.symbol;
        let v = rule.condition.value;
        let id = &rule.id;
        let text = match rule.condition.op {
            ConditionOp::Above => format!("{id}{s} is above {v} at "),
            ConditionOp::Below => format!("{id}{s} is below {v} at "),
            ConditionOp::CrossesUp => format!("{id}{s} crossed above {v}"),
            ConditionOp::CrossesDown => format!("{id}{s} crossed below {v}"),
            ConditionOp::PctChange => format!("{id}{s} "),
        };
        Slot {
            id_len: id.len() as u32,
            rule,
            text: text.into_boxed_str(),
            true_seq: NO_SEQ,
            active: NOT_ACTIVE,
        }
    }
}

impl SymRules {
    /// A tick left the quiet band (or the symbol is dirty); returns the new band.
    /// A tick that left the quiet band, or of a symbol with pct rules, or of a dirty one
    /// (`level_quiet`: it stayed inside the band); returns the new band.
    fn on_tick(
        &mut self,
        prev: Option<(f64, i64)>,
        tick: &Tick,
        seq: u64,
        level_quiet: bool,
        out: &mut Vec<Alert>,
    ) -> Quiet {
        let Some((p, _)) = prev.filter(|_| !self.dirty) else {
            self.evaluate_all(prev, tick, seq, out);
            self.rebuild(tick);
            return self.quiet();
        };
        let c = tick.price;
        if let Some(max_window_ms) = self.max_window_ms {
            // `prev` only seeds an empty history, and the history is never empty here: the
            // rebuild that set `max_window_ms` followed a tick that was recorded.
            self.history.record(None, tick, max_window_ms);
            if !self.pct.is_empty() {
                self.check_pct(tick, out);
            }
        }
        if level_quiet {
            // The cursors are valid for any price inside the band (no key lies in it).
            return self.quiet();
        }
        if c > p {
            self.move_up(tick, p, seq, out);
        } else if c < p {
            self.move_down(tick, p, seq, out);
        }
        self.active.fire_due(&mut self.slots, tick, None, 0.0, out);
        self.quiet()
    }

    fn quiet(&self) -> Quiet {
        if self.dirty {
            return Quiet::NEVER;
        }
        Quiet {
            lo: self
                .above
                .lo
                .max(self.below.lo)
                .max(self.up.lo)
                .max(self.down.lo),
            hi: self
                .above
                .hi
                .min(self.below.hi)
                .min(self.up.hi)
                .min(self.down.hi),
            due_ms: self.active.due_ms(),
            pct: self.max_window_ms.is_some(),
        }
    }

    /// The plain definition: evaluate every rule at this tick. Used for the first tick
    /// after any change; `rebuild` follows.
    fn evaluate_all(
        &mut self,
        prev: Option<(f64, i64)>,
        tick: &Tick,
        seq: u64,
        out: &mut Vec<Alert>,
    ) {
        if let Some(max_window_ms) = self.pct_max_window() {
            self.history.record(prev, tick, max_window_ms);
        }
        let prev_price = prev.map(|p| p.0);
        let c = tick.price;
        for slot in &mut self.slots {
            let v = slot.rule.condition.value;
            let (holds, reference, change) = match slot.rule.condition.op {
                ConditionOp::Above => (c > v, None, 0.0),
                ConditionOp::Below => (c < v, None, 0.0),
                ConditionOp::CrossesUp => {
                    (prev_price.is_some_and(|p| p <= v && v < c), prev_price, 0.0)
                }
                ConditionOp::CrossesDown => {
                    (prev_price.is_some_and(|p| p >= v && v > c), prev_price, 0.0)
                }
                ConditionOp::PctChange => {
                    match self.history.reference(tick.ts_ms, window_ms(&slot.rule)) {
                        Some(r) => {
                            let change = pct_change(r, c);
                            (
                                pct_holds(slot.rule.condition.direction, v, change),
                                Some(r),
                                change,
                            )
                        }
                        None => (false, None, 0.0),
                    }
                }
            };
            if needs_lazy_rearm(&slot.rule) {
                if slot.true_seq.saturating_add(1) < seq {
                    slot.rule.state.armed = true;
                }
                if holds {
                    slot.true_seq = seq;
                }
            }
            if holds {
                if may_fire(&slot.rule, tick.ts_ms) {
                    out.push(fire(slot, tick, reference, change));
                }
            } else if slot.rule.trigger.mode == TriggerMode::Every {
                slot.rule.state.armed = true;
            }
        }
    }

    /// The largest window among the pct rules.
    fn pct_max_window(&self) -> Option<i64> {
        self.slots
            .iter()
            .filter(|s| s.rule.condition.op == ConditionOp::PctChange)
            .map(|s| window_ms(&s.rule))
            .max()
    }

    fn slots_direction(&self, i: u32) -> Direction {
        self.slots
            .get(i as usize)
            .map_or(Direction::Any, |s| s.rule.condition.direction)
    }

    /// Rebuild indexes, cursors, active cooldown lists and pct groups for the tick just
    /// evaluated.
    fn rebuild(&mut self, tick: &Tick) {
        let (c, ts) = (tick.price, tick.ts_ms);
        let mut above = Vec::new();
        let mut below = Vec::new();
        let mut up = Vec::new();
        let mut down = Vec::new();
        // (window, direction, value, slot)
        let mut pct: Vec<(i64, u8, f64, u32)> = Vec::new();
        self.active.clear();
        self.pct.clear();
        self.windows.clear();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            slot.active = NOT_ACTIVE;
            let rule = &slot.rule;
            // A `once` rule that fired can never fire again: leave it out.
            if rule.trigger.mode == TriggerMode::Once && !rule.state.armed {
                continue;
            }
            let v = rule.condition.value;
            let i = i as u32;
            let cooldown = rule.trigger.mode == TriggerMode::Cooldown;
            let true_now = match rule.condition.op {
                ConditionOp::Above => {
                    above.push((v, i));
                    c > v
                }
                ConditionOp::Below => {
                    below.push((v, i));
                    c < v
                }
                ConditionOp::CrossesUp => {
                    up.push((v, i));
                    false
                }
                ConditionOp::CrossesDown => {
                    down.push((v, i));
                    false
                }
                ConditionOp::PctChange => {
                    pct.push((
                        window_ms(rule),
                        direction_rank(rule.condition.direction),
                        v,
                        i,
                    ));
                    false
                }
            };
            if cooldown && true_now {
                self.active.add(slot, i);
            }
        }
        self.above.build::<true>(above, c);
        self.up.build::<true>(up, c);
        self.below.build::<false>(below, c);
        self.down.build::<false>(down, c);

        // Group pct rules by window, then direction; groups of one window share one
        // reference lookup per tick.
        pct.sort_unstable_by_key(|&(w, d, _, _)| (w, d));
        let mut rest = pct.as_slice();
        while let Some(&(w, d, _, _)) = rest.first() {
            let n = rest.iter().take_while(|e| e.0 == w && e.1 == d).count();
            let (members, tail) = rest.split_at(n);
            rest = tail;
            if self.windows.last().is_none_or(|last| last.window_ms != w) {
                self.windows.push(Window {
                    window_ms: w,
                    start: self.history.base,
                });
            }
            let mut group = PctGroup {
                window: (self.windows.len() - 1) as u32,
                direction: members
                    .first()
                    .map_or(Direction::Any, |m| self.slots_direction(m.3)),
                index: Index::default(),
                active: ActiveList::default(),
            };
            let change = self.history.reference(ts, w).map(|r| pct_change(r, c));
            let x = group.x(change);
            for &(_, _, v, i) in members {
                if let Some(slot) = self.slots.get_mut(i as usize)
                    && slot.rule.trigger.mode == TriggerMode::Cooldown
                    && v <= x
                {
                    group.active.add(slot, i);
                }
            }
            group
                .index
                .build::<false>(members.iter().map(|m| (m.2, m.3)).collect(), x);
            self.pct.push(group);
        }
        self.max_window_ms = self.pct_max_window();
        if self.max_window_ms.is_none() {
            self.history.clear();
        }
        self.dirty = false;
    }

    fn check_pct(&mut self, tick: &Tick, out: &mut Vec<Alert>) {
        let SymRules {
            pct,
            windows,
            slots,
            history,
            ..
        } = self;
        let ts = tick.ts_ms;
        let mut window = u32::MAX;
        let mut reference = None;
        let mut change = None;
        for g in pct.iter_mut() {
            if g.window != window {
                window = g.window;
                reference = windows
                    .get_mut(window as usize)
                    .and_then(|w| history.reference_from(w, ts));
                change = reference.map(|r| pct_change(r, tick.price));
            }
            let x = g.x(change);
            let ch = change.unwrap_or(0.0);
            let PctGroup { index, active, .. } = g;
            let range = index.rise::<false>(x);
            for i in index.slots_in(range) {
                level_turned_true(slots, active, i, tick, reference, ch, out);
            }
            let range = index.fall::<false>(x);
            for i in index.slots_in(range) {
                level_turned_false(slots, active, i);
            }
            active.fire_due(slots, tick, reference, ch, out);
        }
    }

    /// The price rose from `p` to the tick's price.
    fn move_up(&mut self, tick: &Tick, p: f64, seq: u64, out: &mut Vec<Alert>) {
        let c = tick.price;
        let SymRules {
            slots,
            above,
            below,
            up,
            down,
            active,
            ..
        } = self;
        // above: keys in [p, c) turn true.
        let range = above.rise::<true>(c);
        for i in above.slots_in(range) {
            level_turned_true(slots, active, i, tick, None, 0.0, out);
        }
        // below: keys in (p, c] turn false.
        let range = below.rise::<false>(c);
        for i in below.slots_in(range) {
            level_turned_false(slots, active, i);
        }
        // crosses-up: keys in [p, c) fire (p <= v < c).
        let range = up.rise::<true>(c);
        for i in up.slots_in(range) {
            crossed(slots, i, seq, tick, p, out);
        }
        // crosses-down: only the cursor moves.
        down.rise::<false>(c);
    }

    /// The price fell from `p` to the tick's price.
    fn move_down(&mut self, tick: &Tick, p: f64, seq: u64, out: &mut Vec<Alert>) {
        let c = tick.price;
        let SymRules {
            slots,
            above,
            below,
            up,
            down,
            active,
            ..
        } = self;
        // above: keys in [c, p) turn false.
        let range = above.fall::<true>(c);
        for i in above.slots_in(range) {
            level_turned_false(slots, active, i);
        }
        // below: keys in (c, p] turn true.
        let range = below.fall::<false>(c);
        for i in below.slots_in(range) {
            level_turned_true(slots, active, i, tick, None, 0.0, out);
        }
        // crosses-down: keys in (c, p] fire (p >= v > c).
        let range = down.fall::<false>(c);
        for i in down.slots_in(range) {
            crossed(slots, i, seq, tick, p, out);
        }
        // crosses-up: only the cursor moves.
        up.fall::<true>(c);
    }
}

/// A level rule's condition became true at this tick.
fn level_turned_true(
    slots: &mut [Slot],
    active: &mut ActiveList,
    i: u32,
    tick: &Tick,
    reference: Option<f64>,
    change: f64,
    out: &mut Vec<Alert>,
) {
    let Some(slot) = slots.get_mut(i as usize) else {
        return;
    };
    if slot.rule.trigger.mode == TriggerMode::Cooldown {
        // Whether it fires now is decided by `fire_due`, which runs after the moves.
        active.add(slot, i);
    } else if may_fire(&slot.rule, tick.ts_ms) {
        out.push(fire(slot, tick, reference, change));
    }
}

/// A level rule's condition became false at this tick.
fn level_turned_false(slots: &mut [Slot], active: &mut ActiveList, i: u32) {
    match slots.get(i as usize).map(|s| s.rule.trigger.mode) {
        Some(TriggerMode::Every) => {
            if let Some(slot) = slots.get_mut(i as usize) {
                slot.rule.state.armed = true;
            }
        }
        Some(TriggerMode::Cooldown) => active.remove(slots, i),
        Some(TriggerMode::Once) | None => {}
    }
}

/// A crossing rule's condition holds at this tick (tick number `seq`, previous price `p`).
fn crossed(slots: &mut [Slot], i: u32, seq: u64, tick: &Tick, p: f64, out: &mut Vec<Alert>) {
    let Some(slot) = slots.get_mut(i as usize) else {
        return;
    };
    if needs_lazy_rearm(&slot.rule) {
        if slot.true_seq.saturating_add(1) < seq {
            slot.rule.state.armed = true;
        }
        slot.true_seq = seq;
    }
    if may_fire(&slot.rule, tick.ts_ms) {
        out.push(fire(slot, tick, Some(p), 0.0));
    }
}

/// Crossing `every` rules are re-armed lazily (see the module docs).
fn needs_lazy_rearm(rule: &Rule) -> bool {
    rule.trigger.mode == TriggerMode::Every
        && matches!(
            rule.condition.op,
            ConditionOp::CrossesUp | ConditionOp::CrossesDown
        )
}

/// Whether a rule whose condition holds at `ts` fires, by trigger mode and expiry.
fn may_fire(rule: &Rule, ts: i64) -> bool {
    let eligible = match rule.trigger.mode {
        TriggerMode::Once | TriggerMode::Every => rule.state.armed,
        TriggerMode::Cooldown => ts >= next_eligible(rule),
    };
    eligible && !expired(rule, ts)
}

fn expired(rule: &Rule, ts: i64) -> bool {
    rule.expires_at_ms.is_some_and(|at| ts >= at)
}

/// The earliest tick time at which a cooldown rule may fire.
fn next_eligible(rule: &Rule) -> i64 {
    match rule.state.last_fired_ms {
        Some(last) => last.saturating_add(i64::from(rule.trigger.cooldown_secs) * 1000),
        None => i64::MIN,
    }
}

/// Orders pct groups of one window.
fn direction_rank(d: Direction) -> u8 {
    match d {
        Direction::Up => 0,
        Direction::Down => 1,
        Direction::Any => 2,
    }
}

fn window_ms(rule: &Rule) -> i64 {
    i64::from(rule.condition.window_secs) * 1000
}

fn valid_price(price: f64) -> bool {
    price > 0.0 && price < f64::INFINITY
}

fn pct_change(reference: f64, price: f64) -> f64 {
    (price - reference) / reference * 100.0
}

fn pct_holds(direction: Direction, value: f64, change: f64) -> bool {
    match direction {
        Direction::Up => change >= value,
        Direction::Down => change <= -value,
        Direction::Any => change.abs() >= value,
    }
}

/// Build the alert and advance the rule's state.
fn fire(slot: &mut Slot, tick: &Tick, reference: Option<f64>, change: f64) -> Alert {
    let rule = &mut slot.rule;
    let state = &mut rule.state;
    state.armed = rule.trigger.mode == TriggerMode::Cooldown;
    state.last_fired_ms = Some(tick.ts_ms);
    state.fired_count = state.fired_count.saturating_add(1);
    let (id, label) = slot
        .text
        .split_at_checked(slot.id_len as usize)
        .unwrap_or(("", ""));
    let reason = match rule.condition.op {
        ConditionOp::CrossesUp | ConditionOp::CrossesDown => label.to_string(),
        ConditionOp::Above | ConditionOp::Below => {
            let mut s = String::with_capacity(label.len() + 24);
            s.push_str(label);
            // Writing into a String cannot fail.
            let _ = write!(s, "{}", tick.price);
            s
        }
        ConditionOp::PctChange => {
            let mut s = String::with_capacity(label.len() + 32);
            s.push_str(label);
            push_pct(&mut s, change, rule.condition.window_secs);
            s
        }
    };
    Alert {
        rule_id: id.to_string(),
        symbol_id: tick.symbol_id,
        price: tick.price,
        reference_price: reference,
        fired_at_ms: tick.ts_ms,
        reason,
        state: rule.state,
    }
}

/// `up 5.2% in 300s`: the change with two decimals, trailing zeros trimmed.
fn push_pct(s: &mut String, change: f64, window_secs: u32) {
    s.push_str(if change >= 0.0 { "up " } else { "down " });
    let start = s.len();
    let _ = write!(s, "{:.2}", change.abs());
    if s[start..].contains('.') {
        let trimmed = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(trimmed);
    }
    let _ = write!(s, "% in {window_secs}s");
}

/// The reason of an alert, built from scratch: `BTCUSDT crossed above 70000`,
/// `BTCUSDT is above 70000 at 70123.4`, `BTCUSDT up 5.2% in 300s`. The engine builds the
/// same text from its precomputed labels; tests compare the two.
#[cfg(test)]
pub(crate) fn reason(rule: &Rule, price: f64, change: f64) -> String {
    let s = &rule.symbol;
    let v = rule.condition.value;
    match rule.condition.op {
        ConditionOp::Above => format!("{s} is above {v} at {price}"),
        ConditionOp::Below => format!("{s} is below {v} at {price}"),
        ConditionOp::CrossesUp => format!("{s} crossed above {v}"),
        ConditionOp::CrossesDown => format!("{s} crossed below {v}"),
        ConditionOp::PctChange => {
            let mut out = format!("{s} ");
            push_pct(&mut out, change, rule.condition.window_secs);
            out
        }
    }
}

/// Reject rules the engine could not evaluate meaningfully, naming the rule and field.
fn validate(rule: &Rule) -> Result<(), String> {
    let id = &rule.id;
    if id.is_empty() {
        return Err(format!("rule for symbol {}: `id` is empty", rule.symbol));
    }
    if rule.symbol_id >= MAX_SYMBOL_ID {
        return Err(format!(
            "rule `{id}`: `symbol-id` {} is too large (limit {MAX_SYMBOL_ID})",
            rule.symbol_id
        ));
    }
    let c = &rule.condition;
    if !c.value.is_finite() {
        return Err(format!(
            "rule `{id}`: `condition.value` must be a finite number, got {}",
            c.value
        ));
    }
    if c.op == ConditionOp::PctChange {
        if c.value <= 0.0 {
            return Err(format!(
                "rule `{id}`: `condition.value` of a pct-change rule must be > 0, got {}",
                c.value
            ));
        }
        if c.window_secs == 0 {
            return Err(format!(
                "rule `{id}`: `condition.window-secs` of a pct-change rule must be > 0"
            ));
        }
    }
    if rule.trigger.mode == TriggerMode::Cooldown && rule.trigger.cooldown_secs == 0 {
        return Err(format!(
            "rule `{id}`: `trigger.cooldown-secs` must be > 0 in cooldown mode"
        ));
    }
    Ok(())
}
