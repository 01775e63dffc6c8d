//! Alert rules: the JSON users send (SPEC §7), its validation, the stored record and its
//! translation into the WIT `rule` a rule-processor plugin evaluates.

use serde::{Deserialize, Serialize};

use crate::bindings::types as wit;
use crate::util::{now_ms, parse_rfc3339_ms, rfc3339_ms};

/// Channels a rule may name.
pub const CHANNELS: &[&str] = &[
    "telegram", "email", "webhook", "console", "webpush", "discord", "slack",
];

pub use crate::input::FieldError;
use crate::input::valid_key;

fn bad(field: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(field, message)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Above,
    Below,
    CrossesUp,
    CrossesDown,
    PctChange,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Once,
    Every,
    Cooldown,
}

/// `condition`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub op: Op,
    /// A price level, or for `pct_change` a percentage.
    pub value: f64,
    /// `pct_change` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// `pct_change` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u32>,
}

/// `trigger`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub mode: Mode,
    /// `cooldown` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_secs: Option<u32>,
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger {
            mode: Mode::Once,
            cooldown_secs: None,
        }
    }
}

/// The body of `POST /api/v1/rules` (and a `[[market.rules]]` entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Optional on create (generated when absent); required for seeded rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub user_id: String,
    pub symbol: String,
    pub condition: Condition,
    #[serde(default)]
    pub trigger: Trigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An exchange pair as rules name it: 2-24 upper-case letters and digits (`BTCUSDT`).
pub fn valid_symbol(sym: &str) -> bool {
    (2..=24).contains(&sym.len())
        && sym
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl RuleSpec {
    /// Normalise (upper-case symbol) and validate. `creating`: an `expires_at` in the past
    /// is refused (a patch may leave an old one in place).
    pub fn validate(&self, creating: bool) -> Result<(), FieldError> {
        if let Some(id) = &self.id
            && !valid_key(id, 128)
        {
            return Err(bad(
                "id",
                "1-128 characters of letters, digits and - _ . : @",
            ));
        }
        if !valid_key(&self.user_id, 128) {
            return Err(bad(
                "user_id",
                "1-128 characters of letters, digits and - _ . : @",
            ));
        }
        let sym = &self.symbol;
        if !valid_symbol(sym) {
            return Err(bad(
                "symbol",
                format!("{sym:?} is not an upper-case exchange pair such as BTCUSDT"),
            ));
        }
        let c = &self.condition;
        if !c.value.is_finite() {
            return Err(bad("condition.value", "must be a finite number"));
        }
        if c.op == Op::PctChange {
            if c.value == 0.0 {
                return Err(bad("condition.value", "a percentage other than 0"));
            }
            match c.window_secs {
                Some(w) if (1..=7 * 86_400).contains(&w) => {}
                Some(_) => {
                    return Err(bad("condition.window_secs", "between 1 and 604800 seconds"));
                }
                None => {
                    return Err(bad("condition.window_secs", "required for pct_change"));
                }
            }
        } else {
            if c.value <= 0.0 {
                return Err(bad("condition.value", "a price level must be > 0"));
            }
            if c.direction.is_some() {
                return Err(bad("condition.direction", "only for pct_change"));
            }
            if c.window_secs.is_some() {
                return Err(bad("condition.window_secs", "only for pct_change"));
            }
        }
        match (self.trigger.mode, self.trigger.cooldown_secs) {
            (Mode::Cooldown, None | Some(0)) => {
                return Err(bad(
                    "trigger.cooldown_secs",
                    "required (> 0) for mode cooldown",
                ));
            }
            (Mode::Cooldown, Some(_)) | (_, None) => {}
            (_, Some(_)) => return Err(bad("trigger.cooldown_secs", "only for mode cooldown")),
        }
        if let Some(at) = &self.expires_at {
            let Some(ms) = parse_rfc3339_ms(at) else {
                return Err(bad(
                    "expires_at",
                    format!("{at:?} is not an RFC 3339 time such as 2026-12-31T00:00:00Z"),
                ));
            };
            if creating && ms <= now_ms() {
                return Err(bad("expires_at", "is in the past"));
            }
        }
        if let Some(chs) = &self.channels {
            for (i, ch) in chs.iter().enumerate() {
                if !CHANNELS.contains(&ch.as_str()) {
                    return Err(bad(
                        &format!("channels[{i}]"),
                        format!("unknown channel {ch:?}; one of {}", CHANNELS.join(", ")),
                    ));
                }
            }
        }
        if let Some(p) = &self.processor
            && !valid_key(p, 64)
        {
            return Err(bad("processor", "a plugin name"));
        }
        if self.note.as_ref().is_some_and(|n| n.len() > 2000) {
            return Err(bad("note", "at most 2000 bytes"));
        }
        Ok(())
    }
}

/// The firing state a rule processor hands back with every alert.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    pub armed: bool,
    pub last_fired_ms: Option<i64>,
    pub fired_count: u32,
}

