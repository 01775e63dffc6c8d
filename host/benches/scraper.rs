//! X scraper benchmarks (issue 5, docs/design/x-scraper.md §7).
//!
//! - `parser`: the `x-timeline` plugin through the runtime (wasm, `--profile wasm-release`,
//!   default limits) side by side with the same parse compiled natively
//!   (`x_timeline::parse_capture`), on page 1 (`user_tweets.json` + `user_by_screen_name.json`
//!   as one capture), a 100-entry timeline made of page 1 id-shifted, and
//!   `search_timeline.json`. Warm-up, then native and wasm in alternating slices until each had
//!   its measuring time; median time per capture, tweets/s, wasm/native.
//! - `capture`: one account (a session cookie in its context), the stand-in X on loopback with
//!   the endless timeline, no pacing: a scroll run (scroll → capture → parse through the plugin →
//!   `store::write_result` into the embedded documents) and a navigation run (a fresh `open` of
//!   the profile page per step, with HTML, parse, store), for each `settle` given.
//! - `memory`: PSS (and private memory) summed over the Chromium process tree: idle browser,
//!   one context more with a page on the timeline after 3 scroll steps, 4 such contexts, and
//!   the first page after 50 scroll steps.
//!
//! Run: `cargo bench -p impressox-host --bench scraper [-- parser|capture|memory]`.
//! `IMPRESSOX_BENCH_QUICK=1` shortens every duration (a smoke run, not figures);
//! `IMPRESSOX_BENCH_SETTLE_MS=300,0` the settle times of the capture runs (default: 300, the
//! product's default, and 0, where a step ends as soon as its response is in: the browser side's
//! own pace). Chromium: `IMPRESSOX_CHROMIUM`, else `/usr/bin/chromium`.
//! Prints Markdown tables for docs/BENCHMARKS.md.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use impressox_browser::{
    AccountContext, BrowserPool, Capture, ContextSpec, Expect, PageLease, PoolConfig, StoredCookie,
};
use impressox_host::bindings::types as wit;
use impressox_host::config::Config;
use impressox_host::documents::Documents;
use impressox_host::runtime::Runtime;
use impressox_host::scraper::{parse, store};
use impressox_plugin_sdk::types as sdk;
use serde_json::Value;

#[allow(dead_code)] // the bench uses a small part of the stand-in
#[path = "../tests/all/servers/x_site.rs"]
mod x_site;

use x_site::XSite;
use x_site::timelines::fixture;

/// The same allocator as the `impressox` binary (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The profile the stand-in's fixtures are about; its timeline is made endless.
const HANDLE: &str = "coinledger_ana";
const ACCOUNT: &str = "bench_acct";
const PARSER: &str = "x-timeline";
const USER_TWEETS_URL: &str =
    "https://x.com/i/api/graphql/E3opETHurmVJflFsUBVuUQ/UserTweets?variables=%7B%7D";
const USER_URL: &str =
    "https://x.com/i/api/graphql/G3KGOASz96M-Qu0nwmGXNg/UserByScreenName?variables=%7B%7D";
const SEARCH_URL: &str =
    "https://x.com/i/api/graphql/AIdc203rPpK_k_2KWSdm7g/SearchTimeline?variables=%7B%7D";

struct Settings {
    quick: bool,
    /// Parser: warm-up per input and side.
    warmup: Duration,
    /// Parser: measuring time per input and side (at least).
    measure: Duration,
    /// Capture: each run's length.
    run: Duration,
    /// Capture: the settle times to run with.
    settles: Vec<u64>,
    /// Memory: scroll steps on the first page in the last measurement.
    deep_scrolls: u32,
}

impl Settings {
    fn from_env() -> Settings {
        let quick = std::env::var("IMPRESSOX_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let settles = std::env::var("IMPRESSOX_BENCH_SETTLE_MS")
            .ok()
            .map(|v| {
                v.split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<u64>()
                            .expect("IMPRESSOX_BENCH_SETTLE_MS: ms,ms")
                    })
                    .collect()
            })
            .unwrap_or_else(|| vec![300, 0]);
        if quick {
            Settings {
                quick,
                warmup: Duration::from_millis(200),
                measure: Duration::from_millis(500),
                run: Duration::from_secs(8),
                settles,
                deep_scrolls: 10,
            }
        } else {
            Settings {
                quick,
                warmup: Duration::from_secs(1),
                measure: Duration::from_secs(3),
                run: Duration::from_secs(60),
                settles,
                deep_scrolls: 50,
            }
        }
    }
}

