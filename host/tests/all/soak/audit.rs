//! An independent record of every request that entered `notify:requests`: a consumer
//! group of the soak's own (`soak-audit`) read with plain Redis commands, not through
//! the host's store code.
//!
//! The group is created before the market monitor starts, so it sees every entry: a
//! stream entry is deleted only once every group acknowledged it, and this reader
//! acknowledges right after noting the entry. Redis restarts are ridden out by
//! reconnecting; after a reconnect the reader first takes its own pending entries again
//! (a read whose reply was lost in the outage), then new ones. An entry id read twice
//! counts once; the same idempotency key under two entry ids is a duplicate enqueue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::AsyncConnectionConfig;
use redis::streams::StreamReadReply;
use tokio::sync::watch;

pub const STREAM: &str = impressox_host::storage::NOTIFY_REQUESTS;
pub const GROUP: &str = "soak-audit";

/// What the reader saw.
#[derive(Default)]
pub struct Seen {
    /// Stream entry id → idempotency key (the entry's `key` field).
    pub entries: HashMap<String, String>,
    /// Reads that failed (Redis down); each is followed by a reconnect.
    pub errors: u64,
}

pub struct Audit {
    pub seen: Arc<Mutex<Seen>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Create the group (from the stream's start; the stream is created if missing).
pub async fn create_group(client: &redis::Client) -> redis::RedisResult<()> {
    let mut c = client.get_multiplexed_async_connection().await?;
    let r: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut c)
        .await;
    match r {
        Err(e) if e.code() != Some("BUSYGROUP") => Err(e),
        _ => Ok(()),
    }
}

impl Audit {
    pub fn start(client: redis::Client) -> Audit {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(read_loop(client, seen.clone(), stopped));
        Audit { seen, stop, task }
    }

    /// Read until the group has nothing new left (call once no producer runs), then stop.
    pub async fn finish(self) -> Arc<Mutex<Seen>> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.seen
    }
}

async fn read_loop(client: redis::Client, seen: Arc<Mutex<Seen>>, stop: watch::Receiver<bool>) {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    'connect: loop {
        let mut c = match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(c) => c,
            Err(_) => {
                seen.lock().errors += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        // Own pending entries first (a reply lost in an outage), then new ones.
        let mut from = "0";
        loop {
            let stopping = *stop.borrow();
            let mut cmd = redis::cmd("XREADGROUP");
            cmd.arg("GROUP")
                .arg(GROUP)
                .arg("auditor")
                .arg("COUNT")
                .arg(1000);
            if from == ">" && !stopping {
                cmd.arg("BLOCK").arg(500);
            }
            cmd.arg("STREAMS").arg(STREAM).arg(from);
            let reply: Option<StreamReadReply> = match cmd.query_async(&mut c).await {
                Ok(r) => r,
                Err(_) => {
                    seen.lock().errors += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue 'connect;
                }
            };
            let ids: Vec<(String, String)> = reply
                .unwrap_or_default()
                .keys
                .into_iter()
                .flat_map(|k| k.ids)
                .map(|e| {
                    let key = e.get::<String>("key").unwrap_or_default();
                    (e.id, key)
                })
                .collect();
            if ids.is_empty() {
                if from == "0" {
                    from = ">";
                    continue;
                }
                if stopping {
                    return;
                }
                continue;
            }
            let acked: redis::RedisResult<()> = redis::cmd("XACK")
                .arg(STREAM)
                .arg(GROUP)
                .arg(ids.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>())
                .query_async(&mut c)
                .await;
            seen.lock().entries.extend(ids);
            if acked.is_err() {
                seen.lock().errors += 1;
                continue 'connect;
            }
        }
    }
}
