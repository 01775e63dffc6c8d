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
const ROUNDS: usize = 9;
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

    // Native, two ways: a current-thread runtime (everything on the caller's thread, the
    // fastest a native program can be) and the default multi-thread runtime driven from a
    // blocking caller, the shape of `#[tokio::main]` and of the plugin path, where the
    // connection runs on runtime workers and the caller is woken when its answer is in.
    let current_thread = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let multi_thread = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = || {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let (ct_client, mt_client) = (client(), client());
    let fetch_and_keep = |client: &reqwest::Client| {
        let (client, url, store) = (client.clone(), url.clone(), store.clone());
        async move {
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
            assert_eq!(value, serde_json::json!(97000.5));
        }
    };
    let mut native_ct = || current_thread.block_on(fetch_and_keep(&ct_client));
    let mut native_mt = || multi_thread.block_on(fetch_and_keep(&mt_client));

    // Alternate the three, round by round, so drift on a shared machine hits all alike.
    let mut rows = Vec::new();
    for round in 1..=ROUNDS {
        let c = measure(&mut native_ct);
        let m = measure(&mut native_mt);
        let p = measure(&mut plugin);
        rows.push((round, c, m, p));
    }
    let cell = |f: &Figures| format!("{:.1} / {:.1} / {:.1}", f.mean_us, f.p50_us, f.p99_us);
    println!(
        "| round | native, current-thread runtime (µs, mean / p50 / p99) | native, multi-thread runtime | plugin (wasi:http) | plugin / native mean (current, multi) | plugin / native p99 (current, multi) |"
    );
    println!("|---|---|---|---|---|---|");
    for (round, c, m, p) in &rows {
        println!(
            "| {round} | {} | {} | {} | {:.2}x, {:.2}x | {:.2}x, {:.2}x |",
            cell(c),
            cell(m),
            cell(p),
            p.mean_us / c.mean_us,
            p.mean_us / m.mean_us,
            p.p99_us / c.p99_us,
            p.p99_us / m.p99_us,
        );
    }
    let median = |f: &dyn Fn(&Figures, &Figures, &Figures) -> f64| {
        let mut v: Vec<f64> = rows.iter().map(|(_, c, m, p)| f(c, m, p)).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "\nmedians over {ROUNDS} rounds of {PER_ROUND} requests: plugin/native mean {:.2}x \
         (current-thread), {:.2}x (multi-thread); p99 {:.2}x, {:.2}x",
        median(&|c, _, p| p.mean_us / c.mean_us),
        median(&|_, m, p| p.mean_us / m.mean_us),
        median(&|c, _, p| p.p99_us / c.p99_us),
        median(&|_, m, p| p.p99_us / m.p99_us),
    );
}
