//! Scheduler benchmark (issue 14): 1,000 `every = "1s"` schedules on two `impressox run`
//! processes sharing one Redis (the claims) and one MongoDB-wire server (SecantusDB, the
//! run history), for 60 s. Every figure comes from the run history: start lag (actual
//! start − the occurrence's time) p50/p99/max, duplicates (an occurrence with more than
//! one record) and missed occurrences (one with none, between the first full second and
//! the last).
//!
//! The task is the bundled `echo-task`. Both hosts start before the schedules are due;
//! the window counted starts 5 s after both are ready.
//!
//! `BENCH_DOCS=embedded` (the default) gives each host its own embedded document store for
//! its history (the claims are still shared through Redis: that is what makes each
//! occurrence run once) and counts over the union of both after they stopped; this
//! measures the scheduler. `BENCH_DOCS=mongodb` shares one SecantusDB server, a Python
//! implementation of MongoDB's protocol, which at 1,000 records a second takes a core of
//! its own on this 2-core machine and so slows the hosts it shares the cores with.
//!
//! Run: `cargo bench -p impressox-host --bench scheduler`. `BENCH_SECS` (default 60) and
//! `BENCH_SCHEDULES` (default 1000) make a shorter or smaller run. Needs `redis-server`
//! (and for `mongodb` the test virtualenv's `secantusd-py`; `cargo test-all` installs
//! both). Figures go to docs/BENCHMARKS.md.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/mongo.rs"]
mod mongo;
#[path = "common/redis.rs"]
mod redis;

