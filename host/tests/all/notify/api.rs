//! Intake through the API: idempotent POST, status views, preferences, quiet hours,
//! mutes, dead letters and replay.

use std::time::Duration;

use serde_json::json;

use super::rig::{NotifyRig, Opts, first_delivery, request};
use crate::servers::telegram::Reply;

const T: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_preferences_a_notification_goes_to_the_console_once() {
    let rig = NotifyRig::start(Opts::default()).await;
    let req = request(
        "n-console-1",
        "u1",
        "BTCUSDT above 70000",
        "BTCUSDT is 70123.40",
    );
    rig.notify(req.clone()).await;
    let view = rig.wait_status("n-console-1", &["delivered"], T).await;
    assert_eq!(first_delivery(&view)["channel"], "console");
    assert_eq!(first_delivery(&view)["attempts"], 1);
    assert_eq!(
        rig.console_lines(),
        vec!["ALERT [u1] BTCUSDT above 70000 — BTCUSDT is 70123.40".to_string()]
    );

    // The same id and body again: one notification.
    let (status, body) = rig
        .call(
            reqwest::Method::POST,
            "/api/v1/notifications",
            Some(req.clone()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["duplicate"], true);
    assert_eq!(body["status"], "delivered");
    // The same id with another body: refused.
    let mut other = req;
    other["title"] = json!("something else");
    let (status, body) = rig
        .call(reqwest::Method::POST, "/api/v1/notifications", Some(other))
        .await;
    assert_eq!(status, 409, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rig.console_lines().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_validation_errors_name_the_field_and_nothing_is_queued() {
    let rig = NotifyRig::start(Opts::default()).await;
    for (body, field) in [
        (
            json!({"id": "a b", "user_id": "u", "kind": "k", "title": "t"}),
            "`id`",
        ),
        (
            json!({"id": "a", "user_id": "u", "kind": "k", "title": "t", "priority": "urgent"}),
            "`priority`",
        ),
        (
            json!({"id": "a", "user_id": "u", "kind": "k", "title": "t", "channels": ["sms"]}),
            "`channels[0]`",
        ),
    ] {
        let (status, resp) = rig
            .call(reqwest::Method::POST, "/api/v1/notifications", Some(body))
            .await;
        assert_eq!(status, 400, "{resp}");
        let msg = resp["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(field), "{msg}");
    }
    assert_eq!(
        rig.store
            .stream_len(impressox_host::storage::NOTIFY_REQUESTS)
            .await
            .unwrap(),
        0
    );
    let (status, _) = rig
        .call(reqwest::Method::GET, "/api/v1/notifications/never", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_round_trip_and_errors_name_the_field() {
    let rig = NotifyRig::start(Opts::default()).await;
    let prefs = json!({"channels": {"telegram": {"chat_id": "123456"}, "email": {"address": "a@example.com"},
                "webhook": {"url": "https://hooks.example.com/x"}, "console": {}},
        "enabled": ["telegram", "console"],
        "quiet_hours": {"start": "22:00", "end": "07:00", "tz": "Europe/Berlin"},
        "mutes": [{"until": "2099-12-01T00:00:00Z", "kinds": ["price_alert"]}]});
    rig.put_prefs("u1", prefs.clone()).await;
    let (status, got) = rig
        .call(reqwest::Method::GET, "/api/v1/users/u1/preferences", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(got, prefs);
    let (status, _) = rig
        .call(
            reqwest::Method::GET,
            "/api/v1/users/nobody/preferences",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, err) = rig
        .call(
            reqwest::Method::PUT,
            "/api/v1/users/u1/preferences",
            Some(json!({"quiet_hours": {"start": "22:00", "end": "07:00", "tz": "Europe/Berln"}})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("`quiet_hours.tz`"),
        "{err}"
    );
    // Nothing was stored by the failed PUT.
    let (_, still) = rig
        .call(reqwest::Method::GET, "/api/v1/users/u1/preferences", None)
        .await;
    assert_eq!(still, prefs);
}

/// Quiet hours that hold right now, whatever the time of day: from one hour ago to
/// one hour ahead (UTC, minutes dropped).
fn quiet_now() -> serde_json::Value {
    let now = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let h = i32::from(now.hour());
    let start = (h + 23) % 24;
    let end = (h + 2) % 24;
    json!({"start": format!("{start:02}:00"), "end": format!("{end:02}:00"), "tz": "UTC"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_defer_normal_pass_critical_and_mutes_skip() {
    let rig = NotifyRig::start(Opts::default()).await;
    rig.put_prefs(
        "u1",
        json!({"channels": {"telegram": {"chat_id": "1001"}}, "enabled": ["telegram"],
               "quiet_hours": quiet_now()}),
    )
    .await;
    rig.notify(request("q-normal", "u1", "normal one", ""))
        .await;
    let mut critical = request("q-critical", "u1", "critical one", "");
    critical["priority"] = json!("critical");
    rig.notify(critical).await;
    rig.wait_status("q-critical", &["delivered"], T).await;
    let normal = rig.status("q-normal").await;
    let d = first_delivery(&normal);
    assert_eq!(d["state"], "queued", "{normal:#}");
    assert_eq!(d["reason"], "quiet_hours");
    assert!(d["next_attempt_at"].is_string());
    assert_eq!(rig.tg.messages_to("1001").len(), 1);

    rig.put_prefs(
        "u2",
        json!({"channels": {"telegram": {"chat_id": "1002"}}, "enabled": ["telegram"],
               "mutes": [{"until": "2099-01-01T00:00:00Z", "kinds": ["price_alert"]}]}),
    )
    .await;
    rig.notify(request("m-1", "u2", "muted", "")).await;
    let view = rig.wait_status("m-1", &["skipped"], T).await;
    assert_eq!(first_delivery(&view)["reason"], "muted");
    let mut other_kind = request("m-2", "u2", "news", "");
    other_kind["kind"] = json!("news");
    rig.notify(other_kind).await;
    rig.wait_status("m-2", &["delivered"], T).await;
    assert_eq!(rig.tg.messages_to("1002").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_channel_is_skipped_and_a_missing_address_is_a_dead_letter() {
    let rig = NotifyRig::start(Opts::default()).await;
    rig.put_prefs(
        "u1",
        json!({"channels": {"telegram": {"chat_id": "77"}}, "enabled": ["console"]}),
    )
    .await;
    let mut req = request("d-1", "u1", "t", "");
    req["channels"] = json!(["telegram", "email", "console"]);
    rig.notify(req).await;
    let view = rig.wait_status("d-1", &["partially_delivered"], T).await;
    let by_channel = |ch: &str| {
        view["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["channel"] == ch)
            .unwrap()
            .clone()
    };
    assert_eq!(by_channel("telegram")["state"], "skipped");
    assert_eq!(by_channel("telegram")["reason"], "channel_disabled");
    assert_eq!(by_channel("email")["state"], "dead");
    assert_eq!(by_channel("email")["reason"], "no_address");
    assert_eq!(by_channel("console")["state"], "sent");
    assert!(rig.tg.sent().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_listed_and_replayed_once() {
    let rig = NotifyRig::start(Opts::default()).await;
    rig.put_prefs(
        "u1",
        json!({"channels": {"telegram": {"chat_id": "4242"}}, "enabled": ["telegram"]}),
    )
    .await;
    rig.tg.reply_next(Some("4242"), [Reply::Forbidden]);
    rig.notify(request("dl-1", "u1", "blocked", "")).await;
    let view = rig.wait_status("dl-1", &["failed"], T).await;
    let d = first_delivery(&view);
    assert_eq!(d["reason"], "permanent");
    assert_eq!(d["last_error"], "Forbidden: bot was blocked by the user");
    assert_eq!(
        rig.tg
            .requests()
            .iter()
            .filter(|r| r.method == "sendmessage")
            .count(),
        1
    );
    let id = d["dead_letter_id"].as_str().unwrap().to_string();

    let (status, list) = rig
        .call(
            reqwest::Method::GET,
            "/api/v1/dead-letters?channel=telegram",
            None,
        )
        .await;
    assert_eq!(status, 200);
    let items = list["dead_letters"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(
        items[0]["last_error"],
        "Forbidden: bot was blocked by the user"
    );

    // The user unblocked the bot; replay.
    let (status, body) = rig
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/dead-letters/{id}/replay"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (again, _) = rig
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/dead-letters/{id}/replay"),
            None,
        )
        .await;
    assert_eq!(again, 409, "a second replay while the first is pending");
    let view = rig.wait_status("dl-1", &["delivered"], T).await;
    assert_eq!(first_delivery(&view)["replays"], 1);
    assert_eq!(rig.tg.messages_to("4242").len(), 1);
    let (_, list) = rig
        .call(reqwest::Method::GET, "/api/v1/dead-letters", None)
        .await;
    assert!(list["dead_letters"].as_array().unwrap().is_empty());
}
