//! Retrieval-augmented generation: the `rag` worker, which turns documents into context
//! for the agent (SPEC §10.3; docs/design/rag.md).
//!
//! - [`config`]: the `[rag]` table.
//! - [`tokens`]: [`tokens::TokenCounter`], the embedder's token count behind the
//!   `impressox:plugin/tokens` import of doc-chunker plugins.
//! - [`request`]: a query request checked field by field, and a result's JSON view.
//! - [`service`]: [`service::RagService`], documents through the chunker plugin, the
//!   version check and the embedder into the index (crate `impressox-rag`), and queries.
//! - [`sources`]: files, urls and documents, each a runner with a `pass`.
//! - [`worker`]: the worker running every source's passes, and the handle the API reads;
//!   it lends its service to the `rag` capability of plugins while it runs.
//! - [`capability`]: the service behind the capability's seam (`capabilities::rag::Index`).

pub mod capability;
pub mod config;
pub mod request;
pub mod service;
pub mod sources;
pub mod tokens;
pub mod worker;

pub use config::{EmbedderConfig, RagConfig};
pub use service::{RagService, StageTimes};
pub use tokens::{TokenCounter, Tokens};
pub use worker::{RagHandle, RagWorker};
