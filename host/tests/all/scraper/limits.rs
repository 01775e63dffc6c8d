//! What X's limits and account errors do to an account: error codes that lock or ban it,
//! budgets from the rate-limit headers (never a request beyond them), the target moving to
//! another account, and at most two pages per account.

use std::time::Duration;

use super::ids::{HANDLE, O, U};
use super::rig::{Opts, PASSWORD, ScraperRig};
use crate::servers::x_site::{AccountState, Fail};

const TARGET: &str = "user:coinledger_ana";
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
const NO_RESERVE: &str = "[scraper.limits]\nbudget_reserve = 0\n";

/// A prepared rig (worker not started) whose accounts already hold sessions (no login in
/// the way).
async fn with_sessions(opts: Opts, users: &[&str]) -> ScraperRig {
    let rig = ScraperRig::prepare(opts).await;
    for user in users {
        if *user != "alice" {
            rig.site
                .add_account(user, PASSWORD, &format!("{user}@example.com"), None);
        }
        let cookies = rig.site.issue_session(user);
        rig.store_session(user, &cookies).await;
    }
    rig
}

/// `(account, status)` of every `op` call the stand-in answered.
fn calls(rig: &ScraperRig, op: &str) -> Vec<(String, u16)> {
    rig.site
        .graphql_requests(op)
        .iter()
        .map(|s| (s.account.clone().unwrap_or_default(), s.status))
        .collect()
}

