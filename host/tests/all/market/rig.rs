//! A market monitor under test: a [`TestHost`] with the bundled parsers and `threshold`
//! loaded, a real store (embedded or a fresh `redis-server`), the monitor itself and
//! the admin API on a free port.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use impressox_host::api::Services;
use impressox_host::market::MarketMonitor;
use impressox_host::market::rule_limits::RulePolicy;
use impressox_host::storage::{NOTIFY_REQUESTS, Store, StoreLimits};
use serde_json::Value;

use crate::harness::{TestHost, host_with};
use crate::servers::redis::RedisServer;

/// Which store backend a rig uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Redis,
}

pub const BOTH: [Backend; 2] = [Backend::Embedded, Backend::Redis];

pub struct Rig {
    pub host: TestHost,
    pub store: Arc<dyn Store>,
    pub monitor: Option<MarketMonitor>,
    pub api: String,
    pub http: reqwest::Client,
    pub redis: Option<RedisServer>,
    server: tokio::task::JoinHandle<()>,
    /// Every notification request read so far, by idempotency key, with how often a
    /// key was seen (more than once would be a duplicate).
    pub seen: BTreeMap<String, (Value, usize)>,
}

/// The `[storage]` section for a backend (starting Redis if needed).
pub fn storage_section(backend: Backend) -> (String, Option<RedisServer>) {
    match backend {
        Backend::Embedded => ("[storage]\nbackend = \"embedded\"\n".into(), None),
        Backend::Redis => {
            let r = RedisServer::start();
            (
                format!(
                    "[storage]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
                    r.url()
                ),
                Some(r),
            )
        }
    }
}

/// `market` with `rule_symbols = "any"` unless it sets `rule_symbols` itself: the rigs'
/// tests create rules before their feeds deliver a first price, which the production
/// default (`known`) would refuse.
pub fn any_symbol_unless_set(market: &str) -> String {
    const ANY: &str = "rule_symbols = \"any\"\n";
    if market.contains("rule_symbols") {
        market.to_string()
    } else if market.contains("[market]\n") {
        market.replacen("[market]\n", &format!("[market]\n{ANY}"), 1)
    } else {
        format!("[market]\n{ANY}{market}")
    }
}

impl Rig {
    /// Start everything. `market` is TOML for `[market]` and its arrays (no console).
    pub async fn start(backend: Backend, market: &str) -> Rig {
        let (storage, redis) = storage_section(backend);
        Self::start_with(&storage, redis, market).await
    }

    pub async fn start_with(storage: &str, redis: Option<RedisServer>, market: &str) -> Rig {
        Self::start_prepared(storage, redis, market, |_| {}).await
    }

    /// [`Rig::start_with`], with `prepare` run on the host after the bundled plugins are
    /// loaded and before the monitor starts (to load more plugins, say).
    pub async fn start_prepared(
        storage: &str,
        redis: Option<RedisServer>,
        market: &str,
        prepare: impl FnOnce(&TestHost),
    ) -> Rig {
        let market = any_symbol_unless_set(market);
        let host = host_with(&format!("{storage}\n{market}"));
        for (artifact, file) in [
            (test_artifacts::THRESHOLD, "threshold.wasm"),
            (test_artifacts::REPLAY_ROWS, "replay-rows.wasm"),
            (test_artifacts::BINANCE, "binance.wasm"),
            (test_artifacts::COINGECKO, "coingecko.wasm"),
        ] {
            host.load(artifact, file);
        }
        prepare(&host);
        std::fs::create_dir_all(host.config.data_dir()).unwrap();
        let store = impressox_host::storage::open(&host.config, StoreLimits::default())
            .await
            .unwrap();
        let monitor = MarketMonitor::start(&host.config, host.runtime.clone(), store.clone())
            .await
            .unwrap();
        let listener = impressox_host::api::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        let router = impressox_host::api::router_with(
            host.runtime.clone(),
            None,
            None,
            Services {
                store: Some(store.clone()),
                market: Some(monitor.handle.clone()),
                rules: RulePolicy::from_config(&host.config.market),
                ..Default::default()
            },
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Rig {
            host,
            store,
            monitor: Some(monitor),
            api,
            http: reqwest::Client::new(),
            redis,
            server,
            seen: BTreeMap::new(),
        }
    }

    /// A request with a JSON body; the status and the JSON answer (null if none).
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.api))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, body).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.api))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str) -> u16 {
        self.http
            .delete(format!("{}{path}", self.api))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Create a rule through the API; panics unless it is created.
    pub async fn rule(&self, body: Value) -> Value {
        let (status, v) = self.post("/api/v1/rules", body.clone()).await;
        assert_eq!(status, 201, "creating {body}: {v}");
        v
    }

    /// Read new notification requests into `seen` (through an audit consumer group).
    pub async fn collect(&mut self) {
        loop {
            let got = self
                .store
                .read_new(NOTIFY_REQUESTS, "test-audit", "audit", 1000, 0)
                .await
                .unwrap();
            if got.is_empty() {
                return;
            }
            let ids: Vec<String> = got.iter().map(|e| e.id.clone()).collect();
            for e in got {
                let v: Value = serde_json::from_str(&e.body).unwrap();
                assert_eq!(v["id"].as_str(), Some(e.key.as_str()));
                self.seen.entry(e.key).or_insert((v, 0)).1 += 1;
            }
            self.store
                .ack(NOTIFY_REQUESTS, "test-audit", &ids)
                .await
                .unwrap();
        }
    }

    /// Collect until `n` requests were seen (or panic after `timeout`).
    pub async fn wait_requests(&mut self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            self.collect().await;
            if self.seen.len() >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} notification requests, saw {}: {:?}",
                self.seen.len(),
                self.seen.keys().collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The keys seen, each asserted to be seen exactly once.
    pub fn keys(&self) -> Vec<String> {
        for (k, (_, n)) in &self.seen {
            assert_eq!(*n, 1, "notification request {k} was enqueued {n} times");
        }
        self.seen.keys().cloned().collect()
    }

    pub fn handle(&self) -> &impressox_host::market::MarketHandle {
        &self.monitor.as_ref().unwrap().handle
    }

    /// Stop the monitor and the API.
    pub async fn stop(mut self) -> (TestHost, Option<RedisServer>) {
        if let Some(m) = self.monitor.take() {
            m.stop().await;
        }
        self.server.abort();
        (self.host, self.redis)
    }
}

/// Write a replay CSV into the rig's folder and return its path.
pub fn write_csv(
    dir: &std::path::Path,
    name: &str,
    rows: &[(i64, &str, f64)],
) -> std::path::PathBuf {
    let mut text = String::from("ts_ms,symbol,price,volume\n");
    for (ts, sym, price) in rows {
        text.push_str(&format!("{ts},{sym},{price},1\n"));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Poll an async condition.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` seconds of a 100 → 136 → 104 sawtooth of BTCUSDT from `t0`, one row per second:
/// per 20-second cycle it crosses 121 upwards at second 6 and 119 downwards at second 16.
pub fn sawtooth(t0: i64, n: i64) -> Vec<(i64, &'static str, f64)> {
    (0..n)
        .map(|i| {
            let phase = i % 20;
            let p = if phase < 10 {
                100.0 + 4.0 * phase as f64
            } else {
                140.0 - 4.0 * (phase - 10) as f64
            };
            (t0 + i * 1000, "BTCUSDT", p)
        })
        .collect()
}
