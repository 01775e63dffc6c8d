//! The embedded vector store and the lexical index through [`RagIndex`], on real files in a
//! temporary data dir: replacement by document, deletes, collections' model records,
//! filters, durability across reopen, and recovery of the lexical index after a crash
//! (including a writer killed with SIGKILL mid-ingest).
//!
//! Vectors here are made by hand (no model needed): the store's job is to keep and rank
//! whatever vectors it is given.

use std::collections::HashSet;

use impressox_rag::chunk::chunk_id;
use impressox_rag::embed::normalise;
use impressox_rag::{ChunkText, DocumentChunks, Filter, RagIndex, StoreError, VectorStore};

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

#[test]
fn an_upsert_replaces_exactly_the_documents_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let index = RagIndex::open(dir.path()).unwrap();
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
    assert_eq!(index.vectors().collections()[0].1, 2);
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
    assert_eq!(index.vectors().collections()[0].1, 2);
    assert_eq!(index.lexical().len(), 2);
    // Delete: gone everywhere; deleting again or an unknown id is a no-op.
    index.delete("c", &["d1", "nope"]).unwrap();
    index.delete("c", &["d1"]).unwrap();
    assert!(ids_of(&index, "c", "d1").is_empty());
    assert!(index.vectors().chunk("c", "d1#v2#0").is_none());
    assert!(lexical_ids(&index, "c", "gamma").is_empty());
    assert_eq!(index.vectors().document_version("c", "d1").unwrap(), None);
    assert_eq!(index.lexical().len(), 1);
    // A document with no chunks left is removed.
    index
        .upsert("c", &[(doc("d2", "v2", &[], &[]), vec![])])
        .unwrap();
    assert_eq!(index.vectors().collections()[0].1, 0);
    assert_eq!(index.lexical().len(), 0);
}

#[test]
fn search_is_exact_and_filters_hold() {
    let dir = tempfile::tempdir().unwrap();
    let index = RagIndex::open(dir.path()).unwrap();
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

#[test]
fn collections_refuse_another_model_or_dimension() {
    let dir = tempfile::tempdir().unwrap();
    let index = RagIndex::open(dir.path()).unwrap();
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
    assert_eq!(index.vectors().collections()[0].1, 0);
    assert!(matches!(
        index.upsert("missing", &[]).unwrap_err(),
        StoreError::UnknownCollection(_)
    ));
    assert!(index.vectors().ensure_collection("", MODEL, DIM).is_err());
    // The record survives a reopen.
    drop(index);
    let index = RagIndex::open(dir.path()).unwrap();
    assert!(
        index
            .vectors()
            .ensure_collection("c", "other/model", DIM)
            .is_err()
    );
}

#[test]
fn everything_survives_a_reopen_without_rebuilding() {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = RagIndex::open(dir.path()).unwrap();
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
    let index = RagIndex::open(dir.path()).unwrap();
    assert_eq!(ids_of(&index, "c", "a"), ["a#1#0", "a#1#1"]);
    let c = index.vectors().chunk("c", "a#1#0").unwrap();
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

#[test]
fn a_crash_between_the_store_and_the_lexical_index_is_replayed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = RagIndex::open(dir.path()).unwrap();
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
        let store = VectorStore::open(dir.path()).unwrap();
        store
            .upsert(
                "c",
                &[with_vectors(doc("new", "1", &["fresh words"], &[]), 2)],
            )
            .unwrap();
        store.delete("c", &["old"]).unwrap();
    }
    let index = RagIndex::open(dir.path()).unwrap();
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
    let index = RagIndex::open(std::path::Path::new(&dir)).unwrap();
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

#[test]
fn kill_9_mid_ingest_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_9_child_writer",
            "--include-ignored",
            "--nocapture",
        ])
        .env("RAG_KILL9_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = dir.path().join("started");
    let t0 = std::time::Instant::now();
    while !started.exists() {
        assert!(t0.elapsed().as_secs() < 60, "the child never wrote a round");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Somewhere inside a later round.
    std::thread::sleep(std::time::Duration::from_millis(150 + fastish_jitter()));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let index = RagIndex::open(dir.path()).unwrap();
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
        for c in index.vectors().document_chunks("c", &id) {
            assert_eq!(c.text, text);
        }
        total += want.len();
    }
    assert_eq!(index.vectors().collections()[0].1, total);
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
