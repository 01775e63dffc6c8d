//! What a schedule is: `[[schedules]]` entries and `POST /api/v1/schedules` bodies share
//! one shape ([`ScheduleSpec`]), checked into a [`Schedule`] whose errors name the field
//! (`cron: expected 6 fields ...`). `[scheduler]` ([`SchedulerConfig`]) tunes the worker.
//!
//! Durations are written as people write them (`"30s"`, `"5m"`, `"1h30m"`, `"250ms"`)
//! and read by jiff's duration parser, which also takes ISO 8601 (`"PT5M"`).

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::timing::Timing;
use crate::input::{FieldError, valid_key};
use crate::util::{parse_duration_ms, show_ms};

/// The worker's name in `[workers] enabled`.
pub const WORKER: &str = "scheduler";

/// The longest a schedule name may be (it becomes part of store keys and URLs).
pub const MAX_NAME_LEN: usize = 64;
/// The longest `timeout`: a task is a bounded piece of work, not a daemon.
const MAX_TIMEOUT_MS: i64 = 6 * 3600 * 1000;
/// Most `retries` of one occurrence.
const MAX_RETRIES: u32 = 100;
/// The serialized `args` bound, so one schedule cannot fill the store's records.
const MAX_ARGS_BYTES: usize = 64 * 1024;

/// What to do with an occurrence that comes due while a run of the same schedule is in
/// flight (on any host).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Drop it (recorded in the history as `skipped`, reason `overlap`).
    #[default]
    Skip,
    /// Run it at once, beside the one in flight.
    Allow,
    /// Keep one waiting and run it when the one in flight ends; drop any further ones.
    QueueOne,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Allow => "allow",
            Overlap::QueueOne => "queue_one",
        }
    }
}

fn default_tz() -> String {
    "UTC".into()
}
fn default_catch_up() -> String {
    "1m".into()
}
fn default_timeout() -> String {
    "30s".into()
}
fn default_retries() -> u32 {
    2
}
fn default_backoff() -> String {
    "1s".into()
}
fn default_jitter() -> String {
    "0s".into()
}
fn default_true() -> bool {
    true
}

/// One schedule as written: a `[[schedules]]` table, or the JSON of
/// `POST /api/v1/schedules`.
///
/// ```toml
/// [[schedules]]
/// name = "digest"
/// cron = "0 0 8 * * MON-FRI"   # second minute hour day-of-month month day-of-week
/// tz = "Europe/Berlin"
/// plugin = "price-digest"
/// args = { symbols = ["BTCUSDT", "ETHUSDT"] }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// 1–64 letters, digits, `-`, `_`, `.`, `:` or `@`; unique.
    pub name: String,
    /// A cron pattern with seconds: `second minute hour day-of-month month day-of-week`
    /// (`L`, `W`, `#`, names like `MON` and `@daily` as croner reads them), evaluated in
    /// `tz`. Exactly one of `cron` and `every`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// A fixed interval of elapsed time (`"30s"`, `"5m"`), at whole multiples of it since
    /// the Unix epoch (`"5m"` runs at :00, :05, ...), unaffected by daylight saving time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// The IANA time zone `cron` is read in. Default `UTC`.
    #[serde(default = "default_tz")]
    pub tz: String,
    /// The task plugin (by the name it gives itself).
    pub plugin: String,
    /// JSON handed to the task as `args-json` (a TOML table in the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// `skip` (default), `allow` or `queue_one`.
    #[serde(default)]
    pub overlap: Overlap,
    /// How late an occurrence may still start. Occurrences missed while no host ran the
    /// schedule (a restart, an outage) run afterwards, oldest first, when their time is
    /// within this window; older ones are skipped and logged with their times. Default 1m.
    #[serde(default = "default_catch_up")]
    pub catch_up: String,
    /// Deadline of one try of the task. Default 30s.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Further tries of an occurrence after one that failed: the task returned an error,
    /// trapped or timed out, or its host died mid-run (its lease lapsed). Default 2.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The wait before the first retry; it doubles for each further one (at most 10m).
    /// Default 1s.
    #[serde(default = "default_backoff")]
    pub backoff: String,
    /// Start each occurrence up to this much after its time, by an amount fixed per
    /// occurrence (every host computes the same one), to spread load. Default 0s.
    #[serde(default = "default_jitter")]
    pub jitter: String,
    /// `false` pauses the schedule: nothing runs, and what comes due meanwhile is not
    /// caught up later.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// A checked schedule, ready for the worker.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub spec: ScheduleSpec,
    pub timing: Timing,
    pub catch_up_ms: i64,
    pub timeout_ms: u64,
    pub backoff_ms: i64,
    pub jitter_ms: i64,
    /// `args` as the JSON text the task receives.
    pub args_json: String,
}

