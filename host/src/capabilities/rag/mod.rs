//! `impressox:plugin/rag`: retrieval for tasks and event handlers, on the index the `rag`
//! worker keeps. Grant: `[plugins.grants.<name>] rag = ["notes", "docs"]`.
//!
//! - **Collections**: a granted name is a RAG collection as the API names it (shared with
//!   the sources that feed it); a call naming any other is refused before the index is
//!   asked, saying which grant key would allow it.
//! - **query** takes the JSON body `POST /api/v1/rag/query` takes and answers that route's
//!   JSON (`rag::request`: the same fields, `k` cap, modes, filters and hit shape, and an
//!   error naming the bad field). With one collection granted, `collection` may be left out.
//! - **upsert** runs a document through the path a source's document takes
//!   (`rag::service`): the `[capabilities.rag] chunker` plugin cuts it, the chunks are
//!   hashed into a version, an unchanged version embeds nothing, a changed one replaces
//!   exactly the document's previous chunks. Its stored id is `plugin:<plugin>/<id>` and
//!   its source `plugin:<plugin>` (a source may not be named so), so a plugin never
//!   overwrites or deletes a source's document or another plugin's.
//! - **delete** removes exactly that document's chunks.
//!
//! The index is the rag worker's: one process holds the embedded store's file lock, so the
//! capability never opens its own. The worker starts after the capabilities are built (it
//! needs the plugin runtime for its chunkers), so it is reached through a [`Slot`] the
//! worker fills when it opens and clears when it stops; a call while the slot is empty is
//! an error the plugin sees, saying the worker does not run here. Embedding and the
//! chunker call block, so they run on the blocking pool; the call's deadline still
//! bounds the wait (an ingest already embedding finishes, and is skipped as unchanged if
//! the plugin retries).
//!
//! The seam: [`Index`] (what the capability needs of the worker's service, implemented
//! by `rag::capability`, so this module stays below the worker), [`Service`] (config and
//! the slot), [`Service::grant`] (one plugin's collections, checked at load);
//! `host.rs` is the adapter.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use impressox_rag::{Hit, Query, QueryError, StoreError};
use parking_lot::RwLock;
use serde_json::Value;

use super::budget::Moved;
use super::error::CapError;
use crate::rag::request::{answer_view, parse_query};

pub mod config;
pub(super) mod host;

pub use config::RagCapConfig;

/// The source name of plugin `plugin`'s documents; their ids are this, `/`, and the
/// plugin's id (as a source's are its name, `/`, and its own id).
pub fn plugin_source(plugin: &str) -> String {
    format!("plugin:{plugin}")
}

/// A document a plugin upserts.
#[derive(Debug, Clone)]
pub struct Document {
    pub id: String,
    pub text: String,
    pub media_type: String,
    pub metadata: Vec<(String, String)>,
    pub url: Option<String>,
    pub time_ms: Option<i64>,
}

impl Document {
    /// The bytes it moves into the host, for the per-call budget.
    pub fn bytes(&self) -> usize {
        let meta: usize = self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        self.id.len()
            + self.text.len()
            + self.media_type.len()
            + meta
            + self.url.as_ref().map_or(0, String::len)
            + 8
    }
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upserted {
    /// The chunks the document has now.
    pub chunks: u32,
    /// Chunks embedded by this call (0: unchanged).
    pub embedded: u32,
}

impl Moved for Upserted {
    fn moved(&self) -> usize {
        8
    }
}

/// What the capability needs of the rag worker's service. Every method blocks.
pub trait Index: Send + Sync {
    /// Answers a query with the configured embedder.
    fn query(&self, q: &Query) -> Result<Vec<Hit>, QueryError>;
    /// The embedder's model id (shown in a query's answer).
    fn model_id(&self) -> String;
    /// Chunk, version and (when changed) embed and store `doc` as `<source>/<doc.id>`.
    fn upsert(
        &self,
        collection: &str,
        source: &str,
        chunker: &str,
        doc: Document,
    ) -> Result<Upserted, CapError>;
    /// Remove the document `<source>/<id>`; false if there was none.
    fn delete(&self, collection: &str, source: &str, id: &str) -> Result<bool, CapError>;
}

/// An index error as the plugin sees it: what it can act on is shown, a failing store or
/// embedder is a backend error (logged, shown as a stable message).
pub fn index_error(during: &str, e: QueryError) -> CapError {
    match e {
        QueryError::Invalid { field, message } => {
            CapError::refused(format!("{during}: {field}: {message}"))
        }
        QueryError::Store(StoreError::UnknownCollection(c)) => CapError::refused(format!(
            "{during}: collection: unknown collection {c:?} (nothing is indexed in it yet)"
        )),
        QueryError::Store(e @ StoreError::ModelMismatch { .. }) => CapError::refused(format!(
            "{during}: collection: {e}; run `impressox rag reindex` to re-embed it"
        )),
        QueryError::Store(e) => CapError::Backend(anyhow::anyhow!(e)),
        QueryError::Embed(e) => CapError::Backend(anyhow::anyhow!("the embedder failed: {e}")),
    }
}

/// Where the rag worker's service is, once it runs in this process.
#[derive(Clone, Default)]
pub struct Slot(Arc<RwLock<Option<Arc<dyn Index>>>>);

impl Slot {
    /// The worker opened its service: calls reach it from now on.
    pub fn fill(&self, index: Arc<dyn Index>) {
        *self.0.write() = Some(index);
    }

