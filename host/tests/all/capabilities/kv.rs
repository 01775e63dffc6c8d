//! `kv` from a real component, on the embedded store and on Redis.

use std::time::{Duration, Instant};

use impressox_host::runtime::CallError;
use serde_json::json;

use super::{Backend, CapsHost, err, ok};

const PROBE: &str = "caps-probe";
const GRANT_ALL: &str =
    "[plugins.grants.caps-probe]\nkv = true\ndocs = [\"things\"]\nnotify = true\nprices = true\n";

fn host(backend: &Backend, extra: &str) -> CapsHost {
    let h = CapsHost::new(backend, &format!("{GRANT_ALL}{extra}"));
    h.load(test_artifacts::GUEST_CAPS_PROBE, PROBE);
    h
}

fn round_trip_ttl_and_incr(backend: Backend) {
    let h = host(&backend, "");
    let name = backend.name();
    let r = h.ops(
        PROBE,
        json!([
            ["kv.get", "greeting"],
            ["kv.set", "greeting", "hello", null],
            ["kv.get", "greeting"],
            ["kv.set", "greeting", "hello again", null],
            ["kv.get", "greeting"],
            ["kv.delete", "greeting"],
            ["kv.delete", "greeting"],
            ["kv.get", "greeting"],
            ["kv.incr", "count", 5],
            ["kv.incr", "count", -2],
            ["kv.get", "count"],
            ["kv.set", "word", "five", null],
            ["kv.incr", "word", 1],
            ["kv.set", "max", "9223372036854775807", null],
            ["kv.incr", "max", 1],
            ["kv.set", "brief", "soon gone", 300],
            ["kv.get", "brief"],
        ]),
    );
    assert_eq!(ok(&r[0]), &json!(null), "{name}");
    assert_eq!(ok(&r[2]), &json!("hello"), "{name}");
    assert_eq!(ok(&r[4]), &json!("hello again"), "{name}");
    assert_eq!(ok(&r[5]), &json!(true), "{name}");
    assert_eq!(ok(&r[6]), &json!(false), "{name}");
    assert_eq!(ok(&r[7]), &json!(null), "{name}");
    assert_eq!(ok(&r[8]), &json!(5), "{name}");
    assert_eq!(ok(&r[9]), &json!(3), "{name}");
    assert_eq!(ok(&r[10]), &json!("3"), "{name}");
    assert!(
        err(&r[12]).contains("not a decimal 64-bit integer"),
        "{name}: {}",
        r[12]
    );
    assert!(err(&r[14]).contains("overflow"), "{name}: {}", r[14]);
    assert_eq!(ok(&r[16]), &json!("soon gone"), "{name}");
    std::thread::sleep(Duration::from_millis(700));
    let r = h.ops(
        PROBE,
        json!([
            ["kv.get", "brief"],
            ["kv.delete", "brief"],
            ["kv.incr", "count", 1]
        ]),
    );
    assert_eq!(ok(&r[0]), &json!(null), "{name}: the ttl passed");
    assert_eq!(
        ok(&r[1]),
        &json!(false),
        "{name}: an expired key is not there to delete"
    );
    assert_eq!(ok(&r[2]), &json!(4), "{name}");
}

#[test]
fn kv_round_trip_ttl_and_incr_embedded() {
    round_trip_ttl_and_incr(Backend::Embedded);
}

#[test]
fn kv_round_trip_ttl_and_incr_redis() {
    round_trip_ttl_and_incr(Backend::redis());
}

