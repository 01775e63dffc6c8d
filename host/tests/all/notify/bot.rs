//! The Telegram bot's commands end to end: a user writes to the stand-in, the worker's
//! long poll picks the update up, the command acts on the real stores (rules through the
//! same code path as the API, preferences by compare-and-set), and the reply arrives in
//! the chat. Also: each command is handled once across a restart, and two workers on one
//! store never poll at the same time.

use std::time::{Duration, Instant};

use impressox_host::notify::NotifyWorker;
use reqwest::Method;
use serde_json::{Value, json};

use super::rig::{NotifyRig, Opts, first_delivery, request};

const T: Duration = Duration::from_secs(15);

/// Commands on, and a short long poll so stops and takeovers are quick.
fn opts() -> Opts {
    Opts {
        telegram: "commands = true\npoll_timeout_secs = 1\n".into(),
        ..Opts::default()
    }
}

/// Wait until `chat` got more than `before` messages; returns the newest.
async fn reply_after(rig: &NotifyRig, chat: i64, before: usize, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        let msgs = rig.tg.messages_to(&chat.to_string());
        if msgs.len() > before {
            assert_eq!(
                msgs.len(),
                before + 1,
                "one reply per command in chat {chat}: {msgs:#?}"
            );
            return msgs[before].clone();
        }
        if start.elapsed() > timeout {
            panic!("no reply in chat {chat} after {before} messages: {msgs:#?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The user writes `text` in `chat`; returns the update id and the bot's reply.
async fn says(rig: &NotifyRig, chat: i64, text: &str) -> (u32, String) {
    let before = rig.tg.messages_to(&chat.to_string()).len();
    let update = rig.tg.user_says(chat, text);
    (update, reply_after(rig, chat, before, T).await)
}

async fn rules_of(rig: &NotifyRig, user: &str) -> Vec<Value> {
    let (status, body) = rig
        .call(Method::GET, &format!("/api/v1/rules?user_id={user}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["rules"].as_array().unwrap().clone()
}

async fn prefs_of(rig: &NotifyRig, user: &str) -> (u16, Value) {
    rig.call(
        Method::GET,
        &format!("/api/v1/users/{user}/preferences"),
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_links_the_chat_and_watch_creates_a_rule() {
    let rig = NotifyRig::start(opts()).await;
    let chat = 5001;
    let (_, reply) = says(&rig, chat, "/start").await;
    assert!(reply.contains("tg-5001"), "{reply}");
    let (status, prefs) = prefs_of(&rig, "tg-5001").await;
    assert_eq!(status, 200, "{prefs}");
    assert_eq!(prefs["channels"]["telegram"]["chat_id"], "5001");
    assert_eq!(prefs["enabled"], json!(["telegram"]));

    let (update, reply) = says(&rig, chat, "/watch btcusdt above 70000").await;
    let id = format!("tg-{update}");
    assert!(
        reply.contains(&id) && reply.contains("BTCUSDT above 70000"),
        "{reply}"
    );
    let rules = rules_of(&rig, "tg-5001").await;
    assert_eq!(rules.len(), 1, "{rules:#?}");
    let r = &rules[0];
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["symbol"], "BTCUSDT");
    assert_eq!(r["condition"], json!({"op": "above", "value": 70000.0}));
    assert_eq!(r["trigger"]["mode"], "once");
    assert_eq!(r["channels"], json!(["telegram"]));

    // In a group a command names the bot; the suffix is stripped.
    let (update, reply) = says(
        &rig,
        chat,
        "/watch@impressox_test_bot ETHUSDT crosses_down 3000 cooldown=600",
    )
    .await;
    assert!(reply.contains(&format!("tg-{update}")), "{reply}");
    let rules = rules_of(&rig, "tg-5001").await;
    assert_eq!(rules.len(), 2);
    assert_eq!(
        rules[1]["trigger"],
        json!({"mode": "cooldown", "cooldown_secs": 600})
    );

    // The linked chat is where the user's notifications now go.
    rig.notify(request(
        "bot-n1",
        "tg-5001",
        "BTCUSDT above 70000",
        "now 70100",
    ))
    .await;
    rig.wait_status("bot-n1", &["delivered"], T).await;
    assert!(
        rig.tg
            .messages_to("5001")
            .iter()
            .any(|m| m.contains("70100")),
        "{:#?}",
        rig.tg.messages_to("5001")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_with_a_code_links_an_existing_user() {
    let rig = NotifyRig::start(opts()).await;
    rig.put_prefs(
        "u1",
        json!({"channels": {"console": {}}, "enabled": ["console"]}),
    )
    .await;
    let (status, link) = rig
        .call(Method::POST, "/api/v1/users/u1/telegram-link", None)
        .await;
    assert_eq!(status, 201, "{link}");
    let code = link["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 16, "{link}");
    assert!(
        code.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
        "{code}"
    );
    assert_eq!(link["command"], format!("/start {code}"));
    let expires = impressox_host::util::parse_rfc3339_ms(link["expires_at"].as_str().unwrap())
        .expect("expires_at is RFC 3339");
    let in_ms = expires - impressox_host::util::now_ms();
    assert!((14 * 60_000..=15 * 60_000).contains(&in_ms), "{in_ms}");

    let chat = 5101;
    let (_, reply) = says(&rig, chat, &format!("/start {}", code.to_lowercase())).await;
    assert!(reply.contains("u1"), "{reply}");
    let (_, prefs) = prefs_of(&rig, "u1").await;
    assert_eq!(prefs["channels"]["telegram"]["chat_id"], "5101");
    assert_eq!(prefs["channels"]["console"], json!({}));
    assert_eq!(prefs["enabled"], json!(["console", "telegram"]));
    assert_eq!(
        prefs_of(&rig, "tg-5101").await.0,
        404,
        "no user of its own for a chat linked by code"
    );

    let (update, _) = says(&rig, chat, "/watch ethusdt below 3000 every").await;
    let rules = rules_of(&rig, "u1").await;
    assert_eq!(rules.len(), 1, "{rules:#?}");
    assert_eq!(rules[0]["id"], format!("tg-{update}"));
    assert_eq!(rules[0]["trigger"]["mode"], "every");

    // Single use: another chat cannot take it, and stays unlinked.
    let (_, reply) = says(&rig, 5102, &format!("/start {code}")).await;
    assert!(reply.contains("unknown or has expired"), "{reply}");
    let (_, reply) = says(&rig, 5102, "/alerts").await;
    assert_eq!(reply, "Send /start first");

    let (status, body) = rig
        .call(Method::POST, "/api/v1/users/not%20ok/telegram-link", None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user_id")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_lists_and_unwatch_deletes_only_own_rules() {
    let rig = NotifyRig::start(opts()).await;
    let (a, b) = (5201, 5202);
    let (_, reply) = says(&rig, 5203, "/alerts").await;
    assert_eq!(reply, "Send /start first", "an unlinked chat");
    says(&rig, a, "/start").await;
    says(&rig, b, "/start").await;
    let (a1, _) = says(&rig, a, "/watch BTCUSDT above 70000").await;
    let (a2, _) = says(&rig, a, "/watch SOLUSDT below 150 every").await;
    let (b1, _) = says(&rig, b, "/watch BTCUSDT below 50000").await;
    let (a1, a2, b1) = (format!("tg-{a1}"), format!("tg-{a2}"), format!("tg-{b1}"));

    let (_, list) = says(&rig, a, "/alerts").await;
    assert!(list.contains(&a1) && list.contains(&a2), "{list}");
    assert!(list.contains("BTCUSDT above 70000") && list.contains("SOLUSDT below 150"));
    assert!(!list.contains(&b1), "only the chat user's rules: {list}");

    let (_, reply) = says(&rig, a, &format!("/unwatch {b1}")).await;
    assert!(reply.contains("no alert with id"), "{reply}");
    let (status, _) = rig
        .call(Method::GET, &format!("/api/v1/rules/{b1}"), None)
        .await;
    assert_eq!(status, 200, "another user's rule is left alone");

    let (_, reply) = says(&rig, a, &format!("/unwatch {a1}")).await;
    assert!(reply.contains("Deleted") && reply.contains(&a1), "{reply}");
    let left: Vec<Value> = rules_of(&rig, "tg-5201").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], a2.as_str());
    let (_, list) = says(&rig, a, "/alerts").await;
    assert!(!list.contains(&a1) && list.contains(&a2), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_skips_the_next_notification_until_mute_off() {
    let rig = NotifyRig::start(opts()).await;
    let chat = 5301;
    says(&rig, chat, "/start").await;
    let (_, reply) = says(&rig, chat, "/mute 30m").await;
    assert!(reply.contains("Muted until"), "{reply}");
    let (_, prefs) = prefs_of(&rig, "tg-5301").await;
    let mutes = prefs["mutes"].as_array().unwrap();
    assert_eq!(mutes.len(), 1, "{prefs}");
    assert!(
        mutes[0].get("kinds").is_none(),
        "a mute of every kind: {prefs}"
    );
    let until = impressox_host::util::parse_rfc3339_ms(mutes[0]["until"].as_str().unwrap())
        .unwrap()
        - impressox_host::util::now_ms();
    assert!((29 * 60_000..=30 * 60_000).contains(&until), "{until}");

    rig.notify(request("bot-m1", "tg-5301", "muted", "not sent"))
        .await;
    let view = rig.wait_status("bot-m1", &["skipped"], T).await;
    assert_eq!(first_delivery(&view)["reason"], "muted", "{view:#}");

    let (_, reply) = says(&rig, chat, "/mute off").await;
    assert!(reply.contains("cleared"), "{reply}");
    let (_, prefs) = prefs_of(&rig, "tg-5301").await;
    assert!(prefs.get("mutes").is_none(), "{prefs}");
    rig.notify(request("bot-m2", "tg-5301", "unmuted", "sent"))
        .await;
    rig.wait_status("bot-m2", &["delivered"], T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_command_gets_the_usage_reply() {
    let rig = NotifyRig::start(opts()).await;
    let chat = 5401;
    says(&rig, chat, "/start").await;
    let (_, reply) = says(&rig, chat, "/watch BTCUSDT sideways 5").await;
    assert_eq!(
        reply,
        "Usage: /watch <SYMBOL> <above|below|crosses_up|crosses_down> <price> \
         [once|every|cooldown=<secs>], e.g. /watch BTCUSDT above 70000"
    );
    let (_, reply) = says(&rig, chat, "/mute 5x").await;
    assert!(reply.starts_with("Usage: /mute"), "{reply}");
    let (_, reply) = says(&rig, chat, "/frobnicate").await;
    assert!(
        reply.starts_with("Usage:") && reply.contains("/watch"),
        "{reply}"
    );
    let (_, reply) = says(&rig, chat, "hello bot").await;
    assert!(reply.starts_with("Usage:"), "{reply}");
    // Well-formed, but the rule's own validation (the API's) refuses the symbol.
    let (_, reply) = says(&rig, chat, "/watch B above 5").await;
    assert!(
        reply.contains("`symbol`") && reply.contains("Usage: /watch"),
        "{reply}"
    );
    assert!(rules_of(&rig, "tg-5401").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_handled_once_across_a_restart() {
    let mut rig = NotifyRig::start(opts()).await;
    let chat = 5501;
    says(&rig, chat, "/start").await;
    let (watch, _) = says(&rig, chat, "/watch BTCUSDT above 70000").await;
    let seen = rig.tg.requests().len();
    rig.restart_worker().await;
    let (alerts, list) = says(&rig, chat, "/alerts").await;
    assert!(list.contains(&format!("tg-{watch}")), "{list}");
    // Give a second handling of anything every chance to show up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        rig.tg.messages_to("5501").len(),
        3,
        "one reply per command: {:#?}",
        rig.tg.messages_to("5501")
    );
    assert_eq!(rules_of(&rig, "tg-5501").await.len(), 1);
    // The new worker started from the checkpoint, not from Telegram's memory.
    let first_poll = rig.tg.requests()[seen..]
        .iter()
        .find(|r| r.method == "getupdates")
        .cloned()
        .expect("the new worker polls");
    assert_eq!(
        first_poll.body["offset"],
        json!(watch + 1),
        "{:?}",
        first_poll.body
    );
    assert_eq!(
        rig.store
            .get_checkpoint("telegram:update-offset")
            .await
            .unwrap(),
        Some((alerts + 1).to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_store_never_poll_at_once() {
    let mut rig = NotifyRig::start(opts()).await;
    let mut config = rig.host.config.clone();
    config.notify.consumer = "second-host".into();
    let second = NotifyWorker::start_with(
        &config,
        rig.host.runtime.clone(),
        rig.store.clone(),
        rig.docs.clone(),
        rig.extras(),
    )
    .await
    .unwrap();
    let chat = 5601;
    says(&rig, chat, "/start").await;
    for price in [1, 2, 3] {
        says(&rig, chat, &format!("/watch BTCUSDT above {price}")).await;
    }
    assert_eq!(rules_of(&rig, "tg-5601").await.len(), 3);
    assert_eq!(rig.tg.getupdates_conflicts(), 0);

    // The first stops and releases the lease; the second takes over.
    rig.worker.take().unwrap().stop().await;
    let before = rig.tg.messages_to("5601").len();
    rig.tg.user_says(chat, "/alerts");
    let list = reply_after(&rig, chat, before, Duration::from_secs(20)).await;
    assert!(list.contains("Your alerts (3)"), "{list}");
    assert_eq!(rig.tg.getupdates_conflicts(), 0);
    second.stop().await;
}
