//! `rag` from a real component (`rag-probe`) on the rag worker's own service: the local
//! embedder and the bundled markdown chunker, as the rag tests use, over both vector stores
//! (`[rag.store]`): the embedded one and a real Chroma server (`chroma run`). (The
//! capability touches neither Redis nor MongoDB: its only backend is the worker's index.)

use std::sync::Arc;
use std::sync::atomic::Ordering;

use impressox_host::rag::service::SourceDocument;
use impressox_host::rag::{RagService, RagWorker};
use serde_json::{Value, json};

use super::{Backend, CapsHost, err, ok};
use crate::servers::chroma::ChromaServer;

const PROBE: &str = "rag-probe";
const GRANT: &str = "[plugins.grants.rag-probe]\nrag = [\"notes\"]\n";

/// The vector store under the rag worker, with the server behind it (kept alive by the
/// test; each test its own, so collections never meet).
enum Store {
    Embedded,
    Chroma(ChromaServer),
}

impl Store {
    fn chroma() -> Store {
        Store::Chroma(ChromaServer::start())
    }

    /// What the worker's index must say it runs on.
    fn kind(&self) -> &'static str {
        match self {
            Store::Embedded => "embedded",
            Store::Chroma(_) => "chroma",
        }
    }

    /// Its `[rag.store]` table.
    fn toml(&self) -> String {
        match self {
            Store::Embedded => String::new(),
            Store::Chroma(server) => format!(
                "[rag.store]\nkind = \"chroma\"\nurl = \"{}\"\n",
                server.url()
            ),
        }
    }
}

/// A host with the markdown chunker and `rag-probe` loaded, granted `extra`, its rag
/// worker on the embedded store.
fn host(extra: &str) -> CapsHost {
    host_on(&Store::Embedded, extra)
}

/// [`host`] with the rag worker on `store`.
fn host_on(store: &Store, extra: &str) -> CapsHost {
    let h = CapsHost::new(&Backend::Embedded, &format!("{}{extra}", store.toml()));
    h.load(test_artifacts::MARKDOWN_CHUNKER, "markdown-chunker");
    h.load(test_artifacts::GUEST_RAG_PROBE, PROBE);
    h
}

/// A host granted `notes` and its rag worker (no sources), checked to run on `store`.
fn granted_host_and_worker(store: &Store) -> (CapsHost, RagWorker) {
    let h = host_on(store, GRANT);
    let worker = start_worker(&h);
    assert_eq!(worker.handle.service.index().vectors().kind(), store.kind());
    (h, worker)
}

/// Two tests of `check`: `embedded` on the embedded store, `chroma` on a Chroma server.
macro_rules! on_both_stores {
    ($embedded:ident, $chroma:ident, $check:ident) => {
        #[test]
        fn $embedded() {
            $check(Store::Embedded);
        }

        #[test]
        fn $chroma() {
            $check(Store::chroma());
        }
    };
}

/// The rag worker of `h` (no sources): it lends its service to the capability.
fn start_worker(h: &CapsHost) -> RagWorker {
    impressox_host::runtime::deadline::io_runtime()
        .block_on(RagWorker::start(
            &h.config,
            h.runtime.clone(),
            h.docs.clone(),
        ))
        .unwrap()
}

fn stop_worker(worker: RagWorker) {
    impressox_host::runtime::deadline::io_runtime().block_on(worker.stop());
}

/// Run `rag-probe` on `ops` with a deadline that fits embedding (the test config's call
/// timeout is 200 ms).
fn ops(h: &CapsHost, ops: Value) -> Vec<Value> {
    let run = impressox_host::bindings::types::TaskRun {
        schedule: "test".into(),
        scheduled_at_ms: 0,
        attempt: 1,
        args_json: json!({ "ops": ops }).to_string(),
    };
    let report = h
        .runtime
        .plugin(PROBE)
        .run_task_within(&run, 30_000)
        .unwrap()
        .unwrap_or_else(|e| panic!("rag-probe failed: {e}"));
    serde_json::from_str(&report.data_json).unwrap()
}

/// `POST /api/v1/rag/query` with `body`, on an API server over `worker` (the agent's way
/// to the index the plugin writes): the answer, which must be a 200.
fn rest_query(h: &CapsHost, worker: &RagWorker, body: Value) -> Value {
    impressox_host::runtime::deadline::io_runtime().block_on(async {
        let services = impressox_host::api::Services {
            rag: Some(worker.handle.clone()),
            ..Default::default()
        };
        let (base, server) = crate::harness::serve_api(h.runtime.clone(), services).await;
        let (status, answer) = crate::rag::post_query(&base, body.clone()).await;
        server.abort();
        assert_eq!(status, 200, "{body} → {answer}");
        answer
    })
}

