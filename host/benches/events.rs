//! Events worker benchmarks (issue 14): events pre-loaded into a Redis stream, consumed by
//! the events worker through a real handler component (`event-probe`), side by side with
//! two peers on the same Redis in the same run:
//! - redis-py: a consumer-group loop as a competent Python user writes it (XREADGROUP COUNT
//!   256, one pipelined XACK per batch; `bench/peers/redis_py_consumer.py`);
//! - BullMQ: a Worker with concurrency 100 on jobs added in bulk
//!   (`bench/peers/bullmq_worker.mjs`).
//!
//! Two workloads: `ack` (the handler only acks) and `kv` (each event increments a counter:
//! ours in `kv` committed with the ack; redis-py an INCR in the MULTI/EXEC of its XACK;
//! BullMQ an INCR in the processor, which it cannot make atomic with the completion).
//!
//! Run: `cargo bench -p impressox-host --bench events`. `BENCH_EVENTS=N` (default 200000)
//! sets the events per run. The peers are installed on first use: redis-py into
//! `~/.cache/impressox/bench-venv`, BullMQ into `~/.cache/impressox/bench-npm` (from the
//! committed lock). Figures go to docs/BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/npm_peer.rs"]
mod npm_peer;
#[path = "common/redis.rs"]
mod redis;

use impressox_host::capabilities::Services;
use impressox_host::config::Config;
use impressox_host::events::EventsWorker;
use impressox_host::runtime::Runtime;
use impressox_host::storage::StoreLimits;
use redis::Redis;

/// The same allocator as the `impressox` binary (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PLUGIN: &str = "event-probe";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// One raw command over redis-cli (set-up only; not timed).
fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Seconds of CPU the Redis server has used (user + system), from `INFO cpu`: the server is
/// one thread, so its CPU per event shows how close a run is to what Redis alone allows.
fn redis_cpu(port: u16) -> f64 {
    redis_cli(port, &["INFO", "cpu"])
        .lines()
        .filter_map(|l| {
            l.strip_prefix("used_cpu_sys:")
                .or_else(|| l.strip_prefix("used_cpu_user:"))
        })
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

/// Print the Redis CPU a run used since `before`.
fn report_redis_cpu(port: u16, who: &str, before: f64, n: usize) {
    let used = redis_cpu(port) - before;
    eprintln!(
        "  {who}: Redis used {:.0} ms of CPU, {:.2} µs an event",
        used * 1000.0,
        used * 1e6 / n as f64
    );
}

/// Append `n` entries to `stream` (fields `seq` and, for the kv workload, `incr`).
fn preload(port: u16, stream: &str, n: usize, with_kv: bool) {
    let extra = if with_kv { ", 'incr', 'total'" } else { "" };
    for chunk in 0..n.div_ceil(5000) {
        let count = 5000.min(n - chunk * 5000);
        let script = format!(
            "for i = 1, {count} do redis.call('XADD', KEYS[1], '*', 'seq', ARGV[1] .. '-' .. i{extra}) end return {count}"
        );
        redis_cli(port, &["EVAL", &script, "1", stream, &chunk.to_string()]);
    }
}

/// Ours: the events worker with one listener (batch 256) until every event is acked;
/// (seconds from the first read's answer, seconds from the worker's start).
fn ours(port: u16, n: usize, with_kv: bool) -> (f64, f64) {
    let stream = if with_kv {
        "bench:ours-kv"
    } else {
        "bench:ours"
    };
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\n\
         [plugins.grants.{PLUGIN}]\nkv = true\nnotify = true\n\
         [capabilities.kv]\nmax_keys = 1000\n\
         [storage]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}\"\n\
         [events]\nconsumer = \"bench\"\n\
         [[listeners]]\nstream = \"{stream}\"\ngroup = \"g\"\nplugin = \"{PLUGIN}\"\n\
         batch = 256\nconcurrency = 2\nmaxlen = {}\n",
        n + 1
    );
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load_with_env(Some(&path), &[]).unwrap();
    std::fs::create_dir_all(config.plugin_dir()).unwrap();
    std::fs::copy(
        test_artifacts::GUEST_EVENT_PROBE,
        config.plugin_dir().join(format!("{PLUGIN}.wasm")),
    )
    .unwrap();
    preload(port, stream, n, with_kv);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (store, docs) = rt.block_on(async {
        let store = impressox_host::storage::open(&config, StoreLimits::default())
            .await
            .unwrap();
        let docs = impressox_host::documents::open(&config).await.unwrap();
        (store, docs)
    });
    let runtime =
        Runtime::with_services(&config, Services::new(&config, store.clone(), docs.clone()))
            .unwrap();
    runtime
        .load_file(&config.plugin_dir().join(format!("{PLUGIN}.wasm")))
        .unwrap();
    let cpu_before = redis_cpu(port);
    let own_before = cpu::own_cpu_secs();
    let started = Instant::now();
    let worker = rt
        .block_on(EventsWorker::start(&config, runtime, store.clone(), docs))
        .unwrap();
    let metrics = worker.handle.listeners[0].metrics.clone();
    // The peers time from their first read's answer to the last ack; `read_us` is added
    // when the listener's first read has answered, so polling it gives the same start.
    let mut first_read = None;
    while metrics.acked.load(Ordering::Relaxed) < n as u64 {
        if first_read.is_none() && metrics.read_us.load(Ordering::Relaxed) > 0 {
            first_read = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_micros(200));
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "ours did not finish"
        );
    }
    let with_start = started.elapsed().as_secs_f64();
    report_redis_cpu(port, "ours", cpu_before, n);
    eprintln!(
        "  ours: the host used {:.0} ms of CPU",
        (cpu::own_cpu_secs() - own_before) * 1000.0
    );
    let secs = first_read.expect("a read answered").elapsed().as_secs_f64();
    let ms = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as f64 / 1000.0;
    eprintln!(
        "  ours: {secs:.3} s from the first read to the last ack ({with_start:.3} s with the \
         worker's start); reading {:.0} ms, handler calls {:.0} ms (summed over lanes), \
         committing {:.0} ms",
        ms(&metrics.read_us),
        ms(&metrics.handler_us),
        ms(&metrics.commit_us)
    );
    rt.block_on(worker.stop());
    if with_kv {
        let total = redis_cli(port, &["GET", &format!("plugin-kv:{{{PLUGIN}}}:k:total")]);
        assert_eq!(total, n.to_string(), "every increment exactly once");
    }
    (secs, with_start)
}

