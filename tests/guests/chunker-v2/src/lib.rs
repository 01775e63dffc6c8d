//! A doc-chunker that calls itself `markdown-chunker` at version 2.0.0 (the bundled one is
//! 0.1.0), for the hot-reload test: dropped over the bundled file, its answers show which
//! version serves. One chunk: the whole text, with its version and the host's token count.
//!
//! It is also the poison-document probe: a text holding `POISON:trap` traps, `POISON:spin`
//! spins past the call deadline, `POISON:alloc` grows memory past the cap, and
//! `POISON:output` answers more than the output cap — each must fail that document only.

use impressox_plugin_sdk::types::{Chunk, ChunkOptions, Chunked, Document};
use impressox_plugin_sdk::{DocChunker, export_doc_chunker, tokens};

struct ChunkerV2;

impl DocChunker for ChunkerV2 {
    const NAME: &'static str = "markdown-chunker";

    fn chunk(doc: Document, _options: ChunkOptions) -> Result<Chunked, String> {
        poison(&doc.text);
        if doc.text.contains("POISON:output") {
            // 2 MiB of chunk text: over the harness's 1 MiB output cap.
            return Ok(one_chunk("x".repeat(2 << 20), 0));
        }
        let tokens = tokens::count(&doc.text);
        Ok(one_chunk(doc.text, tokens))
    }
}

/// Misbehaves as the text asks (see the module's overview).
fn poison(text: &str) {
    if text.contains("POISON:trap") {
        panic!("poisoned document");
    }
    if text.contains("POISON:spin") {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    if text.contains("POISON:alloc") {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

fn one_chunk(text: String, tokens: u32) -> Chunked {
    Chunked {
        normalised: None,
        chunks: vec![Chunk {
            end: text.chars().count() as u32,
            text,
            start: 0,
            metadata: vec![
                ("version".into(), env!("CARGO_PKG_VERSION").into()),
                ("tokens".into(), tokens.to_string()),
            ],
        }],
    }
}

export_doc_chunker!(ChunkerV2);