fn chunk_texts(service: &RagService) -> Vec<(String, String)> {
    service
        .index()
        .vectors()
        .all_chunks("notes")
        .unwrap()
        .iter()
        .map(|c| (c.document_id.clone(), c.text.clone()))
        .collect()
}

fn result_ids(answer: &Value) -> Vec<String> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["document_id"].as_str().unwrap().to_string())
        .collect()
}

const FUNDING: &str = "# Funding\n\nFunding rates on BTC perpetuals turned negative this week.";
const MINERS: &str = "# Miners\n\nBitcoin miners sold hashrate contracts to AI datacenters.";

on_both_stores!(
    a_task_upserts_queries_skips_unchanged_replaces_and_deletes,
    a_task_upserts_queries_skips_unchanged_replaces_and_deletes_on_chroma,
    upserts_queries_skips_unchanged_replaces_and_deletes
);

fn upserts_queries_skips_unchanged_replaces_and_deletes(store: Store) {
    let (h, worker) = granted_host_and_worker(&store);
    let service: Arc<RagService> = worker.handle.service.clone();
    // A source's document in the same collection, with the same own id the plugin uses.
    let pages = crate::rag::source(
        "pages",
        impressox_host::rag::config::SourceKind::Files,
        "notes",
    );
    let counts = service
        .ingest(
            &pages,
            vec![SourceDocument {
                id: "a".into(),
                text: "# Pages\n\nThe market monitor raises alerts on price rules.".into(),
                media_type: "text/markdown".into(),
                metadata: Vec::new(),
                url: None,
                time_ms: None,
            }],
        )
        .unwrap();
    assert_eq!(counts.changed, 1, "{counts:?}");

    let r = ops(
        &h,
        json!([
            ["rag.upsert", "notes", "a", FUNDING, "text/markdown", {"desk": "perps"}, 1_765_000_000_000i64],
            ["rag.upsert", "notes", "b", MINERS, "text/markdown", null, null],
            ["rag.query", {"collection": "notes", "query": "funding rates on perpetuals", "k": 5}],
            // One collection granted: `collection` may be left out.
            ["rag.query", {"query": "miners hashrate", "mode": "lexical", "k": 5,
                           "filter": {"source": "plugin:rag-probe"}}],
        ]),
    );
    let a = ok(&r[0]);
    assert!(a["embedded"].as_u64().unwrap() >= 1, "{a}");
    assert_eq!(a["chunks"], a["embedded"], "{a}");
    assert!(ok(&r[1])["embedded"].as_u64().unwrap() >= 1, "{}", r[1]);
    // The REST answer's shape: collection, mode, model, results with scores and provenance.
    let answer = ok(&r[2]);
    assert_eq!(answer["collection"], "notes");
    assert_eq!(answer["mode"], "hybrid");
    assert!(
        answer["model"].as_str().is_some_and(|m| !m.is_empty()),
        "{answer}"
    );
    let ids = result_ids(answer);
    assert_eq!(ids[0], "plugin:rag-probe/a", "{answer}");
    assert!(ids.contains(&"plugin:rag-probe/b".to_string()), "{ids:?}");
    assert!(
        ids.contains(&"pages/a".to_string()),
        "the source's document is searched too: {ids:?}"
    );
    let top = &answer["results"][0];
    assert!(top["score"].as_f64().unwrap() > 0.0, "{top}");
    assert!(top["vector_score"].is_number(), "{top}");
    assert_eq!(top["source"], "plugin:rag-probe");
    assert_eq!(top["metadata"]["desk"], "perps", "{top}");
    assert!(
        top["time"].as_str().unwrap().starts_with("2025-12-06"),
        "{top}"
    );
    assert!(
        top["text"].as_str().unwrap().contains("Funding rates"),
        "{top}"
    );
    // The filter on the plugin's source leaves the source's document out.
    assert_eq!(result_ids(ok(&r[3])), ["plugin:rag-probe/b"], "{}", r[3]);
    // The agent finds what the plugin stored, through the API, in the same order.
    let funding = json!({"collection": "notes", "query": "funding rates on perpetuals", "k": 5});
    let rest = rest_query(&h, &worker, funding.clone());
    assert_eq!(result_ids(&rest), ids, "{rest}");
    assert_eq!(rest["results"][0]["metadata"]["desk"], "perps", "{rest}");

    // The same document again: chunked, found unchanged, nothing embedded.
    let embedded = service.counters.chunks_embedded.load(Ordering::Relaxed);
    let unchanged = service.counters.documents_unchanged.load(Ordering::Relaxed);
    let r = ops(
        &h,
        json!([["rag.upsert", "notes", "a", FUNDING, "text/markdown", {"desk": "perps"}, 1_765_000_000_000i64]]),
    );
    assert_eq!(ok(&r[0])["embedded"], 0, "{}", r[0]);
    assert!(ok(&r[0])["chunks"].as_u64().unwrap() >= 1, "{}", r[0]);
    assert_eq!(
        service.counters.chunks_embedded.load(Ordering::Relaxed),
        embedded
    );
    assert_eq!(
        service.counters.documents_unchanged.load(Ordering::Relaxed),
        unchanged + 1
    );

    // A change replaces exactly that document's chunks.
    let r = ops(
        &h,
        json!([[
            "rag.upsert",
            "notes",
            "b",
            "# Miners\n\nMiners now rent GPUs for inference.",
            "text/markdown",
            null,
            null
        ]]),
    );
    assert!(ok(&r[0])["embedded"].as_u64().unwrap() >= 1, "{}", r[0]);
    let chunks = chunk_texts(&service);
    let of_b: Vec<&str> = chunks
        .iter()
        .filter(|(d, _)| d == "plugin:rag-probe/b")
        .map(|(_, t)| t.as_str())
        .collect();
    assert!(of_b.iter().any(|t| t.contains("GPUs")), "{of_b:?}");
    assert!(
        !of_b.iter().any(|t| t.contains("hashrate")),
        "stale chunk kept: {of_b:?}"
    );

    // Delete removes that document only: not the source's `pages/a`, not `b`.
    let r = ops(
        &h,
        json!([
            ["rag.delete", "notes", "a"],
            ["rag.delete", "notes", "a"],
            ["rag.delete", "notes", "../pages/a"],
            ["rag.query", {"query": "funding rates on perpetuals", "k": 10}],
        ]),
    );
    assert_eq!(ok(&r[0]), &json!(true));
    assert_eq!(ok(&r[1]), &json!(false), "already gone");
    assert_eq!(
        ok(&r[2]),
        &json!(false),
        "ids are the plugin's own, never a path"
    );
    let ids = result_ids(ok(&r[3]));
    assert!(!ids.contains(&"plugin:rag-probe/a".to_string()), "{ids:?}");
    let ids = result_ids(&rest_query(&h, &worker, funding));
    assert!(!ids.contains(&"plugin:rag-probe/a".to_string()), "{ids:?}");
    assert!(ids.contains(&"pages/a".to_string()), "{ids:?}");
    let docs: Vec<String> = chunk_texts(&service).into_iter().map(|(d, _)| d).collect();
    assert!(!docs.iter().any(|d| d == "plugin:rag-probe/a"), "{docs:?}");
    assert!(docs.iter().any(|d| d == "pages/a"), "{docs:?}");
    assert!(docs.iter().any(|d| d == "plugin:rag-probe/b"), "{docs:?}");
    stop_worker(worker);
}

