//! Retrieval benchmark (issue 15): embedding throughput and query latency.
//!
//! - `local` embedding: sentences/s of all-MiniLM-L6-v2 on 1,024 tweet-length texts in
//!   batches of 32; beside it, when `~/.cache/impressox/ref-venv` has sentence-transformers
//!   (see rag/tests/data/make_reference.py), the reference implementation on the same texts
//!   in the same run (rag/benches/minilm_python.py).
//! - `static` embedding: sentences/s of the int8 Model2Vec model (tokenlearn-static-model)
//!   on 20,000 tweet-length texts in one call and in batches of 32; beside it, when the
//!   ref-venv has that package, its own encoder on the same texts
//!   (rag/benches/static_python.py).
//! - Query latency at 100,000 chunks × 384 dims: p50/p99 of vector, lexical and hybrid
//!   queries *including the query's embedding*, filtered and not; the time to reopen the
//!   data dir (nothing is rebuilt). The same data on both vector stores, one after the
//!   other: the embedded store, then a Chroma server (`chroma run` from the test virtualenv,
//!   `IMPRESSOX_TEST_VENV`), with each one's vector recall@10 against the exact scan.
//!
//! Run: `cargo bench -p impressox-rag --bench rag` after `cargo xtask models`.
//! `RAG_BENCH_CHUNKS` changes the 100,000; `RAG_BENCH_ONLY=embedding|static|queries` runs one
//! part; `RAG_BENCH_STORES=embedded|chroma` one store. Figures go to docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use impressox_rag::embed::local::default_model_dir;
use impressox_rag::embed::normalise;
use impressox_rag::embed::static_model::default_static_model_dir;
use impressox_rag::{
    ChromaConfig, ChunkText, DocumentChunks, Embedder, Filter, LocalEmbedder, Mode, Query,
    RagIndex, StaticEmbedder,
};

/// The Chroma server the tests start, for the same data in Chroma beside the embedded store.
#[path = "../tests/common/chroma.rs"]
mod chroma_server;

const WORDS: &[&str] = &[
    "bitcoin",
    "miners",
    "rally",
    "after",
    "the",
    "halving",
    "as",
    "hashprice",
    "recovers",
    "funding",
    "rates",
    "turned",
    "negative",
    "on",
    "perpetuals",
    "while",
    "spot",
    "volume",
    "climbs",
    "ETF",
    "inflows",
    "hit",
    "a",
    "record",
    "AI",
    "data",
    "centers",
    "need",
    "power",
    "and",
    "GPUs",
    "stablecoin",
    "supply",
    "grew",
    "this",
    "week",
    "traders",
    "watch",
    "support",
    "at",
    "97k",
    "resistance",
    "near",
    "100k",
    "altcoins",
    "lag",
    "behind",
    "memecoins",
    "pump",
    "🚀",
    "gm",
    "https://x.com/i/status/1860000000000000000",
    "#crypto",
    "@trader",
];
const TAGS: &[&str] = &[
    "$BTC", "$ETH", "$SOL", "$IREN", "$MARA", "$NVDA", "$COIN", "$DOGE",
];

