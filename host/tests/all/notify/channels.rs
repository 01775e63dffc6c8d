//! Each channel against its stand-in: what arrives, how failures are sorted (retry,
//! dead letter, unknown fate), and that nothing is sent twice.

use std::time::{Duration, Instant};

use serde_json::json;

use super::rig::{HOOK_SECRET, NotifyRig, Opts, first_delivery, request};
use crate::servers::smtp::SmtpServer;
use crate::servers::telegram::Reply;
use crate::servers::webhook_receiver::{HookReply, WebhookReceiver};

const T: Duration = Duration::from_secs(20);

async fn telegram_rig(opts: Opts, chat: &str) -> NotifyRig {
    let rig = NotifyRig::start(opts).await;
    rig.put_prefs(
        "u1",
        json!({"channels": {"telegram": {"chat_id": chat}}, "enabled": ["telegram"]}),
    )
    .await;
    rig
}

fn sends(rig: &NotifyRig) -> usize {
    rig.tg
        .requests()
        .iter()
        .filter(|r| r.method == "sendmessage")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_message_arrives_as_markdown_v2() {
    let rig = telegram_rig(Opts::default(), "123456").await;
    rig.tg.strict_markdown_v2(true);
    rig.notify(request(
        "tg-1",
        "u1",
        "BTCUSDT above 70000",
        "BTCUSDT is 70123.40 (Binance)!",
    ))
    .await;
    let view = rig.wait_status("tg-1", &["delivered"], T).await;
    let sent = rig.tg.sent();
    assert_eq!(sent.len(), 1, "{view:#}");
    assert_eq!(sent[0].chat_id.as_deref(), Some("123456"));
    assert_eq!(sent[0].parse_mode.as_deref(), Some("MarkdownV2"));
    let text = sent[0].text.clone().unwrap();
    assert!(text.contains("70123\\.40"), "{text}");
    assert!(text.contains("\\(Binance\\)\\!"), "{text}");
    assert!(
        first_delivery(&view)["formatter"]
            .as_str()
            .unwrap()
            .starts_with("telegram-markdown@")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_telegram_message_is_split_and_sent_in_order() {
    let rig = telegram_rig(Opts::default(), "555").await;
    rig.tg.strict_markdown_v2(true);
    let body: String = (0..900).map(|i| format!("line {i:04}. ")).collect();
    rig.notify(request("tg-long", "u1", "long", &body)).await;
    let view = rig.wait_status("tg-long", &["delivered"], T).await;
    let parts = rig.tg.messages_to("555");
    assert!(parts.len() >= 3, "{} parts", parts.len());
    assert_eq!(first_delivery(&view)["parts_sent"], parts.len());
    for p in &parts {
        assert!(p.encode_utf16().count() <= 4096);
    }
    // In order: the line numbers only grow.
    let joined = parts.concat();
    let first = joined.find("line 0000").unwrap();
    let last = joined.find("line 0899").unwrap();
    assert!(first < last);
    let mut prev = 0;
    for i in (0..900).step_by(50) {
        let at = joined.find(&format!("line {i:04}")).unwrap();
        assert!(at >= prev);
        prev = at;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_429_waits_exactly_retry_after() {
    let rig = telegram_rig(Opts::default(), "9001").await;
    rig.tg.reply_next(Some("9001"), [Reply::RetryAfter(2)]);
    rig.notify(request("tg-429", "u1", "limited", "")).await;
    let view = rig.wait_status("tg-429", &["delivered"], T).await;
    let reqs: Vec<_> = rig
        .tg
        .requests()
        .into_iter()
        .filter(|r| r.method == "sendmessage")
        .collect();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= Duration::from_millis(2000) && gap < Duration::from_millis(2350),
        "retried after {gap:?}"
    );
    let history = first_delivery(&view)["history"].as_array().unwrap().clone();
    assert_eq!(history[0]["outcome"], "rate_limited");
    assert_eq!(history[0]["retry_after_secs"], 2);
    assert_eq!(history[1]["outcome"], "sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_400_chat_not_found_goes_straight_to_dead_letters() {
    let rig = telegram_rig(Opts::default(), "31337").await;
    rig.tg
        .reply_next(Some("31337"), [Reply::BadRequest("chat not found".into())]);
    rig.notify(request("tg-400", "u1", "t", "")).await;
    let view = rig.wait_status("tg-400", &["failed"], T).await;
    assert_eq!(first_delivery(&view)["reason"], "permanent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sends(&rig), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_5xx_is_retried() {
    let rig = telegram_rig(
        Opts {
            retry: "base_ms = 100\n".into(),
            // teloxide pauses 10 s after a 5xx before it reports it.
            notify: "lease_secs = 60\n".into(),
            telegram: "timeout_secs = 15\n".into(),
            ..Default::default()
        },
        "777",
    )
    .await;
    rig.tg.reply_next(Some("777"), [Reply::ServerError]);
    rig.notify(request("tg-500", "u1", "t", "")).await;
    let view = rig
        .wait_status("tg-500", &["delivered"], Duration::from_secs(40))
        .await;
    assert_eq!(sends(&rig), 2);
    assert_eq!(first_delivery(&view)["history"][0]["outcome"], "transient");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telegram_send_that_hangs_is_a_dead_letter_and_never_resent() {
    let rig = telegram_rig(Opts::default(), "888").await;
    rig.tg.reply_next(Some("888"), [Reply::Hang]);
    rig.notify(request("tg-hang", "u1", "t", "")).await;
    let view = rig.wait_status("tg-hang", &["failed"], T).await;
    let d = first_delivery(&view);
    assert_eq!(d["reason"], "ambiguous");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sends(&rig), 1, "an unknown-fate send is not repeated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bot_token_makes_replayable_dead_letters() {
    // A rig whose token variable is unset: point token_env elsewhere.
    let rig = telegram_rig(
        Opts {
            telegram: "token_env = \"IMPRESSOX_TEST_NO_SUCH_TOKEN\"\n".into(),
            ..Default::default()
        },
        "1",
    )
    .await;
    rig.notify(request("tg-untoken", "u1", "t", "")).await;
    let view = rig.wait_status("tg-untoken", &["failed"], T).await;
    let d = first_delivery(&view);
    assert_eq!(d["reason"], "channel_unconfigured");
    assert!(
        d["last_error"]
            .as_str()
            .unwrap()
            .contains("IMPRESSOX_TEST_NO_SUCH_TOKEN")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formatter_loaded_late_is_waited_for_and_delivers_once() {
    let rig = telegram_rig(Opts::default(), "4040").await;
    // Unload the formatter: remove its file and rescan.
    std::fs::remove_file(rig.host.config.plugin_dir().join("telegram-markdown.wasm")).unwrap();
    rig.host.runtime.rescan(true);
    assert!(
        rig.host
            .runtime
            .loaded_plugin("telegram-markdown")
            .is_none()
    );
    rig.notify(request("tg-late", "u1", "late", "")).await;
    let start = Instant::now();
    loop {
        let v = rig.status("tg-late").await;
        if first_delivery(&v)["reason"] == "formatter_unavailable" {
            break;
        }
        assert!(start.elapsed() < T, "{v:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rig.host
        .load(test_artifacts::TELEGRAM_MARKDOWN, "telegram-markdown.wasm");
    rig.wait_status("tg-late", &["delivered"], T).await;
    assert_eq!(rig.tg.messages_to("4040").len(), 1);
}

async fn webhook_rig(retry: &str) -> (NotifyRig, WebhookReceiver) {
    let hooks = WebhookReceiver::start(HOOK_SECRET).await;
    let rig = NotifyRig::start(Opts {
        retry: retry.into(),
        with_webhook_secret: true,
        ..Default::default()
    })
    .await;
    rig.put_prefs(
        "u1",
        json!({"channels": {"webhook": {"url": hooks.url("a")}}, "enabled": ["webhook"]}),
    )
    .await;
    (rig, hooks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_signed_and_verified_by_the_receiver() {
    let (rig, hooks) = webhook_rig("").await;
    rig.notify(request("wh-1", "u1", "BTCUSDT above 70000", "body text"))
        .await;
    let view = rig.wait_status("wh-1", &["delivered"], T).await;
    let got = hooks.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert!(r.signature_ok, "signature: {:?}", r.signature);
    assert_eq!(r.body["id"], "wh-1");
    assert_eq!(r.body["title"], "BTCUSDT above 70000");
    assert_eq!(r.body["data"]["price"], 70123.4);
    assert_eq!(r.body["channel"], "webhook");
    assert_eq!(
        r.delivery_id.as_deref(),
        first_delivery(&view)["delivery_id"].as_str()
    );
    assert_eq!(r.attempt, Some(1));
    // The URL's path is not shown by the API.
    assert!(
        !first_delivery(&view)["target"]
            .as_str()
            .unwrap()
            .contains("/hook/a")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_410_is_permanent_and_500_retries_until_exhausted() {
    let (rig, hooks) = webhook_rig("max_attempts = 3\nbase_ms = 10\n").await;
    hooks.reply_next(Some("a"), [HookReply::Gone]);
    rig.notify(request("wh-410", "u1", "t", "")).await;
    let view = rig.wait_status("wh-410", &["failed"], T).await;
    assert_eq!(first_delivery(&view)["reason"], "permanent");
    assert_eq!(hooks.received().len(), 1);

    hooks.set_default_reply(Some("a"), HookReply::ServerError);
    rig.notify(request("wh-500", "u1", "t", "")).await;
    let view = rig.wait_status("wh-500", &["failed"], T).await;
    assert_eq!(first_delivery(&view)["reason"], "exhausted");
    assert_eq!(first_delivery(&view)["attempts"], 3);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hooks.received().len(), 1 + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_retry_after_header_is_honoured() {
    let (rig, hooks) = webhook_rig("").await;
    hooks.reply_next(Some("a"), [HookReply::RetryAfter(1)]);
    rig.notify(request("wh-429", "u1", "t", "")).await;
    rig.wait_status("wh-429", &["delivered"], T).await;
    let got = hooks.received();
    assert_eq!(got.len(), 2);
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(1000) && gap < Duration::from_millis(1350),
        "{gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_to_a_private_address_is_refused_by_default() {
    let hooks = WebhookReceiver::start(HOOK_SECRET).await;
    let rig = NotifyRig::start(Opts {
        with_webhook_secret: true,
        webhook: "allow_private_addresses = false\n".into(),
        ..Default::default()
    })
    .await;
    rig.put_prefs(
        "u1",
        json!({"channels": {"webhook": {"url": hooks.url("a")}}, "enabled": ["webhook"]}),
    )
    .await;
    rig.notify(request("wh-ssrf", "u1", "t", "")).await;
    let view = rig.wait_status("wh-ssrf", &["failed"], T).await;
    assert!(
        first_delivery(&view)["last_error"]
            .as_str()
            .unwrap()
            .contains("internal address")
    );
    assert!(hooks.received().is_empty());
}

async fn email_rig(smtp: &SmtpServer, retry: &str) -> NotifyRig {
    NotifyRig::start(Opts {
        retry: retry.into(),
        email: format!(
            "smtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntimeout_secs = 5\n",
            smtp.port()
        ),
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_has_plain_and_html_parts_and_a_stable_message_id() {
    let smtp = SmtpServer::start();
    let rig = email_rig(&smtp, "").await;
    rig.put_prefs(
        "u1",
        json!({"channels": {"email": {"address": "Alice@Example.com"}}, "enabled": ["email"]}),
    )
    .await;
    rig.notify(request(
        "em-1",
        "u1",
        "BTCUSDT above 70000",
        "BTCUSDT is <b>70123</b>",
    ))
    .await;
    let view = rig.wait_status("em-1", &["delivered"], T).await;
    assert!(smtp.wait_for(1, T).await);
    let mail = smtp.messages().remove(0);
    assert_eq!(mail.subject(), Some("BTCUSDT above 70000"));
    assert!(mail.to().unwrap().contains("alice@example.com"));
    let id = first_delivery(&view)["delivery_id"].as_str().unwrap();
    assert_eq!(
        mail.message_id(),
        Some(format!("<{id}@impressox>").as_str())
    );
    assert!(
        mail.content_type()
            .unwrap()
            .starts_with("multipart/alternative")
    );
    assert!(mail.text().unwrap().contains("BTCUSDT is <b>70123</b>"));
    assert!(mail.html().unwrap().contains("&lt;b&gt;70123&lt;/b&gt;"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_550_is_permanent_and_451_is_retried() {
    let smtp = SmtpServer::start();
    let rig = email_rig(&smtp, "max_attempts = 2\nbase_ms = 10\n").await;
    rig.put_prefs(
        "u550",
        json!({"channels": {"email": {"address": "reject-550@example.com"}}, "enabled": ["email"]}),
    )
    .await;
    rig.put_prefs(
        "u451",
        json!({"channels": {"email": {"address": "reject-451@example.com"}}, "enabled": ["email"]}),
    )
    .await;
    rig.notify(request("em-550", "u550", "t", "")).await;
    rig.notify(request("em-451", "u451", "t", "")).await;
    let v550 = rig.wait_status("em-550", &["failed"], T).await;
    let v451 = rig.wait_status("em-451", &["failed"], T).await;
    assert_eq!(first_delivery(&v550)["reason"], "permanent");
    assert_eq!(first_delivery(&v550)["attempts"], 1);
    assert_eq!(first_delivery(&v451)["reason"], "exhausted");
    assert_eq!(first_delivery(&v451)["attempts"], 2);
    assert!(smtp.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_smtp_send_is_of_unknown_fate_and_the_next_mail_still_goes() {
    let smtp = SmtpServer::start();
    let rig = NotifyRig::start(Opts {
        email: format!(
            "smtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntimeout_secs = 1\n",
            smtp.port()
        ),
        ..Default::default()
    })
    .await;
    rig.put_prefs(
        "slow",
        json!({"channels": {"email": {"address": "slow-3@example.com"}}, "enabled": ["email"]}),
    )
    .await;
    rig.put_prefs(
        "fast",
        json!({"channels": {"email": {"address": "fast@example.com"}}, "enabled": ["email"]}),
    )
    .await;
    rig.notify(request("em-slow", "slow", "t", "")).await;
    let view = rig.wait_status("em-slow", &["failed"], T).await;
    assert_eq!(first_delivery(&view)["reason"], "ambiguous");
    rig.notify(request("em-fast", "fast", "t", "")).await;
    rig.wait_status("em-fast", &["delivered"], T).await;
    assert!(smtp.wait_for(1, T).await);
    assert!(
        smtp.messages()[0]
            .to()
            .unwrap()
            .contains("fast@example.com")
    );
}