impl Default for Firing {
    fn default() -> Self {
        Firing {
            armed: true,
            last_fired_ms: None,
            fired_count: 0,
        }
    }
}

/// A rule as stored: the spec plus identity and firing state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleRecord {
    pub id: String,
    pub user_id: String,
    pub symbol: String,
    pub condition: Condition,
    pub trigger: Trigger,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// Explicit processor, or `None` for `[market] default_processor`.
    #[serde(default)]
    pub processor: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    pub created_at: String,
    /// False after `PATCH {"enabled": false}`.
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub firing: Firing,
}

fn yes() -> bool {
    true
}

/// A rule's state as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleState {
    Active,
    Fired,
    Expired,
    Disabled,
    WaitingForProcessor,
    /// Its processor instance failed (e.g. ran out of memory loading its rules) and is
    /// being retried; the API shows the error.
    ProcessorFailing,
}

impl RuleRecord {
    /// A new record from a validated spec.
    pub fn create(spec: RuleSpec) -> RuleRecord {
        RuleRecord {
            id: spec.id.unwrap_or_else(new_rule_id),
            user_id: spec.user_id,
            symbol: spec.symbol,
            condition: spec.condition,
            trigger: spec.trigger,
            expires_at: spec.expires_at,
            channels: spec.channels,
            processor: spec.processor,
            note: spec.note,
            created_at: rfc3339_ms(now_ms()),
            enabled: true,
            firing: Firing::default(),
        }
    }

    /// The spec part, for patching.
    pub fn spec(&self) -> RuleSpec {
        RuleSpec {
            id: Some(self.id.clone()),
            user_id: self.user_id.clone(),
            symbol: self.symbol.clone(),
            condition: self.condition.clone(),
            trigger: self.trigger.clone(),
            expires_at: self.expires_at.clone(),
            channels: self.channels.clone(),
            processor: self.processor.clone(),
            note: self.note.clone(),
        }
    }

