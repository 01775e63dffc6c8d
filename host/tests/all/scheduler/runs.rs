//! One host, in this process: occurrences, overlap, catch-up, retries, timeouts, a
//! plugin that loads late — on the embedded stores and on Redis.

use std::time::Duration;

use impressox_host::util::now_ms;

use super::{Rig, eventually, int, text};
use crate::servers::redis::RedisServer;

fn redis_toml(redis: &RedisServer) -> String {
    format!(
        "[storage]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
        redis.url()
    )
}

const FAST: &str = "[scheduler]\nlease_ms = 1500\nrefresh_ms = 200\ngrace_ms = 3000\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_second_runs_each_occurrence_once_and_records_it() {
    let mut rig = Rig::new(&format!(
        "{FAST}[[schedules]]\nname = \"tick\"\nevery = \"1s\"\nplugin = \"sched-probe\"\n"
    ))
    .await;
    rig.start().await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            rig.count("runs:tick").await >= 4
        })
        .await,
        "four runs within 15 s"
    );
    rig.stop().await;
    let history = rig.history("tick").await;
    let runs: Vec<_> = history
        .iter()
        .filter(|d| text(d, "outcome") == "ok")
        .collect();
    assert!(runs.len() >= 4, "{history:?}");
    for r in &runs {
        let occ = int(r, "scheduled_ms");
        assert_eq!(occ % 1000, 0, "every 1s falls on whole seconds");
        assert_eq!(
            rig.count(&format!("runs:tick:{occ}")).await,
            1,
            "once: {occ}"
        );
        assert_eq!(int(r, "attempt"), 1);
        assert!(int(r, "started_ms") >= occ, "never before its time");
        assert!(text(r, "summary").contains("attempt 1"), "{r:?}");
        assert!(!text(r, "host").is_empty());
    }
    // Consecutive: nothing missed between the first and the last.
    let occs: Vec<i64> = runs.iter().map(|r| int(r, "scheduled_ms")).collect();
    for w in occs.windows(2) {
        assert_eq!(w[1] - w[0], 1000, "{occs:?}");
    }
    assert_eq!(rig.count("overlaps:tick").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_skip_drops_occurrences_while_a_slow_run_is_in_flight() {
    let mut rig = Rig::new(&format!(
        "{FAST}[[schedules]]\nname = \"slow\"\nevery = \"1s\"\nplugin = \"sched-probe\"\n\
         overlap = \"skip\"\ntimeout = \"10s\"\nargs = {{ sleep_ms = 2500 }}\n"
    ))
    .await;
    rig.start().await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            let h = rig.history("slow").await;
            h.iter().filter(|d| text(d, "outcome") == "ok").count() >= 2
        })
        .await
    );
    rig.stop().await;
    let history = rig.history("slow").await;
    let skipped = history
        .iter()
        .filter(|d| text(d, "outcome") == "skipped" && text(d, "reason") == "overlap")
        .count();
    assert!(skipped >= 2, "a 2.5 s run every 1 s skips: {history:?}");
    assert_eq!(rig.count("overlaps:slow").await, 0, "never two at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_queue_one_runs_one_waiting_occurrence_after_the_slow_one() {
    let redis = RedisServer::start();
    let mut rig = Rig::new(&format!(
        "{}{FAST}[[schedules]]\nname = \"queued\"\nevery = \"1s\"\nplugin = \"sched-probe\"\n\
         overlap = \"queue_one\"\ntimeout = \"10s\"\nargs = {{ sleep_ms = 2200 }}\n",
        redis_toml(&redis)
    ))
    .await;
    rig.start().await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            let h = rig.history("queued").await;
            h.iter().filter(|d| text(d, "outcome") == "ok").count() >= 3
        })
        .await
    );
    rig.stop().await;
    let history = rig.history("queued").await;
    let mut ok: Vec<_> = history
        .iter()
        .filter(|d| text(d, "outcome") == "ok")
        .collect();
    ok.sort_by_key(|d| int(d, "started_ms"));
    // Each queued run starts once the one before it ended, never beside it.
    for w in ok.windows(2) {
        assert!(
            int(w[1], "started_ms") >= int(w[0], "finished_ms"),
            "{:?}",
            ok
        );
        // The waiting one was taken while the first ran: it is late by about a run.
        assert!(
            int(w[1], "started_ms") - int(w[1], "scheduled_ms") >= 500,
            "{ok:?}"
        );
    }
    assert!(
        history.iter().any(|d| text(d, "reason") == "overlap"),
        "further occurrences while one waits are skipped: {history:?}"
    );
    assert_eq!(rig.count("overlaps:queued").await, 0);
}

