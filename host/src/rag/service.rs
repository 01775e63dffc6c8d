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
use crate::runtime::{CallError, PluginHandle, Runtime};

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

/// Where one document goes: its collection, its source (the first part of its stored
/// id) and the chunker that cuts it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub collection: &'a str,
    pub source: &'a str,
    pub chunker: &'a str,
}

/// What [`RagService::ingest_one`] did with a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Its chunks were (re)embedded and replace the stored ones.
    Stored { chunks: usize },
    /// Its version was already stored (or it has no chunks and none were stored).
    Unchanged { chunks: usize },
    /// The chunker refused it, saying why; nothing was stored.
    Refused(String),
}

/// A document after chunking and the version check.
enum Prepared {
    Refused { document_id: String, why: String },
    Unchanged { chunks: usize },
    Changed(DocumentChunks),
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
    /// Nanoseconds the sources spent reading documents (folder scans, page fetches,
    /// document-store pages), summed.
    pub read_ns: AtomicU64,
    /// Nanoseconds in the chunker plugins' calls, summed.
    pub chunk_ns: AtomicU64,
}

/// Where ingest time went since the service opened, by stage, in seconds (see
/// [`RagService::stage_times`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageTimes {
    /// Sources reading documents.
    pub read_s: f64,
    /// The chunker plugins.
    pub chunk_s: f64,
    /// The embedder.
    pub embed_s: f64,
    /// The vector store's transactions.
    pub vectors_s: f64,
    /// The BM25 index's updates and commits.
    pub lexical_s: f64,
}

impl StageTimes {
    /// The sum of the stages.
    pub fn total_s(&self) -> f64 {
        self.read_s + self.chunk_s + self.embed_s + self.vectors_s + self.lexical_s
    }
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

    /// Where ingest time went since the service opened (`impressox rag ingest` prints it;
    /// the ingest benchmark reads it). Counted where the work happens, so a pass's total
    /// minus these is the bookkeeping between them (versions, cursors).
    pub fn stage_times(&self) -> StageTimes {
        let secs = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e9;
        let w = self.index.write_times();
        StageTimes {
            read_s: secs(&self.counters.read_ns),
            chunk_s: secs(&self.counters.chunk_ns),
            embed_s: secs(&w.embed_ns),
            vectors_s: secs(&w.vectors_ns),
            lexical_s: secs(&w.lexical_ns),
        }
    }

