//! [`RagIndex`]: the vector store and the lexical index kept in step, and the query the
//! agent's API asks (vector, lexical or hybrid).
//!
//! The vector store is either backend of [`crate::backend::VectorBackend`]: the embedded
//! one ([`RagIndex::open`]) or a Chroma server ([`RagIndex::open_chroma`]); the lexical
//! index is always local.
//!
//! **Keeping the two in step across crashes.** A change to documents is:
//! 1. the store's change, which lists each document in its lexical to-do before the change
//!    is visible (the embedded store: chunks, records and to-do in one redb transaction;
//!    Chroma: the to-do in the local state's first transaction, see [`crate::chroma`]);
//! 2. the lexical index replaces those documents' entries with their *current* chunks (read
//!    back from the store) and commits;
//! 3. the store clears the to-do entries.
//!
//! A crash before 1 commits changes nothing; between 1 and 3 the to-do entries survive and
//! opening replays step 2 for them (idempotent: delete the document's entries,
//! add its current chunks). So the lexical index never keeps a chunk the store dropped, and
//! never misses one it holds, and nothing is rebuilt at open but those documents.
//! Writers are serialised, so a replay never applies an older state over a newer one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

use crate::backend::{CollectionInfo, StoreError, VectorBackend, VectorHit};
use crate::chroma::{ChromaConfig, ChromaStore};
use crate::chunk::{DocumentChunks, Filter, StoredChunk};
use crate::embed::{EmbedError, Embedder};
use crate::hybrid;
use crate::lexical::{LexicalHit, LexicalIndex};
use crate::store::VectorStore;

/// The largest `k` a query may ask for.
pub const MAX_K: usize = 100;
/// The longest query text, in chars.
pub const MAX_QUERY_CHARS: usize = 4096;

/// How a query ranks chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Cosine similarity of embeddings only.
    Vector,
    /// BM25 only.
    Lexical,
    /// Both, fused by reciprocal rank ([`crate::hybrid`]).
    #[default]
    Hybrid,
}

impl std::str::FromStr for Mode {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Mode, QueryError> {
        match s {
            "vector" => Ok(Mode::Vector),
            "lexical" => Ok(Mode::Lexical),
            "hybrid" => Ok(Mode::Hybrid),
            other => Err(QueryError::Invalid {
                field: "mode",
                message: format!("must be vector, lexical or hybrid, got {other:?}"),
            }),
        }
    }
}

/// A retrieval request, as `POST /api/v1/rag/query` will carry it.
#[derive(Debug, Clone)]
pub struct Query {
    pub collection: String,
    pub text: String,
    pub k: usize,
    pub mode: Mode,
    pub filter: Filter,
    /// Vector mode: least cosine. Lexical: least BM25 score. Hybrid: vector candidates below
    /// it are dropped before fusion; lexical candidates stay (an exact term match is
    /// evidence of its own, which a low cosine must not veto).
    pub min_score: Option<f32>,
}

/// One result.
#[derive(Debug, Clone)]
pub struct Hit {
    pub chunk: Arc<StoredChunk>,
    /// The score the mode ranks by: cosine, BM25, or the fused RRF score.
    pub score: f32,
    pub vector_score: Option<f32>,
    pub lexical_score: Option<f32>,
}

/// Why a query was not answered; `Invalid` names the request field.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// Time spent in each step of writing, summed since the index was opened: what an ingest's
/// stages cost (the service adds reading and chunking; `impressox rag ingest` prints them,
/// the ingest benchmark reads them).
#[derive(Debug, Default)]
pub struct WriteTimes {
    /// Embedding the chunks of [`RagIndex::embed_and_upsert`].
    pub embed_ns: AtomicU64,
    /// The vector store's upsert or delete (chunks, vectors, records: one transaction).
    pub vectors_ns: AtomicU64,
    /// The BM25 index's update and commit, and clearing the lexical to-do.
    pub lexical_ns: AtomicU64,
}

/// Adds the time since `started` to `counter`.
fn add_since(counter: &AtomicU64, started: Instant) {
    counter.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
}

/// The store, the lexical index and the rules that keep them in step.
pub struct RagIndex {
    vectors: Box<dyn VectorBackend>,
    lexical: LexicalIndex,
    /// One writer at a time (see the module note).
    writer: Mutex<()>,
    times: WriteTimes,
}

impl std::fmt::Debug for RagIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RagIndex")
            .field("vectors", &self.vectors)
            .field("lexical", &self.lexical)
            .finish()
    }
}