/// A deterministic tweet-length text (20-45 words with a cashtag or two).
fn tweet(i: usize) -> String {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize
    };
    let n = 20 + next() % 26;
    let mut words: Vec<&str> = (0..n).map(|_| WORDS[next() % WORDS.len()]).collect();
    words.insert(next() % n, TAGS[next() % TAGS.len()]);
    if next().is_multiple_of(2) {
        words.insert(next() % n, TAGS[next() % TAGS.len()]);
    }
    words.join(" ")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn embedding(e: &LocalEmbedder) {
    let texts: Vec<String> = (0..1024).map(tweet).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    e.embed(&refs[..64]).unwrap(); // warm-up
    let t = Instant::now();
    for batch in refs.chunks(32) {
        e.embed(batch).unwrap();
    }
    let rust = refs.len() as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for text in &refs[..128] {
        e.embed(&[text]).unwrap();
    }
    let single = t.elapsed() / 128;
    // A retrieval query: its embedding is part of every query's latency.
    let queries: Vec<String> = (0..128)
        .map(|i| {
            let t = tweet(i + 5000);
            t.split(' ').take(5 + i % 4).collect::<Vec<_>>().join(" ")
        })
        .collect();
    let t = Instant::now();
    for q in &queries {
        e.embed(&[q]).unwrap();
    }
    let query = t.elapsed() / 128;
    println!(
        "local embedding (ours, {:?} kernels, {} threads): {rust:.0} sentences/s in batches \
         of 32; one tweet alone: {:.1} ms; one 5-8 word query alone: {:.2} ms",
        impressox_rag::embed::kernels::level(),
        rayon::current_num_threads(),
        ms(single),
        ms(query)
    );
    let venv = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_default()
        .join(".cache/impressox/ref-venv/bin/python");
    if !venv.is_file() {
        println!(
            "reference (sentence-transformers): skipped, no {}",
            venv.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("texts.json");
    std::fs::write(&file, serde_json::to_string(&texts).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/minilm_python.py");
    let out = std::process::Command::new(venv)
        .arg(script)
        .arg(default_model_dir())
        .arg(&file)
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        println!("reference failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn static_embedding() {
    let e = StaticEmbedder::open(&default_static_model_dir()).expect("cargo xtask models");
    let texts: Vec<String> = (0..20_000).map(tweet).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    e.embed(&refs[..1000]).unwrap(); // warm-up
    // Best of three, to see past a neighbour's burst on a shared machine.
    let mut whole = f64::MAX;
    let mut batched = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        e.embed(&refs).unwrap();
        whole = whole.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for batch in refs.chunks(32) {
            e.embed(batch).unwrap();
        }
        batched = batched.min(t.elapsed().as_secs_f64());
    }
    let words: usize = texts.iter().map(|t| t.split(' ').count()).sum();
    println!(
        "static embedding ({}, {} threads, {:.0} words/text): {:.0} sentences/s in one call, \
         {:.0} sentences/s in batches of 32",
        e.model_id(),
        rayon::current_num_threads(),
        words as f64 / texts.len() as f64,
        refs.len() as f64 / whole,
        refs.len() as f64 / batched
    );
    let venv = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_default()
        .join(".cache/impressox/ref-venv/bin/python");
    if !venv.is_file() {
        println!(
            "reference (tokenlearn-static-model): skipped, no {}",
            venv.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("texts.json");
    std::fs::write(&file, serde_json::to_string(&texts).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/static_python.py");
    let out = std::process::Command::new(venv)
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        println!("reference failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Row `i` of the corpus: a random unit vector (the scan costs the same whatever the
/// values, and embedding 100k texts would take the bench minutes), from `i` alone so both
/// stores get the same data.
fn row_vector(i: usize) -> Vec<f32> {
    let mut x: u64 = (i as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    let mut v: Vec<f32> = (0..384)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 20_000) as f32 / 10_000.0 - 1.0
        })
        .collect();
    normalise(&mut v);
    v
}

fn row_document(i: usize) -> DocumentChunks {
    let text = tweet(i);
    DocumentChunks {
        document_id: i.to_string(),
        version: "1".into(),
        source: if i.is_multiple_of(2) {
            "tweets"
        } else {
            "pages"
        }
        .into(),
        url: None,
        time_ms: Some(1_700_000_000_000 + i as i64 * 1000),
        chunks: vec![ChunkText {
            end: text.chars().count() as u32,
            metadata: vec![
                ("author".into(), format!("user{}", i % 500)),
                ("cashtags".into(), TAGS[i % TAGS.len()].into()),
            ],
            text,
            start: 0,
        }],
    }
}

/// Where the queries run: the embedded store, or a Chroma server the bench starts
/// (`chroma run` from the test virtualenv, as the tests do).
enum Store {
    Embedded,
    Chroma(chroma_server::ChromaServer),
}

impl Store {
    fn name(&self) -> &'static str {
        match self {
            Store::Embedded => "embedded",
            Store::Chroma(_) => "chroma",
        }
    }

    fn open(&self, dir: &std::path::Path) -> RagIndex {
        match self {
            Store::Embedded => RagIndex::open(dir).unwrap(),
            Store::Chroma(server) => {
                RagIndex::open_chroma(ChromaConfig::new(server.url()), dir).unwrap()
            }
        }
    }
}

fn queries(e: &LocalEmbedder, store: &Store, matrix: &mut Vec<f32>) {
    let chunks: usize = std::env::var("RAG_BENCH_CHUNKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let name = store.name();
    let dir = tempfile::tempdir().unwrap();
    let index = store.open(dir.path());
    index.ensure_collection("tweets", e).unwrap();
    let t = Instant::now();
    let fill_matrix = matrix.is_empty();
    for start in (0..chunks).step_by(5_000) {
        let docs: Vec<(DocumentChunks, Vec<Vec<f32>>)> = (start..(start + 5_000).min(chunks))
            .map(|i| {
                let v = row_vector(i);
                if fill_matrix {
                    matrix.extend_from_slice(&v);
                }
                (row_document(i), vec![v])
            })
            .collect();
        index.upsert("tweets", &docs).unwrap();
    }
    println!(
        "[{name}] ingest of {chunks} chunks (vectors given, store + BM25, batches of 5,000): \
         {:.1} s",
        t.elapsed().as_secs_f64()
    );
    drop(index);
    let t = Instant::now();
    let index = store.open(dir.path());
    println!(
        "[{name}] reopen with {chunks} chunks: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let texts = [
        "which bitcoin miners are moving into AI data centers",
        "$IREN",
        "funding rates on perpetuals",
        "stablecoin supply this week",
        "ETF inflows record",
    ];
    let filtered = Filter {
        sources: vec!["tweets".into()],
        // The newer half.
        since_ms: Some(1_700_000_000_000 + chunks as i64 / 2 * 1000),
        ..Filter::default()
    };
    let cashtag = Filter {
        cashtag: Some("$IREN".into()),
        ..Filter::default()
    };
    for (label, mode, filter) in [
        ("vector", Mode::Vector, Filter::default()),
        ("vector, cashtag filter", Mode::Vector, cashtag),
        ("lexical", Mode::Lexical, Filter::default()),
        ("hybrid", Mode::Hybrid, Filter::default()),
        ("hybrid, source + time filter", Mode::Hybrid, filtered),
    ] {
        let mut times = Vec::new();
        for round in 0..300 {
            let q = Query {
                collection: "tweets".into(),
                text: format!("{} {}", texts[round % texts.len()], round / texts.len()),
                k: 10,
                mode,
                filter: filter.clone(),
                min_score: None,
            };
            let t = Instant::now();
            let hits = index.query(e, &q).unwrap();
            times.push(t.elapsed());
            assert!(!hits.is_empty() || mode == Mode::Lexical);
        }
        times.drain(..20); // warm-up
        times.sort();
        println!(
            "[{name}] query at {chunks} chunks, k=10, {label}: p50 {:.1} ms, p99 {:.1} ms",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
    }
    // Hybrid's lexical half alone: BM25 as deep as hybrid looks (50 for k = 10).
    let mut times = Vec::new();
    for round in 0..300 {
        let text = format!("{} {}", texts[round % texts.len()], round / texts.len());
        let t = Instant::now();
        index
            .lexical()
            .search("tweets", &text, 50, &Filter::default())
            .unwrap();
        times.push(t.elapsed());
    }
    times.drain(..20);
    times.sort();
    println!(
        "[{name}] BM25 alone at {chunks} chunks, 50 deep (hybrid's lexical half): p50 {:.1} ms, \
         p99 {:.1} ms",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );
    // The vector search alone (the query's vector given) and its recall@10 against the
    // exact scan over the same vectors: the embedded store's int8 scan, Chroma's HNSW.
    let mut times = Vec::new();
    let (mut found, mut wanted) = (0, 0);
    let all = |_: usize| true;
    for i in 0..200usize {
        let row = (i * 7919) % chunks;
        let mut q: Vec<f32> = matrix[row * 384..row * 384 + 384]
            .iter()
            .enumerate()
            .map(|(j, v)| v + 0.05 * (((i * 31 + j * 17) % 200) as f32 / 100.0 - 1.0))
            .collect();
        normalise(&mut q);
        let t = Instant::now();
        let hits = index
            .vectors()
            .search("tweets", e.model_id(), &q, 10, &Filter::default(), None)
            .unwrap();
        times.push(t.elapsed());
        let exact = impressox_rag::scan::top_k(matrix, 384, &q, 10, &all);
        wanted += exact.len();
        found += hits
            .iter()
            .filter(|h| {
                exact
                    .iter()
                    .any(|x| x.row.to_string() == h.chunk.document_id)
            })
            .count();
    }
    times.sort();
    println!(
        "[{name}] vector search alone at {chunks} chunks, k=10: p50 {:.1} ms, p99 {:.1} ms, \
         recall@10 against exact {:.4}",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        found as f64 / wanted as f64
    );
}

fn query_embedding(e: &LocalEmbedder) {
    let texts = [
        "which bitcoin miners are moving into AI data centers",
        "$IREN",
    ];
    let mut times = Vec::new();
    for round in 0..100 {
        let t = Instant::now();
        e.embed(&[texts[round % texts.len()]]).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "query embedding alone (1-8 words): p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );
}

/// The int8 scan with exact re-ranking (what the store runs) against the exact f32 scan on
/// the same vectors: time, and recall@10 for queries near stored rows (random unit vectors
/// crowd their scores together: a hard case for a quantised scan).
fn scan_and_recall(matrix: &[f32]) {
    use impressox_rag::scan;
    let dim = 384;
    let rows = matrix.len() / dim;
    let mut codes = Vec::with_capacity(matrix.len());
    let mut scales = Vec::with_capacity(rows);
    for v in matrix.chunks_exact(dim) {
        let (c, s) = scan::quantise(v);
        codes.extend_from_slice(&c);
        scales.push(s);
    }
    let all = |_: usize| true;
    let (mut exact_t, mut quant_t) = (Vec::new(), Vec::new());
    let (mut found, mut wanted) = (0, 0);
    for i in 0..200usize {
        let row = (i * 7919) % rows;
        let mut q: Vec<f32> = matrix[row * dim..row * dim + dim]
            .iter()
            .enumerate()
            .map(|(j, v)| v + 0.05 * (((i * 31 + j * 17) % 200) as f32 / 100.0 - 1.0))
            .collect();
        normalise(&mut q);
        let t = Instant::now();
        let exact = scan::top_k(matrix, dim, &q, 10, &all);
        exact_t.push(t.elapsed());
        let t = Instant::now();
        let approx = scan::top_k_quantised(matrix, &codes, &scales, dim, &q, 10, &all);
        quant_t.push(t.elapsed());
        wanted += exact.len();
        found += approx
            .iter()
            .filter(|a| exact.iter().any(|x| x.row == a.row))
            .count();
    }
    exact_t.sort();
    quant_t.sort();
    println!(
        "vector scan at {rows} chunks, k=10: exact f32 p50 {:.1} ms p99 {:.1} ms; \
         int8 + exact re-rank p50 {:.1} ms p99 {:.1} ms; recall@10 {:.4}",
        ms(percentile(&exact_t, 0.5)),
        ms(percentile(&exact_t, 0.99)),
        ms(percentile(&quant_t, 0.5)),
        ms(percentile(&quant_t, 0.99)),
        found as f64 / wanted as f64
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `RAG_BENCH_ONLY=embedding`, `=static` or `=queries` runs one part.
    let only = std::env::var("RAG_BENCH_ONLY").unwrap_or_default();
    let runs = |part: &str| only.is_empty() || only == part;
    if runs("static") {
        static_embedding();
    }
    if runs("embedding") || runs("queries") {
        let e = LocalEmbedder::open(&default_model_dir()).expect("cargo xtask models");
        if runs("embedding") {
            embedding(&e);
        }
        if runs("queries") {
            // `RAG_BENCH_STORES=embedded` (or `chroma`) runs one store; both by default.
            let stores = std::env::var("RAG_BENCH_STORES").unwrap_or("embedded,chroma".into());
            let mut matrix = Vec::new();
            for name in stores.split(',') {
                let store = match name.trim() {
                    "embedded" => Store::Embedded,
                    "chroma" => Store::Chroma(chroma_server::ChromaServer::start()),
                    other => panic!("RAG_BENCH_STORES: unknown store {other:?}"),
                };
                queries(&e, &store, &mut matrix);
            }
            query_embedding(&e);
            scan_and_recall(&matrix);
        }
    }
}
