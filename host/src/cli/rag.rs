//! `impressox rag ingest|query|stats|reindex`: the RAG worker's tools (SPEC §10.3).
//!
//! They need no running host: each opens the index under `data_dir/rag` itself (and the
//! plugin directory for the chunkers, the document store for `documents` sources).
//! The embedded index is locked by a running host that runs the rag worker; then `query`
//! and `stats` ask that host's API instead (`[api] listen`, `IMPRESSOX_API_TOKEN`), and
//! `ingest` and `reindex` say to stop it first.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::config::{Config, DocumentsBackend};
use crate::rag::RagService;
use crate::rag::config::SourceKind;
use crate::rag::request::{self, hit_view};
use crate::runtime::Runtime;

#[derive(Subcommand, Debug)]
pub enum RagCommand {
    /// Ingest every source once (or one): new and changed documents are chunked and
    /// embedded, deleted ones removed, unchanged ones skipped.
    Ingest {
        /// Only the `[[rag.sources]]` with this name.
        #[arg(long)]
        source: Option<String>,
    },
    /// Search a collection: the best chunks with their scores and provenance.
    Query {
        /// What to look for.
        text: String,
        /// How many chunks (1-100).
        #[arg(short, long, default_value_t = 5)]
        k: usize,
        /// vector, lexical or hybrid.
        #[arg(long, default_value = "hybrid")]
        mode: String,
        /// The collection (default: the only one, or the first source's).
        #[arg(long)]
        collection: Option<String>,
        /// Print the answer as JSON, as the API returns it.
        #[arg(long)]
        json: bool,
    },
    /// Collections (model, dimension, chunks) and documents per source.
    Stats,
    /// Re-embed every collection (or one) with the configured embedder, after changing it.
    Reindex {
        #[arg(long)]
        collection: Option<String>,
    },
}

pub fn dispatch(config: &Config, cmd: RagCommand) -> Result<ExitCode> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    match cmd {
        RagCommand::Ingest { source } => tokio.block_on(ingest(config, source.as_deref())),
        RagCommand::Query {
            text,
            k,
            mode,
            collection,
            json,
        } => {
            let body = json!({"query": text, "k": k, "mode": mode, "collection": collection});
            tokio.block_on(query(config, body, json))
        }
        RagCommand::Stats => tokio.block_on(stats(config)),
        RagCommand::Reindex { collection } => tokio.block_on(reindex(config, collection)),
    }
}

/// Loads the plugin directory (the chunkers) and opens the index.
async fn open(config: &Config) -> Result<Arc<RagService>> {
    let runtime = Runtime::new(config)?;
    for (file, outcome) in runtime.rescan(false) {
        if let Err(e) = outcome {
            tracing::warn!(file = %file.display(), error = %e, "plugin not loaded");
        }
    }
    crate::rag::worker::open_service(config, runtime).await
}

fn locked(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("another impressox process")
}

async fn ingest(config: &Config, only: Option<&str>) -> Result<ExitCode> {
    if config.rag.sources.is_empty() {
        bail!("no [[rag.sources]] configured: nothing to ingest");
    }
    let service = open(config).await.map_err(|e| {
        if locked(&e) {
            anyhow!("{e:#}; stop the host first (its rag worker ingests on its own)")
        } else {
            e
        }
    })?;
    let needs_docs = config
        .rag
        .sources
        .iter()
        .any(|s| s.kind == SourceKind::Documents && only.is_none_or(|n| n == s.name));
    let docs = if needs_docs {
        if config.documents.backend == DocumentsBackend::Embedded {
            eprintln!("note: the embedded document store is locked while a host runs");
        }
        Some(crate::documents::open(config).await?)
    } else {
        None
    };
    let progress = spawn_progress(service.clone());
    let mut failed = false;
    let mut renderer = None;
    for mut runner in crate::rag::worker::runners(config, &service, docs, only)? {
        if renderer.is_none() {
            renderer = runner.renderer().cloned();
        }
        let name = runner.config.name.clone();
        match runner.pass().await {
            Ok(c) => {
                clear_progress();
                println!(
                    "{name}: {} changed, {} unchanged, {} removed, {} failed in the chunker, {} chunks embedded",
                    c.changed, c.unchanged, c.removed, c.failed, c.embedded
                );
            }
            Err(e) => {
                clear_progress();
                eprintln!("{name}: {e:#}");
                failed = true;
            }
        }
    }
    progress.abort();
    let t = service.stage_times();
    if t.total_s() > 0.0 {
        println!(
            "time: reading {:.1} s, chunking {:.1} s, embedding {:.1} s, vector store {:.1} s, \
             BM25 index {:.1} s",
            t.read_s, t.chunk_s, t.embed_s, t.vectors_s, t.lexical_s
        );
    }
    if let Some(r) = renderer {
        r.shutdown().await;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A one-line progress display on a terminal: documents seen and chunks embedded so far.
fn spawn_progress(service: Arc<RagService>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let started = std::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let k = &service.counters;
            let docs = k.documents_changed.load(Ordering::Relaxed)
                + k.documents_unchanged.load(Ordering::Relaxed)
                + k.documents_failed.load(Ordering::Relaxed);
            let chunks = k.chunks_embedded.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64();
            eprint!(
                "\r\x1b[K{docs} documents, {chunks} chunks embedded ({:.0} chunks/s)",
                chunks as f64 / secs.max(0.001)
            );
        }
    })
}

fn clear_progress() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
}

