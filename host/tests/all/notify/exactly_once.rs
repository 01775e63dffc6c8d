//! "Never sent twice, never lost" with real processes: `impressox run` killed with
//! SIGKILL mid-stream and restarted, and two hosts consuming one stream.
//!
//! Every request goes to a Telegram chat of the stand-in; the stand-in's log is the truth
//! about what was sent. After the run, every delivery record must be final, every pair
//! (notification, chat) must have reached the stand-in at most once, every `sent` record
//! exactly once, and every request that did not arrive must be a dead letter a person can
//! see (`interrupted`: the host died after claiming it).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use impressox_host::documents::Documents;
use impressox_host::notify::record::{DELIVERIES, Delivery, State};
use impressox_host::storage::{NOTIFY_REQUESTS, Store, StoreLimits};
use serde_json::json;

use super::rig::TG_TOKEN_VAR;
use crate::harness::free_port;
use crate::servers::mongo::MongoServer;
use crate::servers::redis::RedisServer;
use crate::servers::telegram::TelegramStandIn;

const USERS: usize = 50;

/// A host's folder: config, plugins, data.
struct HostDir {
    dir: tempfile::TempDir,
    port: u16,
}

impl HostDir {
    fn new(storage: &str, documents: &str, consumer: &str, tg_url: &str) -> HostDir {
        Self::with_extra(storage, documents, consumer, tg_url, "")
    }

    /// A host with `extra` config appended (another channel's section).
    fn with_extra(
        storage: &str,
        documents: &str,
        consumer: &str,
        tg_url: &str,
        extra: &str,
    ) -> HostDir {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let plugins = dir.path().join("plugins.d");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::copy(
            test_artifacts::TELEGRAM_MARKDOWN,
            plugins.join("telegram-markdown.wasm"),
        )
        .unwrap();
        std::fs::copy(
            test_artifacts::PLAIN_FORMATTER,
            plugins.join("plain-formatter.wasm"),
        )
        .unwrap();
        std::fs::copy(
            test_artifacts::WEBPUSH_PAYLOAD,
            plugins.join("webpush-payload.wasm"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("host.toml"),
            format!(
                "data_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n[plugins]\ndir = \"plugins.d\"\n\
                 {storage}\n{documents}\n[workers]\nenabled = [\"notify\"]\n\
                 [notify]\nconsumer = \"{consumer}\"\nrate_limits = false\nlease_secs = 30\nclaim_idle_secs = 2\n\
                 poll_interval_ms = 20\n\
                 [notify.telegram]\napi_url = \"{tg_url}\"\ntoken_env = \"{TG_TOKEN_VAR}\"\ntimeout_secs = 3\ncommands = false\n\
                 [notify.email]\ntimeout_secs = 5\n{extra}\n"
            ),
        )
        .unwrap();
        HostDir { dir, port }
    }

    fn spawn(&self, token: &str) -> Child {
        self.spawn_with(token, &[])
    }

    /// Spawn with more secret variables in its environment.
    fn spawn_with(&self, token: &str, env: &[(&str, &str)]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_impressox"))
            .envs(env.iter().copied())
            .args([
                "--config",
                self.dir.path().join("host.toml").to_str().unwrap(),
                "run",
            ])
            .env_remove("RUST_LOG")
            .env(TG_TOKEN_VAR, token)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("host.log"))
                    .unwrap(),
            ))
            .spawn()
            .unwrap()
    }

    fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&self, http: &reqwest::Client) {
        let start = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.api())).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "host never became ready: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host.log")).unwrap_or_default()
    }

    fn documents_path(&self) -> std::path::PathBuf {
        self.dir.path().join("data/documents.redb")
    }
}

fn kill(child: &mut Child) {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
}

