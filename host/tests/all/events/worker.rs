//! One events worker in this process, on the embedded store and on Redis.

use impressox_host::events::dead_letters::{self, ReplayRefused};
use impressox_host::storage::{NOTIFY_REQUESTS, StreamFull};

use super::{Events, GROUP, PLUGIN, STREAM, text};
use crate::capabilities::Backend;

fn both(test: impl Fn(&Backend)) {
    for backend in [Backend::Embedded, Backend::redis()] {
        eprintln!("--- {}", backend.name());
        test(&backend);
    }
}

#[test]
fn a_retried_event_is_acked_at_its_third_attempt_with_its_effect_applied_once() {
    both(|backend| {
        let ev = Events::start(backend, "max_attempts = 5\n");
        ev.publish(&[("do", "retry-until"), ("n", "3"), ("incr", "count")]);
        ev.publish(&[("do", "check-attempt"), ("n", "1"), ("incr", "first")]);
        ev.wait("both acked", || {
            ev.kv("count").is_some() && ev.kv("first").is_some() && ev.pending() == 0
        });
        // Two failed attempts made the increment too, and none of them was applied.
        assert_eq!(ev.kv("count").as_deref(), Some("1"));
        assert_eq!(ev.kv("first").as_deref(), Some("1"));
        assert!(ev.dead_letters().is_empty(), "{:?}", ev.dead_letters());
        // Acked by the only group: trimmed away.
        ev.wait("trimmed", || ev.stream_len() == 0);
    });
}

#[test]
fn after_max_attempts_an_event_is_a_dead_letter_that_replays_once_and_is_acked() {
    both(|backend| {
        let ev = Events::start(backend, "max_attempts = 3\n");
        let entry = ev.publish(&[("do", "wait-for"), ("key", "go"), ("incr", "done")]);
        ev.wait("a dead letter", || ev.dead_letters().len() == 1);
        let dl = &ev.dead_letters()[0];
        assert_eq!(text(dl, "reason"), "max_attempts");
        assert_eq!(text(dl, "entry_id"), entry);
        assert_eq!(text(dl, "stream"), STREAM);
        assert_eq!(text(dl, "plugin"), PLUGIN);
        assert_eq!(text(dl, "plugin_version"), "0.1.0");
        assert_eq!(dl.get("attempt_count").and_then(|v| v.as_u64()), Some(3));
        assert!(
            text(dl, "attempts").contains("the key is not there yet"),
            "{dl:?}"
        );
        assert!(text(dl, "fields").contains("wait-for"), "{dl:?}");
        ev.wait("acked as a dead letter", || ev.pending() == 0);
        assert_eq!(ev.kv("done"), None, "a failed attempt's effect was applied");

        // Let it succeed, then replay: a fresh attempt count, handled once.
        let store = ev.store().clone();
        ev.block_on(store.plugin_kv_set(PLUGIN, "go", b"1", None, 100))
            .unwrap();
        let id = text(dl, "_id").to_string();
        let new_entry = ev
            .block_on(dead_letters::replay(ev.store(), ev.docs(), &id))
            .unwrap()
            .unwrap_or_else(|e| panic!("replay refused: {e:?}"));
        assert_ne!(new_entry, entry);
        ev.wait("the replayed event acked", || {
            ev.kv("done").as_deref() == Some("1") && ev.pending() == 0
        });
        match ev
            .block_on(dead_letters::replay(ev.store(), ev.docs(), &id))
            .unwrap()
        {
            Err(ReplayRefused::AlreadyReplayed(e)) => assert_eq!(e, new_entry),
            other => panic!("a second replay: {other:?}"),
        }
        assert!(ev.dead_letters().is_empty());
        assert_eq!(ev.kv("done").as_deref(), Some("1"));
    });
}

#[test]
fn a_trap_counts_as_a_failed_attempt() {
    both(|backend| {
        let ev = Events::start(backend, "max_attempts = 2\n");
        ev.publish(&[("do", "trap"), ("incr", "never")]);
        ev.wait("a dead letter", || ev.dead_letters().len() == 1);
        let dl = &ev.dead_letters()[0];
        assert_eq!(dl.get("attempt_count").and_then(|v| v.as_u64()), Some(2));
        assert!(text(dl, "last_error").contains("trapped"), "{dl:?}");
        assert_eq!(ev.kv("never"), None);
        ev.wait("acked", || ev.pending() == 0);
    });
}

#[test]
fn a_timeout_counts_as_a_failed_attempt() {
    both(|backend| {
        let ev = Events::start(backend, "max_attempts = 2\n");
        ev.publish(&[("incr", "never"), ("do", "spin")]);
        ev.wait("a dead letter", || ev.dead_letters().len() == 1);
        let dl = &ev.dead_letters()[0];
        assert_eq!(dl.get("attempt_count").and_then(|v| v.as_u64()), Some(2));
        assert!(text(dl, "last_error").contains("deadline"), "{dl:?}");
        assert_eq!(ev.kv("never"), None);
    });
}

