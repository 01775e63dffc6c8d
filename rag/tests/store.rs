//! The vector store and the lexical index through [`RagIndex`], on both backends: the
//! embedded store (real files in a temporary data dir) and a real Chroma server (`chroma
//! run`, one per test, see common/chroma.rs). Every test below runs once per backend
//! (modules `embedded::` and `chroma::`): replacement by document, deletes, collections'
//! model records, filters, durability across reopen, and recovery of the lexical index
//! after a crash (including a writer killed with SIGKILL mid-ingest), and `reindex` under
//! another model (on Chroma: into a new collection swapped in by name). The Chroma server
//! killed and restarted mid-ingest is the last test.
//!
//! Vectors here are made by hand (no model needed): the store's job is to keep and rank
//! whatever vectors it is given.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::chroma::ChromaServer;
use impressox_rag::chunk::chunk_id;
use impressox_rag::embed::normalise;
use impressox_rag::{
    ChromaConfig, ChromaStore, ChunkText, DocumentChunks, EmbedError, Embedder, Filter, RagIndex,
    StoreError, VectorBackend, VectorStore,
};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Embedded,
    Chroma,
}

/// One test's store: a data dir, and for Chroma a server of its own.
struct Fixture {
    dir: tempfile::TempDir,
    chroma: Option<ChromaServer>,
}

/// A tenant and database of our own (not Chroma's defaults): opening creates them.
fn chroma_config(url: String) -> ChromaConfig {
    let mut config = ChromaConfig::new(url);
    config.tenant = "impressox_tests".into();
    config.database = "rag_store".into();
    config
}

impl Fixture {
    fn new(kind: Kind) -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            chroma: match kind {
                Kind::Embedded => None,
                Kind::Chroma => Some(ChromaServer::start()),
            },
        }
    }

    fn config(&self) -> Option<ChromaConfig> {
        self.chroma.as_ref().map(|s| chroma_config(s.url()))
    }

    fn open(&self) -> RagIndex {
        open_index(self.dir.path(), self.config())
    }

    /// The vector store alone, without the lexical index.
    fn backend(&self) -> Box<dyn VectorBackend> {
        match self.config() {
            None => Box::new(VectorStore::open(self.dir.path()).unwrap()),
            Some(c) => Box::new(ChromaStore::open(c, self.dir.path()).unwrap()),
        }
    }
}

fn open_index(dir: &Path, config: Option<ChromaConfig>) -> RagIndex {
    match config {
        None => RagIndex::open(dir).unwrap(),
        Some(c) => RagIndex::open_chroma(c, dir).unwrap(),
    }
}

/// Each named test function, once per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $( #[test] fn $name() { super::$name(super::Kind::Embedded) } )*
        }
        mod chroma {
            $( #[test] fn $name() { super::$name(super::Kind::Chroma) } )*
        }
    };
}

on_both_backends!(
    an_upsert_replaces_exactly_the_documents_chunks,
    search_is_exact_and_filters_hold,
    collections_refuse_another_model_or_dimension,
    everything_survives_a_reopen_without_rebuilding,
    a_crash_between_the_store_and_the_lexical_index_is_replayed_at_open,
    kill_9_mid_ingest_loses_and_duplicates_nothing,
    reindex_re_embeds_every_chunk_under_the_new_model,
);

const MODEL: &str = "test/model";
const DIM: usize = 8;