// ---------------------------------------------------------------- setup

fn chromium() -> PathBuf {
    let path = std::env::var_os("IMPRESSOX_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "Chromium is needed at {} (or set IMPRESSOX_CHROMIUM): apt-get install -y chromium",
        path.display()
    );
    path
}

/// A config in `dir`: embedded stores, the plugin directory, default plugin limits.
fn config(dir: &Path) -> Config {
    let p = dir.join("bench.toml");
    std::fs::write(
        &p,
        "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\n[documents]\nbackend = \"embedded\"\n",
    )
    .unwrap();
    let c = Config::load_with_env(Some(&p), &[]).unwrap();
    std::fs::create_dir_all(c.plugin_dir()).unwrap();
    std::fs::create_dir_all(c.data_dir()).unwrap();
    c
}

/// The runtime with `x-timeline.wasm` (built with `--profile wasm-release` by test-artifacts).
fn runtime(cfg: &Config) -> Runtime {
    let rt = Runtime::new(cfg).unwrap();
    let path = cfg.plugin_dir().join("x-timeline.wasm");
    std::fs::copy(test_artifacts::X_TIMELINE, &path).unwrap();
    rt.load_file(&path).unwrap();
    rt
}

fn pool_config(settle_ms: u64, profile_root: &Path) -> PoolConfig {
    PoolConfig {
        executable: chromium(),
        settle: Duration::from_millis(settle_ms),
        launch_timeout: Duration::from_secs(60),
        profile_root: profile_root.to_path_buf(),
        ..PoolConfig::default()
    }
}

/// The stand-in with the endless timeline, one account with budgets that never run out in a
/// benchmark, and that account's session as the product would store it.
async fn site() -> (XSite, Vec<StoredCookie>) {
    let site = XSite::start().await;
    site.add_account(ACCOUNT, "bench-password", "bench@example.com", None);
    for op in ["UserTweets", "UserByScreenName"] {
        site.set_budget(op, 10_000_000, 10_000_000, 3600);
    }
    site.set_endless_timeline(HANDLE);
    let cookies = site
        .issue_session(ACCOUNT)
        .into_iter()
        .map(|c| StoredCookie {
            name: c.name,
            value: c.value,
            domain: "127.0.0.1".into(),
            path: c.path,
            expires: None,
            http_only: c.http_only,
            secure: false,
            same_site: Some("Lax".into()),
        })
        .collect();
    (site, cookies)
}

fn expect(ops: &[&str]) -> Expect {
    Expect {
        operations: ops.iter().map(|s| s.to_string()).collect(),
        min_new: 1,
    }
}

fn first_ops() -> Expect {
    expect(&["UserByScreenName", "UserTweets"])
}

fn scroll_ops() -> Expect {
    expect(&["UserTweets"])
}

// ---------------------------------------------------------------- A. parser

fn response(url: &str, body: String) -> sdk::CapturedResponse {
    sdk::CapturedResponse {
        url: url.into(),
        status: 200,
        headers: vec![
            sdk::Header {
                name: "content-type".into(),
                value: "application/json; charset=utf-8".into(),
            },
            sdk::Header {
                name: "x-rate-limit-limit".into(),
                value: "500".into(),
            },
            sdk::Header {
                name: "x-rate-limit-remaining".into(),
                value: "499".into(),
            },
            sdk::Header {
                name: "x-rate-limit-reset".into(),
                value: "1764300900".into(),
            },
        ],
        body,
    }
}

fn capture(url: &str, responses: Vec<sdk::CapturedResponse>) -> sdk::PageCapture {
    sdk::PageCapture {
        url: url.into(),
        html: String::new(),
        responses,
        captured_at_ms: 1_764_300_000_000,
    }
}

fn to_wit(c: &sdk::PageCapture) -> wit::PageCapture {
    wit::PageCapture {
        url: c.url.clone(),
        html: c.html.clone(),
        responses: c
            .responses
            .iter()
            .map(|r| wit::CapturedResponse {
                url: r.url.clone(),
                status: r.status,
                headers: r
                    .headers
                    .iter()
                    .map(|h| wit::Header {
                        name: h.name.clone(),
                        value: h.value.clone(),
                    })
                    .collect(),
                body: r.body.clone(),
            })
            .collect(),
        captured_at_ms: c.captured_at_ms,
    }
}

