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