fn vector(seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<f32> = (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    normalise(&mut v);
    v
}

fn doc(id: &str, version: &str, texts: &[&str], meta: &[(&str, &str)]) -> DocumentChunks {
    let mut at = 0u32;
    DocumentChunks {
        document_id: id.into(),
        version: version.into(),
        source: "tweets".into(),
        url: Some(format!("https://x.com/i/status/{id}")),
        time_ms: None,
        chunks: texts
            .iter()
            .map(|t| {
                let start = at;
                at += t.chars().count() as u32;
                ChunkText {
                    text: t.to_string(),
                    start,
                    end: at,
                    metadata: meta
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                }
            })
            .collect(),
    }
}

fn with_vectors(d: DocumentChunks, seed: u64) -> (DocumentChunks, Vec<Vec<f32>>) {
    let v = (0..d.chunks.len() as u64)
        .map(|i| vector(seed * 100 + i))
        .collect();
    (d, v)
}

fn ids_of(index: &RagIndex, collection: &str, doc: &str) -> Vec<String> {
    index
        .vectors()
        .document_chunks(collection, doc)
        .unwrap()
        .iter()
        .map(|c| c.chunk_id.clone())
        .collect()
}

fn lexical_ids(index: &RagIndex, collection: &str, text: &str) -> HashSet<String> {
    index
        .lexical()
        .search(collection, text, 100, &Filter::default())
        .unwrap()
        .into_iter()
        .map(|h| h.chunk_id)
        .collect()
}

/// Another "model": a text's vector from its bytes, 6 dims (the stores only keep and rank).
struct Hashing;

impl Embedder for Hashing {
    fn model_id(&self) -> &str {
        "test/hashing"
    }
    fn dimension(&self) -> usize {
        6
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.0f32; 6];
                for (i, b) in t.bytes().enumerate() {
                    v[(i + b as usize) % 6] += (b % 7) as f32 + 1.0;
                }
                normalise(&mut v);
                v
            })
            .collect())
    }
}

fn reindex_re_embeds_every_chunk_under_the_new_model(kind: Kind) {
    let f = Fixture::new(kind);
    let index = f.open();
    index.vectors().ensure_collection("c", MODEL, DIM).unwrap();
    let docs = [
        doc("a", "1", &["bitcoin funding rates", "miners sell"], &[]),
        doc("b", "1", &["$IREN hashrate grows"], &[]),
        doc("c", "2", &["the notify worker retries"], &[]),
    ];
    let ids: Vec<Vec<String>> = docs
        .iter()
        .map(|d| {
            (0..d.chunks.len() as u32)
                .map(|i| chunk_id(&d.document_id, &d.version, i))
                .collect()
        })
        .collect();
    let batch: Vec<_> = docs
        .into_iter()
        .enumerate()
        .map(|(i, d)| with_vectors(d, i as u64 + 1))
        .collect();
    index.upsert("c", &batch).unwrap();
    let probe = Hashing.embed(&["$IREN hashrate grows"]).unwrap().remove(0);
    // Until re-embedded, the new model is refused.
    assert!(matches!(
        index
            .vectors()
            .search("c", "test/hashing", &probe, 3, &Filter::default(), None)
            .unwrap_err(),
        StoreError::ModelMismatch { .. }
    ));

    assert_eq!(index.reindex("c", &Hashing).unwrap(), 4);
    let check = |index: &RagIndex| {
        let listed = index.vectors().collections().unwrap();
        assert_eq!(listed.len(), 1, "one collection, no leftover: {listed:?}");
        assert_eq!(listed[0].0.name, "c");
        assert_eq!(listed[0].0.model_id, "test/hashing");
        assert_eq!(listed[0].0.dimension, 6);
        assert_eq!(listed[0].1, 4);
        let hits = index
            .vectors()
            .search("c", "test/hashing", &probe, 1, &Filter::default(), None)
            .unwrap();
        assert_eq!(hits[0].chunk.document_id, "b");
        assert!(hits[0].score > 0.999, "{}", hits[0].score);
        for (d, want) in ["a", "b", "c"].iter().zip(&ids) {
            assert_eq!(&ids_of(index, "c", d), want, "chunk ids kept");
        }
        assert_eq!(
            index.document_version("c", "c").unwrap().as_deref(),
            Some("2")
        );
        // The old model is now the refused one.
        assert!(matches!(
            index
                .vectors()
                .search("c", MODEL, &vector(1), 3, &Filter::default(), None)
                .unwrap_err(),
            StoreError::ModelMismatch { .. }
        ));
    };
    check(&index);
    // Replacing a document afterwards works on the new collection.
    let d = doc("b", "2", &["$IREN hashrate doubles"], &[]);
    let v = Hashing.embed(&["$IREN hashrate doubles"]).unwrap();
    index.upsert("c", &[(d, v)]).unwrap();
    assert_eq!(ids_of(&index, "c", "b"), [chunk_id("b", "2", 0)]);
    drop(index);
    // And all of it holds after a reopen (Chroma: the local records follow the new id).
    let index = f.open();
    assert_eq!(ids_of(&index, "c", "b"), [chunk_id("b", "2", 0)]);
    assert_eq!(index.vectors().collections().unwrap()[0].1, 4);
    assert_eq!(
        index.document_version("c", "a").unwrap().as_deref(),
        Some("1")
    );
}