/// Bytes of text handed to the plugin.
fn bytes_in(c: &sdk::PageCapture) -> usize {
    c.url.len()
        + c.html.len()
        + c.responses
            .iter()
            .map(|r| {
                r.url.len()
                    + r.body.len()
                    + r.headers
                        .iter()
                        .map(|h| h.name.len() + h.value.len())
                        .sum::<usize>()
            })
            .sum::<usize>()
}

/// Bytes of the result as it crosses back: every string's length, 8 per number.
fn bytes_out(r: &wit::ScrapeResult) -> (usize, usize) {
    fn walk(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len(),
            Value::Number(_) | Value::Bool(_) => 8,
            Value::Null => 0,
            Value::Array(a) => a.iter().map(walk).sum(),
            Value::Object(m) => m.values().map(walk).sum(),
        }
    }
    let total = walk(&serde_json::to_value(r).unwrap());
    let raw = r.tweets.iter().map(|t| t.raw_json.len()).sum::<usize>()
        + r.profiles.iter().map(|p| p.raw_json.len()).sum::<usize>();
    (total, raw)
}

/// `text` with each maximal run of ASCII digits replaced where `replace` says so.
fn replace_digit_runs(text: &str, replace: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        out.push_str(&rest[..start]);
        let len = rest[start..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - start);
        let run = &rest[start..start + len];
        out.push_str(&replace(run).unwrap_or_else(|| run.to_owned()));
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

/// Tweet ids of a page: `rest_id` of objects with `legacy.full_text`, and `tweet-<id>` entries.
fn tweet_ids(v: &Value, ids: &mut HashSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(id) = m.get("rest_id").and_then(Value::as_str)
                && m.get("legacy")
                    .is_some_and(|l| l.get("full_text").is_some())
            {
                ids.insert(id.to_owned());
            }
            if let Some(id) = m
                .get("entryId")
                .and_then(Value::as_str)
                .and_then(|e| e.strip_prefix("tweet-"))
            {
                ids.insert(id.to_owned());
            }
            m.values().for_each(|v| tweet_ids(v, ids));
        }
        Value::Array(a) => a.iter().for_each(|v| tweet_ids(v, ids)),
        _ => {}
    }
}

/// Page 1 with its `TimelineAddEntries` grown to `entries` entries: the content entries again
/// and again, copy *k* with every tweet id shifted down by *k* × 10⁶, then the two cursors.
fn shifted_timeline(entries: usize) -> String {
    let mut page: Value = serde_json::from_str(&fixture("user_tweets.json")).unwrap();
    let mut ids = HashSet::new();
    tweet_ids(&page, &mut ids);
    let instructions = page["data"]["user"]["result"]["timeline"]["timeline"]["instructions"]
        .as_array_mut()
        .unwrap();
    let add = instructions
        .iter_mut()
        .find(|i| i["type"] == "TimelineAddEntries")
        .unwrap();
    let original = add["entries"].as_array().unwrap().clone();
    let (cursors, content): (Vec<Value>, Vec<Value>) = original
        .into_iter()
        .partition(|e| e["entryId"].as_str().unwrap().starts_with("cursor-"));
    let want = entries - cursors.len();
    let mut out = Vec::with_capacity(entries);
    let mut k = 0_u64;
    while out.len() < want {
        for e in &content {
            if out.len() == want {
                break;
            }
            let text = replace_digit_runs(&e.to_string(), |run| {
                ids.contains(run)
                    .then(|| (run.parse::<u64>().unwrap() - k * 1_000_000).to_string())
            });
            out.push(serde_json::from_str::<Value>(&text).unwrap());
        }
        k += 1;
    }
    out.extend(cursors);
    add["entries"] = Value::Array(out);
    page.to_string()
}

