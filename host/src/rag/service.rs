//! [`RagService`]: documents in, chunks with vectors stored, queries answered.
//!
//! One document's way in: the source's doc-chunker plugin cuts it; the chunks (text,
//! offsets, metadata) and the chunker's name are hashed into the document's **version**;
//! a version equal to the stored one means nothing changed and nothing is embedded (the
//! second run over the same sources embeds 0 chunks). Otherwise the chunks are embedded
//! and replace exactly the document's previous chunks in one store transaction
//! (`impressox_rag::RagIndex`). Because the version is a hash of what would be stored,
//! a record whose other fields change (a tweet's `last_seen_ms`, its like count) costs a
//! chunker call, never an embedding; and a crash mid-ingest resumes by writing the same
//! chunk ids (`document#version#index`), never a duplicate.
//!
//! Document ids are the source's name, `/`, and the source's own id (a path relative to
//! the folder, a URL, a record's `_id`), so each source can list what it stored and
//! remove what it no longer has, even when several sources feed one collection.
//!
//! Every method blocks (plugin calls, embedding, disk): async callers use
//! `spawn_blocking`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use impressox_rag::{ChunkText, DocumentChunks, Embedder, Hit, Query, QueryError, RagIndex};
use sha2::{Digest, Sha256};

use super::config::{EmbedderKind, RagConfig, SourceConfig, StoreKind};
use crate::bindings::types::{ChunkOptions, Document};
use crate::runtime::{CallError, Runtime};

/// A document as a source read it, before chunking.
#[derive(Debug, Clone)]
pub struct SourceDocument {
    /// The source's own id (relative path, URL, record id).
    pub id: String,
    pub text: String,
    pub media_type: String,
    pub metadata: Vec<(String, String)>,
    pub url: Option<String>,
    pub time_ms: Option<i64>,
}

/// What one ingest call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestCounts {
    /// Documents whose chunks were (re)written.
    pub changed: u64,
    /// Documents whose version was already stored.
    pub unchanged: u64,
    /// Documents the chunker refused (logged with the reason).
    pub failed: u64,
    /// Documents removed because their source no longer has them.
    pub removed: u64,
    /// Chunks embedded.
    pub embedded: u64,
}

impl IngestCounts {
    pub fn add(&mut self, o: IngestCounts) {
        self.changed += o.changed;
        self.unchanged += o.unchanged;
        self.failed += o.failed;
        self.removed += o.removed;
        self.embedded += o.embedded;
    }
}

/// Why a batch could not be ingested now (the caller keeps it and tries again later).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The chunker plugin is not loaded, quarantined or failing: nothing of the batch was
    /// stored past the documents already written.
    #[error("chunker: {0}")]
    Chunker(#[from] CallError),
    #[error(transparent)]
    Index(#[from] QueryError),
}

/// Counters the metrics endpoint and `rag stats` read.
#[derive(Debug, Default)]
pub struct RagCounters {
    pub documents_changed: AtomicU64,
    pub documents_unchanged: AtomicU64,
    pub documents_failed: AtomicU64,
    pub documents_removed: AtomicU64,
    pub chunks_embedded: AtomicU64,
    pub queries: AtomicU64,
    /// Unix ms of the last ingest that changed or removed something.
    pub last_change_ms: AtomicU64,
}

/// The RAG index, its embedder and the chunker plugins.
pub struct RagService {
    index: RagIndex,
    embedder: Arc<dyn Embedder>,
    runtime: Runtime,
    options: ChunkOptions,
    /// Chunks gathered before one embed-and-store call: eight of the embedder's batches
    /// (`[rag] embed_batch`), so a store transaction carries many documents while a crash
    /// loses at most that much work in progress.
    embed_batch: usize,
    pub counters: RagCounters,
}

impl std::fmt::Debug for RagService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RagService")
            .field("model", &self.embedder.model_id())
            .finish()
    }
}