/// One GraphQL error on the first `UserTweets` call; the run ends with `outcome` and the
/// account is left in `state`, with no further call.
async fn account_error(fail: Fail, outcome: &str, state: &str, reason: &str) {
    let rig = with_sessions(Opts::default(), &["alice"]).await;
    rig.site.fail_next("UserTweets", fail);
    let mut rig = rig.start_worker().await;

    let t = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    assert_eq!(t.last_run.as_ref().unwrap().outcome, outcome, "{t:?}");
    let alice = rig.account_view("alice").await;
    assert_eq!(alice["state"], state, "{alice}");
    assert!(
        alice["reason"].as_str().is_some_and(|r| r.contains(reason)),
        "{alice}"
    );
    rig.stop().await;
    assert_eq!(
        calls(&rig, "UserTweets").len(),
        1,
        "no call after the error: {:?}",
        rig.site.requests()
    );
    assert_eq!(
        rig.login_requests(),
        Vec::<String>::new(),
        "an account error is not a reason to log in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_326_marks_locked() {
    account_error(
        Fail::Error {
            status: 403,
            code: 326,
        },
        "locked",
        "locked",
        "locked",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_88_with_budget_left_marks_locked() {
    account_error(Fail::Code88, "locked", "locked", "locked").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_64_marks_banned() {
    account_error(
        Fail::Error {
            status: 403,
            code: 64,
        },
        "banned",
        "banned",
        "suspended",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_access_redirect_marks_locked() {
    let rig = ScraperRig::prepare(Opts::default()).await;
    let cookies = rig.site.issue_session("alice");
    rig.store_session("alice", &cookies).await;
    rig.site.set_account_state("alice", AccountState::Locked);
    let mut rig = rig.start_worker().await;

    let t = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    assert_eq!(t.last_run.as_ref().unwrap().outcome, "locked", "{t:?}");
    let alice = rig.account_view("alice").await;
    assert_eq!(alice["state"], "locked", "{alice}");
    assert!(alice["until"].is_string(), "re-checked later: {alice}");
    rig.stop().await;
    assert_eq!(rig.login_requests(), Vec::<String>::new());
    assert!(calls(&rig, "UserTweets").is_empty());
}

/// A 429 the headers did not announce (they said budget was left): the account rests
/// until the 429's reset, and the target stays due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unforeseen_429_rests_the_account_until_the_reset() {
    let rig = with_sessions(Opts::default(), &["alice"]).await;
    rig.site.fail_next("UserTweets", Fail::Status(429));
    let mut rig = rig.start_worker().await;

    let t = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    assert_eq!(
        t.last_run.as_ref().unwrap().outcome,
        "rate_limited",
        "{t:?}"
    );
    let (_, _, reset) = rig.site.budget("alice", "UserTweets");
    let alice = rig.account_view("alice").await;
    assert_eq!(alice["state"], "rate_limited", "{alice}");
    // The API's times are `util::rfc3339_ms`, as everywhere else in it.
    let until = impressox_host::util::rfc3339_ms(i64::try_from(reset).unwrap() * 1000);
    assert_eq!(alice["until"], until, "{alice}");
    assert!(
        t.next_run_ms <= impressox_host::util::now_ms(),
        "the target stays due for another account"
    );
    rig.stop().await;
    assert_eq!(calls(&rig, "UserTweets"), [("alice".to_string(), 429)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_headers_running_out_pause_the_account_until_reset() {
    let rig = ScraperRig::prepare(Opts {
        extra: NO_RESERVE.into(),
        ..Opts::default()
    })
    .await;
    let cookies = rig.site.issue_session("alice");
    rig.store_session("alice", &cookies).await;
    rig.hold_targets(&[HANDLE]).await;
    let rig = rig.start_worker().await;

    // Two UserTweets calls left, refilled 10 s from now (the browser is up: the run takes
    // a second or two).
    rig.site.set_budget("UserTweets", 500, 2, 10);
    let since = rig.run_now(TARGET).await;
    let t = rig.wait_for_run(TARGET, since, RUN_TIMEOUT).await;
    let run = t.last_run.clone().unwrap();
    assert_eq!(run.outcome, "budget", "{t:?}");
    assert_eq!(run.pages, 2, "{run:?}");
    // Exactly what the budget allowed: the headers said 1, then 0 left.
    assert_eq!(
        calls(&rig, "UserTweets"),
        [("alice".to_string(), 200), ("alice".to_string(), 200)]
    );
    let alice = rig.account_view("alice").await;
    assert_eq!(alice["budgets"]["UserTweets"]["remaining"], 0, "{alice}");
    assert_eq!(
        alice["budgets"]["UserTweets"]["source"], "headers",
        "{alice}"
    );

    // Asked to run again at once, the target waits for the reset: a call before it would
    // have been answered 429 by the stand-in.
    let mut rig = rig;
    let since = rig.run_now(TARGET).await;
    let t = rig.wait_for_run(TARGET, since, RUN_TIMEOUT).await;
    assert_eq!(t.last_run.as_ref().unwrap().outcome, "ok", "{t:?}");
    let after = calls(&rig, "UserTweets");
    assert!(after.len() > 2, "{after:?}");
    assert!(
        after
            .iter()
            .all(|(a, status)| a == "alice" && *status == 200),
        "no call beyond the budget: {after:?}"
    );
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_budget_moves_the_target_to_another_account() {
    let rig = with_sessions(
        Opts {
            accounts: vec![
                format!("alice:{PASSWORD}:alice@example.com"),
                format!("bob:{PASSWORD}:bob@example.com"),
            ],
            extra: NO_RESERVE.into(),
            ..Opts::default()
        },
        &["alice", "bob"],
    )
    .await;
    // Alice has two UserTweets calls left for ten minutes; bob has plenty.
    rig.site
        .set_account_budget("alice", "UserTweets", 500, 2, 600);
    let mut rig = rig.start_worker().await;

    let first = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    let run = first.last_run.clone().unwrap();
    assert_eq!(
        (run.account.as_str(), run.outcome.as_str()),
        ("alice", "budget"),
        "{first:?}"
    );
    // The target is not done: it goes on with bob without being asked, and reads on to
    // the end of the timeline (alice's partial run did not count as having caught up).
    let t = rig.wait_for_run(TARGET, run.at_ms + 1, RUN_TIMEOUT).await;
    let second = t.last_run.clone().unwrap();
    assert_eq!(
        (second.account.as_str(), second.outcome.as_str()),
        ("bob", "ok"),
        "{t:?}"
    );
    assert!(rig.tweet(O).await.is_some() && rig.tweet(U).await.is_some());
    rig.stop().await;
    let alice: Vec<_> = calls(&rig, "UserTweets")
        .into_iter()
        .filter(|(a, _)| a == "alice")
        .collect();
    assert_eq!(
        alice,
        [("alice".to_string(), 200), ("alice".to_string(), 200)],
        "never a call beyond alice's budget"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_two_pages_per_account() {
    let handles = ["ana_one", "ana_two", "ana_three", "ana_four", "ana_five"];
    let rig = with_sessions(
        Opts {
            handles: handles.iter().map(|h| h.to_string()).collect(),
            ..Opts::default()
        },
        &["alice"],
    )
    .await;
    rig.site.set_latency(Duration::from_millis(300));
    let mut rig = rig.start_worker().await;

    for h in handles {
        let t = rig
            .wait_for_run(&format!("user:{h}"), 0, Duration::from_secs(180))
            .await;
        let run = t.last_run.as_ref().unwrap();
        assert_eq!(
            (run.account.as_str(), run.outcome.as_str()),
            ("alice", "ok"),
            "{t:?}"
        );
        // Each page is rendered and scrolls to the timeline's end, whichever of the
        // account's two pages it ran on.
        assert!(run.pages >= 3, "{h} read every page: {t:?}");
    }
    rig.stop().await;
    // Requests carrying alice's cookie that the stand-in was answering at the same time:
    // each page has at most one GraphQL call out (its script awaits each), so two pages
    // make at most two.
    let max = rig.site.max_in_flight("alice");
    assert!(max <= 2, "{max} requests of alice at once");
    for h in handles {
        assert!(
            rig.site
                .requests()
                .iter()
                .any(|s| s.handle.as_deref() == Some(h) && s.op.as_deref() == Some("UserTweets")),
            "{h} was read"
        );
    }
}
