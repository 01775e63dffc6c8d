//! Runs against the stand-in: login, pages along the cursors, what is stored, re-runs.

use std::time::Duration;

use impressox_host::scraper::config::RunMode;
use impressox_host::scraper::targets::{self, TargetKind, TargetSpec};

use super::ids::*;
use super::rig::{Opts, ScraperRig};

const TARGET: &str = "user:coinledger_ana";
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_logs_in_reads_every_page_and_stores_tweets_and_profile() {
    let mut rig = ScraperRig::start(Opts::default()).await;
    let t = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    let run = t.last_run.clone().unwrap();
    assert_eq!(run.outcome, "ok", "{t:?}");
    assert_eq!(run.account, "alice");
    assert!(run.pages >= 3, "{run:?}");
    // The malformed entry of page 1 is skipped and counted; the rest of its page is kept.
    assert!(run.skipped >= 1, "{run:?}");
    let mut metrics = String::new();
    rig.worker().handle.render_metrics(&mut metrics).await;
    assert!(
        metrics.lines().any(
            |l| l.starts_with("impressox_scraper_skipped_entries_total ") && !l.ends_with(" 0")
        ),
        "{metrics}"
    );

    // The login went through the form, once, and its session is stored.
    let logins = rig
        .site
        .requests()
        .iter()
        .filter(|s| s.path == "/i/api/1.1/onboarding/task.json")
        .count();
    assert!(logins >= 2, "username and password steps, saw {logins}");
    let session = rig
        .store
        .kv_get("scraper:sessions", "alice")
        .await
        .unwrap()
        .expect("the session is stored");
    assert!(session.contains("auth_token"));

    // Pages followed the bottom cursors to the end.
    let cursors: Vec<Option<String>> = rig
        .site
        .graphql_requests("UserTweets")
        .iter()
        .map(|s| s.cursor.clone())
        .collect();
    assert_eq!(
        cursors,
        vec![
            None,
            Some(BOTTOM1.to_string()),
            Some(BOTTOM2.to_string()),
            Some(BOTTOM3.to_string())
        ]
    );

    for id in [A, B, C, H, J, N, O, U] {
        let doc = rig
            .tweet(id)
            .await
            .unwrap_or_else(|| panic!("tweet {id} stored"));
        assert!(
            doc["raw_json"].as_str().unwrap().contains(id),
            "{id} keeps its raw JSON"
        );
        assert_eq!(doc["first_seen_ms"], doc["last_seen_ms"]);
        assert_eq!(doc["seen_by"], TARGET);
    }
    for id in [D, E, D2, E2] {
        assert!(
            rig.tweet(id).await.is_none(),
            "promoted/tombstone {id} is not stored"
        );
    }
    let a = rig.tweet(A).await.unwrap();
    assert_eq!(a["cashtags"], serde_json::json!(["BTC", "ETH"]));
    let n = rig.tweet(N).await.unwrap();
    for tag in ["ARB", "OP", "TIA"] {
        assert!(
            n["cashtags"].as_array().unwrap().iter().any(|c| c == tag),
            "note tweet cashtags {:?}",
            n["cashtags"]
        );
    }
    let profile = rig
        .docs
        .get("profiles", ANA)
        .await
        .unwrap()
        .expect("profile stored");
    assert_eq!(profile["username"], HANDLE);
    assert!(profile["raw_json"].as_str().unwrap().contains(ANA));
    assert_eq!(t.user_id.as_deref(), Some(ANA));
    assert!(t.newest_id.is_some());
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_reuses_the_session_never_duplicates_and_keeps_first_seen() {
    let mut rig = ScraperRig::start(Opts {
        // Page 1 only: the re-run reads the same page.
        scraper: "tail_max_pages = 1".into(),
        ..Opts::default()
    })
    .await;
    rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    let count = rig.tweet_count().await;
    assert!(count >= 5, "page 1 stored, got {count}");
    let first = rig.tweet(A).await.unwrap();
    let logins_before = rig
        .site
        .requests()
        .iter()
        .filter(|s| s.path.starts_with("/i/api/1.1/onboarding"))
        .count();

    let since = rig.run_now(TARGET).await;
    let t = rig.wait_for_run(TARGET, since, RUN_TIMEOUT).await;
    assert_eq!(t.last_run.as_ref().unwrap().outcome, "ok");
    assert_eq!(t.last_run.as_ref().unwrap().new, 0, "{t:?}");
    assert_eq!(rig.tweet_count().await, count, "a re-run never duplicates");
    let again = rig.tweet(A).await.unwrap();
    assert_eq!(again["first_seen_ms"], first["first_seen_ms"]);
    assert!(again["last_seen_ms"].as_i64() > first["last_seen_ms"].as_i64());
    let logins_after = rig
        .site
        .requests()
        .iter()
        .filter(|s| s.path.starts_with("/i/api/1.1/onboarding"))
        .count();
    assert_eq!(logins_before, logins_after, "the stored session was reused");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_run_stops_at_the_newest_stored_tweet() {
    let mut rig = ScraperRig::start(Opts::default()).await;
    let first = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    let newest = first.newest_id.expect("newest_id after the first run");
    let calls_before = rig.site.graphql_requests("UserTweets").len();

    let new_id = (newest + 1000).to_string();
    rig.site.prepend_tweet(HANDLE, &new_id);
    let since = rig.run_now(TARGET).await;
    let t = rig.wait_for_run(TARGET, since, RUN_TIMEOUT).await;
    assert_eq!(t.last_run.as_ref().unwrap().outcome, "ok", "{t:?}");
    let calls: Vec<_> = rig.site.graphql_requests("UserTweets")[calls_before..]
        .iter()
        .map(|s| s.cursor.clone())
        .collect();
    assert_eq!(calls, vec![None], "only page 1 was read");
    assert!(
        rig.tweet(&new_id).await.is_some(),
        "the new tweet is stored"
    );
    assert_eq!(t.newest_id, Some(newest + 1000));
    rig.stop().await;
}

/// Replace the user list's targets with one API target of `mode` and `max_pages`.
async fn api_target(rig: &ScraperRig, mode: RunMode, max_pages: u32) -> String {
    let spec = TargetSpec {
        kind: TargetKind::User,
        handle: Some(HANDLE.into()),
        name: None,
        query: None,
        product: None,
        interval_secs: Some(3600),
        mode: Some(mode),
        max_pages: Some(max_pages),
        enabled: Some(true),
    };
    let defaults = impressox_host::scraper::worker::target_defaults(&rig.host.config.scraper);
    let t = targets::create_api_target(&*rig.docs, &spec, &defaults, 0)
        .await
        .unwrap();
    t.id
}

fn no_user_list() -> Opts {
    Opts {
        handles: Vec::new(),
        ..Opts::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_follows_bottom_cursors_to_the_end() {
    let rig = ScraperRig::prepare(no_user_list()).await;
    let id = api_target(&rig, RunMode::Backfill, 50).await;
    let mut rig = rig.start_worker().await;
    let t = rig.wait_for_run(&id, 0, RUN_TIMEOUT).await;
    assert_eq!(t.last_run.as_ref().unwrap().outcome, "ok", "{t:?}");
    let cursors: Vec<Option<String>> = rig
        .site
        .graphql_requests("UserTweets")
        .iter()
        .map(|s| s.cursor.clone())
        .collect();
    assert_eq!(
        cursors,
        vec![
            None,
            Some(BOTTOM1.into()),
            Some(BOTTOM2.into()),
            Some(BOTTOM3.into())
        ]
    );
    assert!(
        t.backfill.done,
        "the end of the timeline was reached: {t:?}"
    );
    for id in [A, J, O, U] {
        assert!(rig.tweet(id).await.is_some(), "{id} stored");
    }
    assert_eq!(t.backfill.oldest_id, Some(U.parse::<i64>().unwrap()));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_stops_at_its_page_limit() {
    let rig = ScraperRig::prepare(no_user_list()).await;
    let id = api_target(&rig, RunMode::Backfill, 2).await;
    let mut rig = rig.start_worker().await;
    let t = rig.wait_for_run(&id, 0, RUN_TIMEOUT).await;
    assert_eq!(t.last_run.as_ref().unwrap().outcome, "ok", "{t:?}");
    assert_eq!(t.last_run.as_ref().unwrap().pages, 2);
    let cursors: Vec<Option<String>> = rig
        .site
        .graphql_requests("UserTweets")
        .iter()
        .map(|s| s.cursor.clone())
        .collect();
    assert_eq!(
        cursors,
        vec![None, Some(BOTTOM1.into())],
        "no request past page 2"
    );
    assert!(!t.backfill.done);
    assert_eq!(t.backfill.cursor.as_deref(), Some(BOTTOM2));
    assert!(rig.tweet(J).await.is_some());
    assert!(rig.tweet(O).await.is_none(), "page 3 was not read");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_target_captures_search_timeline() {
    let mut rig = ScraperRig::start(Opts {
        extra: "[[scraper.searches]]\nname = \"btc\"\nquery = \"$BTC\"\nproduct = \"live\"\nmax_pages = 5\n"
            .into(),
        ..no_user_list()
    })
    .await;
    let t = rig.wait_for_run("search:btc", 0, RUN_TIMEOUT).await;
    assert_eq!(t.last_run.as_ref().unwrap().outcome, "ok", "{t:?}");
    let searches: Vec<Option<String>> = rig
        .site
        .graphql_requests("SearchTimeline")
        .iter()
        .map(|s| s.search.clone())
        .collect();
    assert!(!searches.is_empty());
    assert!(
        searches.iter().all(|s| s.as_deref() == Some("$BTC")),
        "the query reached X as typed: {searches:?}"
    );
    for id in [S1, S2, S3, S6] {
        let doc = rig
            .tweet(id)
            .await
            .unwrap_or_else(|| panic!("search tweet {id} stored"));
        assert_eq!(doc["seen_by"], "search:btc");
    }
    assert_eq!(rig.tweet(S3).await.unwrap()["quoted_tweet_id"], A);
    for id in [S4, S5] {
        assert!(
            rig.tweet(id).await.is_none(),
            "unavailable/promoted {id} not stored"
        );
    }
    rig.stop().await;
}