impl RagIndex {
    /// The embedded store: opens `data_dir/vectors.redb` and `data_dir/lexical`, and
    /// replays the lexical updates a crash interrupted.
    pub fn open(data_dir: &Path) -> Result<RagIndex, StoreError> {
        let vectors = VectorStore::open(data_dir)?;
        RagIndex::with_backend(Box::new(vectors), &data_dir.join("lexical"))
    }

    /// A Chroma server as the vector store (`[rag.store] kind = "chroma"`): chunks and
    /// vectors on the server, the BM25 index and the small local state the replacement
    /// protocol needs under `local_dir` (docs/design/rag.md §19). Checks the server (tenant
    /// and database are created if missing) and finishes replacements a crash or an
    /// unreachable server interrupted. Blocks on the network: call it from a blocking
    /// thread, never from inside an async runtime.
    pub fn open_chroma(config: ChromaConfig, local_dir: &Path) -> Result<RagIndex, StoreError> {
        let vectors = ChromaStore::open(config, local_dir)?;
        RagIndex::with_backend(Box::new(vectors), &local_dir.join("lexical"))
    }

    /// Any backend, with its lexical index in `lexical_dir`.
    pub fn with_backend(
        vectors: Box<dyn VectorBackend>,
        lexical_dir: &Path,
    ) -> Result<RagIndex, StoreError> {
        let lexical = LexicalIndex::open(lexical_dir)?;
        let index = RagIndex {
            vectors,
            lexical,
            writer: Mutex::new(()),
            times: WriteTimes::default(),
        };
        for (collection, ids) in index.vectors.lexical_todo()? {
            index.sync_lexical(&collection, &ids)?;
        }
        Ok(index)
    }

    pub fn vectors(&self) -> &dyn VectorBackend {
        self.vectors.as_ref()
    }

    pub fn lexical(&self) -> &LexicalIndex {
        &self.lexical
    }

    /// Time spent writing, by step, since the index was opened.
    pub fn write_times(&self) -> &WriteTimes {
        &self.times
    }

    /// See [`VectorBackend::ensure_collection`]. The embedder's dimension must be known
    /// (call [`Embedder::ensure_dimension`] first for one that learns it, as
    /// [`RagIndex::embed_and_upsert`] does).
    pub fn ensure_collection(
        &self,
        name: &str,
        embedder: &dyn Embedder,
    ) -> Result<CollectionInfo, StoreError> {
        self.vectors
            .ensure_collection(name, embedder.model_id(), embedder.dimension())
    }

    /// Refuses `name` if it is recorded with another model or dimension than `embedder`'s
    /// (a collection not made yet passes): what an ingest checks first, so switching the
    /// embedder is reported even when nothing changed and nothing would be embedded.
    pub fn check_model(&self, name: &str, embedder: &dyn Embedder) -> Result<(), QueryError> {
        if let Some(info) = self.vectors.collection(name)? {
            let dimension = embedder.ensure_dimension()?;
            crate::backend::check_model(&info, embedder.model_id(), dimension)?;
        }
        Ok(())
    }

    /// The version stored for a document (see [`VectorBackend::document_version`]).
    pub fn document_version(
        &self,
        collection: &str,
        document_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.vectors.document_version(collection, document_id)
    }

    /// The documents whose ids start with `prefix`, with their versions (see
    /// [`VectorBackend::document_ids`]).
    pub fn document_ids(
        &self,
        collection: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.vectors.document_ids(collection, prefix)
    }

    /// Every collection with its number of chunks (`impressox rag stats`).
    pub fn collections(&self) -> Result<Vec<(CollectionInfo, usize)>, StoreError> {
        self.vectors.collections()
    }

    /// Steps 2 and 3 of the module note for `ids` of `collection`.
    fn sync_lexical(&self, collection: &str, ids: &[String]) -> Result<(), StoreError> {
        let started = Instant::now();
        let synced = self.sync_lexical_untimed(collection, ids);
        add_since(&self.times.lexical_ns, started);
        synced
    }

    fn sync_lexical_untimed(&self, collection: &str, ids: &[String]) -> Result<(), StoreError> {
        let chunks = self.vectors.documents_chunks(collection, ids)?;
        let docs: Vec<(String, Vec<Arc<StoredChunk>>)> = ids.iter().cloned().zip(chunks).collect();
        self.lexical.apply(collection, &docs)?;
        self.vectors.clear_lexical_todo(collection, ids)
    }

