//! Notify worker benchmarks (issue 4): requests on `notify:requests` (Redis) → planning →
//! the `telegram-markdown` formatter plugin → the Telegram channel (teloxide) → a local
//! Bot API stand-in, with the delivery log in the embedded document store.
//!
//! - `throughput`: 50,000 requests to 1,000 chats, rate limits off, pre-enqueued; time
//!   from the worker's start to the last arrival at the stand-in.
//! - `latency`: 1,000 requests/s for 20 s to 200 chats, rate limits off; enqueue → arrival.
//! - `ratelimit`: 10,000 requests to 100 chats (90 private, 10 groups) spread over 60 s,
//!   rate limits on; the most messages any chat (and the bot) got in any window.
//!
//! Run: `cargo bench -p impressox-host --bench notify [-- throughput|latency|ratelimit]`.
//! `BENCH_CHANNEL=console` delivers to the console channel instead (collected in memory),
//! which tells the HTTP path's share of the cost. Figures go to docs/BENCHMARKS.md.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;

#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/redis.rs"]
mod redis;
use axum::extract::{Path as UrlPath, State};
use axum::routing::post;
use impressox_host::config::Config;
use impressox_host::documents::Documents;
use impressox_host::notify::channels::Secrets;
use impressox_host::notify::{Extras, NotifyWorker};
use impressox_host::runtime::Runtime;
use impressox_host::storage::{NOTIFY_REQUESTS, Store, StoreLimits};
use parking_lot::Mutex;
use redis::Redis;
use serde_json::{Value, json};

/// The same allocator as the `impressox` binary (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "4242:bench-token";

/// A Bot API stand-in that accepts every `sendMessage` and notes when each arrived.
#[derive(Default)]
struct StandIn {
    /// (request number, chat id, arrival).
    arrivals: Mutex<Vec<(usize, i64, Instant)>>,
}

async fn handle(
    State(s): State<Arc<StandIn>>,
    UrlPath((_bot, _method)): UrlPath<(String, String)>,
    body: axum::body::Bytes,
) -> axum::Json<Value> {
    let at = Instant::now();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let chat = v["chat_id"].as_i64().unwrap_or(0);
    let text = v["text"].as_str().unwrap_or("");
    if let Some(n) = number_in(text) {
        s.arrivals.lock().push((n, chat, at));
    }
    axum::Json(json!({"ok": true, "result": {"message_id": 1, "date": 0,
        "chat": {"id": chat, "type": if chat > 0 { "private" } else { "group" }, "first_name": "B", "title": "G"},
        "text": text}}))
}

/// The number in `B<n>E` (the request's title).
fn number_in(text: &str) -> Option<usize> {
    let start = text.find('B')? + 1;
    let end = start + text[start..].find('E')?;
    text[start..end].parse().ok()
}

async fn start_stand_in() -> (String, Arc<StandIn>) {
    let s = Arc::new(StandIn::default());
    let router = Router::new()
        .route("/{bot}/{method}", post(handle))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, s)
}

struct Bench {
    _dir: tempfile::TempDir,
    _redis: Redis,
    config: Config,
    runtime: Runtime,
    store: Arc<dyn Store>,
    docs: Arc<dyn Documents>,
    stand_in: Arc<StandIn>,
    lines: Arc<Mutex<Vec<String>>>,
}

