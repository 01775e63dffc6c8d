//! A task that calls capabilities as its args say, for the capability tests: `args-json`
//! is `{"ops": [[name, arg, ...], ...]}` and the report's `data-json` has one
//! `{"ok": value}` or `{"err": message}` per op, so a test drives every host call (and
//! every hostile argument) through a real component.
//!
//! Ops: `["kv.get", key]`, `["kv.set", key, text, ttl_ms|null]`, `["kv.set_bytes", key,
//! size]`, `["kv.delete", key]`, `["kv.incr", key, by]`, `["kv.spin", n, key]` (n gets),
//! `["docs.upsert", coll, id, json]`, `["docs.upsert_many", coll, n, json]` (ids `d0`..), `["docs.get", coll, id]`, `["docs.find", coll,
//! filter, limit]`, `["docs.delete", coll, id]`, `["notify.enqueue", id, user, title,
//! data_json, [channels]]`, `["prices.latest", symbol]`, `["prices.recent", symbol, n]`.

use impressox_plugin_sdk::types::{Notification, Priority, TaskReport, TaskRun};
use impressox_plugin_sdk::{Task, docs, export_task, kv, notify, prices};
use serde_json::{Value, json};

struct CapsProbe;

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn op(args: &[Value]) -> Result<Value, String> {
    let name = args.first().and_then(Value::as_str).unwrap_or_default();
    let a = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
    match name {
        "kv.get" => Ok(match kv::get(&s(&a(1)))? {
            Some(v) => json!(String::from_utf8_lossy(&v)),
            None => Value::Null,
        }),
        "kv.set" => {
            let ttl = a(3).as_u64().map(std::time::Duration::from_millis);
            match ttl {
                Some(ttl) => kv::set_with_ttl(&s(&a(1)), s(&a(2)).as_bytes(), ttl)?,
                None => kv::set(&s(&a(1)), s(&a(2)).as_bytes())?,
            }
            Ok(Value::Null)
        }
        "kv.set_bytes" => {
            let size = a(2).as_u64().unwrap_or(0) as usize;
            kv::set(&s(&a(1)), &vec![b'x'; size])?;
            Ok(Value::Null)
        }
        "kv.delete" => Ok(json!(kv::delete(&s(&a(1)))?)),
        "kv.incr" => Ok(json!(kv::incr(&s(&a(1)), a(2).as_i64().unwrap_or(0))?)),
        "kv.spin" => {
            let n = a(1).as_u64().unwrap_or(0);
            let key = s(&a(2));
            for _ in 0..n {
                kv::get(&key)?;
            }
            Ok(json!(n))
        }
        "docs.upsert_many" => {
            let (coll, n, doc) = (s(&a(1)), a(2).as_u64().unwrap_or(0), s(&a(3)));
            for i in 0..n {
                docs::upsert(&coll, &format!("d{i}"), &doc)?;
            }
            Ok(json!(n))
        }
        "docs.upsert" => {
            docs::upsert(&s(&a(1)), &s(&a(2)), &s(&a(3)))?;
            Ok(Value::Null)
        }
        "docs.get" => Ok(match docs::get(&s(&a(1)), &s(&a(2)))? {
            Some(d) => serde_json::from_str(&d).map_err(|e| e.to_string())?,
            None => Value::Null,
        }),
        "docs.find" => {
            let found = docs::find(&s(&a(1)), &s(&a(2)), a(3).as_u64().unwrap_or(0) as u32)?;
            let parsed: Result<Vec<Value>, _> =
                found.iter().map(|d| serde_json::from_str(d)).collect();
            Ok(json!(parsed.map_err(|e| e.to_string())?))
        }
        "docs.delete" => Ok(json!(docs::delete(&s(&a(1)), &s(&a(2)))?)),
        "notify.enqueue" => {
            let n = Notification {
                id: s(&a(1)),
                user_id: s(&a(2)),
                kind: "probe".into(),
                priority: Priority::Normal,
                title: s(&a(3)),
                body: String::new(),
                data_json: s(&a(4)),
                created_at_ms: 0,
            };
            let channels: Vec<String> = a(5)
                .as_array()
                .map(|c| c.iter().map(s).collect())
                .unwrap_or_default();
            let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
            notify::enqueue(&n, &channels)?;
            Ok(Value::Null)
        }
        "prices.latest" => Ok(match prices::latest(&s(&a(1)))? {
            Some(p) => point(&p),
            None => Value::Null,
        }),
        "prices.recent" => {
            let points = prices::recent(&s(&a(1)), a(2).as_u64().unwrap_or(0) as u32)?;
            Ok(json!(points.iter().map(point).collect::<Vec<_>>()))
        }
        other => Err(format!("unknown op {other:?}")),
    }
}

fn point(p: &prices::PricePoint) -> Value {
    json!({"symbol": p.symbol, "price": p.price, "ts_ms": p.ts_ms, "source": p.source,
           "age_ms": p.age_ms, "stale": p.stale})
}

impl Task for CapsProbe {
    const NAME: &'static str = "caps-probe";

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

export_task!(CapsProbe);
