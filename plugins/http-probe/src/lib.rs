//! `http-probe`: a task that fetches a JSON URL through `wasi:http`, takes one field and
//! keeps it in `kv`.
//!
//! What to fetch comes from the plugin's settings (`[plugins.settings.http-probe] url`,
//! `field`, optional `key`), and a schedule's `args-json` (`{"url": ..., "field": ...}`)
//! overrides any. `field` is a JSON pointer (`/bitcoin/usd`; empty: the whole document).
//! The value is stored in the plugin's `kv` under `key` (by default the field, or
//! `document`), and the run reports it with the value the previous run stored there, in
//! `data-json` as `{"url", "status", "field", "key", "value", "previous"}`; a non-2xx
//! status, a body that is not JSON or a missing field fails the run, naming which, and
//! stores nothing.
//!
//! It needs `[plugins.grants.http-probe] http = ["<the URL's host>"]` and `kv = true`.

use impressox_plugin_sdk::types::{TaskReport, TaskRun};
use impressox_plugin_sdk::{Task, export_task, http, kv};
use serde_json::Value;

/// The plugin.
pub struct HttpProbe;

impl Task for HttpProbe {
    const NAME: &'static str = "http-probe";
    const DESCRIPTION: &'static str = "fetches a JSON URL over wasi:http and reports one field";

    fn run(run: TaskRun) -> Result<TaskReport, String> {
        let target = Target::from(&run.args_json, impressox_plugin_sdk::config::get)?;
        let response = http::get(&target.url).map_err(|e| format!("GET {}: {e}", target.url))?;
        let value = match field_of(&target, response.status, &response.body) {
            Ok(value) => value,
            Err(e) => {
                impressox_plugin_sdk::log::warn(&e);
                return Err(e);
            }
        };
        let previous = kv::get_string(&target.key)?.and_then(|p| serde_json::from_str(&p).ok());
        kv::set(&target.key, value.to_string().as_bytes())?;
        let report = report(&target, response.status, &value, previous.as_ref());
        impressox_plugin_sdk::log::info(&report.summary);
        Ok(report)
    }
}

export_task!(HttpProbe);

/// What to fetch and which field to take.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub url: String,
    pub field: String,
    /// The `kv` key the value is kept under.
    pub key: String,
}

impl Target {
    /// From the run's `args-json`, falling back to the settings read through `setting`.
    pub fn from(
        args_json: &str,
        setting: impl Fn(&str) -> Option<String>,
    ) -> Result<Target, String> {
        let args: Value = if args_json.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(args_json)
                .map_err(|e| format!("args-json is not valid JSON: {e}"))?
        };
        let pick = |key: &str| -> Result<String, String> {
            match args.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(format!("args-json `{key}` must be a string, not {other}")),
                None => setting(key).ok_or_else(|| {
                    format!(
                        "no `{key}`: set [plugins.settings.http-probe] {key}, or pass it in the \
                         schedule's args"
                    )
                }),
            }
        };
        let url = pick("url")?;
        let field = pick("field")?;
        // An empty field takes the whole document; its key needs a name all the same.
        let key = pick("key").unwrap_or_else(|_| match field.as_str() {
            "" => "document".to_string(),
            f => f.to_string(),
        });
        Ok(Target { url, field, key })
    }
}

/// The field of a fetch that answered `status` with `body` (pure, tested natively).
pub fn field_of(target: &Target, status: u16, body: &[u8]) -> Result<Value, String> {
    let url = &target.url;
    if !(200..300).contains(&status) {
        return Err(format!("GET {url} answered {status}"));
    }
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| format!("GET {url}: the body is not JSON: {e}"))?;
    let pointer = if target.field.starts_with('/') || target.field.is_empty() {
        target.field.clone()
    } else {
        format!("/{}", target.field)
    };
    json.pointer(&pointer)
        .cloned()
        .ok_or_else(|| format!("GET {url}: the JSON has no field `{}`", target.field))
}

/// The run's report: the value fetched and the one the previous run kept.
pub fn report(target: &Target, status: u16, value: &Value, previous: Option<&Value>) -> TaskReport {
    let url = &target.url;
    let was = match previous {
        Some(p) => format!(", was {p}"),
        None => String::new(),
    };
    TaskReport {
        summary: format!("http-probe: {} = {value}{was} (from {url})", target.field),
        data_json: serde_json::json!({
            "url": url,
            "status": status,
            "field": target.field,
            "key": target.key,
            "value": value,
            "previous": previous,
        })
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            url: "https://x.test/p".into(),
            field: "/bitcoin/usd".into(),
            key: "/bitcoin/usd".into(),
        }
    }

    #[test]
    fn args_override_settings() {
        let settings = |k: &str| Some(format!("setting-{k}"));
        let t = Target::from(r#"{"url": "https://a.test/"}"#, settings).unwrap();
        assert_eq!(t.url, "https://a.test/");
        assert_eq!(t.field, "setting-field");
        assert_eq!(t.key, "setting-key");
        let t = Target::from(r#"{"url": "u", "field": "/f"}"#, |_| None).unwrap();
        assert_eq!(t.key, "/f", "the key defaults to the field");
        let t = Target::from(r#"{"url": "u", "field": ""}"#, |_| None).unwrap();
        assert_eq!(t.key, "document");
        let e = Target::from("", |_| None).unwrap_err();
        assert!(e.contains("[plugins.settings.http-probe] url"), "{e}");
        assert!(Target::from(r#"{"url": 3}"#, settings).is_err());
    }

    #[test]
    fn the_field_is_reported() {
        let v = field_of(&target(), 200, br#"{"bitcoin":{"usd":97000.5}}"#).unwrap();
        assert_eq!(v, serde_json::json!(97000.5));
        let r = report(&target(), 200, &v, Some(&serde_json::json!(96000)));
        let data: Value = serde_json::from_str(&r.data_json).unwrap();
        assert_eq!(data["value"], serde_json::json!(97000.5));
        assert_eq!(data["previous"], serde_json::json!(96000));
        assert_eq!(data["status"], 200);
        assert!(r.summary.contains("was 96000"), "{}", r.summary);
        let plain = Target {
            field: "price".into(),
            ..target()
        };
        assert!(field_of(&plain, 200, br#"{"price": 1}"#).is_ok());
    }

    #[test]
    fn bad_answers_say_what_was_wrong() {
        assert!(
            field_of(&target(), 302, b"")
                .unwrap_err()
                .contains("answered 302")
        );
        assert!(
            field_of(&target(), 200, b"<html>")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            field_of(&target(), 200, b"{}")
                .unwrap_err()
                .contains("no field `/bitcoin/usd`")
        );
    }
}
