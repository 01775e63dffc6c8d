//! Ingest benchmark (issue 15, speed): 10,000 tweets from the document store into the RAG
//! index end to end, through the same code the rag worker runs: a `documents` source
//! ([`SourceRunner::pass`]) reads the `tweets` collection a page at a time, the bundled
//! `tweet-chunker` plugin cuts each record (with the host's token counter), the embedder
//! embeds the chunks and the embedded store writes them (vectors, then the BM25 index).
//!
//! The figures are the total time of the pass and the share of each stage, read from the
//! service's own stage counters ([`RagService::stage_times`], also printed by
//! `impressox rag ingest`); what they leave out of the total is the bookkeeping between the
//! stages (version hashes and look-ups, the cursor).
//!
//! The tweets are written first the way the scraper stores them (`write_tweets`), with
//! tweet-length texts of 20-45 words, cashtags, a URL and emoji; writing is not counted.
//!
//! Runs (`INGEST_BENCH_RUNS`, default `embedded:local,embedded:static,mongodb:static`): the
//! document store (`embedded`, or `mongodb`: a SecantusDB server from the test virtualenv)
//! and the embedder (`local`: all-MiniLM-L6-v2; `static`: the int8 Model2Vec model). The
//! MongoDB run uses `static` by default: the embedding costs the same whichever store the
//! documents come from, and `local` would make the run minutes longer.
//! `INGEST_BENCH_TWEETS` changes the 10,000.
//!
//! Run: `cargo bench -p impressox-host --bench ingest` after `cargo xtask models`.
//! Figures go to docs/BENCHMARKS.md.

#[path = "common/mongo.rs"]
mod mongo;

use std::sync::Arc;
use std::time::Instant;

use impressox_host::bindings::types::Tweet;
use impressox_host::config::Config;
use impressox_host::documents::Documents;
use impressox_host::documents::embedded::EmbeddedDocuments;
use impressox_host::documents::mongo::MongoDocuments;
use impressox_host::rag::RagService;
use impressox_host::rag::config::{EmbedderKind, RagConfig, SourceConfig, SourceKind};
use impressox_host::rag::sources::SourceRunner;
use impressox_host::rag::sources::cursors::Cursors;
use impressox_host::runtime::Runtime;
use impressox_host::scraper::store::{Sighting, WriteMeta, write_tweets};

/// The same allocator as the `impressox` binary (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    "🚀",
    "gm",
    "#crypto",
    "@trader",
];
const TAGS: &[&str] = &["IREN", "BTC", "ETH", "SOL", "MARA", "NVDA", "COIN", "DOGE"];

