//! Three hosts (and variations) on one Redis evaluating 10,000 rules over a replayed
//! feed must enqueue exactly the alerts one host on the embedded store enqueues: the same
//! keys (`rule-<id>-<second>`), none twice — with all hosts up, with one killed (SIGKILL)
//! mid-stream, with one added mid-run, and with Redis restarted mid-run.
//!
//! The scenarios run one at a time (each starts several hosts on a 2-core machine).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use impressox_host::storage::StoreLimits;
use impressox_host::storage::redis_store::RedisStore;

use super::feed;
use super::hosts::{Host, LEASE_SECS, Storage, holdings, install_plugins, write_config};
use crate::servers::redis::RedisServer;

/// Replay speed of the cluster runs: the 240 s feed takes 15 s.
const SPEED: f64 = 16.0;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
static REFERENCE: tokio::sync::OnceCell<Vec<String>> = tokio::sync::OnceCell::const_new();

/// The alerts of one host on the embedded store (the one-host path, no partitions),
/// replaying as fast as it can.
async fn reference() -> &'static Vec<String> {
    REFERENCE
        .get_or_init(|| async {
            let dir = tempfile::tempdir().unwrap();
            let feed_path = feed::write(dir.path());
            install_plugins(dir.path());
            let port = crate::servers::redis::free_port();
            let config_path = write_config(
                dir.path(),
                "solo",
                port,
                &Storage::Embedded,
                &feed_path,
                0.0,
            );
            let config =
                impressox_host::config::Config::load_with_env(Some(&config_path), &[]).unwrap();
            {
                let store = impressox_host::storage::open(&config, StoreLimits::default())
                    .await
                    .unwrap();
                feed::store_rules(store.as_ref()).await;
            }
            let mut host = Host::start_in(dir, "solo", port).await;
            wait_finished(&[&host], Duration::from_secs(120)).await;
            settle(&[&host], None).await;
            host.stop();
            let store = impressox_host::storage::open(&config, StoreLimits::default())
                .await
                .unwrap();
            let keys = feed::alert_keys(store.as_ref(), "audit").await;
            assert!(
                keys.len() > 5000,
                "the reference run raised only {}",
                keys.len()
            );
            keys
        })
        .await
}

/// A shared Redis with the rules stored, and the feed.
struct Cluster {
    redis: RedisServer,
    feed_dir: tempfile::TempDir,
    feed: std::path::PathBuf,
}

impl Cluster {
    async fn new(persistent: bool) -> Cluster {
        let redis = if persistent {
            RedisServer::start_persistent()
        } else {
            RedisServer::start()
        };
        let feed_dir = tempfile::tempdir().unwrap();
        let feed = feed::write(feed_dir.path());
        let store = RedisStore::connect(&redis.url(), StoreLimits::default())
            .await
            .unwrap();
        feed::store_rules(&store).await;
        Cluster {
            redis,
            feed_dir,
            feed,
        }
    }

    async fn host(&self, id: &str) -> Host {
        let url = self.redis.url();
        Host::start(id, &Storage::Redis(&url), &self.feed, SPEED).await
    }

    async fn alerts(&self) -> Vec<String> {
        let store = RedisStore::connect(&self.redis.url(), StoreLimits::default())
            .await
            .unwrap();
        feed::alert_keys(&store, "audit").await
    }
}

