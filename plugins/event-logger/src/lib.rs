//! `event-logger`: an example event handler. It logs each event (stream, id, attempt and
//! fields, long values shortened) and decides its outcome:
//! - no fields at all: `dead-letter` (nothing to act on, retrying cannot help);
//! - a field `fail` = `retry`: `retry` (lets an operator exercise the retry path);
//! - a field `fail` = `dead-letter`: `dead-letter`;
//! - anything else: `ack`.
//!
//! It uses only `log`, so it needs no grants.

use impressox_plugin_sdk::types::{Event, Outcome};
use impressox_plugin_sdk::{EventHandler, export_event_handler};

/// Longest field value logged, in characters.
const MAX_VALUE_CHARS: usize = 200;

/// The plugin.
pub struct EventLogger;

impl EventHandler for EventLogger {
    const NAME: &'static str = "event-logger";
    const DESCRIPTION: &'static str = "logs events; acks, retries or dead-letters them";

    fn handle(event: Event) -> Outcome {
        impressox_plugin_sdk::log::info(&describe(&event));
        let outcome = decide(&event);
        match &outcome {
            Outcome::Ack => {}
            Outcome::Retry(why) | Outcome::DeadLetter(why) => impressox_plugin_sdk::log::warn(why),
        }
        outcome
    }
}

export_event_handler!(EventLogger);

/// The outcome for an event (pure, so it can be tested natively).
pub fn decide(event: &Event) -> Outcome {
    if event.fields.is_empty() {
        return Outcome::DeadLetter(format!(
            "event {} of `{}` has no fields",
            event.id, event.stream
        ));
    }
    match event
        .fields
        .iter()
        .find(|f| f.name == "fail")
        .map(|f| f.value.as_str())
    {
        Some("retry") => Outcome::Retry(format!(
            "event {} asked for a retry (field `fail` = retry, attempt {})",
            event.id, event.attempt
        )),
        Some("dead-letter") => Outcome::DeadLetter(format!(
            "event {} asked to be dead-lettered (field `fail`)",
            event.id
        )),
        _ => Outcome::Ack,
    }
}

/// The log line for an event.
pub fn describe(event: &Event) -> String {
    let fields: Vec<String> = event
        .fields
        .iter()
        .map(|f| format!("{}={}", f.name, shorten(&f.value)))
        .collect();
    format!(
        "event {}/{} attempt {} received at {} ms: {}",
        event.stream,
        event.id,
        event.attempt,
        event.received_at_ms,
        if fields.is_empty() {
            "(no fields)".to_string()
        } else {
            fields.join(", ")
        }
    )
}

fn shorten(value: &str) -> String {
    if value.chars().count() <= MAX_VALUE_CHARS {
        return value.to_string();
    }
    let mut s: String = value.chars().take(MAX_VALUE_CHARS).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use impressox_plugin_sdk::types::Field;

    fn event(fields: &[(&str, &str)]) -> Event {
        Event {
            stream: "alerts".into(),
            id: "1764300000000-0".into(),
            fields: fields
                .iter()
                .map(|(n, v)| Field {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            attempt: 3,
            received_at_ms: 42,
        }
    }

    #[test]
    fn outcomes() {
        assert!(matches!(
            decide(&event(&[("kind", "price_alert")])),
            Outcome::Ack
        ));
        assert!(matches!(decide(&event(&[("fail", "no")])), Outcome::Ack));
        match decide(&event(&[])) {
            Outcome::DeadLetter(why) => assert!(why.contains("no fields"), "{why}"),
            _ => panic!("expected dead-letter"),
        }
        match decide(&event(&[("a", "b"), ("fail", "retry")])) {
            Outcome::Retry(why) => {
                assert!(why.contains("retry") && why.contains("attempt 3"), "{why}")
            }
            _ => panic!("expected retry"),
        }
        assert!(matches!(
            decide(&event(&[("fail", "dead-letter")])),
            Outcome::DeadLetter(_)
        ));
    }

    #[test]
    fn log_line() {
        let line = describe(&event(&[
            ("kind", "price_alert"),
            ("long", &"x".repeat(500)),
        ]));
        assert!(line.starts_with(
            "event alerts/1764300000000-0 attempt 3 received at 42 ms: kind=price_alert, long=x"
        ));
        assert!(line.ends_with('…'));
        assert!(line.chars().count() < 320);
        assert!(describe(&event(&[])).ends_with("(no fields)"));
    }
}