struct Measured {
    median_ns: f64,
    iterations: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Warm both up, then alternate slices of each until both had `measure`; each iteration is
/// timed on its own. Alternating keeps the ratio fair when the machine's load changes.
fn measure_pair(s: &Settings, mut a: impl FnMut(), mut b: impl FnMut()) -> (Measured, Measured) {
    let warm = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        while t.elapsed() < s.warmup {
            f();
        }
    };
    warm(&mut a);
    warm(&mut b);
    let slice = Duration::from_millis(250);
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let (mut spent_a, mut spent_b) = (Duration::ZERO, Duration::ZERO);
    while spent_a < s.measure || spent_b < s.measure {
        for (f, times, spent) in [
            (&mut a as &mut dyn FnMut(), &mut ta, &mut spent_a),
            (&mut b as &mut dyn FnMut(), &mut tb, &mut spent_b),
        ] {
            let start = Instant::now();
            while start.elapsed() < slice {
                let t = Instant::now();
                f();
                times.push(t.elapsed().as_nanos() as f64);
            }
            *spent += start.elapsed();
        }
    }
    let m = |v: Vec<f64>| Measured {
        iterations: v.len(),
        median_ns: median(v),
    };
    (m(ta), m(tb))
}

fn fmt_time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.0} µs", ns / 1e3)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn fmt_kb(b: usize) -> String {
    format!("{:.1} KB", b as f64 / 1000.0)
}

fn fmt_int(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn parser_section(s: &Settings) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let rt = runtime(&cfg);
    let plugin = rt.plugin(PARSER);
    let wasm_size = std::fs::metadata(test_artifacts::X_TIMELINE).unwrap().len();

    let hundred = shifted_timeline(100);
    let inputs = vec![
        (
            "page 1: `user_tweets.json` + `user_by_screen_name.json`",
            capture(
                "https://x.com/coinledger_ana",
                vec![
                    response(USER_URL, fixture("user_by_screen_name.json")),
                    response(USER_TWEETS_URL, fixture("user_tweets.json")),
                ],
            ),
        ),
        (
            "100-entry timeline (98 id-shifted copies of page 1's entries + 2 cursors) + profile",
            capture(
                "https://x.com/coinledger_ana",
                vec![
                    response(USER_URL, fixture("user_by_screen_name.json")),
                    response(USER_TWEETS_URL, hundred),
                ],
            ),
        ),
        (
            "`search_timeline.json`",
            capture(
                "https://x.com/search?q=%24BTC&f=live",
                vec![response(SEARCH_URL, fixture("search_timeline.json"))],
            ),
        ),
    ];

    let mut out = String::new();
    out.push_str(&format!(
        "### A. Parser: wasm vs native\n\n`x-timeline.wasm` {} KB (`--profile wasm-release`), \
         runtime path with default limits; native: `x_timeline::parse_capture` in the bench \
         binary (release, mimalloc). Warm-up {:.1} s each, then alternating 250 ms slices until \
         each side had ≥ {:.1} s; median per capture.\n\n",
        wasm_size / 1000,
        s.warmup.as_secs_f64(),
        s.measure.as_secs_f64(),
    ));
    out.push_str(
        "| input | in | out (of which `raw_json`) | tweets / profiles / skipped | native | wasm | native tweets/s | wasm tweets/s | wasm/native |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, cap) in inputs {
        let wcap = to_wit(&cap);
        let native = x_timeline::parse_capture(&cap).unwrap();
        let wasm = plugin.parse_page(&wcap).unwrap().unwrap();
        let ids = |v: Vec<&str>| v.join(",");
        assert_eq!(
            ids(native.tweets.iter().map(|t| t.id.as_str()).collect()),
            ids(wasm.tweets.iter().map(|t| t.id.as_str()).collect()),
            "{name}: wasm and native disagree"
        );
        assert_eq!(native.profiles.len(), wasm.profiles.len(), "{name}");
        assert_eq!(native.skipped.len(), wasm.skipped.len(), "{name}");
        let tweets = wasm.tweets.len();
        let (out_bytes, raw_bytes) = bytes_out(&wasm);
        let (n, w) = measure_pair(
            s,
            || {
                black_box(x_timeline::parse_capture(black_box(&cap)).unwrap());
            },
            || {
                black_box(plugin.parse_page(black_box(&wcap)).unwrap().unwrap());
            },
        );
        let per_sec = |ns: f64| tweets as f64 / (ns / 1e9);
        out.push_str(&format!(
            "| {name} | {} | {} ({}) | {tweets} / {} / {} | {} ({} it.) | {} ({} it.) | {} | {} | **{:.2}x** |\n",
            fmt_kb(bytes_in(&cap)),
            fmt_kb(out_bytes),
            fmt_kb(raw_bytes),
            wasm.profiles.len(),
            wasm.skipped.len(),
            fmt_time(n.median_ns),
            n.iterations,
            fmt_time(w.median_ns),
            w.iterations,
            fmt_int(per_sec(n.median_ns)),
            fmt_int(per_sec(w.median_ns)),
            w.median_ns / n.median_ns,
        ));
    }

    // The boundary alone: page 1's bytes go in, the plugin reads none of them (the URLs are
    // not X's API) and returns an empty result.
    let mut ignored = capture(
        "https://x.com/coinledger_ana",
        vec![
            response(USER_URL, fixture("user_by_screen_name.json")),
            response(USER_TWEETS_URL, fixture("user_tweets.json")),
        ],
    );
    for r in &mut ignored.responses {
        r.url = "https://x.com/static/not-the-api.json".into();
    }
    let wignored = to_wit(&ignored);
    assert!(
        plugin
            .parse_page(&wignored)
            .unwrap()
            .unwrap()
            .tweets
            .is_empty()
    );
    let (n, w) = measure_pair(
        s,
        || {
            black_box(x_timeline::parse_capture(black_box(&ignored)).unwrap());
        },
        || {
            black_box(plugin.parse_page(black_box(&wignored)).unwrap().unwrap());
        },
    );
    out.push_str(&format!(
        "\nThe boundary alone (page 1's {} in, nothing read: the responses' URLs are not X's \
         API, the result is empty): native {}, wasm {} per call — the cost of lowering the \
         capture into the guest and the call itself.\n",
        fmt_kb(bytes_in(&ignored)),
        fmt_time(n.median_ns),
        fmt_time(w.median_ns),
    ));
    out
}

