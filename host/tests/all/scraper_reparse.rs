//! `scraper reparse` with the real x-timeline component on the embedded document store:
//! stored raw JSON rewrites the normalized fields, the spool is drained, `--dry-run`
//! writes nothing, and the binary does it on a stopped host (docs/design/x-scraper.md
//! §4.7, §6 item 22).

use std::process::Command;
use std::sync::Arc;

use impressox_host::bindings::types::ScrapeResult;
use impressox_host::documents::{self, Doc, Documents, Filter};
use impressox_host::runtime::Runtime;
use impressox_host::runtime::output::OutputSize;
use impressox_host::scraper::reparse::{ReparseOptions, ReparseSummary, reparse};
use impressox_host::scraper::store::{self, PROFILES, Sighting, TWEETS, WriteMeta};
use serde_json::json;

use crate::harness::*;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../plugins/x-timeline/tests/fixtures"
);
const RECORDED: &str =
    "https://x.com/i/api/graphql/V7H0Ap3_Hh2FyS75OCDO3Q/UserTweets?variables=%7B%7D";
const TARGET: &str = "user:coinledger_ana";
const PARSER: &str = "x-timeline";
/// When the seeded run captured its page.
const SEEN_MS: i64 = 1_000;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

/// A host with the embedded document store and x-timeline loaded.
fn parser_host() -> TestHost {
    let h = host_with("[documents]\nbackend = \"embedded\"\n");
    h.load(test_artifacts::X_TIMELINE, "x-timeline.wasm");
    h
}

/// `name@version` of the loaded parser, as the scraper writes it into documents.
fn version(h: &TestHost) -> String {
    let l = h.runtime.plugin(PARSER).current().unwrap();
    format!("{}@{}", l.name, l.version)
}

fn parse(h: &TestHost, body: String, at_ms: i64) -> ScrapeResult {
    let capture = store::reparse_capture(RECORDED, body, at_ms);
    h.runtime
        .plugin(PARSER)
        .parse_page(&capture)
        .unwrap()
        .unwrap()
}

/// What a run of `TARGET` stores from the fixture's first timeline page.
async fn seed(h: &TestHost, docs: &dyn Documents) -> ScrapeResult {
    store::ensure_indexes(docs).await.unwrap();
    let result = parse(h, fixture("user_tweets.json"), SEEN_MS);
    assert!(result.tweets.len() >= 8, "the fixture's readable tweets");
    let v = version(h);
    let meta = WriteMeta {
        parser: &v,
        sighting: Sighting::Run {
            target: TARGET,
            at_ms: SEEN_MS,
        },
        dry_run: false,
    };
    store::write_result(docs, &result, &meta).await.unwrap();
    result
}

/// Overwrite normalized fields of a stored tweet, as a buggy parser version would have.
async fn tamper(docs: &dyn Documents, id: &str) {
    let mut d = docs.get(TWEETS, id).await.unwrap().unwrap();
    d.insert("like_count".into(), json!(999_999));
    d.insert("raw_content".into(), json!("tampered"));
    d.insert("cashtags".into(), json!([]));
    d.remove("_rev");
    documents::upsert(docs, TWEETS, d).await.unwrap();
}

async fn tweet(docs: &dyn Documents, id: &str) -> Doc {
    docs.get(TWEETS, id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("tweet {id} not stored"))
}

async fn count(docs: &dyn Documents, coll: &str) -> u64 {
    docs.count(coll, &Filter::all()).await.unwrap()
}

