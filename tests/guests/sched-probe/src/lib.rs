//! A task for the scheduler's tests: it counts its runs in `kv` so a test can tell an
//! occurrence run twice, or two runs of one schedule at once, from what the plugin saw.
//!
//! Per run it increments `runs:<schedule>:<scheduled-at-ms>` (runs of one occurrence),
//! `runs:<schedule>` (all runs) and `active:<schedule>` for the time it runs; when
//! `active` is above 1 it increments `overlaps:<schedule>` (two tries in parallel).
//! `args-json` may hold `{"sleep_ms": n}` (busy until then: a slow task, or one a kill
//! catches mid-run) and `{"fail_below_attempt": n}` (fail tries numbered below `n`).

use impressox_plugin_sdk::types::{TaskReport, TaskRun};
use impressox_plugin_sdk::{Task, export_task, kv};
use serde_json::Value;

struct SchedProbe;

impl Task for SchedProbe {
    const NAME: &'static str = "sched-probe";

    fn run(run: TaskRun) -> Result<TaskReport, String> {
        let args: Value = serde_json::from_str(&run.args_json).unwrap_or(Value::Null);
        let s = &run.schedule;
        kv::incr(&format!("runs:{s}:{}", run.scheduled_at_ms), 1)?;
        kv::incr(&format!("runs:{s}"), 1)?;
        let active = kv::incr(&format!("active:{s}"), 1)?;
        if active > 1 {
            kv::incr(&format!("overlaps:{s}"), 1)?;
        }
        if let Some(ms) = args.get("sleep_ms").and_then(Value::as_u64) {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        kv::incr(&format!("active:{s}"), -1)?;
        let fail_below = args
            .get("fail_below_attempt")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if u64::from(run.attempt) < fail_below {
            return Err(format!("failing attempt {} on purpose", run.attempt));
        }
        Ok(TaskReport {
            summary: format!(
                "ran `{s}` for {} (attempt {})",
                run.scheduled_at_ms, run.attempt
            ),
            data_json: "{}".into(),
        })
    }
}

export_task!(SchedProbe);
