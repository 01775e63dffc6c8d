//! What a run survives (docs/design/x-scraper.md §2.3, §4.3, §4.5; §6 items 19–21, 25): a
//! Chromium killed mid-run, a parser swapped mid-run, a parser that fails (the capture is
//! spooled and `scraper reparse` recovers it), and shutdown.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use impressox_host::documents::{Filter, Query};
use impressox_host::scraper::config::RunMode;
use impressox_host::scraper::reparse::{ReparseOptions, reparse};
use impressox_host::scraper::targets::{self, TargetKind, TargetRecord, TargetSpec};
use impressox_host::scraper::{store, worker};
use impressox_plugin_sdk::types::{CapturedResponse, PageCapture};

use super::ids::*;
use super::rig::{Opts, ScraperRig};
use crate::servers::x_site::timelines;

const TARGET: &str = "user:coinledger_ana";
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Each GraphQL answer this late: a four-call run spans several seconds.
const LATENCY: Duration = Duration::from_millis(1500);

/// The ids of every tweet the default timeline's pages hold, as the x-timeline parser
/// (natively) reads them: what a complete run stores, once each.
fn timeline_ids() -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for page in timelines::default_user_pages() {
        let url = "https://x.com/i/api/graphql/q/UserTweets?variables=%7B%7D".to_string();
        let capture = PageCapture {
            url: "https://x.com/coinledger_ana".into(),
            html: String::new(),
            responses: vec![CapturedResponse {
                url,
                status: 200,
                headers: vec![],
                body: page.to_string(),
            }],
            captured_at_ms: 1,
        };
        let result = x_timeline::parse_capture(&capture).expect("the fixture page parses");
        ids.extend(result.tweets.into_iter().map(|t| t.id));
    }
    assert!(ids.len() >= 8, "{ids:?}");
    ids
}

async fn stored_ids(rig: &ScraperRig) -> Vec<String> {
    rig.docs
        .find("tweets", &Query::new(Filter::all()))
        .await
        .unwrap()
        .into_iter()
        .map(|d| d["_id"].as_str().unwrap().to_string())
        .collect()
}

/// A backfill target for [`HANDLE`], stored before the worker starts (the user list is
/// empty, so no seed resets its mode).
async fn backfill_target(rig: &ScraperRig) {
    let spec = TargetSpec {
        kind: TargetKind::User,
        handle: Some(HANDLE.into()),
        name: None,
        query: None,
        product: None,
        interval_secs: None,
        mode: Some(RunMode::Backfill),
        max_pages: None,
        enabled: None,
    };
    let defaults = worker::target_defaults(&rig.host.config.scraper);
    targets::create_api_target(&*rig.docs, &spec, &defaults, 0)
        .await
        .unwrap();
}

async fn wait_until_stored(rig: &ScraperRig, id: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while rig.tweet(id).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "tweet {id} not stored within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait for a run after `since` that ended `ok`; a run that ended otherwise is allowed only
/// if `retries` allow (the target's retry after an error).
async fn wait_for_ok(rig: &ScraperRig, since: i64, retries: usize) -> (TargetRecord, Vec<String>) {
    let mut outcomes = Vec::new();
    let mut since = since;
    loop {
        let t = rig.wait_for_run(TARGET, since, RUN_TIMEOUT).await;
        let run = t.last_run.clone().unwrap();
        outcomes.push(run.outcome.clone());
        if run.outcome == "ok" {
            return (t, outcomes);
        }
        assert!(
            outcomes.len() <= retries,
            "runs ended {outcomes:?}; last {t:?}"
        );
        since = run.at_ms + 1;
    }
}

/// Whether `pid` is a live process (a zombie is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// `pid` and every process below it.
fn with_descendants(pid: u32) -> BTreeSet<u32> {
    let mut all = BTreeSet::from([pid]);
    loop {
        let before = all.len();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if ppid.is_some_and(|pp| all.contains(&pp)) {
                all.insert(p);
            }
        }
        if all.len() == before {
            return all;
        }
    }
}

