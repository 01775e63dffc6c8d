//! The soak's load: a replay file whose every tick crosses exactly one rule level, the
//! rules that fire on it, and what the file says the alert count must be.
//!
//! Each symbol walks a triangle wave in steps of 1.0 between `base` and `base + LEVELS`,
//! one tick per 100 ms of file time. Crossing rules (`every`) sit at every half level
//! `base + k + 0.5`, one `crosses_up` and one `crosses_down` per level, so each tick after
//! a symbol's very first fires exactly one crossing alert (the file ends one step above
//! `base`, so the jump back to the start of the next pass crosses too). That turns the
//! replay's checkpoint (pass and byte offset of the last committed tick) into an exact
//! expected count that does not come from the engine's own counters. Each rule fires at
//! most once per period (`2 * LEVELS` ticks, 10 s), so no rule fires twice within one
//! second and each firing has its own idempotency key (`rule-<id>-<second>`).
//!
//! Level rules with `cooldown` (and one `once` per symbol) add alerts whose count only
//! the host's rule states know; they are counted in "raised" but not in the crossing check.

use std::fmt::Write as _;
use std::path::Path;

/// Crossing levels per symbol (and the wave's height).
pub const LEVELS: u32 = 50;
/// File time between a symbol's ticks.
pub const STEP_MS: i64 = 100;
/// Wave periods in one pass of the file (a pass is 60 s at speed 1).
const PERIODS_PER_PASS: u32 = 6;
/// Users the rules belong to, round-robin; each has a webhook URL of its own.
pub const USERS: usize = 8;
const T0: i64 = 1_764_300_000_000;
const NAMES: [&str; 8] = [
    "BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT",
];

/// The replay file as written: where each row ends, to map a checkpoint's byte offset
/// back to the ticks before it.
pub struct ReplayFile {
    symbols: usize,
    /// (byte offset just past the row, symbol index), in file order.
    rows: Vec<(usize, usize)>,
}

/// The rule ids and what the file expects of them.
pub struct Rules {
    /// `[[market.rules]]` tables for the market monitor's config.
    pub toml: String,
    /// Ids of the crossing rules (exactly one alert per tick between them).
    pub crossing: Vec<String>,
    /// Every user id the rules name.
    pub users: Vec<String>,
}

pub fn max_symbols() -> usize {
    NAMES.len()
}

fn base(symbol: usize) -> f64 {
    100.0 * (symbol as f64 + 1.0)
}

/// The wave's price at step `j` of a period.
fn price(symbol: usize, j: u32) -> f64 {
    let height = if j <= LEVELS { j } else { 2 * LEVELS - j };
    base(symbol) + f64::from(height)
}

/// Write the replay file (CSV with a header, symbols interleaved per step).
pub fn write_replay(path: &Path, symbols: usize) -> ReplayFile {
    let mut text = String::from("ts_ms,symbol,price,volume\n");
    let mut rows = Vec::new();
    let steps = 2 * LEVELS * PERIODS_PER_PASS;
    for step in 0..steps {
        let ts = T0 + i64::from(step) * STEP_MS;
        for (s, name) in NAMES.iter().enumerate().take(symbols) {
            let p = price(s, step % (2 * LEVELS));
            let _ = writeln!(text, "{ts},{name},{p:.2},1");
            rows.push((text.len(), s));
        }
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ReplayFile { symbols, rows }
}

impl ReplayFile {
    /// Ticks per symbol the replay had sent, by its checkpoint: `pass` whole passes, then
    /// the rows ending at or before `offset`.
    pub fn ticks_at(&self, pass: u64, offset: usize) -> Vec<u64> {
        let per_pass = (self.rows.len() / self.symbols) as u64;
        let mut ticks = vec![pass * per_pass; self.symbols];
        for (end, s) in &self.rows {
            if *end <= offset {
                ticks[*s] += 1;
            }
        }
        ticks
    }

    /// Crossing alerts those ticks must have fired: one per tick after each symbol's first.
    pub fn expected_crossings(&self, pass: u64, offset: usize) -> u64 {
        self.ticks_at(pass, offset)
            .iter()
            .map(|t| t.saturating_sub(1))
            .sum()
    }
}

/// Crossing alerts per second at speed 1 with `symbols` symbols.
pub fn crossings_per_sec(symbols: usize) -> f64 {
    symbols as f64 * 1000.0 / STEP_MS as f64
}

/// The rules: per symbol `LEVELS` up and `LEVELS` down crossings (`every`), two level
/// rules with `cooldown` and one `once`; all to the webhook channel.
pub fn rules(symbols: usize) -> Rules {
    let mut out = Rules {
        toml: String::new(),
        crossing: Vec::new(),
        users: (0..USERS).map(|u| format!("soak-u{u}")).collect(),
    };
    let mut n = 0;
    let mut add = |out: &mut Rules, id: String, symbol: &str, condition: String, trigger: &str| {
        let user = &out.users[n % USERS];
        n += 1;
        let _ = write!(
            out.toml,
            "[[market.rules]]\nid = \"{id}\"\nuser_id = \"{user}\"\nsymbol = \"{symbol}\"\n\
             condition = {condition}\ntrigger = {trigger}\nchannels = [\"webhook\"]\n"
        );
    };
    for (s, name) in NAMES.iter().enumerate().take(symbols) {
        let b = base(s);
        for k in 0..LEVELS {
            let level = b + f64::from(k) + 0.5;
            for (dir, op) in [("up", "crosses_up"), ("dn", "crosses_down")] {
                let id = format!("x-{}-{dir}-{k}", name.to_lowercase());
                add(
                    &mut out,
                    id.clone(),
                    name,
                    format!("{{ op = \"{op}\", value = {level} }}"),
                    "{ mode = \"every\" }",
                );
                out.crossing.push(id);
            }
        }
        let top = b + f64::from(LEVELS) - 8.5;
        add(
            &mut out,
            format!("c-{}-hi", name.to_lowercase()),
            name,
            format!("{{ op = \"above\", value = {top} }}"),
            "{ mode = \"cooldown\", cooldown_secs = 1 }",
        );
        let low = b + 10.5;
        add(
            &mut out,
            format!("c-{}-lo", name.to_lowercase()),
            name,
            format!("{{ op = \"below\", value = {low} }}"),
            "{ mode = \"cooldown\", cooldown_secs = 3 }",
        );
        let peak = b + f64::from(LEVELS) - 0.5;
        add(
            &mut out,
            format!("o-{}-peak", name.to_lowercase()),
            name,
            format!("{{ op = \"above\", value = {peak} }}"),
            "{ mode = \"once\" }",
        );
    }
    out
}
