//! The admin API over real HTTP.

use serde_json::Value;

use crate::harness::*;

async fn serve(h: &TestHost, token: Option<&str>) -> String {
    let listener = impressox_host::api::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let router = impressox_host::api::router(h.runtime.clone(), None, token.map(String::from));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_status_metrics_reload_and_errors() {
    let h = host();
    h.load(test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm");
    h.install_bytes(b"garbage", "broken.wasm");
    let base = serve(&h, None).await;
    let client = reqwest::Client::new();

    let health: Value = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let handle = h.runtime.plugin("plain-formatter");
    for _ in 0..10 {
        handle
            .format(&notification("n"), "console")
            .unwrap()
            .unwrap();
    }
    let one: Value = client
        .get(format!("{base}/api/v1/plugins/plain-formatter"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["state"], "active");
    assert_eq!(one["kind"], "notify-formatter");
    assert_eq!(one["calls"], 10);
    assert!(one["p99_us"].as_f64().unwrap() > 0.0);
    assert_eq!(one["sha256"].as_str().unwrap().len(), 64);

    let missing = client
        .get(format!("{base}/api/v1/plugins/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"].as_str().unwrap().contains("nope"));

    let reload: Value = client
        .post(format!("{base}/api/v1/plugins/reload"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let plugins = reload["plugins"].as_array().unwrap();
    let broken = plugins
        .iter()
        .find(|p| p["name"] == "broken")
        .expect("failed file listed");
    assert_eq!(broken["state"], "failed");
    assert!(
        broken["last_load_error"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly file")
    );

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("impressox_plugin_calls_total{plugin=\"plain-formatter\"} 10"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "impressox_plugin_call_duration_seconds_count{plugin=\"plain-formatter\"} 10"
        )
    );

    let openapi: Value = client
        .get(format!("{base}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(openapi["paths"]["/api/v1/plugins/reload"]["post"].is_object());
    assert!(openapi["paths"]["/api/v1/notifications"]["post"].is_object());
    assert!(openapi["paths"]["/api/v1/users/{user_id}/preferences"]["put"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_is_required_when_set() {
    let h = host();
    let base = serve(&h, Some("s3cret")).await;
    let client = reqwest::Client::new();
    let denied = client
        .get(format!("{base}/api/v1/plugins"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let wrong = client
        .get(format!("{base}/api/v1/plugins"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = client
        .get(format!("{base}/api/v1/plugins"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // Liveness stays open for probes.
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn non_loopback_listen_without_a_token_is_refused() {
    let err = impressox_host::api::check_bind("0.0.0.0:8080".parse().unwrap(), None).unwrap_err();
    assert!(err.to_string().contains("IMPRESSOX_API_TOKEN"));
    impressox_host::api::check_bind("0.0.0.0:8080".parse().unwrap(), Some("t")).unwrap();
    impressox_host::api::check_bind("127.0.0.1:8080".parse().unwrap(), None).unwrap();
}
