//! The rag worker (issue 15): sources in-process on real stores (`sources`), the query
//! API (`api`), and the worker as a process (`process`: files ingested within seconds,
//! kill -9 mid-ingest resumes exactly).

mod api;
mod chroma_auth;
mod process;
mod reindex;
mod render;
mod sources;

use std::sync::Arc;

use impressox_host::rag::RagService;
use impressox_host::rag::config::{RagConfig, SourceConfig, SourceKind};

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
