//! `notify` from a real component: the API's validation, idempotent on the id, recorded
//! with the plugin as its source, on the embedded stores and on Redis with MongoDB.

use impressox_host::storage::NOTIFY_REQUESTS;
use serde_json::json;

use super::{Backend, CapsHost, err, ok};

const PROBE: &str = "caps-probe";
const GRANT_ALL: &str =
    "[plugins.grants.caps-probe]\nkv = true\ndocs = [\"things\"]\nnotify = true\nprices = true\n";

fn enqueue_is_validated_idempotent_and_sourced(h: CapsHost, name: &str) {
    h.load(test_artifacts::GUEST_CAPS_PROBE, PROBE);
    let rt = impressox_host::runtime::deadline::io_runtime();
    let r = h.ops(
        PROBE,
        json!([
            [
                "notify.enqueue",
                "n1",
                "u1",
                "BTCUSDT above 97000",
                "{\"price\": 97001}",
                []
            ],
            // A retried run: the same request again is the same notification.
            [
                "notify.enqueue",
                "n1",
                "u1",
                "BTCUSDT above 97000",
                "{\"price\": 97001}",
                []
            ],
            ["notify.enqueue", "n1", "u1", "something else", "{}", []],
            ["notify.enqueue", "n2", "a b", "t", "{}", []],
            ["notify.enqueue", "n3", "u1", "t", "{", []],
            ["notify.enqueue", "n4", "u1", "t", "[1]", []],
            ["notify.enqueue", "n5", "u1", "t", "{}", ["sms"]],
            ["notify.enqueue", "n6", "u1", "", "{}", []],
            [
                "notify.enqueue",
                "n7",
                "u1",
                "to telegram",
                "{}",
                ["telegram"]
            ],
        ]),
    );
    ok(&r[0]);
    ok(&r[1]);
    assert!(
        err(&r[2]).contains("used before for a different notification"),
        "{name}: {}",
        r[2]
    );
    assert!(err(&r[3]).contains("`user-id`"), "{name}: {}", r[3]);
    assert!(
        err(&r[4]).contains("`data-json` is not JSON"),
        "{name}: {}",
        r[4]
    );
    assert!(err(&r[5]).contains("`data`"), "{name}: {}", r[5]);
    assert!(err(&r[6]).contains("`channels[0]`"), "{name}: {}", r[6]);
    assert!(err(&r[7]).contains("`title`"), "{name}: {}", r[7]);
    ok(&r[8]);
    // The same call again in a later run: still one notification.
    ok(&h.ops(
        PROBE,
        json!([[
            "notify.enqueue",
            "n1",
            "u1",
            "BTCUSDT above 97000",
            "{\"price\": 97001}",
            []
        ]]),
    )[0]);
    assert_eq!(
        rt.block_on(h.store.stream_len(NOTIFY_REQUESTS)).unwrap(),
        2,
        "{name}: n1 once and n7"
    );
    let status = rt
        .block_on(impressox_host::notify::service::status(
            &h.docs,
            "caps-probe:n1",
        ))
        .unwrap()
        .unwrap_or_else(|| panic!("{name}: no record of caps-probe:n1"));
    assert_eq!(status["source"], json!("plugin:caps-probe"), "{name}");
    assert_eq!(
        status["request"]["title"],
        json!("BTCUSDT above 97000"),
        "{name}"
    );
    assert_eq!(status["request"]["data"]["price"], json!(97001), "{name}");
    let n7 = rt
        .block_on(impressox_host::notify::service::status(
            &h.docs,
            "caps-probe:n7",
        ))
        .unwrap()
        .unwrap();
    assert_eq!(n7["request"]["channels"], json!(["telegram"]), "{name}");
    // Nothing of the refused requests was recorded.
    for id in ["n2", "n3", "n4", "n5", "n6"] {
        let s = rt
            .block_on(impressox_host::notify::service::status(
                &h.docs,
                &format!("caps-probe:{id}"),
            ))
            .unwrap();
        assert!(s.is_none(), "{name}: {id} was refused but recorded");
    }
}

#[test]
fn notify_enqueue_is_validated_idempotent_and_sourced_embedded() {
    let h = CapsHost::new(&Backend::Embedded, GRANT_ALL);
    enqueue_is_validated_idempotent_and_sourced(h, "embedded");
}

#[test]
fn notify_enqueue_is_validated_idempotent_and_sourced_redis_mongodb() {
    let redis = Backend::redis();
    let mongo = Backend::mongo();
    let h = CapsHost::new(&redis, &format!("{}{GRANT_ALL}", mongo.toml()));
    enqueue_is_validated_idempotent_and_sourced(h, "redis+mongodb");
}

#[test]
fn notify_at_the_stream_bound_is_refused_and_nothing_is_kept() {
    let h = CapsHost::new(
        &Backend::Embedded,
        &format!("{GRANT_ALL}[market]\nstream_maxlen = 1\n"),
    );
    h.load(test_artifacts::GUEST_CAPS_PROBE, PROBE);
    let rt = impressox_host::runtime::deadline::io_runtime();
    rt.block_on(h.store.ensure_group(NOTIFY_REQUESTS, "notify"))
        .unwrap();
    let r = h.ops(
        PROBE,
        json!([
            ["notify.enqueue", "a", "u1", "first", "{}", []],
            ["notify.enqueue", "b", "u1", "second", "{}", []],
        ]),
    );
    ok(&r[0]);
    assert!(err(&r[1]).contains("is full"), "{}", r[1]);
    let s = rt
        .block_on(impressox_host::notify::service::status(
            &h.docs,
            "caps-probe:b",
        ))
        .unwrap();
    assert!(s.is_none(), "a refused request left a record");
}