    /// Replaces each document's chunks (and vectors) in both indexes: after it returns, a
    /// document has exactly the given chunks, searchable both ways.
    pub fn upsert(
        &self,
        collection: &str,
        docs: &[(DocumentChunks, Vec<Vec<f32>>)],
    ) -> Result<(), StoreError> {
        let _w = self.writer.lock();
        let started = Instant::now();
        self.vectors.upsert(collection, docs)?;
        add_since(&self.times.vectors_ns, started);
        let ids: Vec<String> = docs.iter().map(|(d, _)| d.document_id.clone()).collect();
        self.sync_lexical(collection, &ids)
    }

    /// Embeds the documents' chunks with `embedder` (all in one call, so batching spans
    /// documents) and upserts them.
    pub fn embed_and_upsert(
        &self,
        collection: &str,
        embedder: &dyn Embedder,
        docs: Vec<DocumentChunks>,
    ) -> Result<(), QueryError> {
        embedder.ensure_dimension()?;
        self.ensure_collection(collection, embedder)?;
        let texts: Vec<&str> = docs
            .iter()
            .flat_map(|d| d.chunks.iter().map(|c| c.text.as_str()))
            .collect();
        let started = Instant::now();
        let embedded = embedder.embed(&texts);
        add_since(&self.times.embed_ns, started);
        let mut vectors = embedded?.into_iter();
        let docs: Vec<(DocumentChunks, Vec<Vec<f32>>)> = docs
            .into_iter()
            .map(|d| {
                let v: Vec<Vec<f32>> = vectors.by_ref().take(d.chunks.len()).collect();
                (d, v)
            })
            .collect();
        Ok(self.upsert(collection, &docs)?)
    }

    /// Re-embeds every chunk of `collection` with `embedder` and records its model: what
    /// `impressox rag reindex` runs after the embedder changed. All or nothing (see
    /// [`VectorBackend::reembed`]). Returns the number of chunks.
    pub fn reindex(&self, collection: &str, embedder: &dyn Embedder) -> Result<usize, QueryError> {
        let _w = self.writer.lock();
        if self.vectors.collection(collection)?.is_none() {
            return Err(StoreError::UnknownCollection(collection.to_string()).into());
        }
        let chunks = self.vectors.all_chunks(collection)?;
        let mut vectors = HashMap::with_capacity(chunks.len());
        for batch in chunks.chunks(256) {
            let texts: Vec<&str> = batch.iter().map(|c| c.text.as_str()).collect();
            for (c, v) in batch.iter().zip(embedder.embed(&texts)?) {
                vectors.insert(c.chunk_id.clone(), v);
            }
        }
        Ok(self.vectors.reembed(
            collection,
            embedder.model_id(),
            embedder.dimension(),
            &vectors,
        )?)
    }

    /// Removes documents and their chunks from both indexes.
    pub fn delete(&self, collection: &str, document_ids: &[&str]) -> Result<(), StoreError> {
        let _w = self.writer.lock();
        let started = Instant::now();
        self.vectors.delete(collection, document_ids)?;
        add_since(&self.times.vectors_ns, started);
        let ids: Vec<String> = document_ids.iter().map(|s| s.to_string()).collect();
        self.sync_lexical(collection, &ids)
    }