impl RagService {
    /// Opens the configured store and embedder. `data_dir` is the host's; the embedded
    /// store lives in `data_dir/rag`.
    pub fn open(
        config: &RagConfig,
        base_dir: &Path,
        data_dir: &Path,
        runtime: Runtime,
    ) -> Result<RagService> {
        let embedder = open_embedder(config, base_dir)?;
        let dir = data_dir.join("rag");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let in_use = |e: &impressox_rag::StoreError| {
            let text = e.to_string();
            if text.contains("already open") || text.contains("lock") {
                " (another impressox process has it open: query it through its API, or stop it)"
            } else {
                ""
            }
        };
        let index = match config.store.kind {
            StoreKind::Embedded => RagIndex::open(&dir).map_err(|e| {
                anyhow::anyhow!(
                    "[rag.store] embedded store in {}: {e}{}",
                    dir.display(),
                    in_use(&e)
                )
            })?,
            StoreKind::Chroma => {
                let s = &config.store;
                let mut c = impressox_rag::ChromaConfig::new(s.url.clone().unwrap_or_default());
                c.tenant = s.tenant.clone();
                c.database = s.database.clone();
                if let Some(var) = &s.token_env {
                    // The token itself is never a config value nor logged.
                    let token = std::env::var(var).map_err(|_| {
                        anyhow::anyhow!(
                            "[rag.store] token_env: the environment variable {var} is not set"
                        )
                    })?;
                    if token.trim().is_empty() {
                        anyhow::bail!(
                            "[rag.store] token_env: the environment variable {var} is empty"
                        );
                    }
                    c.token = Some(token);
                }
                RagIndex::open_chroma(c, &dir).map_err(|e| {
                    anyhow::anyhow!(
                        "[rag.store] chroma: {e}{}{}",
                        in_use(&e),
                        token_hint(&e, s.token_env.as_deref())
                    )
                })?
            }
        };
        Ok(RagService {
            index,
            embedder,
            runtime,
            options: ChunkOptions {
                max_tokens: config.max_tokens,
                overlap_tokens: config.overlap_tokens,
            },
            embed_batch: config.embed_batch.max(1) * 8,
            counters: RagCounters::default(),
        })
    }

    pub fn index(&self) -> &RagIndex {
        &self.index
    }

    pub fn embedder(&self) -> &dyn Embedder {
        self.embedder.as_ref()
    }

    /// The stored document id of a source's document.
    pub fn document_id(source: &str, id: &str) -> String {
        format!("{source}/{id}")
    }

    /// Chunks, versions and (when changed) embeds and stores `docs` of `source`.
    /// A chunker error for one document is logged and counted; a chunker that cannot be
    /// called at all stops the batch with [`IngestError::Chunker`] (what was written
    /// before stays written; a retry skips it as unchanged).
    pub fn ingest(
        &self,
        source: &SourceConfig,
        docs: Vec<SourceDocument>,
    ) -> Result<IngestCounts, IngestError> {
        let mut counts = IngestCounts::default();
        let chunker = self.runtime.plugin(source.chunker());
        let chunker_name = source.chunker().to_string();
        let mut pending: Vec<DocumentChunks> = Vec::new();
        let mut pending_chunks = 0usize;
        for doc in docs {
            let document_id = Self::document_id(&source.name, &doc.id);
            let mut metadata = doc.metadata.clone();
            metadata.push(("collection".into(), source.collection.clone()));
            let input = Document {
                id: document_id.clone(),
                text: doc.text,
                media_type: doc.media_type,
                metadata,
            };
            let chunked = match chunker.chunk(&input, self.options)? {
                Ok(c) => c,
                Err(why) => {
                    tracing::warn!(
                        source = %source.name,
                        document = %document_id,
                        chunker = %chunker_name,
                        error = %why,
                        "the chunker refused a document; it is skipped until it changes"
                    );
                    counts.failed += 1;
                    continue;
                }
            };
            let chunks: Vec<ChunkText> = chunked
                .chunks
                .into_iter()
                .map(|c| ChunkText {
                    text: c.text,
                    start: c.start,
                    end: c.end,
                    metadata: c.metadata,
                })
                .collect();
            let version = version_of(&chunker_name, &chunks);
            let stored = self
                .index
                .document_version(&source.collection, &document_id)
                .map_err(QueryError::from)?;
            if stored.as_deref() == Some(version.as_str()) {
                counts.unchanged += 1;
                continue;
            }
            if stored.is_none() && chunks.is_empty() {
                // Nothing stored, nothing to store (an empty page, a tweet with no text).
                counts.unchanged += 1;
                continue;
            }
            pending_chunks += chunks.len();
            pending.push(DocumentChunks {
                document_id,
                version,
                source: source.name.clone(),
                url: doc.url,
                time_ms: doc.time_ms,
                chunks,
            });
            if pending_chunks >= self.embed_batch {
                self.flush(&source.collection, &mut pending, &mut counts)?;
                pending_chunks = 0;
            }
        }
        self.flush(&source.collection, &mut pending, &mut counts)?;
        self.count(counts);
        Ok(counts)
    }

