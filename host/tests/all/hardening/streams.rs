//! Issue 12, item 1: a bounded stream never loses an entry a consumer still needs.
//!
//! Trimming used to be `MAXLEN ~` (and its embedded equivalent), which deletes the oldest
//! entries whether or not any consumer group has read them: with the notify worker down,
//! notifications accepted with 202 vanished. Now an entry goes only once every group has
//! acknowledged it, and a stream at its bound refuses producers (the API with a 503, the
//! market engine by waiting) instead. Every test runs on the embedded store and on Redis.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use impressox_host::market::MarketMonitor;
use impressox_host::storage::{MarketCommit, NOTIFY_REQUESTS, PricePoint, Store, StoreLimits};
use serde_json::{Value, json};

use super::host_process::{HostDir, terminate_within};
use crate::harness::host_with;
use crate::market::pipeline::seed;
use crate::market::rig::{BOTH, Backend, sawtooth, storage_section, write_csv};

const BOUND: usize = 5;

fn bounded() -> StoreLimits {
    StoreLimits {
        history_len: 10,
        stream_maxlen: BOUND,
        idempotency_ttl_secs: 3600,
    }
}

/// A store of `backend` with the small bound (and the Redis server keeping it alive).
async fn open_bounded(
    backend: Backend,
    dir: &std::path::Path,
) -> (Arc<dyn Store>, Option<crate::servers::redis::RedisServer>) {
    match backend {
        Backend::Embedded => {
            let store = impressox_host::storage::embedded::EmbeddedStore::open(
                &dir.join("store.redb"),
                bounded(),
            )
            .unwrap();
            (Arc::new(store), None)
        }
        Backend::Redis => {
            let redis = crate::servers::redis::RedisServer::start();
            let store =
                impressox_host::storage::redis_store::RedisStore::connect(&redis.url(), bounded())
                    .await
                    .unwrap();
            (Arc::new(store), Some(redis))
        }
    }
}