async fn setup(rate_limits: bool, chats: &[i64]) -> Bench {
    let redis = Redis::start().expect("redis-server (apt install redis-server)");
    let (url, stand_in) = start_stand_in().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("bench.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\n\
             [storage]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{}\"\n\
             [documents]\nbackend = \"embedded\"\n\
             [notify]\nrate_limits = {rate_limits}\nconsumer = \"bench\"\n\
             [notify.telegram]\napi_url = \"{url}\"\ntoken_env = \"BENCH_TOKEN\"\ncommands = false\n",
            redis.1
        ),
    )
    .unwrap();
    let config = Config::load_with_env(Some(&cfg_path), &[]).unwrap();
    std::fs::create_dir_all(config.plugin_dir()).unwrap();
    std::fs::create_dir_all(config.data_dir()).unwrap();
    let runtime = Runtime::new(&config).unwrap();
    for (a, f) in [
        (test_artifacts::TELEGRAM_MARKDOWN, "telegram-markdown.wasm"),
        (test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm"),
    ] {
        let p = config.plugin_dir().join(f);
        std::fs::copy(a, &p).unwrap();
        runtime.load_file(&p).unwrap();
    }
    let store = impressox_host::storage::open(&config, StoreLimits::default())
        .await
        .unwrap();
    let docs = impressox_host::documents::open(&config).await.unwrap();
    for (i, chat) in chats.iter().enumerate() {
        let ch = std::env::var("BENCH_CHANNEL").unwrap_or("telegram".into());
        let prefs = json!({"_id": format!("u{i}"), "channels": {"telegram": {"chat_id": chat.to_string()}},
                           "enabled": [ch]});
        let Value::Object(doc) = prefs else {
            unreachable!()
        };
        impressox_host::documents::upsert(docs.as_ref(), "preferences", doc)
            .await
            .unwrap();
    }
    Bench {
        _dir: dir,
        _redis: redis,
        config,
        runtime,
        store,
        docs,
        stand_in,
        lines: Default::default(),
    }
}