#[test]
fn the_handler_can_dead_letter_an_event_at_once() {
    both(|backend| {
        let ev = Events::start(backend, "max_attempts = 5\n");
        ev.publish(&[("do", "dead")]);
        ev.wait("a dead letter", || ev.dead_letters().len() == 1);
        let dl = &ev.dead_letters()[0];
        assert_eq!(text(dl, "reason"), "handler_dead_letter");
        assert_eq!(text(dl, "last_error"), "asked to dead-letter");
        assert_eq!(dl.get("attempt_count").and_then(|v| v.as_u64()), Some(0));
    });
}

#[test]
fn a_notification_is_enqueued_once_with_the_ack_and_never_by_a_failed_attempt() {
    both(|backend| {
        let ev = Events::start(backend, "max_attempts = 5\n");
        ev.publish(&[
            ("do", "retry-until"),
            ("n", "3"),
            ("notify", "u1"),
            ("tag", "t1"),
        ]);
        ev.wait("acked", || ev.pending() == 0 && ev.stream_len() == 0);
        let queued = ev.block_on(ev.store().stream_len(NOTIFY_REQUESTS)).unwrap();
        assert_eq!(queued, 1, "three attempts, one notification");
        let doc = ev
            .block_on(ev.docs().get("notifications", "event-probe:n-t1"))
            .unwrap()
            .expect("the notification's record");
        assert_eq!(text(&doc, "source"), "plugin:event-probe");
    });
}

#[test]
fn many_events_apply_their_effects_exactly_once_and_leave_nothing_pending() {
    both(|backend| {
        let ev = Events::start(backend, "batch = 128\nconcurrency = 4\n");
        let store = ev.store().clone();
        ev.block_on(async {
            for i in 0..2000 {
                let action = if i % 10 == 0 { "retry-until" } else { "ack" };
                let fields = vec![
                    ("incr".to_string(), "total".to_string()),
                    ("do".to_string(), action.to_string()),
                    ("n".to_string(), "2".to_string()),
                ];
                store
                    .append_event(STREAM, None, &fields, 1_000_000)
                    .await
                    .unwrap();
            }
        });
        ev.wait("all handled", || {
            ev.kv("total").as_deref() == Some("2000") && ev.pending() == 0
        });
        assert!(ev.dead_letters().is_empty());
        ev.wait("trimmed", || ev.stream_len() == 0);
    });
}

#[test]
fn at_the_bound_producers_are_refused_and_a_handler_not_loaded_is_waited_for() {
    both(|backend| {
        let ev = Events::start(backend, "maxlen = 2\nbatch = 1\n");
        // Unload the handler: the listener waits, nothing is dead-lettered.
        let wasm = ev.host.config.plugin_dir().join(format!("{PLUGIN}.wasm"));
        ev.host.runtime.unload_file(&wasm);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let fields = vec![("incr".to_string(), "n".to_string())];
        let store = ev.store().clone();
        for _ in 0..2 {
            ev.block_on(store.append_event(STREAM, None, &fields, 2))
                .unwrap();
        }
        let refused = ev
            .block_on(store.append_event(STREAM, None, &fields, 2))
            .unwrap_err();
        let full = StreamFull::find(&refused).expect("a StreamFull");
        assert_eq!(full.held_by.as_deref(), Some(GROUP));
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(ev.dead_letters().is_empty());
        assert_eq!(ev.kv("n"), None);
        ev.host.load(test_artifacts::GUEST_EVENT_PROBE, PLUGIN);
        ev.wait("both handled", || {
            ev.kv("n").as_deref() == Some("2") && ev.pending() == 0
        });
        ev.block_on(store.append_event(STREAM, None, &fields, 2))
            .unwrap();
        ev.wait("the third handled", || ev.kv("n").as_deref() == Some("3"));
    });
}

#[test]
fn an_entry_that_is_not_utf8_is_a_dead_letter_invalid_event() {
    let backend = Backend::redis();
    let Backend::Redis(redis) = &backend else {
        unreachable!()
    };
    let ev = Events::start(&backend, "");
    let reply = redis.raw_command(&[
        "EVAL",
        "return redis.call('XADD', KEYS[1], '*', 'do', 'ack', 'bad', string.char(255))",
        "1",
        STREAM,
    ]);
    assert!(reply.starts_with('$'), "{reply}");
    ev.publish(&[("incr", "after")]);
    ev.wait("a dead letter", || ev.dead_letters().len() == 1);
    let dl = &ev.dead_letters()[0];
    assert_eq!(text(dl, "reason"), "invalid_event");
    assert!(text(dl, "last_error").contains("`bad`"), "{dl:?}");
    // The entries behind it are handled.
    ev.wait("the next event", || {
        ev.kv("after").as_deref() == Some("1") && ev.pending() == 0
    });
}

/// Found in review: when the document store was down and the host stopped, the event
/// whose dead letter could not be stored was acknowledged anyway, and so lost.
#[test]
fn a_dead_letter_that_cannot_be_stored_is_not_acknowledged() {
    let mut backend = Backend::mongo();
    let mut ev = Events::start(&backend, "");
    let Backend::Mongo(mongo) = &mut backend else {
        unreachable!()
    };
    mongo.stop();
    ev.publish(&[("do", "dead")]);
    // Handled, and its dead letter is being retried against the stopped server.
    std::thread::sleep(std::time::Duration::from_secs(3));
    ev.stop();
    assert_eq!(ev.pending(), 1, "acknowledged without its dead letter");
    assert_eq!(ev.stream_len(), 1);
}