    fn flush(
        &self,
        collection: &str,
        pending: &mut Vec<DocumentChunks>,
        counts: &mut IngestCounts,
    ) -> Result<(), IngestError> {
        if pending.is_empty() {
            return Ok(());
        }
        let docs = std::mem::take(pending);
        let n_docs = docs.len() as u64;
        let n_chunks: u64 = docs.iter().map(|d| d.chunks.len() as u64).sum();
        self.index
            .embed_and_upsert(collection, self.embedder.as_ref(), docs)?;
        counts.changed += n_docs;
        counts.embedded += n_chunks;
        Ok(())
    }

    /// The source's own ids of the documents it has stored (none before its collection
    /// exists).
    pub fn stored_ids(&self, source: &SourceConfig) -> Result<Vec<String>, QueryError> {
        let prefix = Self::document_id(&source.name, "");
        if self
            .index
            .vectors()
            .collection(&source.collection)?
            .is_none()
        {
            return Ok(Vec::new());
        }
        Ok(self
            .index
            .document_ids(&source.collection, &prefix)?
            .into_iter()
            .map(|(id, _)| id[prefix.len()..].to_string())
            .collect())
    }

    /// Removes the documents of `source` that are not in `present` (the source's own ids).
    pub fn remove_missing(
        &self,
        source: &SourceConfig,
        present: &HashSet<String>,
    ) -> Result<IngestCounts, QueryError> {
        let gone: Vec<String> = self
            .stored_ids(source)?
            .into_iter()
            .filter(|id| !present.contains(id))
            .map(|id| Self::document_id(&source.name, &id))
            .collect();
        self.remove(source, &gone)
    }

    /// Removes documents of `source` by their stored ids.
    pub fn remove(
        &self,
        source: &SourceConfig,
        document_ids: &[String],
    ) -> Result<IngestCounts, QueryError> {
        if document_ids.is_empty() {
            return Ok(IngestCounts::default());
        }
        let ids: Vec<&str> = document_ids.iter().map(String::as_str).collect();
        self.index.delete(&source.collection, &ids)?;
        for id in document_ids {
            tracing::info!(source = %source.name, document = %id, "removed a document its source no longer has");
        }
        let counts = IngestCounts {
            removed: ids.len() as u64,
            ..Default::default()
        };
        self.count(counts);
        Ok(counts)
    }

    /// Answers a query with the configured embedder.
    pub fn query(&self, q: &Query) -> Result<Vec<Hit>, QueryError> {
        self.counters.queries.fetch_add(1, Ordering::Relaxed);
        self.index.query(self.embedder.as_ref(), q)
    }

    fn count(&self, c: IngestCounts) {
        let k = &self.counters;
        k.documents_changed.fetch_add(c.changed, Ordering::Relaxed);
        k.documents_unchanged
            .fetch_add(c.unchanged, Ordering::Relaxed);
        k.documents_failed.fetch_add(c.failed, Ordering::Relaxed);
        k.documents_removed.fetch_add(c.removed, Ordering::Relaxed);
        k.chunks_embedded.fetch_add(c.embedded, Ordering::Relaxed);
        if c.changed + c.removed > 0 {
            k.last_change_ms
                .store(crate::util::now_ms() as u64, Ordering::Relaxed);
        }
    }
}

