//! The embedder seam: text in, one unit-length vector per text out.
//!
//! Every embedder answers the same three questions, so the store and the search never know
//! which one made a vector:
//! - [`Embedder::model_id`]: a stable name a collection records, so vectors of two models are
//!   never compared (a mismatch is refused, not silently ranked).
//! - [`Embedder::dimension`]: the length of every vector.
//! - [`Embedder::embed`]: a batch of texts, in order; batching is the embedder's business
//!   (it sorts and pads as suits its model), callers hand over as many as they have.

//!
//! The embedders (`[rag.embedder] kind`):
//! - [`local`]: all-MiniLM-L6-v2 (BERT) in-process, our own encoder ([`bert`]) on our own
//!   CPU kernels ([`kernels`]); the default.
//! - [`static_model`]: a Model2Vec static model (a token table, very fast) from a folder.
//! - [`openai`]: a remote OpenAI-compatible `/v1/embeddings` endpoint; [`retry`] is its
//!   backoff policy.

pub mod bert;
pub mod kernels;
pub mod local;
pub mod openai;
pub mod retry;
pub mod static_model;

pub use local::LocalEmbedder;
pub use openai::{OpenAiConfig, OpenAiEmbedder};
pub use static_model::StaticEmbedder;

/// What went wrong turning text into vectors. The message names the model and the cause.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model folder or one of its files is missing or unreadable.
    #[error("embedding model {dir}: {message}")]
    Model { dir: String, message: String },
    /// The tokenizer refused a text (index in the batch).
    #[error("tokenizing text {index}: {message}")]
    Tokenize { index: usize, message: String },
    /// The model's forward pass failed.
    #[error("embedding model {model}: {message}")]
    Compute { model: String, message: String },
    /// A remote endpoint could not be reached, or answered something that is not an
    /// embeddings list (also: a bad endpoint config).
    #[error("embedding endpoint {endpoint}: {message}")]
    Endpoint { endpoint: String, message: String },
    /// A remote endpoint answered with an error status; `message` is the server's own.
    #[error("embedding endpoint {endpoint}: HTTP {status}: {message}")]
    Status {
        endpoint: String,
        status: u16,
        message: String,
    },
    /// A retryable failure that persisted through every try.
    #[error("{last} (gave up after {tries} tries)")]
    GaveUp { tries: u32, last: Box<EmbedError> },
    /// A vector of another length than the model's (configured or first seen).
    #[error("embedding model {model}: a vector of {got} dimensions, expected {expected}")]
    Dimension {
        model: String,
        expected: usize,
        got: usize,
    },
}

/// Turns texts into vectors of one model. Vectors are L2-normalised, so a dot product is
/// the cosine similarity.
pub trait Embedder: Send + Sync {
    /// A stable identifier of the model and its settings, recorded by collections.
    fn model_id(&self) -> &str;
    /// The length of every vector.
    fn dimension(&self) -> usize;
    /// One vector per text, in the order given.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// The dimension, finding it out first if the embedder learns it from its model's
    /// answers (`openai` without a configured `dimension` asks its server once). Blocks;
    /// the index calls it before it records or checks a collection's dimension.
    fn ensure_dimension(&self) -> Result<usize, EmbedError> {
        Ok(self.dimension())
    }
}

/// Scales a vector to unit length in place (a zero vector stays zero), as
/// sentence-transformers' `Normalize` does (it divides by max(norm, 1e-12)).
pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    for x in v {
        *x /= norm;
    }
}
