//! The lexical half of hybrid retrieval: a BM25 index (tantivy) over the chunks' text,
//! persisted in `data_dir/lexical` and updated per document, never rebuilt at open.
//!
//! **Tokens.** Words are runs of letters and digits, lower-cased. A cashtag (`$`, a letter,
//! then up to nine letters, digits or `_`, not inside a word: the tweet chunker's rule) is
//! indexed twice at one position: as `$iren` and as `iren`. So the query `$IREN` (both
//! terms) ranks tweets naming the ticker above those that only say the word, and the query
//! `IREN` still finds both. A general-purpose tokenizer drops the `$`, and with it the
//! difference between the ticker and the word.
//!
//! **Queries** are built from the query text's tokens as one OR of term queries (BM25 sums
//! the matches), not parsed as a query language: a user's `$IREN AND (` is text to look
//! for, never a syntax error.
//!
//! **Keeping in step with the vectors**: see [`crate::index`]. This module only applies a
//! document's current chunks (delete all entries of the document, add the chunks) and
//! commits; applying twice gives the same index.

use std::ops::Bound;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::backend::StoreError;
use crate::chunk::{Filter, StoredChunk};

const TOKENIZER: &str = "impressox_words";
/// The writer's indexing memory: enough for batches of thousands of tweets.
const WRITER_MEMORY: usize = 50_000_000;

/// Words and cashtags (see the module note).
#[derive(Clone, Default)]
pub struct WordsAndCashtags;

/// The tokens of a text, computed at once (texts are chunks: short).
pub struct Tokens {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for Tokens {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }
    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

impl Tokenizer for WordsAndCashtags {
    type TokenStream<'a> = Tokens;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> Tokens {
        Tokens {
            tokens: tokenize(text),
            next: 0,
        }
    }
}

/// The tokens of `text` (see the module note), with byte offsets and positions.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut position = 0;
    let mut chars = text.char_indices().peekable();
    let mut prev: Option<char> = None;
    while let Some((start, c)) = chars.next() {
        if !c.is_alphanumeric() {
            prev = Some(c);
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, n)) = chars.peek() {
            if !n.is_alphanumeric() && n != '_' {
                break;
            }
            end = i + n.len_utf8();
            chars.next();
        }
        let word = &text[start..end];
        let lower = word.to_lowercase();
        // A `$` right before, itself not after a word character (`a$b` is no ticker).
        let dollar = prev == Some('$')
            && start >= 1
            && text[..start - 1]
                .chars()
                .next_back()
                .is_none_or(|b| !b.is_alphanumeric() && b != '_');
        let cashtag = dollar
            && c.is_ascii_alphabetic()
            && word.len() <= 10
            && word.chars().all(|x| x.is_ascii_alphanumeric() || x == '_');
        if cashtag {
            out.push(Token {
                offset_from: start - 1,
                offset_to: end,
                position,
                text: format!("${lower}"),
                position_length: 1,
            });
        }
        for piece in lower.split('_').filter(|p| !p.is_empty()) {
            out.push(Token {
                offset_from: start,
                offset_to: end,
                position,
                text: piece.to_string(),
                position_length: 1,
            });
        }
        position += 1;
        prev = text[..end].chars().next_back();
    }
    out
}

struct Fields {
    chunk_key: Field,
    doc_key: Field,
    collection: Field,
    source: Field,
    author: Field,
    cashtag: Field,
    time_ms: Field,
    text: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        chunk_key: b.add_text_field("chunk_key", STRING | STORED),
        doc_key: b.add_text_field("doc_key", STRING),
        collection: b.add_text_field("collection", STRING),
        source: b.add_text_field("source", STRING),
        author: b.add_text_field("author", STRING),
        cashtag: b.add_text_field("cashtag", STRING),
        time_ms: b.add_i64_field("time_ms", INDEXED | FAST),
        text: b.add_text_field("text", text_options),
    };
    (b.build(), fields)
}

/// `collection` + U+001F + `id`: one term for a chunk or a document across collections.
fn key(collection: &str, id: &str) -> String {
    format!("{collection}\u{1f}{id}")
}

/// A lexical search result: the chunk id and its BM25 score.
#[derive(Debug, Clone, PartialEq)]
pub struct LexicalHit {
    pub chunk_id: String,
    pub score: f32,
}

/// The BM25 index on disk.
pub struct LexicalIndex {
    index: Index,
    writer: Mutex<IndexWriter>,
    reader: IndexReader,
    fields: Fields,
    path: PathBuf,
}

impl std::fmt::Debug for LexicalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LexicalIndex")
            .field("path", &self.path)
            .finish()
    }
}

impl LexicalIndex {
    /// Opens (or creates) the index in `dir`. What a previous run committed is there; what
    /// it had not committed is gone (the caller replays it).
    pub fn open(dir: &Path) -> Result<LexicalIndex, StoreError> {
        let err = |e: &dyn std::fmt::Display| StoreError::Lexical {
            path: dir.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        let (schema, fields) = schema();
        let directory = MmapDirectory::open(dir).map_err(|e| err(&e))?;
        let index = Index::open_or_create(directory, schema).map_err(|e| err(&e))?;
        index.tokenizers().register(TOKENIZER, WordsAndCashtags);
        // One indexing thread: two cores are shared with embedding and serving.
        let writer = index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .map_err(|e| err(&e))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| err(&e))?;
        Ok(LexicalIndex {
            index,
            writer: Mutex::new(writer),
            reader,
            fields,
            path: dir.to_path_buf(),
        })
    }

