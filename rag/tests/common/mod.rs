//! What the integration tests share: the Chroma server they start.

pub mod chroma;
