//! `docs` from a real component, on the embedded document store and on MongoDB
//! (SecantusDB): granted collections only, each in the plugin's own namespace.

use impressox_host::documents::{Doc, Write};
use serde_json::{Value, json};

use super::{Backend, CapsHost, err, ok};

const PROBE: &str = "caps-probe";
const GRANT_ALL: &str = "[plugins.grants.caps-probe]\nkv = true\ndocs = [\"things\", \"whales\"]\nnotify = true\nprices = true\n";

fn round_trip_find_and_namespaces(backend: Backend) {
    let name = backend.name();
    let h = CapsHost::new(&backend, GRANT_ALL);
    h.load(test_artifacts::GUEST_CAPS_PROBE, PROBE);
    let rt = impressox_host::runtime::deadline::io_runtime();
    // A host collection with the same ids the plugin uses.
    let mut tweet = Doc::new();
    tweet.insert("_id".into(), json!("t1"));
    tweet.insert("text".into(), json!("host data"));
    rt.block_on(h.docs.write(vec![Write::Upsert {
        coll: "tweets".into(),
        doc: tweet,
    }]))
    .unwrap();
    let r = h.ops(
        PROBE,
        json!([
            ["docs.get", "things", "t1"],
            [
                "docs.upsert",
                "things",
                "t1",
                "{\"chain\": \"eth\", \"amount\": 5, \"tags\": [\"a\"]}"
            ],
            [
                "docs.upsert",
                "things",
                "t2",
                "{\"chain\": \"btc\", \"amount\": 7}"
            ],
            [
                "docs.upsert",
                "things",
                "t3",
                "{\"chain\": \"eth\", \"amount\": 9}"
            ],
            ["docs.get", "things", "t1"],
            [
                "docs.upsert",
                "things",
                "t1",
                "{\"chain\": \"eth\", \"amount\": 6}"
            ],
            ["docs.find", "things", "{\"chain\": \"eth\"}", 10],
            ["docs.find", "things", "{}", 2],
            [
                "docs.find",
                "things",
                "{\"chain\": \"eth\", \"amount\": 9}",
                10
            ],
            ["docs.delete", "things", "t2"],
            ["docs.delete", "things", "t2"],
            ["docs.get", "things", "t2"],
        ]),
    );
    assert_eq!(
        ok(&r[0]),
        &Value::Null,
        "{name}: the host's t1 is not the plugin's"
    );
    let t1 = ok(&r[4]);
    assert_eq!(
        t1,
        &json!({"_id": "t1", "chain": "eth", "amount": 5, "tags": ["a"]}),
        "{name}"
    );
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| d["_id"].as_str().unwrap().to_string())
            .collect()
    };
    // Newest first: t1 was written again after t3.
    assert_eq!(ids(ok(&r[6])), vec!["t1", "t3"], "{name}");
    assert_eq!(ok(&r[6])[0]["amount"], json!(6), "{name}");
    assert_eq!(ids(ok(&r[7])), vec!["t1", "t3"], "{name}: the limit holds");
    assert_eq!(ids(ok(&r[8])), vec!["t3"], "{name}");
    assert_eq!(ok(&r[9]), &json!(true), "{name}");
    assert_eq!(ok(&r[10]), &json!(false), "{name}");
    assert_eq!(ok(&r[11]), &Value::Null, "{name}");
    // Stored in the plugin's namespace; the host's collection is untouched.
    let stored = rt
        .block_on(h.docs.get("plugin.caps-probe.things", "t1"))
        .unwrap()
        .unwrap();
    assert_eq!(stored["amount"], json!(6), "{name}");
    let host_t1 = rt.block_on(h.docs.get("tweets", "t1")).unwrap().unwrap();
    assert_eq!(host_t1["text"], json!("host data"), "{name}");

    // Collections not granted, however spelled.
    for coll in [
        "tweets",
        "deliveries",
        "notifications",
        "plugin.caps-probe.things",
        "../tweets",
        "things\u{0}",
        "Things",
        "",
    ] {
        let r = h.ops(
            PROBE,
            json!([
                ["docs.get", coll, "t1"],
                ["docs.upsert", coll, "x", "{}"],
                ["docs.find", coll, "{}", 1]
            ]),
        );
        for (i, res) in r.iter().enumerate() {
            assert!(
                err(res).contains("not granted"),
                "{name}: {coll} op {i}: {res}"
            );
        }
    }
    assert!(
        rt.block_on(h.docs.get("tweets", "x")).unwrap().is_none(),
        "{name}"
    );

    // Bad input is an error naming what is wrong.
    let r = h.ops(
        PROBE,
        json!([
            ["docs.upsert", "things", "bad", "{\"a\": "],
            ["docs.upsert", "things", "bad", "[1, 2]"],
            [
                "docs.upsert",
                "things",
                "bad",
                "{\"nested\": {\"$set\": 1}}"
            ],
            ["docs.upsert", "things", "bad", "{\"a.b\": 1}"],
            ["docs.upsert", "things", "bad", "{\"_id\": \"other\"}"],
            ["docs.find", "things", "{\"amount\": {\"$gt\": 1}}", 10],
            ["docs.find", "things", "{}", 0],
            ["docs.find", "things", "{}", 100000],
            ["docs.upsert", "things", "", "{}"],
        ]),
    );
    assert!(err(&r[0]).contains("is not JSON"), "{name}: {}", r[0]);
    assert!(
        err(&r[1]).contains("must be a JSON object, not an array"),
        "{name}: {}",
        r[1]
    );
    assert!(err(&r[2]).contains("\"nested.$set\""), "{name}: {}", r[2]);
    assert!(err(&r[3]).contains("\"a.b\""), "{name}: {}", r[3]);
    assert!(err(&r[4]).contains("not its id"), "{name}: {}", r[4]);
    assert!(
        err(&r[5]).contains("only a string, number, boolean or null"),
        "{name}: {}",
        r[5]
    );
    assert!(err(&r[6]).contains("max_find_limit"), "{name}: {}", r[6]);
    assert!(err(&r[7]).contains("max_find_limit"), "{name}: {}", r[7]);
    assert!(err(&r[8]).contains("max_id_bytes"), "{name}: {}", r[8]);
    assert!(
        rt.block_on(h.docs.get("plugin.caps-probe.things", "bad"))
            .unwrap()
            .is_none(),
        "{name}"
    );
}

