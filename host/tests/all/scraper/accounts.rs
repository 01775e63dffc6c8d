//! Accounts against the stand-in: stored sessions, the login form's steps (TOTP, the email
//! challenge, a wrong password), rejected sessions, a ban seen right after a login, and what
//! the accounts view may show.

use std::time::Duration;

use serde_json::Value;

use super::ids::{HANDLE, O, U};
use super::rig::{LogCapture, Opts, PASSWORD, ScraperRig};
use crate::servers::x_site::AccountState;

const TARGET: &str = "user:coinledger_ana";
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// A TOTP secret as X's authenticator setup shows it (base32).
const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DP";

fn steps(rig: &ScraperRig) -> Vec<String> {
    rig.login_steps().into_iter().map(|(s, _)| s).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_session_is_reused_without_login() {
    let rig = ScraperRig::prepare(Opts::default()).await;
    let cookies = rig.site.issue_session("alice");
    rig.store_session("alice", &cookies).await;
    let mut rig = rig.start_worker().await;

    let t = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    let run = t.last_run.clone().unwrap();
    assert_eq!(run.outcome, "ok", "{t:?}");
    assert_eq!(run.account, "alice");
    assert_eq!(rig.login_requests(), Vec::<String>::new(), "no login");
    // Every page and API call carried the stored auth_token (the stand-in names the account
    // by it).
    let seen = rig.site.requests();
    let calls: Vec<_> = seen
        .iter()
        .filter(|s| s.op.is_some() || s.handle.is_some())
        .collect();
    assert!(calls.len() >= 3, "{seen:?}");
    for s in calls {
        assert_eq!(s.account.as_deref(), Some("alice"), "{s:?}");
        assert_eq!(s.status, 200, "{s:?}");
    }
    assert!(rig.tweet(O).await.is_some() && rig.tweet(U).await.is_some());
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_step_is_answered_with_the_current_code() {
    let rig = ScraperRig::prepare(Opts {
        accounts: vec![format!("alice:{PASSWORD}:alice@example.com:{TOTP_SECRET}")],
        ..Opts::default()
    })
    .await;
    rig.site
        .add_account("alice", PASSWORD, "alice@example.com", Some(TOTP_SECRET));
    let mut rig = rig.start_worker().await;

    let t = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    assert_eq!(t.last_run.as_ref().unwrap().outcome, "ok", "{t:?}");
    // The stand-in accepts only the current (or previous) 30-second code.
    assert_eq!(
        rig.login_steps(),
        vec![
            ("username".to_string(), 200),
            ("password".to_string(), 200),
            ("code".to_string(), 200)
        ]
    );
    let session = rig
        .store
        .kv_get("scraper:sessions", "alice")
        .await
        .unwrap()
        .expect("the session is stored");
    assert!(session.contains("auth_token"));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_step_gets_the_email() {
    let rig = ScraperRig::prepare(Opts::default()).await;
    rig.site.set_account_state("alice", AccountState::Challenge);
    let mut rig = rig.start_worker().await;

    let t = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    assert_eq!(t.last_run.as_ref().unwrap().outcome, "ok", "{t:?}");
    // The stand-in answers the challenge step 200 only for the account's email.
    assert_eq!(
        rig.login_steps(),
        vec![
            ("username".to_string(), 200),
            ("challenge".to_string(), 200),
            ("password".to_string(), 200)
        ]
    );
    assert_eq!(rig.account_view("alice").await["state"], "active");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_marks_login_failed_and_never_leaks_it() {
    const WRONG: &str = "Sup3rSecret!wr0ng-pass";
    let logs = LogCapture::start();
    let mut rig = ScraperRig::start(Opts {
        accounts: vec![format!("alice:{WRONG}:alice@example.com")],
        ..Opts::default()
    })
    .await;

    let t = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    assert_eq!(
        t.last_run.as_ref().unwrap().outcome,
        "login_failed",
        "{t:?}"
    );
    // The password was typed (and refused), once.
    assert_eq!(
        rig.login_steps(),
        vec![("username".to_string(), 200), ("password".to_string(), 400)]
    );
    let account = rig.account_view("alice").await;
    assert_eq!(account["state"], "login_failed", "{account}");
    let reason = account["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("Wrong password"), "{account}");
    assert!(account["until"].is_string(), "retried later: {account}");
    // No profile page was opened with the refused account.
    assert!(
        rig.site.requests().iter().all(|s| s.handle.is_none()),
        "{:?}",
        rig.site.requests()
    );

    let view = rig.accounts_view().await.to_string();
    assert!(!view.contains(WRONG), "the view shows the password: {view}");
    for ns in ["scraper:accounts", "scraper:sessions"] {
        for (key, value) in rig.store.kv_list(ns).await.unwrap() {
            assert!(!value.contains(WRONG), "{ns}/{key} holds the password");
        }
    }
    assert!(
        !rig.store
            .kv_list("scraper:accounts")
            .await
            .unwrap()
            .is_empty(),
        "the account's record is stored"
    );
    rig.stop().await;
    let text = logs.text();
    assert!(
        text.contains("logging in through the login form"),
        "the capture saw the worker's lines: {text}"
    );
    assert!(!text.contains(WRONG), "the logs show the password:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_session_triggers_one_login_and_the_run_continues() {
    let rig = ScraperRig::prepare(Opts::default()).await;
    // The stand-in's shapes, but an auth_token it never issued.
    let mut cookies = rig.site.issue_session("alice");
    let bogus = "0123456789abcdef0123456789abcdef01234567".to_string();
    cookies[0].value = bogus.clone();
    assert_eq!(cookies[0].name, "auth_token");
    rig.store_session("alice", &cookies).await;
    let mut rig = rig.start_worker().await;

    let t = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    let run = t.last_run.clone().unwrap();
    assert_eq!(run.outcome, "ok", "{t:?}");
    // The profile page first answered with the login redirect, then one login, then the
    // page again with the new session.
    let seen = rig.site.requests();
    let profile: Vec<_> = seen
        .iter()
        .filter(|s| s.handle.as_deref() == Some(HANDLE) && s.op.is_none())
        .map(|s| (s.account.clone(), s.status))
        .collect();
    assert_eq!(
        profile,
        vec![(None, 302), (Some("alice".to_string()), 200)],
        "{seen:?}"
    );
    assert_eq!(steps(&rig), ["username", "password"], "one login");
    assert!(run.pages >= 3, "{run:?}");
    assert!(rig.tweet(O).await.is_some(), "the run went on to page 3");
    let session = rig
        .store
        .kv_get("scraper:sessions", "alice")
        .await
        .unwrap()
        .expect("the new session is stored");
    assert!(
        !session.contains(&bogus),
        "the rejected session is replaced"
    );
    assert_eq!(rig.account_view("alice").await["state"], "active");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_login_after_a_fresh_login_marks_banned() {
    let rig = ScraperRig::prepare(Opts::default()).await;
    rig.site.set_account_state("alice", AccountState::Banned);
    let mut rig = rig.start_worker().await;

    let t = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    assert_eq!(t.last_run.as_ref().unwrap().outcome, "banned", "{t:?}");
    assert_eq!(steps(&rig), ["username", "password"], "logged in once");
    let account = rig.account_view("alice").await;
    assert_eq!(account["state"], "banned", "{account}");
    assert!(
        account["reason"]
            .as_str()
            .is_some_and(|r| r.contains("fresh login")),
        "{account}"
    );
    rig.stop().await;
    // A banned account is never used again: one profile page, no API call.
    let seen = rig.site.requests();
    assert_eq!(
        seen.iter()
            .filter(|s| s.handle.is_some() && s.op.is_none())
            .count(),
        1,
        "{seen:?}"
    );
    assert!(seen.iter().all(|s| s.op.is_none()), "{seen:?}");
    assert_eq!(steps(&rig), ["username", "password"], "no second login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_view_has_no_secrets() {
    let rig = ScraperRig::prepare(Opts {
        accounts: vec![format!("alice:{PASSWORD}:alice@example.com:{TOTP_SECRET}")],
        ..Opts::default()
    })
    .await;
    rig.site
        .add_account("alice", PASSWORD, "alice@example.com", Some(TOTP_SECRET));
    let mut rig = rig.start_worker().await;
    let t = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    assert_eq!(t.last_run.as_ref().unwrap().outcome, "ok", "{t:?}");

    let view = rig.accounts_view().await;
    let text = serde_json::to_string(&view).unwrap();
    let session: Value = serde_json::from_str(
        &rig.store
            .kv_get("scraper:sessions", "alice")
            .await
            .unwrap()
            .expect("the session is stored"),
    )
    .unwrap();
    let cookies = session["cookies"].as_array().unwrap();
    assert!(cookies.len() >= 2, "{} cookies", cookies.len());
    let mut secrets = vec![
        PASSWORD.to_string(),
        "alice@example.com".to_string(),
        TOTP_SECRET.to_string(),
        TOTP_SECRET.to_lowercase(),
    ];
    secrets.extend(
        cookies
            .iter()
            .map(|c| c["value"].as_str().unwrap().to_string()),
    );
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "the view shows a secret: {text}"
        );
    }
    // The stored account record holds none either.
    let record = rig
        .store
        .kv_get("scraper:accounts", "alice")
        .await
        .unwrap()
        .expect("the account record is stored");
    for secret in &secrets {
        assert!(
            !record.contains(secret.as_str()),
            "the record holds a secret"
        );
    }

    // The run's record is saved before the account is handed back with its page count
    // (worker.rs: the target is freed first), so wait for the count.
    let deadline = std::time::Instant::now() + RUN_TIMEOUT;
    let alice = loop {
        let alice = rig.account_view("alice").await;
        if alice["pages"].as_u64().unwrap_or(0) > 0 || std::time::Instant::now() > deadline {
            break alice;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(alice["has_totp"], true, "{alice}");
    assert_eq!(alice["session"]["present"], true, "{alice}");
    assert!(alice["session"]["saved_at"].is_string(), "{alice}");
    assert_eq!(alice["state"], "active", "{alice}");
    assert!(alice["last_login_at"].is_string(), "{alice}");
    assert!(alice["pages"].as_u64().unwrap() >= 3, "{alice}");
    assert!(view["proxies"].is_array(), "{view}");
    rig.stop().await;
}

/// Two targets due at once for one account without a session: both runs start together
/// (two pages per account); the account logs in once (X flags parallel logins) and both
/// runs read their timeline to the end. (Both pages must be rendered: as two tabs of one
/// window, the one behind took no input and fired no scroll events.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_first_runs_at_once_log_in_once_and_read_to_the_end() {
    let mut rig = ScraperRig::start(Opts {
        handles: vec![HANDLE.into(), "other_handle".into()],
        ..Opts::default()
    })
    .await;
    for id in [TARGET, "user:other_handle"] {
        let t = rig.wait_for_run(id, 0, RUN_TIMEOUT).await;
        let run = t.last_run.as_ref().unwrap();
        assert_eq!(run.outcome, "ok", "{t:?}");
        assert!(run.pages >= 3, "{t:?}");
    }
    assert_eq!(steps(&rig), ["username", "password"], "one login");
    rig.stop().await;
}