impl Schedule {
    /// When occurrence `occ_ms` is due: its time plus its share of `jitter`, the same on
    /// every host (a hash of the name and the time, not a random draw).
    pub fn planned_ms(&self, occ_ms: i64) -> i64 {
        if self.jitter_ms <= 0 {
            return occ_ms;
        }
        // FNV-1a: stable across builds and hosts, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.spec.name.bytes().chain(occ_ms.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        occ_ms + (h % (self.jitter_ms as u64 + 1)) as i64
    }

    /// The wait before retry number `retry` (1 for the first): `backoff` doubling,
    /// at most ten minutes.
    pub fn retry_delay_ms(&self, retry: u32) -> i64 {
        let doubled = self
            .backoff_ms
            .saturating_mul(1i64 << retry.saturating_sub(1).min(30));
        doubled.min(10 * 60 * 1000)
    }

    /// The fields that decide when occurrences fall (and whether they do): a change
    /// re-plans the next one from now.
    pub fn timing_fingerprint(&self) -> String {
        format!(
            "cron={:?} every={:?} tz={} jitter={} enabled={}",
            self.spec.cron, self.spec.every, self.spec.tz, self.jitter_ms, self.spec.enabled
        )
    }
}

fn duration_field(field: &str, text: &str, min_ms: i64, max_ms: i64) -> Result<i64, FieldError> {
    let ms = parse_duration_ms(text).ok_or_else(|| {
        FieldError::new(
            field,
            format!("`{text}` is not a duration; write it like \"30s\", \"5m\" or \"1h30m\""),
        )
    })?;
    if ms < min_ms || ms > max_ms {
        return Err(FieldError::new(
            field,
            format!(
                "`{text}` is out of range ({} to {})",
                show_ms(min_ms),
                show_ms(max_ms)
            ),
        ));
    }
    Ok(ms)
}

impl ScheduleSpec {
    /// Check every field; the error names the first one that is wrong.
    pub fn check(&self) -> Result<Schedule, FieldError> {
        if !valid_key(&self.name, MAX_NAME_LEN) {
            return Err(FieldError::new(
                "name",
                format!("1–{MAX_NAME_LEN} letters, digits, '-', '_', '.', ':' or '@'"),
            ));
        }
        if self.plugin.trim().is_empty() {
            return Err(FieldError::new("plugin", "must name a task plugin"));
        }
        let timing = match (&self.cron, &self.every) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "every",
                    "give either `cron` or `every`, not both",
                ));
            }
            (None, None) => {
                return Err(FieldError::new("cron", "give either `cron` or `every`"));
            }
            (Some(pattern), None) => Timing::cron(pattern, &self.tz)?,
            (None, Some(every)) => {
                let ms = duration_field("every", every, 1000, 366 * 24 * 3_600_000)?;
                // The tz is checked even though `every` does not use it: a typo there is
                // still a typo.
                Timing::check_tz(&self.tz)?;
                Timing::every(ms)
            }
        };
        let day = 24 * 3_600_000;
        let catch_up_ms = duration_field("catch_up", &self.catch_up, 1000, 366 * day)?;
        let timeout_ms = duration_field("timeout", &self.timeout, 1, MAX_TIMEOUT_MS)?;
        let backoff_ms = duration_field("backoff", &self.backoff, 0, day)?;
        let jitter_ms = duration_field("jitter", &self.jitter, 0, day)?;
        if self.retries > MAX_RETRIES {
            return Err(FieldError::new("retries", format!("at most {MAX_RETRIES}")));
        }
        let args_json = match &self.args {
            None => "null".to_string(),
            Some(v) => v.to_string(),
        };
        if args_json.len() > MAX_ARGS_BYTES {
            return Err(FieldError::new(
                "args",
                format!(
                    "{} bytes of JSON, over the {MAX_ARGS_BYTES}-byte bound",
                    args_json.len()
                ),
            ));
        }
        Ok(Schedule {
            spec: self.clone(),
            timing,
            catch_up_ms,
            timeout_ms: timeout_ms as u64,
            backoff_ms,
            jitter_ms,
            args_json,
        })
    }
}

/// `[scheduler]`: the worker's tuning (the schedules themselves are `[[schedules]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// How long a host's claim on a running occurrence lasts without renewal (renewed
    /// every third of it while the task runs). A host killed mid-run has its occurrence
    /// tried again by another host this long after its last renewal.
    pub lease_ms: u64,
    /// How often each host re-reads the API-made schedules and looks for run-now
    /// requests made on other hosts.
    pub refresh_ms: u64,
    /// On shutdown, how long runs in flight have to finish; one still running then is
    /// left to its lease, and another host tries it again.
    pub grace_ms: u64,
    /// Plugin calls of tasks on this host at once (threads); a host takes at most 16
    /// times as many tries, the rest waiting in its queue for a thread.
    pub max_concurrent_runs: usize,
    /// Run history kept per schedule: records older than this many days are deleted.
    pub history_days: u64,
    /// ... and at most this many records per schedule (the newest).
    pub history_per_schedule: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            lease_ms: 15_000,
            refresh_ms: 1_000,
            grace_ms: 10_000,
            max_concurrent_runs: 64,
            history_days: 30,
            history_per_schedule: 1_000,
        }
    }
}

