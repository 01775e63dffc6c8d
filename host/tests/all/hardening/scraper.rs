//! The x-scraper (issue 12, items 4 and 14), against the stand-in X and a real Chromium:
//! - a run stopped mid-way (the worker shutting down) saves its progress and releases its
//!   target, and another host continues from there;
//! - a run longer than its target lease keeps the target (the lease is renewed), so a second
//!   host on the same store never starts it meanwhile;
//! - retweets are stored with the original's whole text, not X's cut one.

use std::time::{Duration, Instant};

use impressox_host::scraper::ScraperWorker;
use impressox_host::scraper::config::RunMode;
use impressox_host::scraper::targets::{self, TargetKind, TargetSpec};
use serde_json::Value;

use crate::scraper::ids::{ANA, HANDLE};
use crate::scraper::rig::{Opts, PASSWORD, ScraperRig};
use crate::servers::x_site::timelines::fixture_json;

const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// `A` of `user_tweets.json`: page *k* of the stand-in's endless timeline holds it shifted
/// down by *k* × 10⁶.
const A: i64 = 1_990_714_142_880_702_470;

fn endless_a(page: u32) -> String {
    (A - i64::from(page) * 1_000_000).to_string()
}

fn no_user_list(scraper: &str) -> Opts {
    Opts {
        handles: Vec::new(),
        scraper: scraper.into(),
        ..Opts::default()
    }
}

/// [`no_user_list`] for a test that also starts a [`second_host`] (and its browser).
fn two_hosts(scraper: &str) -> Opts {
    Opts {
        browsers: 2,
        ..no_user_list(scraper)
    }
}

/// An API backfill target for [`HANDLE`] that reads far more pages than a test lasts.
async fn deep_backfill(rig: &ScraperRig) -> String {
    let spec = TargetSpec {
        kind: TargetKind::User,
        handle: Some(HANDLE.into()),
        name: None,
        query: None,
        product: None,
        interval_secs: Some(3600),
        mode: Some(RunMode::Backfill),
        max_pages: Some(1000),
        enabled: Some(true),
    };
    let defaults = impressox_host::scraper::worker::target_defaults(&rig.host.config.scraper);
    targets::create_api_target(&*rig.docs, &spec, &defaults, 0)
        .await
        .unwrap()
        .id
}

/// The `UserTweets` cursors `account` asked with, in order.
fn cursors_of(rig: &ScraperRig, account: &str) -> Vec<Option<String>> {
    rig.site
        .graphql_requests("UserTweets")
        .into_iter()
        .filter(|s| s.account.as_deref() == Some(account) && s.status == 200)
        .map(|s| s.cursor)
        .collect()
}

