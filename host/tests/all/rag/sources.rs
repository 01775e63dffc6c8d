//! Sources in-process on real stores: what each pass stores, skips and removes, counted.

use std::collections::HashSet;
use std::sync::Arc;

use impressox_host::documents::{Doc, Documents, Write};
use impressox_host::rag::config::SourceKind;
use impressox_host::rag::sources::SourceRunner;
use impressox_host::rag::sources::cursors::Cursors;
use impressox_rag::{Mode, Query};
use serde_json::{Value, json};

use super::{rag_host, source};

fn runner(
    h: &crate::harness::TestHost,
    service: &Arc<impressox_host::rag::RagService>,
    cfg: impressox_host::rag::config::SourceConfig,
    docs: Option<Arc<dyn Documents>>,
) -> SourceRunner {
    let cursors = Arc::new(Cursors::open(&h.config.data_dir().join("rag")));
    SourceRunner::new(cfg, h.dir.path(), service.clone(), cursors, docs).unwrap()
}

fn texts(service: &impressox_host::rag::RagService, collection: &str) -> Vec<String> {
    service
        .index()
        .vectors()
        .all_chunks(collection)
        .unwrap()
        .iter()
        .map(|c| c.text.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_ingested_once_replaced_exactly_and_removed_when_deleted() {
    let (h, service) = rag_host();
    let folder = h.dir.path().join("pages");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    std::fs::write(
        folder.join("a.md"),
        "# Alpha\n\nThe market monitor raises alerts.\n\n## Rules\n\nRules watch symbols.",
    )
    .unwrap();
    std::fs::write(
        folder.join("sub/b.html"),
        "<html><body><h1>Beta</h1><p>The notify worker delivers.</p></body></html>",
    )
    .unwrap();
    std::fs::write(
        folder.join("c.txt"),
        "Gamma: plain text about $IREN miners.",
    )
    .unwrap();
    let mut cfg = source("pages", SourceKind::Files, "docs");
    cfg.path = Some("pages".into());
    let mut r = runner(&h, &service, cfg.clone(), None);

    let first = r.pass().await.unwrap();
    assert_eq!(
        (first.changed, first.removed, first.failed),
        (3, 0, 0),
        "{first:?}"
    );
    assert!(first.embedded >= 3);
    let stored = service.index().collections().unwrap()[0].1;
    assert_eq!(stored as u64, first.embedded);

    // Nothing changed: nothing read again, nothing embedded.
    let second = r.pass().await.unwrap();
    assert_eq!(second.embedded, 0, "{second:?}");
    // A new runner (a restart) reads every file again and still embeds nothing.
    let mut restarted = runner(&h, &service, cfg.clone(), None);
    let third = restarted.pass().await.unwrap();
    assert_eq!((third.embedded, third.unchanged), (0, 3), "{third:?}");

    // A change replaces exactly that file's chunks.
    std::fs::write(
        folder.join("a.md"),
        "# Alpha\n\nThe market monitor now watches funding rates.",
    )
    .unwrap();
    let changed = restarted.pass().await.unwrap();
    assert_eq!((changed.changed, changed.unchanged), (1, 0), "{changed:?}");
    let all = texts(&service, "docs");
    assert!(all.iter().any(|t| t.contains("funding rates")), "{all:?}");
    assert!(
        !all.iter()
            .any(|t| t.contains("raises alerts") || t.contains("Rules watch")),
        "stale chunk kept: {all:?}"
    );
    let hits = service
        .query(&Query {
            collection: "docs".into(),
            text: "funding rates".into(),
            k: 3,
            mode: Mode::Hybrid,
            filter: Default::default(),
            min_score: None,
        })
        .unwrap();
    assert_eq!(hits[0].chunk.document_id, "pages/a.md");
    assert_eq!(hits[0].chunk.source, "pages");

    // A deleted file loses its chunks.
    std::fs::remove_file(folder.join("sub/b.html")).unwrap();
    let removed = restarted.pass().await.unwrap();
    assert_eq!(removed.removed, 1, "{removed:?}");
    let ids: Vec<String> = service
        .index()
        .document_ids("docs", "")
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["pages/a.md", "pages/c.txt"]);
    assert!(
        !texts(&service, "docs")
            .iter()
            .any(|t| t.contains("notify worker"))
    );
}

/// A chunker that traps, spins past its deadline, runs out of memory or answers too much on
/// one document fails that document only: the others of the pass are stored, the source
/// does not stall, and the document is read again once it changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_document_fails_alone_and_its_source_goes_on() {
    let h = crate::harness::host();
    // The probe chunker answers like a chunker until a text names a poison.
    h.load(test_artifacts::GUEST_CHUNKER_V2, "markdown-chunker.wasm");
    let service = Arc::new(
        impressox_host::rag::RagService::open(
            &impressox_host::rag::config::RagConfig::default(),
            h.dir.path(),
            &h.config.data_dir(),
            h.runtime.clone(),
        )
        .unwrap(),
    );
    let folder = h.dir.path().join("pages");
    std::fs::create_dir_all(&folder).unwrap();
    // Poisons between good files: the harness quarantines after 3 failures in a row,
    // which is what stops a chunker that fails on everything (not this case).
    let files = [
        ("a.md", "Alpha: the market monitor."),
        ("b.md", "POISON:trap"),
        ("c.md", "Gamma: the notify worker."),
        ("d.md", "POISON:spin"),
        ("e.md", "Epsilon: the scheduler."),
        ("f.md", "POISON:alloc"),
        ("g.md", "Eta: the event listeners."),
        ("h.md", "POISON:output"),
        ("i.md", "Iota: the scraper."),
    ];
    for (name, text) in files {
        std::fs::write(folder.join(name), text).unwrap();
    }
    let mut cfg = source("pages", SourceKind::Files, "docs");
    cfg.path = Some("pages".into());
    let mut r = runner(&h, &service, cfg, None);

    let first = r
        .pass()
        .await
        .expect("a poison document must not fail the pass");
    assert_eq!((first.changed, first.failed), (5, 4), "{first:?}");
    let ids: Vec<String> = service
        .index()
        .document_ids("docs", "")
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        ids,
        [
            "pages/a.md",
            "pages/c.md",
            "pages/e.md",
            "pages/g.md",
            "pages/i.md"
        ]
    );
    let status = h
        .runtime
        .statuses()
        .into_iter()
        .find(|s| s.name == "markdown-chunker")
        .unwrap();
    assert_eq!(
        status.state,
        impressox_host::runtime::State::Active,
        "{status:?}"
    );
    assert_eq!(status.errors, 4, "each poison counts as one plugin failure");

    // Not read again while unchanged (no deadline spent on it every pass) ...
    let second = r.pass().await.unwrap();
    assert_eq!((second.changed, second.failed), (0, 0), "{second:?}");
    // ... and ingested once it is mended.
    std::fs::write(folder.join("d.md"), "Delta: the rag worker.").unwrap();
    let mended = r.pass().await.unwrap();
    assert_eq!((mended.changed, mended.failed), (1, 0), "{mended:?}");
    assert!(
        texts(&service, "docs")
            .iter()
            .any(|t| t.contains("rag worker"))
    );
}