// ---------------------------------------------------------------- B. capture

#[derive(Default)]
struct Run {
    steps: u64,
    tweets: u64,
    new: u64,
    updated: u64,
    responses: u64,
    timed_out: u64,
    ended: u64,
    /// When each step started (to match the stand-in's request log afterwards).
    starts: Vec<Instant>,
    step_ms: Vec<f64>,
    parse_ms: Vec<f64>,
    store_ms: Vec<f64>,
    elapsed: Duration,
}

impl Run {
    fn per_min(&self, n: u64) -> f64 {
        n as f64 * 60.0 / self.elapsed.as_secs_f64()
    }
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

/// Parse one capture through the plugin and write it, as the runner does; records the times.
async fn parse_and_store(
    runtime: &Runtime,
    docs: &Arc<dyn Documents>,
    cap: &Capture,
    run: &mut Run,
) {
    run.responses += cap.responses.len() as u64;
    run.timed_out += cap.timed_out as u64;
    run.ended += cap.end_of_timeline as u64;
    let t = Instant::now();
    let parsed = parse::parse(runtime, PARSER, parse::to_page_capture(cap))
        .await
        .unwrap_or_else(|e| panic!("parse failed: {e}"));
    run.parse_ms.push(t.elapsed().as_secs_f64() * 1e3);
    run.tweets += parsed.result.tweets.len() as u64;
    let target = format!("user:{HANDLE}");
    let meta = store::WriteMeta {
        parser: &parsed.parser,
        sighting: store::Sighting::Run {
            target: &target,
            at_ms: cap.captured_at_ms,
        },
        dry_run: false,
    };
    let t = Instant::now();
    let written = store::write_result(&**docs, &parsed.result, &meta)
        .await
        .unwrap();
    run.store_ms.push(t.elapsed().as_secs_f64() * 1e3);
    run.new += written.tweets.new;
    run.updated += written.tweets.updated;
}

async fn scroll_run(
    ctx: &AccountContext,
    url: &str,
    runtime: &Runtime,
    docs: &Arc<dyn Documents>,
    length: Duration,
) -> Run {
    let mut page = ctx.lease().await.unwrap();
    let first = page.open(url, first_ops(), true).await.unwrap();
    assert!(
        !first.responses.is_empty() && !first.timed_out,
        "the profile page did not load its timeline: {} responses, url {}",
        first.responses.len(),
        first.url
    );
    let mut run = Run::default();
    let start = Instant::now();
    while start.elapsed() < length {
        let t = Instant::now();
        run.starts.push(t);
        let cap = page.scroll_more(scroll_ops(), false).await.unwrap();
        run.step_ms.push(t.elapsed().as_secs_f64() * 1e3);
        parse_and_store(runtime, docs, &cap, &mut run).await;
        run.steps += 1;
    }
    run.elapsed = start.elapsed();
    run
}

async fn navigation_run(
    ctx: &AccountContext,
    url: &str,
    runtime: &Runtime,
    docs: &Arc<dyn Documents>,
    length: Duration,
) -> Run {
    let mut run = Run::default();
    let start = Instant::now();
    while start.elapsed() < length {
        // A lease per step, as a run takes one: pages are recycled after `page_max_uses`.
        let mut page = ctx.lease().await.unwrap();
        let t = Instant::now();
        run.starts.push(t);
        let cap = page.open(url, first_ops(), true).await.unwrap();
        run.step_ms.push(t.elapsed().as_secs_f64() * 1e3);
        drop(page);
        parse_and_store(runtime, docs, &cap, &mut run).await;
        run.steps += 1;
    }
    run.elapsed = start.elapsed();
    run
}

/// Per step, from its start to the first `UserTweets` request the stand-in received in it (the
/// page's own fetch of the next page, or the profile page's timeline call after
/// `UserByScreenName`), in ms.
fn to_request_ms(run: &Run, seen: &[x_site::Seen]) -> Vec<f64> {
    let mut out = Vec::new();
    for (i, start) in run.starts.iter().enumerate() {
        let end = run.starts.get(i + 1);
        if let Some(r) = seen.iter().find(|r| {
            r.op.as_deref() == Some("UserTweets") && r.at >= *start && end.is_none_or(|e| r.at < *e)
        }) {
            out.push((r.at - *start).as_secs_f64() * 1e3);
        }
    }
    out
}

async fn capture_section(s: &Settings) -> String {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(&config(dir.path()));
    let (site, cookies) = site().await;
    let url = site.profile_url(HANDLE);
    let defaults = PoolConfig::default();

    let mut throughput = String::from(
        "| run | settle | steps | steps/min | tweets/min (parsed) | new / updated tweet docs | responses/step | timed out |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let mut split = String::from(
        "| run | settle | step start → `UserTweets` request at the stand-in | browser step p50 / p90 | browser step − settle (→ last body fetched, + ≤ 50 ms poll) | parse (wasm, blocking pool) p50 / p90 | store p50 / p90 |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for &settle in &s.settles {
        // A fresh document store per setting, so "new" counts only this setting's runs.
        let data = tempfile::tempdir().unwrap();
        let docs = impressox_host::documents::open(&config(data.path()))
            .await
            .unwrap();
        store::ensure_indexes(&*docs).await.unwrap();
        let profiles = tempfile::tempdir().unwrap();
        let pool = BrowserPool::start(pool_config(settle, profiles.path()))
            .await
            .unwrap();
        let ctx = pool
            .context(ContextSpec {
                key: ACCOUNT.into(),
                proxy: None,
                cookies: cookies.clone(),
            })
            .await
            .unwrap();
        let scroll = scroll_run(&ctx, &url, &runtime, &docs, s.run).await;
        assert_eq!(scroll.ended, 0, "the endless timeline ended");
        let nav = navigation_run(&ctx, &url, &runtime, &docs, s.run).await;
        let seen = site.requests();
        for (name, r) in [
            ("scroll (backfill)", &scroll),
            ("navigation (fresh `open`)", &nav),
        ] {
            throughput.push_str(&format!(
                "| {name} | {settle} ms | {} | **{}** | {} | {} / {} | {:.1} | {} |\n",
                fmt_int(r.steps as f64),
                fmt_int(r.per_min(r.steps)),
                fmt_int(r.per_min(r.tweets)),
                fmt_int(r.new as f64),
                fmt_int(r.updated as f64),
                r.responses as f64 / r.steps as f64,
                r.timed_out,
            ));
            let to_req = to_request_ms(r, &seen);
            let minus: Vec<f64> = r.step_ms.iter().map(|m| m - settle as f64).collect();
            split.push_str(&format!(
                "| {name} | {settle} ms | {:.1} ms ({} of {} steps) | {:.0} / {:.0} ms | {:.0} ms | {:.2} / {:.2} ms | {:.2} / {:.2} ms |\n",
                quantile(&to_req, 0.5),
                to_req.len(),
                r.steps,
                quantile(&r.step_ms, 0.5),
                quantile(&r.step_ms, 0.9),
                quantile(&minus, 0.5),
                quantile(&r.parse_ms, 0.5),
                quantile(&r.parse_ms, 0.9),
                quantile(&r.store_ms, 0.5),
                quantile(&r.store_ms, 0.9),
            ));
        }
        ctx.close().await;
        pool.shutdown().await;
    }
    drop(site);
    format!(
        "### B. Capture throughput, one account\n\n\
         Stand-in X on loopback (endless timeline: `user_tweets.json` id-shifted page after page, \
         8 tweets and 124.7 KB per `UserTweets` body), one account with its session cookies in \
         the context, one page, no pacing, embedded documents (redb, a fresh temp dir per \
         setting); each step is captured, parsed by `x-timeline.wasm` (`scraper::parse::parse`) \
         and written (`store::write_result`) before the next starts, as the runner does. {} s \
         per run; browser settings are the defaults (`block_resources` Image/Media/Font, \
         `page_max_uses` {}, `nudge_wait` {} ms) except `settle`. The scroll run opens the \
         profile first (not counted); scroll steps carry no HTML, navigation steps do \
         (`html = \"first\"`) and take a lease each, as a run does.\n\n{throughput}\n\
         Where a step's time goes:\n\n{split}",
        s.run.as_secs(),
        defaults.page_max_uses,
        defaults.nudge_wait.as_millis(),
    )
}

// ---------------------------------------------------------------- C. memory

/// Memory of one process from `/proc/<pid>/smaps_rollup`, in KiB.
#[derive(Default, Clone, Copy)]
struct Mem {
    pss: u64,
    private: u64,
    rss: u64,
}

fn mem_of(pid: u32) -> Option<Mem> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let mut m = Mem::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(key), Some(kb)) = (it.next(), it.next().and_then(|v| v.parse::<u64>().ok()))
        else {
            continue;
        };
        match key {
            "Pss:" => m.pss = kb,
            "Rss:" => m.rss = kb,
            "Private_Clean:" | "Private_Dirty:" => m.private += kb,
            _ => {}
        }
    }
    Some(m)
}

