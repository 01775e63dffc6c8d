//! The console's buttons, pressed in Chromium: each goes through the API's own handler.

use std::time::Duration;

use super::rig::{Chrome, ConsoleRig, click_and_wait, text};

/// Replay on a notification's dead letter: delivered, once, to the Telegram stand-in, and
/// gone from the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_dead_letter_delivers_it_exactly_once() {
    let rig = ConsoleRig::start(None).await;
    let dead = rig.dead_letter("console-replay-1").await;
    let chrome = Chrome::start().await;
    let page = chrome.open(&format!("{}/ui/dead-letters", rig.base)).await;
    let row = format!("tr[data-dead-letter=\"{dead}\"]");
    click_and_wait(&page, &format!("{row} form[action*=\"/replay\"] button")).await;
    let body = text(&page).await;
    assert!(body.contains(&format!("replayed {dead}")), "{body}");
    let view = rig
        .notify
        .wait_status("console-replay-1", &["delivered"], Duration::from_secs(30))
        .await;
    assert_eq!(view["deliveries"][0]["replays"], 1, "{view}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rig.notify.tg.messages_to("4242").len(), 1);
    // The list no longer shows it.
    let page = chrome.open(&format!("{}/ui/dead-letters", rig.base)).await;
    assert!(page.find_elements(&row).await.unwrap().is_empty());
    chrome.stop().await;
}

/// Reload on the plugins page: the API's reload runs (a rescan of the folder picks up a
/// plugin dropped in since), and the page says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_of_the_plugins_picks_up_a_new_file() {
    let rig = ConsoleRig::start(None).await;
    let chrome = Chrome::start().await;
    let page = chrome.open(&format!("{}/ui/plugins", rig.base)).await;
    assert!(!text(&page).await.contains("echo-task"));
    rig.notify
        .host
        .install(test_artifacts::ECHO_TASK, "echo-task.wasm");
    click_and_wait(&page, "form[action=\"/ui/plugins/reload\"] button").await;
    let body = text(&page).await;
    assert!(body.contains("reloaded:"), "{body}");
    assert!(
        page.find_element("tr[data-plugin=\"echo-task\"]")
            .await
            .is_ok(),
        "{body}"
    );

    // Disable and enable a rule from the rules page (the API's PATCH).
    rig.rules(2, None).await;
    let page = chrome.open(&format!("{}/ui/rules", rig.base)).await;
    click_and_wait(&page, "tr[data-rule=\"r-0001\"] button").await;
    assert!(text(&page).await.contains("rule r-0001 disabled"));
    let rule = rig.notify.store.get_rule("r-0001").await.unwrap().unwrap();
    assert!(rule.contains("\"enabled\":false"), "{rule}");
    click_and_wait(&page, "tr[data-rule=\"r-0001\"] button").await;
    assert!(text(&page).await.contains("rule r-0001 enabled"));
    chrome.stop().await;
}
