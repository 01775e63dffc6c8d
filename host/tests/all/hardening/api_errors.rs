//! Issue 12, item 13: when a store fails, the API answers a stable code and message and
//! keeps what the server or driver said (addresses, ports, OS errors) in the log.

use std::time::Duration;

use impressox_host::api::{STORE_UNAVAILABLE, Services};
use impressox_host::storage::StoreLimits;
use serde_json::{Value, json};

use crate::harness::{host_with, serve_api};
use crate::servers::mongo::MongoServer;
use crate::servers::redis::RedisServer;

/// Words of the servers' and drivers' own error texts that must not reach a caller.
const LEAKS: &[&str] = &[
    "refused",
    "os error",
    "127.0.0.1",
    "connect",
    "io error",
    "server selection",
    "Kind",
];

fn assert_no_leak(body: &Value, ports: &[u16]) {
    let text = body.to_string();
    for word in LEAKS {
        assert!(
            !text.to_lowercase().contains(&word.to_lowercase()),
            "{word:?} leaked: {text}"
        );
    }
    for port in ports {
        assert!(
            !text.contains(&port.to_string()),
            "port {port} leaked: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_and_store_errors_answer_a_stable_message_without_the_servers_text() {
    let mut redis = RedisServer::start();
    let mut mongo = MongoServer::start();
    let host = host_with(&format!(
        "[storage]\nbackend = \"redis\"\nredis_url = \"{}\"\n\
         [documents]\nbackend = \"mongodb\"\nmongodb_url = \"{}\"\ndatabase = \"api_errors\"\n",
        redis.url(),
        mongo.url()
    ));
    host.load(test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm");
    let store = impressox_host::storage::open(&host.config, StoreLimits::default())
        .await
        .unwrap();
    let docs = impressox_host::documents::open(&host.config).await.unwrap();
    let (api, server) = serve_api(
        host.runtime.clone(),
        Services {
            store: Some(store),
            docs: Some(docs),
            ..Default::default()
        },
    )
    .await;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let get = |path: &str| {
        let req = http.get(format!("{api}{path}"));
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(get("/readyz").await.0, 200);
    let mongo_port = reqwest::Url::parse(&mongo.url()).unwrap().port().unwrap();
    let ports = [redis.port(), mongo_port];

    // The document store goes away: readiness names the backend, not what the driver said.
    mongo.stop();
    let (status, body) = get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        json!({"error": {"code": "documents_unavailable", "message": "the mongodb document store is not reachable"}})
    );
    let (status, body) = get("/api/v1/users/u1/preferences").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable");
    assert_eq!(body["error"]["message"], STORE_UNAVAILABLE);
    assert_no_leak(&body, &ports);

    // Redis goes away too: the same for the store.
    redis.stop();
    let (status, body) = get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        json!({"error": {"code": "store_unavailable", "message": "the redis store is not reachable"}})
    );
    // Any request that needs the store: the one stable message.
    for path in ["/api/v1/rules", "/api/v1/prices/BTCUSDT"] {
        let (status, body) = get(path).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{path}");
        assert_eq!(body["error"]["message"], STORE_UNAVAILABLE, "{path}");
        assert_no_leak(&body, &ports);
    }
    let r = http
        .post(format!("{api}/api/v1/rules"))
        .json(&json!({"user_id": "u1", "symbol": "BTCUSDT", "condition": {"op": "above", "value": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["message"], STORE_UNAVAILABLE);
    assert_no_leak(&body, &ports);
    server.abort();
}
