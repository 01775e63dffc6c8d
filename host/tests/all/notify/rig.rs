//! A notify worker under test: a [`TestHost`] with both formatter plugins loaded, real
//! stores (embedded, or a fresh `redis-server` / SecantusDB), the worker in-process with
//! its console lines collected, the admin API on a free port, and a Telegram stand-in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use impressox_host::api::Services;
use impressox_host::documents::Documents;
use impressox_host::market::rule_limits::RulePolicy;
use impressox_host::notify::channels::Secrets;
use impressox_host::notify::channels::console::Sink;
use impressox_host::notify::{Extras, NotifyWorker};
use impressox_host::storage::{Store, StoreLimits};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::harness::{TestHost, host_with};
use crate::market::rig::{Backend, storage_section};
use crate::servers::mongo::MongoServer;
use crate::servers::redis::RedisServer;
use crate::servers::telegram::TelegramStandIn;

/// The secret variable names the rig's config uses (values are handed in, not in the env).
pub const TG_TOKEN_VAR: &str = "IMPRESSOX_TEST_TELEGRAM_TOKEN";
pub const HOOK_SECRET_VAR: &str = "IMPRESSOX_TEST_WEBHOOK_SECRET";
pub const HOOK_SECRET: &str = "whsec_test_secret";

/// Which document store a rig uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Docs {
    Embedded,
    Mongo,
}

/// Extra config keys per section (appended to the rig's own).
#[derive(Debug, Clone, Default)]
pub struct Opts {
    pub storage: Option<Backend>,
    pub docs: Option<Docs>,
    pub notify: String,
    pub retry: String,
    pub telegram: String,
    pub email: String,
    pub webhook: String,
    pub with_webhook_secret: bool,
    /// `[market]` keys (the bot's limits on `/watch`); `rule_symbols = "any"` unless set.
    pub market: String,
}

pub struct NotifyRig {
    pub host: TestHost,
    pub store: Arc<dyn Store>,
    pub docs: Arc<dyn Documents>,
    pub worker: Option<NotifyWorker>,
    pub api: String,
    pub http: reqwest::Client,
    pub tg: TelegramStandIn,
    pub console: Arc<Mutex<Vec<String>>>,
    /// Kept alive for the rig's lifetime.
    _redis: Option<RedisServer>,
    _mongo: Option<MongoServer>,
    server: tokio::task::JoinHandle<()>,
    extras: Extras,
}

impl NotifyRig {
    pub async fn start(opts: Opts) -> NotifyRig {
        let tg = TelegramStandIn::start().await;
        let (storage, redis) = storage_section(opts.storage.unwrap_or(Backend::Embedded));
        let (documents, mongo) = match opts.docs.unwrap_or(Docs::Embedded) {
            Docs::Embedded => ("[documents]\nbackend = \"embedded\"\n".to_string(), None),
            Docs::Mongo => {
                let m = MongoServer::start();
                (
                    format!(
                        "[documents]\nbackend = \"mongodb\"\nmongodb_url = \"{}\"\ndatabase = \"notify_test\"\n",
                        m.url()
                    ),
                    Some(m),
                )
            }
        };
        let toml = format!(
            "{storage}\n{documents}\n{}\n[notify]\n{}\n[notify.retry]\n{}\n[notify.telegram]\n{}\n\
             [notify.email]\n{}\n[notify.webhook]\n{}\n",
            crate::market::rig::any_symbol_unless_set(&format!("[market]\n{}", opts.market)),
            section(
                &opts.notify,
                &[
                    ("consumer", "\"test-host\""),
                    ("poll_interval_ms", "20"),
                    ("lease_secs", "30"),
                ]
            ),
            opts.retry,
            section(
                &opts.telegram,
                &[
                    ("api_url", &format!("{:?}", tg.url())),
                    ("token_env", &format!("{TG_TOKEN_VAR:?}")),
                    ("timeout_secs", "2"),
                    // The command poller only where a test asks for it (bot.rs), so other
                    // tests see no getUpdates traffic.
                    ("commands", "false"),
                ]
            ),
            section(&opts.email, &[("timeout_secs", "5")]),
            section(
                &opts.webhook,
                &[
                    ("secret_env", &format!("{HOOK_SECRET_VAR:?}")),
                    ("timeout_secs", "2"),
                    ("allow_private_addresses", "true"),
                ]
            ),
        );
        let host = host_with(&toml);
        host.load(test_artifacts::TELEGRAM_MARKDOWN, "telegram-markdown.wasm");
        host.load(test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm");
        std::fs::create_dir_all(host.config.data_dir()).unwrap();
        let store = impressox_host::storage::open(&host.config, StoreLimits::default())
            .await
            .unwrap();
        let docs = impressox_host::documents::open(&host.config).await.unwrap();
        let console = Arc::new(Mutex::new(Vec::new()));
        let mut secrets = Secrets::default();
        secrets
            .0
            .insert(TG_TOKEN_VAR.into(), tg.token().to_string());
        if opts.with_webhook_secret {
            secrets.0.insert(HOOK_SECRET_VAR.into(), HOOK_SECRET.into());
        }
        let extras = Extras {
            console: Sink::Lines(console.clone()),
            secrets,
            market: None,
        };
        let worker = NotifyWorker::start_with(
            &host.config,
            host.runtime.clone(),
            store.clone(),
            docs.clone(),
            extras.clone(),
        )
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
                docs: Some(docs.clone()),
                notify: Some(worker.handle.clone()),
                market: None,
                scraper: None,
                scraper_defaults: None,
                rules: RulePolicy::from_config(&host.config.market),
                ..Default::default()
            },
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        NotifyRig {
            host,
            store,
            docs,
            worker: Some(worker),
            api,
            http: reqwest::Client::new(),
            tg,
            console,
            _redis: redis,
            _mongo: mongo,
            server,
            extras,
        }
    }

