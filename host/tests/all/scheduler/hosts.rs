//! Exactly once across hosts, with real `impressox run` processes sharing a Redis and a
//! MongoDB (SecantusDB): two hosts on one every-second schedule for 30 occurrences, a
//! host killed with SIGKILL mid-task, and a run-now with two hosts.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use impressox_host::documents::Documents;
use impressox_host::documents::mongo::MongoDocuments;
use impressox_host::scheduler::claim::ScheduleState;
use impressox_host::storage::Store;
use impressox_host::storage::redis_store::RedisStore;
use impressox_host::util::now_ms;
use serde_json::json;

use super::{GRANT, eventually, history_of, int, probe_count, text};
use crate::harness::free_port;
use crate::servers::mongo::MongoServer;
use crate::servers::redis::RedisServer;

/// One `impressox run` process in a folder of its own.
struct Host {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Host {
    fn new(redis: &RedisServer, mongo: &MongoServer, db: &str, schedules: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let plugins = dir.path().join("plugins.d");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::copy(
            test_artifacts::GUEST_SCHED_PROBE,
            plugins.join("sched-probe.wasm"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("host.toml"),
            format!(
                "data_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n[plugins]\ndir = \"plugins.d\"\n\
                 [storage]\nbackend = \"redis\"\nredis_url = \"{}\"\n\
                 [documents]\nbackend = \"mongodb\"\nmongodb_url = \"{}\"\ndatabase = \"{db}\"\n\
                 [workers]\nenabled = [\"scheduler\"]\n\
                 [scheduler]\nlease_ms = 1500\nrefresh_ms = 200\ngrace_ms = 3000\n\
                 {GRANT}{schedules}",
                redis.url(),
                mongo.url()
            ),
        )
        .unwrap();
        Host {
            dir,
            port,
            child: None,
        }
    }

    fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_impressox"))
            .args([
                "--config",
                self.dir.path().join("host.toml").to_str().unwrap(),
                "run",
            ])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("host.log"))
                    .unwrap(),
            ))
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn api(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1", self.port)
    }

    async fn wait_ready(&self, http: &reqwest::Client) {
        let start = Instant::now();
        loop {
            if let Ok(r) = http
                .get(format!("http://127.0.0.1:{}/readyz", self.port))
                .send()
                .await
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

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }

    fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child process.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let status = c.wait().unwrap();
            assert!(status.success(), "{status:?}: {}", self.log());
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Cluster {
    redis: RedisServer,
    _mongo: MongoServer,
    store: Arc<dyn Store>,
    docs: Arc<dyn Documents>,
    hosts: Vec<Host>,
    http: reqwest::Client,
}

async fn cluster(db: &str, schedules: &str) -> Cluster {
    let redis = RedisServer::start();
    let mongo = MongoServer::start();
    let store: Arc<dyn Store> = Arc::new(
        RedisStore::connect(&redis.url(), Default::default())
            .await
            .unwrap(),
    );
    let docs: Arc<dyn Documents> =
        Arc::new(MongoDocuments::connect(&mongo.url(), db).await.unwrap());
    let mut hosts = vec![
        Host::new(&redis, &mongo, db, schedules),
        Host::new(&redis, &mongo, db, schedules),
    ];
    let http = reqwest::Client::new();
    for h in &mut hosts {
        h.spawn();
    }
    for h in &hosts {
        h.wait_ready(&http).await;
    }
    Cluster {
        redis,
        _mongo: mongo,
        store,
        docs,
        hosts,
        http,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_run_each_of_30_occurrences_exactly_once() {
    let mut c = cluster(
        "sched_two_hosts",
        "[[schedules]]\nname = \"tick\"\nevery = \"1s\"\nplugin = \"sched-probe\"\n",
    )
    .await;
    let started = now_ms();
    let docs = c.docs.clone();
    assert!(
        eventually(Duration::from_secs(60), || async {
            history_of(&*docs, "tick")
                .await
                .iter()
                .filter(|d| int(d, "scheduled_ms") > started && text(d, "outcome") == "ok")
                .count()
                >= 32
        })
        .await,
        "32 runs within a minute: {}",
        c.hosts[0].log()
    );
    for h in &mut c.hosts {
        h.terminate();
    }
    let history = history_of(&*c.docs, "tick").await;
    let mut per_occurrence: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for d in &history {
        assert_eq!(text(d, "outcome"), "ok", "{d:?}");
        per_occurrence
            .entry(int(d, "scheduled_ms"))
            .or_default()
            .push(text(d, "host").to_string());
    }
    // The first and last occurrences may straddle the start and stop; the 30 between
    // them are whole.
    let occs: Vec<i64> = per_occurrence.keys().copied().collect();
    let inner = &occs[1..occs.len() - 1];
    assert!(inner.len() >= 30, "{occs:?}");
    for w in inner.windows(2) {
        assert_eq!(w[1] - w[0], 1000, "none missed: {occs:?}");
    }
    for occ in inner {
        assert_eq!(per_occurrence[occ].len(), 1, "recorded once: {occ}");
        assert_eq!(
            probe_count(&*c.store, &format!("runs:tick:{occ}")).await,
            1,
            "the task ran once: {occ}"
        );
    }
    assert_eq!(probe_count(&*c.store, "overlaps:tick").await, 0);
    drop(c.redis);
}

/// The host running a slow task is killed with SIGKILL mid-run; the other host takes the
/// occurrence over once the lease lapses and runs it as attempt 2 — after the kill, never
/// beside it — and the history shows the lost try and the retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_mid_task_has_its_occurrence_run_again_once_as_attempt_2() {
    let mut c = cluster("sched_kill", "").await;
    // One occurrence, 3 s from now, of a task that runs 4 s.
    let at = (now_ms() / 1000 + 3) * 1000;
    let secs = at / 1000;
    let cron = format!(
        "{} {} {} * * *",
        secs % 60,
        secs / 60 % 60,
        secs / 3600 % 24
    );
    let r = c
        .http
        .post(format!("{}/schedules", c.hosts[0].api()))
        .json(
            &json!({"name": "slow", "cron": cron, "plugin": "sched-probe",
            "timeout": "20s", "retries": 2, "args": {"sleep_ms": 4000}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // Wait for the try to be running, then kill the host that runs it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let owner = loop {
        let read = c.store.schedule_load(&["slow".to_string()]).await.unwrap();
        let lease = read.records[0]
            .json
            .as_deref()
            .map(|j| ScheduleState::parse(j).unwrap())
            .and_then(|s| s.runs.iter().find_map(|r| r.lease.clone()));
        if let Some(l) = lease
            && probe_count(&*c.store, "active:slow").await == 1
        {
            break l.owner;
        }
        assert!(
            Instant::now() < deadline,
            "the try never started: {}",
            c.hosts[0].log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid: u32 = owner
        .split('/')
        .nth(1)
        .and_then(|p| p.split('-').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let victim = c.hosts.iter().position(|h| h.pid() == pid).unwrap();
    c.hosts[victim].kill();
    let killed_at = now_ms();
    let docs = c.docs.clone();
    assert!(
        eventually(Duration::from_secs(20), || async {
            history_of(&*docs, "slow")
                .await
                .iter()
                .any(|d| text(d, "outcome") == "ok")
        })
        .await,
        "the survivor runs it: {}",
        c.hosts[1 - victim].log()
    );
    let history = history_of(&*c.docs, "slow").await;
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(int(&history[0], "scheduled_ms"), at);
    assert_eq!(int(&history[0], "attempt"), 1);
    assert_eq!(text(&history[0], "outcome"), "lost");
    assert_eq!(int(&history[1], "scheduled_ms"), at);
    assert_eq!(int(&history[1], "attempt"), 2);
    assert_eq!(text(&history[1], "outcome"), "ok");
    assert!(text(&history[1], "summary").contains("attempt 2"));
    assert!(
        int(&history[1], "started_ms") >= killed_at,
        "never beside the first try"
    );
    assert_eq!(
        probe_count(&*c.store, &format!("runs:slow:{at}")).await,
        2,
        "the killed try and the retry, nothing more"
    );
    // Nothing else comes of it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(probe_count(&*c.store, &format!("runs:slow:{at}")).await, 2);
    c.hosts[1 - victim].terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_now_with_two_hosts_runs_once() {
    let mut c = cluster(
        "sched_run_now",
        "[[schedules]]\nname = \"daily\"\ncron = \"0 0 3 * * *\"\nplugin = \"sched-probe\"\n",
    )
    .await;
    for (i, h) in c.hosts.iter().enumerate() {
        let r = c
            .http
            .post(format!("{}/schedules/daily/run", h.api()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["run_id"], format!("m{}", i + 1));
    }
    let store = c.store.clone();
    assert!(
        eventually(Duration::from_secs(10), || async {
            probe_count(&*store, "runs:daily").await >= 2
        })
        .await
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        probe_count(&*c.store, "runs:daily").await,
        2,
        "two requests, two runs, each once"
    );
    let history = history_of(&*c.docs, "daily").await;
    let ids: Vec<&str> = history.iter().map(|d| text(d, "run_id")).collect();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(ids.contains(&"m1") && ids.contains(&"m2"), "{ids:?}");
    assert!(history.iter().all(|d| text(d, "trigger") == "manual"));
    for h in &mut c.hosts {
        h.terminate();
    }
}