    /// Adds the time since `started` to the reading stage (the sources call it).
    pub fn count_read(&self, started: std::time::Instant) {
        self.counters
            .read_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// The stored document id of a source's document.
    pub fn document_id(source: &str, id: &str) -> String {
        format!("{source}/{id}")
    }

    /// Chunks, versions and (when changed) embeds and stores `docs` of `source`.
    /// A chunker that fails on one document (an `Err`, a trap, its deadline, its memory or
    /// output cap) fails that document only: it is logged and counted, and the rest of the
    /// batch goes on, so one poison document never stalls its source. A chunker that
    /// cannot be called at all (not loaded, quarantined, the wrong kind, not instantiable)
    /// stops the batch with [`IngestError::Chunker`] (what was written before stays
    /// written; a retry skips it as unchanged).
    pub fn ingest(
        &self,
        source: &SourceConfig,
        docs: Vec<SourceDocument>,
    ) -> Result<IngestCounts, IngestError> {
        let mut counts = IngestCounts::default();
        let into = Target {
            collection: &source.collection,
            source: &source.name,
            chunker: source.chunker(),
        };
        let chunker = self.runtime.plugin(into.chunker);
        let mut pending: Vec<DocumentChunks> = Vec::new();
        let mut pending_chunks = 0usize;
        for doc in docs {
            match self.prepare(&into, &chunker, doc)? {
                Prepared::Refused { document_id, why } => {
                    tracing::warn!(
                        source = %source.name,
                        document = %document_id,
                        chunker = %into.chunker,
                        error = %why,
                        "the chunker failed on a document; it is skipped until it changes"
                    );
                    counts.failed += 1;
                }
                Prepared::Unchanged { .. } => counts.unchanged += 1,
                Prepared::Changed(doc) => {
                    pending_chunks += doc.chunks.len();
                    pending.push(doc);
                    if pending_chunks >= self.embed_batch {
                        self.flush(&source.collection, &mut pending, &mut counts)?;
                        pending_chunks = 0;
                    }
                }
            }
        }
        self.flush(&source.collection, &mut pending, &mut counts)?;
        self.count(counts);
        Ok(counts)
    }

    /// One document of `into.source` (a plugin's, through the `rag` capability) on the
    /// same path as a source's: chunked, versioned, embedded and stored only when changed.
    pub fn ingest_one(&self, into: &Target, doc: SourceDocument) -> Result<Ingested, IngestError> {
        let chunker = self.runtime.plugin(into.chunker);
        let mut counts = IngestCounts::default();
        let out = match self.prepare(into, &chunker, doc)? {
            Prepared::Refused { why, .. } => {
                counts.failed += 1;
                Ingested::Refused(why)
            }
            Prepared::Unchanged { chunks } => {
                counts.unchanged += 1;
                Ingested::Unchanged { chunks }
            }
            Prepared::Changed(doc) => {
                let chunks = doc.chunks.len();
                self.flush(into.collection, &mut vec![doc], &mut counts)?;
                Ingested::Stored { chunks }
            }
        };
        self.count(counts);
        Ok(out)
    }

    /// Chunks `doc` and compares its version with the stored one.
    fn prepare(
        &self,
        into: &Target,
        chunker: &PluginHandle,
        doc: SourceDocument,
    ) -> Result<Prepared, IngestError> {
        let document_id = Self::document_id(into.source, &doc.id);
        let mut metadata = doc.metadata.clone();
        metadata.push(("collection".into(), into.collection.to_string()));
        let input = Document {
            id: document_id.clone(),
            text: doc.text,
            media_type: doc.media_type,
            metadata,
        };
        let started = std::time::Instant::now();
        let called = chunker.chunk(&input, self.options);
        self.counters
            .chunk_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let chunked = match called {
            Ok(Ok(c)) => c,
            Ok(Err(why)) => return Ok(Prepared::Refused { document_id, why }),
            Err(e) if fails_this_document_only(&e) => {
                return Ok(Prepared::Refused {
                    document_id,
                    why: e.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
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
        let version = version_of(into.chunker, &chunks);
        let stored = self
            .index
            .document_version(into.collection, &document_id)
            .map_err(QueryError::from)?;
        if stored.as_deref() == Some(version.as_str()) {
            return Ok(Prepared::Unchanged {
                chunks: chunks.len(),
            });
        }
        if stored.is_none() && chunks.is_empty() {
            // Nothing stored, nothing to store (an empty page, a tweet with no text).
            return Ok(Prepared::Unchanged { chunks: 0 });
        }
        Ok(Prepared::Changed(DocumentChunks {
            document_id,
            version,
            source: into.source.to_string(),
            url: doc.url,
            time_ms: doc.time_ms,
            chunks,
        }))
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

    /// Removes the one document `document_id` of `collection` (all its chunks); false
    /// when it is not stored.
    pub fn remove_document(&self, collection: &str, document_id: &str) -> Result<bool, QueryError> {
        if self.index.vectors().collection(collection)?.is_none()
            || self
                .index
                .document_version(collection, document_id)?
                .is_none()
        {
            return Ok(false);
        }
        self.index.delete(collection, &[document_id])?;
        self.count(IngestCounts {
            removed: 1,
            ..Default::default()
        });
        Ok(true)
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
            let dir = e.embedder_dir(base_dir);
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

/// Whether a failed chunker call is that document's failure (the plugin ran on it and
/// trapped, spun past its deadline or went over a cap) rather than the chunker's: the
/// runtime's quarantine still counts these, so a chunker failing on every document is
/// stopped after `quarantine_after` of them in a row.
fn fails_this_document_only(e: &CallError) -> bool {
    matches!(
        e,
        CallError::Trap { .. }
            | CallError::Timeout { .. }
            | CallError::MemoryLimit { .. }
            | CallError::OutputTooLarge { .. }
    )
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