    /// Answers a query. The embedder must be the collection's (model id and dimension).
    pub fn query(&self, embedder: &dyn Embedder, q: &Query) -> Result<Vec<Hit>, QueryError> {
        let invalid = |field, message: String| QueryError::Invalid { field, message };
        if q.text.trim().is_empty() {
            return Err(invalid("query", "must not be empty".into()));
        }
        if q.text.chars().count() > MAX_QUERY_CHARS {
            return Err(invalid(
                "query",
                format!("longer than {MAX_QUERY_CHARS} chars"),
            ));
        }
        if q.k == 0 || q.k > MAX_K {
            return Err(invalid("k", format!("must be 1 to {MAX_K}, got {}", q.k)));
        }
        if let Some(m) = q.min_score
            && !m.is_finite()
        {
            return Err(invalid("min_score", "must be a finite number".into()));
        }
        let info = self.vectors.collection(&q.collection)?.ok_or_else(|| {
            invalid(
                "collection",
                format!("unknown collection {:?}", q.collection),
            )
        })?;
        let dimension = embedder.ensure_dimension()?;
        if info.model_id != embedder.model_id() || info.dimension != dimension {
            return Err(StoreError::ModelMismatch {
                collection: info.name,
                stored_model: info.model_id,
                stored_dim: info.dimension,
                model: embedder.model_id().to_string(),
                dim: dimension,
            }
            .into());
        }
        // Hybrid looks deeper than k in each list: a chunk ranked 30th by one list and
        // well by the other belongs in the fused top k.
        let depth = match q.mode {
            Mode::Hybrid => (q.k * 5).max(50),
            _ => q.k,
        };
        // The two lists are independent: the BM25 search needs only the text, so it runs
        // on a second thread while the query is embedded and the vectors scanned (the
        // scan then spreads over both cores, see `scan`).
        let vector_side = || -> Result<Vec<VectorHit>, QueryError> {
            if q.mode == Mode::Lexical {
                return Ok(Vec::new());
            }
            let v = embedder.embed(&[q.text.as_str()])?.remove(0);
            Ok(self.vectors.search(
                &q.collection,
                embedder.model_id(),
                &v,
                depth,
                &q.filter,
                q.min_score,
            )?)
        };
        let lexical_side = || -> Result<Vec<LexicalHit>, QueryError> {
            if q.mode == Mode::Vector {
                return Ok(Vec::new());
            }
            let min = if q.mode == Mode::Lexical {
                q.min_score
            } else {
                None
            };
            Ok(self
                .lexical
                .search(&q.collection, &q.text, depth, &q.filter)?
                .into_iter()
                .filter(|h| min.is_none_or(|m| h.score >= m))
                .collect())
        };
        let (vector_hits, lexical_hits) = if q.mode == Mode::Hybrid {
            let (v, l) = rayon::join(vector_side, lexical_side);
            (v?, l?)
        } else {
            (vector_side()?, lexical_side()?)
        };
        Ok(match q.mode {
            Mode::Vector => vector_hits
                .into_iter()
                .map(|h| Hit {
                    score: h.score,
                    vector_score: Some(h.score),
                    lexical_score: None,
                    chunk: h.chunk,
                })
                .collect(),
            Mode::Lexical => {
                let ids: Vec<&str> = lexical_hits.iter().map(|h| h.chunk_id.as_str()).collect();
                let chunks = self.vectors.chunks_by_id(&q.collection, &ids)?;
                lexical_hits
                    .iter()
                    .zip(chunks)
                    .filter_map(|(h, chunk)| {
                        Some(Hit {
                            chunk: chunk?,
                            score: h.score,
                            vector_score: None,
                            lexical_score: Some(h.score),
                        })
                    })
                    .collect()
            }
            Mode::Hybrid => {
                let v_ids: Vec<&str> = vector_hits
                    .iter()
                    .map(|h| h.chunk.chunk_id.as_str())
                    .collect();
                let l_ids: Vec<&str> = lexical_hits.iter().map(|h| h.chunk_id.as_str()).collect();
                let v_scores: HashMap<&str, &VectorHit> = vector_hits
                    .iter()
                    .map(|h| (h.chunk.chunk_id.as_str(), h))
                    .collect();
                let l_scores: HashMap<&str, f32> = lexical_hits
                    .iter()
                    .map(|h| (h.chunk_id.as_str(), h.score))
                    .collect();
                // Twice k candidates: a lexical entry whose chunk is gone (a replacement
                // not yet replayed) is skipped and the next one takes its place.
                let fused: Vec<(&str, f32)> = hybrid::fuse(&[&v_ids, &l_ids])
                    .into_iter()
                    .take(q.k * 2)
                    .collect();
                // Chunks only the lexical list found: looked up in one call (one request
                // on a remote store).
                let missing: Vec<&str> = fused
                    .iter()
                    .map(|(id, _)| *id)
                    .filter(|id| !v_scores.contains_key(id))
                    .collect();
                let found: HashMap<&str, Arc<StoredChunk>> = missing
                    .iter()
                    .copied()
                    .zip(self.vectors.chunks_by_id(&q.collection, &missing)?)
                    .filter_map(|(id, c)| Some((id, c?)))
                    .collect();
                fused
                    .into_iter()
                    .filter_map(|(id, score)| {
                        let v = v_scores.get(id);
                        let chunk = match v {
                            Some(h) => h.chunk.clone(),
                            None => found.get(id)?.clone(),
                        };
                        Some(Hit {
                            chunk,
                            score,
                            vector_score: v.map(|h| h.score),
                            lexical_score: l_scores.get(id).copied(),
                        })
                    })
                    .take(q.k)
                    .collect()
            }
        })
    }
}
