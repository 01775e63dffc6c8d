//! Web Push benchmark (issue 19): messages per second from the `webpush` channel to a
//! local push service, each one an ECDH, two HKDFs and an AES-GCM encryption (RFC 8291)
//! plus the VAPID header, side by side with Node's `web-push` 3.6.7 sending the same
//! payloads to the same service in the same run (`bench/peers/webpush/webpush_sender.mjs`).
//!
//! The push service: 100 browsers' subscriptions on a loopback HTTP server (its own
//! runtime); it answers 201 and checks one message in 50 in full (the VAPID JWT verifies,
//! the body decrypts with the browser's key to the payload that was sent), so neither side
//! can win by sending something a browser would refuse. Payloads: 100 alerts rendered by the
//! `webpush-payload` formatter's own code.
//!
//! Ours: `WebPush::send` on delivery records, 64 in flight (as the notify worker's senders,
//! on the same guarded HTTP client). The peer: 64 in flight on one Node event loop.
//!
//! Run: `cargo bench -p impressox-host --bench webpush` (`BENCH_WEBPUSH=N`, default 20000
//! messages per side). Node's web-push is installed on first use into
//! `~/.cache/impressox/bench-npm-webpush` from the committed lock. Figures go to
//! docs/BENCHMARKS.md.

#[path = "common/npm_peer.rs"]
mod npm_peer;

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use impressox_host::notify::channels::Channel;
use impressox_host::notify::channels::Secrets;
use impressox_host::notify::channels::webpush::WebPush;
use impressox_host::notify::config::WebPushConfig;
use impressox_host::notify::record::{Delivery, NewDelivery, ParseMode, Part, SendOutcome};
use impressox_host::notify::request::Priority;
use impressox_host::notify::webpush::{Vapid, encode_b64url};
use impressox_plugin_sdk::types::{Notification, Priority as NPriority};
use serde_json::{Value, json};
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256PublicKeyLike, ES256KeyPair, ES256PublicKey,
};
use web_push_native::jwt_simple::claims::NoCustomClaims;
use web_push_native::p256;

/// The same allocator as the `impressox` binary (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BROWSERS: usize = 100;
const IN_FLIGHT: usize = 64;
const CHECK_EVERY: u64 = 50;

struct Sink {
    browsers: HashMap<String, (p256::SecretKey, [u8; 16])>,
    server_key: ES256PublicKey,
    origin: String,
    accepted: AtomicU64,
    checked: AtomicU64,
    refused: AtomicU64,
}

/// Answer 201; check one in [`CHECK_EVERY`] in full.
async fn push(
    State(sink): State<Arc<Sink>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let n = sink.accepted.fetch_add(1, Ordering::Relaxed);
    if n % CHECK_EVERY == 0 {
        if let Err(e) = check(&sink, &id, &headers, &body) {
            eprintln!("push service refused a message: {e}");
            sink.refused.fetch_add(1, Ordering::Relaxed);
            return StatusCode::BAD_REQUEST;
        }
        sink.checked.fetch_add(1, Ordering::Relaxed);
    }
    StatusCode::CREATED
}

fn check(sink: &Sink, id: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization")?;
    let token = auth
        .strip_prefix("vapid t=")
        .and_then(|r| r.split(',').next())
        .ok_or("not a vapid header")?;
    let options = web_push_native::jwt_simple::common::VerificationOptions {
        allowed_audiences: Some([sink.origin.clone()].into()),
        ..Default::default()
    };
    sink.server_key
        .verify_token::<NoCustomClaims>(token, Some(options))
        .map_err(|e| format!("JWT: {e}"))?;
    let (secret, auth) = sink.browsers.get(id).ok_or("unknown subscription")?;
    let plain = web_push_native::decrypt(
        body.to_vec(),
        secret,
        &web_push_native::Auth::clone_from_slice(auth),
    )
    .map_err(|e| format!("decrypt: {e}"))?;
    serde_json::from_slice::<Value>(&plain).map_err(|e| format!("payload: {e}"))?;
    Ok(())
}

