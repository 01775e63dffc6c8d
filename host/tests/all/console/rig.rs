//! A host for the console tests, and a Chromium to drive it.

use std::path::Path;
use std::time::Duration;

use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures_util::StreamExt;
use impressox_host::api::Services;
use impressox_host::market::rule_limits::RulePolicy;
use impressox_host::storage::{MarketCommit, PricePoint};
use impressox_host::util::now_ms;
use serde_json::json;
use tokio::sync::SemaphorePermit;

use crate::market::rig::Backend;
use crate::notify::rig::{Docs, NotifyRig, Opts};
use crate::servers::chromium::{browser_permit, chromium_path};

/// The notify rig on Redis and MongoDB, and a console router of its own (with `token`).
pub struct ConsoleRig {
    pub notify: NotifyRig,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    server: tokio::task::JoinHandle<()>,
}

impl ConsoleRig {
    pub async fn start(token: Option<&str>) -> ConsoleRig {
        let notify = NotifyRig::start(Opts {
            storage: Some(Backend::Redis),
            docs: Some(Docs::Mongo),
            ..Default::default()
        })
        .await;
        let listener = impressox_host::api::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = impressox_host::api::router_with(
            notify.host.runtime.clone(),
            None,
            token.map(str::to_string),
            Services {
                store: Some(notify.store.clone()),
                docs: Some(notify.docs.clone()),
                notify: notify.worker.as_ref().map(|w| w.handle.clone()),
                rules: RulePolicy::from_config(&notify.host.config.market),
                ..Default::default()
            },
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        ConsoleRig {
            notify,
            base,
            server,
        }
    }

    /// `n` rules through the API (users `u0`..`u3`, symbols BTCUSDT/ETHUSDT).
    pub async fn rules(&self, n: usize, token: Option<&str>) {
        let http = reqwest::Client::new();
        for i in 0..n {
            let symbol = if i % 2 == 0 { "BTCUSDT" } else { "ETHUSDT" };
            let mut req = http
                .post(format!("{}/api/v1/rules", self.base))
                .json(&json!({
                    "id": format!("r-{i:04}"),
                    "user_id": format!("u{}", i % 4),
                    "symbol": symbol,
                    "condition": {"op": "above", "value": 50_000 + i},
                    "trigger": {"mode": "once"},
                    "note": format!("rule {i}"),
                }));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        }
    }

    /// A price history of `points` for BTCUSDT and ETHUSDT, the latest last.
    pub async fn prices(&self, points: usize) {
        let now = now_ms();
        let mut commit = MarketCommit::default();
        for (symbol, base) in [("BTCUSDT", 70_000.0), ("ETHUSDT", 3_500.0)] {
            for i in 0..points {
                let t = i as f64 / 7.0;
                commit.history.push(PricePoint {
                    symbol: symbol.into(),
                    price: base * (1.0 + 0.01 * t.sin() + 0.0004 * i as f64),
                    ts_ms: now - (points - i) as i64 * 1000,
                    source: "binance".into(),
                });
            }
            commit.latest.push(commit.history.last().unwrap().clone());
        }
        self.notify.store.commit_market(&commit).await.unwrap();
    }

    /// A notification whose Telegram delivery is refused (the bot is blocked): its dead
    /// letter's id.
    pub async fn dead_letter(&self, id: &str) -> String {
        use crate::notify::rig::{first_delivery, request};
        use crate::servers::telegram::Reply;
        self.notify
            .put_prefs(
                "u1",
                json!({"channels": {"telegram": {"chat_id": "4242"}}, "enabled": ["telegram"]}),
            )
            .await;
        self.notify.tg.reply_next(Some("4242"), [Reply::Forbidden]);
        self.notify.notify(request(id, "u1", "blocked", "")).await;
        let view = self
            .notify
            .wait_status(id, &["failed"], Duration::from_secs(30))
            .await;
        first_delivery(&view)["dead_letter_id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for ConsoleRig {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A headless Chromium (one of the harness's browser turns), its handler task and profile.
pub struct Chrome {
    pub browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
    _permit: SemaphorePermit<'static>,
}

impl Chrome {
    pub async fn start() -> Chrome {
        let permit = browser_permit().await;
        let profile = tempfile::tempdir().unwrap();
        let config = BrowserConfig::builder()
            .chrome_executable(chromium_path())
            .user_data_dir(profile.path())
            .no_sandbox()
            .window_size(1280, 900)
            .viewport(None)
            .arg("disable-gpu")
            .arg(("disable-features", "NetworkTimeServiceQuerying"))
            .launch_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let (browser, mut events) = Browser::launch(config).await.unwrap();
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Chrome {
            browser,
            handler,
            _profile: profile,
            _permit: permit,
        }
    }

    /// A new tab at `url`, loaded.
    pub async fn open(&self, url: &str) -> Page {
        let page = self.browser.new_page(url).await.unwrap();
        page.wait_for_navigation().await.unwrap();
        page
    }

    pub async fn stop(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// The page's visible text.
pub async fn text(page: &Page) -> String {
    page.evaluate("document.body.innerText")
        .await
        .unwrap()
        .into_value::<String>()
        .unwrap()
}

/// Click the element `selector` and wait for the document that follows (a form's
/// answer): the old document is marked first, so a navigation that has not started yet
/// when the click returns is still waited for.
pub async fn click_and_wait(page: &Page, selector: &str) {
    page.evaluate("window.__impressoxOld = true").await.unwrap();
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("no `{selector}` on the page: {e}"))
        .click()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let fresh = page
            .evaluate(
                "typeof window.__impressoxOld === 'undefined' && document.readyState === 'complete'",
            )
            .await
            .ok()
            .and_then(|v| v.into_value::<bool>().ok())
            .unwrap_or(false);
        if fresh {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no new page after clicking `{selector}`"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A full-page PNG of `page` at `path`.
pub async fn screenshot(page: &Page, path: &Path) {
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), path)
        .await
        .unwrap();
    assert!(
        std::fs::metadata(path).unwrap().len() > 1000,
        "{}",
        path.display()
    );
}