use impressox_host::documents::embedded::EmbeddedDocuments;
use impressox_host::documents::mongo::MongoDocuments;
use impressox_host::documents::{Documents, Filter, Query};
use impressox_host::scheduler::history::RUNS;
use mongo::Mongo;
use redis::Redis;
use serde_json::Value;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Host {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// `mongo_url`: the shared history; `None`: an embedded one per host.
fn start_host(redis_url: &str, mongo_url: Option<&str>, schedules: &str) -> Host {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let documents = match mongo_url {
        Some(url) => format!(
            "[documents]\nbackend = \"mongodb\"\nmongodb_url = \"{url}\"\ndatabase = \"bench\"\n"
        ),
        None => String::new(),
    };
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(test_artifacts::ECHO_TASK, plugins.join("echo-task.wasm")).unwrap();
    std::fs::write(
        dir.path().join("host.toml"),
        format!(
            "data_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n[plugins]\ndir = \"plugins.d\"\n\
             [storage]\nbackend = \"redis\"\nredis_url = \"{redis_url}\"\n\
             {documents}\
             [workers]\nenabled = [\"scheduler\"]\n[log]\nlevel = \"warn\"\n{schedules}"
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_impressox"))
        .args([
            "--config",
            dir.path().join("host.toml").to_str().unwrap(),
            "run",
        ])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.path().join("host.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    Host { child, port, dir }
}

fn wait_ready(h: &Host) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", h.port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("host not ready");
}

fn stop(h: Host) {
    stop_child(h.child);
}

fn stop_child(mut child: Child) {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let secs = env_or("BENCH_SECS", 60);
    let n = env_or("BENCH_SCHEDULES", 1000);
    let redis = Redis::start().expect("redis-server (Debian package redis-server)");
    let redis_url = format!("redis://127.0.0.1:{}", redis.1);
    let shared_docs = std::env::var("BENCH_DOCS").as_deref() == Ok("mongodb");
    let mongo = shared_docs.then(Mongo::start);
    let mongo_url = mongo.as_ref().map(Mongo::url);
    let mut schedules = String::new();
    for i in 0..n {
        let _ = write!(
            schedules,
            "[[schedules]]\nname = \"s{i:04}\"\nevery = \"1s\"\nplugin = \"echo-task\"\n"
        );
    }
    let a = start_host(&redis_url, mongo_url.as_deref(), &schedules);
    let b = start_host(&redis_url, mongo_url.as_deref(), &schedules);
    wait_ready(&a);
    wait_ready(&b);
    let from_ms = (impressox_host::util::now_ms() / 1000 + 5) * 1000;
    let to_ms = from_ms + (secs as i64) * 1000;
    println!(
        "{n} schedules every 1s on two hosts, history {}, counting occurrences {from_ms}..{to_ms}",
        if shared_docs {
            "shared (SecantusDB)"
        } else {
            "embedded per host"
        }
    );
    let end = Instant::now()
        + Duration::from_millis((to_ms - impressox_host::util::now_ms() + 3000) as u64);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let window = Filter::all()
        .gte("scheduled_ms", from_ms)
        .lt("scheduled_ms", to_ms);
    let mut records = Vec::new();
    if let Some(url) = &mongo_url {
        let docs = rt.block_on(MongoDocuments::connect(url, "bench")).unwrap();
        // The history is written behind the runs (batched, off the scheduling path):
        // wait until it has settled before stopping the hosts.
        let settle = Instant::now();
        let mut last = 0;
        loop {
            std::thread::sleep(Duration::from_secs(2));
            let n = rt.block_on(docs.count(RUNS, &window)).unwrap();
            if n == last || settle.elapsed() > Duration::from_secs(120) {
                break;
            }
            last = n;
        }
        println!(
            "history settled {:.1} s after the window",
            settle.elapsed().as_secs_f64()
        );
        stop(a);
        stop(b);
        records = rt.block_on(docs.find(RUNS, &Query::new(window))).unwrap();
    } else {
        // Stopping flushes each host's history; then its file can be opened here.
        let dirs: Vec<std::path::PathBuf> = [&a, &b]
            .iter()
            .map(|h| h.dir.path().join("data/documents.redb"))
            .collect();
        let keep = (a.dir, b.dir);
        stop_child(a.child);
        stop_child(b.child);
        for path in dirs {
            let docs = EmbeddedDocuments::open(&path).unwrap();
            records.extend(
                rt.block_on(docs.find(RUNS, &Query::new(window.clone())))
                    .unwrap(),
            );
        }
        drop(keep);
    }
    let mut per: HashMap<(String, i64), u32> = HashMap::new();
    let mut lags = Vec::new();
    let mut outcomes: HashMap<String, u64> = HashMap::new();
    let mut hosts: HashMap<String, u64> = HashMap::new();
    for r in &records {
        let get = |k: &str| r.get(k).cloned().unwrap_or(Value::Null);
        let outcome = get("outcome").as_str().unwrap_or_default().to_string();
        *outcomes.entry(outcome.clone()).or_default() += 1;
        if outcome != "ok" {
            continue;
        }
        let schedule = get("schedule").as_str().unwrap_or_default().to_string();
        let occ = get("scheduled_ms").as_i64().unwrap_or_default();
        *per.entry((schedule, occ)).or_default() += 1;
        lags.push(get("started_ms").as_i64().unwrap_or_default() - occ);
        let pid = get("worker").as_str().unwrap_or_default().to_string();
        *hosts.entry(pid).or_default() += 1;
    }
    let expected = n * secs;
    let duplicates: u64 = per.values().map(|c| u64::from(c.saturating_sub(1))).sum();
    let missed = expected.saturating_sub(per.len() as u64);
    lags.sort_unstable();
    println!(
        "records in the window: {} ({outcomes:?}); runs per host: {:?}",
        records.len(),
        hosts.values().collect::<Vec<_>>()
    );
    println!("occurrences expected {expected}, run {}", per.len());
    println!("duplicates {duplicates}, missed {missed}");
    println!(
        "start lag ms: p50 {} p90 {} p99 {} p99.9 {} max {}",
        percentile(&lags, 0.5),
        percentile(&lags, 0.9),
        percentile(&lags, 0.99),
        percentile(&lags, 0.999),
        lags.last().copied().unwrap_or(0)
    );
}
