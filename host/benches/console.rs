//! Console benchmark (issue 16): how long `/ui` takes to answer with 100,000 rules in
//! Redis, 50,000 delivery records of which 1,000 are dead letters, and the pages an
//! operator opens most: the overview (and its 5-second live fragment), the rules page
//! (first page, a page deep in the list, filtered by user, by symbol, by both), and the
//! dead-letters page.
//!
//! Timed over HTTP on loopback (reqwest to the host's own axum router), so each figure is
//! an upper bound of the server-side render. The overview's dead-letter counts are kept
//! for 5 s and refreshed behind the page (`api::console::counts`): `first` is the first
//! overview of the process, which waits at most 20 ms for the first counts (and shows
//! them as pending if they take longer); `stale` one after they aged, which starts a
//! refresh and answers with the kept ones; `warm` one within the 5 s. The pages are
//! checked to show what was stored (the counts, rules of the filter, the dead letters).
//!
//! Run: `cargo bench -p impressox-host --bench console`. `BENCH_RULES` (default 100000),
//! `BENCH_DELIVERIES` (50000), `BENCH_DEAD` (1000) and `BENCH_DOCS` (`embedded`, the
//! default, or `mongodb` with the test virtualenv's SecantusDB) change the set-up. Needs
//! `redis-server`. Figures go to docs/BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common/redis.rs"]
mod redis;

use futures_util::StreamExt;
use impressox_host::api::Services;
use impressox_host::config::Config;
use impressox_host::documents::Documents;
use impressox_host::documents::embedded::EmbeddedDocuments;
use impressox_host::documents::mongo::MongoDocuments;
use impressox_host::notify::record::{Delivery, NewDelivery, State};
use impressox_host::runtime::Runtime;
use impressox_host::storage::Store;
use impressox_host::storage::redis_store::RedisStore;
use redis::Redis;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A rule record as the rule layer stores it (its own type, so the pages can read it).
fn rule_json(i: usize) -> String {
    use impressox_host::market::rules::{Condition, Op, RuleRecord, Trigger};
    let symbol = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"][i % 4];
    serde_json::to_string(&RuleRecord {
        id: format!("r-{i:06}"),
        user_id: format!("u{}", i % 1000),
        symbol: symbol.into(),
        condition: Condition {
            op: Op::Above,
            value: (50_000 + i) as f64,
            direction: None,
            window_secs: None,
        },
        trigger: Trigger::default(),
        expires_at: None,
        channels: None,
        processor: None,
        note: Some(format!("bench rule {i}")),
        created_at: impressox_host::util::rfc3339_ms(1_760_000_000_000 + i as i64),
        enabled: true,
        firing: Default::default(),
    })
    .unwrap()
}

