//! Retrieval-augmented generation: what turns documents into context for the agent.
//!
//! Today this holds the pieces the document chunkers need (docs/design/rag.md):
//! - [`config`]: the `[rag]` table (`[rag.embedder] model_dir`).
//! - [`tokens`]: [`tokens::TokenCounter`], the embedder's token count behind the
//!   `impressox:plugin/tokens` import of doc-chunker plugins, with its implementation on the
//!   model folder's `tokenizer.json` and the lookup of that folder.
//!
//! Embedders, vector stores and sources build on these: an embedder reads the same
//! `model_dir`, and its tokenizer is the one chunks are sized with.

pub mod config;
pub mod tokens;

pub use config::{EmbedderConfig, RagConfig};
pub use tokens::{TokenCounter, Tokens};
