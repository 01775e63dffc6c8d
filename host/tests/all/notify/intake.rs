//! Intake from `notify:requests`: what the market monitor enqueues, unreadable entries,
//! entries a dead consumer left pending, restarts, and the Redis + MongoDB pair.

use std::time::{Duration, Instant};

use impressox_host::storage::NOTIFY_REQUESTS;
use serde_json::json;

use super::rig::{Docs, NotifyRig, Opts, first_delivery, request};
use crate::market::rig::Backend;
use crate::servers::telegram::Reply;
use crate::servers::webhook_receiver::{HookReply, WebhookReceiver};

const T: Duration = Duration::from_secs(20);

/// A request shaped like the market monitor's (market/engine.rs).
fn market_alert(id: &str, user: &str, channels: &[&str]) -> String {
    json!({"id": id, "user_id": user, "kind": "price_alert", "priority": "normal",
           "title": "BTCUSDT above 108", "body": "BTCUSDT is 110 (file): x",
           "data": {"rule_id": "r1", "note": null, "reference_price": null},
           "channels": channels})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_market_alert_on_the_stream_reaches_telegram_once() {
    let rig = NotifyRig::start(Opts::default()).await;
    rig.put_prefs(
        "trader",
        json!({"channels": {"telegram": {"chat_id": "6006"}}, "enabled": ["telegram"]}),
    )
    .await;
    let body = market_alert("rule-r1-1764300005", "trader", &["telegram"]);
    rig.store
        .enqueue_once(NOTIFY_REQUESTS, "rule-r1-1764300005", &body)
        .await
        .unwrap();
    let view = rig
        .wait_status("rule-r1-1764300005", &["delivered"], T)
        .await;
    assert_eq!(view["source"], "stream");
    let msgs = rig.tg.messages_to("6006");
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].contains("BTCUSDT above 108"), "{}", msgs[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_entry_becomes_a_dead_letter_and_the_rest_is_delivered() {
    let rig = NotifyRig::start(Opts::default()).await;
    rig.store
        .enqueue_once(
            NOTIFY_REQUESTS,
            "bad-1",
            "{\"id\": \"bad-1\", \"title\": 5}",
        )
        .await
        .unwrap();
    rig.store
        .enqueue_once(
            NOTIFY_REQUESTS,
            "good-1",
            &request("good-1", "u1", "fine", "").to_string(),
        )
        .await
        .unwrap();
    rig.wait_status("good-1", &["delivered"], T).await;
    let start = Instant::now();
    loop {
        let (_, list) = rig
            .call(
                reqwest::Method::GET,
                "/api/v1/dead-letters?reason=invalid_request",
                None,
            )
            .await;
        let items = list["dead_letters"].as_array().unwrap().clone();
        if let Some(d) = items.first() {
            assert_eq!(d["notification_id"], "bad-1");
            assert!(d["last_error"].as_str().unwrap().contains("title"), "{d}");
            // Not replayable: the request itself is wrong.
            let (status, _) = rig
                .call(
                    reqwest::Method::POST,
                    &format!("/api/v1/dead-letters/{}/replay", d["id"].as_str().unwrap()),
                    None,
                )
                .await;
            assert_eq!(status, 400);
            break;
        }
        assert!(start.elapsed() < T, "no dead letter for the bad entry");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_left_pending_by_a_dead_consumer_is_taken_over() {
    let mut rig = NotifyRig::start(Opts {
        notify: "claim_idle_secs = 1\n".into(),
        ..Default::default()
    })
    .await;
    rig.worker.take().unwrap().stop().await;
    rig.store
        .enqueue_once(
            NOTIFY_REQUESTS,
            "orphan-1",
            &request("orphan-1", "u1", "orphan", "").to_string(),
        )
        .await
        .unwrap();
    // Consumer "crashed-host" reads it and dies without acking.
    let got = rig
        .store
        .read_new(NOTIFY_REQUESTS, "notify", "crashed-host", 10, 100)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    rig.restart_worker().await;
    let start = Instant::now();
    rig.wait_status("orphan-1", &["delivered"], T).await;
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "taken over only once idle"
    );
    assert_eq!(rig.console_lines().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_scheduled_before_a_restart_happens_once_after_it() {
    let hooks = WebhookReceiver::start(super::rig::HOOK_SECRET).await;
    let mut rig = NotifyRig::start(Opts {
        retry: "base_ms = 1500\njitter = 0.0\n".into(),
        with_webhook_secret: true,
        ..Default::default()
    })
    .await;
    rig.put_prefs(
        "u1",
        json!({"channels": {"webhook": {"url": hooks.url("r")}}, "enabled": ["webhook"]}),
    )
    .await;
    hooks.reply_next(Some("r"), [HookReply::ServerError]);
    rig.notify(request("retry-1", "u1", "t", "")).await;
    let start = Instant::now();
    loop {
        let v = rig.status("retry-1").await;
        if first_delivery(&v)["reason"] == "retry" {
            break;
        }
        assert!(start.elapsed() < T, "{v:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rig.restart_worker().await;
    let view = rig.wait_status("retry-1", &["delivered"], T).await;
    let got = hooks.received();
    assert_eq!(got.len(), 2);
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(1500),
        "not before it was due"
    );
    assert_eq!(first_delivery(&view)["attempts"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_works_on_redis_and_mongodb() {
    let rig = NotifyRig::start(Opts {
        storage: Some(Backend::Redis),
        docs: Some(Docs::Mongo),
        ..Default::default()
    })
    .await;
    rig.put_prefs(
        "u1",
        json!({"channels": {"telegram": {"chat_id": "3003"}}, "enabled": ["telegram", "console"]}),
    )
    .await;
    rig.tg.reply_next(
        Some("3003"),
        [Reply::RetryAfter(1), Reply::Ok, Reply::Forbidden],
    );
    for i in 0..3 {
        rig.notify(request(&format!("rm-{i}"), "u1", &format!("n{i}"), ""))
            .await;
    }
    rig.wait_status("rm-0", &["delivered", "partially_delivered"], T)
        .await;
    rig.wait_status("rm-1", &["delivered", "partially_delivered"], T)
        .await;
    rig.wait_status("rm-2", &["delivered", "partially_delivered"], T)
        .await;
    let statuses: Vec<String> = futures_statuses(&rig, &["rm-0", "rm-1", "rm-2"]).await;
    // One of the three met the 403: a dead letter, the console copy still delivered.
    assert_eq!(
        statuses
            .iter()
            .filter(|s| *s == "partially_delivered")
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(rig.console_lines().len(), 3);
    let counts = rig.tg.count_by_text();
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    assert_eq!(rig.tg.messages_to("3003").len(), 2);
}

async fn futures_statuses(rig: &NotifyRig, ids: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        out.push(rig.status(id).await["status"].as_str().unwrap().to_string());
    }
    out
}

/// With few send slots, intake holds them for the records it inserts already claimed while
/// retries wait for a slot in the claimer; everything must still go out (this deadlocked
/// once: the claimer waited for a slot that only it could free).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_with_few_send_slots_and_retries_all_goes_out() {
    let rig = NotifyRig::start(Opts {
        notify: "max_in_flight = 2\nbatch_size = 4\nrate_limits = false\n".into(),
        retry: "base_ms = 10\njitter = 0.0\n".into(),
        ..Default::default()
    })
    .await;
    rig.put_prefs(
        "u1",
        json!({"channels": {"telegram": {"chat_id": "5005"}}, "enabled": ["telegram"]}),
    )
    .await;
    rig.tg.reply_next(
        Some("5005"),
        [Reply::RetryAfter(1), Reply::Ok, Reply::RetryAfter(1)],
    );
    for i in 0..60 {
        rig.store
            .enqueue_once(
                NOTIFY_REQUESTS,
                &format!("burst-{i}"),
                &request(&format!("burst-{i}"), "u1", &format!("burst {i}"), "").to_string(),
            )
            .await
            .unwrap();
    }
    for i in 0..60 {
        rig.wait_status(
            &format!("burst-{i}"),
            &["delivered"],
            Duration::from_secs(60),
        )
        .await;
    }
    let counts = rig.tg.count_by_text();
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    assert_eq!(rig.tg.messages_to("5005").len(), 60);
}
