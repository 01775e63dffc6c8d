//! The doc-chunker kind end to end: the bundled `markdown-chunker` and `tweet-chunker`
//! components through the real runtime, sizes checked with the real all-MiniLM-L6-v2
//! tokenizer (put in `~/.cache/impressox/models` by `cargo xtask test`), bad input, hot
//! reload, a missing model, `impressox plugin run` on the documented inputs, and a
//! scaffolded chunker built and run.

use std::sync::Arc;
use std::time::Duration;

use impressox_host::bindings::types::*;
use impressox_host::rag::TokenCounter;
use impressox_host::rag::config::default_model_dir;
use impressox_host::rag::tokens::WordPieceCounter;
use impressox_host::runtime::Kind;

use crate::cli::{bundled_example, plugin_run, scaffold_and_build};
use crate::harness::*;

/// The tokenizer the host counts with: the same files, opened the same way.
fn tokenizer() -> Arc<WordPieceCounter> {
    let dir = default_model_dir();
    Arc::new(WordPieceCounter::open(&dir).unwrap_or_else(|e| panic!("{e}")))
}

fn document(id: &str, text: &str, media_type: &str) -> Document {
    Document {
        id: id.into(),
        text: text.into(),
        media_type: media_type.into(),
        metadata: vec![("source".into(), "test".into())],
    }
}

fn meta<'a>(c: &'a Chunk, key: &str) -> Option<&'a str> {
    c.metadata
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The chars between `start` and `end`.
fn chars(text: &str, start: u32, end: u32) -> String {
    text.chars()
        .skip(start as usize)
        .take((end - start) as usize)
        .collect()
}

fn options(max: u32, overlap: u32) -> ChunkOptions {
    ChunkOptions {
        max_tokens: max,
        overlap_tokens: overlap,
    }
}

/// A Markdown page with a long section, punctuation and non-ASCII text (so char and byte
/// offsets differ).
fn long_markdown() -> String {
    let mut setup = String::new();
    for i in 0..40 {
        setup.push_str(&format!(
            "Step {i}: install the host, configure the feeds (Binance, Coinbase) and check \
             the café's prices — they update every second. "
        ));
        if i % 7 == 6 {
            setup.push_str("\n\n");
        }
    }
    format!(
        "# Intro\n\nImpressoX watches crypto markets for an agent.\n\n## Setup\n\n{setup}\n\n\
         ## Usage\n\nAsk for `$IREN` news.\n\n# Empty\n\n## Inner\n\nLast words.\n"
    )
}

#[test]
fn markdown_is_cut_by_headings_then_by_real_tokens_with_overlap() {
    let h = host();
    h.load(test_artifacts::MARKDOWN_CHUNKER, "markdown-chunker.wasm");
    let text = long_markdown();
    let out = h
        .runtime
        .plugin("markdown-chunker")
        .chunk(
            &document("guide.md", &text, "text/markdown"),
            options(64, 16),
        )
        .unwrap()
        .unwrap();
    assert!(
        out.normalised.is_none(),
        "offsets index the document itself"
    );
    let tok = tokenizer();
    let sections: Vec<&str> = out
        .chunks
        .iter()
        .map(|c| meta(c, "section").unwrap())
        .collect();
    assert_eq!(sections[0], "Intro");
    assert_eq!(sections[sections.len() - 1], "Empty > Inner");
    assert_eq!(sections[sections.len() - 2], "Intro > Usage");
    let setup: Vec<&Chunk> = out
        .chunks
        .iter()
        .filter(|c| meta(c, "section") == Some("Intro > Setup"))
        .collect();
    assert!(setup.len() >= 10, "{} setup chunks", setup.len());
    for c in &out.chunks {
        assert_eq!(chars(&text, c.start, c.end), c.text, "offsets are exact");
        let n = tok.count(&c.text).unwrap();
        assert!(n <= 64, "{n} tokens: {}", c.text);
        assert_eq!(meta(c, "source"), Some("test"));
        // Never inside a word.
        let before = text.chars().nth(c.start.saturating_sub(1) as usize);
        let after = text.chars().nth(c.end as usize);
        assert!(
            c.start == 0 || before.is_some_and(char::is_whitespace),
            "{c:?}"
        );
        assert!(after.is_none_or(char::is_whitespace), "{c:?}");
    }
    // Consecutive chunks of one section overlap by at most 16 tokens, and do overlap.
    for pair in setup.windows(2) {
        assert!(pair[1].start < pair[0].end, "no overlap: {pair:?}");
        assert!(pair[1].start > pair[0].start);
        let shared = chars(&text, pair[1].start, pair[0].end);
        let n = tok.count(&shared).unwrap();
        assert!((1..=16).contains(&n), "{n} overlapping tokens: {shared}");
    }
    // The chunks fill the section: sizes are used, not a chunk per sentence.
    let mean = setup
        .iter()
        .map(|c| tok.count(&c.text).unwrap())
        .sum::<u32>()
        / setup.len() as u32;
    assert!(mean >= 40, "mean {mean} tokens");
}

