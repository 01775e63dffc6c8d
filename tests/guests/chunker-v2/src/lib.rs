//! A doc-chunker that calls itself `markdown-chunker` at version 2.0.0 (the bundled one is
//! 0.1.0), for the hot-reload test: dropped over the bundled file, its answers show which
//! version serves. One chunk: the whole text, with its version and the host's token count.

use impressox_plugin_sdk::types::{Chunk, ChunkOptions, Chunked, Document};
use impressox_plugin_sdk::{DocChunker, export_doc_chunker, tokens};

struct ChunkerV2;

impl DocChunker for ChunkerV2 {
    const NAME: &'static str = "markdown-chunker";

    fn chunk(doc: Document, _options: ChunkOptions) -> Result<Chunked, String> {
        let tokens = tokens::count(&doc.text);
        Ok(Chunked {
            normalised: None,
            chunks: vec![Chunk {
                end: doc.text.chars().count() as u32,
                text: doc.text,
                start: 0,
                metadata: vec![
                    ("version".into(), env!("CARGO_PKG_VERSION").into()),
                    ("tokens".into(), tokens.to_string()),
                ],
            }],
        })
    }
}

export_doc_chunker!(ChunkerV2);
