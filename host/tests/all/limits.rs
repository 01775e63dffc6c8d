//! Deadlines, memory caps, output caps, traps and quarantine: each is an error for that
//! call only, and the host keeps serving.

use std::time::{Duration, Instant};

use impressox_host::bindings::types::Outcome;
use impressox_host::runtime::{CallError, State};

use crate::harness::*;

#[test]
fn guest_that_loops_forever_is_stopped_at_the_deadline_and_the_host_keeps_serving() {
    let h = host();
    h.load(test_artifacts::GUEST_MISBEHAVE, "misbehave.wasm");
    h.load(test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm");
    let bad = h.runtime.plugin("misbehave");
    let started = Instant::now();
    let err = bad.handle_event(&event("spin")).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, CallError::Timeout { ms: 200, .. }), "{err}");
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // The same plugin answers the next call on a fresh instance, and so do the others.
    assert_eq!(bad.handle_event(&event("ok")).unwrap(), Outcome::Ack);
    let good = h.runtime.plugin("plain-formatter");
    assert!(good.format(&notification("n"), "console").unwrap().is_ok());
}

#[test]
fn a_spinning_call_does_not_block_calls_on_other_threads() {
    let h = host();
    h.load(test_artifacts::GUEST_MISBEHAVE, "misbehave.wasm");
    h.load(test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm");
    let bad = h.runtime.plugin("misbehave");
    let spinner = std::thread::spawn(move || bad.handle_event(&event("spin")));
    let good = h.runtime.plugin("plain-formatter");
    let mut served = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(150) {
        good.format(&notification("n"), "console").unwrap().unwrap();
        served += 1;
    }
    assert!(matches!(
        spinner.join().unwrap(),
        Err(CallError::Timeout { .. })
    ));
    assert!(
        served > 10,
        "only {served} calls served while a neighbour spun"
    );
}

#[test]
fn guest_that_allocates_without_bound_is_stopped_at_the_memory_cap() {
    let h = host();
    h.load(test_artifacts::GUEST_MISBEHAVE, "misbehave.wasm");
    let bad = h.runtime.plugin("misbehave");
    let err = bad.handle_event(&event("alloc")).unwrap_err();
    assert!(
        matches!(err, CallError::MemoryLimit { mib: 32, .. }),
        "{err}"
    );
    assert_eq!(bad.handle_event(&event("ok")).unwrap(), Outcome::Ack);
}

#[test]
fn trap_fails_only_that_call_and_the_instance_is_replaced() {
    let h = host();
    h.load(test_artifacts::GUEST_MISBEHAVE, "misbehave.wasm");
    let bad = h.runtime.plugin("misbehave");
    let created_before = h.runtime.statuses()[0].instances_created;
    let err = bad.handle_event(&event("trap")).unwrap_err();
    assert!(matches!(err, CallError::Trap { .. }), "{err}");
    assert_eq!(bad.handle_event(&event("ok")).unwrap(), Outcome::Ack);
    let st = &h.runtime.statuses()[0];
    assert_eq!(st.errors, 1);
    assert!(
        st.last_error.as_deref().unwrap().contains("trapped"),
        "{:?}",
        st.last_error
    );
    assert!(
        st.instances_created > created_before,
        "a fresh instance replaced the trapped one"
    );
    assert_eq!(st.state, State::Active);
}

#[test]
fn oversized_output_is_refused() {
    let h = host();
    h.load(test_artifacts::GUEST_MISBEHAVE, "misbehave.wasm");
    let err = h
        .runtime
        .plugin("misbehave")
        .handle_event(&event("big"))
        .unwrap_err();
    assert!(
        matches!(err, CallError::OutputTooLarge { cap: 1_048_576, .. }),
        "{err}"
    );
}

#[test]
fn repeated_failures_quarantine_and_a_new_file_recovers() {
    let h = host();
    let path = h.load(test_artifacts::GUEST_MISBEHAVE, "misbehave.wasm");
    let bad = h.runtime.plugin("misbehave");
    for _ in 0..3 {
        assert!(matches!(
            bad.handle_event(&event("trap")),
            Err(CallError::Trap { .. })
        ));
    }
    let err = bad.handle_event(&event("ok")).unwrap_err();
    assert!(matches!(err, CallError::Quarantined { .. }), "{err}");
    assert_eq!(h.runtime.statuses()[0].state, State::Quarantined);

    // A reload of the same file clears it...
    h.runtime.rescan(true);
    assert_eq!(bad.handle_event(&event("ok")).unwrap(), Outcome::Ack);

    // ...and so does a new file.
    for _ in 0..3 {
        let _ = bad.handle_event(&event("trap"));
    }
    assert_eq!(h.runtime.statuses()[0].state, State::Quarantined);
    let mut bytes = std::fs::read(test_artifacts::GUEST_MISBEHAVE).unwrap();
    // A custom section makes new content with the same code: a new file as far as the
    // host can tell.
    bytes.extend_from_slice(&[0x00, 0x06, 0x05, b'x', b'-', b'n', b'e', b'w']);
    write_atomically(&path, &bytes);
    h.runtime.load_file(&path).unwrap();
    assert_eq!(h.runtime.statuses()[0].state, State::Active);
    assert_eq!(bad.handle_event(&event("ok")).unwrap(), Outcome::Ack);
}