/// The embedder `[rag.embedder]` names.
fn open_embedder(config: &RagConfig, base_dir: &Path) -> Result<Arc<dyn Embedder>> {
    let e = &config.embedder;
    Ok(match e.kind {
        EmbedderKind::Local => {
            let dir = e.model_dir(base_dir);
            Arc::new(impressox_rag::LocalEmbedder::open(&dir).map_err(|err| {
                anyhow::anyhow!(
                    "[rag.embedder] local model: {err} (run `cargo xtask models` once, or set \
                     model_dir)"
                )
            })?)
        }
        EmbedderKind::Static => {
            let dir = match &e.model_dir {
                Some(_) => e.model_dir(base_dir),
                None => impressox_rag::embed::static_model::default_static_model_dir(),
            };
            Arc::new(impressox_rag::StaticEmbedder::open(&dir).map_err(|err| {
                anyhow::anyhow!(
                    "[rag.embedder] static model: {err} (run `cargo xtask models` once for the \
                     test model, or set model_dir to a Model2Vec folder)"
                )
            })?)
        }
        EmbedderKind::Openai => {
            let mut c = impressox_rag::OpenAiConfig::new(
                e.url.clone().unwrap_or_default(),
                e.model.clone().unwrap_or_default(),
            );
            c.batch_size = e.batch_size;
            c.dimension = e.dimension;
            if let Some(var) = &e.api_key_env {
                // The key itself is never a config value nor logged.
                let key = std::env::var(var).map_err(|_| {
                    anyhow::anyhow!(
                        "[rag.embedder] api_key_env: the environment variable {var} is not set"
                    )
                })?;
                c.api_key = Some(key);
            }
            Arc::new(
                impressox_rag::OpenAiEmbedder::new(c)
                    .map_err(|err| anyhow::anyhow!("[rag.embedder] openai: {err}"))?,
            )
        }
    })
}

/// A document's version: a hash of the chunker and every chunk's text, offsets and
/// metadata, i.e. of exactly what would be stored. Not of the embedding model: a
/// collection records its model and refuses another, and `rag reindex` re-embeds it
/// whole, after which the versions still hold.
pub fn version_of(chunker: &str, chunks: &[ChunkText]) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(chunker.as_bytes());
    for c in chunks {
        field(c.text.as_bytes());
        field(&c.start.to_le_bytes());
        field(&c.end.to_le_bytes());
        for (k, v) in &c.metadata {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        field(b"\x00chunk-end");
    }
    hex::encode(&h.finalize()[..12])
}

/// What to do about a Chroma server that refused the credentials: name the environment
/// variable the token came from (never the token), or the key that would send one.
pub fn token_hint(e: &impressox_rag::StoreError, token_env: Option<&str>) -> String {
    if !e.is_unauthorized() {
        return String::new();
    }
    match token_env {
        Some(var) => format!(
            " (the token is read from the environment variable {var}, [rag.store] token_env: \
             set it to the server's token)"
        ),
        None => " (the server requires a token: put it in an environment variable and name \
                  that variable in [rag.store] token_env)"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: &str) -> ChunkText {
        ChunkText {
            text: text.into(),
            start: 0,
            end: text.chars().count() as u32,
            metadata: vec![("section".into(), "A".into())],
        }
    }

    #[test]
    fn version_changes_with_any_stored_part_and_only_then() {
        let a = version_of("md", &[chunk("one"), chunk("two")]);
        assert_eq!(a, version_of("md", &[chunk("one"), chunk("two")]));
        assert_ne!(a, version_of("md", &[chunk("onetwo")]));
        assert_ne!(a, version_of("tw", &[chunk("one"), chunk("two")]));
        let mut c = chunk("one");
        c.metadata[0].1 = "B".into();
        assert_ne!(a, version_of("md", &[c, chunk("two")]));
        assert_eq!(a.len(), 24);
    }
}
