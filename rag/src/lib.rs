//! The retrieval core of ImpressoX Workers (issue 15; docs/design/rag.md): what turns chunks
//! of documents into vectors, keeps them on disk, and finds them again.
//!
//! - [`embed`]: the [`Embedder`] seam and its embedders: `local` (all-MiniLM-L6-v2 on
//!   our own CPU kernels), `static` (Model2Vec) and `openai` (a remote `/v1/embeddings`).
//! - [`chunk`]: the chunk records, chunk ids and search filters every part shares.
//! - [`scan`]: the exact top-k scan over a contiguous vector matrix.
//! - [`backend`]: the [`VectorBackend`] seam both vector stores implement.
//! - [`store`]: the embedded vector store (redb on disk, vectors in memory).
//! - [`chroma`]: a ChromaDB server as the vector store (v2 HTTP API).
//! - [`lexical`]: the BM25 index (tantivy on disk), cashtag-aware.
//! - [`hybrid`]: reciprocal rank fusion.
//! - [`index`]: [`RagIndex`], store and lexical index in step, and the query.
//!
//! The host's sources, REST, MCP and CLI (later phases) sit on [`RagIndex`] and
//! [`Embedder`].

pub mod backend;
pub mod chroma;
pub mod chunk;
pub mod embed;
pub mod hybrid;
pub mod index;
pub mod lexical;
pub mod scan;
pub mod store;

pub use backend::{CollectionInfo, StoreError, VectorBackend, VectorHit};
pub use chroma::{ChromaConfig, ChromaStore};
pub use chunk::{ChunkText, DocumentChunks, Filter, StoredChunk};
pub use embed::{
    EmbedError, Embedder, LocalEmbedder, OpenAiConfig, OpenAiEmbedder, StaticEmbedder,
};
pub use index::{Hit, MAX_K, Mode, Query, QueryError, RagIndex, WriteTimes};
pub use store::VectorStore;
