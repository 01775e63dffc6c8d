//! `price-digest`: a task that sends each configured user a digest of the configured
//! symbols: the latest price, its change since the previous digest, and a warning when a
//! price is stale.
//!
//! Capabilities (grant `prices = true`, `kv = true`, `notify = true`):
//! - `prices`: the latest price of each symbol;
//! - `kv`: the price each symbol had at the previous digest (`last:<SYMBOL>`), and the
//!   digest of each occurrence (`digest:<scheduled-at-ms>`, kept a week) so a retried run
//!   sends the very same text;
//! - `notify`: one notification per user, id `digest-<scheduled-at-ms>-<user>`, so a
//!   retried run makes no second notification.
//!
//! Settings (`[plugins.settings.price-digest]`), each overridable by the schedule's args
//! (`{"symbols": [...], "users": [...]}`): `symbols` (default `["BTCUSDT", "ETHUSDT"]`),
//! `users` (required), `channels` (default: each user's enabled channels).

use std::time::Duration;

use impressox_plugin_sdk::types::{TaskReport, TaskRun};
use impressox_plugin_sdk::{Task, config, export_task, kv, notify, prices};
use serde_json::{Value, json};

/// How long the digest of one occurrence is kept for retries of that occurrence.
const DIGEST_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The plugin.
pub struct PriceDigest;

/// One symbol as the digest shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub symbol: String,
    /// (price, stale, age in ms); none before the first price.
    pub latest: Option<(f64, bool, i64)>,
    /// The price at the previous digest.
    pub previous: Option<f64>,
}

/// The digest's text, one line per symbol (pure, tested natively).
pub fn render(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| match l.latest {
            None => format!("{}: no price yet", l.symbol),
            Some((price, stale, age_ms)) => {
                let change = match l.previous {
                    Some(prev) if prev != 0.0 => {
                        format!(
                            "{:+.2}% since the last digest",
                            (price - prev) / prev * 100.0
                        )
                    }
                    _ => "first digest".to_string(),
                };
                let stale = if stale {
                    format!(", stale: {} s old", age_ms / 1000)
                } else {
                    String::new()
                };
                format!("{} {price:.2} ({change}{stale})", l.symbol)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A list of strings from the args (first) or a setting (TOML text of an array).
fn list(args: &Value, key: &str, default: &[&str]) -> Result<Vec<String>, String> {
    let value = match args.get(key) {
        Some(v) => v.clone(),
        None => match config::get(key) {
            Some(text) => serde_json::from_str(&text).map_err(|_| {
                format!("setting `{key}` must be a list of strings, e.g. [\"BTCUSDT\"]")
            })?,
            None => json!(default),
        },
    };
    value
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .ok_or_else(|| format!("`{key}` must be a list of strings"))
}

impl Task for PriceDigest {
    const NAME: &'static str = "price-digest";
    const DESCRIPTION: &'static str = "digest of symbols' prices and changes, notified per user";

    fn run(run: TaskRun) -> Result<TaskReport, String> {
        let args: Value = match run.args_json.trim() {
            "" => json!({}),
            text => serde_json::from_str(text).map_err(|e| format!("args-json: {e}"))?,
        };
        let symbols = list(&args, "symbols", &["BTCUSDT", "ETHUSDT"])?;
        let users = list(&args, "users", &[])?;
        let channels = list(&args, "channels", &[])?;
        if users.is_empty() {
            return Err(
                "no users to notify: set `users` in [plugins.settings.price-digest]".into(),
            );
        }
        // A retry of this occurrence sends what the first attempt rendered.
        let digest_key = format!("digest:{}", run.scheduled_at_ms);
        let text = match kv::get_string(&digest_key)? {
            Some(text) => text,
            None => {
                let mut lines = Vec::new();
                for symbol in &symbols {
                    let latest = prices::latest(symbol)?;
                    let last_key = format!("last:{}", symbol.to_ascii_uppercase());
                    let previous = kv::get_string(&last_key)?.and_then(|p| p.parse().ok());
                    if let Some(p) = latest.as_ref().filter(|p| !p.stale) {
                        kv::set(&last_key, p.price.to_string().as_bytes())?;
                    }
                    lines.push(Line {
                        symbol: symbol.to_ascii_uppercase(),
                        latest: latest.map(|p| (p.price, p.stale, p.age_ms)),
                        previous,
                    });
                }
                let text = render(&lines);
                kv::set_with_ttl(&digest_key, text.as_bytes(), DIGEST_KEPT)?;
                text
            }
        };
        let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
        for user in &users {
            let id = format!("digest-{}-{user}", run.scheduled_at_ms);
            let mut n = notify::notification(&id, user, "price_digest", "Price digest");
            n.body = text.clone();
            notify::enqueue(&n, &channels)?;
        }
        Ok(TaskReport {
            summary: format!(
                "digest of {} symbols sent to {} users",
                symbols.len(),
                users.len()
            ),
            data_json: json!({"text": text, "users": users}).to_string(),
        })
    }
}

export_task!(PriceDigest);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_change_staleness_and_missing_prices() {
        let text = render(&[
            Line {
                symbol: "BTCUSDT".into(),
                latest: Some((101.0, false, 500)),
                previous: Some(100.0),
            },
            Line {
                symbol: "ETHUSDT".into(),
                latest: Some((50.0, true, 120_000)),
                previous: None,
            },
            Line {
                symbol: "SOLUSDT".into(),
                latest: None,
                previous: Some(1.0),
            },
        ]);
        assert_eq!(
            text,
            "BTCUSDT 101.00 (+1.00% since the last digest)\n\
             ETHUSDT 50.00 (first digest, stale: 120 s old)\n\
             SOLUSDT: no price yet"
        );
    }
}
