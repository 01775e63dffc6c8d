//! The process's log output: `human` (tracing-subscriber's own text) or `json`, one flat
//! JSON object per line (SPEC §11).
//!
//! The JSON shape is ours rather than tracing-subscriber's `.json()`, which nests an
//! event's fields under `fields` and its spans under `spans`: a log shipper (Loki, Vector,
//! jq) should find `worker`, `plugin` and `message` at the top of every line. So each
//! line is `{"timestamp", "level", "target", "worker", "plugin", "message", ...fields}`:
//!
//! - `worker` and `plugin` are on every line, `null` when the line is from neither.
//! - `plugin` is the event's own `plugin` field (every log line of a plugin call names
//!   its plugin: the guest's own `log` lines, capability refusals, call failures), or one
//!   of an enclosing span.
//! - `worker` is the event's own `worker` field, one of an enclosing span, or else the
//!   worker whose module emitted the line (`impressox_host::notify::...` is `notify`).
//!   Deriving it from the module costs nothing on the hot paths: a span per task would
//!   not follow the workers' `tokio::spawn`s, and a span per plugin call costs an
//!   allocation a call.
//! - fields of enclosing spans come after the event's own; the event's win a clash.

use std::fmt::Write as _;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Install the process's subscriber (once; a second call is a no-op, as in tests).
pub fn init(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level))
        // chromiumoxide logs every DevTools command and event at debug/trace level, the keys
        // the scraper types into X's login form (passwords, codes) and the login request's
        // body among them: only its warnings and errors, whatever the configured level.
        .add_directive("chromiumoxide=warn".parse().expect("a valid directive"))
        // tantivy logs every commit and merge at info: the rag worker's index is ours to report.
        .add_directive("tantivy=warn".parse().expect("a valid directive"));
    // A second call (tests) finds a subscriber installed and changes nothing.
    match format {
        LogFormat::Human => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .try_init();
        }
        LogFormat::Json => {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(FlatJson::stderr())
                .try_init();
        }
    }
}

/// The worker whose code a log target belongs to, by module path.
pub fn worker_of_target(target: &str) -> Option<&'static str> {
    let rest = target.strip_prefix("impressox_host::")?;
    let module = rest.split("::").next()?;
    Some(match module {
        "market" => "market-monitor",
        "notify" => "notify",
        "scraper" => crate::scraper::config::WORKER,
        "scheduler" => crate::scheduler::config::WORKER,
        "events" => crate::events::WORKER,
        _ => return None,
    })
}

/// The flat JSON layer; writes each line with one `write_all` so lines of concurrent
/// threads never interleave.
pub struct FlatJson<W> {
    make_writer: W,
}

impl FlatJson<fn() -> std::io::Stderr> {
    /// Lines to the process's standard error.
    pub fn stderr() -> Self {
        FlatJson {
            make_writer: std::io::stderr,
        }
    }
}

impl<W, O> FlatJson<W>
where
    W: Fn() -> O + 'static,
    O: std::io::Write,
{
    /// Lines to whatever `make_writer` returns (a buffer in tests).
    pub fn to(make_writer: W) -> Self {
        FlatJson { make_writer }
    }
}

/// A span's fields, kept in the span's extensions for the events inside it.
struct SpanFields(Map<String, Value>);

impl<S, W, O> Layer<S> for FlatJson<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: Fn() -> O + 'static,
    O: std::io::Write,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.map));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(SpanFields(map)) = ext.get_mut::<SpanFields>() {
                let mut fields = Fields {
                    map: std::mem::take(map),
                    ..Default::default()
                };
                values.record(&mut fields);
                *map = fields.map;
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        // Innermost span first, so the nearest span's value wins among spans.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(SpanFields(map)) = span.extensions().get::<SpanFields>() {
                    for (k, v) in map {
                        fields.map.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
        let line = render(
            meta.level().as_str(),
            meta.target(),
            fields.message,
            fields.map,
        );
        let mut out = (self.make_writer)();
        let _ = out.write_all(line.as_bytes());
    }
}

/// One line: the fixed keys first, then the fields, then a newline.
fn render(
    level: &str,
    target: &str,
    message: Option<String>,
    mut fields: Map<String, Value>,
) -> String {
    let mut object = Map::with_capacity(fields.len() + 6);
    object.insert(
        "timestamp".into(),
        Value::String(jiff::Timestamp::now().to_string()),
    );
    object.insert("level".into(), Value::String(level.into()));
    object.insert("target".into(), Value::String(target.into()));
    let worker = fields.remove("worker").unwrap_or_else(|| {
        worker_of_target(target).map_or(Value::Null, |w| Value::String(w.into()))
    });
    object.insert("worker".into(), worker);
    object.insert(
        "plugin".into(),
        fields.remove("plugin").unwrap_or(Value::Null),
    );
    object.insert("message".into(), message.map_or(Value::Null, Value::String));
    for (k, v) in fields {
        // A field named like a fixed key (`level`, `target`) keeps its value under a
        // prefixed name rather than replacing the line's own.
        if object.contains_key(&k) {
            object.insert(format!("field.{k}"), v);
        } else {
            object.insert(k, v);
        }
    }
    let mut line = Value::Object(object).to_string();
    line.push('\n');
    line
}

/// Collects an event's or span's fields as JSON values.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    map: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.map.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.put(field, Value::String(s));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(f: impl FnOnce()) -> Vec<Value> {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::registry().with(FlatJson::to(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn every_line_is_flat_with_worker_and_plugin_keys() {
        let lines = capture(|| {
            tracing::info!(count = 3, ok = true, "plain");
            tracing::warn!(plugin = "threshold", error = "boom", "call failed");
            tracing::info!(target: "impressox_host::notify::worker", "from notify");
            let span = tracing::info_span!("task", worker = "scheduler", schedule = "s1");
            span.in_scope(|| tracing::info!(worker_field = 1, "inside"));
            tracing::info!(level = "mine", "clash");
        });
        assert_eq!(lines.len(), 5);
        for line in &lines {
            for key in [
                "timestamp",
                "level",
                "target",
                "worker",
                "plugin",
                "message",
            ] {
                assert!(line.get(key).is_some(), "{key} missing in {line}");
            }
            assert!(line.get("fields").is_none(), "{line}");
        }
        assert_eq!(lines[0]["message"], "plain");
        assert_eq!(lines[0]["count"], 3);
        assert_eq!(lines[0]["ok"], true);
        assert_eq!(lines[0]["worker"], Value::Null);
        assert_eq!(lines[0]["plugin"], Value::Null);
        assert_eq!(lines[1]["plugin"], "threshold");
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[2]["worker"], "notify");
        assert_eq!(lines[3]["worker"], "scheduler");
        assert_eq!(lines[3]["schedule"], "s1");
        assert_eq!(lines[4]["level"], "INFO");
        assert_eq!(lines[4]["field.level"], "mine");
    }

    #[test]
    fn workers_are_named_by_their_module() {
        assert_eq!(
            worker_of_target("impressox_host::market::engine"),
            Some("market-monitor")
        );
        assert_eq!(
            worker_of_target("impressox_host::scraper::pool"),
            Some("x-scraper")
        );
        assert_eq!(worker_of_target("impressox_host::api"), None);
        assert_eq!(worker_of_target("plugin"), None);
    }
}
