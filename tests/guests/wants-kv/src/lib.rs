//! A task that imports the `kv` capability, for the grant tests.

use impressox_plugin_sdk::types::{TaskReport, TaskRun};
use impressox_plugin_sdk::{Task, export_task};

struct WantsKv;

impl Task for WantsKv {
    const NAME: &'static str = "wants-kv";

    fn run(_run: TaskRun) -> Result<TaskReport, String> {
        let seen = impressox_plugin_sdk::kv::get("seen")?;
        Ok(TaskReport {
            summary: format!("seen: {}", seen.is_some()),
            data_json: "{}".into(),
        })
    }
}

export_task!(WantsKv);