/// Whatever key a plugin passes, it lands in its own namespace: another plugin's key
/// (written by the host under that plugin's name) is neither read nor changed.
fn namespace_escapes_stay_inside(backend: Backend) {
    let h = host(&backend, "");
    let name = backend.name();
    let rt = impressox_host::runtime::deadline::io_runtime();
    rt.block_on(
        h.store
            .plugin_kv_set("other", "secret", b"theirs", None, 10),
    )
    .unwrap();
    let attempts = [
        "secret",
        "../other/secret",
        "..",
        "other:secret",
        "other/secret",
        "{other}:k:secret",
        "plugin-kv:{other}:k:secret",
        "}:k:secret",
    ];
    for key in attempts {
        let r = h.ops(
            PROBE,
            json!([
                ["kv.get", key],
                ["kv.set", key, "mine", null],
                ["kv.get", key]
            ]),
        );
        assert_eq!(ok(&r[0]), &json!(null), "{name}: {key}");
        assert_eq!(ok(&r[2]), &json!("mine"), "{name}: {key}");
    }
    let r = h.ops(
        PROBE,
        json!([
            ["kv.get", "a\u{0}b"],
            ["kv.set", "\u{0}other", "x", null],
            ["kv.get", ""]
        ]),
    );
    assert!(err(&r[0]).contains("control character"), "{name}: {}", r[0]);
    assert!(err(&r[1]).contains("control character"), "{name}: {}", r[1]);
    assert!(err(&r[2]).contains("empty"), "{name}: {}", r[2]);
    assert_eq!(
        rt.block_on(h.store.plugin_kv_get("other", "secret"))
            .unwrap()
            .as_deref(),
        Some(&b"theirs"[..]),
        "{name}: the other plugin's key is untouched"
    );
    if let Backend::Redis(server) = &backend {
        let keys = server.raw_command(&["KEYS", "plugin-kv:*"]);
        for line in keys.lines().filter(|l| l.starts_with("plugin-kv:")) {
            assert!(
                line.starts_with("plugin-kv:{caps-probe}:")
                    || line.starts_with("plugin-kv:{other}:"),
                "{line}"
            );
        }
        assert!(
            keys.contains("plugin-kv:{caps-probe}:k:../other/secret"),
            "{keys}"
        );
    }
}

#[test]
fn kv_namespace_escapes_stay_inside_embedded() {
    namespace_escapes_stay_inside(Backend::Embedded);
}

#[test]
fn kv_namespace_escapes_stay_inside_redis() {
    namespace_escapes_stay_inside(Backend::redis());
}

fn caps_are_errors_not_traps(backend: Backend) {
    let h = host(
        &backend,
        "[capabilities.kv]\nmax_key_bytes = 16\nmax_value_bytes = 64\nmax_keys = 3\n",
    );
    let name = backend.name();
    let r = h.ops(
        PROBE,
        json!([
            ["kv.get", "k".repeat(17)],
            ["kv.set_bytes", "big", 65],
            ["kv.set_bytes", "fits", 64],
            ["kv.set", "b", "1", null],
            ["kv.incr", "c", 1],
            ["kv.set", "d", "1", null],
            ["kv.incr", "e", 1],
            ["kv.set", "b", "replacing is fine", null],
            ["kv.delete", "b"],
            ["kv.set", "d", "room again", null],
            ["kv.set", "short", "x", 200],
        ]),
    );
    assert!(err(&r[0]).contains("max_key_bytes"), "{name}: {}", r[0]);
    assert!(err(&r[1]).contains("max_value_bytes"), "{name}: {}", r[1]);
    ok(&r[2]);
    ok(&r[3]);
    ok(&r[4]);
    assert!(
        err(&r[5]).contains("cap of 3 live keys"),
        "{name}: {}",
        r[5]
    );
    assert!(
        err(&r[6]).contains("cap of 3 live keys"),
        "{name}: {}",
        r[6]
    );
    ok(&r[7]);
    ok(&r[8]);
    ok(&r[9]);
    assert!(err(&r[10]).contains("max_keys"), "{name}: {}", r[10]);
    // An expired key frees its place.
    let r = h.ops(
        PROBE,
        json!([["kv.delete", "d"], ["kv.set", "short", "x", 200]]),
    );
    ok(&r[1]);
    std::thread::sleep(Duration::from_millis(500));
    let r = h.ops(PROBE, json!([["kv.set", "later", "x", null]]));
    ok(&r[0]);
}

#[test]
fn kv_caps_are_errors_not_traps_embedded() {
    caps_are_errors_not_traps(Backend::Embedded);
}

#[test]
fn kv_caps_are_errors_not_traps_redis() {
    caps_are_errors_not_traps(Backend::redis());
}

