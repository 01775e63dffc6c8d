//! Per-account proxies (docs/design/x-scraper.md §3.2, §2.4, §2.6; §6 items 17, 18): the
//! stand-in X behind two proxy stand-ins, loopback sent through them
//! (`proxy_bypass_list = "<-loopback>"`), what each proxy carried and what the accounts view
//! reports.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use super::ids::*;
use super::rig::{LogCapture, Opts, PASSWORD, ScraperRig};
use crate::servers::http_proxy::HttpProxy;

const TARGET: &str = "user:coinledger_ana";
/// A second user target: the stand-in serves the default timeline for every handle.
const OTHER: &str = "satoshi_fan";
const OTHER_TARGET: &str = "user:satoshi_fan";
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn bob_line() -> String {
    format!("bob:{PASSWORD}:bob@example.com")
}

fn alice_line() -> String {
    format!("alice:{PASSWORD}:alice@example.com")
}

/// The accounts (by their session cookie, or the login they were doing) each proxy carried
/// to the stand-in, from request `from` on; requests that came without a proxy are under "".
fn accounts_by_proxy(rig: &ScraperRig, from: usize) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &rig.site.requests()[from..] {
        let set = out
            .entry(s.via_proxy.clone().unwrap_or_default())
            .or_default();
        if let Some(a) = &s.account {
            set.insert(a.clone());
        }
    }
    out
}

fn view_account<'a>(view: &'a Value, user: &str) -> &'a Value {
    view["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["username"] == user)
        .unwrap_or_else(|| panic!("{user} in the accounts view: {view:#}"))
}

fn view_proxy<'a>(view: &'a Value, server: &str) -> &'a Value {
    view["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["server"] == server)
        .unwrap_or_else(|| panic!("{server} in the proxies view: {view:#}"))
}

