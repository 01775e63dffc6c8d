//! An event handler for the events worker's tests, steered by the event's fields:
//! - `incr` = key: `kv.incr(key, 1)` first (an effect that must be applied exactly once,
//!   with the ack, and never for a failed attempt);
//! - `notify` = user: enqueue a notification with id `n-<tag>` (field `tag`, else the
//!   event id) on the console channel;
//! - `do`: `ack` (the default), `retry` (always), `retry-until` (retry while the
//!   host's `attempt` is below field `n`), `dead` (dead-letter), `trap` (panic),
//!   `trap-until` (panic while `attempt` < `n`), `spin` (loop until the deadline stops
//!   it), `busy` (compute for `n` million steps, then ack: a call that takes a while), `check-attempt` (dead-letter unless `attempt` equals field `n`), `wait-for`
//!   (retry until the kv key in field `key` exists: a test flips it from outside).
//!
//! Grants: `kv = true`, `notify = true`.

use impressox_plugin_sdk::types::{Event, Notification, Outcome, Priority};
use impressox_plugin_sdk::{EventHandler, export_event_handler, kv, notify};

struct EventProbe;

fn field<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    event
        .fields
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.value.as_str())
}

fn n(event: &Event) -> u32 {
    field(event, "n").and_then(|v| v.parse().ok()).unwrap_or(1)
}

impl EventHandler for EventProbe {
    const NAME: &'static str = "event-probe";
    const DESCRIPTION: &'static str = "test handler steered by the event's fields";

    fn handle(event: Event) -> Outcome {
        if let Some(key) = field(&event, "incr")
            && let Err(e) = kv::incr(key, 1)
        {
            return Outcome::Retry(format!("kv.incr failed: {e}"));
        }
        if let Some(user) = field(&event, "notify") {
            let tag = field(&event, "tag").unwrap_or(&event.id);
            let n = Notification {
                id: format!("n-{tag}"),
                user_id: user.to_string(),
                kind: "test".into(),
                priority: Priority::Normal,
                title: format!("event {tag}"),
                body: "from the event probe".into(),
                data_json: "{}".into(),
                created_at_ms: 0,
            };
            if let Err(e) = notify::enqueue(&n, &["console"]) {
                return Outcome::Retry(format!("notify failed: {e}"));
            }
        }
        match field(&event, "do").unwrap_or("ack") {
            "retry" => Outcome::Retry("asked to retry".into()),
            "retry-until" if event.attempt < n(&event) => {
                Outcome::Retry(format!("attempt {} of {}", event.attempt, n(&event)))
            }
            "dead" => Outcome::DeadLetter("asked to dead-letter".into()),
            "trap" => panic!("asked to trap"),
            "trap-until" if event.attempt < n(&event) => {
                panic!("trap at attempt {}", event.attempt)
            }
            "spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "busy" => {
                let mut x: u64 = 0;
                for i in 0..u64::from(n(&event)) * 1_000_000 {
                    x = std::hint::black_box(x.wrapping_add(i));
                }
                Outcome::Ack
            }
            "wait-for" => match kv::get(field(&event, "key").unwrap_or("go")) {
                Ok(Some(_)) => Outcome::Ack,
                Ok(None) => Outcome::Retry("the key is not there yet".into()),
                Err(e) => Outcome::Retry(format!("kv.get failed: {e}")),
            },
            "check-attempt" if event.attempt != n(&event) => Outcome::DeadLetter(format!(
                "attempt {} where {} was expected",
                event.attempt,
                n(&event)
            )),
            _ => Outcome::Ack,
        }
    }
}

export_event_handler!(EventProbe);