fn an_upsert_replaces_exactly_the_documents_chunks(kind: Kind) {
    let f = Fixture::new(kind);
    let index = f.open();
    index.vectors().ensure_collection("c", MODEL, DIM).unwrap();
    index
        .upsert(
            "c",
            &[
                with_vectors(
                    doc("d1", "v1", &["alpha one", "alpha two", "alpha three"], &[]),
                    1,
                ),
                with_vectors(doc("d2", "v1", &["beta one"], &[]), 2),
            ],
        )
        .unwrap();
    assert_eq!(ids_of(&index, "c", "d1"), ["d1#v1#0", "d1#v1#1", "d1#v1#2"]);
    // A new version with fewer chunks: the old ones are gone from both indexes.
    index
        .upsert(
            "c",
            &[with_vectors(doc("d1", "v2", &["gamma one"], &[]), 3)],
        )
        .unwrap();
    assert_eq!(ids_of(&index, "c", "d1"), ["d1#v2#0"]);
    assert_eq!(index.vectors().collections().unwrap()[0].1, 2);
    assert!(lexical_ids(&index, "c", "alpha").is_empty());
    assert_eq!(
        lexical_ids(&index, "c", "gamma"),
        HashSet::from(["d1#v2#0".to_string()])
    );
    assert_eq!(
        index
            .vectors()
            .document_version("c", "d1")
            .unwrap()
            .as_deref(),
        Some("v2")
    );
    // The same upsert again (a resumed ingest): same ids, nothing duplicated.
    index
        .upsert(
            "c",
            &[with_vectors(doc("d1", "v2", &["gamma one"], &[]), 3)],
        )
        .unwrap();
    assert_eq!(index.vectors().collections().unwrap()[0].1, 2);
    assert_eq!(index.lexical().len(), 2);
    // Delete: gone everywhere; deleting again or an unknown id is a no-op.
    index.delete("c", &["d1", "nope"]).unwrap();
    index.delete("c", &["d1"]).unwrap();
    assert!(ids_of(&index, "c", "d1").is_empty());
    assert!(index.vectors().chunk("c", "d1#v2#0").unwrap().is_none());
    assert!(lexical_ids(&index, "c", "gamma").is_empty());
    assert_eq!(index.vectors().document_version("c", "d1").unwrap(), None);
    assert_eq!(index.lexical().len(), 1);
    // A document with no chunks left is removed.
    index
        .upsert("c", &[(doc("d2", "v2", &[], &[]), vec![])])
        .unwrap();
    assert_eq!(index.vectors().collections().unwrap()[0].1, 0);
    assert_eq!(index.lexical().len(), 0);
}

