//! Chunking benchmark (issue 15, item 2): the bundled doc-chunkers through the real
//! runtime, with the host's all-MiniLM-L6-v2 tokenizer answering their `tokens` calls.
//!
//! - The token counter alone: tokens per second of `WordPieceCounter::count` on the
//!   Markdown corpus's words (what a chunker's `count-many` costs the host).
//! - `markdown-chunker` on a Markdown guide of about 200 KB (headings every few
//!   paragraphs), 254 tokens with 32 of overlap: MB/s, chunks/s, and the share of the call
//!   spent counting tokens in the host.
//! - `markdown-chunker` on the same guide as HTML.
//! - `tweet-chunker` on 2,000 tweets as the scraper stores them: tweets/s.
//!
//! Run: `cargo bench -p impressox-host --bench chunker` after `cargo xtask models`.
//! Figures go to docs/BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use impressox_host::bindings::types::{ChunkOptions, Document, Tweet};
use impressox_host::config::Config;
use impressox_host::rag::tokens::WordPieceCounter;
use impressox_host::rag::{TokenCounter, Tokens};
use impressox_host::runtime::Runtime;

/// The same allocator as the `impressox` binary (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Counts the time spent in the host's tokenizer, to tell it from the guest's work.
struct Timed {
    inner: WordPieceCounter,
    nanos: std::sync::atomic::AtomicU64,
}