/// The collections with their chunk counts (a Chroma store answers over the network with
/// a blocking client: off the async threads).
async fn collections(
    service: &Arc<RagService>,
) -> Result<Vec<(impressox_rag::CollectionInfo, usize)>> {
    let s = service.clone();
    Ok(tokio::task::spawn_blocking(move || s.index().collections()).await??)
}

/// The collection a query without one means: the only one, else the first source's.
async fn default_collection(config: &Config, service: Option<&Arc<RagService>>) -> Option<String> {
    if let Some(s) = service
        && let Ok(all) = collections(s).await
        && all.len() == 1
    {
        return Some(all[0].0.name.clone());
    }
    config.rag.sources.first().map(|s| s.collection.clone())
}

async fn query(config: &Config, mut body: Value, as_json: bool) -> Result<ExitCode> {
    let answer = match open(config).await {
        Ok(service) => {
            if body["collection"].is_null() {
                body["collection"] = json!(default_collection(config, Some(&service)).await);
            }
            let q = request::parse_query(&body, None).map_err(|e| anyhow!("{e}"))?;
            let started = std::time::Instant::now();
            let hits = tokio::task::spawn_blocking({
                let service = service.clone();
                move || service.query(&q)
            })
            .await??;
            json!({
                "collection": body["collection"],
                "took_ms": started.elapsed().as_secs_f64() * 1000.0,
                "results": hits.iter().map(hit_view).collect::<Vec<_>>(),
            })
        }
        Err(e) if locked(&e) => {
            if body["collection"].is_null() {
                body["collection"] = json!(default_collection(config, None).await);
            }
            api_call(config, reqwest::Method::POST, "rag/query", Some(body)).await?
        }
        Err(e) => return Err(e),
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    if results.is_empty() {
        println!(
            "no results in `{}`",
            answer["collection"].as_str().unwrap_or("?")
        );
    }
    for (i, r) in results.iter().enumerate() {
        let place = r["url"]
            .as_str()
            .or_else(|| r["document_id"].as_str())
            .unwrap_or("?");
        println!(
            "{}. [{:.3}] {} (chars {}-{})",
            i + 1,
            r["score"].as_f64().unwrap_or(0.0),
            place,
            r["start"],
            r["end"]
        );
        let text = r["text"].as_str().unwrap_or("");
        let short: String = text.chars().take(400).collect();
        let more = if text.chars().count() > 400 {
            " …"
        } else {
            ""
        };
        println!("   {}{more}\n", short.replace('\n', "\n   "));
    }
    Ok(ExitCode::SUCCESS)
}

async fn stats(config: &Config) -> Result<ExitCode> {
    let answer = match open(config).await {
        Ok(service) => {
            let s = service.clone();
            let listed = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                for (info, chunks) in s.index().collections()? {
                    let documents = s.index().document_ids(&info.name, "")?;
                    out.push(json!({
                        "name": info.name, "model": info.model_id, "dimension": info.dimension,
                        "chunks": chunks, "documents": documents.len(),
                    }));
                }
                anyhow::Ok(out)
            })
            .await??;
            json!({"model": service.embedder().model_id(), "collections": listed})
        }
        Err(e) if locked(&e) => {
            api_call(config, reqwest::Method::GET, "rag/collections", None).await?
        }
        Err(e) => return Err(e),
    };
    println!("embedder: {}", answer["model"].as_str().unwrap_or("?"));
    println!(
        "{:<24} {:>10} {:>10} {:>5}  MODEL",
        "COLLECTION", "DOCUMENTS", "CHUNKS", "DIM"
    );
    for c in answer["collections"].as_array().into_iter().flatten() {
        println!(
            "{:<24} {:>10} {:>10} {:>5}  {}",
            c["name"].as_str().unwrap_or("?"),
            c["documents"]
                .as_u64()
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            c["chunks"].as_u64().unwrap_or(0),
            c["dimension"].as_u64().unwrap_or(0),
            c["model"].as_str().unwrap_or("?"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn reindex(config: &Config, only: Option<String>) -> Result<ExitCode> {
    let service = open(config).await.map_err(|e| {
        if locked(&e) {
            anyhow!("{e:#}; stop the host first")
        } else {
            e
        }
    })?;
    let names: Vec<String> = collections(&service)
        .await?
        .into_iter()
        .map(|(info, _)| info.name)
        .filter(|n| only.as_ref().is_none_or(|o| o == n))
        .collect();
    if let Some(o) = &only
        && names.is_empty()
    {
        bail!("no collection named `{o}`");
    }
    for name in names {
        let s = service.clone();
        let n = name.clone();
        let started = std::time::Instant::now();
        let chunks =
            tokio::task::spawn_blocking(move || s.index().reindex(&n, s.embedder())).await??;
        println!(
            "{name}: {chunks} chunks re-embedded with {} in {:.1} s",
            service.embedder().model_id(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks the running host's API (`[api] listen`).
async fn api_call(
    config: &Config,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value> {
    let base = format!("http://{}", config.api.listen);
    let mut req = reqwest::Client::new().request(method, format!("{base}/api/v1/{path}"));
    if let Ok(token) = std::env::var("IMPRESSOX_API_TOKEN") {
        req = req.bearer_auth(token);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("the index is in use and no host answers at {base}"))?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    if !status.is_success() {
        bail!(
            "{base} answered {status}: {}",
            body["error"]["message"].as_str().unwrap_or("")
        );
    }
    Ok(body)
}
