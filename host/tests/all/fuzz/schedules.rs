//! `POST /api/v1/schedules` bodies (and `[[schedules]]` entries, the same shape), through
//! what the route calls: [`parse_json`] into a [`ScheduleSpec`], then
//! [`ScheduleSpec::check`] (cron patterns through croner, time zones, durations).
//!
//! Generated: the README's schedules and smaller ones, edited (see [`super::mutate`])
//! with cron patterns, durations and time zones that are almost right, and raw bytes.
//! Checked: no panic and no hang (a cron pattern that matches rarely or never must be
//! answered quickly); a refusal names a field of the document; an accepted schedule
//! computes its next occurrences in order, its jitter within bounds, and reads back
//! from the JSON stored for it.

use impressox_host::input::{BodyError, parse_json};
use impressox_host::scheduler::config::ScheduleSpec;

use super::mutate::{Doc, Grammar};
use super::{Meter, budget};

const SCHEDULES: &[&str] = &[
    r#"{"name": "morning-digest", "cron": "0 0 8 * * MON-FRI", "tz": "Europe/Berlin",
        "plugin": "price-digest", "args": {"symbols": ["BTCUSDT", "ETHUSDT"]}}"#,
    r#"{"name": "probe", "every": "30s", "plugin": "http-probe", "overlap": "queue_one",
        "timeout": "10s", "retries": 3, "backoff": "2s", "jitter": "500ms", "catch_up": "5m", "enabled": false}"#,
    r#"{"name": "l", "cron": "0 30 2 L * *", "tz": "America/New_York", "plugin": "p", "overlap": "allow"}"#,
    r#"{"name": "n", "cron": "@daily", "plugin": "p"}"#,
];

const WORDS: &[&str] = &[
    "name",
    "cron",
    "every",
    "tz",
    "plugin",
    "args",
    "overlap",
    "catch_up",
    "timeout",
    "retries",
    "backoff",
    "jitter",
    "enabled",
    "skip",
    "allow",
    "queue_one",
    "* * * * * *",
    "0 0 0 31 2 *",
    "0 0 0 30 2 *",
    "0 0 0 29 2 *",
    "*/0 * * * * *",
    "0-59/7 * * * * *",
    "0 0 0 * * 5#5",
    "0 0 0 LW * *",
    "0 0 0 ? * 7L",
    "60 * * * * *",
    "0 0 25 * * *",
    "0 0 0 1 13 *",
    "@yearly",
    "@reboot",
    "0 * * * *",
    "0 0 0 1 1 * 2099",
    "1s",
    "0s",
    "999ms",
    "5m",
    "1h30m",
    "PT5M",
    "-5s",
    "366d",
    "9999999999h",
    "soon",
    "UTC",
    "Europe/Berlin",
    "Etc/GMT+12",
    "Mars/Olympus",
    "europe/berlin",
    "/etc/localtime",
    "a b",
    "x:y@z",
    "",
    "18446744073709551616",
];

const FIELDS: &[&str] = &[
    "name", "cron", "every", "tz", "plugin", "args", "overlap", "catch_up", "timeout", "retries",
    "backoff", "jitter", "enabled", "body",
];

/// 2026-11-01T00:00:00Z.
const NOW: i64 = 1_793_491_200_000;

#[test]
fn schedule_bodies() {
    let grammar = Grammar::json(SCHEDULES, WORDS);
    let meter = Meter::start("schedules");
    bolero::check!()
        .with_type::<Doc>()
        .with_test_time(budget())
        .for_each(|doc| {
            let body = grammar.render_json(doc);
            meter.input(&body, || {
                let spec = match parse_json::<ScheduleSpec>(&body) {
                    Ok(spec) => spec,
                    Err(BodyError::Syntax(m)) => {
                        super::assert_names_something("schedules", &m, &body);
                        return;
                    }
                    Err(BodyError::Field(e)) => {
                        check_refusal(&e.field, &e.message, &body);
                        return;
                    }
                };
                match spec.check() {
                    Ok(schedule) => {
                        let mut t = NOW;
                        for _ in 0..3 {
                            match schedule.timing.next_after(t) {
                                Some(next) => {
                                    assert!(next > t, "not after {t}: {next}");
                                    let planned = schedule.planned_ms(next);
                                    assert!(
                                        (next..=next + schedule.jitter_ms).contains(&planned),
                                        "jitter out of bounds"
                                    );
                                    t = next;
                                }
                                None => break,
                            }
                        }
                        let _ = schedule.retry_delay_ms(u32::MAX);
                        let stored = serde_json::to_string(&schedule.spec).unwrap();
                        let back: ScheduleSpec = serde_json::from_str(&stored).unwrap();
                        assert_eq!(back, schedule.spec);
                    }
                    Err(e) => check_refusal(&e.field, &e.message, &body),
                }
            })
        });
    meter.finish();
}

fn check_refusal(field: &str, message: &str, body: &[u8]) {
    let top = field.split(['.', '[']).next().unwrap_or("");
    assert!(
        FIELDS.contains(&top) || message.starts_with("unknown field"),
        "the refusal names `{field}`, not a field of the document: {message}; body {:?}",
        String::from_utf8_lossy(body)
    );
    super::assert_names_something("schedules", message, body);
}
