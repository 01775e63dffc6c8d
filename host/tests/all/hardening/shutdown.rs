//! Issue 12, items 2 and 3: stopping neither turns unsent work into "may have been
//! delivered" nor hangs.
//!
//! - A notify sender waiting for its rate-limit slot used to ignore the drain; after the
//!   drain timeout its record stayed `sending`, and the next start declared it
//!   `interrupted` (a dead letter a person must judge) although that part never left.
//! - The market engine retried its commit forever while the store was down, and stopping
//!   waited on a bounded send and a join without a timeout: SIGTERM hung. Now stopping
//!   ends within `[market] shutdown_grace_secs`, and the next start replays the ticks
//!   that were not committed from the checkpoint.

use std::time::{Duration, Instant};

use impressox_host::storage::{NOTIFY_REQUESTS, StoreLimits};
use serde_json::json;

use super::host_process::{HostDir, terminate_within};
use crate::market::pipeline::seed;
use crate::market::rig::{sawtooth, write_csv};
use crate::notify::rig::{NotifyRig, Opts, first_delivery, request};
use crate::servers::redis::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_waiting_for_its_rate_limit_slot_goes_back_to_the_queue_at_shutdown() {
    // One message every 20.4 s per chat: the second part of a long message waits for its
    // slot longer than stopping used to take (10 s of drain, 5 s for the outcome writer),
    // so the old code left the record `sending` for the next start to call interrupted.
    let mut rig = NotifyRig::start(Opts {
        telegram: "per_chat_per_sec = 0.05\n".into(),
        ..Opts::default()
    })
    .await;
    rig.put_prefs(
        "u1",
        json!({"channels": {"telegram": {"chat_id": "4242"}}, "enabled": ["telegram"]}),
    )
    .await;
    let body: String = (0..400).map(|i| format!("line {i:04}. ")).collect();
    rig.notify(request("slow-1", "u1", "long", &body)).await;
    assert!(
        rig.tg.wait_for_sent(1, Duration::from_secs(20)).await,
        "the first part never arrived"
    );
    let view = rig.status("slow-1").await;
    let parts = first_delivery(&view)["parts"].as_u64().unwrap();
    assert!(parts >= 2, "the message was not split: {view:#}");

    // Stop while the second part waits for its slot, and start again.
    rig.restart_worker().await;
    let view = rig.status("slow-1").await;
    let d = first_delivery(&view);
    assert_eq!(
        (d["state"].as_str(), d["reason"].as_str()),
        (Some("queued"), Some("host_stopped")),
        "a part that never left must go back to the queue, not be called interrupted: {view:#}"
    );
    assert_eq!(d["parts_sent"], 1, "{view:#}");

    // The rest goes out after the restart; no part is sent twice.
    rig.wait_status("slow-1", &["delivered"], Duration::from_secs(60))
        .await;
    let sent = rig.tg.messages_to("4242");
    assert_eq!(sent.len() as u64, parts, "{sent:#?}");
    let counts = rig.tg.count_by_text();
    assert!(counts.values().all(|n| *n == 1), "a part was sent twice");
}

const T0: i64 = 1_764_300_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_redis_down_ends_within_the_grace_period_and_the_next_start_replays() {
    let http = reqwest::Client::new();
    // Redis with an append-only file: stopped and started again, it keeps what it
    // acknowledged, like a production Redis going down for a while.
    let mut redis = RedisServer::start_persistent();
    let files = tempfile::tempdir().unwrap();
    // 900 s of a sawtooth (45 crossings each way), replayed over about 9 s.
    let csv = write_csv(files.path(), "saw.csv", &sawtooth(T0, 900));
    let rules = seed(
        "up",
        "BTCUSDT",
        "{ op = \"crosses_up\", value = 121 }",
        "{ mode = \"every\" }",
    ) + &seed(
        "down",
        "BTCUSDT",
        "{ op = \"crosses_down\", value = 119 }",
        "{ mode = \"every\" }",
    ) + &seed(
        "once",
        "BTCUSDT",
        "{ op = \"above\", value = 130 }",
        "{ mode = \"once\" }",
    );
    let host = HostDir::new(
        &[
            (test_artifacts::THRESHOLD, "threshold"),
            (test_artifacts::REPLAY_ROWS, "replay-rows"),
        ],
        &format!(
            "[storage]\nbackend = \"redis\"\nredis_url = \"{}\"\n[workers]\nenabled = [\"market-monitor\"]\n\
             [market]\nconsole_alerts = false\ncommit_interval_ms = 100\nshutdown_grace_secs = 2\n\
             [[market.sources]]\nname = \"file\"\nkind = \"replay\"\nparser = \"replay-rows\"\n\
             path = \"{}\"\nspeed = 100.0\n{rules}",
            redis.url(),
            csv.display()
        ),
    );
    let mut child = host.spawn(&[]);
    host.wait_ready(&http).await;
    // Some alerts are in; then Redis goes away while the replay goes on.
    let start = Instant::now();
    loop {
        let len = redis.raw_command(&["XLEN", NOTIFY_REQUESTS]);
        if len
            .trim_start_matches(':')
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
            >= 10
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no alerts: {}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    redis.stop();
    tokio::time::sleep(Duration::from_millis(700)).await;

    // 2 s of grace, plus a generous allowance for a loaded machine: "ends", not "hangs".
    let took = terminate_within(&mut child, Duration::from_secs(30));
    assert!(
        took.is_some(),
        "SIGTERM with Redis down did not end the host:\n{}",
        host.log()
    );
    assert!(
        host.log().contains("without its last commit"),
        "the host should say it left the last commit to the replay:\n{}",
        host.log()
    );

    // Redis is back; the next start replays from the checkpoint to the end of the file.
    redis.restart();
    let mut child = host.spawn(&[]);
    let start = Instant::now();
    loop {
        let finished = host.metrics(&http).await.is_some_and(|m| {
            m.contains("impressox_source_state{source=\"file\",state=\"finished\"} 1")
        });
        if finished {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the replay never finished:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(terminate_within(&mut child, Duration::from_secs(30)).is_some());

    // Every alert of the file is in the stream exactly once.
    let cfg = impressox_host::config::Config::load_with_env(Some(&host.config()), &[]).unwrap();
    let store = impressox_host::storage::open(&cfg, StoreLimits::default())
        .await
        .unwrap();
    let mut keys = Vec::new();
    loop {
        let got = store
            .read_new(NOTIFY_REQUESTS, "audit", "a", 1000, 0)
            .await
            .unwrap();
        if got.is_empty() {
            break;
        }
        keys.extend(got.into_iter().map(|e| e.key));
    }
    let mut expected = vec![format!("rule-once-{}", T0 / 1000 + 8)];
    for cycle in 0..45 {
        expected.push(format!("rule-up-{}", T0 / 1000 + 20 * cycle + 6));
        expected.push(format!("rule-down-{}", T0 / 1000 + 20 * cycle + 16));
    }
    expected.sort();
    keys.sort();
    assert_eq!(keys, expected, "{} requests", keys.len());
}
