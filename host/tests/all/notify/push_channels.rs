//! Web Push, Discord and Slack against their stand-ins: a push service that verifies VAPID
//! and decrypts as the browser would, and Discord's and Slack's webhooks with their limits.

use std::time::Duration;

use serde_json::{Value, json};

use super::rig::{NotifyRig, Opts};
use crate::servers::chat_hooks::{
    ARRIVAL_GRACE, ChatHooks, ChatReply, DISCORD_WINDOW, SLACK_PERIOD,
};
use crate::servers::push_service::{Browser, PushReply, PushService, public_key_of};

const T: Duration = Duration::from_secs(20);

/// The page's part: fetch the server key, subscribe, hand the subscription to the API.
async fn subscribe(rig: &NotifyRig, push: &PushService, user: &str) -> Browser {
    let (code, key) = rig
        .call(reqwest::Method::GET, "/api/v1/webpush/public-key", None)
        .await;
    assert_eq!(code, 200, "{key}");
    let key = key["public_key"].as_str().unwrap().to_string();
    let browser = push.subscribe(&key);
    let (code, body) = rig
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/users/{user}/push-subscriptions"),
            Some(browser.subscription.clone()),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    browser
}

fn alert(id: &str, user: &str, priority: &str, body: &str) -> Value {
    json!({"id": id, "user_id": user, "kind": "price_alert", "priority": priority,
           "title": "BTCUSDT above 70000", "body": body,
           "data": {"rule_id": "r1", "symbol": "BTCUSDT", "price": 70123.4}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_push_reaches_every_browser_encrypted_and_signed() {
    let rig = NotifyRig::start(Opts::default()).await;
    let push = PushService::start().await;
    // The served key is the public half of the configured private key.
    let (_, key) = rig
        .call(reqwest::Method::GET, "/api/v1/webpush/public-key", None)
        .await;
    assert_eq!(key["public_key"], public_key_of(&rig.vapid.0));
    let laptop = subscribe(&rig, &push, "u1").await;
    let phone = subscribe(&rig, &push, "u1").await;
    rig.notify(alert(
        "wp-1",
        "u1",
        "critical",
        "BTCUSDT is 70123.40 (Binance)",
    ))
    .await;
    let view = rig.wait_status("wp-1", &["delivered"], T).await;
    assert_eq!(view["deliveries"].as_array().unwrap().len(), 2, "{view:#}");
    for browser in [&laptop, &phone] {
        let got = push.received_by(&browser.id);
        assert_eq!(got.len(), 1, "{got:?}");
        let r = &got[0];
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(r.vapid_error, None);
        let claims = r.claims.as_ref().unwrap();
        assert_eq!(claims["aud"], push.origin());
        assert_eq!(claims["sub"], "mailto:ops@impressox.test");
        let p = r.payload.as_ref().unwrap();
        assert_eq!(p["title"], "🚨 BTCUSDT above 70000");
        assert_eq!(p["body"], "BTCUSDT is 70123.40 (Binance)");
        assert_eq!(p["tag"], "rule-r1");
        assert_eq!(p["data"]["url"], "/alerts/r1");
        assert_eq!(r.content_encoding.as_deref(), Some("aes128gcm"));
        assert_eq!(r.ttl.as_deref(), Some("86400"));
        assert_eq!(r.urgency.as_deref(), Some("high"));
        assert_eq!(r.topic.as_ref().map(String::len), Some(32));
    }
    // The same rule's alerts share a topic; the endpoint and keys are never shown.
    assert_eq!(
        push.received_by(&laptop.id)[0].topic,
        push.received_by(&phone.id)[0].topic
    );
    let text = view.to_string();
    assert!(!text.contains("/push/"), "{text}");
    let (_, prefs) = rig
        .call(reqwest::Method::GET, "/api/v1/users/u1/preferences", None)
        .await;
    let shown = prefs.to_string();
    assert!(
        !shown.contains("/push/") && !shown.contains("p256dh"),
        "{shown}"
    );
    assert_eq!(prefs["enabled"], json!(["webpush"]));
    // A normal alert is `normal` urgency.
    rig.notify(alert("wp-2", "u1", "normal", "")).await;
    rig.wait_status("wp-2", &["delivered"], T).await;
    assert_eq!(
        push.received_by(&laptop.id)[1].urgency.as_deref(),
        Some("normal")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_subscription_is_removed_recorded_and_never_retried() {
    gone_subscription_case(PushReply::Gone, "410").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_subscription_404_is_treated_as_gone() {
    gone_subscription_case(PushReply::NotFound, "404").await;
}

/// The push service answers `reply` (410 or 404) for one of a user's two browsers: that
/// subscription is removed and recorded as gone, never retried, never a dead letter.
async fn gone_subscription_case(reply: PushReply, status: &str) {
    let rig = NotifyRig::start(Opts::default()).await;
    let push = PushService::start().await;
    let old = subscribe(&rig, &push, "u1").await;
    let kept = subscribe(&rig, &push, "u1").await;
    push.reply_next(&old.id, [reply]);
    rig.notify(alert("gone-1", "u1", "normal", "")).await;
    let view = rig
        .wait_status("gone-1", &["delivered", "partially_delivered"], T)
        .await;
    let gone: Vec<&Value> = view["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["state"] == "skipped")
        .collect();
    assert_eq!(gone.len(), 1, "{view:#}");
    assert_eq!(gone[0]["reason"], "subscription_gone");
    assert_eq!(gone[0]["history"][0]["outcome"], "gone");
    assert!(
        gone[0]["last_error"].as_str().unwrap().contains(status),
        "{view:#}"
    );
    assert_eq!(
        view["status"], "delivered",
        "a gone browser is not a failure"
    );
    // Not a dead letter a replay would repeat.
    let (_, dead) = rig
        .call(reqwest::Method::GET, "/api/v1/dead-letters", None)
        .await;
    assert_eq!(
        dead["dead_letters"].as_array().map_or(0, Vec::len),
        0,
        "{dead}"
    );
    // Removed from the preferences: the next alert goes to the kept browser only.
    let (_, prefs) = rig
        .call(reqwest::Method::GET, "/api/v1/users/u1/preferences", None)
        .await;
    assert_eq!(
        prefs["channels"]["webpush"]["subscriptions"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{prefs}"
    );
    rig.notify(alert("gone-2", "u1", "normal", "")).await;
    let view = rig.wait_status("gone-2", &["delivered"], T).await;
    assert_eq!(view["deliveries"].as_array().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(push.received_by(&old.id).len(), 1, "never pushed again");
    assert_eq!(push.received_by(&kept.id).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_push_429_waits_retry_after_and_a_long_payload_is_cut_to_fit() {
    let rig = NotifyRig::start(Opts::default()).await;
    let push = PushService::start().await;
    let b = subscribe(&rig, &push, "u1").await;
    push.reply_next(&b.id, [PushReply::TooMany(1)]);
    let long: String = "BTCUSDT moved. ".repeat(1000);
    rig.notify(alert("wp-429", "u1", "normal", &long)).await;
    let view = rig.wait_status("wp-429", &["delivered"], T).await;
    let got = push.received_by(&b.id);
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![429, 201]
    );
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(1000), "retried after {gap:?}");
    let history = view["deliveries"][0]["history"].as_array().unwrap();
    assert_eq!(history[0]["outcome"], "rate_limited");
    assert_eq!(history[0]["retry_after_secs"], 1);
    // 15 kB of body became one message within the 4,096 bytes a push carries.
    assert!(got[1].body_len <= 4096, "{}", got[1].body_len);
    let body = got[1].payload.as_ref().unwrap()["body"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(body.ends_with('…') && body.len() > 2000, "{}", body.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_subscriptions_are_checked_added_and_dropped_through_the_api() {
    let rig = NotifyRig::start(Opts::default()).await;
    let push = PushService::start().await;
    let b = push.subscribe(&rig.vapid.1);
    let mut bad = b.subscription.clone();
    bad["keys"]["auth"] = json!("c2hvcnQ");
    let (code, body) = rig
        .call(
            reqwest::Method::POST,
            "/api/v1/users/u7/push-subscriptions",
            Some(bad),
        )
        .await;
    assert_eq!(code, 400);
    assert!(body.to_string().contains("keys.auth"), "{body}");
    let path = "/api/v1/users/u7/push-subscriptions";
    let (code, _) = rig
        .call(reqwest::Method::POST, path, Some(b.subscription.clone()))
        .await;
    assert_eq!(code, 201);
    let (code, body) = rig
        .call(reqwest::Method::POST, path, Some(b.subscription.clone()))
        .await;
    assert_eq!(
        (code, body["subscription"].clone()),
        (200, json!("unchanged"))
    );
    // Also through PUT preferences, as the PushSubscription JSON.
    let other = push.subscribe(&rig.vapid.1);
    rig.put_prefs(
        "u8",
        json!({"channels": {"webpush": {"subscriptions": [other.subscription.clone()]}},
               "enabled": ["webpush"]}),
    )
    .await;
    let gone = json!({"endpoint": b.endpoint()});
    let (code, _) = rig
        .call(reqwest::Method::DELETE, path, Some(gone.clone()))
        .await;
    assert_eq!(code, 204);
    let (code, _) = rig.call(reqwest::Method::DELETE, path, Some(gone)).await;
    assert_eq!(code, 404);
    // The last one gone, the channel is no longer enabled (it has no address).
    let (_, prefs) = rig
        .call(reqwest::Method::GET, "/api/v1/users/u7/preferences", None)
        .await;
    assert_eq!(prefs["enabled"], json!([]), "{prefs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_keeps_its_bucket_honours_429_and_marks_critical_red() {
    let rig = NotifyRig::start(Opts::default()).await;
    let hooks = ChatHooks::start().await;
    rig.put_prefs(
        "u1",
        json!({"channels": {"discord": {"url": hooks.discord_url("h1")}}, "enabled": ["discord"]}),
    )
    .await;
    // Discord says "slow down" once, for 1.5 s, although the bucket has room.
    hooks.reply_next("h1", [ChatReply::RateLimited(1.5)]);
    for i in 0..12 {
        let priority = if i == 0 { "critical" } else { "normal" };
        rig.notify(alert(&format!("dc-{i}"), "u1", priority, &format!("n{i}")))
            .await;
    }
    for i in 0..12 {
        rig.wait_status(&format!("dc-{i}"), &["delivered"], Duration::from_secs(40))
            .await;
    }
    let accepted = hooks.accepted("h1");
    assert_eq!(accepted.len(), 12, "each once");
    let all = hooks.received();
    let limited: Vec<_> = all.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        limited.len(),
        1,
        "only the scripted 429: our spacing kept the bucket"
    );
    // After the 429 nothing went before its retry_after.
    let after: Vec<_> = all
        .iter()
        .filter(|r| r.at > limited[0].at && r.status != 429)
        .collect();
    assert!(after[0].at - limited[0].at >= Duration::from_millis(1500));
    // No 2-second window ever saw more than 5.
    for (i, a) in accepted.iter().enumerate() {
        let within = accepted[i..]
            .iter()
            .filter(|b| b.at - a.at < DISCORD_WINDOW - ARRIVAL_GRACE)
            .count();
        assert!(within <= 5, "{within} within 2 s");
    }
    let critical = accepted
        .iter()
        .find(|r| r.body["embeds"][0]["description"] == "n0")
        .unwrap();
    assert_eq!(critical.body["embeds"][0]["color"], 0xE0_31_31);
    assert!(critical.body["content"].as_str().unwrap().starts_with("🚨"));
    assert_eq!(critical.body["allowed_mentions"]["parse"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_escaped_mrkdwn_at_one_per_second() {
    let rig = NotifyRig::start(Opts::default()).await;
    let hooks = ChatHooks::start().await;
    rig.put_prefs(
        "u1",
        json!({"channels": {"slack": {"url": hooks.slack_url("B1")}}, "enabled": ["slack"]}),
    )
    .await;
    hooks.reply_next("B1", [ChatReply::RateLimited(1.0)]);
    for i in 0..3 {
        rig.notify(
            json!({"id": format!("sl-{i}"), "user_id": "u1", "kind": "price_alert",
            "priority": if i == 0 { "critical" } else { "normal" },
            "title": "BTC > 70k & <!channel>", "body": format!("n{i}"), "data": {}}),
        )
        .await;
    }
    for i in 0..3 {
        rig.wait_status(&format!("sl-{i}"), &["delivered"], T).await;
    }
    let accepted = hooks.accepted("B1");
    assert_eq!(accepted.len(), 3);
    let refused = hooks.received().iter().filter(|r| r.status == 429).count();
    assert_eq!(refused, 1, "only the scripted 429");
    for w in accepted.windows(2) {
        assert!(
            w[1].at - w[0].at >= SLACK_PERIOD - ARRIVAL_GRACE,
            "{:?}",
            w[1].at - w[0].at
        );
    }
    let first = accepted
        .iter()
        .find(|r| r.body["text"].as_str().unwrap().contains("n0"))
        .unwrap();
    assert_eq!(
        first.body["blocks"][0]["text"]["text"],
        ":rotating_light: *BTC &gt; 70k &amp; &lt;!channel&gt;*\nn0"
    );
    assert!(!first.body.to_string().contains("<!channel>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_webhook_urls_stay_secret_and_dead_letters_replay_after_a_fix() {
    let rig = NotifyRig::start(Opts::default()).await;
    let hooks = ChatHooks::start().await;
    let url = hooks.discord_url("h9");
    rig.put_prefs(
        "u1",
        json!({"channels": {"discord": {"url": url}, "slack": {"url": hooks.slack_url("B9")}},
               "enabled": ["discord", "slack"],
               "mutes": [{"until": "2099-01-01T00:00:00Z", "kinds": ["news"]}]}),
    )
    .await;
    // Mutes hold these channels as any other.
    rig.notify(json!({"id": "muted-1", "user_id": "u1", "kind": "news", "title": "t"}))
        .await;
    let view = rig.wait_status("muted-1", &["skipped"], T).await;
    assert!(
        view["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["reason"] == "muted")
    );
    hooks.reply_next("h9", [ChatReply::NotFound]);
    rig.notify(alert("dl-1", "u1", "normal", "")).await;
    let view = rig.wait_status("dl-1", &["partially_delivered"], T).await;
    let dead = view["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["state"] == "dead")
        .unwrap()
        .clone();
    assert_eq!(dead["reason"], "permanent");
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .contains("Unknown Webhook")
    );
    // The token is in no answer: not the view, not the dead letters, not the preferences.
    let (_, letters) = rig
        .call(reqwest::Method::GET, "/api/v1/dead-letters", None)
        .await;
    let (_, prefs) = rig
        .call(reqwest::Method::GET, "/api/v1/users/u1/preferences", None)
        .await;
    for text in [view.to_string(), letters.to_string(), prefs.to_string()] {
        assert!(
            !text.contains("tok-h9") && !text.contains("tok-B9"),
            "{text}"
        );
    }
    // The webhook is back: the replay delivers it, once.
    let (code, body) = rig
        .call(
            reqwest::Method::POST,
            &format!(
                "/api/v1/dead-letters/{}/replay",
                dead["delivery_id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert!(code == 200 || code == 202, "{code} {body}");
    rig.wait_status("dl-1", &["delivered"], T).await;
    assert_eq!(hooks.accepted("h9").len(), 1);
    assert_eq!(hooks.accepted("B9").len(), 1);
}