    /// Stop the worker gracefully and start a new one on the same stores.
    pub async fn restart_worker(&mut self) {
        if let Some(w) = self.worker.take() {
            w.stop().await;
        }
        self.worker = Some(
            NotifyWorker::start_with(
                &self.host.config,
                self.host.runtime.clone(),
                self.store.clone(),
                self.docs.clone(),
                self.extras.clone(),
            )
            .await
            .unwrap(),
        );
    }

    /// What the rig hands its workers (console sink, secrets), for a second worker.
    pub fn extras(&self) -> Extras {
        self.extras.clone()
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.api));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn put_prefs(&self, user: &str, prefs: Value) {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &format!("/api/v1/users/{user}/preferences"),
                Some(prefs),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// POST a notification; asserts 202.
    pub async fn notify(&self, req: Value) {
        let (status, body) = self
            .call(reqwest::Method::POST, "/api/v1/notifications", Some(req))
            .await;
        assert_eq!(status, 202, "{body}");
    }

    pub async fn status(&self, id: &str) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/notifications/{id}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Wait until the notification's overall status is one of `want`; returns its view.
    pub async fn wait_status(&self, id: &str, want: &[&str], timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let (code, body) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/notifications/{id}"),
                    None,
                )
                .await;
            if code == 200 && want.iter().any(|w| body["status"] == *w) {
                return body;
            }
            if start.elapsed() > timeout {
                panic!("{id} never reached {want:?}; last: {code} {body:#}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn console_lines(&self) -> Vec<String> {
        self.console.lock().clone()
    }
}

impl Drop for NotifyRig {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A section's text: the test's own keys, then the rig's defaults for keys it did not set.
pub fn section(own: &str, defaults: &[(&str, &str)]) -> String {
    let mut out = own.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for (key, value) in defaults {
        let set = own.lines().any(|l| {
            l.trim_start().starts_with(&format!("{key} "))
                || l.trim_start().starts_with(&format!("{key}="))
        });
        if !set {
            out.push_str(&format!("{key} = {value}\n"));
        }
    }
    out
}

/// A request body.
pub fn request(id: &str, user: &str, title: &str, body: &str) -> Value {
    json!({"id": id, "user_id": user, "kind": "price_alert", "priority": "normal",
           "title": title, "body": body, "data": {"price": 70123.4}})
}

/// The first delivery of a notification view.
pub fn first_delivery(view: &Value) -> &Value {
    &view["deliveries"][0]
}