/// The redis-py loop; (seconds, redis-py version).
fn redis_py(port: u16, n: usize, with_kv: bool) -> Option<(f64, String)> {
    let venv = dirs_home().join(".cache/impressox/bench-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .ok()?
            .success()
            && Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "-r"])
                .arg(repo_root().join("bench/peers/requirements.txt"))
                .status()
                .ok()?
                .success();
        if !ok {
            eprintln!("redis-py could not be installed; skipping that peer");
            return None;
        }
    }
    let stream = if with_kv { "bench:py-kv" } else { "bench:py" };
    preload(port, stream, n, false);
    let mut cmd = Command::new(python);
    cmd.arg(repo_root().join("bench/peers/redis_py_consumer.py"))
        .args([&port.to_string(), stream, "g", &n.to_string()]);
    if with_kv {
        cmd.arg("--kv");
    }
    let cpu_before = redis_cpu(port);
    let out = cmd.output().ok()?;
    report_redis_cpu(port, "redis-py", cpu_before, n);
    parse_peer(out, "redis_py")
}

/// The BullMQ worker; (seconds, BullMQ version).
fn bullmq(port: u16, n: usize, with_kv: bool) -> Option<(f64, String)> {
    let dir = npm_peer::install(
        &repo_root().join("bench/peers"),
        "bench-npm",
        &["package.json", "package-lock.json", "bullmq_worker.mjs"],
        "bullmq",
    )?;
    let queue = if with_kv { "bench-kv" } else { "bench" };
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("bullmq_worker.mjs"))
        .args([&port.to_string(), queue, &n.to_string()])
        .current_dir(&dir);
    if with_kv {
        cmd.arg("--kv");
    }
    parse_peer(cmd.output().ok()?, "bullmq")
}

fn parse_peer(out: std::process::Output, version_key: &str) -> Option<(f64, String)> {
    if !out.status.success() {
        eprintln!("peer failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.lines().last()?).ok()?;
    Some((v["seconds"].as_f64()?, v[version_key].as_str()?.to_string()))
}

fn dirs_home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
}

fn main() {
    let n: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let Some(server) = Redis::start() else {
        eprintln!("redis-server is not installed; skipping");
        return;
    };
    let port = server.1;
    let redis_version = redis_cli(port, &["INFO", "server"])
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:").map(str::to_string))
        .unwrap_or_default();
    println!("events through a handler plugin, {n} events pre-loaded, Redis {redis_version}");
    println!(
        "{:<52} {:>10} {:>12} {:>8}",
        "run", "seconds", "events/s", "vs ours"
    );
    for with_kv in [false, true] {
        let label = if with_kv { "kv effect" } else { "ack only" };
        // redis-py times from its first read's answer, BullMQ from its worker's start: each
        // is set beside ours timed the same way.
        let (ours_s, ours_with_start_s) = ours(port, n, with_kv);
        let rate = |s: f64| n as f64 / s;
        let row = |name: String, s: f64, vs: String| {
            println!("{name:<52} {s:>10.3} {:>12.0} {vs:>8}", rate(s));
        };
        row(
            format!("ours ({label}, from the first read)"),
            ours_s,
            "1.00x".into(),
        );
        if let Some((s, v)) = redis_py(port, n, with_kv) {
            let vs = format!("{:.2}x", rate(ours_s) / rate(s));
            row(format!("redis-py {v} ({label}, COUNT 256)"), s, vs);
        }
        row(
            format!("ours ({label}, from the worker's start)"),
            ours_with_start_s,
            "1.00x".into(),
        );
        if let Some((s, v)) = bullmq(port, n, with_kv) {
            let vs = format!("{:.2}x", rate(ours_with_start_s) / rate(s));
            row(format!("BullMQ {v} ({label}, concurrency 100)"), s, vs);
        }
    }
}
