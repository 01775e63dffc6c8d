//! `[capabilities.rag]`: the caps of the `rag` capability. A leaf, so the host's
//! configuration can hold it without depending on the capability's logic.

use serde::{Deserialize, Serialize};

/// `[capabilities.rag]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RagCapConfig {
    /// The doc-chunker plugin that cuts the documents plugins upsert.
    pub chunker: String,
    /// Largest document text, in bytes.
    pub max_document_bytes: usize,
    /// Longest document id, in bytes.
    pub max_id_bytes: usize,
    /// Most metadata entries on one document.
    pub max_metadata: usize,
    /// Largest query request, in bytes of JSON.
    pub max_query_bytes: usize,
}

impl Default for RagCapConfig {
    fn default() -> Self {
        RagCapConfig {
            chunker: "markdown-chunker".into(),
            max_document_bytes: 1024 * 1024,
            max_id_bytes: 256,
            max_metadata: 32,
            max_query_bytes: 16 * 1024,
        }
    }
}