fn keys(entries: &[impressox_host::storage::StreamEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}

fn ids(entries: &[impressox_host::storage::StreamEntry]) -> Vec<String> {
    entries.iter().map(|e| e.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimming_never_removes_an_entry_a_group_has_not_acknowledged() {
    for backend in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let (store, _redis) = open_bounded(backend, dir.path()).await;
        let s = "hardening:bounded";
        // Two groups, both there before the first entry (a first read creates a group).
        for g in ["fast", "slow"] {
            assert!(store.read_new(s, g, "c", 10, 0).await.unwrap().is_empty());
        }
        for i in 0..BOUND {
            let id = store
                .enqueue_once(s, &format!("k{i}"), &format!("body {i}"))
                .await
                .unwrap();
            assert!(id.is_some(), "{backend:?}: k{i}");
        }
        let fast = store.read_new(s, "fast", "c", 10, 0).await.unwrap();
        assert_eq!(keys(&fast), ["k0", "k1", "k2", "k3", "k4"], "{backend:?}");
        store.ack(s, "fast", &ids(&fast)).await.unwrap();
        let slow = store.read_new(s, "slow", "c", 2, 0).await.unwrap();
        store.ack(s, "slow", &[slow[0].id.clone()]).await.unwrap();

        // Only k0 is acknowledged by both groups: one entry fits, the next does not.
        assert!(
            store
                .enqueue_once(s, "k5", "body 5")
                .await
                .unwrap()
                .is_some()
        );
        let err = store
            .enqueue_once(s, "k6", "body 6")
            .await
            .expect_err("the stream is at its bound: the enqueue must be refused");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("`hardening:bounded` is full") && msg.contains("group `slow`"),
            "{backend:?}: {msg}"
        );

        // Everything `slow` has not acknowledged is still there, in order, with its body.
        let pending = store.read_pending(s, "slow", "c", 10).await.unwrap();
        assert_eq!(keys(&pending), ["k1"], "{backend:?}");
        assert_eq!(pending[0].body, "body 1");
        let rest = store.read_new(s, "slow", "c", 10, 0).await.unwrap();
        assert_eq!(keys(&rest), ["k2", "k3", "k4", "k5"], "{backend:?}");
        let fast = store.read_new(s, "fast", "c", 10, 0).await.unwrap();
        assert_eq!(keys(&fast), ["k5"], "{backend:?}");

        // The refused key was not recorded: once both groups caught up, it goes in.
        store.ack(s, "slow", &ids(&pending)).await.unwrap();
        store.ack(s, "slow", &ids(&rest)).await.unwrap();
        store.ack(s, "fast", &ids(&fast)).await.unwrap();
        assert_eq!(store.stream_len(s).await.unwrap(), 0, "{backend:?}");
        assert!(
            store
                .enqueue_once(s, "k6", "body 6")
                .await
                .unwrap()
                .is_some(),
            "{backend:?}: a refused key must not count as enqueued"
        );

        // A stream no group reads yet keeps everything for the groups to come.
        let unread = "hardening:unread";
        for i in 0..BOUND {
            store
                .enqueue_once(unread, &format!("u{i}"), "x")
                .await
                .unwrap()
                .unwrap();
        }
        let err = store.enqueue_once(unread, "u5", "x").await.unwrap_err();
        assert!(
            format!("{err:#}").contains("no consumer group reads it yet"),
            "{backend:?}: {err:#}"
        );
        let late = store.read_new(unread, "late", "c", 10, 0).await.unwrap();
        assert_eq!(keys(&late), ["u0", "u1", "u2", "u3", "u4"], "{backend:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_market_commit_at_the_stream_bound_writes_nothing_until_there_is_room() {
    for backend in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let (store, _redis) = open_bounded(backend, dir.path()).await;
        assert!(
            store
                .read_new(NOTIFY_REQUESTS, "notify", "c", 10, 0)
                .await
                .unwrap()
                .is_empty()
        );
        for i in 0..BOUND {
            store
                .enqueue_once(NOTIFY_REQUESTS, &format!("earlier-{i}"), "{}")
                .await
                .unwrap()
                .unwrap();
        }
        let commit = MarketCommit {
            requests: vec![("rule-r-1".into(), r#"{"id":"rule-r-1"}"#.into())],
            rules: vec![("r".into(), r#"{"id":"r","fired":true}"#.into())],
            latest: vec![PricePoint {
                symbol: "BTCUSDT".into(),
                price: 70_000.0,
                ts_ms: 1,
                source: "s".into(),
            }],
            history: Vec::new(),
            checkpoints: vec![("source:s".into(), "row 2".into())],
            fence: Vec::new(),
        };
        let err = store.commit_market(&commit).await.unwrap_err();
        assert!(
            format!("{err:#}").contains("is full"),
            "{backend:?}: {err:#}"
        );
        // Not half-applied: the checkpoint must not move past an alert that is not queued.
        assert_eq!(store.get_checkpoint("source:s").await.unwrap(), None);
        assert_eq!(store.get_rule("r").await.unwrap(), None);
        assert_eq!(store.latest_price("BTCUSDT").await.unwrap(), None);

        let taken = store
            .read_new(NOTIFY_REQUESTS, "notify", "c", 10, 0)
            .await
            .unwrap();
        store
            .ack(NOTIFY_REQUESTS, "notify", &ids(&taken))
            .await
            .unwrap();
        let enqueued = store.commit_market(&commit).await.unwrap();
        assert!(enqueued[0].is_some(), "{backend:?}: {enqueued:?}");
        assert_eq!(
            store.get_checkpoint("source:s").await.unwrap().as_deref(),
            Some("row 2")
        );
        let next = store
            .read_new(NOTIFY_REQUESTS, "notify", "c", 10, 0)
            .await
            .unwrap();
        assert_eq!(keys(&next), ["rule-r-1"], "{backend:?}");
    }
}

const T0: i64 = 1_764_300_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_market_engine_waits_at_the_stream_bound_and_loses_no_alert() {
    for backend in BOTH {
        let (storage, _redis) = storage_section(backend);
        let files = tempfile::tempdir().unwrap();
        // 400 s of a sawtooth: 20 crossings each way and one `once`, replayed at full
        // speed one tick per engine cycle, so every commit holds at most one alert.
        let csv = write_csv(files.path(), "saw.csv", &sawtooth(T0, 400));
        let rules = seed(
            "up",
            "BTCUSDT",
            "{ op = \"crosses_up\", value = 121 }",
            "{ mode = \"every\" }",
        ) + &seed(
            "down",
            "BTCUSDT",
            "{ op = \"crosses_down\", value = 119 }",
            "{ mode = \"every\" }",
        ) + &seed(
            "once",
            "BTCUSDT",
            "{ op = \"above\", value = 130 }",
            "{ mode = \"once\" }",
        );
        let host = host_with(&format!(
            "{storage}\n[market]\nconsole_alerts = false\ncommit_interval_ms = 50\n\
             stream_maxlen = 3\ncycle_max_ticks = 1\nbatch_max_ticks = 1\n\
             [[market.sources]]\nname = \"file\"\nkind = \"replay\"\nparser = \"replay-rows\"\n\
             path = \"{}\"\nspeed = 0.0\nchunk_lines = 1\n{rules}",
            csv.display()
        ));
        host.load(test_artifacts::THRESHOLD, "threshold.wasm");
        host.load(test_artifacts::REPLAY_ROWS, "replay-rows.wasm");
        std::fs::create_dir_all(host.config.data_dir()).unwrap();
        let limits = StoreLimits {
            stream_maxlen: 3,
            ..StoreLimits::default()
        };
        let store = impressox_host::storage::open(&host.config, limits)
            .await
            .unwrap();
        let monitor = MarketMonitor::start(&host.config, host.runtime.clone(), store.clone())
            .await
            .unwrap();

        // Nobody reads for a while: the alerts must wait in the engine, not be trimmed.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let len = store.stream_len(NOTIFY_REQUESTS).await.unwrap();
        assert!(
            len <= 3,
            "{backend:?}: {len} entries in a stream bounded to 3"
        );

        // Then the notify worker's group (which the monitor created up front) reads
        // slowly; every alert arrives, once.
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        while seen.len() < 41 {
            assert!(
                Instant::now() < deadline,
                "{backend:?}: only {} alerts arrived: {:?}",
                seen.len(),
                seen.keys().collect::<Vec<_>>()
            );
            let got = store
                .read_new(NOTIFY_REQUESTS, "notify", "t", 2, 200)
                .await
                .unwrap();
            let len = store.stream_len(NOTIFY_REQUESTS).await.unwrap();
            assert!(
                len <= 3,
                "{backend:?}: {len} entries in a stream bounded to 3"
            );
            for e in &got {
                *seen.entry(e.key.clone()).or_default() += 1;
            }
            store
                .ack(NOTIFY_REQUESTS, "notify", &ids(&got))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        monitor.stop().await;
        let mut expected = vec![format!("rule-once-{}", T0 / 1000 + 8)];
        for cycle in 0..20 {
            expected.push(format!("rule-up-{}", T0 / 1000 + 20 * cycle + 6));
            expected.push(format!("rule-down-{}", T0 / 1000 + 20 * cycle + 16));
        }
        expected.sort();
        assert_eq!(
            seen.keys().cloned().collect::<Vec<_>>(),
            expected,
            "{backend:?}"
        );
        assert!(
            seen.values().all(|n| *n == 1),
            "{backend:?}: an alert arrived twice: {seen:?}"
        );
    }
}

fn request(i: usize) -> Value {
    json!({"id": format!("bound-{i:02}"), "user_id": "u1", "kind": "price_alert",
           "priority": "normal", "title": format!("N{i:02}Z"), "body": "b"})
}

async fn post(http: &reqwest::Client, api: &str, body: &Value) -> reqwest::Response {
    http.post(format!("{api}/api/v1/notifications"))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_past_the_stream_bound_are_refused_clearly_and_none_is_lost() {
    let http = reqwest::Client::new();
    for backend in BOTH {
        let (storage, _redis) = storage_section(backend);
        let common = format!(
            "{storage}\n[documents]\nbackend = \"embedded\"\n[market]\nstream_maxlen = {BOUND}\n"
        );
        // The API alone first: the notify worker is stopped while the requests come in.
        let host = HostDir::new(
            &[(test_artifacts::PLAIN_FORMATTER, "plain-formatter")],
            &format!("{common}[workers]\nenabled = []\n"),
        );
        let mut child = host.spawn(&[]);
        host.wait_ready(&http).await;
        for i in 0..20 {
            let r = post(&http, &host.api(), &request(i)).await;
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body: Value = r.json().await.unwrap();
            if i < BOUND {
                assert_eq!(status, 202, "{backend:?} #{i}: {body}");
                continue;
            }
            assert_eq!(status, 503, "{backend:?} #{i}: {body}");
            assert_eq!(body["error"]["code"], "queue_full", "{body}");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(msg.contains("notify:requests"), "{msg}");
            assert!(
                retry_after.is_some_and(|s| s >= 1),
                "{backend:?}: no Retry-After"
            );
        }
        // Nothing of a refused request was stored.
        let r = http
            .get(format!("{}/api/v1/notifications/bound-07", host.api()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{backend:?}");
        let metrics = host.metrics(&http).await.unwrap();
        assert!(
            metrics
                .contains("impressox_stream_enqueue_refused_total{stream=\"notify:requests\"} 15"),
            "{backend:?}: {metrics}"
        );
        assert!(terminate_within(&mut child, Duration::from_secs(30)).is_some());

        // The notify worker starts: the five queued ones go out, and the refused ones,
        // sent again as the client was told, go out too. Each exactly once.
        host.write_config(&format!(
            "{common}[workers]\nenabled = [\"notify\"]\n[notify]\nconsumer = \"bound-host\"\n"
        ));
        let mut child = host.spawn(&[]);
        host.wait_ready(&http).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in BOUND..20 {
            loop {
                let r = post(&http, &host.api(), &request(i)).await;
                if r.status() == 202 {
                    break;
                }
                assert_eq!(r.status(), 503, "{backend:?} #{i}");
                assert!(
                    Instant::now() < deadline,
                    "{backend:?}: #{i} never accepted"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        for i in 0..20 {
            loop {
                let r = http
                    .get(format!("{}/api/v1/notifications/bound-{i:02}", host.api()))
                    .send()
                    .await
                    .unwrap();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if v["status"] == "delivered" {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{backend:?}: bound-{i:02} not delivered: {v}\n{}",
                    host.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        assert!(terminate_within(&mut child, Duration::from_secs(30)).is_some());
        let out = host.stdout();
        for i in 0..20 {
            let n = out.matches(&format!("N{i:02}Z")).count();
            assert_eq!(n, 1, "{backend:?}: N{i:02}Z printed {n} times:\n{out}");
        }
    }
}