    fn err(&self, e: &dyn std::fmt::Display) -> StoreError {
        StoreError::Lexical {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Replaces the entries of each document with its current chunks (none: removed), then
    /// commits. Idempotent.
    pub fn apply(
        &self,
        collection: &str,
        docs: &[(String, Vec<std::sync::Arc<StoredChunk>>)],
    ) -> Result<(), StoreError> {
        let f = &self.fields;
        let mut writer = self.writer.lock();
        for (document_id, chunks) in docs {
            writer.delete_term(Term::from_field_text(
                f.doc_key,
                &key(collection, document_id),
            ));
            for c in chunks {
                let mut d = TantivyDocument::default();
                d.add_text(f.chunk_key, key(collection, &c.chunk_id));
                d.add_text(f.doc_key, key(collection, document_id));
                d.add_text(f.collection, collection);
                d.add_text(f.source, &c.source);
                if let Some(a) = &c.author {
                    d.add_text(f.author, a.trim_start_matches('@').to_lowercase());
                }
                for t in &c.cashtags {
                    d.add_text(f.cashtag, t);
                }
                if let Some(t) = c.time_ms {
                    d.add_i64(f.time_ms, t);
                }
                d.add_text(f.text, &c.text);
                writer.add_document(d).map_err(|e| self.err(&e))?;
            }
        }
        writer.commit().map_err(|e| self.err(&e))?;
        drop(writer);
        self.reader.reload().map_err(|e| self.err(&e))?;
        Ok(())
    }

    /// The `k` chunks of `collection` that best match `query` by BM25 and pass `filter`.
    pub fn search(
        &self,
        collection: &str,
        query: &str,
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<LexicalHit>, StoreError> {
        let f = &self.fields;
        let mut terms: Vec<String> = tokenize(query).into_iter().map(|t| t.text).collect();
        terms.sort();
        terms.dedup();
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let term_query = |field: Field, text: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::Basic,
            ))
        };
        let words: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(f.text, t),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, Box::new(BooleanQuery::new(words))),
            (Occur::Must, term_query(f.collection, collection)),
        ];
        if !filter.sources.is_empty() {
            let any: Vec<(Occur, Box<dyn Query>)> = filter
                .sources
                .iter()
                .map(|s| (Occur::Should, term_query(f.source, s)))
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        if let Some(t) = filter.normalised_cashtag() {
            clauses.push((Occur::Must, term_query(f.cashtag, &t)));
        }
        if let Some(a) = &filter.author {
            let a = a.trim().trim_start_matches('@').to_lowercase();
            clauses.push((Occur::Must, term_query(f.author, &a)));
        }
        if filter.since_ms.is_some() || filter.until_ms.is_some() {
            let lower = filter.since_ms.map_or(Bound::Unbounded, |s| {
                Bound::Included(Term::from_field_i64(f.time_ms, s))
            });
            let upper = filter.until_ms.map_or(Bound::Unbounded, |u| {
                Bound::Excluded(Term::from_field_i64(f.time_ms, u))
            });
            clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&query, &TopDocs::with_limit(k))
            .map_err(|e| self.err(&e))?;
        let prefix = key(collection, "");
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            let d: TantivyDocument = searcher.doc(address).map_err(|e| self.err(&e))?;
            let Some(chunk_key) = d.get_first(f.chunk_key).and_then(|v| v.as_str()) else {
                continue;
            };
            if let Some(id) = chunk_key.strip_prefix(&prefix) {
                out.push(LexicalHit {
                    chunk_id: id.to_string(),
                    score,
                });
            }
        }
        Ok(out)
    }

    /// The number of indexed chunks (all collections).
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tantivy index, for tests and maintenance.
    pub fn index(&self) -> &Index {
        &self.index
    }
}

#[cfg(test)]
mod tests {
    use super::tokenize;

    fn texts(s: &str) -> Vec<(String, usize)> {
        tokenize(s)
            .into_iter()
            .map(|t| (t.text, t.position))
            .collect()
    }

    #[test]
    fn cashtags_are_kept_beside_their_word() {
        assert_eq!(
            texts("Buy $IREN now"),
            vec![
                ("buy".into(), 0),
                ("$iren".into(), 1),
                ("iren".into(), 1),
                ("now".into(), 2)
            ]
        );
        // Not tickers: a price, a `$` inside a word, a word too long.
        assert_eq!(texts("$100"), vec![("100".into(), 0)]);
        assert_eq!(texts("a$b"), vec![("a".into(), 0), ("b".into(), 1)]);
        assert_eq!(texts("$ABCDEFGHIJK"), vec![("abcdefghijk".into(), 0)]);
        assert_eq!(
            texts("($btc,$ETH)"),
            vec![
                ("$btc".into(), 0),
                ("btc".into(), 0),
                ("$eth".into(), 1),
                ("eth".into(), 1)
            ]
        );
        assert!(texts("🚀 !!!").is_empty());
        assert_eq!(texts("Café"), vec![("café".into(), 0)]);
    }
}
