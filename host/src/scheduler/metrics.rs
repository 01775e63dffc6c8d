//! The scheduler's figures for `/metrics`, as `impressox_scheduler_*`: tries by schedule
//! and outcome, start lag (actual start − the occurrence's time) and duration per
//! schedule, skipped occurrences by reason, caught-up ones, lost leases.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::runtime::metrics::LatencyHistogram;

/// Histogram bounds, in seconds.
const BUCKETS_SECS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Default)]
struct PerSchedule {
    tries: BTreeMap<&'static str, u64>,
    skipped: BTreeMap<&'static str, u64>,
    caught_up: u64,
    lag: Arc<LatencyHistogram>,
    duration: Arc<LatencyHistogram>,
}

/// Counters shared by the worker and `/metrics`.
#[derive(Default)]
pub struct SchedulerStats {
    by_schedule: Mutex<BTreeMap<String, PerSchedule>>,
}

impl SchedulerStats {
    fn with<R>(&self, schedule: &str, f: impl FnOnce(&mut PerSchedule) -> R) -> R {
        let mut map = self.by_schedule.lock();
        if !map.contains_key(schedule) {
            map.insert(schedule.to_string(), PerSchedule::default());
        }
        f(map.get_mut(schedule).expect("inserted above"))
    }

    /// A try ended (`ok`, `error`, `timeout`, `lost`).
    pub fn tried(&self, schedule: &str, outcome: &'static str) {
        self.with(schedule, |s| *s.tries.entry(outcome).or_default() += 1);
    }

    /// A try started `lag_ms` after its occurrence's time.
    pub fn started(&self, schedule: &str, lag_ms: i64) {
        let h = self.with(schedule, |s| s.lag.clone());
        h.record((lag_ms.max(0) as u64).saturating_mul(1_000_000));
    }

    /// A try took `ms`.
    pub fn duration(&self, schedule: &str, ms: i64) {
        let h = self.with(schedule, |s| s.duration.clone());
        h.record((ms.max(0) as u64).saturating_mul(1_000_000));
    }

    pub fn skipped(&self, schedule: &str, reason: &'static str, n: u64) {
        self.with(schedule, |s| *s.skipped.entry(reason).or_default() += n);
    }

    pub fn caught_up(&self, schedule: &str, n: u64) {
        self.with(schedule, |s| s.caught_up += n);
    }

    /// Prometheus text.
    pub fn render(&self, out: &mut String) {
        let map = self.by_schedule.lock();
        let _ = writeln!(
            out,
            "# HELP impressox_scheduler_runs_total Tries of scheduled tasks by schedule and outcome (ok, error, timeout, lost)."
        );
        let _ = writeln!(out, "# TYPE impressox_scheduler_runs_total counter");
        for (name, s) in map.iter() {
            for (outcome, n) in &s.tries {
                let _ = writeln!(
                    out,
                    "impressox_scheduler_runs_total{{schedule=\"{name}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP impressox_scheduler_skipped_total Occurrences not run, by reason (catch_up_window, overlap, backlog)."
        );
        let _ = writeln!(out, "# TYPE impressox_scheduler_skipped_total counter");
        for (name, s) in map.iter() {
            for (reason, n) in &s.skipped {
                let _ = writeln!(
                    out,
                    "impressox_scheduler_skipped_total{{schedule=\"{name}\",reason=\"{reason}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP impressox_scheduler_caught_up_total Missed occurrences run late, inside the catch-up window."
        );
        let _ = writeln!(out, "# TYPE impressox_scheduler_caught_up_total counter");
        for (name, s) in map.iter() {
            let _ = writeln!(
                out,
                "impressox_scheduler_caught_up_total{{schedule=\"{name}\"}} {}",
                s.caught_up
            );
        }
        for (metric, help, pick) in [
            (
                "impressox_scheduler_start_lag_seconds",
                "Actual start of a try minus its occurrence's time (jitter included).",
                (|s: &PerSchedule| s.lag.clone()) as fn(&PerSchedule) -> Arc<LatencyHistogram>,
            ),
            (
                "impressox_scheduler_run_duration_seconds",
                "How long a try of the task took.",
                |s: &PerSchedule| s.duration.clone(),
            ),
        ] {
            let _ = writeln!(out, "# HELP {metric} {help}");
            let _ = writeln!(out, "# TYPE {metric} histogram");
            for (name, s) in map.iter() {
                let h = pick(s);
                for (bound, count) in BUCKETS_SECS.iter().zip(h.cumulative_at(BUCKETS_SECS)) {
                    let _ = writeln!(
                        out,
                        "{metric}_bucket{{schedule=\"{name}\",le=\"{bound}\"}} {count}"
                    );
                }
                let _ = writeln!(
                    out,
                    "{metric}_bucket{{schedule=\"{name}\",le=\"+Inf\"}} {}",
                    h.count()
                );
                let _ = writeln!(
                    out,
                    "{metric}_sum{{schedule=\"{name}\"}} {}",
                    h.sum_ns() as f64 / 1e9
                );
                let _ = writeln!(out, "{metric}_count{{schedule=\"{name}\"}} {}", h.count());
            }
        }
    }
}