fn search_is_exact_and_filters_hold(kind: Kind) {
    let f = Fixture::new(kind);
    let index = f.open();
    index.vectors().ensure_collection("c", MODEL, DIM).unwrap();
    let mut docs = Vec::new();
    for i in 0..300u64 {
        let author = if i.is_multiple_of(3) { "@Alice" } else { "bob" };
        let tags = if i.is_multiple_of(5) {
            "$IREN,$BTC"
        } else {
            "$ETH"
        };
        let time = (1_000 + i as i64).to_string();
        let mut d = doc(
            &format!("t{i}"),
            "1",
            &[&format!("tweet number {i}")],
            &[("author", author), ("cashtags", tags), ("time_ms", &time)],
        );
        if i.is_multiple_of(2) {
            d.source = "other".into();
        }
        docs.push(with_vectors(d, i));
    }
    index.upsert("c", &docs).unwrap();
    let q = vector(12345);
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let filter = Filter {
        sources: vec!["tweets".into()],
        cashtag: Some("iren".into()),
        author: Some("alice".into()),
        since_ms: Some(1_010),
        until_ms: Some(1_250),
    };
    let hits = index
        .vectors()
        .search("c", MODEL, &q, 5, &filter, None)
        .unwrap();
    // Odd (source tweets), multiple of 5 (IREN), of 3 (alice), time in range: i ≡ 15 mod 30.
    let mut want: Vec<(f32, String)> = (10..250u64)
        .filter(|i| i % 30 == 15)
        .map(|i| (dot(&docs[i as usize].1[0], &q), format!("t{i}#1#0")))
        .collect();
    want.sort_by(|a, b| b.0.total_cmp(&a.0));
    let got: Vec<String> = hits.iter().map(|h| h.chunk.chunk_id.clone()).collect();
    let want_ids: Vec<String> = want.iter().take(5).map(|w| w.1.clone()).collect();
    assert_eq!(got, want_ids);
    for (h, w) in hits.iter().zip(&want) {
        assert!((h.score - w.0).abs() < 1e-5);
    }
    // The same filter on the lexical side.
    let lex = index.lexical().search("c", "tweet", 100, &filter).unwrap();
    let mut lex_ids: Vec<String> = lex.into_iter().map(|h| h.chunk_id).collect();
    lex_ids.sort();
    let mut all: Vec<String> = want.iter().map(|w| w.1.clone()).collect();
    all.sort();
    assert_eq!(lex_ids, all);
    // min_score cuts.
    let top = index
        .vectors()
        .search("c", MODEL, &q, 10, &Filter::default(), None)
        .unwrap();
    let cut = top[4].score;
    let above = index
        .vectors()
        .search("c", MODEL, &q, 10, &Filter::default(), Some(cut))
        .unwrap();
    assert_eq!(above.len(), 5);
}

