//! `[capabilities.docs]`: the caps of the `docs` capability. A leaf, so the host's
//! configuration can hold it without depending on the capability's logic.

use serde::{Deserialize, Serialize};

/// `[capabilities.docs]`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocsConfig {
    /// Largest document, in bytes of JSON.
    pub max_document_bytes: usize,
    /// Most documents one `find` may ask for.
    pub max_find_limit: u32,
    /// Longest id, in bytes.
    pub max_id_bytes: usize,
}

impl Default for DocsConfig {
    fn default() -> Self {
        DocsConfig {
            max_document_bytes: 1024 * 1024,
            max_find_limit: 1000,
            max_id_bytes: 256,
        }
    }
}