impl SchedulerConfig {
    pub fn validate(&self) -> Result<()> {
        if self.lease_ms < 300 {
            bail!("[scheduler] lease_ms must be at least 300");
        }
        for (key, value) in [
            ("refresh_ms", self.refresh_ms),
            ("max_concurrent_runs", self.max_concurrent_runs as u64),
            ("history_days", self.history_days),
            ("history_per_schedule", self.history_per_schedule),
        ] {
            if value == 0 {
                bail!("[scheduler] {key} must be at least 1");
            }
        }
        Ok(())
    }
}

/// Check every `[[schedules]]` entry and refuse a name used twice.
pub fn validate_schedules(specs: &[ScheduleSpec]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for (i, spec) in specs.iter().enumerate() {
        if let Err(e) = spec.check() {
            bail!(
                "[[schedules]] #{} (`{}`) {}: {}",
                i + 1,
                spec.name,
                e.field,
                e.message
            );
        }
        if !seen.insert(spec.name.as_str()) {
            bail!(
                "[[schedules]] #{}: the name `{}` is used twice",
                i + 1,
                spec.name
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> Result<ScheduleSpec, String> {
        let text = format!("name = \"s\"\nplugin = \"echo-task\"\n{extra}");
        toml::from_str(&text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_args_from_toml() {
        let s = spec("every = \"30s\"\nargs = { symbols = [\"BTCUSDT\"], depth = 3 }")
            .unwrap()
            .check()
            .unwrap();
        assert_eq!(s.catch_up_ms, 60_000);
        assert_eq!(s.timeout_ms, 30_000);
        assert_eq!(s.spec.retries, 2);
        assert_eq!(s.spec.overlap, Overlap::Skip);
        let args: Value = serde_json::from_str(&s.args_json).unwrap();
        assert_eq!(
            args,
            serde_json::json!({"symbols": ["BTCUSDT"], "depth": 3})
        );
    }

    #[test]
    fn errors_name_the_field() {
        let field = |extra: &str| spec(extra).unwrap().check().unwrap_err();
        let e = field("cron = \"0 * * * *\"");
        assert_eq!(e.field, "cron");
        assert!(e.message.contains("expected 6 fields"), "{}", e.message);
        assert_eq!(field("").field, "cron");
        assert_eq!(
            field("cron = \"* * * * * *\"\nevery = \"1s\"").field,
            "every"
        );
        assert_eq!(field("every = \"often\"").field, "every");
        assert_eq!(field("every = \"10ms\"").field, "every");
        assert_eq!(field("every = \"1s\"\ntz = \"Mars/Olympus\"").field, "tz");
        assert_eq!(field("every = \"1s\"\ncatch_up = \"x\"").field, "catch_up");
        assert_eq!(field("every = \"1s\"\ntimeout = \"0s\"").field, "timeout");
        assert_eq!(field("every = \"1s\"\nretries = 1000").field, "retries");
        assert_eq!(field("cron = \"0 61 * * * *\"").field, "cron");
        assert!(spec("every = \"1s\"\noverlap = \"sometimes\"").is_err());
    }

    #[test]
    fn jitter_is_the_same_everywhere_and_bounded() {
        let s = spec("every = \"1s\"\njitter = \"500ms\"")
            .unwrap()
            .check()
            .unwrap();
        let t = 1_764_300_000_000;
        assert_eq!(s.planned_ms(t), s.planned_ms(t));
        for i in 0..100 {
            let occ = t + i * 1000;
            assert!((occ..=occ + 500).contains(&s.planned_ms(occ)));
        }
    }

    #[test]
    fn retry_delays_double_up_to_ten_minutes() {
        let s = spec("every = \"1s\"\nbackoff = \"2s\"")
            .unwrap()
            .check()
            .unwrap();
        assert_eq!(s.retry_delay_ms(1), 2000);
        assert_eq!(s.retry_delay_ms(2), 4000);
        assert_eq!(s.retry_delay_ms(3), 8000);
        assert_eq!(s.retry_delay_ms(40), 600_000);
    }

    #[test]
    fn a_name_used_twice_is_refused() {
        let a = spec("every = \"1s\"").unwrap();
        let err = validate_schedules(&[a.clone(), a]).unwrap_err().to_string();
        assert!(err.contains("used twice"), "{err}");
    }
}
