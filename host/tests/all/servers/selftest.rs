//! Checks of the test servers themselves, so they keep speaking the wire formats the product's
//! real clients expect even while no product test happens to use a given knob.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use super::binance_ws::BinanceStandIn;
use super::coingecko_http::{CoinGeckoStandIn, RATE_LIMIT_BODY};
use super::redis::RedisServer;
use super::smtp::SmtpServer;
use super::telegram::{Reply, TelegramStandIn};
use super::webhook_receiver::{self, HookReply, WebhookReceiver};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn redis_answers_ping_and_comes_back_empty_after_a_restart() {
    let mut redis = RedisServer::start();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    assert_eq!(redis.raw_command(&["PING"]), "+PONG\r\n");
    assert_eq!(redis.raw_command(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(redis.raw_command(&["GET", "k"]), "$1\r\nv\r\n");
    assert_eq!(
        redis.raw_command(&["XADD", "s", "1-1", "f", "x"]),
        "$3\r\n1-1\r\n"
    );
    assert_eq!(
        redis.raw_command(&["XRANGE", "s", "-", "+"]),
        "*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nx\r\n"
    );

    let port = redis.port();
    redis.stop();
    assert!(!redis.is_running());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    redis.restart();
    assert_eq!(redis.port(), port);
    assert!(redis.is_running());
    assert_eq!(redis.raw_command(&["PING"]), "+PONG\r\n");
    // No persistence: a restart loses everything, as the tests of "Redis restarted" assume.
    assert_eq!(redis.raw_command(&["GET", "k"]), "$-1\r\n");
}

/// A tokio-tungstenite client whose frames arrive on a channel; reading continuously is what
/// lets tungstenite send its automatic pongs.
async fn ws_client(
    url: &str,
) -> (
    futures_util::stream::SplitSink<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        Message,
    >,
    mpsc::UnboundedReceiver<Result<Message, String>>,
) {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    let (sink, mut stream) = ws.split();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(frame) = stream.next().await {
            let end = frame.is_err();
            if tx.send(frame.map_err(|e| e.to_string())).is_err() || end {
                break;
            }
        }
    });
    (sink, rx)
}

