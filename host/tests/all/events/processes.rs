//! `impressox run` processes with the events worker on one Redis: killed mid-stream,
//! two hosts in one group, Redis restarted. The handler counts every event it acks in
//! `kv` (committed with the ack), so the count must come out exact.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::{GROUP, PLUGIN, STREAM};
use crate::hardening::host_process::{HostChild, terminate_within};
use crate::harness::{impressox_in, wait_until};
use crate::servers::redis::RedisServer;

/// A config for one host on `redis`, its plugin dir holding the probe.
fn host_config(dir: &Path, redis: &RedisServer, api_port: Option<u16>) -> PathBuf {
    let plugins = dir.join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(
        test_artifacts::GUEST_EVENT_PROBE,
        plugins.join(format!("{PLUGIN}.wasm")),
    )
    .unwrap();
    let api = match api_port {
        Some(p) => format!("[api]\nlisten = \"127.0.0.1:{p}\"\n"),
        None => "[api]\nenabled = false\n".into(),
    };
    let text = format!(
        "data_dir = \"data\"\n{api}[plugins]\ndir = \"plugins.d\"\ncall_timeout_ms = 500\n\
         [plugins.grants.{PLUGIN}]\nkv = true\nnotify = true\n\
         [storage]\nbackend = \"redis\"\nredis_url = \"{}\"\n\
         [workers]\nenabled = [\"events\"]\n\
         [[listeners]]\nstream = \"{STREAM}\"\ngroup = \"{GROUP}\"\nplugin = \"{PLUGIN}\"\n\
         batch = 64\nbackoff = \"50ms\"\nclaim_idle = \"2s\"\nmax_attempts = 10\n",
        redis.url()
    );
    let path = dir.join("impressox.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// An `impressox run` process, killed (SIGKILL, no shutdown) when dropped.
fn spawn(config: &Path, consumer: &str) -> HostChild {
    HostChild(
        impressox_in(config, &["run"])
            .env("IMPRESSOX__EVENTS__CONSUMER", consumer)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Append `n` events that each count `total` once, through Redis itself (a producer
/// that is not the host), in pipelined batches.
fn publish(redis: &RedisServer, n: usize) {
    publish_with(redis, n, "")
}

/// As [`publish`], each event with the extra `fields` (Lua: `, 'do', 'busy'`).
fn publish_with(redis: &RedisServer, n: usize, fields: &str) {
    // The group first, from the stream's start, as the listener would create it.
    let _ = redis.raw_command(&["XGROUP", "CREATE", STREAM, GROUP, "0", "MKSTREAM"]);
    for chunk in 0..n.div_ceil(500) {
        let count = 500.min(n - chunk * 500);
        let script = format!(
            "for i = 1, {count} do redis.call('XADD', KEYS[1], '*', 'incr', 'total', 'seq', ARGV[1] .. '-' .. i{fields}) end return {count}"
        );
        redis.raw_command(&["EVAL", &script, "1", STREAM, &chunk.to_string()]);
    }
}

fn total(redis: &RedisServer) -> u64 {
    let reply = redis.raw_command(&["GET", &format!("plugin-kv:{{{PLUGIN}}}:k:total")]);
    // "$4\r\n2000\r\n" or "$-1\r\n"
    reply
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

fn pending(redis: &RedisServer) -> u64 {
    // "*4\r\n:<count>\r\n..."; a missing group is an error line, which counts as none.
    let reply = redis.raw_command(&["XPENDING", STREAM, GROUP]);
    reply
        .lines()
        .nth(1)
        .and_then(|l| l.trim().trim_start_matches(':').parse().ok())
        .unwrap_or(0)
}

/// The group's entries never handed out (`lag` of `XINFO GROUPS`, Redis 7).
fn unread(redis: &RedisServer) -> u64 {
    let reply = redis.raw_command(&["XINFO", "GROUPS", STREAM]);
    let lines: Vec<&str> = reply.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "lag")
        .expect("XINFO GROUPS has a lag");
    lines[at + 1]
        .trim_start_matches(':')
        .parse()
        .unwrap_or_else(|_| panic!("lag unknown: {reply}"))
}

fn xlen(redis: &RedisServer) -> u64 {
    redis
        .raw_command(&["XLEN", STREAM])
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap_or(0)
}

#[test]
fn killed_twice_mid_stream_every_event_is_counted_once_and_nothing_stays_pending() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = host_config(dir.path(), &redis, None);
    publish(&redis, 10_000);
    for kill_at in [2_000, 6_000] {
        let child = spawn(&config, "crashy");
        assert!(
            wait_until(Duration::from_secs(60), || total(&redis) >= kill_at),
            "the host stopped counting at {}",
            total(&redis)
        );
        drop(child);
    }
    // The same consumer comes back: it takes up what it held, then the rest.
    let child = spawn(&config, "crashy");
    let done = wait_until(Duration::from_secs(60), || {
        total(&redis) >= 10_000 && pending(&redis) == 0
    });
    drop(child);
    assert!(done, "total {} pending {}", total(&redis), pending(&redis));
    assert_eq!(total(&redis), 10_000);
    assert_eq!(xlen(&redis), 0, "acknowledged entries are trimmed");
}

#[test]
fn two_hosts_in_one_group_share_the_events_and_count_each_once() {
    let redis = RedisServer::start();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ports = (
        crate::servers::redis::free_port(),
        crate::servers::redis::free_port(),
    );
    let hosts = vec![
        spawn(&host_config(a.path(), &redis, Some(ports.0)), "host-a"),
        spawn(&host_config(b.path(), &redis, Some(ports.1)), "host-b"),
    ];
    // Every poll below on the process's plugin I/O runtime and one client (not a runtime
    // and a connection built and torn down per poll).
    let rt = impressox_host::runtime::deadline::io_runtime();
    let client = reqwest::Client::new();
    let metrics = |port: u16| -> Option<String> {
        rt.block_on(async {
            let r = client
                .get(format!("http://127.0.0.1:{port}/metrics"))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(r.text().await.ok()?)
        })
    };
    // The API starts after the workers: once both answer, both consumers read the stream.
    // (A fixed pause was too short on a busy machine: one host took all 6,000 before the
    // other had compiled its handler.)
    assert!(
        wait_until(Duration::from_secs(60), || metrics(ports.0).is_some()
            && metrics(ports.1).is_some()),
        "the two hosts did not start"
    );
    publish(&redis, 6_000);
    let done = wait_until(Duration::from_secs(60), || {
        total(&redis) >= 6_000 && pending(&redis) == 0
    });
    let acked = |port: u16| -> u64 {
        let text = metrics(port).unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with("impressox_events_total{") && l.contains("outcome=\"ack\""))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (acked_a, acked_b) = (acked(ports.0), acked(ports.1));
    drop(hosts);
    assert!(done, "total {} pending {}", total(&redis), pending(&redis));
    assert_eq!(total(&redis), 6_000);
    assert_eq!(acked_a + acked_b, 6_000, "a {acked_a} b {acked_b}");
    assert!(
        acked_a > 0 && acked_b > 0,
        "both hosts took a share: a {acked_a} b {acked_b}"
    );
}

#[test]
fn a_redis_restart_mid_stream_loses_nothing_and_doubles_nothing() {
    let mut redis = RedisServer::start_persistent();
    let dir = tempfile::tempdir().unwrap();
    let config = host_config(dir.path(), &redis, None);
    publish(&redis, 5_000);
    let child = spawn(&config, "steady");
    assert!(wait_until(Duration::from_secs(60), || total(&redis) >= 1_000));
    redis.restart();
    let done = wait_until(Duration::from_secs(90), || {
        total(&redis) >= 5_000 && pending(&redis) == 0
    });
    drop(child);
    assert!(done, "total {} pending {}", total(&redis), pending(&redis));
    assert_eq!(total(&redis), 5_000);
}

#[test]
fn sigterm_with_calls_in_flight_acks_exactly_what_was_handled_and_leaves_the_rest_pending() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = host_config(dir.path(), &redis, None);
    // Calls that take a few milliseconds each, so a batch is always in flight.
    const EVENTS: u64 = 3_000;
    publish_with(&redis, EVENTS as usize, ", 'do', 'busy', 'n', '3'");
    let mut child = spawn(&config, "graceful");
    assert!(
        wait_until(Duration::from_secs(60), || total(&redis) >= 200),
        "the host stopped counting at {}",
        total(&redis)
    );
    let took = terminate_within(&mut child, Duration::from_secs(30));
    assert!(
        took.is_some(),
        "the host did not stop within 30 s of SIGTERM"
    );
    // Every acknowledged event had its effect, and no effect went without its ack.
    let (handled, pending_now, unread_now) = (total(&redis), pending(&redis), unread(&redis));
    assert_eq!(
        handled,
        EVENTS - pending_now - unread_now,
        "effects {handled}, pending {pending_now}, never read {unread_now}"
    );
    assert!(
        handled < EVENTS,
        "the host was stopped mid-stream (all {EVENTS} handled before SIGTERM)"
    );
    // The same consumer comes back and handles the rest, each once.
    let child = spawn(&config, "graceful");
    let done = wait_until(Duration::from_secs(120), || {
        total(&redis) >= EVENTS && pending(&redis) == 0
    });
    drop(child);
    assert!(done, "total {} pending {}", total(&redis), pending(&redis));
    assert_eq!(total(&redis), EVENTS);
}