fn terminate(child: &mut Child) {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

async fn put_users(http: &reqwest::Client, api: &str) {
    for u in 0..USERS {
        let r = http
            .put(format!("{api}/api/v1/users/u{u}/preferences"))
            .json(
                &json!({"channels": {"telegram": {"chat_id": (10_000 + u).to_string()}},
                          "enabled": ["telegram"]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

async fn enqueue(store: &dyn Store, n: usize) {
    for i in 0..n {
        let id = format!("x-{i}");
        let body = json!({"id": id, "user_id": format!("u{}", i % USERS), "kind": "price_alert",
                          "title": format!("R{i}Z"), "body": "", "data": {}});
        store
            .enqueue_once(NOTIFY_REQUESTS, &id, &body.to_string())
            .await
            .unwrap();
    }
}

/// The request number in a message text (`R<i>Z` in the title).
fn number_in(text: &str) -> Option<usize> {
    let start = text.find('R')? + 1;
    let end = start + text[start..].find('Z')?;
    text[start..end].parse().ok()
}

/// Arrivals at the stand-in per (request number, chat).
fn arrivals(tg: &TelegramStandIn) -> HashMap<(usize, String), usize> {
    let mut m = HashMap::new();
    for r in tg.sent() {
        let n = number_in(r.text.as_deref().unwrap_or("")).expect("a bench message");
        *m.entry((n, r.chat_id.clone().unwrap())).or_default() += 1;
    }
    m
}

async fn all_records(docs: &dyn Documents) -> Vec<Delivery> {
    docs.find(
        DELIVERIES,
        &impressox_host::documents::Query::new(impressox_host::documents::Filter::all()),
    )
    .await
    .unwrap()
    .into_iter()
    .map(|d| Delivery::from_doc(d).unwrap())
    .collect()
}

/// The checks every scenario ends with; returns how many were interrupted.
fn check(records: &[Delivery], tg: &TelegramStandIn, n: usize) -> usize {
    let arrived = arrivals(tg);
    for ((i, chat), count) in &arrived {
        assert_eq!(*count, 1, "request {i} reached chat {chat} {count} times");
    }
    assert_eq!(records.len(), n, "one record per request");
    let mut interrupted = 0;
    for d in records {
        let i: usize = d.notification_id.trim_start_matches("x-").parse().unwrap();
        let at_stand_in = arrived.contains_key(&(i, d.target.clone()));
        match d.state {
            State::Sent => assert!(at_stand_in, "{} is sent but never arrived", d.id),
            State::Dead => {
                assert_eq!(d.reason.as_deref(), Some("interrupted"), "{d:?}");
                interrupted += 1;
            }
            other => panic!("{} left {other:?}", d.id),
        }
    }
    interrupted
}

/// Wait until there are `n` records and none is open (counting, not reading them: the
/// test should not be what loads the store), then read them all.
async fn wait_all_final(
    docs: &dyn Documents,
    n: usize,
    logs: impl Fn() -> String,
) -> Vec<Delivery> {
    use impressox_host::documents::Filter;
    let start = Instant::now();
    loop {
        let total = docs.count(DELIVERIES, &Filter::all()).await.unwrap() as usize;
        let open = docs
            .count(
                DELIVERIES,
                &Filter::all().is_in("state", vec![json!("queued"), json!("sending")]),
            )
            .await
            .unwrap();
        if total == n && open == 0 {
            return all_records(docs).await;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let records = all_records(docs).await;
            let stuck: Vec<_> = records
                .iter()
                .filter(|d| matches!(d.state, State::Queued | State::Sending))
                .take(3)
                .collect();
            panic!(
                "{total} records, {open} still open, e.g. {stuck:?}\n{}",
                logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_notify_host_neither_loses_nor_repeats() {
    const N: usize = 2000;
    let tg = TelegramStandIn::start().await;
    let redis = RedisServer::start();
    let host = HostDir::new(
        &format!(
            "[storage]\nbackend = \"redis\"\nredis_url = \"{}\"",
            redis.url()
        ),
        "[documents]\nbackend = \"embedded\"",
        "kill-host",
        &tg.url(),
    );
    let http = reqwest::Client::new();
    let mut child = host.spawn(tg.token());
    host.wait_ready(&http).await;
    put_users(&http, &host.api()).await;
    let store = impressox_host::storage::redis_store::RedisStore::connect(
        &redis.url(),
        StoreLimits::default(),
    )
    .await
    .unwrap();
    // Kill twice, at random points of the stream.
    for round in 0..2 {
        let kill_at = fastrand::usize(100..N / 2);
        if round == 0 {
            enqueue(&store, N).await;
        }
        let before = tg.sent().len();
        let start = Instant::now();
        while tg.sent().len() < (before + kill_at).min(N) - 1
            && start.elapsed() < Duration::from_secs(30)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        kill(&mut child);
        eprintln!("round {round}: killed after {} arrivals", tg.sent().len());
        child = host.spawn(tg.token());
        host.wait_ready(&http).await;
    }
    // Let it drain (every record final, by the host's own gauges), stop it, read the log.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(90) {
        let m = records_by_state(&http, &host.api()).await;
        let get = |s: &str| m.get(s).copied().unwrap_or(0);
        if get("queued") == 0 && get("sending") == 0 && get("sent") + get("dead") == N {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    terminate(&mut child);
    let docs = impressox_host::documents::embedded::EmbeddedDocuments::open(&host.documents_path())
        .unwrap();
    let records = wait_all_final(&docs, N, || host.log()).await;
    let interrupted = check(&records, &tg, N);
    eprintln!(
        "{} of {N} delivered, {interrupted} interrupted (dead letters, never resent)",
        tg.sent().len()
    );
    assert!(
        interrupted <= 2 * 256,
        "at most what was in flight at the kills"
    );
}

/// `impressox_notify_records{state=...}` from the host's `/metrics`.
async fn records_by_state(http: &reqwest::Client, api: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    let Ok(r) = http.get(format!("{api}/metrics")).send().await else {
        return out;
    };
    let text = r.text().await.unwrap_or_default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("impressox_notify_records{state=\"")
            && let Some((state, value)) = rest.split_once("\"} ")
            && let Ok(v) = value.trim().parse()
        {
            out.insert(state.to_string(), v);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_deliver_each_pair_once() {
    const N: usize = 1000;
    let tg = TelegramStandIn::start().await;
    let redis = RedisServer::start();
    let mongo = MongoServer::start();
    let storage = format!(
        "[storage]\nbackend = \"redis\"\nredis_url = \"{}\"",
        redis.url()
    );
    let documents = format!(
        "[documents]\nbackend = \"mongodb\"\nmongodb_url = \"{}\"\ndatabase = \"two_hosts\"",
        mongo.url()
    );
    let a = HostDir::new(&storage, &documents, "host-a", &tg.url());
    let b = HostDir::new(&storage, &documents, "host-b", &tg.url());
    let http = reqwest::Client::new();
    let mut ca = a.spawn(tg.token());
    let mut cb = b.spawn(tg.token());
    a.wait_ready(&http).await;
    b.wait_ready(&http).await;
    put_users(&http, &a.api()).await;
    let store = impressox_host::storage::redis_store::RedisStore::connect(
        &redis.url(),
        StoreLimits::default(),
    )
    .await
    .unwrap();
    let start = Instant::now();
    enqueue(&store, N).await;
    let docs = impressox_host::documents::mongo::MongoDocuments::connect(&mongo.url(), "two_hosts")
        .await
        .unwrap();
    let records = wait_all_final(&docs, N, || {
        format!("host-a:\n{}\nhost-b:\n{}", a.log(), b.log())
    })
    .await;
    terminate(&mut ca);
    terminate(&mut cb);
    let interrupted = check(&records, &tg, N);
    assert_eq!(interrupted, 0, "nobody was killed");
    assert_eq!(tg.sent().len(), N);
    let by_host = |h: &str| {
        records
            .iter()
            .filter(|d| d.history.last().is_some_and(|a| a.host == h))
            .count()
    };
    let (sa, sb) = (by_host("host-a"), by_host("host-b"));
    eprintln!(
        "host-a sent {sa}, host-b sent {sb}, all final after {:?}",
        start.elapsed()
    );
    assert!(sa > 0 && sb > 0, "both hosts took part: {sa} / {sb}");
    assert_eq!(sa + sb, N);
}

/// The kill -9 test for Web Push: every user has a browser subscribed at a push service
/// stand-in that verifies and decrypts each push; the host is killed twice mid-stream. Each
/// (request, browser) pair is decrypted at most once, every `sent` record arrived, and
/// every other record is a dead letter `interrupted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_host_pushes_no_message_twice() {
    use crate::servers::push_service::PushService;
    const N: usize = 2000;
    const VAR: &str = "IMPRESSOX_TEST_VAPID_PRIVATE_KEY";
    let (private, public) = impressox_host::notify::webpush::Vapid::generate();
    let push = PushService::start().await;
    let tg = TelegramStandIn::start().await;
    let redis = RedisServer::start();
    let host = HostDir::with_extra(
        &format!(
            "[storage]\nbackend = \"redis\"\nredis_url = \"{}\"",
            redis.url()
        ),
        "[documents]\nbackend = \"embedded\"",
        "kill-push",
        &tg.url(),
        &format!(
            "[notify.webpush]\nprivate_key_env = \"{VAR}\"\nallow_private_addresses = true\ntimeout_secs = 3\n"
        ),
    );
    let http = reqwest::Client::new();
    let env = [(VAR, private.as_str())];
    let mut child = host.spawn_with(tg.token(), &env);
    host.wait_ready(&http).await;
    let mut browsers = HashMap::new();
    for u in 0..USERS {
        let b = push.subscribe(&public);
        let r = http
            .post(format!(
                "{}/api/v1/users/u{u}/push-subscriptions",
                host.api()
            ))
            .json(&b.subscription)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        browsers.insert(b.id.clone(), u);
    }
    let store = impressox_host::storage::redis_store::RedisStore::connect(
        &redis.url(),
        StoreLimits::default(),
    )
    .await
    .unwrap();
    // Enqueued while the host is stopped, so the kills fall mid-stream (it pushes a
    // thousand in well under a second).
    terminate(&mut child);
    enqueue(&store, N).await;
    child = host.spawn_with(tg.token(), &env);
    for round in 0..2 {
        let kill_at = fastrand::usize(100..N / 4);
        let before = push.received_count();
        let start = Instant::now();
        while push.received_count() < (before + kill_at).min(N - 1)
            && start.elapsed() < Duration::from_secs(30)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        kill(&mut child);
        eprintln!(
            "round {round}: killed after {} pushes",
            push.received_count()
        );
        child = host.spawn_with(tg.token(), &env);
        host.wait_ready(&http).await;
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(90) {
        let m = records_by_state(&http, &host.api()).await;
        let get = |s: &str| m.get(s).copied().unwrap_or(0);
        if get("queued") == 0 && get("sending") == 0 && get("sent") + get("dead") == N {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    terminate(&mut child);
    let docs = impressox_host::documents::embedded::EmbeddedDocuments::open(&host.documents_path())
        .unwrap();
    let records = wait_all_final(&docs, N, || host.log()).await;
    // What the browsers decrypted, per (request number, subscription).
    let mut arrived: HashMap<(usize, String), usize> = HashMap::new();
    for r in push.received() {
        assert_eq!(r.status, 201, "{r:?}");
        let title = r.payload.as_ref().unwrap()["title"]
            .as_str()
            .unwrap()
            .to_string();
        let i = number_in(&title).expect("a test message");
        assert_eq!(
            browsers[&r.subscription],
            i % USERS,
            "pushed to the right user"
        );
        *arrived.entry((i, r.subscription.clone())).or_default() += 1;
    }
    for ((i, sub), count) in &arrived {
        assert_eq!(*count, 1, "request {i} reached browser {sub} {count} times");
    }
    let mut interrupted = 0;
    for d in &records {
        let i: usize = d.notification_id.trim_start_matches("x-").parse().unwrap();
        let sub = impressox_host::notify::webpush::Subscription::from_target(&d.target).unwrap();
        let id = sub.endpoint.rsplit('/').next().unwrap().to_string();
        match d.state {
            State::Sent => assert!(
                arrived.contains_key(&(i, id)),
                "{} is sent but never arrived",
                d.id
            ),
            State::Dead => {
                assert_eq!(d.reason.as_deref(), Some("interrupted"), "{d:?}");
                interrupted += 1;
            }
            other => panic!("{} left {other:?}", d.id),
        }
    }
    eprintln!(
        "{} of {N} pushed, {interrupted} interrupted (dead letters, never resent)",
        arrived.len()
    );
    assert!(
        interrupted <= 2 * 256,
        "at most what was in flight at the kills"
    );
}
