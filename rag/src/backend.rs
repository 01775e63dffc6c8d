//! The vector-store seam: what [`crate::RagIndex`] needs of a place that keeps chunks with
//! their vectors, so the same index (and the same test suite) runs on the embedded store
//! ([`crate::store::VectorStore`]) or on a Chroma server ([`crate::chroma::ChromaStore`]).
//!
//! The types every backend shares live here, below both implementations: the error, the
//! collection record, a search hit, and the checks of names and models.
//!
//! **Contract** (what both backends are tested for, `rag/tests/store.rs`):
//! - [`VectorBackend::upsert`] replaces exactly a document's chunks: after it returns the
//!   document has the given chunks and no other, whatever a crash or a restart of a server
//!   interrupted before; calling it again with the same input changes nothing.
//! - Every change lists the document in the lexical to-do ([`VectorBackend::lexical_todo`])
//!   before it is visible, so [`crate::RagIndex`] can bring the BM25 index in step after a
//!   crash (docs/design/rag.md §10).
//! - Lookups and search never return a chunk of a version the document no longer has.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::chunk::{DocumentChunks, Filter, StoredChunk};

/// What went wrong in a store; messages name the collection, document, file or server.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("vector store {path}: {message}")]
    Io { path: String, message: String },
    /// A remote store (Chroma) failed: the server's URL (never a token) and the operation.
    #[error("chroma server {url}: {operation}: {message}")]
    Remote {
        url: String,
        operation: String,
        message: String,
    },
    #[error("unknown collection {0:?}")]
    UnknownCollection(String),
    #[error(
        "collection {collection:?} holds vectors of {stored_model} ({stored_dim} dims); \
         the embedder is {model} ({dim} dims): re-embed the collection (impressox rag reindex) \
         or use its embedder"
    )]
    ModelMismatch {
        collection: String,
        stored_model: String,
        stored_dim: usize,
        model: String,
        dim: usize,
    },
    #[error("document {document:?}: {got} vectors for {want} chunks")]
    VectorCount {
        document: String,
        got: usize,
        want: usize,
    },
    #[error("document {document:?} chunk {index}: vector of {got} dims, collection has {want}")]
    Dimension {
        document: String,
        index: usize,
        got: usize,
        want: usize,
    },
    #[error("collection name must be 1-128 chars without control characters: {0:?}")]
    BadName(String),
    #[error("lexical index {path}: {message}")]
    Lexical { path: String, message: String },
}

impl StoreError {
    /// A remote store refused the request's credentials (HTTP 401 or 403): a missing or
    /// wrong token, which retrying does not fix.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, StoreError::Remote { message, .. }
            if message.starts_with("HTTP 401") || message.starts_with("HTTP 403"))
    }
}

/// What a collection records about the vectors in it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CollectionInfo {
    pub name: String,
    pub model_id: String,
    pub dimension: usize,
    pub created_ms: i64,
}

/// What a store keeps per document: its version and the ids of its chunks, in order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct DocRecord {
    pub version: String,
    pub chunk_ids: Vec<String>,
}

/// A search result of a vector store: the chunk and its cosine similarity.
#[derive(Debug, Clone)]
pub struct VectorHit {
    pub chunk: Arc<StoredChunk>,
    pub score: f32,
}

/// A store of chunks and vectors, as [`crate::RagIndex`] uses it. Methods block (the
/// crate is synchronous: callers run it on a blocking thread).
pub trait VectorBackend: Send + Sync + std::fmt::Debug {
    /// `"embedded"` or `"chroma"`: what `impressox rag stats` shows.
    fn kind(&self) -> &'static str;

    /// The collection `name` for vectors of `model_id` × `dimension`: created if new,
    /// refused ([`StoreError::ModelMismatch`]) if it holds another model's vectors.
    fn ensure_collection(
        &self,
        name: &str,
        model_id: &str,
        dimension: usize,
    ) -> Result<CollectionInfo, StoreError>;

    /// The collection's record, if it exists.
    fn collection(&self, name: &str) -> Result<Option<CollectionInfo>, StoreError>;

    /// Every collection with its number of chunks, by name.
    fn collections(&self) -> Result<Vec<(CollectionInfo, usize)>, StoreError>;

    /// The version stored for a document, if any (what an ingest compares to skip an
    /// unchanged document without embedding it).
    fn document_version(
        &self,
        collection: &str,
        document_id: &str,
    ) -> Result<Option<String>, StoreError>;

    /// The chunks stored for each document, in chunk order (empty for an unknown one).
    fn documents_chunks(
        &self,
        collection: &str,
        document_ids: &[String],
    ) -> Result<Vec<Vec<Arc<StoredChunk>>>, StoreError>;

    /// Stored chunks by id, in the order asked (`None`: not stored).
    fn chunks_by_id(
        &self,
        collection: &str,
        chunk_ids: &[&str],
    ) -> Result<Vec<Option<Arc<StoredChunk>>>, StoreError>;

    /// Replaces the chunks of each document with the given ones (and their vectors): after
    /// it, each document has exactly these chunks; one with none is removed. Lists the
    /// documents in the lexical to-do.
    fn upsert(
        &self,
        collection: &str,
        docs: &[(DocumentChunks, Vec<Vec<f32>>)],
    ) -> Result<(), StoreError>;

    /// Removes documents and all their chunks. Unknown ids are no-ops.
    fn delete(&self, collection: &str, document_ids: &[&str]) -> Result<(), StoreError>;