/// Wait until `account` has asked for `pages` timeline pages.
async fn wait_for_pages(rig: &ScraperRig, account: &str, pages: usize) {
    let deadline = Instant::now() + RUN_TIMEOUT;
    while cursors_of(rig, account).len() < pages {
        assert!(
            Instant::now() < deadline,
            "{account} read {:?} within {RUN_TIMEOUT:?}",
            cursors_of(rig, account)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A second host on the rig's stores: its own owner name, its own browser, and its own
/// account `bob` (known to the stand-in), as another machine of the cluster would have.
async fn second_host(rig: &ScraperRig) -> ScraperWorker {
    use std::os::unix::fs::PermissionsExt;
    rig.site
        .add_account("bob", PASSWORD, "bob@example.com", None);
    let accounts = rig.host.dir.path().join("bob-accounts.txt");
    std::fs::write(&accounts, format!("bob:{PASSWORD}:bob@example.com\n")).unwrap();
    std::fs::set_permissions(&accounts, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut config = rig.host.config.clone();
    config.scraper.accounts_file = accounts;
    ScraperWorker::start(
        &config,
        rig.host.runtime.clone(),
        rig.store.clone(),
        rig.docs.clone(),
    )
    .await
    .expect("the second host's scraper starts")
}

/// Issue 12, item 4: on shutdown a run used to be aborted after the grace, so its progress
/// was never saved and its target lease stayed held (ten minutes) — the next host could not
/// run the target, and when it could, it started over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_run_saves_its_progress_and_another_host_continues_from_it() {
    let rig = ScraperRig::prepare(two_hosts("")).await;
    rig.site.set_endless_timeline(HANDLE);
    let id = deep_backfill(&rig).await;
    let mut rig = rig.start_worker().await;

    // Mid-way through a run that would read 1000 pages.
    wait_for_pages(&rig, "alice", 4).await;
    let grace = Duration::from_secs(rig.host.config.scraper.shutdown_grace_secs);
    let started = Instant::now();
    rig.stop().await;
    let took = started.elapsed();
    assert!(
        took < grace + Duration::from_secs(30),
        "shutdown took {took:?} (grace {grace:?})"
    );
    let stopped_at = impressox_host::util::now_ms();

    // Saved as a normal end saves: how deep it went, where it stopped, the last run.
    let t = rig.target(&id).await;
    let run = t.last_run.clone().expect("the stopped run is recorded");
    assert_eq!(run.outcome, "stopped", "{t:?}");
    assert!(
        run.error.as_deref().unwrap_or("").contains("shutting down"),
        "{run:?}"
    );
    let k = run.pages;
    assert!(k >= 3, "{run:?}");
    assert_eq!(t.backfill.pages, k, "{t:?}");
    assert_eq!(
        t.backfill.cursor.as_deref(),
        Some(format!("bench-{k}").as_str())
    );
    assert!(!t.backfill.done);
    assert!(t.next_run_ms <= stopped_at, "due again at once: {t:?}");
    for page in 0..k {
        assert!(
            rig.tweet(&endless_a(page)).await.is_some(),
            "page {page} stored"
        );
    }
    let oldest = t.backfill.oldest_id.expect("oldest id saved").to_string();
    assert!(rig.tweet(&oldest).await.is_some());
    let first_cursors = cursors_of(&rig, "alice");

    // Another host takes the target at once (its lease was released) and goes on from the
    // saved depth: two pages past it, none re-counted, none skipped.
    let mut t = t;
    t.max_pages = 2;
    targets::save_after_run(&*rig.docs, &t).await.unwrap();
    let second = second_host(&rig).await;
    let t = rig.wait_for_run(&id, stopped_at, RUN_TIMEOUT).await;
    second.stop().await;
    let run = t.last_run.clone().unwrap();
    assert_eq!(
        (run.account.as_str(), run.outcome.as_str()),
        ("bob", "ok"),
        "{t:?}"
    );
    assert_eq!(run.pages, k + 2, "{t:?}");
    assert_eq!(t.backfill.pages, k + 2);
    assert_eq!(
        t.backfill.cursor.as_deref(),
        Some(format!("bench-{}", k + 2).as_str())
    );
    let expected: Vec<Option<String>> = std::iter::once(None)
        .chain((1..k + 2).map(|p| Some(format!("bench-{p}"))))
        .collect();
    assert_eq!(
        cursors_of(&rig, "bob"),
        expected,
        "alice read {first_cursors:?}"
    );
    for page in k..k + 2 {
        assert!(
            rig.tweet(&endless_a(page)).await.is_some(),
            "page {page} stored"
        );
    }
}

/// Issue 12, item 4: a run still waiting for a page when the grace ran out was aborted with
/// nothing saved. Now the page under way is given up late in the grace, and the pages before
/// it are saved within the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_inside_a_slow_page_at_shutdown_gives_it_up_and_saves_within_the_grace() {
    let rig = ScraperRig::prepare(no_user_list("")).await;
    rig.site.set_endless_timeline(HANDLE);
    let id = deep_backfill(&rig).await;
    let mut rig = rig.start_worker().await;
    wait_for_pages(&rig, "alice", 3).await;
    // X stops answering: the next page hangs far past the grace.
    rig.site.set_latency(Duration::from_secs(600));
    let deadline = Instant::now() + RUN_TIMEOUT;
    while !rig
        .site
        .requests()
        .iter()
        .any(|s| s.path.ends_with("/UserTweets") && s.status == 0)
    {
        assert!(Instant::now() < deadline, "no page request hung");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let grace = Duration::from_secs(rig.host.config.scraper.shutdown_grace_secs);
    let started = Instant::now();
    rig.stop().await;
    let took = started.elapsed();
    // The grace for the runs, then sessions and Chromium's close.
    assert!(
        took < grace + Duration::from_secs(20),
        "shutdown took {took:?} (grace {grace:?})"
    );

    let t = rig.target(&id).await;
    let run = t.last_run.clone().expect("the stopped run is recorded");
    assert_eq!(run.outcome, "stopped", "{t:?}");
    assert!(
        run.error.as_deref().unwrap_or("").contains("grace ran out"),
        "{run:?}"
    );
    let k = run.pages;
    assert_eq!(
        cursors_of(&rig, "alice").len() as u32,
        k,
        "every answered page counted"
    );
    assert_eq!(t.backfill.pages, k);
    assert_eq!(
        t.backfill.cursor.as_deref(),
        Some(format!("bench-{k}").as_str())
    );
    // Free for any host at once.
    assert!(
        rig.store
            .acquire_lease(&format!("scraper:target:{id}"), "another-host", 60_000)
            .await
            .unwrap(),
        "the target's lease was released"
    );
}

/// Issue 12, item 4: a target's lease was taken for a fixed time and never renewed, so a run
/// longer than the lease could be started a second time by another host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_longer_than_its_lease_keeps_the_target_from_another_host() {
    const LEASE: Duration = Duration::from_secs(2);
    let rig = ScraperRig::prepare(two_hosts(&format!(
        "target_lease_secs = {}",
        LEASE.as_secs()
    )))
    .await;
    rig.site.set_endless_timeline(HANDLE);
    let id = deep_backfill(&rig).await;
    let mut rig = rig.start_worker().await;
    wait_for_pages(&rig, "alice", 2).await;

    let second = second_host(&rig).await;
    // The target stays due (its run has not ended), so the second host asks for it every
    // tick, for four lease times.
    let read_before = cursors_of(&rig, "alice").len();
    let until = Instant::now() + LEASE * 4;
    while Instant::now() < until {
        assert!(
            !second.handle.running().contains(&id),
            "the second host started the live target"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bob_calls: Vec<String> = rig
        .site
        .requests()
        .iter()
        .filter(|s| s.account.as_deref() == Some("bob") && s.handle.is_some())
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(bob_calls, Vec::<String>::new(), "bob read the target");
    assert!(
        cursors_of(&rig, "alice").len() > read_before,
        "the first host's run went on meanwhile"
    );
    assert!(rig.worker().handle.running().contains(&id));
    rig.stop().await;
    second.stop().await;
}

/// Issue 12, item 14: a retweet's `raw_content` was X's `legacy.full_text`, cut near 140
/// characters with "…".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retweet_of_a_long_post_is_stored_with_the_whole_text() {
    const RT1: &str = "1991038731678785638";
    const MARIA: &str = "1187766013250084864";
    let rig = ScraperRig::prepare(Opts::default()).await;
    rig.site
        .set_timeline(HANDLE, vec![fixture_json("user_tweets_retweets.json")]);
    let mut rig = rig.start_worker().await;
    let t = rig
        .wait_for_run("user:coinledger_ana", 0, RUN_TIMEOUT)
        .await;
    assert_eq!(t.last_run.as_ref().unwrap().outcome, "ok", "{t:?}");
    rig.stop().await;

    let rt = rig.tweet(RT1).await.expect("the retweet is stored");
    let text = rt["raw_content"].as_str().unwrap();
    assert!(
        text.starts_with("RT @old_guard_dev: Node operators")
            && text.ends_with("$STX stackers: payouts will be late."),
        "{text}"
    );
    assert_eq!(rt["user_id"], ANA);
    assert_eq!(rt["view_count"], 88_120, "the original's views");
    assert_eq!(rt["cashtags"], serde_json::json!(["BTC", "STX"]));
    let mentioned: Vec<(&str, &str)> = rt["mentioned_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["username"].as_str().unwrap(),
                m["id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        mentioned,
        [("old_guard_dev", "14567890"), ("DeFi_Maria", MARIA)]
    );
    // X's own text stays in the raw JSON.
    let raw: Value = serde_json::from_str(rt["raw_json"].as_str().unwrap()).unwrap();
    assert!(raw["legacy"]["full_text"].as_str().unwrap().ends_with('…'));
}
