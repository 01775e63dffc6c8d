//! Every bundled plugin loads, says who it is, and answers a real input.

use impressox_host::bindings::types::*;
use impressox_host::runtime::Kind;

use crate::harness::*;

#[test]
fn every_bundled_plugin_loads_with_its_own_identity() {
    let h = host();
    let expected = [
        (test_artifacts::BINANCE, "binance", Kind::FeedParser),
        (test_artifacts::COINGECKO, "coingecko", Kind::FeedParser),
        (test_artifacts::REPLAY_ROWS, "replay-rows", Kind::FeedParser),
        (test_artifacts::THRESHOLD, "threshold", Kind::RuleProcessor),
        (test_artifacts::X_TIMELINE, "x-timeline", Kind::ScrapeParser),
        (
            test_artifacts::TELEGRAM_MARKDOWN,
            "telegram-markdown",
            Kind::NotifyFormatter,
        ),
        (
            test_artifacts::PLAIN_FORMATTER,
            "plain-formatter",
            Kind::NotifyFormatter,
        ),
        (test_artifacts::ECHO_TASK, "echo-task", Kind::Task),
        (
            test_artifacts::EVENT_LOGGER,
            "event-logger",
            Kind::EventHandler,
        ),
        (
            test_artifacts::MARKDOWN_CHUNKER,
            "markdown-chunker",
            Kind::DocChunker,
        ),
        (
            test_artifacts::TWEET_CHUNKER,
            "tweet-chunker",
            Kind::DocChunker,
        ),
    ];
    for (artifact, name, kind) in expected {
        // Identity comes from inside the component; the file must agree with it.
        h.load(artifact, &format!("{name}.wasm"));
        let st = h
            .runtime
            .statuses()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap();
        assert_eq!(st.kind, Some(kind), "{name}");
        assert_eq!(st.wit_version.as_deref(), Some("0.1.0"));
        assert_eq!(st.version.as_deref(), Some("0.1.0"));
    }
}

#[test]
fn binance_parser_reads_a_trade() {
    let h = host();
    h.load(test_artifacts::BINANCE, "binance.wasm");
    let msg = br#"{"e":"trade","E":1764300000123,"s":"BTCUSDT","t":1,"p":"70123.40","q":"0.5","T":1764300000120,"m":true}"#;
    let parsed = h
        .runtime
        .plugin("binance")
        .parse_feed(msg, 1)
        .unwrap()
        .unwrap();
    assert_eq!(parsed.ticks.len(), 1);
    assert_eq!(parsed.ticks[0].symbol, "BTCUSDT");
    assert!((parsed.ticks[0].price - 70123.4).abs() < 1e-9);
    let err = h
        .runtime
        .plugin("binance")
        .parse_feed(b"{not json", 1)
        .unwrap();
    assert!(
        err.is_err(),
        "a malformed frame is a parse error, not a trap"
    );
}

#[test]
fn threshold_session_fires_a_crossing_once_and_survives_a_swap() {
    let h = host();
    let path = h.load(test_artifacts::THRESHOLD, "threshold.wasm");
    let mut session = h.runtime.plugin("threshold").session();
    let rule = Rule {
        id: "r1".into(),
        symbol: "BTCUSDT".into(),
        symbol_id: 0,
        condition: Condition {
            op: ConditionOp::CrossesUp,
            value: 70_000.0,
            direction: Direction::Any,
            window_secs: 0,
        },
        trigger: Trigger {
            mode: TriggerMode::Once,
            cooldown_secs: 0,
        },
        expires_at_ms: None,
        state: RuleState {
            armed: true,
            last_fired_ms: None,
            fired_count: 0,
        },
    };
    let rules = std::cell::RefCell::new(vec![rule]);
    let mut inits = 0;
    let mut init = |p: &mut impressox_host::runtime::invoke::RuleProcessorInit<'_>| {
        inits += 1;
        p.upsert_rules(&rules.borrow())?
            .map_err(wasmtime::Error::msg)
    };
    let batch = |ts: i64, price: f64| {
        TickBatch::from_ticks(
            ts,
            vec![Tick {
                symbol_id: 0,
                price,
                ts_ms: ts,
            }],
        )
    };
    assert!(
        session
            .evaluate(&mut init, &batch(1, 69_000.0))
            .unwrap()
            .is_empty()
    );
    let alerts = session.evaluate(&mut init, &batch(2, 70_100.0)).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule_id, "r1");
    rules.borrow_mut()[0].state = alerts[0].state;
    // Swap the processor (same code, new bytes): the session re-initialises from the host's
    // copy of the rules, state included, so the `once` rule stays fired.
    let mut bytes = std::fs::read(test_artifacts::THRESHOLD).unwrap();
    bytes.extend_from_slice(&[0x00, 0x06, 0x05, b'x', b'-', b'n', b'e', b'w']);
    write_atomically(&path, &bytes);
    h.runtime.load_file(&path).unwrap();
    assert!(
        session
            .evaluate(&mut init, &batch(3, 69_000.0))
            .unwrap()
            .is_empty()
    );
    assert!(
        session
            .evaluate(&mut init, &batch(4, 71_000.0))
            .unwrap()
            .is_empty()
    );
    drop(session);
    assert_eq!(inits, 2, "initialised once per version");
}

#[test]
fn telegram_formatter_escapes_markdown_v2() {
    let h = host();
    h.load(test_artifacts::TELEGRAM_MARKDOWN, "telegram-markdown.wasm");
    let mut n = notification("n1");
    n.title = "BTC-USDT > 70,000.5!".into();
    let out = h
        .runtime
        .plugin("telegram-markdown")
        .format(&n, "telegram")
        .unwrap()
        .unwrap();
    assert_eq!(out[0].parse_mode, ParseMode::MarkdownV2);
    assert!(
        out[0].text.contains(r"BTC\-USDT \> 70,000\.5\!"),
        "{}",
        out[0].text
    );
}

#[test]
fn task_and_event_handler_examples_answer() {
    let h = host();
    h.load(test_artifacts::ECHO_TASK, "echo-task.wasm");
    h.load(test_artifacts::EVENT_LOGGER, "event-logger.wasm");
    let run = TaskRun {
        schedule: "nightly".into(),
        scheduled_at_ms: 0,
        attempt: 1,
        args_json: r#"{"a":1}"#.into(),
    };
    let report = h
        .runtime
        .plugin("echo-task")
        .run_task(&run)
        .unwrap()
        .unwrap();
    assert!(report.summary.contains("nightly"), "{}", report.summary);
    let ev = Event {
        stream: "s".into(),
        id: "1-0".into(),
        fields: vec![Field {
            name: "k".into(),
            value: "v".into(),
        }],
        attempt: 1,
        received_at_ms: 0,
    };
    assert_eq!(
        h.runtime.plugin("event-logger").handle_event(&ev).unwrap(),
        Outcome::Ack
    );
}
