//! Hot swap under load: every call is answered, by exactly one version.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::harness::*;

#[test]
fn hot_swap_while_another_thread_calls_thousands_of_times_fails_no_call() {
    let h = host();
    let path = h.load(test_artifacts::GUEST_SWAP_V1, "swapper.wasm");
    let handle = h.runtime.plugin("swapper");
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..2)
        .map(|t| {
            let handle = handle.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut v1, mut v2, mut failed) = (0u64, 0u64, Vec::new());
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) || i < 2_000 {
                    let id = format!("{t}-{i}");
                    match handle.format(&notification(&id), "console") {
                        Ok(Ok(msgs)) if msgs.len() == 1 => match msgs[0].text.split_once(':') {
                            Some(("1.0.0", rest)) if rest == id => v1 += 1,
                            Some(("2.0.0", rest)) if rest == id => v2 += 1,
                            _ => failed.push(format!("unexpected answer {:?}", msgs[0].text)),
                        },
                        other => failed.push(format!("{other:?}")),
                    }
                    i += 1;
                }
                (v1, v2, failed)
            })
        })
        .collect();
    let v1 = std::fs::read(test_artifacts::GUEST_SWAP_V1).unwrap();
    let v2 = std::fs::read(test_artifacts::GUEST_SWAP_V2).unwrap();
    for round in 0..20 {
        std::thread::sleep(Duration::from_millis(5));
        write_atomically(&path, if round % 2 == 0 { &v2 } else { &v1 });
        h.runtime.load_file(&path).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let mut totals = (0, 0);
    for c in callers {
        let (v1, v2, failed) = c.join().unwrap();
        assert!(
            failed.is_empty(),
            "failed calls during swaps: {:?}",
            &failed[..failed.len().min(5)]
        );
        totals.0 += v1;
        totals.1 += v2;
    }
    assert!(totals.0 + totals.1 >= 4_000, "{totals:?}");
    assert!(
        totals.0 > 0 && totals.1 > 0,
        "both versions served: {totals:?}"
    );
    let st = h
        .runtime
        .statuses()
        .into_iter()
        .find(|s| s.name == "swapper")
        .unwrap();
    assert_eq!(st.swaps, 20);
    assert_eq!(st.errors, 0);
    assert_eq!(st.version.as_deref(), Some("1.0.0"));
}

#[test]
fn calls_in_flight_finish_on_the_version_they_started_on() {
    // A handle taken before a delete still answers the call it is making, because the call
    // holds its own reference to the version; the next call sees the plugin gone.
    let h = host();
    let path = h.load(test_artifacts::GUEST_MISBEHAVE, "misbehave.wasm");
    let handle = h.runtime.plugin("misbehave");
    let slow = {
        let handle = handle.clone();
        std::thread::spawn(move || handle.handle_event(&event("spin")))
    };
    std::thread::sleep(Duration::from_millis(50));
    std::fs::remove_file(&path).unwrap();
    h.runtime.unload_file(&path);
    // The spinning call still ends by its own deadline, on the old version.
    assert!(matches!(
        slow.join().unwrap(),
        Err(impressox_host::runtime::CallError::Timeout { .. })
    ));
    assert!(handle.handle_event(&event("ok")).is_err());
}
