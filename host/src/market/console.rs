//! The console channel, minimal edition: prints each notification request on
//! `notify:requests` to standard output as it arrives, through consumer group `console`.
//! Entries are acked after printing; after a crash the un-acked ones print again on start
//! (at-least-once, which is the most a console can promise). The notify worker (SPEC §9)
//! replaces this with real channels and per-user preferences.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::storage::{NOTIFY_REQUESTS, Store, StreamEntry};

/// The consumer group the console printer reads `notify:requests` with.
pub const GROUP: &str = "console";
const CONSUMER: &str = "console-1";

pub async fn run(store: Arc<dyn Store>, mut shutdown: watch::Receiver<bool>) {
    let mut pending_done = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let read = if pending_done {
            store
                .read_new(NOTIFY_REQUESTS, GROUP, CONSUMER, 100, 500)
                .await
        } else {
            store
                .read_pending(NOTIFY_REQUESTS, GROUP, CONSUMER, 100)
                .await
        };
        match read {
            Ok(entries) => {
                if entries.is_empty() {
                    pending_done = true;
                    continue;
                }
                let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
                for e in &entries {
                    println!("{}", render(e));
                }
                if let Err(e) = store.ack(NOTIFY_REQUESTS, GROUP, &ids).await {
                    tracing::warn!(error = %e, "console: ack failed; entries will print again");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "console: reading notify:requests failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// One line per request: `ALERT [user] title — body`.
pub fn render(e: &StreamEntry) -> String {
    match serde_json::from_str::<Value>(&e.body) {
        Ok(v) => format!(
            "ALERT [{}] {} — {}",
            v["user_id"].as_str().unwrap_or("?"),
            v["title"].as_str().unwrap_or(""),
            v["body"].as_str().unwrap_or("")
        ),
        Err(_) => format!("ALERT (unreadable request {}): {}", e.key, e.body),
    }
}