    /// The processor that evaluates this rule.
    pub fn processor_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.processor.as_deref().unwrap_or(default)
    }

    pub fn expires_at_ms(&self) -> Option<i64> {
        self.expires_at.as_deref().and_then(parse_rfc3339_ms)
    }

    /// Whether the processor should still see this rule.
    pub fn is_live(&self) -> bool {
        self.enabled && !(self.trigger.mode == Mode::Once && self.firing.fired_count > 0)
    }

    /// The reported state; `processor_loaded` says whether its plugin serves.
    pub fn state(&self, processor_loaded: bool, now: i64) -> RuleState {
        if !self.enabled {
            RuleState::Disabled
        } else if self.trigger.mode == Mode::Once && self.firing.fired_count > 0 {
            RuleState::Fired
        } else if self.expires_at_ms().is_some_and(|at| at <= now) {
            RuleState::Expired
        } else if !processor_loaded {
            RuleState::WaitingForProcessor
        } else {
            RuleState::Active
        }
    }

    /// The WIT rule for a processor, with the host's dense symbol id.
    pub fn to_wit(&self, symbol_id: u32) -> wit::Rule {
        let c = &self.condition;
        wit::Rule {
            id: self.id.clone(),
            symbol: self.symbol.clone(),
            symbol_id,
            condition: wit::Condition {
                op: match c.op {
                    Op::Above => wit::ConditionOp::Above,
                    Op::Below => wit::ConditionOp::Below,
                    Op::CrossesUp => wit::ConditionOp::CrossesUp,
                    Op::CrossesDown => wit::ConditionOp::CrossesDown,
                    Op::PctChange => wit::ConditionOp::PctChange,
                },
                value: c.value,
                direction: match c.direction.unwrap_or(Direction::Any) {
                    Direction::Up => wit::Direction::Up,
                    Direction::Down => wit::Direction::Down,
                    Direction::Any => wit::Direction::Any,
                },
                window_secs: c.window_secs.unwrap_or(0),
            },
            trigger: wit::Trigger {
                mode: match self.trigger.mode {
                    Mode::Once => wit::TriggerMode::Once,
                    Mode::Every => wit::TriggerMode::Every,
                    Mode::Cooldown => wit::TriggerMode::Cooldown,
                },
                cooldown_secs: self.trigger.cooldown_secs.unwrap_or(0),
            },
            expires_at_ms: self.expires_at_ms(),
            state: wit::RuleState {
                armed: self.firing.armed,
                last_fired_ms: self.firing.last_fired_ms,
                fired_count: self.firing.fired_count,
            },
        }
    }

    /// Title of the notification for a firing, e.g. `BTCUSDT above 70000`.
    pub fn title(&self) -> String {
        let c = &self.condition;
        let v = fmt_num(c.value);
        match c.op {
            Op::Above => format!("{} above {v}", self.symbol),
            Op::Below => format!("{} below {v}", self.symbol),
            Op::CrossesUp => format!("{} crossed up through {v}", self.symbol),
            Op::CrossesDown => format!("{} crossed down through {v}", self.symbol),
            Op::PctChange => format!(
                "{} moved {v}% in {}s",
                self.symbol,
                c.window_secs.unwrap_or(0)
            ),
        }
    }
}

/// A number without a trailing `.0` for whole values.
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// `r_` and 16 hex digits.
pub fn new_rule_id() -> String {
    format!("r_{:016x}", fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> RuleSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_spec_example_is_valid() {
        let s = spec(serde_json::json!({"user_id": "u1", "symbol": "BTCUSDT",
            "condition": {"op": "above", "value": 70000},
            "trigger": {"mode": "once"},
            "expires_at": "2099-12-31T00:00:00Z", "channels": ["telegram"],
            "processor": "threshold", "note": "ATH watch"}));
        s.validate(true).unwrap();
        assert_eq!(RuleRecord::create(s).title(), "BTCUSDT above 70000");
    }

    #[test]
    fn errors_name_the_field() {
        let base = serde_json::json!({"user_id": "u1", "symbol": "BTCUSDT",
            "condition": {"op": "above", "value": 70000}});
        // Each case replaces one top-level key of `base`.
        let cases = [
            ("symbol", serde_json::json!("btc usdt"), "symbol"),
            (
                "condition",
                serde_json::json!({"op": "above", "value": -1}),
                "condition.value",
            ),
            ("expires_at", serde_json::json!("tomorrow"), "expires_at"),
            (
                "expires_at",
                serde_json::json!("2001-01-01T00:00:00Z"),
                "expires_at",
            ),
            ("channels", serde_json::json!(["pager"]), "channels[0]"),
            (
                "trigger",
                serde_json::json!({"mode": "cooldown"}),
                "trigger.cooldown_secs",
            ),
            (
                "condition",
                serde_json::json!({"op": "pct_change", "value": 2}),
                "condition.window_secs",
            ),
            (
                "condition",
                serde_json::json!({"op": "above", "value": 1, "window_secs": 5}),
                "condition.window_secs",
            ),
        ];
        for (key, value, field) in cases {
            let mut j = base.clone();
            j.as_object_mut().unwrap().insert(key.into(), value);
            let err = spec(j).validate(true).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn once_rules_that_fired_are_no_longer_live() {
        let mut r = RuleRecord::create(spec(
            serde_json::json!({"user_id": "u", "symbol": "ETHUSDT",
            "condition": {"op": "crosses_down", "value": 3000}}),
        ));
        assert!(r.is_live());
        assert_eq!(r.state(true, 0), RuleState::Active);
        assert_eq!(r.state(false, 0), RuleState::WaitingForProcessor);
        r.firing.fired_count = 1;
        assert!(!r.is_live());
        assert_eq!(r.state(true, 0), RuleState::Fired);
    }
}
