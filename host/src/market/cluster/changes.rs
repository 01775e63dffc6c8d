//! Rule changes made through any host reach the host evaluating the rule: every create,
//! patch and delete is announced on `market:rules:changes` (`Store::rule_changed`), and
//! every host follows that stream (a plain `XREAD`, no consumer group: each host needs
//! every change) and hands the rule as it is stored now to its engine, which applies it
//! if it owns the rule's partition (and remembers it briefly otherwise, for a partition
//! it is taking over at that moment).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, oneshot, watch};

use crate::market::input::Input;
use crate::market::rules::RuleRecord;
use crate::storage::{RULE_CHANGES, Store};

/// Follows the change stream from where it was when the host started.
pub struct Changes {
    conn: ConnectionManager,
    /// The last entry id handed on.
    last: String,
}

impl Changes {
    /// Connect and note the stream's end: changes before it are in the rules each
    /// partition's owner loads when it takes the partition.
    pub async fn connect(url: &str) -> Result<Changes> {
        let client =
            redis::Client::open(url).with_context(|| format!("invalid redis_url `{url}`"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(None);
        let mut conn = client
            .get_connection_manager_with_config(config)
            .await
            .context("cannot open a Redis connection for rule changes")?;
        let newest: Value = redis::cmd("XREVRANGE")
            .arg(RULE_CHANGES)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let last = match &newest {
            Value::Array(items) => items
                .first()
                .and_then(|e| match e {
                    Value::Array(parts) => parts.first(),
                    _ => None,
                })
                .and_then(|id| redis::from_redis_value_ref::<String>(id).ok()),
            _ => None,
        }
        .unwrap_or_else(|| "0-0".into());
        Ok(Changes { conn, last })
    }

    /// Hand every change to the engine until `shutdown`.
    pub async fn run(
        mut self,
        store: Arc<dyn Store>,
        tx: mpsc::Sender<Input>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let read = tokio::select! {
                r = self.read() => r,
                _ = shutdown.changed() => return,
            };
            match read {
                Ok(changes) => {
                    for (id, keep_firing) in changes {
                        if !apply(store.as_ref(), &tx, &id, keep_firing).await {
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "market cluster: reading rule changes failed; retrying");
                    if crate::util::stopped_during(&mut shutdown, Duration::from_millis(500)).await
                    {
                        return;
                    }
                }
            }
        }
    }

    /// The next changes (rule id, keep firing), waiting up to a second for one.
    async fn read(&mut self) -> Result<Vec<(String, bool)>> {
        let reply: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(1000)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(RULE_CHANGES)
            .arg(&self.last)
            .query_async(&mut self.conn)
            .await?;
        let mut out = Vec::new();
        for (id, fields) in stream_entries(&reply) {
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            out.push((field("id"), field("keep") == "1"));
            self.last = id;
        }
        Ok(out)
    }
}

/// The entries of an `XREAD` reply of one stream: (id, fields).
fn stream_entries(reply: &Value) -> Vec<(String, Vec<(String, String)>)> {
    let text = |v: &Value| redis::from_redis_value_ref::<String>(v).unwrap_or_default();
    let mut out = Vec::new();
    let streams: Vec<&Value> = match reply {
        Value::Array(s) => s.iter().collect(),
        Value::Map(m) => m.iter().map(|(_, v)| v).collect(),
        _ => return out,
    };
    for s in streams {
        // RESP2: [name, entries]; RESP3 maps give the entries directly.
        let entries = match s {
            Value::Array(pair) if pair.len() == 2 && matches!(pair[1], Value::Array(_)) => &pair[1],
            other => other,
        };
        let Value::Array(entries) = entries else {
            continue;
        };
        for e in entries {
            let Value::Array(parts) = e else { continue };
            let (Some(id), Some(Value::Array(kv))) = (parts.first(), parts.get(1)) else {
                continue;
            };
            let fields = kv
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| (text(&c[0]), text(&c[1])))
                .collect();
            out.push((text(id), fields));
        }
    }
    out
}

/// Hand one change to the engine: the rule as stored now, or its removal. False once the
/// engine is gone.
async fn apply(store: &dyn Store, tx: &mpsc::Sender<Input>, id: &str, keep_firing: bool) -> bool {
    let stored = loop {
        match store.get_rule(id).await {
            Ok(v) => break v,
            Err(e) => {
                tracing::warn!(rule = %id, error = %e, "market cluster: reading a changed rule failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let (done, _wait) = oneshot::channel();
    let input = match stored.as_deref().map(serde_json::from_str::<RuleRecord>) {
        Some(Ok(rule)) => Input::Upsert {
            rule: Box::new(rule),
            keep_firing,
            done,
        },
        Some(Err(e)) => {
            tracing::warn!(rule = %id, error = %e, "market cluster: changed rule is stored unreadably; skipped");
            return true;
        }
        None => Input::Remove {
            id: id.to_string(),
            done,
        },
    };
    tx.send(input).await.is_ok()
}