/// The host is down across three occurrences of a 2 s schedule with a 3 s window:
/// the ones inside the window run after the restart, oldest first; the older ones are
/// skipped, and the history says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_after_downtime_runs_only_what_is_inside_the_window() {
    let redis = RedisServer::start();
    let schedule = "[[schedules]]\nname = \"cu\"\nevery = \"2s\"\nplugin = \"sched-probe\"\ncatch_up = \"3s\"\n";
    let mut rig = Rig::new(&format!("{}{FAST}{schedule}", redis_toml(&redis))).await;
    rig.start().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            rig.count("runs:cu").await >= 1
        })
        .await
    );
    rig.stop().await;
    let down_at = now_ms();
    // Down across three occurrences (6.5 s of a 2 s schedule).
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let back_at = now_ms();
    rig.start().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            rig.history("cu")
                .await
                .iter()
                .any(|d| text(d, "outcome") == "skipped")
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    rig.stop().await;
    let history = rig.history("cu").await;
    let missed: Vec<i64> = (down_at / 2000 + 1..=back_at / 2000)
        .map(|k| k * 2000)
        .collect();
    assert!(missed.len() >= 3, "{missed:?}");
    let skip = history
        .iter()
        .find(|d| text(d, "outcome") == "skipped")
        .unwrap();
    assert_eq!(text(skip, "reason"), "catch_up_window");
    for occ in &missed {
        let ran = history
            .iter()
            .any(|d| int(d, "scheduled_ms") == *occ && text(d, "outcome") == "ok");
        let in_skip = *occ >= int(skip, "scheduled_ms")
            && *occ
                <= impressox_host::util::parse_rfc3339_ms(text(skip, "last_scheduled_at")).unwrap();
        assert!(ran != in_skip, "{occ}: run xor skipped: {history:?}");
        // Inside the window (3 s before the restart, with slack for the start) it ran;
        // well outside it, it was skipped.
        if *occ < back_at - 3000 - 1000 {
            assert!(in_skip, "{occ} is older than the window: {history:?}");
        }
        if *occ > back_at - 3000 + 500 {
            assert!(ran, "{occ} is inside the window: {history:?}");
            let r = history
                .iter()
                .find(|d| int(d, "scheduled_ms") == *occ && text(d, "outcome") == "ok")
                .unwrap();
            assert!(
                ["catch_up", "schedule"].contains(&text(r, "trigger")),
                "{r:?}"
            );
        }
    }
    // Oldest first.
    let ran: Vec<_> = history
        .iter()
        .filter(|d| text(d, "outcome") == "ok" && int(d, "scheduled_ms") > down_at)
        .collect();
    for w in ran.windows(2) {
        assert!(int(w[0], "started_ms") <= int(w[1], "started_ms"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_try_is_retried_after_its_backoff_with_attempt_two() {
    let mut rig = Rig::new(&format!(
        "{FAST}[[schedules]]\nname = \"flaky\"\nevery = \"1h\"\nplugin = \"sched-probe\"\n\
         retries = 2\nbackoff = \"300ms\"\nargs = {{ fail_below_attempt = 2 }}\n"
    ))
    .await;
    rig.start().await;
    let id = impressox_host::scheduler::service::run_now(&*rig.store, "flaky")
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            rig.history("flaky")
                .await
                .iter()
                .any(|d| text(d, "outcome") == "ok")
        })
        .await
    );
    rig.stop().await;
    let history = rig.history("flaky").await;
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(text(&history[0], "run_id"), id);
    assert_eq!(text(&history[0], "outcome"), "error");
    assert!(text(&history[0], "error").contains("failing attempt 1"));
    assert!(!text(&history[0], "retry_at").is_empty());
    assert_eq!(text(&history[1], "outcome"), "ok");
    assert_eq!(int(&history[1], "attempt"), 2);
    assert_eq!(text(&history[1], "trigger"), "manual");
    assert!(int(&history[1], "started_ms") - int(&history[0], "finished_ms") >= 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_try_past_its_timeout_is_stopped_and_recorded_as_a_timeout() {
    let mut rig = Rig::new(&format!(
        "{FAST}[[schedules]]\nname = \"stuck\"\nevery = \"1h\"\nplugin = \"sched-probe\"\n\
         retries = 0\ntimeout = \"300ms\"\nargs = {{ sleep_ms = 5000 }}\n"
    ))
    .await;
    rig.start().await;
    impressox_host::scheduler::service::run_now(&*rig.store, "stuck")
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            !rig.history("stuck").await.is_empty()
        })
        .await
    );
    rig.stop().await;
    let history = rig.history("stuck").await;
    assert_eq!(text(&history[0], "outcome"), "timeout", "{history:?}");
    assert!(text(&history[0], "error").contains("300 ms"), "{history:?}");
    assert!(
        int(&history[0], "duration_ms") < 3000,
        "stopped at its deadline"
    );
}

/// A schedule whose plugin is not loaded waits (no failed runs); once the plugin loads,
/// what came due meanwhile runs, inside the catch-up window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_not_loaded_yet_is_waited_for() {
    let mut rig = Rig::without_probe(&format!(
        "{FAST}[[schedules]]\nname = \"later\"\nevery = \"1s\"\nplugin = \"sched-probe\"\n"
    ))
    .await;
    rig.start().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        rig.history("later").await.is_empty(),
        "no failed runs while it waits"
    );
    rig.load_probe();
    assert!(
        eventually(Duration::from_secs(10), || async {
            rig.count("runs:later").await >= 3
        })
        .await,
        "runs once the plugin is there"
    );
    rig.stop().await;
    let history = rig.history("later").await;
    assert!(
        history
            .iter()
            .all(|d| ["ok", "skipped"].contains(&text(d, "outcome"))),
        "{history:?}"
    );
    assert!(
        history.iter().any(|d| text(d, "trigger") == "catch_up"),
        "what came due while it waited is caught up: {history:?}"
    );
}