#[test]
fn html_becomes_markdown_and_is_cut_by_its_headings() {
    let h = host();
    h.load(test_artifacts::MARKDOWN_CHUNKER, "markdown-chunker.wasm");
    let html = "<!doctype html><html><head><title>Docs</title><script>track()</script></head>\
        <body><nav><a href=\"/\">Home</a></nav><h1>Market monitor</h1>\
        <p>It watches prices &amp; evaluates <em>rules</em> on every batch.</p>\
        <h2>Feeds</h2><ul><li>Binance</li><li>Coinbase</li></ul>\
        <h2>Rules</h2><p>Above, below, crossing, percent change.</p></body></html>";
    let out = h
        .runtime
        .plugin("markdown-chunker")
        .chunk(
            &document("page", html, "text/html; charset=utf-8"),
            options(128, 16),
        )
        .unwrap()
        .unwrap();
    let md = out.normalised.as_deref().expect("HTML is normalised");
    assert!(
        md.contains("# Market monitor") && md.contains("## Feeds"),
        "{md}"
    );
    assert!(!md.contains("track()") && !md.contains("<p>"), "{md}");
    let sections: Vec<&str> = out
        .chunks
        .iter()
        .filter_map(|c| meta(c, "section"))
        .collect();
    assert_eq!(
        sections,
        [
            "Market monitor",
            "Market monitor > Feeds",
            "Market monitor > Rules"
        ]
    );
    for c in &out.chunks {
        assert_eq!(chars(md, c.start, c.end), c.text);
    }
    let monitor = out
        .chunks
        .iter()
        .find(|c| meta(c, "section") == Some("Market monitor"))
        .unwrap();
    assert!(monitor.text.contains("prices & evaluates"), "{monitor:?}");
}

fn stored_tweet(id: &str, text: &str, cashtags: &[&str]) -> String {
    let tweet = Tweet {
        id: id.into(),
        url: format!("https://x.com/minerwatch/status/{id}"),
        date: "2025-11-18T10:15:30Z".into(),
        user_id: "44196397".into(),
        username: "minerwatch".into(),
        lang: "en".into(),
        raw_content: text.into(),
        reply_count: 0,
        retweet_count: 0,
        like_count: 3,
        quote_count: 0,
        bookmarked_count: 0,
        view_count: Some(100),
        conversation_id: id.into(),
        hashtags: vec![],
        cashtags: cashtags.iter().map(|s| s.to_string()).collect(),
        mentioned_users: vec![],
        links: vec![],
        media: vec![],
        retweeted_tweet_id: None,
        quoted_tweet_id: None,
        in_reply_to_tweet_id: Some("1990714142880700000".into()),
        raw_json: "{}".into(),
    };
    // Exactly what the scraper writes to `tweets`.
    let doc = impressox_host::scraper::store::tweet_doc(&tweet, "x-timeline@0.1.0").unwrap();
    serde_json::Value::Object(doc).to_string()
}