on_both_stores!(
    bad_input_and_ungranted_collections_are_errors_the_plugin_sees,
    bad_input_and_ungranted_collections_are_errors_the_plugin_sees_on_chroma,
    bad_input_and_ungranted_collections_are_errors
);

fn bad_input_and_ungranted_collections_are_errors(store: Store) {
    let (h, worker) = granted_host_and_worker(&store);
    let r = ops(
        &h,
        json!([
            ["rag.query", {"collection": "tweets", "query": "x"}],
            ["rag.upsert", "tweets", "a", "text", "text/plain", null, null],
            ["rag.delete", "other", "a"],
            ["rag.query", {"collection": "notes", "query": "x", "k": 1000}],
            ["rag.query", {"collection": "notes", "query": "  "}],
            ["rag.query", {"collection": "notes", "query": "x", "mode": "fuzzy"}],
            ["rag.query_raw", "{not json"],
            ["rag.upsert", "notes", "", "text", "text/plain", null, null],
            ["rag.upsert", "notes", "a", "text", "", null, null],
            // Nothing indexed in `notes` yet.
            ["rag.query", {"collection": "notes", "query": "x"}],
        ]),
    );
    for (i, coll) in [(0, "tweets"), (1, "tweets"), (2, "other")] {
        let e = err(&r[i]);
        assert!(
            e.contains(&format!(
                "[plugins.grants.rag-probe] rag = [..., \"{coll}\"]"
            )),
            "{e}"
        );
    }
    assert!(
        err(&r[3]).starts_with("rag.query: k: must be an integer from 1 to"),
        "{}",
        r[3]
    );
    assert!(err(&r[4]).contains("query: must not be empty"), "{}", r[4]);
    assert!(
        err(&r[5]).contains("mode: must be vector, lexical or hybrid"),
        "{}",
        r[5]
    );
    assert!(err(&r[6]).contains("not JSON"), "{}", r[6]);
    assert!(err(&r[7]).contains("max_id_bytes"), "{}", r[7]);
    assert!(err(&r[8]).contains("media-type"), "{}", r[8]);
    assert!(
        err(&r[9]).contains("unknown collection \"notes\""),
        "{}",
        r[9]
    );
    // Nothing was stored by any of them.
    assert!(
        worker
            .handle
            .service
            .index()
            .collections()
            .unwrap()
            .is_empty()
    );
    stop_worker(worker);
}