async fn wait_finished(hosts: &[&Host], timeout: Duration) {
    let started = Instant::now();
    for h in hosts {
        while !h.finished().await {
            assert!(
                started.elapsed() < timeout,
                "host {} did not finish the replay:\n{}",
                h.id,
                h.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Wait until every partition is held (several hosts) and no host has enqueued an alert
/// for a second and a half.
async fn settle(hosts: &[&Host], cluster: Option<&Cluster>) {
    let started = Instant::now();
    let mut last = (u64::MAX, Instant::now());
    loop {
        let mut alerts = 0;
        for h in hosts {
            alerts += h.metric("impressox_market_alerts_total").await;
        }
        let owned = match cluster {
            Some(_) => match hosts[0].cluster().await {
                Some(c) => holdings(&c).1 == 0,
                None => false,
            },
            None => true,
        };
        if alerts != last.0 || !owned {
            last = (alerts, Instant::now());
        } else if last.1.elapsed() > Duration::from_millis(1500) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the hosts never settled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until the hosts hold every partition between them, each at most its fair share.
async fn converged(hosts: &[&Host], timeout: Duration) -> Duration {
    let started = Instant::now();
    let share = 64usize.div_ceil(hosts.len()) as u64;
    loop {
        if let Some(c) = hosts[0].cluster().await {
            let (held, unowned) = holdings(&c);
            if unowned == 0 && held.len() == hosts.len() && held.values().all(|n| *n <= share) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "no fair split after {timeout:?}: {c}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The alerts equal the one-host run's, none twice.
async fn assert_exact(got: Vec<String>, what: &str) {
    let reference = reference().await;
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(
        unique.len(),
        got.len(),
        "{what}: an alert was enqueued twice"
    );
    let expected: BTreeSet<&String> = reference.iter().collect();
    let missing: Vec<_> = expected.difference(&unique).take(5).collect();
    let extra: Vec<_> = unique.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} alerts, one host raised {}; missing e.g. {missing:?}, extra e.g. {extra:?}",
        got.len(),
        reference.len()
    );
}

async fn duplicates(hosts: &[&Host]) -> u64 {
    let mut n = 0;
    for h in hosts {
        n += h.metric("impressox_market_alerts_duplicate_total").await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_raise_exactly_the_alerts_of_one() {
    let _serial = SERIAL.lock().await;
    reference().await;
    let c = Cluster::new(false).await;
    let mut hosts = Vec::new();
    for id in ["a", "b", "c"] {
        hosts.push(c.host(id).await);
    }
    let refs: Vec<&Host> = hosts.iter().collect();
    converged(&refs, Duration::from_secs(20)).await;
    wait_finished(&refs, Duration::from_secs(120)).await;
    settle(&refs, Some(&c)).await;
    assert_eq!(duplicates(&refs).await, 0, "no tick was evaluated twice");
    let mut evaluated = Vec::new();
    for h in &refs {
        evaluated.push(h.metric("impressox_market_ticks_evaluated_total").await);
    }
    assert!(
        evaluated.iter().all(|n| *n > 0),
        "every host evaluated a share: {evaluated:?}"
    );
    for h in &mut hosts {
        h.stop();
    }
    assert_exact(c.alerts().await, "three hosts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_host_loses_its_partitions_within_lease_secs_and_no_alert_changes() {
    let _serial = SERIAL.lock().await;
    reference().await;
    let c = Cluster::new(false).await;
    let mut hosts = Vec::new();
    for id in ["a", "b", "c"] {
        hosts.push(c.host(id).await);
    }
    converged(&hosts.iter().collect::<Vec<_>>(), Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !hosts[1].finished().await,
        "killed mid-stream, not after it"
    );
    hosts[1].kill();
    let killed = Instant::now();
    let moved = loop {
        let c = hosts[0].cluster().await.expect("cluster view");
        let (held, unowned) = holdings(&c);
        if unowned == 0 && !held.contains_key("b") {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "b's partitions never moved: {c}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The lease runs out within lease_secs of b's last renewal (before the kill), and
    // the others look every third of a lease; a second of slack for a loaded machine.
    let bound = Duration::from_millis(LEASE_SECS * 1000 + LEASE_SECS * 1000 / 3 + 1000);
    assert!(
        moved <= bound,
        "b's partitions moved after {moved:?} (bound {bound:?})"
    );
    let live = [&hosts[0], &hosts[2]];
    wait_finished(&live, Duration::from_secs(120)).await;
    settle(&live, Some(&c)).await;
    assert_eq!(duplicates(&live).await, 0);
    assert!(
        hosts[0]
            .metric("impressox_market_ticks_caught_up_total")
            .await
            + hosts[2]
                .metric("impressox_market_ticks_caught_up_total")
                .await
            > 0,
        "the new owners caught up on b's ticks"
    );
    hosts[0].stop();
    hosts[2].stop();
    assert_exact(c.alerts().await, "one of three killed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_added_mid_run_takes_its_share_and_no_alert_changes() {
    let _serial = SERIAL.lock().await;
    reference().await;
    let c = Cluster::new(false).await;
    let mut hosts = vec![c.host("a").await, c.host("b").await];
    converged(&hosts.iter().collect::<Vec<_>>(), Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    hosts.push(c.host("c").await);
    let took = converged(&hosts.iter().collect::<Vec<_>>(), Duration::from_secs(20)).await;
    eprintln!("the added host had its share after {took:?}");
    let refs: Vec<&Host> = hosts.iter().collect();
    wait_finished(&refs, Duration::from_secs(120)).await;
    settle(&refs, Some(&c)).await;
    assert_eq!(duplicates(&refs).await, 0);
    let released = hosts[0]
        .metrics()
        .await
        .unwrap_or_default()
        .contains("impressox_market_lease_changes_total{change=\"released\"} ");
    assert!(released, "the lease metrics are served");
    for h in &mut hosts {
        h.stop();
    }
    assert_exact(c.alerts().await, "a host added mid-run").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_run_changes_no_alert() {
    let _serial = SERIAL.lock().await;
    reference().await;
    let mut c = Cluster::new(true).await;
    let mut hosts = Vec::new();
    for id in ["a", "b", "c"] {
        hosts.push(c.host(id).await);
    }
    converged(&hosts.iter().collect::<Vec<_>>(), Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    c.redis.stop();
    // Down for longer than a lease: every lease runs out, every host's next commit is
    // refused and the partitions are shared out afresh.
    tokio::time::sleep(Duration::from_millis(LEASE_SECS * 1000 + 500)).await;
    c.redis.restart();
    let refs: Vec<&Host> = hosts.iter().collect();
    converged(&refs, Duration::from_secs(30)).await;
    wait_finished(&refs, Duration::from_secs(120)).await;
    settle(&refs, Some(&c)).await;
    for h in &mut hosts {
        h.stop();
    }
    assert_exact(c.alerts().await, "Redis restarted mid-run").await;
    let _ = &c.feed_dir;
}
