//! `/api/v1/scraper`: targets over real HTTP on the embedded document store, in a process
//! that does not run the x-scraper worker (docs/design/x-scraper.md §4.1, §6 item 23).

use std::sync::Arc;

use impressox_host::api::Services;
use impressox_host::documents::Documents;
use impressox_host::scraper::config::SearchConfig;
use impressox_host::scraper::targets::{self, TargetDefaults};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

const DEFAULTS: TargetDefaults = TargetDefaults {
    interval_secs: 1234,
    tail_max_pages: 7,
    backfill_max_pages: 40,
};

struct Api {
    _host: TestHost,
    docs: Arc<dyn Documents>,
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        let host = host_with("[documents]\nbackend = \"embedded\"\n");
        let docs = impressox_host::documents::open(&host.config).await.unwrap();
        let listener = impressox_host::api::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = impressox_host::api::router_with(
            host.runtime.clone(),
            None,
            None,
            Services {
                docs: Some(docs.clone()),
                scraper_defaults: Some(DEFAULTS),
                ..Default::default()
            },
        );
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Api {
            _host: host,
            docs,
            base,
            http: reqwest::Client::new(),
        }
    }

    /// Status and JSON body (`null` for an empty one).
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, v)
    }

    async fn ids(&self, query: &str) -> Vec<String> {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/api/v1/scraper/targets{query}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_post_get_delete_round_trip() {
    let api = Api::start().await;
    let (status, user) = api
        .call(
            Method::POST,
            "/api/v1/scraper/targets",
            Some(json!({"kind": "user", "handle": "CoinLedger_Ana", "mode": "backfill"})),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["id"], "user:coinledger_ana");
    assert_eq!(user["handle"], "CoinLedger_Ana");
    assert_eq!(user["origin"], "api");
    assert_eq!(user["mode"], "backfill");
    // Unset fields take `[scraper]`'s defaults of this process.
    assert_eq!(user["interval_secs"], DEFAULTS.interval_secs);
    assert_eq!(user["max_pages"], DEFAULTS.backfill_max_pages);
    assert_eq!(user["enabled"], true);
    assert!(
        user["next_run_at"].as_str().unwrap().ends_with('Z'),
        "{user}"
    );
    assert!(
        user.get("_id").is_none() && user.get("_rev").is_none(),
        "{user}"
    );

    // The same handle in another case is the same target.
    let (status, err) = api
        .call(
            Method::POST,
            "/api/v1/scraper/targets",
            Some(json!({"kind": "user", "handle": "coinledger_ana"})),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user:coinledger_ana"),
        "{err}"
    );

    let (status, search) = api
        .call(
            Method::POST,
            "/api/v1/scraper/targets",
            Some(json!({"kind": "search", "name": "btc", "query": "$BTC", "interval_secs": 300, "max_pages": 5})),
        )
        .await;
    assert_eq!(status, 201, "{search}");
    assert_eq!(search["id"], "search:btc");
    assert_eq!(search["product"], "live");
    assert_eq!(search["interval_secs"], 300);
    assert_eq!(search["max_pages"], 5);

    assert_eq!(
        api.ids("").await,
        ["search:btc", "user:coinledger_ana"],
        "listed by id"
    );
    assert_eq!(api.ids("?kind=user").await, ["user:coinledger_ana"]);
    assert_eq!(api.ids("?kind=search").await, ["search:btc"]);
    // What the API answered is what the store holds.
    let stored = targets::get(api.docs.as_ref(), "user:coinledger_ana")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.interval_secs, DEFAULTS.interval_secs);

    let (status, body) = api
        .call(
            Method::DELETE,
            "/api/v1/scraper/targets/user:coinledger_ana",
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = api
        .call(
            Method::DELETE,
            "/api/v1/scraper/targets/user:coinledger_ana",
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(api.ids("").await, ["search:btc"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_post_names_the_bad_field() {
    let api = Api::start().await;
    for (body, field) in [
        (
            json!({"kind": "user", "handle": "far_too_long_a_handle"}),
            "`handle`",
        ),
        (json!({"kind": "user"}), "`handle`"),
        (
            json!({"kind": "user", "handle": "ana", "interval_secs": 5}),
            "`interval_secs`",
        ),
        (
            json!({"kind": "user", "handle": "ana", "max_pages": 0}),
            "`max_pages`",
        ),
        (
            json!({"kind": "user", "handle": "ana", "query": "$BTC"}),
            "`query`",
        ),
        (
            json!({"kind": "search", "name": "btc", "query": "   "}),
            "`query`",
        ),
        (
            json!({"kind": "search", "name": "btc", "query": "$BTC", "product": "best"}),
            "`product`",
        ),
        (json!({"kind": "robot", "handle": "ana"}), "`kind`"),
        (
            json!({"kind": "user", "handle": "ana", "colour": "red"}),
            "`colour`",
        ),
    ] {
        let (status, resp) = api
            .call(Method::POST, "/api/v1/scraper/targets", Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body} → {resp}");
        assert_eq!(resp["error"]["code"], "invalid_field", "{body} → {resp}");
        let msg = resp["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(field), "{body} → {msg}");
    }
    let resp = api
        .http
        .post(format!("{}/api/v1/scraper/targets", api.base))
        .header("content-type", "application/json")
        .body("{\"kind\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");

    let (status, resp) = api
        .call(Method::GET, "/api/v1/scraper/targets?kind=robot", None)
        .await;
    assert_eq!(status, 400, "{resp}");
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("`kind`"),
        "{resp}"
    );
    assert!(api.ids("").await.is_empty(), "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_file_target_is_a_409() {
    let api = Api::start().await;
    let searches = [SearchConfig {
        name: "btc".into(),
        query: "$BTC".into(),
        product: Default::default(),
        interval_secs: None,
        mode: Default::default(),
        max_pages: None,
    }];
    let seeded = targets::seed(
        api.docs.as_ref(),
        &["coinledger_ana".to_string()],
        &searches,
        &DEFAULTS,
        1_000,
    )
    .await
    .unwrap();
    assert_eq!(seeded.created, 2);
    for (id, source) in [
        ("user:coinledger_ana", "user_list"),
        ("search:btc", "[[scraper.searches]]"),
    ] {
        let (status, body) = api
            .call(
                Method::DELETE,
                &format!("/api/v1/scraper/targets/{id}"),
                None,
            )
            .await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"]["code"], "conflict");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(id) && msg.contains(source), "{msg}");
    }
    assert_eq!(
        api.ids("").await,
        ["search:btc", "user:coinledger_ana"],
        "both still there"
    );
    let (_, listed) = api
        .call(Method::GET, "/api/v1/scraper/targets?kind=user", None)
        .await;
    assert_eq!(listed["targets"][0]["origin"], "file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_need_the_worker_and_openapi_lists_the_routes() {
    let api = Api::start().await;
    let (status, body) = api
        .call(Method::GET, "/api/v1/scraper/accounts", None)
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-scraper"),
        "{body}"
    );

    let (status, doc) = api.call(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200);
    let paths = &doc["paths"];
    assert!(
        paths["/api/v1/scraper/targets"]["get"].is_object(),
        "{paths}"
    );
    assert!(paths["/api/v1/scraper/targets"]["post"]["responses"]["409"].is_object());
    assert!(paths["/api/v1/scraper/targets/{id}"]["delete"]["responses"]["409"].is_object());
    assert!(paths["/api/v1/scraper/accounts"]["get"]["responses"]["503"].is_object());
    // The other workers' routes are still there.
    assert!(paths["/api/v1/notifications"]["post"].is_object());
    assert!(paths["/api/v1/rules/{id}"]["delete"].is_object());
}
