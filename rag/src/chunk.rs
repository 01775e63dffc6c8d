//! The records the store keeps and the filters that select them: shared by the vector
//! store, the lexical index and the search that fuses them.

use serde::{Deserialize, Serialize};

/// A document's chunks as a source and a chunker produced them: what an upsert replaces.
#[derive(Debug, Clone)]
pub struct DocumentChunks {
    /// Stable id within the collection (a path, a URL, a tweet id).
    pub document_id: String,
    /// The document's version (a counter or a content hash): part of every chunk id, so
    /// chunks of two versions never collide, and a resumed ingest writes the same ids.
    pub version: String,
    /// The configured source it came from (`[[rag.sources]]` name).
    pub source: String,
    /// Where the document lives, when it has an address.
    pub url: Option<String>,
    /// The document's own time (a tweet's, a page's Last-Modified), ms since the epoch.
    pub time_ms: Option<i64>,
    pub chunks: Vec<ChunkText>,
}

/// One chunk as a doc-chunker returns it.
#[derive(Debug, Clone)]
pub struct ChunkText {
    pub text: String,
    /// Char offsets into the (normalised) document text, end exclusive.
    pub start: u32,
    pub end: u32,
    /// Key/value pairs; `author`, `cashtags` (`$BTC,$IREN`), `time_ms`, `url` are read by
    /// the filters (docs/design/rag.md §4).
    pub metadata: Vec<(String, String)>,
}

/// A chunk as stored: everything a search result returns, plus what filters read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredChunk {
    pub chunk_id: String,
    pub document_id: String,
    pub version: String,
    pub index: u32,
    pub text: String,
    pub source: String,
    pub url: Option<String>,
    pub start: u32,
    pub end: u32,
    /// The document's time (from the document, else a chunk's `time_ms` metadata).
    pub time_ms: Option<i64>,
    /// When it was stored.
    pub indexed_ms: i64,
    pub metadata: Vec<(String, String)>,
    /// Upper-case cashtags from the `cashtags` metadata, for the filter.
    pub cashtags: Vec<String>,
    /// The `author` metadata, for the filter.
    pub author: Option<String>,
}

/// The id of chunk `index` of a document version: `document_id#version#index`. The same
/// document, version and chunker always give the same ids, so replaying an ingest after a
/// crash overwrites instead of duplicating.
pub fn chunk_id(document_id: &str, version: &str, index: u32) -> String {
    format!("{document_id}#{version}#{index}")
}

impl StoredChunk {
    /// Builds chunk `index` of `doc`.
    pub fn from_input(doc: &DocumentChunks, index: u32, now_ms: i64) -> StoredChunk {
        let c = &doc.chunks[index as usize];
        let meta = |k: &str| {
            c.metadata
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let cashtags = meta("cashtags")
            .map(|v| {
                v.split(',')
                    .map(|t| t.trim().to_uppercase())
                    .filter(|t| !t.is_empty())
                    .map(|t| {
                        if t.starts_with('$') {
                            t
                        } else {
                            format!("${t}")
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        StoredChunk {
            chunk_id: chunk_id(&doc.document_id, &doc.version, index),
            document_id: doc.document_id.clone(),
            version: doc.version.clone(),
            index,
            text: c.text.clone(),
            source: doc.source.clone(),
            url: doc.url.clone().or_else(|| meta("url").map(str::to_string)),
            start: c.start,
            end: c.end,
            time_ms: doc
                .time_ms
                .or_else(|| meta("time_ms").and_then(|v| v.parse().ok())),
            indexed_ms: now_ms,
            metadata: c.metadata.clone(),
            cashtags,
            author: meta("author").map(str::to_string),
        }
    }
}

/// What a search may be narrowed to; every set field must hold (AND).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Any of these sources.
    pub sources: Vec<String>,
    /// Chunks naming this cashtag (`$IREN` or `IREN`, any case).
    pub cashtag: Option<String>,
    /// Chunks by this author (exact, case-insensitive, a leading `@` ignored).
    pub author: Option<String>,
    /// The document's time at or after this (ms); chunks without a time are excluded.
    pub since_ms: Option<i64>,
    /// The document's time before this (ms); chunks without a time are excluded.
    pub until_ms: Option<i64>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// The cashtag as stored: upper case with its `$`.
    pub fn normalised_cashtag(&self) -> Option<String> {
        self.cashtag.as_ref().map(|t| {
            let t = t.trim().to_uppercase();
            if t.starts_with('$') {
                t
            } else {
                format!("${t}")
            }
        })
    }

    fn normalised_author(&self) -> Option<String> {
        self.author
            .as_ref()
            .map(|a| a.trim().trim_start_matches('@').to_lowercase())
    }

    /// A predicate with the filter's strings prepared once.
    pub fn matcher(&self) -> impl Fn(&StoredChunk) -> bool + Sync + '_ {
        let cashtag = self.normalised_cashtag();
        let author = self.normalised_author();
        move |c: &StoredChunk| {
            (self.sources.is_empty() || self.sources.contains(&c.source))
                && cashtag.as_ref().is_none_or(|t| c.cashtags.contains(t))
                && author.as_ref().is_none_or(|a| {
                    c.author
                        .as_ref()
                        .is_some_and(|x| x.trim_start_matches('@').to_lowercase() == *a)
                })
                && self
                    .since_ms
                    .is_none_or(|s| c.time_ms.is_some_and(|t| t >= s))
                && self
                    .until_ms
                    .is_none_or(|u| c.time_ms.is_some_and(|t| t < u))
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