/// The browser processes and all their descendants (by `ppid` in `/proc/*/stat`).
fn process_tree(roots: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = Vec::new();
    let mut stack = roots.to_vec();
    while let Some(pid) = stack.pop() {
        out.push(pid);
        if let Some(c) = children.get(&pid) {
            stack.extend(c);
        }
    }
    out
}

#[derive(Clone)]
struct Snapshot {
    total: Mem,
    per_pid: HashMap<u32, Mem>,
}

async fn snapshot(pool: &BrowserPool) -> Snapshot {
    // Let the renderers finish what the last step started (layout, GC) before reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let per_pid: HashMap<u32, Mem> = process_tree(&pool.browser_pids())
        .into_iter()
        .filter_map(|pid| mem_of(pid).map(|m| (pid, m)))
        .collect();
    let total = per_pid.values().fold(Mem::default(), |a, m| Mem {
        pss: a.pss + m.pss,
        private: a.private + m.private,
        rss: a.rss + m.rss,
    });
    Snapshot { total, per_pid }
}

fn mib(kib: i64) -> f64 {
    kib as f64 / 1024.0
}

/// A context of the account with a page on the timeline after 3 scroll steps.
async fn context_on_timeline(
    pool: &BrowserPool,
    cookies: &[StoredCookie],
    key: String,
    url: &str,
) -> (AccountContext, PageLease) {
    let ctx = pool
        .context(ContextSpec {
            key,
            proxy: None,
            cookies: cookies.to_vec(),
        })
        .await
        .unwrap();
    let page = on_timeline(&ctx, url).await;
    (ctx, page)
}