fn collections_refuse_another_model_or_dimension(kind: Kind) {
    let f = Fixture::new(kind);
    let index = f.open();
    index.vectors().ensure_collection("c", MODEL, DIM).unwrap();
    let err = index
        .vectors()
        .ensure_collection("c", "other/model", DIM)
        .unwrap_err();
    assert!(matches!(err, StoreError::ModelMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("test/model") && msg.contains("other/model"),
        "{msg}"
    );
    let err = index
        .vectors()
        .search("c", MODEL, &[0.0; 4], 3, &Filter::default(), None)
        .unwrap_err();
    assert!(matches!(err, StoreError::ModelMismatch { .. }), "{err}");
    // A vector of the wrong length: refused, nothing stored.
    let bad = (doc("d", "1", &["x"], &[]), vec![vec![0.0; 3]]);
    let err = index.upsert("c", &[bad]).unwrap_err();
    assert!(err.to_string().contains("3 dims"), "{err}");
    let short = (doc("d", "1", &["x", "y"], &[]), vec![vector(1)]);
    assert!(matches!(
        index.upsert("c", &[short]).unwrap_err(),
        StoreError::VectorCount { .. }
    ));
    assert_eq!(index.vectors().collections().unwrap()[0].1, 0);
    assert!(matches!(
        index.upsert("missing", &[]).unwrap_err(),
        StoreError::UnknownCollection(_)
    ));
    assert!(index.vectors().ensure_collection("", MODEL, DIM).is_err());
    // The record survives a reopen.
    drop(index);
    let index = f.open();
    assert!(
        index
            .vectors()
            .ensure_collection("c", "other/model", DIM)
            .is_err()
    );
}

fn everything_survives_a_reopen_without_rebuilding(kind: Kind) {
    let f = Fixture::new(kind);
    {
        let index = f.open();
        index.vectors().ensure_collection("c", MODEL, DIM).unwrap();
        index
            .upsert(
                "c",
                &[
                    with_vectors(
                        doc(
                            "a",
                            "1",
                            &["$IREN hits a new high", "second part"],
                            &[("cashtags", "$IREN")],
                        ),
                        1,
                    ),
                    with_vectors(doc("b", "1", &["nothing to see"], &[]), 2),
                ],
            )
            .unwrap();
        index.delete("c", &["b"]).unwrap();
    }
    let index = f.open();
    assert_eq!(ids_of(&index, "c", "a"), ["a#1#0", "a#1#1"]);
    let c = index.vectors().chunk("c", "a#1#0").unwrap().unwrap();
    assert_eq!(c.text, "$IREN hits a new high");
    assert_eq!(c.cashtags, ["$IREN"]);
    assert_eq!(c.url.as_deref(), Some("https://x.com/i/status/a"));
    assert_eq!((c.start, c.end), (0, 21));
    assert_eq!(
        lexical_ids(&index, "c", "$iren"),
        HashSet::from(["a#1#0".to_string()])
    );
    assert!(lexical_ids(&index, "c", "nothing").is_empty());
    let hits = index
        .vectors()
        .search("c", MODEL, &vector(100), 1, &Filter::default(), None)
        .unwrap();
    assert_eq!(hits[0].chunk.chunk_id, "a#1#0");
    assert!((hits[0].score - 1.0).abs() < 1e-5);
}

fn a_crash_between_the_store_and_the_lexical_index_is_replayed_at_open(kind: Kind) {
    let f = Fixture::new(kind);
    {
        let index = f.open();
        index.vectors().ensure_collection("c", MODEL, DIM).unwrap();
        index
            .upsert(
                "c",
                &[with_vectors(doc("old", "1", &["stale words"], &[]), 1)],
            )
            .unwrap();
    }
    {
        // The vector store alone: its transaction commits (with the to-do entries), and the
        // process "dies" before the lexical index hears of it.
        let store = f.backend();
        store
            .upsert(
                "c",
                &[with_vectors(doc("new", "1", &["fresh words"], &[]), 2)],
            )
            .unwrap();
        store.delete("c", &["old"]).unwrap();
    }
    let index = f.open();
    assert_eq!(
        lexical_ids(&index, "c", "fresh"),
        HashSet::from(["new#1#0".to_string()])
    );
    assert!(lexical_ids(&index, "c", "stale").is_empty());
    assert_eq!(index.lexical().len(), 1);
}

/// The child of [`kill_9_mid_ingest_loses_and_duplicates_nothing`]: upserts documents of
/// 3 chunks, then new versions of them, until it is killed.
#[test]
#[ignore = "run by kill_9_mid_ingest_loses_and_duplicates_nothing as a child process"]
fn kill_9_child_writer() {
    let Some(dir) = std::env::var_os("RAG_KILL9_DIR") else {
        return;
    };
    let chroma = std::env::var("RAG_KILL9_CHROMA").ok().map(chroma_config);
    let index = open_index(Path::new(&dir), chroma);
    index.vectors().ensure_collection("c", MODEL, DIM).unwrap();
    for round in 0u64.. {
        for batch in 0..20u64 {
            let docs: Vec<_> = (0..5u64)
                .map(|j| {
                    let n = batch * 5 + j;
                    let text = format!("round{round} doc{n} words");
                    let chunks = (n % 3 + 1) as usize;
                    let texts: Vec<&str> = std::iter::repeat_n(text.as_str(), chunks).collect();
                    with_vectors(doc(&format!("d{n}"), &round.to_string(), &texts, &[]), n)
                })
                .collect();
            index.upsert("c", &docs).unwrap();
            if round == 0 && batch == 19 {
                std::fs::write(std::path::Path::new(&dir).join("started"), "").unwrap();
            }
        }
    }
}

fn kill_9_mid_ingest_loses_and_duplicates_nothing(kind: Kind) {
    let f = Fixture::new(kind);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "kill_9_child_writer",
            "--include-ignored",
            "--nocapture",
        ])
        .env("RAG_KILL9_DIR", f.dir.path())
        .stdout(std::process::Stdio::null());
    if let Some(server) = &f.chroma {
        child.env("RAG_KILL9_CHROMA", server.url());
    }
    let mut child = child.spawn().unwrap();
    let started = f.dir.path().join("started");
    let t0 = std::time::Instant::now();
    while !started.exists() {
        assert!(t0.elapsed().as_secs() < 60, "the child never wrote a round");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Somewhere inside a later round.
    std::thread::sleep(std::time::Duration::from_millis(150 + fastish_jitter()));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let index = f.open();
    let mut total = 0;
    for n in 0..100u64 {
        let id = format!("d{n}");
        let version = index
            .vectors()
            .document_version("c", &id)
            .unwrap()
            .expect("every document of round 0 is stored");
        // Exactly the chunks of that version: none missing, none of another version.
        let want: Vec<String> = (0..(n % 3 + 1) as u32)
            .map(|i| chunk_id(&id, &version, i))
            .collect();
        assert_eq!(ids_of(&index, "c", &id), want, "document {id}");
        let text = format!("round{version} doc{n} words");
        for c in index.vectors().document_chunks("c", &id).unwrap() {
            assert_eq!(c.text, text);
        }
        total += want.len();
    }
    assert_eq!(index.vectors().collections().unwrap()[0].1, total);
    // The lexical index holds exactly the stored chunks.
    assert_eq!(index.lexical().len() as usize, total);
    let lex = lexical_ids(&index, "c", "words");
    assert_eq!(lex.len(), total.min(100));
}