fn tweet(id: u64, text: &str, seen: i64) -> Doc {
    let v = json!({
        "_id": id.to_string(), "id_num": id, "raw_content": text,
        "user": {"username": "miner_news", "id": "42"},
        "username": "miner_news", "user_id": "42",
        "date": "2026-12-01T10:00:00Z", "date_ms": 1_796_119_200_000i64,
        "url": format!("https://x.com/miner_news/status/{id}"),
        "cashtags": if text.contains("$IREN") { json!(["IREN"]) } else { json!([]) },
        "lang": "en", "like_count": 1, "last_seen_ms": seen, "first_seen_ms": seen,
        "raw_json": "{\"big\": \"blob\"}",
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

async fn put(docs: &dyn Documents, batch: Vec<Doc>) {
    for chunk in batch.chunks(200) {
        docs.write(
            chunk
                .iter()
                .map(|d| Write::Upsert {
                    coll: "tweets".into(),
                    doc: d.clone(),
                })
                .collect(),
        )
        .await
        .unwrap();
    }
}

/// The cursor pages through records sharing one `last_seen_ms` (more than a page of
/// them), picks up updates, embeds only changed text, and removes deleted records.
async fn documents_suite(docs: Arc<dyn Documents>) {
    let (h, service) = rag_host();
    let mut cfg = source("tweets", SourceKind::Documents, "x");
    cfg.from = Some("tweets".into());
    // 620 tweets: 520 stamped with one millisecond (more than a page), 100 later.
    let mut batch: Vec<Doc> = (0..520)
        .map(|i| {
            tweet(
                1_000 + i,
                &format!("miner update number {i} on hashrate"),
                5_000,
            )
        })
        .collect();
    batch
        .extend((520..620).map(|i| tweet(1_000 + i, &format!("$IREN note {i}"), 5_001 + i as i64)));
    put(docs.as_ref(), batch).await;
    let mut r = runner(&h, &service, cfg.clone(), Some(docs.clone()));
    let first = r.pass().await.unwrap();
    assert_eq!((first.changed, first.failed), (620, 0), "{first:?}");
    assert_eq!(first.embedded, 620);
    assert_eq!(service.index().document_ids("x", "").unwrap().len(), 620);

    // Nothing new past the cursor: nothing read, nothing embedded.
    let idle = r.pass().await.unwrap();
    assert_eq!(
        (idle.changed, idle.unchanged, idle.embedded),
        (0, 0, 0),
        "{idle:?}"
    );

    // Seen again (last_seen_ms and like count move, text does not): re-chunked, not
    // re-embedded. A text edit: re-embedded, the old text gone.
    let mut seen_again = tweet(1_005, "miner update number 5 on hashrate", 90_000);
    seen_again.insert("like_count".into(), json!(99));
    let edited = tweet(
        1_006,
        "miner update number 6 corrected: difficulty up",
        90_001,
    );
    put(docs.as_ref(), vec![seen_again, edited]).await;
    let upd = r.pass().await.unwrap();
    assert_eq!(
        (upd.changed, upd.unchanged, upd.embedded),
        (1, 1, 1),
        "{upd:?}"
    );
    let all = texts(&service, "x");
    assert!(all.iter().any(|t| t.contains("corrected")));
    assert!(!all.iter().any(|t| t == "miner update number 6 on hashrate"));

    // Metadata reaches the filters: the $IREN tweets by cashtag and author.
    let hits = service
        .query(&Query {
            collection: "x".into(),
            text: "IREN".into(),
            k: 100,
            mode: Mode::Lexical,
            filter: impressox_rag::Filter {
                cashtag: Some("$iren".into()),
                author: Some("@Miner_News".into()),
                ..Default::default()
            },
            min_score: None,
        })
        .unwrap();
    assert_eq!(hits.len(), 100);
    assert!(
        hits[0]
            .chunk
            .url
            .as_deref()
            .unwrap()
            .starts_with("https://x.com/miner_news/status/")
    );

    // Deleted records: removed at the next runner's first pass (a restart; and every 30
    // passes while running).
    docs.write(vec![
        Write::Delete {
            coll: "tweets".into(),
            id: "1001".into(),
        },
        Write::Delete {
            coll: "tweets".into(),
            id: "1600".into(),
        },
    ])
    .await
    .unwrap();
    let mut restarted = runner(&h, &service, cfg, Some(docs.clone()));
    let gone = restarted.pass().await.unwrap();
    assert_eq!((gone.removed, gone.embedded), (2, 0), "{gone:?}");
    let left: HashSet<String> = service
        .index()
        .document_ids("x", "")
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left.len(), 618);
    assert!(!left.contains("tweets/1001") && !left.contains("tweets/1600"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_source_follows_the_embedded_document_store() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Arc<dyn Documents> = Arc::new(
        impressox_host::documents::embedded::EmbeddedDocuments::open(&dir.path().join("d.redb"))
            .unwrap(),
    );
    documents_suite(docs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_source_follows_mongodb_on_secantusdb() {
    let server = crate::servers::mongo::MongoServer::start();
    let docs: Arc<dyn Documents> = Arc::new(
        impressox_host::documents::mongo::MongoDocuments::connect(&server.url(), "rag_test")
            .await
            .unwrap(),
    );
    documents_suite(docs).await;
}

/// A page server with an ETag: `200` with the body, `304` when the ETag matches.
async fn page_server(body: Arc<parking_lot::Mutex<(String, u32)>>) -> String {
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    let app = axum::Router::new().route(
        "/page",
        axum::routing::get(move |headers: HeaderMap| {
            let body = body.clone();
            async move {
                let (text, version) = body.lock().clone();
                let etag = format!("\"v{version}\"");
                if headers
                    .get(header::IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok())
                    == Some(etag.as_str())
                {
                    return StatusCode::NOT_MODIFIED.into_response();
                }
                (
                    [
                        (header::ETAG, etag),
                        (header::CONTENT_TYPE, "text/html; charset=utf-8".into()),
                    ],
                    text,
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_are_fetched_conditionally_and_guarded() {
    let (h, service) = rag_host();
    let body = Arc::new(parking_lot::Mutex::new((
        "<html><body><h1>Hashrate</h1><p>Network hashrate hit a record.</p></body></html>"
            .to_string(),
        1,
    )));
    let base = page_server(body.clone()).await;
    let url = format!("{base}/page");

    // Without allow_private_addresses the SSRF guard refuses a loopback page, and nothing
    // is stored.
    let mut guarded = source("web", SourceKind::Urls, "web");
    guarded.urls = vec![url.clone()];
    let mut r = runner(&h, &service, guarded.clone(), None);
    let err = r.pass().await.unwrap_err().to_string();
    assert!(err.contains("1 of 1 pages failed"), "{err}");
    assert!(
        service
            .index()
            .vectors()
            .collection("web")
            .unwrap()
            .is_none()
    );

    let mut open = guarded;
    open.allow_private_addresses = true;
    let mut r = runner(&h, &service, open, None);
    let first = r.pass().await.unwrap();
    assert_eq!((first.changed, first.embedded), (1, 1), "{first:?}");
    // Same ETag: a 304, nothing read or embedded.
    let second = r.pass().await.unwrap();
    assert_eq!((second.unchanged, second.embedded), (1, 0), "{second:?}");
    *body.lock() = (
        "<html><body><h1>Difficulty</h1><p>Difficulty adjusted upward.</p></body></html>".into(),
        2,
    );
    let third = r.pass().await.unwrap();
    assert_eq!((third.changed, third.embedded), (1, 1), "{third:?}");
    let all = texts(&service, "web");
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0].contains("Difficulty"));
    let chunk = &service.index().vectors().all_chunks("web").unwrap()[0];
    assert_eq!(chunk.url.as_deref(), Some(url.as_str()));
}