/// Tweet `i` as the scraper's parser returns it: 20-45 words, one or two cashtags, a URL.
fn tweet(i: usize) -> Tweet {
    let mut x = (i as u64 + 7).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as usize
    };
    let n = 20 + next() % 26;
    let mut words: Vec<String> = (0..n)
        .map(|_| WORDS[next() % WORDS.len()].to_string())
        .collect();
    let mut cashtags = vec![TAGS[next() % TAGS.len()].to_string()];
    if next().is_multiple_of(2) {
        cashtags.push(TAGS[next() % TAGS.len()].to_string());
    }
    for t in &cashtags {
        words.insert(next() % n, format!("${t}"));
    }
    words.push(format!("https://t.co/x{i}"));
    let id = (1_990_714_142_880_702_470u64 + i as u64).to_string();
    let user = i % 300;
    Tweet {
        id: id.clone(),
        url: format!("https://x.com/user{user}/status/{id}"),
        date: format!("2025-11-18T10:{:02}:{:02}Z", (i / 60) % 60, i % 60),
        user_id: (44_196_397 + user).to_string(),
        username: format!("user{user}"),
        lang: "en".into(),
        raw_content: words.join(" "),
        reply_count: 1,
        retweet_count: 2,
        like_count: (i % 97) as u64,
        quote_count: 0,
        bookmarked_count: 0,
        view_count: Some(100),
        conversation_id: id,
        hashtags: vec![],
        cashtags,
        mentioned_users: vec![],
        links: vec![],
        media: vec![],
        retweeted_tweet_id: None,
        quoted_tweet_id: None,
        in_reply_to_tweet_id: None,
        raw_json: "{}".into(),
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One run: fresh stores, the tweets written, one pass of the source timed.
async fn run(docs_kind: &str, embedder: &str, tweets: usize, mongo: Option<&mongo::Mongo>) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\ncall_timeout_ms = 60000\n",
    )
    .unwrap();
    let config = Config::load_with_env(Some(&cfg), &[]).unwrap();
    std::fs::create_dir_all(config.data_dir()).unwrap();
    let docs: Arc<dyn Documents> = match (docs_kind, mongo) {
        ("embedded", _) => {
            Arc::new(EmbeddedDocuments::open(&config.data_dir().join("documents.redb")).unwrap())
        }
        ("mongodb", Some(m)) => {
            let db = format!("ingest_{embedder}");
            Arc::new(MongoDocuments::connect(&m.url(), &db).await.unwrap())
        }
        (other, _) => panic!("INGEST_BENCH_RUNS: unknown document store {other:?}"),
    };
    impressox_host::scraper::store::ensure_indexes(docs.as_ref())
        .await
        .unwrap();
    let all: Vec<Tweet> = (0..tweets).map(tweet).collect();
    let written = Instant::now();
    for (n, batch) in all.chunks(500).enumerate() {
        let meta = WriteMeta {
            parser: "x-timeline@0.1.0",
            sighting: Sighting::Run {
                target: "bench",
                at_ms: 1_763_460_000_000 + n as i64 * 1000,
            },
            dry_run: false,
        };
        write_tweets(docs.as_ref(), batch, &meta).await.unwrap();
    }
    let written = written.elapsed();

    let runtime = Runtime::new(&config).unwrap();
    let path = config.plugin_dir().join("tweet-chunker.wasm");
    std::fs::copy(test_artifacts::TWEET_CHUNKER, &path).unwrap();
    runtime.load_file(&path).unwrap();
    let mut rag = RagConfig::default();
    rag.embedder.kind = match embedder {
        "local" => EmbedderKind::Local,
        "static" => EmbedderKind::Static,
        other => panic!("INGEST_BENCH_RUNS: unknown embedder {other:?}"),
    };
    let (base, data) = (config.base_dir.clone(), config.data_dir());
    let service = tokio::task::spawn_blocking(move || {
        Arc::new(RagService::open(&rag, &base, &data, runtime).unwrap())
    })
    .await
    .unwrap();
    let source = SourceConfig {
        name: "tweets".into(),
        kind: SourceKind::Documents,
        collection: "x".into(),
        path: None,
        urls: Vec::new(),
        from: Some("tweets".into()),
        cursor_field: None,
        interval: None,
        chunker: None,
        allow_private_addresses: false,
        render: false,
    };
    let cursors = Arc::new(Cursors::open(&config.data_dir().join("rag")));
    let mut runner = SourceRunner::new(
        source,
        &config.base_dir,
        service.clone(),
        cursors,
        Some(docs.clone()),
    )
    .unwrap();
    let started = Instant::now();
    let counts = runner.pass().await.unwrap();
    let total = started.elapsed().as_secs_f64();
    assert_eq!(counts.changed as usize, tweets, "{counts:?}");
    let t = service.stage_times();
    let share = |s: f64| s / total * 100.0;
    println!(
        "| {docs_kind} | {embedder} ({}) | {tweets} tweets, {} chunks | {total:.1} s, {:.0} tweets/s \
         | read {:.2} s ({:.1}%), chunk {:.2} s ({:.1}%), embed {:.2} s ({:.1}%), \
         vector store {:.2} s ({:.1}%), BM25 {:.2} s ({:.1}%), other {:.2} s ({:.1}%) |",
        service.embedder().model_id(),
        counts.embedded,
        tweets as f64 / total,
        t.read_s,
        share(t.read_s),
        t.chunk_s,
        share(t.chunk_s),
        t.embed_s,
        share(t.embed_s),
        t.vectors_s,
        share(t.vectors_s),
        t.lexical_s,
        share(t.lexical_s),
        total - t.total_s(),
        share(total - t.total_s()),
    );
    println!(
        "  (writing the {tweets} tweets into the {docs_kind} document store beforehand: {:.1} s)",
        written.as_secs_f64()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let tweets = env_usize("INGEST_BENCH_TWEETS", 10_000);
    let runs = std::env::var("INGEST_BENCH_RUNS")
        .unwrap_or_else(|_| "embedded:local,embedded:static,mongodb:static".into());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut server = None;
    println!("| documents | embedder | input | total | stages |");
    println!("|---|---|---|---|---|");
    for run_spec in runs.split(',') {
        let (docs_kind, embedder) = run_spec
            .trim()
            .split_once(':')
            .unwrap_or_else(|| panic!("INGEST_BENCH_RUNS: {run_spec:?} is not store:embedder"));
        if docs_kind == "mongodb" && server.is_none() {
            server = Some(mongo::Mongo::start());
        }
        tokio.block_on(run(docs_kind, embedder, tweets, server.as_ref()));
    }
}
