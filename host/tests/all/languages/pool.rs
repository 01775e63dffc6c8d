//! Idle instances of a large guest are kept by memory, not by count (issue 18, item 6):
//! each CPython instance holds tens of MiB, and `idle_instances = 8` of them would keep
//! eight times that for a plugin called in bursts.

use std::sync::{Arc, Barrier};

use impressox_host::bindings::types::{Notification, Priority};
use impressox_host::runtime::PluginStatus;

use crate::componentize;
use crate::harness::{TestHost, host_with};

fn status(h: &TestHost) -> PluginStatus {
    h.runtime
        .statuses()
        .into_iter()
        .find(|s| s.name == "py-sandbox")
        .unwrap()
}

/// Four callers at once, ten calls each, every call 50 ms inside Python: several
/// instances are in use at the same moment, and then go back to the idle pool.
fn burst(h: &TestHost) {
    let py = h.runtime.plugin("py-sandbox");
    let start = Arc::new(Barrier::new(4));
    let callers: Vec<_> = (0..4)
        .map(|i| {
            let py = py.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                for n in 0..10 {
                    let note = Notification {
                        id: format!("{i}-{n}"),
                        user_id: "u1".into(),
                        kind: "test".into(),
                        priority: Priority::Normal,
                        title: "t".into(),
                        body: String::new(),
                        data_json: "{}".into(),
                        created_at_ms: 0,
                    };
                    py.format(&note, "slow").unwrap().unwrap();
                }
            })
        })
        .collect();
    for c in callers {
        c.join().unwrap();
    }
}

#[test]
fn a_large_guests_idle_instances_are_kept_by_memory_not_count() {
    // Memory to spare: the count (8) is the bound, so every instance of the burst stays.
    let roomy = host_with("idle_instances = 8\nidle_memory_mib = 4096\n");
    componentize::load(&roomy, componentize::py_sandbox(), "py-sandbox.wasm");
    burst(&roomy);
    let st = status(&roomy);
    let kept = st.idle_instances.unwrap();
    assert!(
        st.instances_created >= 2 && kept >= 2,
        "the burst never ran two calls at once: {} created, {kept} idle",
        st.instances_created
    );
    let per_instance = st.idle_memory_bytes.unwrap() / kept as u64;
    assert!(
        per_instance > 8 << 20,
        "a CPython instance holds {per_instance} bytes"
    );

    // A budget of one and a half instances keeps one, however many the burst used.
    let budget_mib = (per_instance * 3 / 2) >> 20;
    let tight = host_with(&format!(
        "idle_instances = 8\nidle_memory_mib = {budget_mib}\n"
    ));
    componentize::load(&tight, componentize::py_sandbox(), "py-sandbox.wasm");
    burst(&tight);
    let st = status(&tight);
    assert!(st.instances_created >= 2, "{}", st.instances_created);
    assert_eq!(st.idle_instances, Some(1), "{budget_mib} MiB budget");
    assert!(st.idle_memory_bytes.unwrap() <= budget_mib << 20);

    // Below one instance, one is still kept: sequential calls never instantiate per call.
    let starved = host_with("idle_instances = 8\nidle_memory_mib = 1\n");
    componentize::load(&starved, componentize::py_sandbox(), "py-sandbox.wasm");
    burst(&starved);
    assert_eq!(status(&starved).idle_instances, Some(1));
    let created = status(&starved).instances_created;
    let py = starved.runtime.plugin("py-sandbox");
    for n in 0..5 {
        let note = Notification {
            id: format!("seq-{n}"),
            user_id: "u1".into(),
            kind: "test".into(),
            priority: Priority::Normal,
            title: "t".into(),
            body: String::new(),
            data_json: "{}".into(),
            created_at_ms: 0,
        };
        py.format(&note, "ok").unwrap().unwrap();
    }
    assert_eq!(status(&starved).instances_created, created);
}
