//! `http-probe`: a task that fetches a JSON URL through `wasi:http` and reports one field.
//!
//! What to fetch comes from the plugin's settings (`[plugins.settings.http-probe] url`,
//! `field`), and a schedule's `args-json` (`{"url": ..., "field": ...}`) overrides either.
//! `field` is a JSON pointer (`/bitcoin/usd`). The run logs the value and reports it in
//! `data-json` as `{"url", "status", "field", "value"}`; a non-2xx status, a body that is
//! not JSON or a missing field fails the run, naming which.
//!
//! It needs `[plugins.grants.http-probe] http = ["<the URL's host>"]`. (Storing the value
//! in `kv` waits for the `kv` capability; until then the report carries it.)

use impressox_plugin_sdk::types::{TaskReport, TaskRun};
use impressox_plugin_sdk::{Task, export_task, http};
use serde_json::Value;

/// The plugin.
pub struct HttpProbe;

impl Task for HttpProbe {
    const NAME: &'static str = "http-probe";
    const DESCRIPTION: &'static str = "fetches a JSON URL over wasi:http and reports one field";

    fn run(run: TaskRun) -> Result<TaskReport, String> {
        let target = Target::from(&run.args_json, impressox_plugin_sdk::config::get)?;
        let response = http::get(&target.url).map_err(|e| format!("GET {}: {e}", target.url))?;
        let report = report(&target, response.status, &response.body);
        match &report {
            Ok(r) => impressox_plugin_sdk::log::info(&r.summary),
            Err(e) => impressox_plugin_sdk::log::warn(e),
        }
        report
    }
}

export_task!(HttpProbe);

/// What to fetch and which field to take.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub url: String,
    pub field: String,
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
        Ok(Target {
            url: pick("url")?,
            field: pick("field")?,
        })
    }
}

/// The report of a fetch that answered `status` with `body` (pure, tested natively).
pub fn report(target: &Target, status: u16, body: &[u8]) -> Result<TaskReport, String> {
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
    let value = json
        .pointer(&pointer)
        .ok_or_else(|| format!("GET {url}: the JSON has no field `{}`", target.field))?;
    Ok(TaskReport {
        summary: format!("http-probe: {} = {value} (from {url})", target.field),
        data_json: serde_json::json!({
            "url": url,
            "status": status,
            "field": target.field,
            "value": value,
        })
        .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            url: "https://x.test/p".into(),
            field: "/bitcoin/usd".into(),
        }
    }

    #[test]
    fn args_override_settings() {
        let settings = |k: &str| Some(format!("setting-{k}"));
        let t = Target::from(r#"{"url": "https://a.test/"}"#, settings).unwrap();
        assert_eq!(t.url, "https://a.test/");
        assert_eq!(t.field, "setting-field");
        let e = Target::from("", |_| None).unwrap_err();
        assert!(e.contains("[plugins.settings.http-probe] url"), "{e}");
        assert!(Target::from(r#"{"url": 3}"#, settings).is_err());
    }

    #[test]
    fn the_field_is_reported() {
        let r = report(&target(), 200, br#"{"bitcoin":{"usd":97000.5}}"#).unwrap();
        let data: Value = serde_json::from_str(&r.data_json).unwrap();
        assert_eq!(data["value"], serde_json::json!(97000.5));
        assert_eq!(data["status"], 200);
        let plain = Target {
            field: "price".into(),
            ..target()
        };
        assert!(report(&plain, 200, br#"{"price": 1}"#).is_ok());
    }

    #[test]
    fn bad_answers_say_what_was_wrong() {
        assert!(
            report(&target(), 302, b"")
                .unwrap_err()
                .contains("answered 302")
        );
        assert!(
            report(&target(), 200, b"<html>")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(
            report(&target(), 200, b"{}")
                .unwrap_err()
                .contains("no field `/bitcoin/usd`")
        );
    }
}