/// Live processes whose command line names `dir` (Chromium's `--user-data-dir`).
fn processes_using(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .filter(|p| alive(*p))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_crash_mid_run_is_restarted_and_the_run_resumes() {
    let expected = timeline_ids();
    let rig = ScraperRig::prepare(Opts {
        handles: vec![],
        browser: "probe_interval_secs = 1".into(),
        ..Opts::default()
    })
    .await;
    backfill_target(&rig).await;
    rig.site.set_latency(LATENCY);
    let mut rig = rig.start_worker().await;

    // Page 1 is stored; the run is scrolling for page 2.
    wait_until_stored(&rig, A, RUN_TIMEOUT).await;
    assert!(rig.target(TARGET).await.last_run.is_none(), "still running");
    let browser = rig.worker().handle.pool().browser().clone();
    let pids = browser.browser_pids();
    assert!(!pids.is_empty(), "a browser runs");
    assert_eq!(browser.restarts(), 0);
    for &pid in &pids {
        // SAFETY: kill(2) on a pid of our own child Chromium.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }

    // At most one run may end early (the retry after a browser error).
    let (t, outcomes) = wait_for_ok(&rig, 0, 1).await;
    assert!(t.backfill.done, "the backfill reached the end: {t:?}");
    assert!(browser.restarts() >= 1, "the restart is counted");
    let now = browser.browser_pids();
    assert!(
        !now.is_empty() && now.iter().all(|p| !pids.contains(p)),
        "{pids:?} → {now:?}"
    );
    for pid in &pids {
        assert!(!alive(*pid), "the killed browser {pid} is reaped");
    }
    // Every tweet is stored, once.
    let stored = stored_ids(&rig).await;
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "no duplicates");
    assert_eq!(unique, expected, "outcomes {outcomes:?}");
    assert_eq!(rig.tweet_count().await as usize, expected.len());
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parser_swap_mid_run_loses_nothing() {
    let expected = timeline_ids();
    let rig = ScraperRig::prepare(Opts {
        handles: vec![],
        ..Opts::default()
    })
    .await;
    backfill_target(&rig).await;
    rig.site.set_latency(LATENCY);
    let swaps = |rig: &ScraperRig| {
        rig.host
            .runtime
            .statuses()
            .into_iter()
            .find(|s| s.name == "x-timeline")
            .map(|s| s.swaps)
            .unwrap()
    };
    let before = swaps(&rig);
    let first = rig.host.runtime.plugin("x-timeline").current().unwrap();
    let mut rig = rig.start_worker().await;

    // Page 1 parsed and stored by the first instance; swap while page 2 is on its way.
    wait_until_stored(&rig, A, RUN_TIMEOUT).await;
    let calls_at_swap = rig.site.graphql_requests("UserTweets").len();
    for (path, result) in rig.host.runtime.rescan(true) {
        result.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    assert!(
        rig.target(TARGET).await.last_run.is_none(),
        "the swap happened mid-run"
    );
    assert!(calls_at_swap < 4, "pages were left to read after the swap");
    assert!(swaps(&rig) > before, "the parser was swapped");
    let second = rig.host.runtime.plugin("x-timeline").current().unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first, &second));

    let (t, _) = wait_for_ok(&rig, 0, 0).await;
    assert!(t.backfill.done, "{t:?}");
    assert_eq!(
        rig.site.graphql_requests("UserTweets").len(),
        4,
        "pages 1–3 and the end, once each"
    );
    let stored: BTreeSet<String> = stored_ids(&rig).await.into_iter().collect();
    assert_eq!(stored, expected);
    let version = format!("{}@{}", second.name, second.version);
    for id in [A, O, U] {
        assert_eq!(rig.tweet(id).await.unwrap()["parser"], version.as_str());
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parser_failure_spools_the_capture_and_reparse_recovers_it() {
    // No scrape-parser test guest traps: the configured parser is the `misbehave` guest, an
    // event handler, so every parse is a call error (wrong kind) — as a trap would be.
    let rig = ScraperRig::prepare(Opts {
        parser: "misbehave".into(),
        ..Opts::default()
    })
    .await;
    rig.host
        .load(test_artifacts::GUEST_MISBEHAVE, "misbehave.wasm");
    let mut rig = rig.start_worker().await;
    let t = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    let run = t.last_run.clone().unwrap();
    assert_eq!(run.outcome, "parser_failed", "{t:?}");
    assert_eq!(run.pages, 0);
    assert_eq!(rig.tweet_count().await, 0, "nothing stored");
    assert_eq!(
        rig.docs
            .count("profiles", &Filter::default())
            .await
            .unwrap(),
        0
    );
    let spooled = store::spooled(&*rig.docs, Some(TARGET), 10).await.unwrap();
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    let entry = &spooled[0];
    assert!(entry.id.starts_with(&format!("{TARGET}:")), "{}", entry.id);
    assert!(entry.error.contains("misbehave"), "{}", entry.error);
    let ops: Vec<&str> = entry
        .capture
        .responses
        .iter()
        .filter_map(|r| r.url.split('?').next()?.rsplit('/').next())
        .collect();
    assert!(
        ops.contains(&"UserTweets") && ops.contains(&"UserByScreenName"),
        "the page's GraphQL answers are kept: {ops:?}"
    );
    assert!(entry.capture.responses.iter().any(|r| r.body.contains(A)));
    let at = entry.capture.captured_at_ms;
    rig.stop().await;

    // The real parser (loaded by the rig) reads the spooled page.
    let sum = reparse(
        &rig.host.runtime,
        &*rig.docs,
        "x-timeline",
        ReparseOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!((sum.spool_parsed, sum.spool_failed), (1, 0), "{sum}");
    assert!(
        store::spooled(&*rig.docs, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    for id in [A, B, C, H] {
        let doc = rig
            .tweet(id)
            .await
            .unwrap_or_else(|| panic!("{id} recovered"));
        assert_eq!(doc["seen_by"], TARGET);
        assert_eq!(doc["first_seen_ms"].as_i64(), Some(at));
    }
    assert!(rig.docs.get("profiles", ANA).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_saves_sessions_and_closes_browsers() {
    let mut rig = ScraperRig::start(Opts {
        scraper: "tail_max_pages = 1".into(),
        ..Opts::default()
    })
    .await;
    let first = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    assert_eq!(first.last_run.as_ref().unwrap().outcome, "ok", "{first:?}");
    let profiles = rig.host.config.data_dir().join("browser");
    let dirs = |p: &Path| {
        std::fs::read_dir(p)
            .map(|d| d.flatten().count())
            .unwrap_or(0)
    };
    assert!(dirs(&profiles) >= 1, "a profile directory while running");
    let browser = rig.worker().handle.pool().browser().clone();
    let pids: BTreeSet<u32> = browser
        .browser_pids()
        .into_iter()
        .flat_map(with_descendants)
        .collect();
    assert!(pids.len() >= 2, "Chromium and its helpers: {pids:?}");
    assert!(!processes_using(&profiles).is_empty());

    // Stop while a second run waits on the site: it gets the grace time and finishes.
    rig.site.set_latency(Duration::from_millis(2000));
    let calls = rig.site.graphql_requests("UserTweets").len();
    let since = rig.run_now(TARGET).await;
    let deadline = Instant::now() + RUN_TIMEOUT;
    while rig.site.graphql_requests("UserTweets").len() == calls {
        assert!(
            Instant::now() < deadline,
            "the second run never asked for tweets"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    rig.stop().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "stop took {took:?}");

    let t = rig.target(TARGET).await;
    let run = t.last_run.clone().unwrap();
    assert!(
        run.at_ms >= since,
        "the running run finished within the grace: {t:?}"
    );
    assert_eq!(run.outcome, "ok", "{t:?}");
    let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "Chromium processes left: {left:?}");
    assert!(processes_using(&profiles).is_empty());
    assert_eq!(dirs(&profiles), 0, "profile directories removed");
    assert!(browser.browser_pids().is_empty());

    let session = rig
        .store
        .kv_get("scraper:sessions", "alice")
        .await
        .unwrap()
        .expect("the session is stored");
    let session: serde_json::Value = serde_json::from_str(&session).unwrap();
    assert_eq!(session["base_url"], rig.site.url().as_str());
    assert!(session.to_string().contains("auth_token"));
    let record = rig
        .store
        .kv_get("scraper:accounts", "alice")
        .await
        .unwrap()
        .expect("the account record is stored");
    assert!(record.contains("\"pages\":2"), "{record}");
}