#[test]
fn a_stored_tweet_is_one_chunk_with_author_time_cashtags_and_url() {
    let h = host();
    h.load(test_artifacts::TWEET_CHUNKER, "tweet-chunker.wasm");
    let text = "$IREN up 12% 🚀 after earnings; $btc miners follow. Cost $100k/EH.";
    let json = stored_tweet("1990714142880702470", text, &["IREN", "BTC"]);
    let out = h
        .runtime
        .plugin("tweet-chunker")
        .chunk(
            &document("1990714142880702470", &json, "application/json"),
            options(254, 32),
        )
        .unwrap()
        .unwrap();
    assert_eq!(out.normalised.as_deref(), Some(text));
    assert_eq!(out.chunks.len(), 1);
    let c = &out.chunks[0];
    assert_eq!(c.text, text);
    assert_eq!((c.start, c.end), (0, text.chars().count() as u32));
    assert_eq!(meta(c, "cashtags"), Some("$BTC,$IREN"));
    assert_eq!(meta(c, "author"), Some("minerwatch"));
    assert_eq!(meta(c, "time"), Some("2025-11-18T10:15:30Z"));
    assert_eq!(meta(c, "time_ms"), Some("1763460930000"));
    assert_eq!(
        meta(c, "url"),
        Some("https://x.com/minerwatch/status/1990714142880702470")
    );
    assert_eq!(meta(c, "reply_to"), Some("1990714142880700000"));
    assert_eq!(meta(c, "source"), Some("test"));

    // A long post is cut into parts that each fit, with the tweet's metadata.
    let long = "$SOL validators upgrade tonight, expect slower blocks. ".repeat(60);
    let json = stored_tweet("2", &long, &[]);
    let out = h
        .runtime
        .plugin("tweet-chunker")
        .chunk(&document("2", &json, "application/json"), options(100, 10))
        .unwrap()
        .unwrap();
    let tok = tokenizer();
    assert!(out.chunks.len() >= 5);
    for (i, c) in out.chunks.iter().enumerate() {
        assert!(tok.count(&c.text).unwrap() <= 100);
        assert_eq!(meta(c, "part"), Some((i + 1).to_string().as_str()));
        assert_eq!(meta(c, "cashtags"), Some("$SOL"));
        assert_eq!(chars(&long, c.start, c.end), c.text);
    }
}

#[test]
fn malformed_documents_are_answered_with_a_clear_error_and_the_chunker_keeps_serving() {
    let h = host();
    h.load(test_artifacts::TWEET_CHUNKER, "tweet-chunker.wasm");
    h.load(test_artifacts::MARKDOWN_CHUNKER, "markdown-chunker.wasm");
    let tweets = h.runtime.plugin("tweet-chunker");
    let err = tweets
        .chunk(
            &document("t1", "{\"raw_content\": ", "application/json"),
            options(64, 8),
        )
        .unwrap()
        .unwrap_err();
    assert!(err.contains("document `t1` is not valid JSON"), "{err}");
    assert!(err.contains("line 1 column"), "{err}");
    let err = tweets
        .chunk(
            &document("t2", "{\"id\": \"2\"}", "application/json"),
            options(64, 8),
        )
        .unwrap()
        .unwrap_err();
    assert!(err.contains("document `t2` has no `raw_content`"), "{err}");
    let md = h.runtime.plugin("markdown-chunker");
    let err = md
        .chunk(&document("img", "\u{89}PNG", "image/png"), options(64, 8))
        .unwrap()
        .unwrap_err();
    assert!(err.contains("media type `image/png`"), "{err}");
    let err = md
        .chunk(&document("o", "# A\nx", "text/markdown"), options(8, 8))
        .unwrap()
        .unwrap_err();
    assert!(
        err.contains("overlap-tokens (8) must be smaller than max-tokens (8)"),
        "{err}"
    );
    // Still serving, nothing counted against them.
    let ok = tweets
        .chunk(
            &document(
                "t3",
                &stored_tweet("3", "$ETH fine", &[]),
                "application/json",
            ),
            options(64, 8),
        )
        .unwrap()
        .unwrap();
    assert_eq!(ok.chunks.len(), 1);
    for s in h.runtime.statuses() {
        assert_eq!(s.consecutive_failures, 0, "{}", s.name);
    }
}

