//! The document store: one seam, two backends (SPEC §5 `[documents]`).
//!
//! Documents are JSON objects with a string `_id`; the backend owns `_rev` (1 on insert,
//! +1 on every write), which makes compare-and-set ([`Write::ReplaceIf`]) possible on
//! both backends. Fields that are queried are scalars; opaque JSON (a notification's
//! `data`, a tweet's raw GraphQL object) is stored as a string field, so user keys never
//! meet MongoDB's field-name rules. `embedded` is a redb file under `data_dir`;
//! `mongodb` is MongoDB (tested against SecantusDB). Used by the notify worker (delivery
//! log, dead letters, preferences) and the scraper (tweets, profiles).
//! See docs/design/notify.md §2 for the reasoning.

use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use serde_json::Value;

use crate::config::{Config, DocumentsBackend};

pub mod embedded;
pub mod filter;
pub mod mongo;

pub use filter::{Cond, Filter, Order, Query};

/// A document: a JSON object with a string `_id`.
pub type Doc = serde_json::Map<String, Value>;

/// A secondary index a collection's user declares at start-up. Borrowed, so a worker's
/// fixed indexes are constants and one named by config (the RAG documents source's cursor
/// field) is built at run time.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec<'a> {
    pub collection: &'a str,
    pub name: &'a str,
    pub fields: &'a [(&'a str, Order)],
    /// Two documents may not share the indexed values (a missing field counts as null).
    pub unique: bool,
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Insert; [`WriteOutcome::Duplicate`] if the `_id` (or a unique index key) exists.
    Insert { coll: String, doc: Doc },
    /// Replace or insert by `_id`.
    Upsert { coll: String, doc: Doc },
    /// Replace only if the stored `_rev` is `rev` (compare-and-set).
    ReplaceIf { coll: String, doc: Doc, rev: u64 },
    /// Delete by `_id`.
    Delete { coll: String, id: String },
}

/// What became of one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Inserted,
    Duplicate,
    Upserted {
        created: bool,
    },
    Replaced {
        rev: u64,
    },
    /// `ReplaceIf` found another `_rev` (or no document).
    Conflict,
    Deleted,
    Missing,
}

/// The document-store seam.
#[async_trait]
pub trait Documents: Send + Sync {
    /// `embedded` or `mongodb`, for logs and `/readyz`.
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> Result<()>;
    /// Create indexes (idempotent); each user of a collection calls it at start-up.
    async fn ensure_indexes(&self, specs: &[IndexSpec<'_>]) -> Result<()>;
    async fn get(&self, coll: &str, id: &str) -> Result<Option<Doc>>;
    async fn find(&self, coll: &str, query: &Query) -> Result<Vec<Doc>>;
    async fn count(&self, coll: &str, filter: &Filter) -> Result<u64>;
    /// Apply writes, outcomes in input order. Each write is atomic by itself; the embedded
    /// store applies a batch in one transaction, MongoDB does not, so callers never rely
    /// on batch atomicity. No two writes of one batch may touch the same `_id`.
    async fn write(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>>;
    /// Delete every matching document; returns how many.
    async fn delete_where(&self, coll: &str, filter: &Filter) -> Result<u64>;
}

/// Insert one document; false for a duplicate.
pub async fn insert_one(docs: &dyn Documents, coll: &str, doc: Doc) -> Result<bool> {
    let out = docs
        .write(vec![Write::Insert {
            coll: coll.into(),
            doc,
        }])
        .await?;
    Ok(out.first() == Some(&WriteOutcome::Inserted))
}

/// Upsert one document; true if it was created.
pub async fn upsert(docs: &dyn Documents, coll: &str, doc: Doc) -> Result<bool> {
    let out = docs
        .write(vec![Write::Upsert {
            coll: coll.into(),
            doc,
        }])
        .await?;
    Ok(matches!(
        out.first(),
        Some(WriteOutcome::Upserted { created: true })
    ))
}

/// The `_id` of a document, or an error naming the collection.
pub fn id_of<'a>(coll: &str, doc: &'a Doc) -> Result<&'a str> {
    match doc.get("_id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id),
        _ => anyhow::bail!("a document for `{coll}` needs a non-empty string `_id`"),
    }
}

/// The `_rev` of a stored document (0 when absent).
pub fn rev_of(doc: &Doc) -> u64 {
    doc.get("_rev").and_then(Value::as_u64).unwrap_or(0)
}

/// Open the configured backend.
pub async fn open(config: &Config) -> Result<Arc<dyn Documents>> {
    Ok(match config.documents.backend {
        DocumentsBackend::Embedded => Arc::new(embedded::EmbeddedDocuments::open(
            &config.data_dir().join("documents.redb"),
        )?),
        DocumentsBackend::Mongodb => Arc::new(
            mongo::MongoDocuments::connect(
                &config.documents.mongodb_url,
                &config.documents.database,
            )
            .await?,
        ),
    })
}