async fn fill_rules(store: &Arc<dyn Store>, n: usize) {
    let started = Instant::now();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            async move {
                store
                    .put_rule(&format!("r-{i:06}"), &rule_json(i))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    eprintln!("{n} rules stored in {:?}", started.elapsed());
}

async fn fill_deliveries(docs: &Arc<dyn Documents>, n: usize, dead: usize) {
    use impressox_host::documents::Write;
    let started = Instant::now();
    docs.ensure_indexes(impressox_host::notify::log::INDEXES)
        .await
        .unwrap();
    let now = impressox_host::util::now_ms();
    let mut batch = Vec::new();
    for i in 0..n {
        let mut d = Delivery::new(
            NewDelivery {
                notification_id: format!("n-{i:06}"),
                user_id: format!("u{}", i % 1000),
                kind: "price_alert".into(),
                priority: impressox_host::notify::request::Priority::Normal,
                channel: "telegram".into(),
                target: format!("{}", 100_000 + i % 1000),
                request_json: "{}".into(),
            },
            now - (n - i) as i64 * 1000,
        );
        d.rev = 1;
        if i < dead {
            d.state = State::Dead;
            d.reason = Some("permanent".into());
            d.last_error = Some("Forbidden: bot was blocked by the user".into());
        } else {
            d.state = State::Sent;
        }
        d.final_ms = now - (n - i) as i64 * 1000 + 500;
        batch.push(Write::Insert {
            coll: impressox_host::notify::record::DELIVERIES.into(),
            doc: d.to_doc(),
        });
        if batch.len() == 1000 {
            docs.write(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    if !batch.is_empty() {
        docs.write(batch).await.unwrap();
    }
    eprintln!(
        "{n} delivery records ({dead} dead letters) stored in {:?}",
        started.elapsed()
    );
}

/// Times of `runs` GETs of `url`, in ms, sorted; every answer must be a 200 whose HTML
/// holds every one of `expect` (so a page that shows nothing is not timed as a fast one).
async fn time_get(http: &reqwest::Client, url: &str, runs: usize, expect: &[&str]) -> Vec<f64> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let r = http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let body = r.text().await.unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        for e in expect {
            assert!(body.contains(e), "{url}: no {e:?} in the page");
        }
    }
    times.sort_by(f64::total_cmp);
    times
}

fn row(name: &str, times: &[f64]) {
    let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "| {name} | {:.2} | {:.2} | {:.2} |",
        p(0.5),
        p(0.99),
        times[times.len() - 1]
    );
}

fn main() {
    let Some(redis) = Redis::start() else {
        eprintln!("redis-server is needed (apt-get install -y redis-server)");
        std::process::exit(1);
    };
    let rules = env_or("BENCH_RULES", 100_000);
    let deliveries = env_or("BENCH_DELIVERIES", 50_000);
    let dead = env_or("BENCH_DEAD", 1_000);
    let docs_kind = std::env::var("BENCH_DOCS").unwrap_or_else(|_| "embedded".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Kept until the end: dropping it stops the MongoDB stand-in.
    let mut _mongo_guard = None;
    rt.block_on(async {
        let store: Arc<dyn Store> = Arc::new(
            RedisStore::connect(&format!("redis://127.0.0.1:{}", redis.1), Default::default())
                .await
                .unwrap(),
        );
        let docs: Arc<dyn Documents> = match docs_kind.as_str() {
            "mongodb" => {
                let (guard, url) = mongo::start();
                _mongo_guard = Some(guard);
                Arc::new(MongoDocuments::connect(&url, "console_bench").await.unwrap())
            }
            _ => Arc::new(EmbeddedDocuments::open(&dir.path().join("docs.redb")).unwrap()),
        };
        fill_rules(&store, rules).await;
        fill_deliveries(&docs, deliveries, dead).await;

        let config = Config::load_with_env(None, &[]).unwrap();
        let runtime = Runtime::new(&config).unwrap();
        let router = impressox_host::api::router_with(
            runtime,
            None,
            None,
            Services {
                store: Some(store.clone()),
                docs: Some(docs.clone()),
                ..Default::default()
            },
        );
        let listener = impressox_host::api::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let http = reqwest::Client::new();
        // The overview must show the figures it was filled with.
        let rules_card = format!("id=\"rules-count\">{rules}<");
        let dead_card = format!("id=\"dead-notifications\">{dead}<");
        let overview: &[&str] = &[&rules_card, &dead_card];
        // The first overview of the process waits at most 20 ms for the document counts:
        // it shows the rules' count, and the dead letters' if they came in time.
        let first = time_get(&http, &format!("{base}/ui"), 1, &[&rules_card]).await;

        println!(
            "\nconsole: {rules} rules (Redis), {deliveries} delivery records with {dead} dead letters ({docs_kind} documents)\n"
        );
        println!("| page | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|");
        row("overview, first (waits ≤ 20 ms for the counts)", &first);
        // Each after the counts' 5 s: a refresh starts behind it.
        let mut stale = Vec::new();
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(5_100)).await;
            stale.extend(time_get(&http, &format!("{base}/ui"), 1, overview).await);
        }
        stale.sort_by(f64::total_cmp);
        row("overview, counts aged (refresh behind)", &stale);
        row(
            "overview, counts kept (warm)",
            &time_get(&http, &format!("{base}/ui"), 200, overview).await,
        );
        row(
            "overview live fragment (warm)",
            &time_get(&http, &format!("{base}/ui/overview/live"), 200, overview).await,
        );
        // Each page must list rules (or dead letters) of its filter.
        for (name, path, expect) in [
            ("rules, first page", "/ui/rules", "data-rule=\"r-"),
            (
                "rules, page at offset 90,000",
                "/ui/rules?offset=90000",
                "rules 90001–90050",
            ),
            ("rules, one user", "/ui/rules?user_id=u7", "<td>u7</td>"),
            (
                "rules, one symbol",
                "/ui/rules?symbol=SOLUSDT",
                "<td>SOLUSDT</td>",
            ),
            (
                "rules, user and symbol",
                "/ui/rules?user_id=u7&symbol=XRPUSDT",
                "<td>XRPUSDT</td>",
            ),
            ("dead letters", "/ui/dead-letters", "bot was blocked"),
        ] {
            row(
                name,
                &time_get(&http, &format!("{base}{path}"), 100, &[expect]).await,
            );
        }
    });
}

/// SecantusDB for `BENCH_DOCS=mongodb` (the test virtualenv's `secantusd-py`).
mod mongo {
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    pub struct Guard(Child, #[allow(dead_code)] tempfile::TempDir);

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    pub fn start() -> (Guard, String) {
        let venv = std::env::var_os("IMPRESSOX_TEST_VENV")
            .map(std::path::PathBuf::from)
            .expect("BENCH_DOCS=mongodb needs IMPRESSOX_TEST_VENV (the test virtualenv)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secantusd.toml"), "").unwrap();
        // Guarded at once: a server that never listens is still killed and reaped.
        let guard = Guard(
            Command::new(venv.join("bin/secantusd-py"))
                .arg("--config")
                .arg(dir.path().join("secantusd.toml"))
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .arg("--storage-path")
                .arg(dir.path().join("data"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("secantusd-py"),
            dir,
        );
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (
                    guard,
                    format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("secantusd-py did not listen");
    }
}
