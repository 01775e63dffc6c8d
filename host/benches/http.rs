//! Outbound HTTP benchmark (issue 13): a GET of a small JSON document from a loopback
//! server, taking one field of it and keeping it in kv on the embedded store — from the
//! `http-probe` plugin through `wasi:http` (grant check, SSRF guard, budgets, deadline) and
//! the `kv` capability vs from native Rust with `reqwest` and the same store calls, side by
//! side in one run, both over kept-alive HTTP/1.1 connections. Run:
//! `cargo bench -p impressox-host --bench http`. Prints a Markdown table for
//! docs/BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header;
use impressox_host::bindings::types::TaskRun;
use impressox_host::capabilities::Services;
use impressox_host::config::Config;
use impressox_host::runtime::Runtime;
use impressox_host::runtime::deadline::io_runtime;
use impressox_host::runtime::metrics::LatencyHistogram;
use impressox_host::storage::Store;

const BODY: &str =
    r#"{"bitcoin":{"usd":97000.5,"usd_24h_change":-1.25,"last_updated_at":1764300000}}"#;
const WARMUP: usize = 500;
const ROUNDS: usize = 5;
const PER_ROUND: usize = 2_000;

/// Serve `BODY` at `/price` on a loopback port, on a runtime of its own.
fn serve() -> (tokio::runtime::Runtime, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/price", listener.local_addr().unwrap());
    let router = Router::new().route(
        "/price",
        axum::routing::get(|| async { ([(header::CONTENT_TYPE, "application/json")], BODY) }),
    );
    rt.spawn(async move { axum::serve(listener, router).await.unwrap() });
    (rt, url)
}

fn config(dir: &std::path::Path) -> Config {
    let p = dir.join("c.toml");
    std::fs::write(
        &p,
        "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\n\
         [plugins.grants.http-probe]\nkv = true\nhttp = [\"http://127.0.0.1:*\"]\n\
         [plugins.http]\nallow_private_addresses = true\nmax_requests_per_call = 4\n",
    )
    .unwrap();
    let c = Config::load_with_env(Some(&p), &[]).unwrap();
    std::fs::create_dir_all(c.plugin_dir()).unwrap();
    c
}

struct Figures {
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
}

fn measure(mut f: impl FnMut()) -> Figures {
    for _ in 0..WARMUP {
        f();
    }
    let h = LatencyHistogram::default();
    let started = Instant::now();
    for _ in 0..PER_ROUND {
        let t = Instant::now();
        f();
        h.record(t.elapsed().as_nanos() as u64);
    }
    let total = started.elapsed();
    Figures {
        mean_us: total.as_secs_f64() * 1e6 / PER_ROUND as f64,
        p50_us: h.quantile_ns(0.5).unwrap() as f64 / 1e3,
        p99_us: h.quantile_ns(0.99).unwrap() as f64 / 1e3,
    }
}

fn main() {
    let (_server, url) = serve();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (store, docs) = io_runtime().block_on(async {
        let store = impressox_host::storage::open(&cfg, Default::default())
            .await
            .unwrap();
        let docs = impressox_host::documents::open(&cfg).await.unwrap();
        (store, docs)
    });
    let store: Arc<dyn Store> = store;
    let runtime = Runtime::with_services(&cfg, Services::new(&cfg, store.clone(), docs)).unwrap();
    let path = cfg.plugin_dir().join("http-probe.wasm");
    std::fs::copy(test_artifacts::HTTP_PROBE, &path).unwrap();
    runtime.load_file(&path).unwrap();
    let probe = runtime.plugin("http-probe");
    let run = TaskRun {
        schedule: "bench".into(),
        scheduled_at_ms: 0,
        attempt: 1,
        args_json: serde_json::json!({"url": url, "field": "/bitcoin/usd"}).to_string(),
    };
    let mut plugin = || {
        let report = probe.run_task(&run).unwrap().unwrap();
        assert!(report.data_json.contains("97000.5"));
    };

    let native_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut native = || {
        let value = native_rt.block_on(async {
            let response = client.get(&url).send().await.unwrap();
            assert!(response.status().is_success());
            let body = response.bytes().await.unwrap();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let value = json.pointer("/bitcoin/usd").cloned().unwrap();
            // What the plugin does with it: read the previous value, keep the new one.
            let key = "/bitcoin/usd";
            let _previous = store.plugin_kv_get("native", key).await.unwrap();
            let text = value.to_string();
            store
                .plugin_kv_set("native", key, text.as_bytes(), None, 10_000)
                .await
                .unwrap();
            value
        });
        assert_eq!(value, serde_json::json!(97000.5));
    };

    // Alternate the two, round by round, so drift on a shared machine hits both alike.
    let mut rows = Vec::new();
    for round in 1..=ROUNDS {
        let n = measure(&mut native);
        let p = measure(&mut plugin);
        rows.push((round, n, p));
    }
    println!(
        "| round | native reqwest mean / p50 / p99 (µs) | plugin (wasi:http) mean / p50 / p99 (µs) | plugin / native (mean, p99) |"
    );
    println!("|---|---|---|---|");
    for (round, n, p) in &rows {
        println!(
            "| {round} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.2}x, {:.2}x |",
            n.mean_us,
            n.p50_us,
            n.p99_us,
            p.mean_us,
            p.p50_us,
            p.p99_us,
            p.mean_us / n.mean_us,
            p.p99_us / n.p99_us
        );
    }
    let mut ratios: Vec<f64> = rows.iter().map(|(_, n, p)| p.mean_us / n.mean_us).collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "\nmedian plugin/native mean ratio over {ROUNDS} rounds of {PER_ROUND} requests: {:.2}x",
        ratios[ratios.len() / 2]
    );
}