impl TokenCounter for Timed {
    fn count(&self, text: &str) -> Result<u32, String> {
        let t = Instant::now();
        let n = self.inner.count(text);
        self.nanos.fetch_add(
            t.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        n
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

fn guide() -> String {
    let mut out = String::from("# Operator guide\n\n");
    let mut i = 0;
    while out.len() < 200_000 {
        out.push_str(&format!("## Part {i}\n\n"));
        for p in 0..4 {
            out.push_str(&format!(
                "The market monitor reads price feeds from Binance and Coinbase (paragraph {p} \
                 of part {i}), keeps the latest price per symbol and evaluates every alert \
                 rule on each batch of ticks. A rule fires when BTCUSDT crosses 97,000 or \
                 $IREN moves by 5%; the notify worker renders the alert for Telegram, email \
                 and webhooks, and retries with backoff when a channel fails.\n\n"
            ));
        }
        i += 1;
    }
    out
}

fn html_of(markdown: &str) -> String {
    let mut out = String::from("<html><head><title>Guide</title></head><body>");
    for block in markdown.split("\n\n").filter(|b| !b.trim().is_empty()) {
        if let Some(h) = block.strip_prefix("## ") {
            out.push_str(&format!("<h2>{h}</h2>"));
        } else if let Some(h) = block.strip_prefix("# ") {
            out.push_str(&format!("<h1>{h}</h1>"));
        } else {
            out.push_str(&format!("<p>{}</p>", block.replace('&', "&amp;")));
        }
    }
    out.push_str("</body></html>");
    out
}

fn tweet_json(i: usize) -> String {
    let id = (1_990_714_142_880_702_470u64 + i as u64).to_string();
    let t = Tweet {
        id: id.clone(),
        url: format!("https://x.com/minerwatch/status/{id}"),
        date: "2025-11-18T10:15:30Z".into(),
        user_id: "44196397".into(),
        username: "minerwatch".into(),
        lang: "en".into(),
        raw_content: format!(
            "$IREN up {i}% after earnings; hash rate guidance raised. $btc miners follow, \
             $MARA lags. https://t.co/x{i}"
        ),
        reply_count: 1,
        retweet_count: 2,
        like_count: 3,
        quote_count: 0,
        bookmarked_count: 0,
        view_count: Some(100),
        conversation_id: id,
        hashtags: vec![],
        cashtags: vec!["IREN".into(), "BTC".into(), "MARA".into()],
        mentioned_users: vec![],
        links: vec![],
        media: vec![],
        retweeted_tweet_id: None,
        quoted_tweet_id: None,
        in_reply_to_tweet_id: None,
        raw_json: "{}".into(),
    };
    let doc = impressox_host::scraper::store::tweet_doc(&t, "x-timeline@0.1.0").unwrap();
    serde_json::Value::Object(doc).to_string()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\ncall_timeout_ms = 60000\nmemory_limit_mib = 256\nmax_output_bytes = 67108864\n",
    )
    .unwrap();
    let config = Config::load_with_env(Some(&cfg), &[]).unwrap();
    let model_dir = config.tokenizer_dir();
    let timed = Arc::new(Timed {
        inner: WordPieceCounter::open(&model_dir).unwrap_or_else(|e| panic!("{e}")),
        nanos: Default::default(),
    });
    let services = impressox_host::capabilities::Services::none(&config)
        .with_tokens(Arc::new(Tokens::with_counter(timed.clone())));
    let runtime = Runtime::with_services(&config, services).unwrap();
    for (name, wasm) in [
        ("markdown-chunker", test_artifacts::MARKDOWN_CHUNKER),
        ("tweet-chunker", test_artifacts::TWEET_CHUNKER),
    ] {
        let path = config.plugin_dir().join(format!("{name}.wasm"));
        std::fs::copy(wasm, &path).unwrap();
        runtime.load_file(&path).unwrap();
    }
    // A function, not a value: whether the generated record is `Copy` is bindgen's choice.
    let options = || ChunkOptions {
        max_tokens: 254,
        overlap_tokens: 32,
    };

    let md = guide();
    let words: Vec<&str> = md.split_whitespace().collect();
    let started = Instant::now();
    let mut tokens = 0u64;
    for w in &words {
        tokens += u64::from(timed.inner.count(w).unwrap());
    }
    let counter_secs = started.elapsed().as_secs_f64();
    println!(
        "| token counter (host, word by word) | {} words, {tokens} tokens | {:.0} tokens/s |",
        words.len(),
        tokens as f64 / counter_secs
    );

    let chunker = runtime.plugin("markdown-chunker");
    for (what, text, media_type) in [
        ("markdown-chunker, Markdown", md.clone(), "text/markdown"),
        ("markdown-chunker, HTML", html_of(&md), "text/html"),
    ] {
        let doc = Document {
            id: "guide".into(),
            text,
            media_type: media_type.into(),
            metadata: vec![("source".into(), "bench".into())],
        };
        // Warm: the instance, the tokenizer's caches.
        chunker.chunk(&doc, options()).unwrap().unwrap();
        let runs = 10;
        timed.nanos.store(0, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let mut chunks = 0;
        for _ in 0..runs {
            chunks += chunker
                .chunk(&doc, options())
                .unwrap()
                .unwrap()
                .chunks
                .len();
        }
        let secs = started.elapsed().as_secs_f64();
        let counting = Duration::from_nanos(timed.nanos.load(std::sync::atomic::Ordering::Relaxed));
        println!(
            "| {what} | {:.0} KB, {} chunks | {:.2} MB/s, {:.0} chunks/s, {:.1} ms a document; {:.0}% counting tokens in the host |",
            doc.text.len() as f64 / 1000.0,
            chunks / runs,
            (doc.text.len() * runs) as f64 / secs / 1e6,
            chunks as f64 / secs,
            secs * 1000.0 / runs as f64,
            counting.as_secs_f64() / secs * 100.0
        );
    }

    let tweets: Vec<Document> = (0..2000)
        .map(|i| Document {
            id: i.to_string(),
            text: tweet_json(i),
            media_type: "application/json".into(),
            metadata: vec![],
        })
        .collect();
    let chunker = runtime.plugin("tweet-chunker");
    chunker.chunk(&tweets[0], options()).unwrap().unwrap();
    let started = Instant::now();
    for t in &tweets {
        let out = chunker.chunk(t, options()).unwrap().unwrap();
        assert_eq!(out.chunks.len(), 1);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "| tweet-chunker | {} stored tweets | {:.0} tweets/s, {:.0} µs a tweet |",
        tweets.len(),
        tweets.len() as f64 / secs,
        secs * 1e6 / tweets.len() as f64
    );
}