fn assert_ok(t: &impressox_host::scraper::targets::TargetRecord) {
    assert_eq!(
        t.last_run.as_ref().map(|r| r.outcome.as_str()),
        Some("ok"),
        "{t:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_keeps_its_proxy() {
    let p1 = HttpProxy::start("p1").await;
    let p2 = HttpProxy::start("p2").await;
    let rig = ScraperRig::prepare(Opts {
        accounts: vec![alice_line(), bob_line()],
        handles: vec![HANDLE.into(), OTHER.into()],
        proxies: vec![p1.url(), p2.url()],
        ..Opts::default()
    })
    .await;
    rig.site
        .add_account("bob", PASSWORD, "bob@example.com", None);
    let mut rig = rig.start_worker().await;
    let a = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    let b = rig.wait_for_run(OTHER_TARGET, 0, RUN_TIMEOUT).await;
    assert_ok(&a);
    assert_ok(&b);
    let runners: BTreeSet<String> = [&a, &b]
        .iter()
        .map(|t| t.last_run.as_ref().unwrap().account.clone())
        .collect();
    assert_eq!(
        runners,
        BTreeSet::from(["alice".to_string(), "bob".to_string()]),
        "two due targets went to the two accounts"
    );

    // Every request reached the site through a proxy, and each proxy carried one account.
    let seen = accounts_by_proxy(&rig, 0);
    assert!(
        !seen.contains_key(""),
        "requests reached the site without a proxy: {seen:?}"
    );
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ["p1", "p2"],
        "both proxies used: {seen:?}"
    );
    for (proxy, accounts) in &seen {
        assert_eq!(accounts.len(), 1, "{proxy} carried {accounts:?}");
    }
    assert_ne!(seen["p1"], seen["p2"]);
    let site_host = rig.site.addr().to_string();
    assert!(p1.count_for(&site_host) > 0 && p2.count_for(&site_host) > 0);
    // The pages each account ran are the timeline calls its proxy carried.
    for t in [&a, &b] {
        let run = t.last_run.as_ref().unwrap();
        let proxy = if seen["p1"].contains(&run.account) {
            "p1"
        } else {
            "p2"
        };
        let calls = rig
            .site
            .graphql_requests("UserTweets")
            .iter()
            .filter(|s| s.via_proxy.as_deref() == Some(proxy))
            .count();
        assert!(
            calls == run.pages as usize && run.pages >= 3,
            "{proxy}: {calls} UserTweets calls for a run of {} pages",
            run.pages
        );
    }

    // The view names each account's proxy (scheme://host:port) and each proxy's accounts.
    let view = rig.worker().handle.pool().view().await;
    let url_of = |name: &str| if name == "p1" { p1.url() } else { p2.url() };
    for (proxy, accounts) in &seen {
        let user = accounts.iter().next().unwrap();
        assert_eq!(
            view_account(&view, user)["proxy"],
            url_of(proxy),
            "{view:#}"
        );
        let p = view_proxy(&view, &url_of(proxy));
        assert_eq!(p["state"], "healthy");
        assert_eq!(p["accounts"], serde_json::json!([user]));
    }

    // Sticky across a restart of the worker (the record keeps the proxy).
    rig.stop().await;
    let rig = rig.start_worker().await;
    let from = rig.site.requests().len();
    let since = rig.run_now(TARGET).await;
    rig.run_now(OTHER_TARGET).await;
    assert_ok(&rig.wait_for_run(TARGET, since, RUN_TIMEOUT).await);
    assert_ok(&rig.wait_for_run(OTHER_TARGET, since, RUN_TIMEOUT).await);
    let again = accounts_by_proxy(&rig, from);
    for (proxy, accounts) in &again {
        assert!(
            accounts.is_subset(&seen[proxy]),
            "after the restart {proxy} carried {accounts:?}, before {:?}",
            seen[proxy]
        );
    }
    let mut rig = rig;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_credentials_are_answered() {
    // Percent-encoded in the file ("/" in the password), decoded before it is sent.
    const USER: &str = "scrapeuser";
    const SECRET: &str = "pr0xy/Secret-7781";
    const SECRET_IN_FILE: &str = "pr0xy%2FSecret-7781";
    // Before the rig: the capture is taken before the browser permit.
    let logs = LogCapture::start();
    let proxy = HttpProxy::start("auth").await;
    proxy.require_credentials(USER, SECRET);
    let mut rig = ScraperRig::start(Opts {
        proxies: vec![format!("http://{USER}:{SECRET_IN_FILE}@{}", proxy.server())],
        ..Opts::default()
    })
    .await;
    let t = rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await;
    assert_ok(&t);
    assert!(t.last_run.as_ref().unwrap().pages >= 3, "{t:?}");

    // The proxy challenged, the browser answered, and everything it forwarded was
    // authenticated.
    let requests = proxy.requests();
    assert!(
        requests.iter().any(|r| r.status == 407),
        "the proxy challenged: {requests:?}"
    );
    let forwarded: Vec<_> = requests
        .iter()
        .filter(|r| !r.foreign && r.status != 407 && r.status != 0)
        .collect();
    assert!(!forwarded.is_empty());
    assert!(
        forwarded.iter().all(|r| r.had_auth),
        "forwarded without credentials: {forwarded:?}"
    );
    let seen = accounts_by_proxy(&rig, 0);
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ["auth"],
        "every request came through the proxy: {seen:?}"
    );
    assert!(
        !rig.site.graphql_requests("UserTweets").is_empty()
            && rig
                .site
                .graphql_requests("UserTweets")
                .iter()
                .all(|s| s.via_proxy.as_deref() == Some("auth"))
    );

    // The proxy is shown as scheme://host:port; the password appears nowhere.
    let view = rig.worker().handle.pool().view().await;
    assert_eq!(view_account(&view, "alice")["proxy"], proxy.url());
    assert_eq!(view_proxy(&view, &proxy.url())["state"], "healthy");
    let record = rig
        .store
        .kv_get("scraper:accounts", "alice")
        .await
        .unwrap()
        .expect("the account record is stored");
    let session = rig
        .store
        .kv_get("scraper:sessions", "alice")
        .await
        .unwrap()
        .expect("the session is stored");
    rig.stop().await;
    let logs = logs.text();
    assert!(
        logs.contains("run finished"),
        "the log capture works (it holds the run's line)"
    );
    for (what, text) in [
        ("the accounts view", view.to_string()),
        ("the account record", record),
        ("the session", session),
        ("the logs", logs),
    ] {
        for secret in [SECRET, SECRET_IN_FILE] {
            assert!(!text.contains(secret), "{what} shows the proxy password");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_proxy_is_rotated_out_and_reported() {
    let logs = LogCapture::start();
    let mut p1 = HttpProxy::start("p1").await;
    let p2 = HttpProxy::start("p2").await;
    let mut rig = ScraperRig::start(Opts {
        proxies: vec![p1.url(), p2.url()],
        scraper: "tail_max_pages = 1".into(),
        extra: "[scraper.limits]\nproxy_failures_before_rotation = 2\n".into(),
        ..Opts::default()
    })
    .await;
    // The first proxy in the file takes the first account.
    assert_ok(&rig.wait_for_run(TARGET, 0, RUN_TIMEOUT).await);
    let view = rig.worker().handle.pool().view().await;
    assert_eq!(view_account(&view, "alice")["proxy"], p1.url(), "{view:#}");
    assert!(
        rig.site
            .requests()
            .iter()
            .all(|s| s.via_proxy.as_deref() == Some("p1")),
        "all through p1"
    );

    p1.stop();
    let from = rig.site.requests().len();
    // Failure 1: counted, the proxy stays.
    let since = rig.run_now(TARGET).await;
    let t = rig.wait_for_run(TARGET, since, RUN_TIMEOUT).await;
    assert_eq!(
        t.last_run.as_ref().unwrap().outcome,
        "proxy_failed",
        "{t:?}"
    );
    let view = rig.worker().handle.pool().view().await;
    let p = view_proxy(&view, &p1.url());
    assert_eq!(
        (p["state"].as_str(), p["failures"].as_u64()),
        (Some("healthy"), Some(1)),
        "{view:#}"
    );
    assert_eq!(view_account(&view, "alice")["proxy"], p1.url());

    // Failure 2: rotated out; the account is moved.
    let since = rig.run_now(TARGET).await;
    let t = rig.wait_for_run(TARGET, since, RUN_TIMEOUT).await;
    assert_eq!(
        t.last_run.as_ref().unwrap().outcome,
        "proxy_failed",
        "{t:?}"
    );
    let view = rig.worker().handle.pool().view().await;
    let p = view_proxy(&view, &p1.url());
    assert_eq!(p["state"], "failed", "{view:#}");
    assert_eq!(p["accounts"], serde_json::json!([]), "{view:#}");
    assert!(p["retry_at_ms"].as_i64().is_some(), "{view:#}");
    assert!(
        rig.site.requests()[from..].is_empty(),
        "nothing reached the site while the proxy was down (no direct fallback)"
    );

    // The next run goes through the other proxy, with the stored session.
    let since = rig.run_now(TARGET).await;
    let t = rig.wait_for_run(TARGET, since, RUN_TIMEOUT).await;
    assert_ok(&t);
    let after = &rig.site.requests()[from..];
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|s| s.via_proxy.as_deref() == Some("p2")),
        "after the rotation all through p2: {:?}",
        after
            .iter()
            .map(|s| (s.path.clone(), s.via_proxy.clone()))
            .collect::<Vec<_>>()
    );
    assert!(
        after.iter().all(|s| s.login_step.is_none()),
        "the session was carried over, no login"
    );
    assert!(after.iter().any(|s| s.account.as_deref() == Some("alice")));
    let view = rig.worker().handle.pool().view().await;
    assert_eq!(view_account(&view, "alice")["proxy"], p2.url(), "{view:#}");
    assert_eq!(view_proxy(&view, &p1.url())["state"], "failed");
    let healthy = view_proxy(&view, &p2.url());
    assert_eq!(healthy["state"], "healthy");
    assert_eq!(healthy["accounts"], serde_json::json!(["alice"]));
    rig.stop().await;
    let warning = format!(
        "proxy {} failed 2 times in a row; moving 1 account to other proxies",
        p1.url()
    );
    let text = logs.text();
    assert_eq!(
        text.matches(&warning).count(),
        1,
        "the rotation is logged once"
    );
}