/// The next text frame, skipping control frames.
async fn next_text(rx: &mut mpsc::UnboundedReceiver<Result<Message, String>>) -> String {
    loop {
        match timeout(WAIT, rx.recv()).await {
            Ok(Some(Ok(Message::Text(text)))) => return text.as_str().to_owned(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn wait_for(mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    check()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binance_stand_in_speaks_the_stream_protocol_and_fails_on_demand() {
    let binance = BinanceStandIn::start().await;
    let (mut sink, mut rx) = ws_client(&format!("{}/ws/btcusdt@trade", binance.url())).await;
    assert!(binance.wait_connections(1, WAIT).await);
    assert_eq!(binance.paths(), ["/ws/btcusdt@trade"]);
    assert_eq!(binance.connected(), 1);

    // A live subscription is acknowledged like Binance does.
    let subscribe = r#"{"method":"SUBSCRIBE","params":["ethusdt@trade"],"id":7}"#;
    sink.send(Message::text(subscribe)).await.unwrap();
    let ack: Value = serde_json::from_str(&next_text(&mut rx).await).unwrap();
    assert_eq!(ack, serde_json::json!({"result": null, "id": 7}));
    assert_eq!(binance.received(), [subscribe]);

    binance.send_trade("BTCUSDT", 70123.4, 1_764_300_000_123);
    let trade: Value = serde_json::from_str(&next_text(&mut rx).await).unwrap();
    assert_eq!(trade["e"], "trade");
    assert_eq!(trade["s"], "BTCUSDT");
    assert_eq!(trade["p"], "70123.40000000");
    assert_eq!(trade["E"], 1_764_300_000_123_i64);
    assert_eq!(trade["T"], 1_764_300_000_123_i64);
    assert!(trade["t"].is_u64() && trade["q"].is_string() && trade["m"].is_boolean());

    // The client's pong comes back with the payload.
    binance.send_ping(b"hb-1");
    assert!(wait_for(|| binance.pongs() == [b"hb-1".to_vec()]).await);

    // An abrupt cut: the client sees its connection end without a close frame.
    binance.close_abruptly();
    loop {
        match timeout(WAIT, rx.recv())
            .await
            .expect("the cut reaches the client")
        {
            Some(Ok(Message::Close(frame))) => panic!("got a close frame: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break,
        }
    }
    assert!(wait_for(|| binance.connected() == 0).await);

    // A reconnect on the combined endpoint.
    let combined = "/stream?streams=btcusdt@trade/ethusdt@trade";
    let (mut sink, mut rx) = ws_client(&format!("{}{combined}", binance.url())).await;
    assert!(binance.wait_connections(2, WAIT).await);
    assert_eq!(binance.paths(), ["/ws/btcusdt@trade", combined]);
    binance.send_combined_trade("ethusdt", 3500.0, 1_764_300_001_000);
    let wrapped: Value = serde_json::from_str(&next_text(&mut rx).await).unwrap();
    assert_eq!(wrapped["stream"], "ethusdt@trade");
    assert_eq!(wrapped["data"]["s"], "ETHUSDT");
    assert_eq!(wrapped["data"]["p"], "3500.00000000");

    // Silent: nothing is sent and the client's ping goes unanswered, though the socket is open.
    binance.set_silent(true);
    binance.send_text("dropped while silent");
    sink.send(Message::Ping(b"are-you-there".to_vec().into()))
        .await
        .unwrap();
    let stalled = timeout(Duration::from_millis(300), rx.recv()).await;
    assert!(stalled.is_err(), "silent stand-in sent {stalled:?}");
    assert_eq!(binance.connected(), 1);

    // Back from silence: the stalled ping is answered late and frames flow again.
    binance.set_silent(false);
    match timeout(WAIT, rx.recv()).await {
        Ok(Some(Ok(Message::Pong(payload)))) => assert_eq!(&payload[..], b"are-you-there"),
        other => panic!("expected the late pong, got {other:?}"),
    }
    binance.send_text("hello again");
    assert_eq!(next_text(&mut rx).await, "hello again");
    assert_eq!(binance.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coingecko_stand_in_answers_like_simple_price_and_rate_limits_on_demand() {
    let gecko = CoinGeckoStandIn::start().await;
    gecko.set_price_with_change("bitcoin", 70123.4, 1.2, 1_764_300_000);
    let query = "/api/v3/simple/price?ids=bitcoin,ethereum&vs_currencies=usd\
                 &include_last_updated_at=true&include_24hr_change=true";
    let url = format!("{}{query}", gecko.url());
    let client = reqwest::Client::new();

    gecko.fail_next_with_429(1, Some(7));
    let limited = client
        .get(&url)
        .header("x-cg-demo-api-key", "demo-key")
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    assert_eq!(limited.text().await.unwrap(), RATE_LIMIT_BODY);

    // Only the ids asked for and known; ethereum has no price, so it is left out.
    let ok = client.get(&url).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"bitcoin": {"usd": 70123.4, "usd_24h_change": 1.2, "last_updated_at": 1_764_300_000}})
    );

    // Optional fields only when asked for; percent-encoded commas work.
    gecko.set_price("ethereum", 3500.0, 1_764_300_010);
    let plain: Value = client
        .get(format!(
            "{}/api/v3/simple/price?ids=bitcoin%2Cethereum&vs_currencies=usd",
            gecko.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        plain,
        serde_json::json!({"bitcoin": {"usd": 70123.4}, "ethereum": {"usd": 3500.0}})
    );

    // A 429 without Retry-After, then a malformed body.
    gecko.fail_next_with_429(1, None);
    let limited = client.get(&url).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_none());
    gecko.set_body_override(Some("{\"bitcoin\":".into()));
    let broken = client.get(&url).send().await.unwrap();
    assert_eq!(broken.status(), 200);
    assert_eq!(broken.text().await.unwrap(), "{\"bitcoin\":");

    let requests = gecko.requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(requests[0].1, query);
    assert_eq!(requests[0].2.as_deref(), Some("demo-key"));
    assert_eq!(requests[1].2, None);
    assert!(requests.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_stand_in_speaks_teloxide() {
    use teloxide::payloads::setters::*;
    use teloxide::requests::Requester;
    use teloxide::types::{ChatId, MessageEntityKind, ParseMode, Recipient, UpdateKind};
    use teloxide::{ApiError, Bot, RequestError};

    let tg = TelegramStandIn::start().await;
    assert!(!tg.url().ends_with('/'));
    let api_url = reqwest::Url::parse(&tg.url()).unwrap();
    let bot = Bot::with_client(tg.token(), reqwest::Client::new()).set_api_url(api_url.clone());

    let me = bot.get_me().await.unwrap();
    assert_eq!(me.username(), "impressox_test_bot");
    assert!(me.user.is_bot);

    let sent = bot
        .send_message(ChatId(123456), "hi")
        .parse_mode(ParseMode::MarkdownV2)
        .await
        .unwrap();
    assert_eq!(sent.chat.id, ChatId(123456));
    assert!(sent.chat.is_private());
    assert_eq!(sent.text(), Some("hi"));
    let records = tg.sent();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].method, "sendmessage");
    assert_eq!(records[0].chat_id.as_deref(), Some("123456"));
    assert_eq!(records[0].parse_mode.as_deref(), Some("MarkdownV2"));
    assert_eq!(records[0].body["chat_id"], 123456);
    assert_eq!(records[0].status, 200);

    // Chat kinds follow the id, as teloxide's `ChatId` predicates expect.
    let group = bot.send_message(ChatId(-123), "g").await.unwrap();
    assert!(group.chat.is_group());
    let supergroup = bot
        .send_message(ChatId(-1_001_234_567_890), "s")
        .await
        .unwrap();
    assert!(supergroup.chat.is_supergroup());
    let channel = bot
        .send_message(Recipient::ChannelUsername("@alerts".into()), "c")
        .await
        .unwrap();
    assert!(channel.chat.is_channel());
    assert_eq!(tg.messages_to("@alerts"), ["c"]);
    assert_ne!(sent.id, group.id);

    // Scripted failures map to teloxide's errors; a chat's own queue goes first.
    tg.reply_next(None, [Reply::Forbidden]);
    tg.reply_next(Some("123456"), [Reply::RetryAfter(2)]);
    match bot.send_message(ChatId(123456), "x").await {
        Err(RequestError::RetryAfter(secs)) => assert_eq!(secs.seconds(), 2),
        other => panic!("expected RetryAfter, got {other:?}"),
    }
    match bot.send_message(ChatId(123456), "x").await {
        Err(RequestError::Api(ApiError::BotBlocked)) => {}
        other => panic!("expected BotBlocked, got {other:?}"),
    }
    tg.reply_next(None, [Reply::BadRequest("chat not found".into())]);
    match bot.send_message(ChatId(5), "x").await {
        Err(RequestError::Api(ApiError::ChatNotFound)) => {}
        other => panic!("expected ChatNotFound, got {other:?}"),
    }
    tg.set_default_reply(Some("777"), Reply::Forbidden);
    assert!(bot.send_message(ChatId(777), "x").await.is_err());
    assert!(bot.send_message(ChatId(778), "y").await.is_ok());
    tg.set_default_reply(Some("777"), Reply::Ok);
    assert_eq!(tg.messages_to("123456"), ["hi"]);
    let statuses: Vec<u16> = tg.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 403, 400, 403, 200]);
    assert!(tg.wait_for_sent(5, WAIT).await);

    // A wrong token is Telegram's 404, which teloxide reads as an invalid token.
    let stranger = Bot::with_client("1:wrong", reqwest::Client::new()).set_api_url(api_url.clone());
    match stranger.get_me().await {
        Err(RequestError::Api(ApiError::InvalidToken)) => {}
        other => panic!("expected InvalidToken, got {other:?}"),
    }

    // A long poll waits for the user's message and answers as soon as it is there.
    let poll = tokio::spawn({
        let bot = bot.clone();
        async move { bot.get_updates().timeout(20).await }
    });
    assert!(wait_for(|| tg.polling()).await);
    let update_id = tg.user_says(123456, "/watch BTCUSDT above 70000");
    let updates = timeout(WAIT, poll).await.unwrap().unwrap().unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].id.0, update_id);
    let UpdateKind::Message(message) = &updates[0].kind else {
        panic!("expected a message, got {:?}", updates[0].kind);
    };
    assert_eq!(message.chat.id, ChatId(123456));
    assert_eq!(message.text(), Some("/watch BTCUSDT above 70000"));
    assert_eq!(message.from.as_ref().map(|u| u.is_bot), Some(false));
    let entities = message.entities().unwrap();
    assert_eq!(entities[0].kind, MessageEntityKind::BotCommand);
    assert_eq!((entities[0].offset, entities[0].length), (0, 6));

    // Unconfirmed updates come again; the next offset confirms them.
    assert_eq!(bot.get_updates().await.unwrap().len(), 1);
    let offset = update_id as i32 + 1;
    assert!(bot.get_updates().offset(offset).await.unwrap().is_empty());
    assert_eq!(tg.pending_updates(), 0);

    // A second poller while one waits gets 409.
    let first = tokio::spawn({
        let bot = bot.clone();
        async move { bot.get_updates().offset(offset).timeout(1).await }
    });
    assert!(wait_for(|| tg.polling()).await);
    match bot.get_updates().offset(offset).await {
        Err(RequestError::Api(ApiError::TerminatedByOtherGetUpdates)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(tg.getupdates_conflicts(), 1);
    assert!(
        timeout(WAIT, first)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .is_empty()
    );
    assert!(!tg.polling());

    // Telegram's limits, when enforced: a private chat's second message within 1 s gets 429.
    tg.enforce_limits(true);
    bot.send_message(ChatId(555), "one").await.unwrap();
    match bot.send_message(ChatId(555), "two").await {
        Err(RequestError::RetryAfter(secs)) => assert_eq!(secs.seconds(), 1),
        other => panic!("expected RetryAfter, got {other:?}"),
    }
    assert_eq!(tg.max_in_window(Some("555"), Duration::from_secs(1)), 1);
    assert_eq!(tg.max_in_window(None, Duration::from_secs(60)), 6);
    tg.enforce_limits(false);

    // Strict MarkdownV2: an unescaped '.' is refused, an escaped one and a link URL are fine.
    tg.strict_markdown_v2(true);
    match bot
        .send_message(ChatId(600), "70123.40")
        .parse_mode(ParseMode::MarkdownV2)
        .await
    {
        Err(RequestError::Api(ApiError::CantParseEntities(text))) => {
            assert!(text.contains("Character '.' is reserved"), "{text}")
        }
        other => panic!("expected CantParseEntities, got {other:?}"),
    }
    bot.send_message(
        ChatId(601),
        r"70123\.40 [chart](https://example.com/a-b.c) `1.5`",
    )
    .parse_mode(ParseMode::MarkdownV2)
    .await
    .unwrap();
    match bot.send_message(ChatId(602), "x".repeat(4097)).await {
        Err(RequestError::Api(ApiError::MessageIsTooLong)) => {}
        other => panic!("expected MessageIsTooLong, got {other:?}"),
    }
    tg.strict_markdown_v2(false);

    // A hanging answer runs into the client's timeout.
    tg.reply_next(None, [Reply::Hang]);
    let impatient = Bot::with_client(
        tg.token(),
        reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    )
    .set_api_url(api_url);
    match impatient.send_message(ChatId(700), "x").await {
        Err(RequestError::Network(e)) => assert!(e.is_timeout(), "{e}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(tg.requests().last().unwrap().status, 0);

    // Forms work too (curl), and a 500 is Telegram's JSON (teloxide would wait 10 s for it).
    let client = reqwest::Client::new();
    let url = format!("{}/bot{}/sendMessage", tg.url(), tg.token());
    let answer: Value = client
        .post(&url)
        .form(&[("chat_id", "@curl_test"), ("text", "from curl")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["result"]["chat"]["type"], "channel");
    assert_eq!(tg.messages_to("@curl_test"), ["from curl"]);
    tg.reply_next(None, [Reply::ServerError]);
    let failed = client
        .post(&url)
        .json(&serde_json::json!({"chat_id": 1, "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 500);
    assert_eq!(
        failed.json::<Value>().await.unwrap(),
        serde_json::json!({"ok": false, "error_code": 500, "description": "Internal Server Error"})
    );
    assert_eq!(tg.count_by_text()["from curl"], 1);
}

#[test]
fn webhook_signature_matches_the_reference_vector() {
    let body = br#"{"id":"rule-42-1764300000","title":"BTCUSDT above 70000"}"#;
    let v1 = "65b03e7696322c1eece3407897746c4fe5c4d8b314efb547f4dd71a24db28589";
    assert_eq!(
        webhook_receiver::sign(b"whsec_test", 1_764_300_000, body),
        v1
    );
    let header = format!("t=1764300000,v1={v1}");
    assert_eq!(
        webhook_receiver::signature_header(b"whsec_test", 1_764_300_000, body),
        header
    );
    assert!(webhook_receiver::verify(
        b"whsec_test",
        &header,
        body,
        1_764_300_000 + 300
    ));
    assert!(!webhook_receiver::verify(
        b"whsec_test",
        &header,
        body,
        1_764_300_000 + 301
    ));
    assert!(!webhook_receiver::verify(
        b"whsec_test",
        &header,
        body,
        1_764_300_000 - 301
    ));
    assert!(!webhook_receiver::verify(
        b"other",
        &header,
        body,
        1_764_300_000
    ));
    assert!(!webhook_receiver::verify(
        b"whsec_test",
        &header,
        b"{}",
        1_764_300_000
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_receiver_verifies_signatures() {
    let hooks = WebhookReceiver::start("whsec_test").await;
    let client = reqwest::Client::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = br#"{"id":"n1","title":"BTCUSDT above 70000"}"#.to_vec();
    let post = |name: &str, signature: String, attempt: &str| {
        client
            .post(hooks.url(name))
            .header("content-type", "application/json")
            .header("x-impressox-delivery", "d-1")
            .header("x-impressox-attempt", attempt)
            .header("x-impressox-signature", signature)
            .body(body.clone())
            .send()
    };

    let good = webhook_receiver::signature_header(b"whsec_test", now, &body);
    assert_eq!(
        post("alice", good.clone(), "1").await.unwrap().status(),
        200
    );
    let stale = webhook_receiver::signature_header(b"whsec_test", now - 301, &body);
    assert_eq!(post("alice", stale, "2").await.unwrap().status(), 200);
    let forged = webhook_receiver::signature_header(b"wrong", now, &body);
    assert_eq!(
        post("bob", forged.clone(), "1").await.unwrap().status(),
        200
    );

    // Scripted answers: a hook's own queue, then the shared one, then the defaults.
    hooks.reply_next(None, [HookReply::RetryAfter(2)]);
    hooks.reply_next(Some("alice"), [HookReply::Gone]);
    assert_eq!(
        post("alice", good.clone(), "3").await.unwrap().status(),
        410
    );
    let limited = post("alice", good.clone(), "4").await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    hooks.set_default_reply(Some("bob"), HookReply::NoContent);
    assert_eq!(post("bob", good.clone(), "2").await.unwrap().status(), 204);
    assert_eq!(
        post("alice", good.clone(), "5").await.unwrap().status(),
        200
    );
    hooks.reject_bad_signatures(true);
    assert_eq!(post("carol", forged, "1").await.unwrap().status(), 401);

    assert!(hooks.wait_for(8, WAIT).await);
    let received = hooks.received();
    let summary: Vec<(&str, Option<u32>, bool, u16)> = received
        .iter()
        .map(|r| (r.name.as_str(), r.attempt, r.signature_ok, r.status))
        .collect();
    assert_eq!(
        summary,
        [
            ("alice", Some(1), true, 200),
            ("alice", Some(2), false, 200),
            ("bob", Some(1), false, 200),
            ("alice", Some(3), true, 410),
            ("alice", Some(4), true, 429),
            ("bob", Some(2), true, 204),
            ("alice", Some(5), true, 200),
            ("carol", Some(1), false, 401),
        ]
    );
    assert_eq!(received[0].delivery_id.as_deref(), Some("d-1"));
    assert_eq!(received[0].body["title"], "BTCUSDT above 70000");
    assert_eq!(received[0].raw_body, body);
    assert_eq!(received[0].signature.as_deref(), Some(good.as_str()));
    assert_eq!(
        received[0].content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(hooks.received_by("bob").len(), 2);

    // A hanging answer runs into the client's timeout.
    hooks.reject_bad_signatures(false);
    hooks.reply_next(None, [HookReply::Hang]);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let hung = impatient.post(hooks.url("dave")).body("{}").send().await;
    assert!(hung.unwrap_err().is_timeout());
    assert_eq!(hooks.received().last().unwrap().status, 0);

    // Dropped, the receiver is gone even for a pooled keep-alive connection.
    let url = hooks.url("alice");
    drop(hooks);
    assert!(client.post(url).body("{}").send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_sink_stores_and_refuses_on_demand() {
    use lettre::message::{Mailbox, MultiPart};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let smtp = SmtpServer::start();
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host())
        .port(smtp.port())
        .timeout(Some(Duration::from_secs(5)))
        .build();
    let email = |to: &str| {
        Message::builder()
            .from(
                "ImpressoX <alerts@impressox.test>"
                    .parse::<Mailbox>()
                    .unwrap(),
            )
            .to(to.parse::<Mailbox>().unwrap())
            .subject("BTCUSDT über 70000")
            .message_id(Some("<d-1@impressox>".into()))
            .multipart(MultiPart::alternative_plain_html(
                "BTCUSDT is 70123.40 — über 70000".to_owned(),
                "<p>BTCUSDT is <b>70123.40</b> — über 70000</p>".to_owned(),
            ))
            .unwrap()
    };

    mailer.send(email("a@example.com")).await.unwrap();
    assert!(smtp.wait_for(1, WAIT).await, "{}", smtp.log());
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let mail = &messages[0];
    assert_eq!(mail.message_id(), Some("<d-1@impressox>"));
    assert_eq!(mail.to(), Some("a@example.com"));
    assert_eq!(mail.subject(), Some("BTCUSDT über 70000"));
    assert!(
        mail.content_type()
            .unwrap()
            .starts_with("multipart/alternative"),
        "{}",
        mail.raw
    );
    assert_eq!(mail.rcpt_to(), ["a@example.com"]);
    let types: Vec<&str> = mail.parts.iter().map(|p| p.content_type.as_str()).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    assert_eq!(
        mail.text().map(str::trim_end),
        Some("BTCUSDT is 70123.40 — über 70000")
    );
    assert_eq!(
        mail.html().map(str::trim_end),
        Some("<p>BTCUSDT is <b>70123.40</b> — über 70000</p>")
    );
    assert!(mail.contains("<b>70123.40</b>"));

    let refused = mailer
        .send(email("reject-550@example.com"))
        .await
        .unwrap_err();
    assert!(refused.is_permanent(), "{refused}");
    let deferred = mailer
        .send(email("reject-451@example.com"))
        .await
        .unwrap_err();
    assert!(deferred.is_transient(), "{deferred}");
    // A stalled RCPT. lettre's own `timeout` bounds only the TCP connect under tokio
    // (lettre 0.11.23, `async_net.rs`), so the caller's timeout is what ends the wait. A send
    // cancelled that way puts its connection back in the pool mid-transaction (the pool's
    // `PooledConnection::drop` recycles it), where it would garble the next send: hence a
    // transport of its own, dropped afterwards.
    let stalling = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host())
        .port(smtp.port())
        .build();
    let stalled = timeout(
        Duration::from_millis(300),
        stalling.send(email("slow-2@example.com")),
    )
    .await;
    assert!(stalled.is_err(), "expected a stall, got {stalled:?}");
    drop(stalling);

    mailer.send(email("b@example.com")).await.unwrap();
    assert!(smtp.wait_for(2, WAIT).await, "{}", smtp.log());
    let to: Vec<Option<String>> = smtp
        .messages()
        .iter()
        .map(|m| m.to().map(str::to_owned))
        .collect();
    assert_eq!(
        to,
        [Some("a@example.com".into()), Some("b@example.com".into())]
    );

    // The reader undoes quoted-printable, base64 and folded, encoded headers too (other
    // senders and lettre with other bodies use them).
    let hand_made = "Subject: =?utf-8?q?caf=C3=A9?=\n =?utf-8?b?IGF1IGxhaXQ=?=\n\
                     Content-Type: multipart/alternative; boundary=\"b1\"\n\n\
                     --b1\nContent-Type: text/plain; charset=utf-8\n\
                     Content-Transfer-Encoding: quoted-printable\n\ncaf=C3=A9 =\nau lait\n\
                     --b1\nContent-Type: text/html; charset=utf-8\n\
                     Content-Transfer-Encoding: base64\n\nPHA+Y2Fmw6k8L3A+\n--b1--\n";
    std::fs::write(smtp.maildir().join("new/9999999999.M1P1Q1.test"), hand_made).unwrap();
    let mail = smtp.messages().pop().unwrap();
    assert_eq!(mail.subject(), Some("café au lait"));
    assert_eq!(mail.text().map(str::trim_end), Some("café au lait"));
    assert_eq!(mail.html().map(str::trim_end), Some("<p>café</p>"));
}

// ------------------------------------------------------------------ X, the proxy, Chromium

mod x {
    use std::time::Duration;

    use reqwest::StatusCode;
    use reqwest::header::{COOKIE, LOCATION, REFERER, SET_COOKIE};
    use serde_json::{Value, json};

    use crate::servers::chromium;
    use crate::servers::http_proxy::HttpProxy;
    use crate::servers::x_site::login::{self, totp_at};
    use crate::servers::x_site::timelines::{bottom_cursor, fixture, fixture_json};
    use crate::servers::x_site::{AccountState, Fail, XSite, cookie_header};

    const ANA: &str = "1453287640927653889";
    const A: &str = "1990714142880702470";
    const BOTTOM1: &str = "DAABCgABG6dxr4R__-YKAAIbn9BOpBaRFggAAwAAAAIAAA";
    const BOTTOM2: &str = "DAABCgABG6dxr4R__-YKAAIbnVvJkFqRYQgAAwAAAAIAAA";
    const BOTTOM3: &str = "DAABCgABG6dxr4R__-YKAAIbmu7wYBqRhAgAAwAAAAIAAA";

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    fn gql_url(site: &XSite, op: &str, variables: Value) -> String {
        let encoded: String = url_encode(&variables.to_string());
        format!("{}/i/api/graphql/QID/{op}?variables={encoded}", site.url())
    }

    fn url_encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    struct Answer {
        status: StatusCode,
        limits: (u32, u32, u64),
        body: String,
    }

    async fn get(request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let header = |name: &str| -> u64 {
            response.headers()[name]
                .to_str()
                .unwrap()
                .parse()
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let limits = (
            header("x-rate-limit-limit") as u32,
            header("x-rate-limit-remaining") as u32,
            header("x-rate-limit-reset"),
        );
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        Answer {
            status: response.status(),
            limits,
            body: response.text().await.unwrap(),
        }
    }

    fn error_code(body: &str) -> Option<u64> {
        serde_json::from_str::<Value>(body).unwrap()["errors"][0]["code"].as_u64()
    }

    fn tweet_entry_ids(body: &str) -> Vec<String> {
        let json: Value = serde_json::from_str(body).unwrap();
        json["data"]["user"]["result"]["timeline"]["timeline"]["instructions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["type"] == "TimelineAddEntries")
            .flat_map(|i| i["entries"].as_array().unwrap().iter())
            .map(|e| e["entryId"].as_str().unwrap().to_owned())
            .filter(|id| !id.starts_with("cursor-"))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn x_site_graphql_pages_chain_by_cursor_to_the_end() {
        let site = XSite::start().await;
        site.add_account("alice", "pw", "alice@example.com", None);
        let cookies = cookie_header(&site.issue_session("alice"));
        let http = client();
        let call = |op: &str, vars: Value, referer: Option<String>| {
            let mut request = http.get(gql_url(&site, op, vars)).header(COOKIE, &cookies);
            if let Some(referer) = referer {
                request = request.header(REFERER, referer);
            }
            get(request)
        };

        let user = call(
            "UserByScreenName",
            json!({"screen_name": "coinledger_ana"}),
            None,
        )
        .await;
        assert_eq!(user.status, 200);
        assert_eq!(user.body, fixture("user_by_screen_name.json"));
        assert_eq!((user.limits.0, user.limits.1), (500, 499));

        // Follow the bottom cursors as X's app does, until one repeats.
        let mut cursor: Option<String> = None;
        let mut bodies = Vec::new();
        loop {
            let mut vars = json!({"userId": ANA, "count": 20});
            if let Some(c) = &cursor {
                vars["cursor"] = json!(c);
            }
            let page = call("UserTweets", vars, None).await;
            assert_eq!(page.status, 200, "{}", page.body);
            let next = bottom_cursor(&serde_json::from_str(&page.body).unwrap());
            bodies.push(page.body);
            if next == cursor || bodies.len() > 10 {
                break;
            }
            cursor = next;
        }
        let expected: Vec<String> = [
            "user_tweets.json",
            "user_tweets_page2.json",
            "user_tweets_page3.json",
            "user_tweets_end.json",
        ]
        .into_iter()
        .map(fixture)
        .collect();
        assert_eq!(bodies, expected);
        let seen = site.graphql_requests("UserTweets");
        let cursors: Vec<Option<&str>> = seen.iter().map(|s| s.cursor.as_deref()).collect();
        assert_eq!(cursors, [None, Some(BOTTOM1), Some(BOTTOM2), Some(BOTTOM3)]);
        assert!(seen.iter().all(|s| s.account.as_deref() == Some("alice")));
        // Attributed through the user id the UserByScreenName answer carried.
        assert!(
            seen.iter()
                .all(|s| s.handle.as_deref() == Some("coinledger_ana"))
        );
        let limits: Vec<u32> = seen.iter().map(|s| s.status as u32).collect();
        assert_eq!(limits, [200, 200, 200, 200]);

        // A profile of its own, picked by the page's Referer; past its last page, X's end.
        let page3 = fixture_json("user_tweets_page3.json");
        site.set_timeline("solo", vec![page3.clone()]);
        let referer = Some(site.profile_url("solo"));
        let own = call("UserTweets", json!({"userId": ANA}), referer.clone()).await;
        assert_eq!(serde_json::from_str::<Value>(&own.body).unwrap(), page3);
        let end = call(
            "UserTweets",
            json!({"userId": ANA, "cursor": BOTTOM3}),
            referer,
        )
        .await;
        let end: Value = serde_json::from_str(&end.body).unwrap();
        assert_eq!(bottom_cursor(&end).as_deref(), Some(BOTTOM3));
        assert!(tweet_entry_ids(&end.to_string()).is_empty());

        // A tweet posted since: on top of page 1, the rest unchanged.
        let new_id = "1990800000000000001";
        site.prepend_tweet("coinledger_ana", new_id);
        let referer = Some(site.profile_url("coinledger_ana"));
        let page1 = call("UserTweets", json!({"userId": ANA}), referer.clone()).await;
        let ids = tweet_entry_ids(&page1.body);
        assert_eq!(ids[0], format!("tweet-{new_id}"));
        assert_eq!(ids[1..], tweet_entry_ids(&fixture("user_tweets.json"))[..]);
        let json: Value = serde_json::from_str(&page1.body).unwrap();
        let entry = &json["data"]["user"]["result"]["timeline"]["timeline"]["instructions"][2]["entries"]
            [0];
        assert_eq!(entry["sortIndex"], new_id);
        let tweet = &entry["content"]["itemContent"]["tweet_results"]["result"];
        assert_eq!(tweet["rest_id"], new_id);
        assert_eq!(tweet["legacy"]["id_str"], new_id);
        assert!(!entry.to_string().contains(A));
        // Page 2 still follows page 1's bottom cursor.
        let page2 = call(
            "UserTweets",
            json!({"userId": ANA, "cursor": BOTTOM1}),
            referer,
        )
        .await;
        assert_eq!(page2.body, fixture("user_tweets_page2.json"));

        // The endless timeline: page k's ids are page 1's shifted down by k × 10⁶.
        site.set_endless_timeline("bench");
        let referer = Some(site.profile_url("bench"));
        let first = call("UserTweets", json!({"userId": ANA}), referer.clone()).await;
        assert_eq!(
            bottom_cursor(&serde_json::from_str(&first.body).unwrap()).as_deref(),
            Some("bench-1")
        );
        assert_eq!(
            tweet_entry_ids(&first.body),
            tweet_entry_ids(&fixture("user_tweets.json"))
        );
        let third = call(
            "UserTweets",
            json!({"userId": ANA, "cursor": "bench-3"}),
            referer,
        )
        .await;
        let json: Value = serde_json::from_str(&third.body).unwrap();
        assert_eq!(bottom_cursor(&json).as_deref(), Some("bench-4"));
        let shifted = (A.parse::<u64>().unwrap() - 3_000_000).to_string();
        assert!(tweet_entry_ids(&third.body).contains(&format!("tweet-{shifted}")));
        assert!(!third.body.contains(A));
        // Users keep their ids.
        assert!(third.body.contains(ANA));

        // Search: page 1, the scrolled page (cursors replaced in place), then X's end.
        let search = |cursor: Option<&str>| {
            let mut vars = json!({"rawQuery": "$BTC", "count": 20, "product": "Latest"});
            if let Some(c) = cursor {
                vars["cursor"] = json!(c);
            }
            call("SearchTimeline", vars, None)
        };
        let s1 = search(None).await;
        assert_eq!(s1.body, fixture("search_timeline.json"));
        assert_eq!(s1.limits.0, 50);
        let c1 = bottom_cursor(&serde_json::from_str(&s1.body).unwrap()).unwrap();
        let s2 = search(Some(&c1)).await;
        assert_eq!(s2.body, fixture("search_timeline_page2.json"));
        let c2 = bottom_cursor(&serde_json::from_str(&s2.body).unwrap()).unwrap();
        assert_ne!(c1, c2);
        let s3: Value = serde_json::from_str(&search(Some(&c2)).await.body).unwrap();
        assert_eq!(bottom_cursor(&s3), Some(c2));
        assert_eq!(
            site.graphql_requests("SearchTimeline")[0].search.as_deref(),
            Some("$BTC")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn x_site_budgets_run_out_with_429_and_refill_after_reset() {
        let site = XSite::start().await;
        site.add_account("alice", "pw", "a@example.com", None);
        site.add_account("bob", "pw", "b@example.com", None);
        let alice = cookie_header(&site.issue_session("alice"));
        let bob = cookie_header(&site.issue_session("bob"));
        let http = client();
        let tweets = |cookies: &str| {
            get(http
                .get(gql_url(&site, "UserTweets", json!({"userId": ANA})))
                .header(COOKIE, cookies))
        };

        site.set_account_budget("alice", "UserTweets", 500, 2, 2);
        let first = tweets(&alice).await;
        let second = tweets(&alice).await;
        let third = tweets(&alice).await;
        assert_eq!((first.status, first.limits.1), (StatusCode::OK, 1));
        assert_eq!((second.status, second.limits.1), (StatusCode::OK, 0));
        assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!((third.limits.0, third.limits.1), (500, 0));
        assert_eq!(third.body, fixture("error_rate_limit.json"));
        assert_eq!(error_code(&third.body), Some(88));
        let reset = third.limits.2;
        assert_eq!(first.limits.2, reset);
        let now = login::unix_now();
        assert!(reset > now && reset <= now + 3, "reset {reset}, now {now}");
        // Bob's budget is his own.
        let other = tweets(&bob).await;
        assert_eq!(
            (other.status, other.limits.0, other.limits.1),
            (StatusCode::OK, 500, 499)
        );

        // After the reset the budget is full again, for a new 15-minute window.
        while login::unix_now() < reset {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let refilled = tweets(&alice).await;
        assert_eq!((refilled.status, refilled.limits.1), (StatusCode::OK, 499));
        assert!(refilled.limits.2 >= reset + 899);

        // One-shot failures, each counted against the budget.
        site.fail_next("UserTweets", Fail::Code88);
        site.fail_next("UserTweets", Fail::Status(429));
        site.fail_next("UserTweets", Fail::Status(500));
        let code88 = tweets(&alice).await;
        assert_eq!((code88.status, code88.limits.1), (StatusCode::OK, 498));
        assert_eq!(error_code(&code88.body), Some(88));
        let limited = tweets(&alice).await;
        assert_eq!(
            (limited.status, limited.limits.1),
            (StatusCode::TOO_MANY_REQUESTS, 0)
        );
        let broken = tweets(&alice).await;
        assert_eq!(broken.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(tweets(&alice).await.limits.1, 495);
        assert_eq!(site.budget("alice", "UserTweets").1, 495);

        // What X says to locked, banned and anonymous callers.
        site.set_account_state("bob", AccountState::Locked);
        let locked = tweets(&bob).await;
        assert_eq!(locked.status, StatusCode::FORBIDDEN);
        assert_eq!(error_code(&locked.body), Some(326));
        site.set_account_state("bob", AccountState::Banned);
        let banned = tweets(&bob).await;
        assert_eq!(banned.status, StatusCode::FORBIDDEN);
        assert_eq!(error_code(&banned.body), Some(64));
        let anonymous = get(http.get(gql_url(&site, "UserTweets", json!({})))).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(&anonymous.body), Some(32));
        assert_eq!(anonymous.limits.1, 500);

        // set_budget covers every account, each with its own count.
        site.set_budget("SearchTimeline", 50, 1, 60);
        site.set_account_state("bob", AccountState::Normal);
        for cookies in [&alice, &bob] {
            let search = || {
                get(http
                    .get(gql_url(&site, "SearchTimeline", json!({"rawQuery": "x"})))
                    .header(COOKIE, cookies))
            };
            assert_eq!(search().await.status, StatusCode::OK);
            assert_eq!(search().await.status, StatusCode::TOO_MANY_REQUESTS);
        }
        assert_eq!(site.max_in_flight("alice"), 1);
    }

    fn set_cookies(response: &reqwest::Response) -> Vec<String> {
        response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// Posts one login step; returns the status, the answer and the Set-Cookie headers.
    async fn step(
        http: &reqwest::Client,
        site: &XSite,
        token: &Option<String>,
        step: &str,
        value: &str,
    ) -> (StatusCode, Value, Vec<String>) {
        let response = http
            .post(format!("{}/i/api/1.1/onboarding/task.json", site.url()))
            .json(&json!({"flow_token": token, "step": step, "value": value}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let cookies = set_cookies(&response);
        (status, response.json().await.unwrap(), cookies)
    }

    #[test]
    fn totp_matches_rfc6238_sha1_vectors() {
        // RFC 6238 Appendix B, SHA-1: the secret is ASCII "12345678901234567890".
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        for (t, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(
                login::hotp(secret, t / 30, 8).as_deref(),
                Some(code),
                "T={t}"
            );
        }
        assert_eq!(totp_at(secret, 59).as_deref(), Some("287082"));
        // Spaces, padding and lower case as authenticator apps show secrets.
        assert_eq!(
            totp_at("gezd gnbv gy3t qojq gezd gnbv gy3t qojq", 59).as_deref(),
            Some("287082")
        );
        assert_eq!(totp_at("not base32!", 59), None);
        assert!(login::totp_accepts(secret, "287082", 59 + 30));
        assert!(!login::totp_accepts(secret, "287082", 59 + 60));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn x_site_login_steps_with_challenge_totp_and_wrong_values() {
        const SECRET: &str = "JBSWY3DPEHPK3PXP";
        let site = XSite::start().await;
        site.add_account("alice", "right horse", "alice@example.com", None);
        site.add_account("bob", "b:pass", "bob@example.com", Some(SECRET));
        site.set_account_state("bob", AccountState::Challenge);
        let http = client();

        let page = http
            .get(format!("{}/i/flow/login", site.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        for selector in [
            "autocomplete: 'username'",
            "name: 'password'",
            "'data-testid': 'ocfEnterTextTextInput'",
            "inputmode: 'numeric'",
            "'role', 'alert'",
            "location.href = '/home'",
        ] {
            assert!(html.contains(selector), "login page lacks {selector}");
        }

        // Unknown user, then alice: a wrong password stays at the password step.
        let none = None;
        let (status, answer, _) = step(&http, &site, &none, "username", "mallory").await;
        assert_eq!(status, 400);
        assert_eq!(answer["next"], "error");
        let (_, answer, _) = step(&http, &site, &none, "username", "Alice").await;
        assert_eq!(answer["next"], "password");
        let token = answer["flow_token"].as_str().map(str::to_owned);
        let (status, answer, cookies) = step(&http, &site, &token, "password", "wrong").await;
        assert_eq!((status.as_u16(), &answer["next"]), (400, &json!("error")));
        assert_eq!(answer["message"], "Wrong password!");
        assert!(cookies.is_empty());
        let (status, answer, cookies) = step(&http, &site, &token, "password", "right horse").await;
        assert_eq!((status.as_u16(), &answer["next"]), (200, &json!("done")));
        assert_eq!(cookies.len(), 2, "{cookies:?}");
        let auth = cookies
            .iter()
            .find(|c| c.starts_with("auth_token="))
            .unwrap();
        let ct0 = cookies.iter().find(|c| c.starts_with("ct0=")).unwrap();
        assert!(auth.contains("; Path=/") && auth.contains("HttpOnly") && !auth.contains("Secure"));
        assert!(ct0.contains("; Path=/") && !ct0.contains("HttpOnly") && !ct0.contains("Secure"));
        let jar: String = cookies
            .iter()
            .map(|c| c.split(';').next().unwrap())
            .collect::<Vec<_>>()
            .join("; ");
        let profile = http
            .get(site.profile_url("coinledger_ana"))
            .header(COOKIE, &jar)
            .send()
            .await
            .unwrap();
        assert_eq!(profile.status(), 200);
        assert!(profile.text().await.unwrap().contains("startTimeline("));

        // Bob: the email challenge, the password, then a TOTP code.
        let (_, answer, _) = step(&http, &site, &none, "username", "bob").await;
        assert_eq!(answer["next"], "challenge");
        let token = answer["flow_token"].as_str().map(str::to_owned);
        // A step out of order is refused.
        let (status, _, _) = step(&http, &site, &token, "password", "b:pass").await;
        assert_eq!(status, 400);
        let (_, answer, _) = step(&http, &site, &token, "challenge", "nobody@example.com").await;
        assert_eq!(answer["next"], "error");
        let (_, answer, _) = step(&http, &site, &token, "challenge", "BOB@example.com").await;
        assert_eq!(answer["next"], "password");
        let (_, answer, _) = step(&http, &site, &token, "password", "b:pass").await;
        assert_eq!(answer["next"], "code");
        let now = login::unix_now();
        let stale = totp_at(SECRET, now - 60).unwrap();
        let (_, answer, cookies) = step(&http, &site, &token, "code", &stale).await;
        assert_eq!(answer["next"], "error");
        assert!(cookies.is_empty());
        // The previous step's code is still good.
        let previous = totp_at(SECRET, now - 30).unwrap();
        let (_, answer, cookies) = step(&http, &site, &token, "code", &previous).await;
        assert_eq!(answer["next"], "done");
        assert_eq!(cookies.len(), 2);

        let logins: Vec<(String, Option<String>, u16)> = site
            .requests()
            .iter()
            .filter_map(|s| {
                s.login_step
                    .clone()
                    .map(|step| (step, s.account.clone(), s.status))
            })
            .collect();
        assert_eq!(logins.len(), 11);
        assert_eq!(logins[0], ("username".into(), None, 400));
        assert_eq!(logins[3], ("password".into(), Some("alice".into()), 200));
        assert_eq!(logins[10], ("code".into(), Some("bob".into()), 200));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn x_site_pages_redirect_by_session_and_account_state() {
        let site = XSite::start().await;
        site.add_account("alice", "pw", "a@example.com", None);
        let session = cookie_header(&site.issue_session("alice"));
        let http = client();
        let open = |cookies: Option<&str>, path: &str| {
            let mut request = http.get(format!("{}{path}", site.url()));
            if let Some(cookies) = cookies {
                request = request.header(COOKIE, cookies);
            }
            async move {
                let response = request.send().await.unwrap();
                let location = response
                    .headers()
                    .get(LOCATION)
                    .map(|l| l.to_str().unwrap().to_owned());
                (response.status().as_u16(), location)
            }
        };

        assert_eq!(
            open(None, "/coinledger_ana").await,
            (302, Some("/i/flow/login".into()))
        );
        let stranger = "auth_token=0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            open(Some(stranger), "/coinledger_ana").await,
            (302, Some("/i/flow/login".into()))
        );
        assert_eq!(open(Some(&session), "/coinledger_ana").await, (200, None));
        assert_eq!(
            open(Some(&session), "/search?q=%24BTC&f=live").await,
            (200, None)
        );
        site.set_account_state("alice", AccountState::Banned);
        assert_eq!(
            open(Some(&session), "/coinledger_ana").await,
            (302, Some("/login".into()))
        );
        assert_eq!(open(Some(&session), "/login").await, (200, None));
        site.set_account_state("alice", AccountState::Locked);
        assert_eq!(
            open(Some(&session), "/coinledger_ana").await,
            (302, Some("/account/access".into()))
        );
        assert_eq!(open(Some(&session), "/account/access").await, (200, None));
        site.set_account_state("alice", AccountState::Challenge);
        assert_eq!(open(Some(&session), "/coinledger_ana").await, (200, None));
        assert_eq!(open(None, "/favicon.ico").await, (404, None));
        assert_eq!(open(None, "/not-a-handle").await, (404, None));
        site.open_profiles(true);
        assert_eq!(open(None, "/coinledger_ana").await, (200, None));

        let seen = site.requests();
        let accounts: Vec<Option<&str>> = seen.iter().map(|s| s.account.as_deref()).collect();
        assert_eq!(accounts[..3], [None, None, Some("alice")]);
        assert_eq!(seen[0].handle.as_deref(), Some("coinledger_ana"));
        assert_eq!(seen[3].search.as_deref(), Some("$BTC"));
        assert!(
            seen.iter()
                .all(|s| s.method == "GET" && s.via_proxy.is_none())
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn http_proxy_forwards_counts_and_demands_credentials() {
        let site = XSite::start().await;
        site.add_account("alice", "pw", "a@example.com", None);
        let session = cookie_header(&site.issue_session("alice"));
        let mut proxy = HttpProxy::start("p1").await;
        let proxy_url = proxy.url();
        let via = |auth: Option<(&str, &str)>| {
            let mut p = reqwest::Proxy::all(&proxy_url).unwrap();
            if let Some((user, pass)) = auth {
                p = p.basic_auth(user, pass);
            }
            reqwest::Client::builder()
                .proxy(p)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
        };
        let host = site.addr().to_string();

        // Forwarded with the cookie, marked, and a redirect is passed back, not followed.
        let http = via(None);
        let page = http
            .get(site.profile_url("coinledger_ana"))
            .header(COOKIE, &session)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("article"));
        let redirect = http
            .get(site.profile_url("coinledger_ana"))
            .send()
            .await
            .unwrap();
        assert_eq!(redirect.status(), 302);
        assert_eq!(redirect.headers()[LOCATION], "/i/flow/login");
        // A POST body and X's rate-limit headers make it through.
        let answer = http
            .post(format!("{}/i/api/1.1/onboarding/task.json", site.url()))
            .json(&json!({"step": "username", "value": "alice"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.json::<Value>().await.unwrap()["next"], "password");
        let api = get(http
            .get(gql_url(&site, "UserTweets", json!({"userId": ANA})))
            .header(COOKIE, &session))
        .await;
        assert_eq!((api.status, api.limits.1), (StatusCode::OK, 499));
        let seen = site.requests();
        assert_eq!(seen.len(), 4);
        assert!(seen.iter().all(|s| s.via_proxy.as_deref() == Some("p1")));
        assert_eq!(seen[0].account.as_deref(), Some("alice"));
        assert_eq!(proxy.count_for(&host), 4);
        assert_eq!(proxy.count_for("127.0.0.1"), 4);
        assert_eq!(proxy.requests()[0].path, "/coinledger_ana");

        // CONNECT (https) and other hosts are refused and counted as foreign.
        assert!(http.get("https://www.google.com/").send().await.is_err());
        let elsewhere = http.get("http://example.invalid/").send().await.unwrap();
        assert_eq!(elsewhere.status(), 403);
        assert_eq!(proxy.foreign(), 2);
        assert_eq!(proxy.requests()[4].method, "CONNECT");
        assert_eq!(proxy.requests()[4].host, "www.google.com:443");

        // Credentials, once demanded: 407 and a Basic challenge until they match.
        proxy.require_credentials("user", "s3cret");
        let refused = http
            .get(format!("{}/home", site.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 407);
        assert_eq!(
            refused.headers()["proxy-authenticate"],
            "Basic realm=\"standin\""
        );
        let wrong = via(Some(("user", "nope")))
            .get(format!("{}/home", site.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 407);
        let right = via(Some(("user", "s3cret")))
            .get(format!("{}/home", site.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200);
        let last = proxy.requests().pop().unwrap();
        assert!(last.had_auth && last.status == 200);
        assert!(!proxy.requests()[6].had_auth);
        assert_eq!(proxy.count_for(&host), 5);
        assert_eq!(site.requests().len(), 5);

        // Stopped: connections are refused, even for a client that had one open.
        proxy.stop();
        let down = http.get(format!("{}/home", site.url())).send().await;
        assert!(down.is_err(), "{down:?}");
        let fresh = via(None).get(format!("{}/home", site.url())).send().await;
        assert!(fresh.unwrap_err().is_connect());
        assert_eq!(site.requests().len(), 5);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn x_site_profile_renders_in_chromium() {
        let _permit = chromium::browser_permit().await;
        let site = XSite::start().await;
        // --dump-dom cannot be handed cookies.
        site.open_profiles(true);
        let dom =
            chromium::dump_dom(&site.profile_url("coinledger_ana"), Duration::from_secs(5)).await;
        // Page 1: the pinned note tweet, A, B, promoted D, F, G, P1 and H in their module, I.
        let articles = dom.matches("<article data-testid=\"tweet\"").count();
        assert_eq!(articles, 9, "{dom}");
        assert_eq!(dom.matches("<div data-testid=\"tombstone\"").count(), 1);
        assert!(dom.contains("data-testid=\"tweetText\""));
        assert!(dom.contains(&format!("href=\"/coinledger_ana/status/{A}\"")));
        assert!(dom.contains("datetime=\"2025-11-18T09:30:12.000Z\""));
        assert!(dom.contains("Ana Ribeiro @coinledger_ana"));

        // The login form's first step renders too.
        let login = chromium::dump_dom(
            &format!("{}/i/flow/login", site.url()),
            Duration::from_secs(2),
        )
        .await;
        assert!(login.contains("data-step=\"username\""), "{login}");
        assert!(login.contains("autocomplete=\"username\""), "{login}");
        let ops: Vec<(Option<String>, Option<String>, Option<String>)> = site
            .requests()
            .into_iter()
            .filter(|s| s.op.is_some())
            .map(|s| (s.op, s.handle, s.cursor))
            .collect();
        assert_eq!(
            ops,
            [
                (
                    Some("UserByScreenName".into()),
                    Some("coinledger_ana".into()),
                    None
                ),
                (
                    Some("UserTweets".into()),
                    Some("coinledger_ana".into()),
                    None
                ),
            ]
        );
    }
}