async fn open(h: &TestHost) -> Arc<dyn Documents> {
    documents::open(&h.config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reparse_rewrites_tampered_fields_from_raw_json_and_keeps_first_seen() {
    let h = parser_host();
    let docs = open(&h).await;
    let seeded = seed(&h, docs.as_ref()).await;
    let original = seeded
        .tweets
        .iter()
        .find(|t| !t.cashtags.is_empty())
        .expect("a fixture tweet with cashtags");
    let id = original.id.as_str();
    tamper(docs.as_ref(), id).await;
    // A document without raw JSON cannot be reparsed: counted, left alone.
    let mut bare = Doc::new();
    bare.insert("_id".into(), json!("1"));
    bare.insert("raw_content".into(), json!("no raw json"));
    documents::upsert(docs.as_ref(), TWEETS, bare.clone())
        .await
        .unwrap();
    let tweets = count(docs.as_ref(), TWEETS).await;
    let profiles = count(docs.as_ref(), PROFILES).await;
    assert!(profiles >= 1);

    let sum = reparse(&h.runtime, docs.as_ref(), PARSER, ReparseOptions::default())
        .await
        .unwrap();
    assert_eq!(
        sum,
        ReparseSummary {
            tweets,
            tweets_changed: 1,
            profiles,
            profiles_changed: 0,
            skipped: 1,
            spool_parsed: 0,
            spool_failed: 0,
            dry_run: false,
        },
        "only the tampered tweet differs from what its raw JSON says"
    );
    assert_eq!(
        sum.to_string(),
        format!(
            "reparsed {tweets} tweets (1 changed), {profiles} profiles (0 changed), 1 skipped, spool: 0 parsed, 0 still failing"
        )
    );
    let d = tweet(docs.as_ref(), id).await;
    assert_eq!(d["like_count"], original.like_count);
    assert_eq!(d["raw_content"], original.raw_content.as_str());
    assert_eq!(d["cashtags"], json!(original.cashtags));
    assert_eq!(
        (d["first_seen_ms"].as_i64(), d["last_seen_ms"].as_i64()),
        (Some(SEEN_MS), Some(SEEN_MS)),
        "reparsing is not a sighting"
    );
    assert_eq!(d["seen_by"], TARGET);
    assert_eq!(d["parser"], version(&h).as_str());
    assert_eq!(documents::rev_of(&d), 3, "insert, tamper, reparse");
    assert_eq!(count(docs.as_ref(), TWEETS).await, tweets, "no duplicate");
    let b = tweet(docs.as_ref(), "1").await;
    assert_eq!(b["raw_content"], "no raw json");

    // Nothing left to fix: a second pass changes nothing.
    let again = reparse(&h.runtime, docs.as_ref(), PARSER, ReparseOptions::default())
        .await
        .unwrap();
    assert_eq!((again.tweets_changed, again.profiles_changed), (0, 0));
    assert_eq!(documents::rev_of(&tweet(docs.as_ref(), id).await), 3);

    // --limit caps what is read from each collection.
    let limited = reparse(
        &h.runtime,
        docs.as_ref(),
        PARSER,
        ReparseOptions {
            limit: Some(3),
            dry_run: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(limited.tweets, 3);
    assert_eq!(limited.profiles, profiles.min(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_plugin_fails_on_is_parsed_one_tweet_at_a_time() {
    let h = parser_host();
    let docs = open(&h).await;
    seed(&h, docs.as_ref()).await;
    // Size the output cap between the largest one-tweet answer and the whole batch's, so
    // the batch call fails (output too large) and every single call fits.
    let stored = docs
        .find(TWEETS, &documents::Query::new(Filter::all()))
        .await
        .unwrap();
    let raws: Vec<(&str, &str)> = stored
        .iter()
        .map(|d| (d["_id"].as_str().unwrap(), d["raw_json"].as_str().unwrap()))
        .collect();
    let answer_bytes = |raws: &[(&str, &str)]| {
        let body = store::reparse_tweets_body(raws.iter().copied());
        let capture = store::reparse_capture(store::REPARSE_TWEETS_URL, body, 0);
        let r = h
            .runtime
            .plugin(PARSER)
            .parse_page(&capture)
            .unwrap()
            .unwrap();
        r.output_bytes()
    };
    let largest_one = raws
        .iter()
        .map(|one| answer_bytes(std::slice::from_ref(one)))
        .max()
        .unwrap();
    let cap = largest_one + 1;
    assert!(
        answer_bytes(&raws) > cap,
        "the batch must not fit under {cap}"
    );
    let id = raws[0].0.to_string();
    tamper(docs.as_ref(), &id).await;

    let mut config = h.config.clone();
    config.plugins.max_output_bytes = cap as u64;
    let capped = Runtime::new(&config).unwrap();
    for (file, outcome) in capped.rescan(false) {
        outcome.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
    let sum = reparse(&capped, docs.as_ref(), PARSER, ReparseOptions::default())
        .await
        .unwrap();
    assert_eq!(sum.tweets, raws.len() as u64);
    assert_eq!((sum.tweets_changed, sum.skipped), (1, 0), "{sum}");
    assert_ne!(tweet(docs.as_ref(), &id).await["raw_content"], "tampered");
    let failures = capped
        .statuses()
        .into_iter()
        .find(|s| s.name == PARSER)
        .unwrap()
        .errors;
    assert_eq!(failures, 1, "only the batch call failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_counts_what_would_change_and_writes_nothing() {
    let h = parser_host();
    let docs = open(&h).await;
    let seeded = seed(&h, docs.as_ref()).await;
    let id = seeded.tweets[0].id.clone();
    tamper(docs.as_ref(), &id).await;
    let page2 = store::reparse_capture(RECORDED, fixture("user_tweets_page2.json"), 5_000);
    store::spool(docs.as_ref(), TARGET, 4_000, 2, &page2, "trap", 5_100)
        .await
        .unwrap();
    let tweets = count(docs.as_ref(), TWEETS).await;

    let sum = reparse(
        &h.runtime,
        docs.as_ref(),
        PARSER,
        ReparseOptions {
            limit: None,
            dry_run: true,
        },
    )
    .await
    .unwrap();
    assert!(sum.dry_run);
    assert_eq!(sum.tweets, tweets);
    assert_eq!(sum.tweets_changed, 1);
    assert_eq!((sum.spool_parsed, sum.spool_failed), (1, 0));
    assert!(
        sum.to_string().ends_with("(dry run: nothing written)"),
        "{sum}"
    );

    let d = tweet(docs.as_ref(), &id).await;
    assert_eq!(d["raw_content"], "tampered");
    assert_eq!(documents::rev_of(&d), 2);
    assert_eq!(
        count(docs.as_ref(), TWEETS).await,
        tweets,
        "page 2 not written"
    );
    assert_eq!(
        store::spooled(docs.as_ref(), None, 10).await.unwrap().len(),
        1,
        "still spooled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_capture_is_parsed_written_and_removed_and_a_failing_one_stays() {
    let h = parser_host();
    let docs = open(&h).await;
    store::ensure_indexes(docs.as_ref()).await.unwrap();
    let at_ms = 5_000;
    let page2 = store::reparse_capture(RECORDED, fixture("user_tweets_page2.json"), at_ms);
    let good = store::spool(docs.as_ref(), TARGET, 4_000, 2, &page2, "trap", 5_100)
        .await
        .unwrap();
    let unreadable = store::reparse_capture(RECORDED, "<html>rate limited</html>".into(), 6_000);
    let bad = store::spool(
        docs.as_ref(),
        "search:btc",
        5_900,
        1,
        &unreadable,
        "refused",
        6_100,
    )
    .await
    .unwrap();

    let sum = reparse(&h.runtime, docs.as_ref(), PARSER, ReparseOptions::default())
        .await
        .unwrap();
    assert_eq!((sum.tweets, sum.profiles), (0, 0), "nothing stored before");
    assert_eq!((sum.spool_parsed, sum.spool_failed), (1, 1), "{sum}");
    assert!(
        sum.to_string()
            .ends_with("spool: 1 parsed, 1 still failing")
    );

    let left: Vec<String> = store::spooled(docs.as_ref(), None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, [bad], "{good} was removed");
    let expected = parse(&h, fixture("user_tweets_page2.json"), at_ms);
    assert!(!expected.tweets.is_empty());
    for t in &expected.tweets {
        let d = tweet(docs.as_ref(), &t.id).await;
        assert_eq!(
            (d["first_seen_ms"].as_i64(), d["last_seen_ms"].as_i64()),
            (Some(at_ms), Some(at_ms)),
            "seen when the capture was taken"
        );
        assert_eq!(d["seen_by"], TARGET);
        assert_eq!(d["raw_content"], t.raw_content.as_str());
    }
    assert_eq!(
        count(docs.as_ref(), TWEETS).await,
        expected
            .tweets
            .iter()
            .map(|t| &t.id)
            .collect::<std::collections::HashSet<_>>()
            .len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_parser_is_named_before_anything_is_read() {
    let h = host_with("[documents]\nbackend = \"embedded\"\n");
    let docs = open(&h).await;
    let err = reparse(&h.runtime, docs.as_ref(), PARSER, ReparseOptions::default())
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("`x-timeline`") && msg.contains("[scraper] parser"),
        "{msg}"
    );
}

/// Run the binary; stdout on success, panics with stderr otherwise.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reparse_cli_rewrites_normalized_fields_and_keeps_first_seen() {
    // The test's host seeds the store and stops (drops it): the binary then works on
    // the same config, plugin folder and data dir by itself.
    let h = parser_host();
    let config = h.dir.path().join("impressox.toml");
    let (id, original, tweets, profiles) = {
        let docs = open(&h).await;
        let seeded = seed(&h, docs.as_ref()).await;
        let t = seeded.tweets[0].clone();
        tamper(docs.as_ref(), &t.id).await;
        let tweets = count(docs.as_ref(), TWEETS).await;
        let profiles = count(docs.as_ref(), PROFILES).await;
        (t.id.clone(), t, tweets, profiles)
    };
    let cfg = config.to_str().unwrap();

    let dry = run_ok(impressox().args(["--config", cfg, "scraper", "reparse", "--dry-run"]));
    assert_eq!(
        dry.trim(),
        format!(
            "reparsed {tweets} tweets (1 changed), {profiles} profiles (0 changed), 0 skipped, spool: 0 parsed, 0 still failing (dry run: nothing written)"
        )
    );
    {
        let docs = open(&h).await;
        assert_eq!(tweet(docs.as_ref(), &id).await["raw_content"], "tampered");
    }

    let out = run_ok(impressox().args(["--config", cfg, "scraper", "reparse"]));
    assert_eq!(
        out.trim(),
        format!(
            "reparsed {tweets} tweets (1 changed), {profiles} profiles (0 changed), 0 skipped, spool: 0 parsed, 0 still failing"
        )
    );
    let docs = open(&h).await;
    let d = tweet(docs.as_ref(), &id).await;
    assert_eq!(d["raw_content"], original.raw_content.as_str());
    assert_eq!(d["like_count"], original.like_count);
    assert_eq!(d["first_seen_ms"].as_i64(), Some(SEEN_MS));
    assert_eq!(d["last_seen_ms"].as_i64(), Some(SEEN_MS));
    assert_eq!(count(docs.as_ref(), TWEETS).await, tweets);
    drop(docs);

    // A parser that is not there is named, and the command fails.
    let out = impressox()
        .args(["--config", cfg, "scraper", "reparse", "--limit", "5"])
        .env("IMPRESSOX__SCRAPER__PARSER", "nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`nope`") && stderr.contains("[scraper] parser"),
        "{stderr}"
    );
}
