//! Every page of the console loads in Chromium with real data, and is saved as a
//! screenshot; the rules page pages and filters through the stores' indexes.

use super::rig::{Chrome, ConsoleRig, click_and_wait, screenshot, text};

/// The menu as the console draws it (`api::console::NAV`), page by page.
const PAGES: &[(&str, &str)] = &[
    ("/ui", "Overview"),
    ("/ui/plugins", "Plugins"),
    ("/ui/rules", "Rules"),
    ("/ui/prices", "Prices"),
    ("/ui/notifications", "Notifications"),
    ("/ui/dead-letters", "Dead letters"),
    ("/ui/schedules", "Schedules & listeners"),
    ("/ui/scraper", "Scraper"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_loads_with_real_data_and_is_screenshotted() {
    assert_eq!(
        PAGES,
        impressox_host::api::console::NAV,
        "a page was added to the menu: test it here"
    );
    let rig = ConsoleRig::start(None).await;
    rig.rules(120, None).await;
    rig.prices(200).await;
    let dead = rig.dead_letter("console-dl-1").await;
    let shots = tempfile::Builder::new()
        .prefix("console-screenshots-")
        .tempdir()
        .unwrap();
    let chrome = Chrome::start().await;
    for (path, title) in PAGES {
        let page = chrome.open(&format!("{}{path}", rig.base)).await;
        let h1 = page
            .find_element("h1")
            .await
            .unwrap()
            .inner_text()
            .await
            .unwrap()
            .unwrap_or_default();
        assert_eq!(h1, *title, "{path}");
        let body = text(&page).await;
        match *path {
            "/ui" => {
                assert!(body.contains("plugins active"), "{body}");
                // 120 rules: the index's size, not a scan.
                let rules = page.find_element("#rules-count").await.unwrap();
                assert_eq!(rules.inner_text().await.unwrap().unwrap(), "120");
                // The first overview waits only briefly for the document count (`…`
                // while it is taken); the page's 5-second poll brings it.
                let mut dead_n = String::new();
                for _ in 0..60 {
                    let el = page.find_element("#dead-notifications").await.unwrap();
                    dead_n = el.inner_text().await.unwrap().unwrap();
                    if dead_n != "…" {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                assert_eq!(dead_n, "1");
                assert!(body.contains("notify:requests"), "{body}");
            }
            "/ui/plugins" => {
                for name in ["telegram-markdown", "plain-formatter"] {
                    assert!(body.contains(name), "{body}");
                }
                assert!(body.contains("active"), "{body}");
            }
            "/ui/rules" => {
                assert!(body.contains("r-0000"), "{body}");
                assert!(body.contains("rules 1–50"), "{body}");
            }
            "/ui/prices" => {
                assert!(
                    body.contains("BTCUSDT") && body.contains("ETHUSDT"),
                    "{body}"
                );
                let svg = page.find_element("svg.chart path").await.unwrap();
                let d = svg.attribute("d").await.unwrap().unwrap();
                assert_eq!(d.matches(" L").count(), 199, "one segment a point");
            }
            "/ui/dead-letters" => {
                assert!(body.contains(&dead), "{body}");
                assert!(body.contains("Forbidden"), "{body}");
            }
            "/ui/schedules" => assert!(body.contains("No schedules"), "{body}"),
            "/ui/scraper" => assert!(body.contains("x-scraper worker is not running"), "{body}"),
            _ => {}
        }
        let file = shots.path().join(format!(
            "{}.png",
            path.trim_start_matches('/').replace('/', "-")
        ));
        screenshot(&page, &file).await;
        page.close().await.unwrap();
    }
    eprintln!("console screenshots in {}", shots.path().display());

    // A notification by id, with its channel's attempt.
    let page = chrome
        .open(&format!("{}/ui/notifications?id=console-dl-1", rig.base))
        .await;
    let body = text(&page).await;
    assert!(body.contains("telegram"), "{body}");
    assert!(
        body.contains("Forbidden: bot was blocked by the user"),
        "{body}"
    );
    screenshot(&page, &shots.path().join("ui-notification.png")).await;

    // The rules page: next page, then a filter by user and symbol.
    let page = chrome.open(&format!("{}/ui/rules", rig.base)).await;
    click_and_wait(&page, "#next").await;
    let body = text(&page).await;
    assert!(
        body.contains("rules 51–100") && body.contains("r-0050"),
        "{body}"
    );
    assert!(!body.contains("r-0049"), "{body}");
    let page = chrome
        .open(&format!("{}/ui/rules?user_id=u1&symbol=ethusdt", rig.base))
        .await;
    let rows = page.find_elements("tr[data-rule]").await.unwrap();
    // u1 has rules 1, 5, 9, ...: every one on ETHUSDT; 30 of them.
    assert_eq!(rows.len(), 30);
    let page = chrome
        .open(&format!("{}/ui/rules?user_id=u1&symbol=BTCUSDT", rig.base))
        .await;
    assert!(text(&page).await.contains("No rules here."));
    chrome.stop().await;
    drop(shots);
}

/// Not a test of behaviour: renders the overview with some data into
/// `docs/console-overview.png`, the picture the README shows. Run by hand:
/// `cargo test --release --workspace --test all console::pages::readme_screenshot -- --ignored`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn readme_screenshot() {
    let rig = ConsoleRig::start(None).await;
    rig.rules(40, None).await;
    rig.prices(300).await;
    rig.dead_letter("readme-dl-1").await;
    let chrome = Chrome::start().await;
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let page = chrome.open(&format!("{}/ui", rig.base)).await;
    screenshot(&page, &out.join("console-overview.png")).await;
    let page = chrome
        .open(&format!("{}/ui/prices?symbol=BTCUSDT", rig.base))
        .await;
    screenshot(&page, &out.join("console-prices.png")).await;
    chrome.stop().await;
}