#[test]
fn a_chunker_dropped_over_the_running_one_is_used_without_a_restart() {
    let h = host();
    let watcher = impressox_host::runtime::watcher::Watcher::start(
        h.runtime.clone(),
        Duration::from_millis(30),
    )
    .unwrap();
    let handle = h.runtime.plugin("markdown-chunker");
    let doc = document("d", "# Title\n\nHello world.\n", "text/markdown");
    let answer = |h: &impressox_host::runtime::PluginHandle| {
        h.chunk(&doc, options(64, 8))
            .ok()
            .and_then(|r| r.ok())
            .and_then(|c| c.chunks.into_iter().next())
    };
    h.install(test_artifacts::MARKDOWN_CHUNKER, "markdown-chunker.wasm");
    assert!(wait_until(Duration::from_secs(30), || answer(&handle)
        .is_some_and(|c| meta(&c, "section") == Some("Title"))));
    // Version 2 (a test guest with the same name) over the same file.
    h.install(test_artifacts::GUEST_CHUNKER_V2, "markdown-chunker.wasm");
    assert!(wait_until(Duration::from_secs(30), || answer(&handle)
        .is_some_and(|c| meta(&c, "version") == Some("2.0.0"))));
    let c = answer(&handle).unwrap();
    // Its `tokens.count` is the host's tokenizer: "# title hello world." is 5 WordPieces.
    let expected = tokenizer().count("# Title\n\nHello world.\n").unwrap();
    assert_eq!(meta(&c, "tokens"), Some(expected.to_string().as_str()));
    assert_eq!(expected, 5);
    drop(watcher);
}

#[test]
fn a_chunker_without_the_model_files_is_refused_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-model");
    let config = config_in(
        dir.path(),
        &format!(
            "[rag.embedder]\nmodel_dir = {:?}\n",
            missing.display().to_string()
        ),
    );
    std::fs::create_dir_all(config.plugin_dir()).unwrap();
    let runtime = impressox_host::runtime::Runtime::new(&config).unwrap();
    let path = config.plugin_dir().join("tweet-chunker.wasm");
    write_atomically(
        &path,
        &std::fs::read(test_artifacts::TWEET_CHUNKER).unwrap(),
    );
    let err = runtime.load_file(&path).unwrap_err();
    assert!(
        err.contains("plugin `tweet-chunker` counts tokens"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}/tokenizer.json is missing", missing.display())),
        "{err}"
    );
    assert!(err.contains("cargo xtask models"), "{err}");
    // Other kinds load as before.
    let other = config.plugin_dir().join("plain-formatter.wasm");
    write_atomically(
        &other,
        &std::fs::read(test_artifacts::PLAIN_FORMATTER).unwrap(),
    );
    runtime.load_file(&other).unwrap();
    // The model arrives: the next load finds it.
    std::fs::create_dir_all(&missing).unwrap();
    std::fs::copy(
        default_model_dir().join("tokenizer.json"),
        missing.join("tokenizer.json"),
    )
    .unwrap();
    runtime.load_file(&path).unwrap();
    let st = runtime
        .statuses()
        .into_iter()
        .find(|s| s.name == "tweet-chunker")
        .unwrap();
    assert_eq!(st.kind, Some(Kind::DocChunker));
}

#[test]
fn plugin_run_chunks_each_bundled_example_input() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "data_dir = \"d\"\n").unwrap();
    let tok = tokenizer();
    for (name, wasm) in [
        ("markdown-chunker", test_artifacts::MARKDOWN_CHUNKER),
        ("tweet-chunker", test_artifacts::TWEET_CHUNKER),
    ] {
        let input = bundled_example(name);
        let v = plugin_run(&cfg, wasm, &input);
        let chunks = v["ok"]["chunks"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: {v}"));
        assert!(!chunks.is_empty(), "{name}: {v}");
        let given: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&input).unwrap()).unwrap();
        let max = given["max_tokens"].as_u64().unwrap_or(254) as u32;
        for c in chunks {
            assert!(
                tok.count(c["text"].as_str().unwrap()).unwrap() <= max,
                "{name}: {c}"
            );
        }
        if name == "tweet-chunker" {
            assert_eq!(chunks.len(), 1);
            let pairs = chunks[0]["metadata"].as_array().unwrap();
            assert!(
                pairs.contains(&serde_json::json!(["cashtags", "$BTC,$IREN"])),
                "{v}"
            );
        } else {
            assert!(chunks.len() >= 3, "{v}");
        }
    }
}

#[test]
fn a_scaffolded_chunker_builds_loads_and_runs_its_example() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, wasm) = scaffold_and_build(dir.path(), "doc-chunker", "my-chunker");
    let crate_dir = dir.path().join("my-chunker");
    let v = plugin_run(
        &cfg,
        wasm.to_str().unwrap(),
        &crate_dir.join("examples/input.json"),
    );
    let chunks = v["ok"]["chunks"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(chunks.len() >= 2, "{v}");
    let tok = tokenizer();
    for c in chunks {
        assert!(tok.count(c["text"].as_str().unwrap()).unwrap() <= 16, "{c}");
    }
}