fn fastish_jitter() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        % 200
}

/// A Chroma server killed (SIGKILL) and started again while an ingest writes new
/// documents and replaces old ones: the writer's requests are retried until the server is
/// back, every upsert returns Ok, and the collection then holds exactly the chunks of each
/// document's last version (counted on the server: nothing lost, nothing twice, nothing
/// stale), in both indexes.
#[test]
fn chroma_restarted_mid_ingest_retries_and_loses_nothing() {
    let mut server = ChromaServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = chroma_config(server.url());
    config.timeout = Duration::from_secs(5);
    let index = Arc::new(RagIndex::open_chroma(config, dir.path()).unwrap());
    index.vectors().ensure_collection("c", MODEL, DIM).unwrap();
    const DOCS: u64 = 200;
    const PER_BATCH: u64 = 5;
    let batches_done = Arc::new(AtomicUsize::new(0));
    let writer = {
        let index = index.clone();
        let done = batches_done.clone();
        // The longest upsert: the one that waited for the server to come back.
        std::thread::spawn(move || -> Result<Duration, StoreError> {
            let mut longest = Duration::ZERO;
            // Round 1 writes every document, round 2 replaces each with another version
            // of a different number of chunks.
            for round in 1..=2u64 {
                for batch in 0..DOCS / PER_BATCH {
                    let docs: Vec<_> = (0..PER_BATCH)
                        .map(|j| {
                            let n = batch * PER_BATCH + j;
                            let text = format!("round{round} doc{n} words");
                            let chunks = ((n + round) % 3 + 1) as usize;
                            let texts: Vec<&str> =
                                std::iter::repeat_n(text.as_str(), chunks).collect();
                            with_vectors(
                                doc(&format!("d{n}"), &round.to_string(), &texts, &[]),
                                n * 10 + round,
                            )
                        })
                        .collect();
                    let t = std::time::Instant::now();
                    index.upsert("c", &docs)?;
                    longest = longest.max(t.elapsed());
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok(longest)
        })
    };
    let total_batches = (2 * DOCS / PER_BATCH) as usize;
    // Mid round 1, then mid round 2.
    for at in [total_batches / 4, total_batches * 3 / 4] {
        let t0 = std::time::Instant::now();
        while batches_done.load(Ordering::SeqCst) < at {
            assert!(t0.elapsed().as_secs() < 120, "the writer stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
        server.kill();
        // Killed mid-ingest, not after it.
        assert!(batches_done.load(Ordering::SeqCst) < total_batches);
        std::thread::sleep(Duration::from_millis(500));
        server.restart();
    }
    let longest = writer
        .join()
        .unwrap()
        .expect("every upsert succeeds through the restarts");
    // An upsert waited out the outage (retried), rather than the kill missing the writer.
    assert!(longest >= Duration::from_millis(400), "{longest:?}");

    let mut total = 0;
    for n in 0..DOCS {
        let id = format!("d{n}");
        assert_eq!(
            index.document_version("c", &id).unwrap().as_deref(),
            Some("2")
        );
        let want: Vec<String> = (0..((n + 2) % 3 + 1) as u32)
            .map(|i| chunk_id(&id, "2", i))
            .collect();
        assert_eq!(ids_of(&index, "c", &id), want, "document {id}");
        total += want.len();
    }
    // Counted by the server: no record of round 1 left, none twice.
    assert_eq!(index.collections().unwrap()[0].1, total);
    assert_eq!(index.lexical().len() as usize, total);
    assert!(lexical_ids(&index, "c", "round1").is_empty());
    // A reopen finds nothing pending.
    drop(index);
    let index = RagIndex::open_chroma(chroma_config(server.url()), dir.path()).unwrap();
    assert_eq!(index.collections().unwrap()[0].1, total);
}

/// A replacement the retries give up on (the server is down longer than `retry_for`): the
/// error names the server and the operation and not the token, the document keeps its
/// committed version, and the next open settles the half-done replacement (the partial new
/// version is not complete on the server, so it is removed and the old one kept). The
/// ingest's next pass then replaces it.
#[test]
fn chroma_a_replacement_that_gave_up_is_settled_at_open() {
    let mut server = ChromaServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let config = || {
        let mut c = chroma_config(url.clone());
        c.token = Some("secret-token-xyz".into());
        c.retry_for = Duration::from_millis(600);
        c
    };
    let index = RagIndex::open_chroma(config(), dir.path()).unwrap();
    index.vectors().ensure_collection("c", MODEL, DIM).unwrap();
    index
        .upsert(
            "c",
            &[with_vectors(doc("d", "v1", &["one", "two"], &[]), 1)],
        )
        .unwrap();
    server.kill();
    let err = index
        .upsert(
            "c",
            &[with_vectors(
                doc("d", "v2", &["three", "four", "five"], &[]),
                2,
            )],
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("chroma server {url}: upsert 3 chunks")),
        "{err}"
    );
    assert!(err.contains("gave up after"), "{err}");
    assert!(!err.contains("secret-token-xyz"), "{err}");
    assert_eq!(
        index.document_version("c", "d").unwrap().as_deref(),
        Some("v1")
    );
    drop(index);
    server.restart();
    let index = RagIndex::open_chroma(config(), dir.path()).unwrap();
    assert_eq!(ids_of(&index, "c", "d"), ["d#v1#0", "d#v1#1"]);
    assert_eq!(index.collections().unwrap()[0].1, 2);
    assert_eq!(
        lexical_ids(&index, "c", "two"),
        HashSet::from(["d#v1#1".to_string()])
    );
    index
        .upsert(
            "c",
            &[with_vectors(
                doc("d", "v2", &["three", "four", "five"], &[]),
                2,
            )],
        )
        .unwrap();
    assert_eq!(ids_of(&index, "c", "d"), ["d#v2#0", "d#v2#1", "d#v2#2"]);
    assert_eq!(index.collections().unwrap()[0].1, 3);
    assert!(lexical_ids(&index, "c", "two").is_empty());
}
