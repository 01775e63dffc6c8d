//! The lease scripts on a real Redis: `SET NX PX` takes only free leases, renewal and
//! release compare the fencing token, a restarted host takes its own leases back, and a
//! market commit under a lease that moved writes nothing. Plus the configuration rule:
//! `partitions` on the embedded store is refused.

use std::time::Duration;

use impressox_host::market::cluster::leases::Leases;
use impressox_host::market::cluster::{lease_key, token_host};
use impressox_host::storage::redis_store::RedisStore;
use impressox_host::storage::{Fenced, MarketCommit, NOTIFY_REQUESTS, Store, StoreLimits};

use crate::servers::redis::RedisServer;

#[tokio::test]
async fn leases_are_taken_free_renewed_and_released_by_their_token_only() {
    let redis = RedisServer::start();
    let leases = Leases::connect(&redis.url()).await.unwrap();
    let a = leases.acquire("a", 60_000, &[0, 1, 2, 3], 2).await.unwrap();
    assert_eq!(a.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![0, 1]);
    assert!(a.iter().all(|(_, t)| token_host(t) == "a"));
    // b gets only what is free, however many it asks for.
    let b = leases.acquire("b", 60_000, &[0, 1, 2, 3], 4).await.unwrap();
    assert_eq!(b.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![2, 3]);

    // Renewal with the right tokens keeps them; a wrong token is reported lost.
    let beat = leases.heartbeat("a", 60_000, &a).await.unwrap();
    assert!(beat.lost.is_empty());
    assert_eq!(beat.live_hosts, 1, "b never sent a heartbeat");
    let forged = vec![(2u32, "a/forged".to_string())];
    assert_eq!(
        leases.heartbeat("a", 60_000, &forged).await.unwrap().lost,
        vec![2]
    );
    let beat = leases.heartbeat("b", 60_000, &b).await.unwrap();
    assert_eq!(beat.live_hosts, 2);

    // Compare-and-delete: a's forged token releases nothing of b's.
    assert_eq!(leases.release(&forged).await.unwrap(), 0);
    assert_eq!(leases.release(&a[..1]).await.unwrap(), 1);
    let status = leases.status(4).await.unwrap();
    let holders: Vec<Option<&str>> = status.leases.iter().map(|l| l.host.as_deref()).collect();
    assert_eq!(holders, vec![None, Some("a"), Some("b"), Some("b")]);
    assert_eq!(status.hosts.len(), 2);

    // A lease not renewed expires, and another host may take it.
    let short = leases.acquire("c", 200, &[0], 1).await.unwrap();
    assert_eq!(short.len(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(leases.acquire("d", 60_000, &[0], 1).await.unwrap().len(), 1);

    // A restarted "b" takes its own leases back with new tokens: the old ones are dead.
    let back = leases.adopt("b", 60_000, 4).await.unwrap();
    assert_eq!(back.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(
        leases.heartbeat("b", 60_000, &b).await.unwrap().lost,
        vec![2, 3]
    );
    assert!(
        leases
            .heartbeat("b", 60_000, &back)
            .await
            .unwrap()
            .lost
            .is_empty()
    );
}

#[tokio::test]
async fn a_commit_under_a_lease_that_moved_writes_nothing() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url(), StoreLimits::default())
        .await
        .unwrap();
    let leases = Leases::connect(&redis.url()).await.unwrap();
    store.put_rule("r1", r#"{"id":"r1"}"#).await.unwrap();
    let mine = leases.acquire("a", 60_000, &[7], 1).await.unwrap();
    let commit = |token: &str| MarketCommit {
        requests: vec![("rule-r1-1".into(), "{}".into())],
        rules: vec![
            ("r1".into(), r#"{"id":"r1","fired":1}"#.into()),
            ("gone".into(), r#"{"id":"gone"}"#.into()),
        ],
        fence: vec![(lease_key(7), token.to_string())],
        ..Default::default()
    };
    let err = store.commit_market(&commit("a/stale")).await.unwrap_err();
    assert_eq!(
        Fenced::find(&err).map(|f| f.lost.clone()),
        Some(vec![lease_key(7)]),
        "{err:#}"
    );
    assert_eq!(store.stream_len(NOTIFY_REQUESTS).await.unwrap(), 0);
    assert_eq!(
        store.get_rule("r1").await.unwrap().as_deref(),
        Some(r#"{"id":"r1"}"#)
    );

    let ids = store.commit_market(&commit(&mine[0].1)).await.unwrap();
    assert!(ids[0].is_some());
    assert_eq!(
        store.get_rule("r1").await.unwrap().as_deref(),
        Some(r#"{"id":"r1","fired":1}"#)
    );
    // A fenced commit updates rules; it never brings back one deleted meanwhile.
    assert_eq!(store.get_rule("gone").await.unwrap(), None);
}

#[test]
fn partitions_on_the_embedded_store_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("impressox.toml");
    std::fs::write(&path, "[market]\npartitions = 16\n").unwrap();
    let err = impressox_host::config::Config::load_with_env(Some(&path), &[]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("[market] partitions") && msg.contains("embedded store"),
        "{msg}"
    );
    // Without the key the embedded store runs one host, as before.
    std::fs::write(&path, "[market]\nlease_secs = 5\n").unwrap();
    impressox_host::config::Config::load_with_env(Some(&path), &[]).unwrap();
}
