//! `POST /api/v1/rag/query` and `GET /api/v1/rag/collections` on a real index: answers
//! with provenance; bad input answered 4xx naming the field, nothing stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use impressox_host::rag::RagHandle;
use impressox_host::rag::config::SourceKind;
use impressox_host::rag::service::SourceDocument;
use serde_json::{Value, json};

use super::{post_query as post, rag_host, source};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_with_provenance_and_bad_fields_are_named() {
    let (h, service) = rag_host();
    let src = source("notes", SourceKind::Files, "notes");
    let s = service.clone();
    tokio::task::spawn_blocking(move || {
        s.ingest(
            &src,
            vec![
                SourceDocument {
                    id: "mining.md".into(),
                    text: "# Mining\n\nMiners earn block rewards; $IREN runs data centres.".into(),
                    media_type: "text/markdown".into(),
                    metadata: vec![],
                    url: Some("https://example.org/mining".into()),
                    time_ms: Some(1_796_119_200_000),
                },
                SourceDocument {
                    id: "funding.md".into(),
                    text: "# Funding\n\nFunding rates balance perpetual futures.".into(),
                    media_type: "text/markdown".into(),
                    metadata: vec![],
                    url: None,
                    time_ms: None,
                },
            ],
        )
        .unwrap()
    })
    .await
    .unwrap();
    let handle = RagHandle {
        service: service.clone(),
        sources: Arc::new(parking_lot::Mutex::new(BTreeMap::new())),
    };
    let (base, _server) = crate::harness::serve_api(
        h.runtime.clone(),
        impressox_host::api::Services {
            rag: Some(handle),
            ..Default::default()
        },
    )
    .await;

    let (status, body) = post(
        &base,
        json!({"collection": "notes", "query": "who runs data centres", "k": 2}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let top = &body["results"][0];
    assert_eq!(top["document_id"], "notes/mining.md");
    assert_eq!(top["source"], "notes");
    assert_eq!(top["url"], "https://example.org/mining");
    assert_eq!(top["time"], "2026-12-01T10:00:00.000Z");
    assert!(top["start"].is_u64() && top["end"].as_u64() > top["start"].as_u64());
    assert!(top["text"].as_str().unwrap().contains("$IREN"));
    assert_eq!(body["mode"], "hybrid");

    // Filters: time range excludes the undated document.
    let (status, body) = post(
        &base,
        json!({"collection": "notes", "query": "rates", "mode": "lexical",
               "filter": {"since": "2026-11-01T00:00:00Z"}}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["document_id"] == "notes/mining.md")
    );

    for (bad, status, field) in [
        (json!({"collection": "notes", "query": ""}), 400, "query"),
        (
            json!({"collection": "notes", "query": "x", "k": 101}),
            400,
            "k",
        ),
        (
            json!({"collection": "notes", "query": "x", "mode": "semantic"}),
            400,
            "mode",
        ),
        (
            json!({"collection": "notes", "query": "x", "filter": {"since": "last week"}}),
            400,
            "filter.since",
        ),
        (
            json!({"collection": "nope", "query": "x"}),
            404,
            "collection",
        ),
        (json!({"query": "x"}), 400, "collection"),
    ] {
        let (got, body) = post(&base, bad.clone()).await;
        assert_eq!(got, status, "{bad} → {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{bad} → {message}");
    }
    // Nothing was stored by the bad queries.
    let collections: Value = reqwest::get(format!("{base}/api/v1/rag/collections"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = collections["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["notes"]);
    assert_eq!(collections["collections"][0]["dimension"], 384);

    // A process without the rag worker says so.
    let (plain, _s2) =
        crate::harness::serve_api(h.runtime.clone(), impressox_host::api::Services::default())
            .await;
    let (status, body) = post(&plain, json!({"collection": "notes", "query": "x"})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "rag_not_running");
}