/// Start the push service on its own runtime; its origin.
fn start_sink(sink_fn: impl FnOnce(String) -> Arc<Sink>) -> (String, Arc<Sink>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let sink = sink_fn(origin.clone());
    let app = Router::new()
        .route("/push/{id}", post(push))
        .with_state(sink.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (origin, sink)
}

fn repo_root() -> PathBuf {
    FsPath::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn payloads() -> Vec<String> {
    (0..100)
        .map(|i| {
            let n = Notification {
                id: format!("rule-r{i}-1764300000"),
                user_id: format!("u{i}"),
                kind: "price_alert".into(),
                priority: if i % 10 == 0 {
                    NPriority::Critical
                } else {
                    NPriority::Normal
                },
                title: format!("BTCUSDT above {}", 70_000 + i * 100),
                body: format!("BTCUSDT is {}.40 (Binance)", 70_000 + i * 100 + 23),
                data_json: json!({"rule_id": format!("r{i}"), "symbol": "BTCUSDT"}).to_string(),
                created_at_ms: 1_764_300_000_000,
            };
            webpush_payload::payload(&n, webpush_payload::MAX_PAYLOAD)
        })
        .collect()
}

fn ours(subs: &[Value], payloads: &[String], private: &str, n: usize) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cfg = WebPushConfig {
            private_key_env: "BENCH_VAPID".into(),
            allow_private_addresses: true,
            ..Default::default()
        };
        let secrets = Secrets([("BENCH_VAPID".to_string(), private.to_string())].into());
        let channel = Arc::new(WebPush::new(&cfg, &secrets).unwrap());
        let records: Arc<Vec<(Delivery, Part)>> = Arc::new(
            (0..subs.len().max(payloads.len()))
                .map(|i| {
                    let target = json!({"endpoint": subs[i % subs.len()]["endpoint"],
                        "keys": subs[i % subs.len()]["keys"]})
                    .to_string();
                    let d = Delivery::new(
                        NewDelivery {
                            notification_id: format!("n{i}"),
                            user_id: format!("u{i}"),
                            kind: "price_alert".into(),
                            priority: Priority::Normal,
                            channel: "webpush".into(),
                            target,
                            request_json: json!({"user_id": format!("u{i}"), "data": {"rule_id": format!("r{i}")}}).to_string(),
                        },
                        0,
                    );
                    let part = Part {
                        text: payloads[i % payloads.len()].clone(),
                        subject: None,
                        html: None,
                        parse_mode: ParseMode::Plain,
                    };
                    (d, part)
                })
                .collect(),
        );
        // Warm the connection pool and the token cache.
        let (d, p) = &records[0];
        assert_eq!(channel.send(d, p, 0).await, SendOutcome::Sent);
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let lanes: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let (channel, records, next) = (channel.clone(), records.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        if i >= n {
                            return;
                        }
                        let (d, p) = &records[i % records.len()];
                        let out = channel.send(d, p, 0).await;
                        assert_eq!(out, SendOutcome::Sent, "message {i}");
                    }
                })
            })
            .collect();
        for l in lanes {
            l.await.unwrap();
        }
        start.elapsed().as_secs_f64()
    })
}

/// Node's web-push; (seconds, version), or None when Node or npm is missing.
fn node_peer(
    subs: &[Value],
    payloads: &[String],
    private: &str,
    public: &str,
    n: usize,
) -> Option<(f64, String)> {
    let dir = npm_peer::install(
        &repo_root().join("bench/peers/webpush"),
        "bench-npm-webpush",
        &["package.json", "package-lock.json", "webpush_sender.mjs"],
        "web-push",
    )?;
    let job = dir.join("job.json");
    std::fs::write(
        &job,
        json!({"subscriptions": subs, "payloads": payloads, "n": n, "concurrency": IN_FLIGHT,
               "vapid": {"subject": "mailto:bench@impressox.test", "publicKey": public, "privateKey": private}})
        .to_string(),
    )
    .ok()?;
    let out = Command::new("node")
        .arg(dir.join("webpush_sender.mjs"))
        .arg(&job)
        .current_dir(&dir)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("peer failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let v: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last()?).ok()?;
    assert_eq!(v["failed"], 0, "the peer's messages were refused: {v}");
    Some((v["seconds"].as_f64()?, v["web_push"].as_str()?.to_string()))
}

fn main() {
    let n: usize = std::env::var("BENCH_WEBPUSH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let (private, public) = Vapid::generate();
    let server_key = ES256PublicKey::from_bytes(
        &data_encoding::BASE64URL_NOPAD
            .decode(public.as_bytes())
            .unwrap(),
    )
    .unwrap();
    let mut browsers = HashMap::new();
    let mut keys = Vec::new();
    for i in 0..BROWSERS {
        let secret = p256::SecretKey::from_slice(&ES256KeyPair::generate().to_bytes()).unwrap();
        let mut auth = [0u8; 16];
        auth.copy_from_slice(&ES256KeyPair::generate().to_bytes()[..16]);
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
            &secret.public_key(),
            false,
        );
        keys.push((
            format!("b{i}"),
            encode_b64url(point.as_bytes()),
            encode_b64url(&auth),
        ));
        browsers.insert(format!("b{i}"), (secret, auth));
    }
    let (origin, sink) = start_sink(|origin| {
        Arc::new(Sink {
            browsers,
            server_key,
            origin,
            accepted: AtomicU64::new(0),
            checked: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    });
    let subs: Vec<Value> = keys
        .iter()
        .map(|(id, p256dh, auth)| json!({"endpoint": format!("{origin}/push/{id}"), "expirationTime": null, "keys": {"p256dh": p256dh, "auth": auth}}))
        .collect();
    let payloads = payloads();
    let avg = payloads.iter().map(String::len).sum::<usize>() / payloads.len();
    println!(
        "web push to a loopback push service, {n} messages per side, {BROWSERS} browsers, payloads of {avg} bytes on average, {IN_FLIGHT} in flight"
    );
    println!(
        "{:<44} {:>10} {:>12} {:>8}",
        "run", "seconds", "messages/s", "vs ours"
    );
    let ours_s = ours(&subs, &payloads, &private, n);
    println!(
        "{:<44} {:>10.3} {:>12.0} {:>8}",
        "ours (webpush channel)",
        ours_s,
        n as f64 / ours_s,
        "1.00x"
    );
    match node_peer(&subs, &payloads, &private, &public, n) {
        Some((s, version)) => println!(
            "{:<44} {:>10.3} {:>12.0} {:>7.2}x",
            format!("Node web-push {version}"),
            s,
            n as f64 / s,
            s / ours_s
        ),
        None => println!("Node web-push: not run"),
    }
    let refused = sink.refused.load(Ordering::Relaxed);
    println!(
        "push service: {} accepted, {} checked in full (VAPID + decrypt), {refused} refused",
        sink.accepted.load(Ordering::Relaxed),
        sink.checked.load(Ordering::Relaxed)
    );
    assert_eq!(refused, 0);
}