    /// The `k` chunks most similar to `query` (a unit vector of the collection's model)
    /// that pass `filter`, best first, with scores at or above `min_score` when given.
    fn search(
        &self,
        collection: &str,
        model_id: &str,
        query: &[f32],
        k: usize,
        filter: &Filter,
        min_score: Option<f32>,
    ) -> Result<Vec<VectorHit>, StoreError>;

    /// Documents whose lexical entries may lag the vectors, by collection.
    fn lexical_todo(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError>;

    /// Clears to-do entries once the lexical index has committed them.
    fn clear_lexical_todo(
        &self,
        collection: &str,
        document_ids: &[String],
    ) -> Result<(), StoreError>;

    /// The documents of a collection whose ids start with `prefix`, with their versions,
    /// in id order: what a source compares with what it still has.
    fn document_ids(
        &self,
        collection: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Every stored chunk of a collection (what a re-embedding reads).
    fn all_chunks(&self, collection: &str) -> Result<Vec<Arc<StoredChunk>>, StoreError>;

    /// Gives every chunk of `collection` its vector from `vectors` (by chunk id) and records
    /// the new model, all or nothing.
    fn reembed(
        &self,
        collection: &str,
        model_id: &str,
        dimension: usize,
        vectors: &std::collections::HashMap<String, Vec<f32>>,
    ) -> Result<usize, StoreError>;

    /// The chunks stored for one document, in chunk order.
    fn document_chunks(
        &self,
        collection: &str,
        document_id: &str,
    ) -> Result<Vec<Arc<StoredChunk>>, StoreError> {
        Ok(self
            .documents_chunks(collection, &[document_id.to_string()])?
            .pop()
            .unwrap_or_default())
    }

    /// One stored chunk by id.
    fn chunk(
        &self,
        collection: &str,
        chunk_id: &str,
    ) -> Result<Option<Arc<StoredChunk>>, StoreError> {
        Ok(self.chunks_by_id(collection, &[chunk_id])?.pop().flatten())
    }
}

pub(crate) fn check_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(StoreError::BadName(name.to_string()));
    }
    Ok(())
}

/// The re-embedded vector of `c` from a reindex's map (by chunk id), checked for length:
/// what both backends' `reembed` require of every chunk before they write anything.
pub(crate) fn new_vector<'a>(
    c: &StoredChunk,
    vectors: &'a std::collections::HashMap<String, Vec<f32>>,
    dimension: usize,
) -> Result<&'a [f32], StoreError> {
    match vectors.get(&c.chunk_id) {
        Some(v) if v.len() == dimension => Ok(v),
        Some(v) => Err(StoreError::Dimension {
            document: c.document_id.clone(),
            index: c.index as usize,
            got: v.len(),
            want: dimension,
        }),
        None => Err(StoreError::VectorCount {
            document: c.document_id.clone(),
            got: 0,
            want: 1,
        }),
    }
}

pub(crate) fn check_model(
    info: &CollectionInfo,
    model_id: &str,
    dimension: usize,
) -> Result<(), StoreError> {
    if info.model_id != model_id || info.dimension != dimension {
        return Err(StoreError::ModelMismatch {
            collection: info.name.clone(),
            stored_model: info.model_id.clone(),
            stored_dim: info.dimension,
            model: model_id.to_string(),
            dim: dimension,
        });
    }
    Ok(())
}

/// Checks vector counts and lengths of an upsert before anything is written, so a bad
/// input stores nothing.
pub(crate) fn check_upsert(
    info: &CollectionInfo,
    docs: &[(DocumentChunks, Vec<Vec<f32>>)],
) -> Result<(), StoreError> {
    for (doc, vectors) in docs {
        if vectors.len() != doc.chunks.len() {
            return Err(StoreError::VectorCount {
                document: doc.document_id.clone(),
                got: vectors.len(),
                want: doc.chunks.len(),
            });
        }
        if let Some((index, v)) = vectors
            .iter()
            .enumerate()
            .find(|(_, v)| v.len() != info.dimension)
        {
            return Err(StoreError::Dimension {
                document: doc.document_id.clone(),
                index,
                got: v.len(),
                want: info.dimension,
            });
        }
    }
    Ok(())
}

/// The documents of `collection` whose ids start with `prefix`, with their versions, in id
/// order, from a `(collection, document id) → DocRecord` table: the embedded store and the
/// Chroma backend's local state keep the same table, so both list through this.
pub(crate) fn prefixed_versions(
    db: &redb::Database,
    table: redb::TableDefinition<(&str, &str), &[u8]>,
    collection: &str,
    prefix: &str,
    io: impl Fn(&dyn std::fmt::Display) -> StoreError,
) -> Result<Vec<(String, String)>, StoreError> {
    let rx = db.begin_read().map_err(|e| io(&e))?;
    let t = rx.open_table(table).map_err(|e| io(&e))?;
    let mut out = Vec::new();
    for entry in t.range((collection, prefix)..).map_err(|e| io(&e))? {
        let (k, v) = entry.map_err(|e| io(&e))?;
        let (c, id) = k.value();
        if c != collection || !id.starts_with(prefix) {
            break;
        }
        let record: DocRecord =
            serde_json::from_slice(v.value()).map_err(|e| io(&format!("document {id:?}: {e}")))?;
        out.push((id.to_string(), record.version));
    }
    Ok(out)
}