#[test]
fn docs_round_trip_find_and_namespaces_embedded() {
    round_trip_find_and_namespaces(Backend::Embedded);
}

#[test]
fn docs_round_trip_find_and_namespaces_mongodb() {
    round_trip_find_and_namespaces(Backend::mongo());
}

#[test]
fn docs_document_size_cap_is_an_error() {
    let h = CapsHost::new(
        &Backend::Embedded,
        &format!("{GRANT_ALL}[capabilities.docs]\nmax_document_bytes = 64\n"),
    );
    h.load(test_artifacts::GUEST_CAPS_PROBE, PROBE);
    let big = format!("{{\"x\": \"{}\"}}", "y".repeat(80));
    let r = h.ops(
        PROBE,
        json!([
            ["docs.upsert", "things", "big", big],
            ["docs.upsert", "things", "small", "{\"x\": 1}"]
        ]),
    );
    assert!(err(&r[0]).contains("max_document_bytes"), "{}", r[0]);
    ok(&r[1]);
}

#[test]
fn docs_an_invalid_granted_collection_name_is_refused_at_load() {
    let h = CapsHost::new(
        &Backend::Embedded,
        "[plugins.grants.caps-probe]\nkv = true\ndocs = [\"../tweets\"]\nnotify = true\nprices = true\n",
    );
    let e = h
        .try_load(test_artifacts::GUEST_CAPS_PROBE, PROBE)
        .unwrap_err();
    assert!(e.contains("[plugins.grants.caps-probe] docs"), "{e}");
    assert!(e.contains("`../tweets` is not a collection name"), "{e}");
}
