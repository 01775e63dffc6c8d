//! Market monitor pipeline benchmarks (issue 3): replay source → `replay-rows` parser →
//! `threshold` processor → `notify:requests`, with 100,000 rules over 1,000 symbols, on
//! the embedded store and on Redis; and the feed-message → notification-request latency
//! at 10,000 ticks/s on Redis. Run: `cargo bench -p impressox-host --bench market`.
//! Figures go to docs/BENCHMARKS.md.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use impressox_host::config::Config;

#[path = "common/market_data.rs"]
mod market_data;
#[path = "common/redis.rs"]
mod redis;
use impressox_host::market::MarketMonitor;
use impressox_host::market::health::SourceState;
use impressox_host::market::rules::RuleRecord;
use impressox_host::runtime::Runtime;
use impressox_host::storage::{MarketCommit, NOTIFY_REQUESTS, Store, StoreLimits};
use market_data::{rules, write_prices};
use redis::Redis;

struct Outcome {
    commits: u64,
    ticks: u64,
    alerts: u64,
    seconds: f64,
    p50_us: f64,
    p99_us: f64,
}

async fn pipeline(
    dir: &Path,
    storage: &str,
    prices: &Path,
    speed: f64,
    rules: &[RuleRecord],
) -> Outcome {
    let cfg_path = dir.join("bench.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\n{storage}\n\
             [market]\nconsole_alerts = false\n\
             [[market.sources]]\nname = \"file\"\nkind = \"replay\"\nparser = \"replay-rows\"\n\
             path = \"{}\"\nspeed = {speed}\n",
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
    let store: Arc<dyn Store> = impressox_host::storage::open(&config, StoreLimits::default())
        .await
        .unwrap();
    let mut commit = MarketCommit::default();
    for r in rules {
        commit
            .rules
            .push((r.id.clone(), serde_json::to_string(r).unwrap()));
    }
    store.commit_market(&commit).await.unwrap();
    let monitor = MarketMonitor::start(&config, runtime, store.clone())
        .await
        .unwrap();
    let h = monitor.handle.clone();
    // Time from the first evaluated tick (rule loading excluded) to the last.
    while h.stats.ticks_evaluated.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let started = Instant::now();
    let first = h.stats.ticks_evaluated.load(Ordering::Relaxed);
    loop {
        let finished = h.health[0].state() == SourceState::Finished;
        let parsed = h.health[0].ticks.load(Ordering::Relaxed);
        if finished && h.stats.ticks_evaluated.load(Ordering::Relaxed) >= parsed {
            break;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    // The last cycle's requests are committed after its ticks count as evaluated.
    h.flush().await;
    let seconds = started.elapsed().as_secs_f64();
    let ticks = h.stats.ticks_evaluated.load(Ordering::Relaxed) - first;
    let alerts = h.stats.alerts.load(Ordering::Relaxed);
    let lat = &h.stats.alert_latency;
    let q = |x| lat.quantile_ns(x).unwrap_or(0) as f64 / 1000.0;
    let cq = |x| h.stats.commit_latency.quantile_ns(x).unwrap_or(0) as f64 / 1000.0;
    let eq = |x| h.stats.evaluate_latency.quantile_ns(x).unwrap_or(0) as f64 / 1000.0;
    eprintln!(
        "commit p50 {:.0} µs p99 {:.0} µs; evaluate p50 {:.0} µs p99 {:.0} µs; batches {}; evaluate errors {}; duplicates {}",
        cq(0.5),
        cq(0.99),
        eq(0.5),
        eq(0.99),
        h.stats.batches.load(Ordering::Relaxed),
        h.stats.evaluate_errors.load(Ordering::Relaxed),
        h.stats.alerts_duplicate.load(Ordering::Relaxed)
    );
    let out = Outcome {
        commits: h.stats.commits.load(Ordering::Relaxed),
        ticks,
        alerts,
        seconds,
        p50_us: q(0.5),
        p99_us: q(0.99),
    };
    let kept = alerts.min(StoreLimits::default().stream_maxlen as u64);
    assert_eq!(store.stream_len(NOTIFY_REQUESTS).await.unwrap(), kept);
    monitor.stop().await;
    out
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let rules = rules(7);
    let fast = work.path().join("fast.csv");
    let n_fast = 2_000_000;
    // Each symbol ticks every 100 ms of market time (a liquid pair's trade stream).
    write_prices(&fast, n_fast, 100, 11);
    let mut rows = Vec::new();

    let dir = tempfile::tempdir().unwrap();
    let o = rt.block_on(pipeline(
        dir.path(),
        "[storage]\nbackend = \"embedded\"\n",
        &fast,
        0.0,
        &rules,
    ));
    rows.push(format!(
        "| embedded, as fast as possible | {} ticks in {:.2} s | **{:.0} ticks/s** | {} alerts, {} commits |",
        o.ticks, o.seconds, o.ticks as f64 / o.seconds, o.alerts, o.commits
    ));

    match Redis::start() {
        Some(redis) => {
            let storage = format!(
                "[storage]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{}\"\n",
                redis.1
            );
            let dir = tempfile::tempdir().unwrap();
            let o = rt.block_on(pipeline(dir.path(), &storage, &fast, 0.0, &rules));
            rows.push(format!(
                "| redis, as fast as possible | {} ticks in {:.2} s | **{:.0} ticks/s** | {} alerts, {} commits |",
                o.ticks, o.seconds, o.ticks as f64 / o.seconds, o.alerts, o.commits
            ));
            drop(redis);
            // 10,000 ticks/s for 15 s, paced in real time.
            let redis = Redis::start().unwrap();
            let storage = format!(
                "[storage]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{}\"\n",
                redis.1
            );
            let paced = work.path().join("paced.csv");
            write_prices(&paced, 150_000, 100, 13);
            let dir = tempfile::tempdir().unwrap();
            let o = rt.block_on(pipeline(dir.path(), &storage, &paced, 1.0, &rules));
            rows.push(format!(
                "| redis, paced at 10,000 ticks/s | {} ticks in {:.2} s, {} alerts, {} commits | latency p50 {:.0} µs | **p99 {:.0} µs** |",
                o.ticks, o.seconds, o.alerts, o.commits, o.p50_us, o.p99_us
            ));
        }
        None => rows.push("| redis | skipped: redis-server not found | | |".into()),
    }
    println!("| run | work | figure | |\n|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
