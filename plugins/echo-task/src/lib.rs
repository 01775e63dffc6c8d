//! `echo-task`: an example task. It logs its run and reports it back: the summary names the
//! schedule and the attempt, and `data-json` is the schedule's `args-json` parsed and
//! serialized again (so a malformed `args` shows up as a failed run). An empty `args-json`
//! counts as `null`.
//!
//! It uses only `log`, the interface every plugin gets, so it needs no grants: it never
//! touches `kv`, `docs`, `notify` or `prices` (the task world offers them, but a component
//! imports only what its code calls).

use impressox_plugin_sdk::types::{TaskReport, TaskRun};
use impressox_plugin_sdk::{Task, export_task};

/// The plugin.
pub struct EchoTask;

impl Task for EchoTask {
    const NAME: &'static str = "echo-task";
    const DESCRIPTION: &'static str = "logs its run and echoes its JSON args";

    fn run(run: TaskRun) -> Result<TaskReport, String> {
        let report = report(&run);
        match &report {
            Ok(r) => impressox_plugin_sdk::log::info(&r.summary),
            Err(e) => impressox_plugin_sdk::log::warn(e),
        }
        report
    }
}

export_task!(EchoTask);

/// The report of a run (pure, so it can be tested natively, where host imports are absent).
pub fn report(run: &TaskRun) -> Result<TaskReport, String> {
    let args = run.args_json.trim();
    let args: serde_json::Value = if args.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(args).map_err(|e| {
            format!(
                "schedule `{}` (attempt {}): args-json is not valid JSON: {e}",
                run.schedule, run.attempt
            )
        })?
    };
    Ok(TaskReport {
        summary: format!(
            "echo-task ran for schedule `{}`, attempt {}, scheduled at {} ms",
            run.schedule, run.attempt, run.scheduled_at_ms
        ),
        data_json: args.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &str) -> TaskRun {
        TaskRun {
            schedule: "nightly".into(),
            scheduled_at_ms: 1_764_300_000_000,
            attempt: 2,
            args_json: args.into(),
        }
    }

    #[test]
    fn echoes_args() {
        let r = report(&run(r#"{ "symbols": ["BTCUSDT"], "depth": 3 }"#)).expect("report");
        assert!(
            r.summary.contains("`nightly`") && r.summary.contains("attempt 2"),
            "{}",
            r.summary
        );
        // Compared as JSON: key order depends on serde_json's `preserve_order`, which
        // another crate in the workspace may switch on.
        let data: serde_json::Value = serde_json::from_str(&r.data_json).expect("json");
        assert_eq!(
            data,
            serde_json::json!({"depth": 3, "symbols": ["BTCUSDT"]})
        );
        assert_eq!(
            report(&run("[1, 2.5, null]")).expect("report").data_json,
            "[1,2.5,null]"
        );
        assert_eq!(report(&run("  ")).expect("report").data_json, "null");
    }

    #[test]
    fn invalid_args_are_an_error() {
        let e = report(&run("{\"a\": ")).expect_err("invalid JSON");
        assert!(
            e.contains("args-json is not valid JSON") && e.contains("nightly"),
            "{e}"
        );
        assert!(report(&run("{} {}")).is_err());
    }
}
