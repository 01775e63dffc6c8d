//! Capability benchmarks (issue 13), plugin path vs native Rust on the same backend, side
//! by side in one run:
//! - `kv.get` of a 100-byte value: embedded and Redis;
//! - `docs.upsert` of a batch of documents: embedded.
//!
//! The plugin side is `caps-probe` calling the capability N times inside one call, so the
//! per-operation figure is the call divided by N (the call's own fixed cost, ~0.2 µs, is
//! spread over N). The native side calls the same store API (`Store::plugin_kv_get`,
//! `Documents::write`) directly. Run: `cargo bench -p impressox-host --bench capabilities`.

#[path = "common/redis.rs"]
mod redis;

use std::sync::Arc;
use std::time::Instant;

use impressox_host::capabilities::Services;
use impressox_host::config::Config;
use impressox_host::documents::{Documents, Write};
use impressox_host::runtime::Runtime;
use impressox_host::runtime::deadline::io_runtime;
use impressox_host::storage::Store;
use serde_json::{Value, json};

const GRANT: &str = "[plugins]\ndir = \"plugins.d\"\ncall_timeout_ms = 60000\n\
    [plugins.grants.caps-probe]\nkv = true\ndocs = [\"bench\"]\nnotify = true\nprices = true\n\
    [capabilities]\nmax_host_calls = 1000000\nmax_bytes_moved = 1073741824\n";

fn config(dir: &std::path::Path, extra: &str) -> Config {
    let p = dir.join("c.toml");
    std::fs::write(&p, format!("data_dir = \"data\"\n{extra}{GRANT}")).unwrap();
    let c = Config::load_with_env(Some(&p), &[]).unwrap();
    std::fs::create_dir_all(c.plugin_dir()).unwrap();
    c
}

struct Bench {
    runtime: Runtime,
    store: Arc<dyn Store>,
    docs: Arc<dyn Documents>,
    _dir: tempfile::TempDir,
}

fn bench_host(extra: &str) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), extra);
    let (store, docs) = io_runtime().block_on(async {
        let store = impressox_host::storage::open(&cfg, Default::default())
            .await
            .unwrap();
        let docs = impressox_host::documents::open(&cfg).await.unwrap();
        (store, docs)
    });
    let runtime =
        Runtime::with_services(&cfg, Services::new(&cfg, store.clone(), docs.clone())).unwrap();
    let path = cfg.plugin_dir().join("caps-probe.wasm");
    std::fs::copy(test_artifacts::GUEST_CAPS_PROBE, &path).unwrap();
    runtime.load_file(&path).unwrap();
    Bench {
        runtime,
        store,
        docs,
        _dir: dir,
    }
}

fn probe(b: &Bench, ops: Value) {
    let run = impressox_host::bindings::types::TaskRun {
        schedule: "bench".into(),
        scheduled_at_ms: 0,
        attempt: 1,
        args_json: json!({ "ops": ops }).to_string(),
    };
    let report = b
        .runtime
        .plugin("caps-probe")
        .run_task(&run)
        .unwrap()
        .unwrap();
    assert!(
        !report.data_json.contains("\"err\""),
        "{}",
        report.data_json
    );
}

/// Nanoseconds per operation: the median of `rounds` timings of `n` operations each.
fn median_per_op(rounds: usize, n: u64, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Drive a store future the way native code on a thread without a runtime would: in
/// place when it is ready at once (the embedded store), else on the I/O runtime.
fn native<T>(fut: impl std::future::Future<Output = T>) -> T {
    let mut fut = std::pin::pin!(fut);
    {
        let _context = io_runtime().enter();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
    io_runtime().block_on(fut)
}

fn kv_get(label: &str, b: &Bench, n: u64, rounds: usize) -> String {
    let value = vec![b'v'; 100];
    native(b.store.plugin_kv_set("caps-probe", "k", &value, None, 100)).unwrap();
    // Warm up both paths.
    probe(b, json!([["kv.spin", n, "k"]]));
    for _ in 0..n {
        native(b.store.plugin_kv_get("caps-probe", "k")).unwrap();
    }
    let plugin_empty = median_per_op(rounds, 1, || probe(b, json!([["kv.spin", 0, "k"]])));
    let plugin = median_per_op(rounds, n, || probe(b, json!([["kv.spin", n, "k"]])));
    let native_ns = median_per_op(rounds, n, || {
        for _ in 0..n {
            let v = native(b.store.plugin_kv_get("caps-probe", "k")).unwrap();
            assert_eq!(v.map(|v| v.len()), Some(100));
        }
    });
    let plugin_per_get = plugin - plugin_empty / n as f64;
    format!(
        "| kv.get 100 B, {label} | {:.2} µs | {:.2} µs | +{:.2} µs ({:.2}x) |",
        plugin_per_get / 1000.0,
        native_ns / 1000.0,
        (plugin_per_get - native_ns) / 1000.0,
        plugin_per_get / native_ns,
    )
}

fn docs_upsert(b: &Bench, n: u64, rounds: usize) -> String {
    let doc = json!({"tx": "0x9f2c4e", "amount_usd": 2_500_000.0, "asset": "USDT", "chain": "ethereum",
        "from": "0xaaa", "to": "0xbbb"});
    let text = doc.to_string();
    probe(b, json!([["docs.upsert_many", "bench", n, text]]));
    let plugin = median_per_op(rounds, n, || {
        probe(b, json!([["docs.upsert_many", "bench", n, text]]))
    });
    let native_ns = median_per_op(rounds, n, || {
        for i in 0..n {
            let mut d = doc.as_object().unwrap().clone();
            d.insert("_id".into(), json!(format!("d{i}")));
            native(b.docs.write(vec![Write::Upsert {
                coll: "native.bench".into(),
                doc: d,
            }]))
            .unwrap();
        }
    });
    format!(
        "| docs.upsert, {n} documents one by one, embedded | {:.1} µs | {:.1} µs | +{:.1} µs ({:.2}x) |",
        plugin / 1000.0,
        native_ns / 1000.0,
        (plugin - native_ns) / 1000.0,
        plugin / native_ns,
    )
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    println!("| operation | plugin, per op | native, per op | plugin adds |");
    println!("|---|---|---|---|");
    if want("kv") {
        let embedded = bench_host("");
        println!("{}", kv_get("embedded", &embedded, 2000, 21));
        drop(embedded);
        match redis::Redis::start() {
            Some(server) => {
                let b = bench_host(&format!(
                    "[storage]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{}\"\n",
                    server.1
                ));
                println!("{}", kv_get("Redis", &b, 500, 11));
            }
            None => println!("| kv.get, Redis | redis-server not found | | |"),
        }
    }
    if want("docs") {
        let b = bench_host("");
        println!("{}", docs_upsert(&b, 200, 7));
    }
}
