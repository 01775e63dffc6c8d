//! The rag worker (issue 15): sources in-process on real stores (`sources`), the query
//! API (`api`), and the worker as a process (`process`: files ingested within seconds,
//! kill -9 mid-ingest resumes exactly).

mod api;
mod chroma_auth;
mod process;
mod reindex;
mod render;
mod sources;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use impressox_host::rag::RagService;
use impressox_host::rag::config::{RagConfig, SourceConfig, SourceKind};
use serde_json::Value;

use crate::harness::TestHost;

/// A host with both bundled chunkers loaded and a rag service over `data_dir/rag`.
pub fn rag_host() -> (TestHost, Arc<RagService>) {
    let h = crate::harness::host();
    h.load(test_artifacts::MARKDOWN_CHUNKER, "markdown-chunker.wasm");
    h.load(test_artifacts::TWEET_CHUNKER, "tweet-chunker.wasm");
    let service = RagService::open(
        &RagConfig::default(),
        h.dir.path(),
        &h.config.data_dir(),
        h.runtime.clone(),
    )
    .unwrap();
    (h, Arc::new(service))
}

/// `POST /api/v1/rag/query` with `body` on the API at `base`: the status and the JSON answer.
pub async fn post_query(base: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/rag/query"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// A source of `kind` feeding `collection`.
pub fn source(name: &str, kind: SourceKind, collection: &str) -> SourceConfig {
    SourceConfig {
        name: name.into(),
        kind,
        collection: collection.into(),
        path: None,
        urls: Vec::new(),
        from: None,
        cursor_field: None,
        interval: None,
        chunker: None,
        allow_private_addresses: false,
        render: false,
    }
}

/// A host folder for the `impressox` binary: `plugins.d` holding the bundled markdown
/// chunker, and `impressox.toml` with `data_dir = "data"`, that plugin folder, then
/// `config` (more tables). Its path.
pub fn write_host_dir(dir: &Path, config: &str) -> PathBuf {
    let plugins = dir.join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(
        test_artifacts::MARKDOWN_CHUNKER,
        plugins.join("markdown-chunker.wasm"),
    )
    .unwrap();
    let path = dir.join("impressox.toml");
    std::fs::write(
        &path,
        format!("data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\n{config}"),
    )
    .unwrap();
    path
}

/// The `[[rag.sources]]` table of the folder `pages` feeding collection `docs`, with
/// `extra` keys (TOML lines).
pub fn pages_source(extra: &str) -> String {
    format!(
        "[[rag.sources]]\nname = \"pages\"\nkind = \"files\"\npath = \"pages\"\n\
         collection = \"docs\"\n{extra}"
    )
}