async fn on_timeline(ctx: &AccountContext, url: &str) -> PageLease {
    let mut page = ctx.lease().await.unwrap();
    page.open(url, first_ops(), true).await.unwrap();
    for _ in 0..3 {
        let cap = page.scroll_more(scroll_ops(), false).await.unwrap();
        assert!(!cap.responses.is_empty(), "a scroll step captured nothing");
    }
    page
}

async fn memory_section(s: &Settings) -> String {
    let (site, cookies) = site().await;
    let url = site.profile_url(HANDLE);
    let profiles = tempfile::tempdir().unwrap();
    let settle = PoolConfig::default().settle.as_millis() as u64;
    let pool = BrowserPool::start(pool_config(settle, profiles.path()))
        .await
        .unwrap();

    // The browser starts with the first context; no page is open in it yet.
    let first = pool
        .context(ContextSpec {
            key: "ctx-1".into(),
            proxy: None,
            cookies: cookies.clone(),
        })
        .await
        .unwrap();
    let idle = snapshot(&pool).await;
    let mut pages = vec![on_timeline(&first, &url).await];
    let one = snapshot(&pool).await;
    let mut contexts = vec![first];
    for i in 2..=4 {
        let (c, p) = context_on_timeline(&pool, &cookies, format!("ctx-{i}"), &url).await;
        contexts.push(c);
        pages.push(p);
    }
    let four = snapshot(&pool).await;
    let more = s.deep_scrolls.saturating_sub(3);
    for _ in 0..more {
        let cap = pages[0].scroll_more(scroll_ops(), false).await.unwrap();
        assert!(!cap.responses.is_empty(), "a scroll step captured nothing");
    }
    let deep = snapshot(&pool).await;
    // The renderer of the scrolled page: the process that grew most.
    let (grown_pid, grown) = deep
        .per_pid
        .iter()
        .map(|(pid, m)| {
            let before = four.per_pid.get(pid).map_or(0, |b| b.pss);
            (*pid, m.pss as i64 - before as i64)
        })
        .max_by_key(|(_, d)| *d)
        .unwrap();
    let renderer_before = four.per_pid.get(&grown_pid).map_or(0, |m| m.pss);
    let renderer_after = deep.per_pid[&grown_pid].pss;

    let row = |name: &str, snap: &Snapshot, delta: String| {
        format!(
            "| {name} | {} | **{:.0}** | {:.0} | {:.0} | {delta} |\n",
            snap.per_pid.len(),
            mib(snap.total.pss as i64),
            mib(snap.total.private as i64),
            mib(snap.total.rss as i64),
        )
    };
    let d = |a: &Snapshot, b: &Snapshot| mib(a.total.pss as i64 - b.total.pss as i64);
    let mut out = String::from(
        "### C. Memory per browser context\n\n\
         Sum over the Chromium process tree (`browser_pids()` and every descendant by `ppid`) of \
         `/proc/<pid>/smaps_rollup`: PSS, private (clean + dirty) and RSS. Each context holds one \
         page on the stand-in's profile timeline after 3 scroll steps (8 tweets a step, rendered \
         as X-sized articles; images, media and fonts blocked); read 2 s after the last step.\n\n\
         | state | processes | PSS MiB | private MiB | RSS MiB | PSS change |\n|---|---|---|---|---|---|\n",
    );
    out.push_str(&row(
        "idle browser (one empty context, no page)",
        &idle,
        "—".into(),
    ));
    out.push_str(&row(
        "+ 1 context, page after 3 scroll steps",
        &one,
        format!(
            "first context **{:+.0} MiB** (private {:+.0})",
            d(&one, &idle),
            mib(one.total.private as i64 - idle.total.private as i64)
        ),
    ));
    out.push_str(&row(
        "4 such contexts",
        &four,
        format!(
            "**{:.1} MiB per context** ((PSS(4) − PSS(0)) / 4; private {:.1}); contexts 2–4: {:.1} MiB each",
            d(&four, &idle) / 4.0,
            mib(four.total.private as i64 - idle.total.private as i64) / 4.0,
            d(&four, &one) / 3.0
        ),
    ));
    out.push_str(&row(
        &format!(
            "4 contexts, the first page after {} scroll steps",
            s.deep_scrolls
        ),
        &deep,
        format!(
            "{:+.0} MiB for {more} more steps ({:+.2} MiB/step); that page's renderer {:.0} → {:.0} MiB PSS ({:+.2} MiB/step)",
            d(&deep, &four),
            d(&deep, &four) / more.max(1) as f64,
            mib(renderer_before as i64),
            mib(renderer_after as i64),
            mib(grown) / more.max(1) as f64,
        ),
    ));
    drop(pages);
    for c in contexts {
        c.close().await;
    }
    pool.shutdown().await;
    drop(site);
    out
}

// ---------------------------------------------------------------- main

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let want = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    let s = Settings::from_env();
    if s.quick {
        println!("(IMPRESSOX_BENCH_QUICK: shortened durations, not figures)\n");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if want("parser") {
        println!("{}", parser_section(&s));
    }
    if want("capture") {
        println!("{}", rt.block_on(capture_section(&s)));
    }
    if want("memory") {
        println!("{}", rt.block_on(memory_section(&s)));
    }
}