#[test]
fn without_the_rag_worker_calls_say_so_and_the_budget_counts() {
    let h = host(&format!("{GRANT}[capabilities]\nmax_host_calls = 3\n"));
    // Never started: the plugin loads (granted) and each call is a clear error.
    let r = ops(
        &h,
        json!([
            ["rag.query", {"query": "x"}],
            ["rag.upsert", "notes", "a", FUNDING, "text/markdown", null, null],
            ["rag.delete", "notes", "a"],
        ]),
    );
    for v in &r {
        let e = err(v);
        assert!(
            e.contains("the rag worker does not run in this process"),
            "{e}"
        );
        assert!(e.contains("[workers] enabled"), "{e}");
    }
    // Started: served; the fourth host call of one plugin call is over the budget.
    let worker = start_worker(&h);
    let r = ops(
        &h,
        json!([
            ["rag.upsert", "notes", "a", FUNDING, "text/markdown", null, null],
            ["rag.query", {"query": "funding"}],
            ["rag.delete", "notes", "a"],
            ["rag.query", {"query": "funding"}],
        ]),
    );
    ok(&r[0]);
    assert_eq!(result_ids(ok(&r[1])), ["plugin:rag-probe/a"]);
    assert_eq!(ok(&r[2]), &json!(true));
    assert!(err(&r[3]).contains("max_host_calls"), "{}", r[3]);
    // Stopped: refused again, saying so.
    stop_worker(worker);
    let r = ops(&h, json!([["rag.query", {"query": "funding"}]]));
    assert!(
        err(&r[0]).contains("the rag worker does not run"),
        "{}",
        r[0]
    );
}

#[test]
fn a_component_importing_rag_without_the_grant_is_refused_at_load() {
    let h = CapsHost::new(&Backend::Embedded, "");
    let e = h
        .try_load(test_artifacts::GUEST_RAG_PROBE, PROBE)
        .unwrap_err();
    assert!(e.contains("impressox:plugin/rag"), "{e}");
    assert!(
        e.contains("[plugins.grants.rag-probe] rag = [\"collection\"]"),
        "{e}"
    );
    let h = CapsHost::new(
        &Backend::Embedded,
        "[plugins.grants.rag-probe]\nrag = [\"Bad/Name\"]\n",
    );
    let e = h
        .try_load(test_artifacts::GUEST_RAG_PROBE, PROBE)
        .unwrap_err();
    assert!(e.contains("`[plugins.grants.rag-probe] rag`"), "{e}");
}

/// The chunker a plugin's upsert goes through is a plugin too: when it traps or spins
/// past its own call deadline, the upsert is an error the calling plugin gets (its own call
/// goes on, its next upsert is served) and nothing of that document is stored.
#[test]
fn a_chunker_that_traps_or_spins_fails_that_upsert_only() {
    let h = CapsHost::new(&Backend::Embedded, GRANT);
    // `chunker-v2` names itself `markdown-chunker`, the capability's default chunker.
    h.load(test_artifacts::GUEST_CHUNKER_V2, "markdown-chunker");
    h.load(test_artifacts::GUEST_RAG_PROBE, PROBE);
    let worker = start_worker(&h);
    let service: Arc<RagService> = worker.handle.service.clone();
    let started = std::time::Instant::now();
    let r = ops(
        &h,
        json!([
            [
                "rag.upsert",
                "notes",
                "trap",
                "# T\n\nPOISON:trap",
                "text/markdown",
                null,
                null
            ],
            [
                "rag.upsert",
                "notes",
                "spin",
                "# S\n\nPOISON:spin",
                "text/markdown",
                null,
                null
            ],
            [
                "rag.upsert",
                "notes",
                "good",
                FUNDING,
                "text/markdown",
                null,
                null
            ],
        ]),
    );
    // The spin ends at the chunker's deadline (the test config's 200 ms), not the probe's.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    for (v, id) in r[..2].iter().zip(["trap", "spin"]) {
        let e = err(v);
        assert!(e.contains("markdown-chunker"), "{id}: {e}");
    }
    assert!(ok(&r[2])["embedded"].as_u64().unwrap() >= 1, "{}", r[2]);
    let stored: Vec<String> = chunk_texts(&service).into_iter().map(|(d, _)| d).collect();
    assert_eq!(stored, ["plugin:rag-probe/good"], "{stored:?}");
    stop_worker(worker);
}