impl Bench {
    async fn worker(&self) -> NotifyWorker {
        let mut secrets = Secrets::default();
        secrets.0.insert("BENCH_TOKEN".into(), TOKEN.into());
        NotifyWorker::start_with(
            &self.config,
            self.runtime.clone(),
            self.store.clone(),
            self.docs.clone(),
            Extras {
                secrets,
                console: impressox_host::notify::channels::console::Sink::Lines(self.lines.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
    }

    fn body(n: usize, users: usize) -> String {
        json!({"id": format!("b-{n}"), "user_id": format!("u{}", n % users), "kind": "price_alert",
               "title": format!("B{n}E"), "body": "BTCUSDT is 70123.40 (Binance)", "data": {}})
        .to_string()
    }

    async fn wait_arrivals(&self, n: usize, timeout: Duration) -> bool {
        let start = Instant::now();
        while self.stand_in.arrivals.lock().len() + self.lines.lock().len() < n {
            if start.elapsed() > timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

async fn throughput() -> String {
    const N: usize = 50_000;
    const CHATS: usize = 1_000;
    let chats: Vec<i64> = (0..CHATS as i64).map(|c| 100_000 + c).collect();
    let b = setup(false, &chats).await;
    for n in 0..N {
        b.store
            .enqueue_once(NOTIFY_REQUESTS, &format!("b-{n}"), &Bench::body(n, CHATS))
            .await
            .unwrap();
    }
    let cpu0 = cpu::own_cpu_secs();
    let start = Instant::now();
    let worker = b.worker().await;
    assert!(
        b.wait_arrivals(N, Duration::from_secs(300)).await,
        "only {} arrived",
        b.stand_in.arrivals.lock().len()
    );
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu::own_cpu_secs() - cpu0;
    worker.stop().await;
    let dup = {
        let a = b.stand_in.arrivals.lock();
        let mut seen = HashMap::new();
        for (n, _, _) in a.iter() {
            *seen.entry(*n).or_insert(0) += 1;
        }
        seen.values().filter(|v| **v > 1).count()
    };
    format!(
        "| throughput, rate limits off, Redis + embedded log | {N} requests to {CHATS} chats in {secs:.2} s | **{:.0} notifications/s** | CPU {:.0} % of one core (this process: host + stand-in) | duplicates: {dup} |",
        N as f64 / secs,
        100.0 * cpu / secs
    )
}

async fn latency() -> String {
    const RATE: usize = 1_000;
    const SECS: usize = 20;
    const CHATS: usize = 200;
    let chats: Vec<i64> = (0..CHATS as i64).map(|c| 200_000 + c).collect();
    let b = setup(false, &chats).await;
    let worker = b.worker().await;
    let total = RATE * SECS;
    let mut sent_at = Vec::with_capacity(total);
    let start = Instant::now();
    for n in 0..total {
        let due = start + Duration::from_micros((n as u64) * 1_000_000 / RATE as u64);
        tokio::time::sleep_until(due.into()).await;
        sent_at.push(Instant::now());
        b.store
            .enqueue_once(NOTIFY_REQUESTS, &format!("b-{n}"), &Bench::body(n, CHATS))
            .await
            .unwrap();
    }
    assert!(b.wait_arrivals(total, Duration::from_secs(60)).await);
    worker.stop().await;
    let mut lat: Vec<f64> = b
        .stand_in
        .arrivals
        .lock()
        .iter()
        .map(|(n, _, at)| (*at - sent_at[*n]).as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    format!(
        "| latency, {RATE}/s for {SECS} s to {CHATS} chats, rate limits off | enqueue → arrival at the stand-in | p50 {:.2} ms | **p99 {:.2} ms** | max {:.2} ms |",
        q(0.5),
        q(0.99),
        lat[lat.len() - 1]
    )
}

/// Most arrivals within any `window` (sliding, by arrival time).
fn max_in_window(times: &mut [Instant], window: Duration) -> usize {
    times.sort();
    let (mut best, mut lo) = (0, 0);
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

async fn ratelimit() -> String {
    const N: usize = 10_000;
    const SECS: u64 = 60;
    let chats: Vec<i64> = (0..90i64)
        .map(|c| 300_000 + c)
        .chain((0..10i64).map(|g| -400_000 - g))
        .collect();
    let b = setup(true, &chats).await;
    let worker = b.worker().await;
    let start = Instant::now();
    for n in 0..N {
        let due = start + Duration::from_micros(n as u64 * SECS * 1_000_000 / N as u64);
        tokio::time::sleep_until(due.into()).await;
        b.store
            .enqueue_once(
                NOTIFY_REQUESTS,
                &format!("b-{n}"),
                &Bench::body(n, chats.len()),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep_until((start + Duration::from_secs(SECS)).into()).await;
    worker.stop().await;
    let arrivals = b.stand_in.arrivals.lock().clone();
    let mut per_chat: HashMap<i64, Vec<Instant>> = HashMap::new();
    let mut all = Vec::new();
    for (_, chat, at) in &arrivals {
        per_chat.entry(*chat).or_default().push(*at);
        all.push(*at);
    }
    let (mut private_1s, mut private_60s, mut group_60s) = (0, 0, 0);
    for (chat, times) in per_chat.iter_mut() {
        if *chat > 0 {
            private_1s = private_1s.max(max_in_window(times, Duration::from_secs(1)));
            private_60s = private_60s.max(max_in_window(times, Duration::from_secs(60)));
        } else {
            group_60s = group_60s.max(max_in_window(times, Duration::from_secs(60)));
        }
    }
    let overall_1s = max_in_window(&mut all, Duration::from_secs(1));
    format!(
        "| rate limiter, {N} requests to 90 private chats + 10 groups over {SECS} s | delivered in {SECS} s: {} | max per private chat: **{private_1s} in any 1 s**, {private_60s} in any 60 s | max per group: **{group_60s} in any 60 s** | overall: **{overall_1s} in any 1 s** |",
        arrivals.len()
    )
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    if want("throughput") {
        rows.push(rt.block_on(throughput()));
    }
    if want("latency") {
        rows.push(rt.block_on(latency()));
    }
    if want("ratelimit") {
        rows.push(rt.block_on(ratelimit()));
    }
    for r in rows {
        println!("{r}");
    }
}
