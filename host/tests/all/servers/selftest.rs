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
