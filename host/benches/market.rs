//! Market monitor pipeline benchmarks (issue 3): replay source → `replay-rows` parser →
//! `threshold` processor → `notify:requests`, with 100,000 rules over 1,000 symbols, on
//! the embedded store and on Redis; and the feed-message → notification-request latency
//! at 10,000 ticks/s on Redis. Run: `cargo bench -p impressox-host --bench market`.
//! Figures go to docs/BENCHMARKS.md.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use impressox_host::config::Config;

#[path = "common/redis.rs"]
mod redis;
use impressox_host::market::MarketMonitor;
use impressox_host::market::health::SourceState;
use impressox_host::market::rules::{RuleRecord, RuleSpec};
use impressox_host::runtime::Runtime;
use impressox_host::storage::{MarketCommit, NOTIFY_REQUESTS, Store, StoreLimits};
use redis::Redis;

const SYMBOLS: usize = 1_000;
const RULES_PER_SYMBOL: usize = 100;
const T0: i64 = 1_764_300_000_000;

fn symbol(i: usize) -> String {
    format!("S{i:04}USDT")
}

/// A random walk per symbol, `n` rows round-robin over the symbols, `step_us` apart.
fn write_prices(path: &Path, n: usize, step_us: i64, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut price = vec![100.0f64; SYMBOLS];
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "ts_ms,symbol,price").unwrap();
    for i in 0..n {
        let s = i % SYMBOLS;
        price[s] *= 1.0 + (rng.f64() - 0.5) * 0.0004;
        writeln!(
            f,
            "{},{},{:.4}",
            T0 + (i as i64 * step_us) / 1000,
            symbol(s),
            price[s]
        )
        .unwrap();
    }
}

/// 100 rules per symbol: levels and crossings with thresholds within ±10% of the start.
fn rules(seed: u64) -> Vec<RuleRecord> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::with_capacity(SYMBOLS * RULES_PER_SYMBOL);
    for s in 0..SYMBOLS {
        for r in 0..RULES_PER_SYMBOL {
            // Levels start false (above 100..110, below 90..100), so alerts come from
            // price moves, not from a storm of rules that hold at the first tick.
            let (op, mode, value) = match r % 4 {
                0 => ("above", "once", 100.0 + rng.f64() * 10.0),
                1 => ("below", "once", 90.0 + rng.f64() * 10.0),
                2 => ("crosses_up", "every", 90.0 + rng.f64() * 20.0),
                _ => ("crosses_down", "every", 90.0 + rng.f64() * 20.0),
            };
            let spec: RuleSpec = serde_json::from_value(serde_json::json!({
                "id": format!("r{s}-{r}"), "user_id": format!("u{}", r % 50), "symbol": symbol(s),
                "condition": {"op": op, "value": value}, "trigger": {"mode": mode}
            }))
            .unwrap();
            out.push(RuleRecord::create(spec));
        }
    }
    out
}

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
