//! Scale-out overhead (issue 17): one host against two hosts on one Redis evaluating the
//! same combined stream — a replay of 1,000,000 ticks over 1,000 symbols with 100,000
//! rules — on this machine's shared cores. Every host ingests (parses) every tick and
//! evaluates the half of the partitions it holds, so on two shared cores the figure is
//! the overhead of the split (parsing twice, two engines, fenced commits), not a speed-up.
//! Run: `cargo bench -p impressox-host --bench cluster`. Figures go to docs/BENCHMARKS.md.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use impressox_host::config::Config;
use impressox_host::market::health::SourceState;
use impressox_host::market::rules::RuleRecord;
use impressox_host::market::{MarketHandle, MarketMonitor};
use impressox_host::runtime::Runtime;
use impressox_host::storage::{Store, StoreLimits};

#[path = "common/market_data.rs"]
mod market_data;
#[path = "common/redis.rs"]
mod redis;
use market_data::{rules, write_prices};
use redis::Redis;

const TICKS: usize = 1_000_000;

/// A monitor named `host` on the Redis at `port`, replaying `prices` as fast as it can.
async fn start_host(dir: &Path, host: &str, port: u16, prices: &Path) -> MarketMonitor {
    let cfg_path = dir.join("bench.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\n\
             [storage]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}\"\n\
             [market]\nconsole_alerts = false\nhost_id = \"{host}\"\nlease_secs = 10\n\
             stream_maxlen = 10000000\n\
             [[market.sources]]\nname = \"file\"\nkind = \"replay\"\nparser = \"replay-rows\"\n\
             path = \"{}\"\nspeed = 0\n",
            prices.display()
        ),
    )
    .unwrap();
    let config = Config::load_with_env(Some(&cfg_path), &[]).unwrap();
    let plugins = config.plugin_dir();
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all(config.data_dir()).unwrap();
    let runtime = Runtime::new(&config).unwrap();
    for (a, f) in [
        (test_artifacts::THRESHOLD, "threshold.wasm"),
        (test_artifacts::REPLAY_ROWS, "replay-rows.wasm"),
    ] {
        let p = plugins.join(f);
        std::fs::copy(a, &p).unwrap();
        runtime.load_file(&p).unwrap();
    }
    let limits = StoreLimits {
        stream_maxlen: 10_000_000,
        ..Default::default()
    };
    let store: Arc<dyn Store> = impressox_host::storage::open(&config, limits)
        .await
        .unwrap();
    MarketMonitor::start(&config, runtime, store).await.unwrap()
}

struct Outcome {
    seconds: f64,
    /// Per host: ticks evaluated, partitions held, CPU of its engine not separable.
    per_host: Vec<(u64, usize, u64)>,
}

/// Run `hosts` monitors on a fresh Redis over the same stream; the time from the first
/// evaluated tick on any host until every host has evaluated and committed the stream.
async fn run(hosts: usize, prices: &Path, rules: &[RuleRecord]) -> Outcome {
    let redis = Redis::start().expect("redis-server for the cluster bench");
    let store = impressox_host::storage::redis_store::RedisStore::connect(
        &format!("redis://127.0.0.1:{}", redis.1),
        StoreLimits::default(),
    )
    .await
    .unwrap();
    for r in rules {
        store
            .put_rule(&r.id, &serde_json::to_string(r).unwrap())
            .await
            .unwrap();
    }
    // Every host announced before the first takes its share: the split is even from the
    // first tick (otherwise the first host holds everything until the next lease round).
    let mut c = redis::client(redis.1);
    let names: Vec<String> = (0..hosts).map(|i| format!("bench-{i}")).collect();
    for n in &names {
        redis::heartbeat(&mut c, n);
    }
    let dirs: Vec<tempfile::TempDir> = (0..hosts).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut monitors = Vec::new();
    for (d, n) in dirs.iter().zip(&names) {
        monitors.push(start_host(d.path(), n, redis.1, prices).await);
    }
    let handles: Vec<MarketHandle> = monitors.iter().map(|m| m.handle.clone()).collect();
    let evaluated = |h: &MarketHandle| h.stats.ticks_evaluated.load(Ordering::Relaxed);
    while handles.iter().all(|h| evaluated(h) == 0) {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let started = Instant::now();
    for h in &handles {
        while h.health[0].state() != SourceState::Finished {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        // The flush is answered after every batch queued before it.
        h.flush().await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let per_host = handles
        .iter()
        .map(|h| {
            (
                evaluated(h),
                h.cluster.as_ref().map_or(0, |c| c.owned().len()),
                h.stats.alerts.load(Ordering::Relaxed),
            )
        })
        .collect();
    for m in monitors {
        m.stop().await;
    }
    Outcome { seconds, per_host }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let prices = work.path().join("prices.csv");
    write_prices(&prices, TICKS, 100, 11);
    let rules = rules(7);
    let mut rows = Vec::new();
    let mut base = 0.0;
    for hosts in [1, 2, 1, 2] {
        let o = rt.block_on(run(hosts, &prices, &rules));
        let rate = TICKS as f64 / o.seconds;
        if hosts == 1 {
            base = rate;
        }
        let per: Vec<String> = o
            .per_host
            .iter()
            .enumerate()
            .map(|(i, (t, p, a))| {
                format!("host {i}: {p} partitions, {t} ticks evaluated, {a} alerts")
            })
            .collect();
        rows.push(format!(
            "| {hosts} host{} | {TICKS} ticks in {:.2} s | **{:.0} ticks/s** ({:+.1} % vs one host) | {} |",
            if hosts == 1 { "" } else { "s" },
            o.seconds,
            rate,
            (rate / base - 1.0) * 100.0,
            per.join("; ")
        ));
    }
    println!("| run | work | combined stream throughput | per host |\n|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
