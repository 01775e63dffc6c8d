//! API request bodies (found by the fuzz targets in `crate::fuzz`): a body is one JSON
//! object, nothing before or after it, over real HTTP on the embedded stores.

use std::sync::Arc;

use impressox_host::api::Services;
use impressox_host::market::config::RuleSymbols;
use impressox_host::market::rule_limits::RulePolicy;
use impressox_host::storage::{Store, StoreLimits};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

struct Api {
    _host: TestHost,
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        let host = host_with("[documents]\nbackend = \"embedded\"\n");
        std::fs::create_dir_all(host.config.data_dir()).unwrap();
        let store: Arc<dyn Store> =
            impressox_host::storage::open(&host.config, StoreLimits::default())
                .await
                .unwrap();
        let docs = impressox_host::documents::open(&host.config).await.unwrap();
        let (base, _server) = serve_api(
            host.runtime.clone(),
            Services {
                store: Some(store),
                docs: Some(docs),
                // Rules here are created before any feed prices a symbol.
                rules: RulePolicy {
                    symbols: RuleSymbols::Any,
                    ..RulePolicy::default()
                },
                ..Default::default()
            },
        )
        .await;
        Api {
            _host: host,
            base,
            http: reqwest::Client::new(),
        }
    }

    /// Send `body` as it is; the status and the JSON answer (`null` when empty).
    async fn send(&self, method: Method, path: &str, body: &str) -> (u16, Value) {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, v)
    }

    async fn rules(&self) -> Vec<Value> {
        let (status, body) = self.send(Method::GET, "/api/v1/rules", "").await;
        assert_eq!(status, 200, "{body}");
        body["rules"].as_array().unwrap().clone()
    }
}

const RULE: &str = r#"{"id": "r1", "user_id": "u1", "symbol": "BTCUSDT", "condition": {"op": "above", "value": 70000}}"#;
const NOTIFICATION: &str =
    r#"{"id": "n1", "user_id": "u1", "kind": "news", "title": "Halted", "channels": ["console"]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_with_trailing_characters_is_refused_and_stores_nothing() {
    let api = Api::start().await;
    let second = RULE.replace("\"r1\"", "\"r2\"");
    for body in [
        format!("{RULE} {second}"),
        format!("{RULE}x"),
        format!("{RULE},"),
    ] {
        let (status, answer) = api.send(Method::POST, "/api/v1/rules", &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_json", "{answer}");
    }
    assert!(api.rules().await.is_empty(), "a refused body stored a rule");

    let (status, answer) = api.send(Method::POST, "/api/v1/rules", RULE).await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = api
        .send(
            Method::PATCH,
            "/api/v1/rules/r1",
            r#"{"enabled": false} {"note": "also this"}"#,
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let rules = api.rules().await;
    assert_eq!(
        rules[0]["enabled"], true,
        "a refused patch changed the rule"
    );
    assert_eq!(rules[0]["note"], Value::Null);

    let body = format!("{NOTIFICATION}\n{}", NOTIFICATION.replace("n1", "n2"));
    let (status, answer) = api.send(Method::POST, "/api/v1/notifications", &body).await;
    assert_eq!(status, 400, "{answer}");
    let (status, _) = api.send(Method::GET, "/api/v1/notifications/n1", "").await;
    assert_eq!(status, 404, "a refused request was recorded");

    let body = r#"{"enabled": ["console"]}]"#;
    let (status, answer) = api
        .send(Method::PUT, "/api/v1/users/u1/preferences", body)
        .await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_an_array_is_refused_naming_the_body() {
    let api = Api::start().await;
    // Fields in declaration order: serde's derived structs take this as a rule.
    let rule = json!(["r1", "u1", "BTCUSDT", {"op": "above", "value": 70000}]).to_string();
    let (status, answer) = api.send(Method::POST, "/api/v1/rules", &rule).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_field");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("`body`:") && message.contains("object"),
        "{message}"
    );
    assert!(api.rules().await.is_empty(), "an array body stored a rule");

    let request = json!(["n1", "u1", "news", "normal", "Halted"]).to_string();
    let (status, answer) = api
        .send(Method::POST, "/api/v1/notifications", &request)
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("`body`:"),
        "{answer}"
    );
    let (status, answer) = api
        .send(
            Method::PUT,
            "/api/v1/users/u1/preferences",
            r#"[{}, ["console"]]"#,
        )
        .await;
    assert_eq!(status, 400, "{answer}");
}
