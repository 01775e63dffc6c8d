//! Steps: navigation and scroll captures, the login redirect, blocking, page recycling, forms.

use std::time::{Duration, Instant};

use impressox_browser::{ContextSpec, Expect};

use crate::harness::{chromium_permit, config, start, tweets};
use crate::site::Site;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_graphql_bodies_and_headers() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let pool = start(config(dir.path())).await;
    let ctx = pool.context(ContextSpec::default()).await.unwrap();
    let mut page = ctx.lease().await.unwrap();

    let cap = page
        .open(&site.url("/u/alice"), tweets(1), true)
        .await
        .unwrap();
    assert!(!cap.timed_out && !cap.end_of_timeline);
    assert_eq!(cap.url, site.url("/u/alice"));
    assert_eq!(cap.responses.len(), 1, "{:?}", cap.responses);
    let r = &cap.responses[0];
    assert!(
        r.url.contains("/i/api/graphql/Q1/UserTweets?variables="),
        "{}",
        r.url
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains("UserTweets page 1 item-10"), "{}", r.body);
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("x-rate-limit-remaining"), Some("499"));
    assert_eq!(header("x-rate-limit-reset"), Some("1900000000"));
    let html = cap.html.unwrap();
    assert!(
        html.contains("data-testid=\"tweet\""),
        "the page rendered: {html}"
    );
    assert!(cap.captured_at_ms > 1_700_000_000_000);
    // Images load when nothing is blocked (the blocking test relies on this).
    assert_eq!(site.seen_for("/img/").len(), 1);

    // A second navigation captures its own responses only.
    let again = page
        .open(&site.url("/u/bob"), tweets(1), false)
        .await
        .unwrap();
    assert_eq!(again.responses.len(), 1);
    assert!(again.html.is_none());
    drop(page);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scroll_more_captures_the_next_page_and_detects_the_end() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let pool = start(config(dir.path())).await;
    let ctx = pool.context(ContextSpec::default()).await.unwrap();
    let mut page = ctx.lease().await.unwrap();

    page.open(&site.url("/u/alice"), tweets(1), false)
        .await
        .unwrap();
    let second = page.scroll_more(tweets(1), false).await.unwrap();
    assert!(!second.end_of_timeline && !second.timed_out);
    assert_eq!(second.responses.len(), 1, "{:?}", second.responses);
    assert!(second.responses[0].body.contains("page 2 item-1"));

    let started = Instant::now();
    let end = page.scroll_more(tweets(1), false).await.unwrap();
    assert!(end.end_of_timeline, "{end:?}");
    assert!(end.responses.is_empty());
    // Two attempts of 700 ms each, not the 15 s step timeout.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(site.seen_for("/i/api/graphql/").len(), 2);
    drop(page);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_login_ends_the_step_with_the_login_url() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let pool = start(config(dir.path())).await;
    let ctx = pool.context(ContextSpec::default()).await.unwrap();
    let mut page = ctx.lease().await.unwrap();

    let started = Instant::now();
    let cap = page
        .open(&site.url("/redirect"), tweets(1), false)
        .await
        .unwrap();
    assert_eq!(cap.url, site.url("/login"));
    assert!(!cap.timed_out, "ended at the login page, not by timeout");
    assert!(cap.responses.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(page);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_whose_operation_never_comes_times_out_with_what_arrived() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let mut cfg = config(dir.path());
    cfg.step_timeout = Duration::from_secs(2);
    let pool = start(cfg).await;
    let ctx = pool.context(ContextSpec::default()).await.unwrap();
    let mut page = ctx.lease().await.unwrap();
    let expect = Expect {
        operations: vec!["UserTweets".into(), "UserByScreenName".into()],
        min_new: 1,
    };
    let cap = page
        .open(&site.url("/u/alice"), expect, false)
        .await
        .unwrap();
    assert!(cap.timed_out);
    assert_eq!(cap.responses.len(), 1, "UserTweets arrived and is kept");
    drop(page);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_images_never_reach_the_server() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let mut cfg = config(dir.path());
    cfg.block_resources = vec!["Image".into(), "Font".into()];
    let pool = start(cfg).await;
    let ctx = pool.context(ContextSpec::default()).await.unwrap();
    let mut page = ctx.lease().await.unwrap();
    let cap = page
        .open(&site.url("/u/alice"), tweets(1), false)
        .await
        .unwrap();
    // Everything else was continued: the page and its GraphQL call went through.
    assert_eq!(cap.responses.len(), 1);
    let again = page.scroll_more(tweets(1), false).await.unwrap();
    assert_eq!(again.responses.len(), 1);
    assert!(
        site.seen_for("/img/").is_empty(),
        "{:?}",
        site.seen_for("/img/")
    );
    drop(page);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_is_replaced_after_max_uses() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let mut cfg = config(dir.path());
    cfg.page_max_uses = 2;
    cfg.pages_per_account = 1;
    let pool = start(cfg).await;
    let ctx = pool.context(ContextSpec::default()).await.unwrap();
    let url = site.url("/u/alice");

    let tab_of_last = || {
        site.seen_for("/i/api/graphql/")
            .last()
            .and_then(|s| s.tab.clone())
            .expect("the page sent its tab id")
    };
    let mut page = ctx.lease().await.unwrap();
    page.open(&url, tweets(1), false).await.unwrap();
    let first = tab_of_last();
    drop(page);
    // Returned after one use: the same page (tab) serves the next lease.
    let mut page = ctx.lease().await.unwrap();
    page.open(&url, tweets(1), false).await.unwrap();
    assert_eq!(tab_of_last(), first);
    drop(page);
    // Two navigations done: the next lease gets a fresh page.
    let mut page = ctx.lease().await.unwrap();
    page.open(&url, tweets(1), false).await.unwrap();
    assert_ne!(tab_of_last(), first);
    drop(page);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_helpers_type_press_enter_click_and_read() {
    let _gate = chromium_permit().await;
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start().await;
    let pool = start(config(dir.path())).await;
    let ctx = pool.context(ContextSpec::default()).await.unwrap();
    let mut page = ctx.lease().await.unwrap();
    page.open(&site.url("/form"), Expect::default(), false)
        .await
        .unwrap();

    let found = page
        .wait_for_any(
            &["#nope", "input[autocomplete=\"username\"]"],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(found, Some(1));
    assert_eq!(
        page.wait_for_any(&["#greeting"], Duration::from_millis(300))
            .await
            .unwrap(),
        None
    );
    page.type_into("#name", "Ada").await.unwrap();
    page.press_enter("#name").await.unwrap();
    assert_eq!(
        page.wait_for_any(&["#greeting"], Duration::from_secs(5))
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        page.inner_text("#greeting").await.unwrap().as_deref(),
        Some("Hello Ada")
    );
    page.click("#go").await.unwrap();
    assert_eq!(
        page.inner_text("#out").await.unwrap().as_deref(),
        Some("clicked")
    );
    assert_eq!(page.inner_text("#absent").await.unwrap(), None);
    let e = page.click("#absent").await.unwrap_err();
    assert!(e.to_string().contains("#absent"), "{e}");
    assert_eq!(page.current_url().await.unwrap(), site.url("/form"));
    assert!(page.html().await.unwrap().contains("id=\"greeting\""));
    drop(page);
    pool.shutdown().await;
}