#[test]
fn kv_budget_of_host_calls_and_bytes_is_per_call() {
    let h = host(
        &Backend::Embedded,
        "[capabilities]\nmax_host_calls = 20\nmax_bytes_moved = 4096\n",
    );
    let r = h.ops(PROBE, json!([["kv.spin", 25, "x"]]));
    assert!(err(&r[0]).contains("max_host_calls"), "{}", r[0]);
    // The next call has its own budget.
    let r = h.ops(
        PROBE,
        json!([
            ["kv.spin", 17, "x"],
            ["kv.set_bytes", "big", 3000],
            ["kv.set_bytes", "big2", 3000]
        ]),
    );
    ok(&r[0]);
    ok(&r[1]);
    assert!(err(&r[2]).contains("max_bytes_moved"), "{}", r[2]);
}

#[test]
fn kv_not_granted_is_refused_at_load_naming_the_key() {
    let h = CapsHost::new(
        &Backend::Embedded,
        "[plugins.grants.caps-probe]\ndocs = [\"things\"]\nnotify = true\nprices = true\n",
    );
    let e = h
        .try_load(test_artifacts::GUEST_CAPS_PROBE, PROBE)
        .unwrap_err();
    assert!(e.contains("plugin `caps-probe`"), "{e}");
    assert!(e.contains("impressox:plugin/kv@0.1.0"), "{e}");
    assert!(e.contains("[plugins.grants.caps-probe] kv = true"), "{e}");
}

#[test]
fn a_runtime_without_stores_refuses_granted_capabilities_at_load() {
    let h = crate::harness::host_with(GRANT_ALL);
    let path = h.install(test_artifacts::GUEST_CAPS_PROBE, "caps-probe.wasm");
    let e = h.runtime.load_file(&path).unwrap_err();
    assert!(e.contains("runs without the stores"), "{e}");
}

/// The pid of a test Redis, from its own `INFO`.
fn redis_pid(server: &crate::servers::redis::RedisServer) -> String {
    let info = server.raw_command(&["INFO", "server"]);
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .unwrap()
        .trim()
        .to_string()
}

/// A Redis that stops answering mid-call (SIGSTOP: connections stay open, no reply comes)
/// ends the call at its deadline as a timeout, not at the driver's 10 s response timeout;
/// other calls keep being served meanwhile, and once Redis answers again so does kv.
#[test]
fn a_frozen_redis_ends_the_call_at_its_deadline_and_the_host_keeps_serving() {
    let backend = Backend::redis();
    let Backend::Redis(server) = &backend else {
        unreachable!()
    };
    let h = host(&backend, "");
    ok(&h.ops(PROBE, json!([["kv.set", "k", "v", null]]))[0]);
    let pid = redis_pid(server);
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let outcome = h.probe(PROBE, json!([["kv.get", "k"]]));
    let took = started.elapsed();
    // A call with no capability work is served at once meanwhile.
    let idle = h.probe(PROBE, json!([]));
    assert!(
        std::process::Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        matches!(outcome, Err(CallError::Timeout { .. })),
        "{outcome:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "ended after {took:?}, not at the 200 ms deadline"
    );
    assert_eq!(idle.unwrap(), Vec::<serde_json::Value>::new());
    let mut answered = false;
    for _ in 0..50 {
        if let Ok(r) = h.probe(PROBE, json!([["kv.get", "k"]]))
            && r[0].get("ok") == Some(&json!("v"))
        {
            answered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(answered, "kv did not recover after Redis resumed");
}

/// A Redis that is gone (killed) fails the call's kv operations by the deadline with a
/// stable message; after a restart kv works again.
#[test]
fn a_stopped_redis_fails_kv_by_the_deadline_and_recovers_after_restart() {
    let mut backend = Backend::redis();
    let h = host(&backend, "");
    let Backend::Redis(server) = &mut backend else {
        unreachable!()
    };
    server.stop();
    let started = Instant::now();
    let outcome = h.probe(PROBE, json!([["kv.get", "k"]]));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    match outcome {
        Err(CallError::Timeout { .. }) => {}
        Ok(r) => {
            let e = err(&r[0]);
            assert!(e.contains("kv store is unavailable"), "{e}");
            assert!(!e.contains("127.0.0.1"), "driver detail leaked: {e}");
        }
        Err(other) => panic!("{other:?}"),
    }
    server.restart();
    let mut recovered = false;
    for _ in 0..50 {
        if let Ok(r) = h.probe(PROBE, json!([["kv.set", "k", "v", null]]))
            && r[0].get("ok").is_some()
        {
            recovered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(recovered);
}
