//! The storage seam: one suite, run against the embedded store and a real Redis.

use std::sync::Arc;
use std::time::Duration;

use impressox_host::storage::embedded::EmbeddedStore;
use impressox_host::storage::redis_store::RedisStore;
use impressox_host::storage::{MarketCommit, PricePoint, Store, StoreLimits};

use crate::servers::redis::RedisServer;

fn limits() -> StoreLimits {
    StoreLimits {
        history_len: 3,
        stream_maxlen: 1000,
        idempotency_ttl_secs: 3600,
    }
}

fn point(symbol: &str, price: f64, ts_ms: i64) -> PricePoint {
    PricePoint {
        symbol: symbol.into(),
        price,
        ts_ms,
        source: "s".into(),
    }
}

/// The key-value space: namespaces are separate, values are replaced, lists are sorted.
async fn kv_put_get_delete_list(store: &dyn Store) {
    let name = store.backend();
    let ns = "scraper:sessions";
    assert_eq!(store.kv_get(ns, "alice").await.unwrap(), None, "{name}");
    assert!(store.kv_list(ns).await.unwrap().is_empty(), "{name}");
    store.kv_put(ns, "bob", r#"{"cookies":[]}"#).await.unwrap();
    store.kv_put(ns, "alice", "v1").await.unwrap();
    store.kv_put(ns, "alice", "v2").await.unwrap();
    // Same key in another namespace, and a namespace that is a prefix of this one.
    store
        .kv_put("scraper:accounts", "alice", "rec")
        .await
        .unwrap();
    store.kv_put("scraper", "alice", "short").await.unwrap();
    assert_eq!(
        store.kv_get(ns, "alice").await.unwrap().as_deref(),
        Some("v2"),
        "{name}"
    );
    assert_eq!(
        store.kv_list(ns).await.unwrap(),
        vec![
            ("alice".to_string(), "v2".to_string()),
            ("bob".to_string(), r#"{"cookies":[]}"#.to_string()),
        ],
        "{name}"
    );
    assert_eq!(
        store.kv_list("scraper:accounts").await.unwrap(),
        vec![("alice".to_string(), "rec".to_string())],
        "{name}"
    );
    assert!(store.kv_delete(ns, "bob").await.unwrap(), "{name}");
    assert!(!store.kv_delete(ns, "bob").await.unwrap(), "{name}");
    assert_eq!(store.kv_get(ns, "bob").await.unwrap(), None, "{name}");
    assert_eq!(store.kv_list(ns).await.unwrap().len(), 1, "{name}");
    assert_eq!(
        store.kv_get("scraper", "alice").await.unwrap().as_deref(),
        Some("short"),
        "{name}"
    );
}

async fn suite(store: Arc<dyn Store>) {
    let name = store.backend();
    store.ping().await.unwrap();
    kv_put_get_delete_list(store.as_ref()).await;

    // Rules.
    store.put_rule("a", r#"{"id":"a"}"#).await.unwrap();
    store.put_rule("b", r#"{"id":"b"}"#).await.unwrap();
    store.put_rule("a", r#"{"id":"a","v":2}"#).await.unwrap();
    assert_eq!(
        store.get_rule("a").await.unwrap().as_deref(),
        Some(r#"{"id":"a","v":2}"#)
    );
    let mut all = store.list_rules().await.unwrap();
    all.sort();
    assert_eq!(all.len(), 2, "{name}");
    assert!(store.delete_rule("b").await.unwrap());
    assert!(!store.delete_rule("b").await.unwrap());
    assert_eq!(store.get_rule("b").await.unwrap(), None);

    // Prices: latest and a history bounded to 3 points, oldest first.
    let mut commit = MarketCommit::default();
    for i in 0..5 {
        commit.history.push(point("BTCUSDT", 100.0 + i as f64, i));
    }
    commit.latest.push(point("BTCUSDT", 104.0, 4));
    commit.rules.push(("c".into(), r#"{"id":"c"}"#.into()));
    commit.checkpoints.push(("source:x".into(), "42".into()));
    commit.requests.push(("req-1".into(), "{}".into()));
    commit.requests.push(("req-1".into(), "{}".into()));
    let ids = store.commit_market(&commit).await.unwrap();
    assert!(ids[0].is_some() && ids[1].is_none(), "{name}: {ids:?}");
    let again = store.commit_market(&commit).await.unwrap();
    assert_eq!(
        again,
        vec![None, None],
        "{name}: a replayed commit enqueues nothing"
    );
    let nr = impressox_host::storage::NOTIFY_REQUESTS;
    assert_eq!(store.stream_len(nr).await.unwrap(), 1);
    let h = store.price_history("BTCUSDT", 10).await.unwrap();
    assert_eq!(
        h.iter().map(|p| p.ts_ms).collect::<Vec<_>>(),
        vec![2, 3, 4],
        "{name}"
    );
    assert_eq!(store.price_history("BTCUSDT", 2).await.unwrap().len(), 2);
    assert_eq!(
        store.latest_price("BTCUSDT").await.unwrap(),
        Some(point("BTCUSDT", 104.0, 4))
    );
    assert_eq!(store.latest_prices().await.unwrap().len(), 1);
    assert_eq!(store.latest_price("ETHUSDT").await.unwrap(), None);
    assert!(store.get_rule("c").await.unwrap().is_some());
    assert_eq!(
        store.get_checkpoint("source:x").await.unwrap().as_deref(),
        Some("42")
    );
    assert_eq!(store.get_checkpoint("source:y").await.unwrap(), None);

    // Streams: idempotent enqueue, consumer groups, pending after a crash, ack.
    let s = "test:stream";
    let first = store.enqueue_once(s, "k1", "one").await.unwrap();
    assert!(first.is_some());
    assert_eq!(
        store.enqueue_once(s, "k1", "one again").await.unwrap(),
        None,
        "{name}: duplicate key"
    );
    store.enqueue_once(s, "k2", "two").await.unwrap().unwrap();
    assert_eq!(store.stream_len(s).await.unwrap(), 2);
    let got = store.read_new(s, "g", "c1", 10, 0).await.unwrap();
    assert_eq!(
        got.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
        vec!["k1", "k2"]
    );
    assert_eq!(got[0].body, "one");
    assert_eq!(got[0].deliveries, 1);
    assert!(
        store
            .read_new(s, "g", "c1", 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
    // Another group sees everything independently.
    assert_eq!(
        store.read_new(s, "other", "c", 10, 0).await.unwrap().len(),
        2
    );
    // Not acked: handed out again as pending, counting deliveries.
    store.ack(s, "g", &[got[0].id.clone()]).await.unwrap();
    let pending = store.read_pending(s, "g", "c1", 10).await.unwrap();
    assert_eq!(pending.len(), 1, "{name}");
    assert_eq!(pending[0].key, "k2");
    assert_eq!(pending[0].deliveries, 2, "{name}");
    store.ack(s, "g", &[pending[0].id.clone()]).await.unwrap();
    assert!(
        store
            .read_pending(s, "g", "c1", 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A blocking read wakes up when an entry arrives.
    let reader = {
        let store = store.clone();
        tokio::spawn(async move { store.read_new(s, "g", "c1", 10, 5000).await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    store.enqueue_once(s, "k3", "three").await.unwrap().unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(3), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(woke.len(), 1, "{name}");
    assert_eq!(woke[0].key, "k3");
    // And an empty blocking read returns after its timeout.
    let t = std::time::Instant::now();
    assert!(
        store
            .read_new(s, "g", "c1", 10, 200)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(t.elapsed() >= Duration::from_millis(150));

    // A group created up front keeps what it has not read; an entry goes once every
    // group acknowledged it.
    let g = "test:groups";
    store.ensure_group(g, "late").await.unwrap();
    store.ensure_group(g, "late").await.unwrap();
    store.enqueue_once(g, "x1", "one").await.unwrap().unwrap();
    let early = store.read_new(g, "early", "c", 10, 0).await.unwrap();
    store.ack(g, "early", &[early[0].id.clone()]).await.unwrap();
    assert_eq!(
        store.stream_len(g).await.unwrap(),
        1,
        "{name}: group `late` has not read it"
    );
    let late = store.read_new(g, "late", "c", 10, 0).await.unwrap();
    assert_eq!(late.len(), 1, "{name}");
    store.ack(g, "late", &[late[0].id.clone()]).await.unwrap();
    assert_eq!(
        store.stream_len(g).await.unwrap(),
        0,
        "{name}: acknowledged by every group"
    );
    assert_eq!(store.stream_stats().refusals_of(g), 0);

    // A group nobody reads with any more stops holding entries once dropped.
    store.enqueue_once(g, "x2", "two").await.unwrap().unwrap();
    let taken = store.read_new(g, "late", "c", 10, 0).await.unwrap();
    store.ack(g, "late", &[taken[0].id.clone()]).await.unwrap();
    assert_eq!(
        store.stream_len(g).await.unwrap(),
        1,
        "{name}: `early` holds it"
    );
    assert!(store.drop_group(g, "early").await.unwrap(), "{name}");
    assert!(!store.drop_group(g, "early").await.unwrap(), "{name}");
    assert!(
        !store.drop_group("test:none", "early").await.unwrap(),
        "{name}"
    );
    store.enqueue_once(g, "x3", "three").await.unwrap().unwrap();
    let taken = store.read_new(g, "late", "c", 10, 0).await.unwrap();
    store.ack(g, "late", &[taken[0].id.clone()]).await.unwrap();
    assert_eq!(store.stream_len(g).await.unwrap(), 0, "{name}");
}

/// Event streams: producers' fields in order, idempotent appends within a per-stream
/// bound, groups from the end, and commits that ack with effects all or nothing.
async fn event_streams(store: &dyn Store) {
    use impressox_host::storage::{
        EventCommit, KvEffect, KvOp, PluginKvRefused, StaleAcks, StreamFull,
    };
    let name = store.backend();
    let s = "ev:stream";
    let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // A group from the end does not see what came before it.
    store
        .append_event(s, None, &f(&[("old", "1")]), 10)
        .await
        .unwrap()
        .unwrap();
    store.ensure_group_at(s, "late", true).await.unwrap();
    store.ensure_group_at(s, "g", false).await.unwrap();
    store
        .append_event(s, Some("k1"), &f(&[("z", "1"), ("a", "2")]), 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .append_event(s, Some("k1"), &f(&[("z", "1")]), 10)
            .await
            .unwrap(),
        None,
        "{name}"
    );
    let late = store.read_new(s, "late", "c", 10, 0).await.unwrap();
    assert_eq!(late.len(), 1, "{name}");
    assert_eq!(
        late[0].fields,
        f(&[("z", "1"), ("a", "2")]),
        "{name}: fields in order"
    );
    store.ack(s, "late", &[late[0].id.clone()]).await.unwrap();
    // The bound counts what the slowest group still needs.
    let err = store
        .append_event(s, None, &f(&[("x", "1")]), 2)
        .await
        .unwrap_err();
    assert_eq!(
        StreamFull::find(&err).unwrap().held_by.as_deref(),
        Some("g"),
        "{name}"
    );
    let got = store.read_new(s, "g", "c", 10, 0).await.unwrap();
    assert_eq!(got.len(), 2, "{name}");
    assert_eq!(store.pending_count(s, "g").await.unwrap(), 2, "{name}");
    store
        .touch_pending(s, "g", "c", &[got[0].id.clone()])
        .await
        .unwrap();

    let kv = |key: &str, op: KvOp| KvEffect {
        ns: "probe".into(),
        key: key.into(),
        op,
    };
    let commit = |acks: Vec<String>, effects: Vec<KvEffect>, consumer: &str| EventCommit {
        stream: s.into(),
        group: "g".into(),
        consumer: consumer.into(),
        acks,
        kv: effects,
        notify: vec![("ev-n1".into(), "{}".into())],
        forget: vec![("events:attempts:test".into(), got[0].id.clone())],
        kv_max_keys: 2,
    };
    store
        .kv_put("events:attempts:test", &got[0].id, "{}")
        .await
        .unwrap();
    let before = store
        .stream_len(impressox_host::storage::NOTIFY_REQUESTS)
        .await
        .unwrap();
    // Another consumer's commit is refused: nothing written.
    let err = store
        .commit_events(&commit(
            vec![got[0].id.clone()],
            vec![kv("a", KvOp::Incr(1))],
            "other",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        StaleAcks::find(&err).unwrap().ids,
        vec![got[0].id.clone()],
        "{name}"
    );
    // Over the key cap (three new keys, cap two): nothing at all is written.
    let over = vec![
        kv("a", KvOp::Incr(1)),
        kv(
            "b",
            KvOp::Set {
                value: b"x".to_vec(),
                ttl_ms: None,
            },
        ),
        kv(
            "c",
            KvOp::Set {
                value: b"y".to_vec(),
                ttl_ms: Some(60_000),
            },
        ),
    ];
    let err = store
        .commit_events(&commit(vec![got[0].id.clone()], over, "c"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            PluginKvRefused::find(&err),
            Some(PluginKvRefused::TooManyKeys { max: 2 })
        ),
        "{name}: {err:#}"
    );
    assert_eq!(
        store.plugin_kv_get("probe", "a").await.unwrap(),
        None,
        "{name}: no partial write"
    );
    assert_eq!(
        store.pending_count(s, "g").await.unwrap(),
        2,
        "{name}: not acked"
    );
    assert_eq!(
        store
            .stream_len(impressox_host::storage::NOTIFY_REQUESTS)
            .await
            .unwrap(),
        before,
        "{name}"
    );
    // Incrementing text: refused, nothing written.
    store
        .plugin_kv_set("probe", "t", b"text", None, 10)
        .await
        .unwrap();
    let err = store
        .commit_events(&commit(
            vec![got[0].id.clone()],
            vec![kv("a", KvOp::Incr(1)), kv("t", KvOp::Incr(1))],
            "c",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            PluginKvRefused::find(&err),
            Some(PluginKvRefused::NotAnInteger)
        ),
        "{name}: {err:#}"
    );
    assert_eq!(
        store.plugin_kv_get("probe", "a").await.unwrap(),
        None,
        "{name}"
    );
    store.plugin_kv_delete("probe", "t").await.unwrap();
    // Within the cap: applied, acked, the attempt record forgotten, the notification queued.
    let ok = vec![
        kv("a", KvOp::Incr(2)),
        kv("a", KvOp::Incr(3)),
        kv(
            "b",
            KvOp::Set {
                value: b"x".to_vec(),
                ttl_ms: None,
            },
        ),
        kv("b", KvOp::Delete),
    ];
    store
        .commit_events(&commit(vec![got[0].id.clone()], ok.clone(), "c"))
        .await
        .unwrap();
    assert_eq!(
        store.plugin_kv_get("probe", "a").await.unwrap().as_deref(),
        Some(&b"5"[..]),
        "{name}"
    );
    assert_eq!(
        store.plugin_kv_get("probe", "b").await.unwrap(),
        None,
        "{name}"
    );
    assert_eq!(store.pending_count(s, "g").await.unwrap(), 1, "{name}");
    assert_eq!(
        store
            .kv_get("events:attempts:test", &got[0].id)
            .await
            .unwrap(),
        None,
        "{name}"
    );
    assert_eq!(
        store
            .stream_len(impressox_host::storage::NOTIFY_REQUESTS)
            .await
            .unwrap(),
        before + 1,
        "{name}"
    );
    // Sent again (an answer lost on the way): refused as stale, applied once only.
    let err = store
        .commit_events(&commit(vec![got[0].id.clone()], ok, "c"))
        .await
        .unwrap_err();
    assert!(StaleAcks::find(&err).is_some(), "{name}");
    assert_eq!(
        store.plugin_kv_get("probe", "a").await.unwrap().as_deref(),
        Some(&b"5"[..]),
        "{name}"
    );
    // The last entry: acked with no effects; every group is done, so the stream is empty.
    store
        .commit_events(&EventCommit {
            stream: s.into(),
            group: "g".into(),
            consumer: "c".into(),
            acks: vec![got[1].id.clone()],
            kv_max_keys: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(store.stream_len(s).await.unwrap(), 0, "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_passes_the_suite_and_keeps_state_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db/impressox.redb");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&path, limits()).unwrap());
    suite(store.clone()).await;
    event_streams(store.as_ref()).await;
    drop(store);
    let again = EmbeddedStore::open(&path, limits()).unwrap();
    assert!(again.get_rule("a").await.unwrap().is_some());
    assert_eq!(again.stream_len("test:stream").await.unwrap(), 3);
    assert_eq!(
        again.enqueue_once("test:stream", "k1", "x").await.unwrap(),
        None,
        "keys survive a reopen"
    );
    assert_eq!(
        again
            .kv_get("scraper:sessions", "alice")
            .await
            .unwrap()
            .as_deref(),
        Some("v2"),
        "key-value entries survive a reopen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_passes_the_suite() {
    let redis = RedisServer::start();
    let store: Arc<dyn Store> =
        Arc::new(RedisStore::connect(&redis.url(), limits()).await.unwrap());
    suite(store.clone()).await;
    event_streams(store.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_survives_a_redis_restart() {
    let mut redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url(), limits()).await.unwrap();
    store
        .enqueue_once("s", "before", "x")
        .await
        .unwrap()
        .unwrap();
    redis.stop();
    assert!(
        store.ping().await.is_err(),
        "a stopped Redis is an error, not a hang"
    );
    redis.restart();
    // The connection manager reconnects; the caller retries until then.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match store.enqueue_once("s", "after", "y").await {
            Ok(id) => {
                assert!(id.is_some());
                break;
            }
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "never reconnected: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(store.ping().await.is_ok());
}

#[test]
fn an_unreachable_redis_is_a_clear_start_up_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = crate::servers::redis::free_port();
    let err = rt
        .block_on(RedisStore::connect(
            &format!("redis://127.0.0.1:{port}"),
            limits(),
        ))
        .err()
        .unwrap();
    assert!(
        format!("{err:#}").contains("cannot connect to Redis"),
        "{err:#}"
    );
}

// ------------------------------------------------------------------------- scheduler

/// The scheduler's records: compare-and-set on a version, a deleted record keeps its
/// version (so a writer holding an older one never matches a record made again), each
/// write of a batch stands alone, and both calls answer the store's clock.
async fn schedule_records(store: Arc<dyn Store>) {
    use impressox_host::storage::{ScheduleCas, ScheduleRecord, ScheduleWrite};
    let name = store.backend();
    let names = vec!["a".to_string(), "b".to_string()];
    let read = store.schedule_load(&names).await.unwrap();
    assert_eq!(
        read.records,
        vec![
            ScheduleRecord {
                json: None,
                version: 0
            };
            2
        ],
        "{name}"
    );
    let local = impressox_host::util::now_ms();
    assert!((read.now_ms - local).abs() < 5_000, "{name}: store clock");
    let write = |n: &str, version: u64, json: Option<&str>| ScheduleWrite {
        name: n.into(),
        version,
        json: json.map(str::to_string),
    };
    let reply = store
        .schedule_cas(&[write("a", 0, Some("{\"n\":1}")), write("b", 3, Some("{}"))])
        .await
        .unwrap();
    assert_eq!(
        reply.outcomes,
        vec![
            ScheduleCas::Written { version: 1 },
            ScheduleCas::Conflict(ScheduleRecord {
                json: None,
                version: 0
            })
        ],
        "{name}: each write of a batch stands alone"
    );
    // A second writer that read version 0 loses and learns the record.
    let reply = store
        .schedule_cas(&[write("a", 0, Some("{\"n\":99}"))])
        .await
        .unwrap();
    assert_eq!(
        reply.outcomes,
        vec![ScheduleCas::Conflict(ScheduleRecord {
            json: Some("{\"n\":1}".into()),
            version: 1
        })],
        "{name}"
    );
    // Delete, then make again: versions go on, so version 1 never matches again.
    let reply = store.schedule_cas(&[write("a", 1, None)]).await.unwrap();
    assert_eq!(
        reply.outcomes,
        vec![ScheduleCas::Written { version: 2 }],
        "{name}"
    );
    let read = store.schedule_load(&names[..1]).await.unwrap();
    assert_eq!(
        read.records,
        vec![ScheduleRecord {
            json: None,
            version: 2
        }],
        "{name}: deleted, version kept"
    );
    let reply = store
        .schedule_cas(&[write("a", 1, Some("{\"stale\":true}"))])
        .await
        .unwrap();
    assert!(
        matches!(reply.outcomes[0], ScheduleCas::Conflict(_)),
        "{name}: a version from before the delete"
    );

    // Many writers, each a read-modify-write loop: no increment is lost.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                loop {
                    let read = store.schedule_load(&["counter".to_string()]).await.unwrap();
                    let r = &read.records[0];
                    let n: u64 = r.json.as_deref().map_or(0, |j| j.parse().unwrap());
                    let reply = store
                        .schedule_cas(&[ScheduleWrite {
                            name: "counter".into(),
                            version: r.version,
                            json: Some((n + 1).to_string()),
                        }])
                        .await
                        .unwrap();
                    if matches!(reply.outcomes[0], ScheduleCas::Written { .. }) {
                        break;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let read = store.schedule_load(&["counter".to_string()]).await.unwrap();
    assert_eq!(read.records[0].json.as_deref(), Some("200"), "{name}");
    assert_eq!(read.records[0].version, 200, "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_schedule_records_are_compare_and_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("impressox.redb");
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&path, limits()).unwrap());
    schedule_records(store.clone()).await;
    drop(store);
    let again = EmbeddedStore::open(&path, limits()).unwrap();
    let read = again.schedule_load(&["counter".to_string()]).await.unwrap();
    assert_eq!(read.records[0].version, 200, "records survive a reopen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_schedule_records_are_compare_and_set() {
    let redis = RedisServer::start();
    let store: Arc<dyn Store> =
        Arc::new(RedisStore::connect(&redis.url(), limits()).await.unwrap());
    schedule_records(store).await;
}

fn indexed_rule(id: &str, created_at: &str, firing: u32) -> String {
    serde_json::json!({
        "id": id, "user_id": "u1", "symbol": "btcusdt", "created_at": created_at,
        "firing": firing
    })
    .to_string()
}

/// Rules stored before the indexes existed are indexed once at connect; a batch of that
/// build read before a rule was deleted does not put the deleted rule's entries back (two
/// hosts: one builds the index while the other deletes), while a rule whose record
/// changed otherwise since the scan (a firing state) stays indexed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rule_index_build_indexes_old_rules_and_never_revives_a_deleted_one() {
    use impressox_host::storage::RuleScope;
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let (t_a, t_b) = ("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:01.000Z");
    // Stored the way a host before the indexes stored rules: the hash only.
    let _: () = redis::cmd("HSET")
        .arg("market:rules")
        .arg("a")
        .arg(indexed_rule("a", t_a, 0))
        .arg("b")
        .arg(indexed_rule("b", t_b, 0))
        .query_async(&mut raw)
        .await
        .unwrap();
    let store = RedisStore::connect(&redis.url(), limits()).await.unwrap();
    assert_eq!(store.count_rules_in(&RuleScope::All).await.unwrap(), 2);
    let user = RuleScope::User("u1".into());
    assert_eq!(store.page_rules(&user, 0, 10).await.unwrap().len(), 2);

    // Another host's build scanned [a, b]; then a was deleted and b's firing state changed.
    assert!(store.delete_rule("a").await.unwrap());
    store
        .put_rule("b", &indexed_rule("b", t_b, 1))
        .await
        .unwrap();
    let stale_batch = [("a", t_a), ("b", t_b)];
    let script = redis::Script::new(include_str!("../../src/storage/redis_lua/index_rules.lua"));
    let mut invocation = script.prepare_invoke();
    invocation.key("market:rules").arg("market:rules:index:");
    for (id, created_at) in stale_batch {
        invocation
            .arg(id)
            .arg(created_at)
            .arg(format!("{created_at} {id}"))
            .arg("all")
            .arg("u:u1")
            .arg("s:BTCUSDT");
    }
    let indexed: u64 = invocation.invoke_async(&mut raw).await.unwrap();
    assert_eq!(indexed, 1, "only b is still stored");
    assert_eq!(store.count_rules_in(&RuleScope::All).await.unwrap(), 1);
    for scope in [
        RuleScope::All,
        user.clone(),
        RuleScope::Symbol("BTCUSDT".into()),
    ] {
        let page = store.page_rules(&scope, 0, 10).await.unwrap();
        assert_eq!(page.len(), 1, "{scope:?}: {page:?}");
        assert!(page[0].contains("\"b\""), "{scope:?}: {page:?}");
    }

    // A rule deleted and created again under its id is in the index once, by its new time.
    let t_a2 = "2026-01-02T00:00:00.000Z";
    store
        .put_rule("a", &indexed_rule("a", t_a2, 0))
        .await
        .unwrap();
    let indexed: u64 = invocation.invoke_async(&mut raw).await.unwrap();
    assert_eq!(indexed, 1, "the stale a carries its old creation time");
    assert_eq!(store.count_rules_in(&RuleScope::All).await.unwrap(), 2);
}