    /// The worker stopped: calls are refused again. Only `index` is cleared, so a worker
    /// that stops after another took its place does not unplug the new one.
    pub fn clear(&self, index: &Arc<dyn Index>) {
        let mut slot = self.0.write();
        let same = slot
            .as_ref()
            .is_some_and(|s| std::ptr::addr_eq(Arc::as_ptr(s), Arc::as_ptr(index)));
        if same {
            *slot = None;
        }
    }

    pub fn get(&self) -> Option<Arc<dyn Index>> {
        self.0.read().clone()
    }
}

/// The `rag` capability of a host.
#[derive(Clone)]
pub struct Service {
    config: Arc<RagCapConfig>,
    slot: Slot,
}

impl Service {
    pub fn new(config: RagCapConfig, slot: Slot) -> Service {
        Service {
            config: Arc::new(config),
            slot,
        }
    }

    /// The state of plugin `name` granted `collections`; an invalid name is refused
    /// (the load fails naming the grant key).
    pub fn grant(&self, name: &str, collections: &[String]) -> Result<Granted, String> {
        for c in collections {
            if !valid_collection(c) {
                return Err(format!(
                    "`[plugins.grants.{name}] rag`: `{c}` is not a collection name; use 1-64 \
                     characters of a-z, 0-9, `-` and `_`"
                ));
            }
        }
        Ok(Granted {
            plugin: name.to_string(),
            source: plugin_source(name),
            collections: collections.iter().cloned().collect(),
            config: self.config.clone(),
            slot: self.slot.clone(),
        })
    }
}

fn valid_collection(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 64
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// One plugin's collections.
pub struct Granted {
    plugin: String,
    /// `plugin:<plugin>`: the source of its documents.
    source: String,
    collections: BTreeSet<String>,
    config: Arc<RagCapConfig>,
    slot: Slot,
}

impl Granted {
    /// A granted collection, or a refusal naming the grant key.
    fn collection(&self, during: &str, name: &str) -> Result<(), CapError> {
        if self.collections.contains(name) {
            return Ok(());
        }
        let granted: Vec<&str> = self.collections.iter().map(String::as_str).collect();
        Err(CapError::refused(format!(
            "{during}: collection {:?} is not granted to plugin `{}` (granted: {}); grant it \
             with `[plugins.grants.{}] rag = [..., \"{name}\"]`",
            crate::util::truncate(name, 80),
            self.plugin,
            granted.join(", "),
            self.plugin
        )))
    }

    /// The worker's service, or a refusal saying it does not run here.
    fn index(&self, during: &str) -> Result<Arc<dyn Index>, CapError> {
        self.slot.get().ok_or_else(|| {
            CapError::refused(format!(
                "{during}: the rag worker does not run in this process (add \"rag\" to \
                 [workers] enabled); nothing was done"
            ))
        })
    }

    fn check_id(&self, during: &str, id: &str) -> Result<(), CapError> {
        if id.is_empty() || id.len() > self.config.max_id_bytes || id.contains('\0') {
            return Err(CapError::refused(format!(
                "{during}: id {:?} must be 1 to {} bytes without NUL \
                 (`[capabilities.rag] max_id_bytes`)",
                crate::util::truncate(id, 80),
                self.config.max_id_bytes
            )));
        }
        Ok(())
    }

    pub async fn query(&self, request_json: &str) -> Result<String, CapError> {
        const DURING: &str = "rag.query";
        if request_json.len() > self.config.max_query_bytes {
            return Err(CapError::refused(format!(
                "{DURING}: the request is {} bytes, over the {}-byte cap \
                 (`[capabilities.rag] max_query_bytes`)",
                request_json.len(),
                self.config.max_query_bytes
            )));
        }
        let body: Value = serde_json::from_str(request_json)
            .map_err(|e| CapError::refused(format!("{DURING}: the request is not JSON: {e}")))?;
        // With one collection granted there is only one it can mean.
        let only = match self.collections.len() {
            1 => self.collections.first().map(String::as_str),
            _ => None,
        };
        let q =
            parse_query(&body, only).map_err(|e| CapError::refused(format!("{DURING}: {e}")))?;
        self.collection(DURING, &q.collection)?;
        let index = self.index(DURING)?;
        let started = Instant::now();
        let (q, hits, model) = blocking(move || {
            let hits = index.query(&q);
            (q, hits, index.model_id())
        })
        .await?;
        let hits = hits.map_err(|e| index_error(DURING, e))?;
        let took_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(answer_view(&q, &model, took_ms, &hits).to_string())
    }

    pub async fn upsert(&self, collection: &str, doc: Document) -> Result<Upserted, CapError> {
        const DURING: &str = "rag.upsert";
        self.collection(DURING, collection)?;
        self.check_id(DURING, &doc.id)?;
        let c = &self.config;
        if doc.text.len() > c.max_document_bytes {
            return Err(CapError::refused(format!(
                "{DURING}: document `{}` is {} bytes of text, over the {}-byte cap \
                 (`[capabilities.rag] max_document_bytes`)",
                doc.id,
                doc.text.len(),
                c.max_document_bytes
            )));
        }
        if doc.metadata.len() > c.max_metadata {
            return Err(CapError::refused(format!(
                "{DURING}: document `{}` has {} metadata entries, over the cap of {} \
                 (`[capabilities.rag] max_metadata`)",
                doc.id,
                doc.metadata.len(),
                c.max_metadata
            )));
        }
        if doc.media_type.trim().is_empty() {
            return Err(CapError::refused(format!(
                "{DURING}: document `{}`: media-type must not be empty (`text/markdown`, \
                 `text/plain`, `text/html`)",
                doc.id
            )));
        }
        let index = self.index(DURING)?;
        let (collection, source, chunker) = (
            collection.to_string(),
            self.source.clone(),
            c.chunker.clone(),
        );
        blocking(move || index.upsert(&collection, &source, &chunker, doc)).await?
    }

    pub async fn delete(&self, collection: &str, id: &str) -> Result<bool, CapError> {
        const DURING: &str = "rag.delete";
        self.collection(DURING, collection)?;
        self.check_id(DURING, id)?;
        let index = self.index(DURING)?;
        let (collection, source, id) =
            (collection.to_string(), self.source.clone(), id.to_string());
        blocking(move || index.delete(&collection, &source, &id)).await?
    }
}

/// Run blocking index work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CapError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CapError::Backend(anyhow::anyhow!("the rag task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(slot: Slot) -> Granted {
        Service::new(RagCapConfig::default(), slot)
            .grant("notes-bot", &["notes".into()])
            .unwrap()
    }

    fn refusal<T: std::fmt::Debug>(r: Result<T, CapError>) -> String {
        match r {
            Err(CapError::Refused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn grants_name_real_collections_only() {
        let s = Service::new(RagCapConfig::default(), Slot::default());
        let err = s.grant("p", &["../x".into()]).err().unwrap();
        assert!(err.contains("[plugins.grants.p] rag"), "{err}");
        let g = granted(Slot::default());
        let err = refusal(g.collection("rag.query", "tweets"));
        assert!(err.contains("rag = [..., \"tweets\"]"), "{err}");
    }

    #[tokio::test]
    async fn without_the_worker_every_call_says_so() {
        let g = granted(Slot::default());
        let err = refusal(g.query(r#"{"query": "x"}"#).await);
        assert!(err.contains("the rag worker does not run"), "{err}");
        let err = refusal(g.delete("notes", "a").await);
        assert!(err.contains("the rag worker does not run"), "{err}");
        // Bad input is named before the worker is looked for.
        let err = refusal(g.query(r#"{"query": "x", "k": 1000}"#).await);
        assert!(err.starts_with("rag.query: k:"), "{err}");
    }
}
