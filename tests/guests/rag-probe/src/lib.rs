//! A task that calls the `rag` capability as its args say, for the capability's tests:
//! `args-json` is `{"ops": [[name, arg, ...], ...]}` and the report's `data-json` has one
//! `{"ok": value}` or `{"err": message}` per op. (A guest of its own: `caps-probe` imports
//! every other capability, and a component importing `rag` needs the grant to load.)
//!
//! Ops: `["rag.upsert", coll, id, text, media_type, {metadata}, time_ms|null]` →
//! `{"chunks", "embedded"}`, `["rag.query", request]` (an object, sent as JSON text) →
//! the answer parsed, `["rag.query_raw", text]` (sent as is), `["rag.delete", coll, id]`.

use impressox_plugin_sdk::types::{TaskReport, TaskRun};
use impressox_plugin_sdk::{Task, export_task, rag};
use serde_json::{Value, json};

struct RagProbe;

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn op(args: &[Value]) -> Result<Value, String> {
    let name = args.first().and_then(Value::as_str).unwrap_or_default();
    let a = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
    match name {
        "rag.upsert" => {
            let mut doc = rag::document(&s(&a(2)), &s(&a(3)), &s(&a(4)));
            if let Some(meta) = a(5).as_object() {
                doc.metadata = meta.iter().map(|(k, v)| (k.clone(), s(v))).collect();
            }
            doc.time_ms = a(6).as_i64();
            let out = rag::upsert(&s(&a(1)), &doc)?;
            Ok(json!({"chunks": out.chunks, "embedded": out.embedded}))
        }
        "rag.query" => {
            let answer = rag::query(&a(1).to_string())?;
            serde_json::from_str(&answer).map_err(|e| format!("the answer is not JSON: {e}"))
        }
        "rag.query_raw" => Ok(json!(rag::query(&s(&a(1)))?)),
        "rag.delete" => Ok(json!(rag::delete(&s(&a(1)), &s(&a(2)))?)),
        other => Err(format!("unknown op {other:?}")),
    }
}

impl Task for RagProbe {
    const NAME: &'static str = "rag-probe";

    fn run(run: TaskRun) -> Result<TaskReport, String> {
        let args: Value = serde_json::from_str(&run.args_json).map_err(|e| e.to_string())?;
        let ops = args["ops"].as_array().cloned().unwrap_or_default();
        let results: Vec<Value> = ops
            .iter()
            .map(
                |o| match op(o.as_array().map(Vec::as_slice).unwrap_or(&[])) {
                    Ok(v) => json!({"ok": v}),
                    Err(e) => json!({"err": e}),
                },
            )
            .collect();
        Ok(TaskReport {
            summary: format!("{} ops", results.len()),
            data_json: Value::Array(results).to_string(),
        })
    }
}

export_task!(RagProbe);
