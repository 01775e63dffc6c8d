//! The Redis backend (Redis 7, `redis` crate, tokio).
//!
//! Layout: `market:rules` (hash id → JSON), `market:prices:latest` (hash symbol → JSON),
//! `market:prices:history:<symbol>` (list, newest first, trimmed to `history_len`),
//! `market:checkpoints` (hash), streams under their own names (`notify:requests`) with
//! idempotency keys `<stream>:idem:<key>` that expire after `idempotency_ttl_secs`,
//! leases `lease:<name>`, and one hash `kv:<namespace>` per key-value namespace.
//!
//! Commands go through a [`ConnectionManager`], which reconnects after a Redis restart;
//! a command that fails during the outage is an error the caller retries. Blocking
//! stream reads use connections of their own, so a `BLOCK` never stalls other commands
//! behind it on the multiplexed connection.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use async_trait::async_trait;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamPendingCountReply, StreamReadReply,
};
use redis::{AsyncCommands, Client, Script, Value};

use super::{MarketCommit, PricePoint, Store, StoreLimits, StreamEntry};

const RULES: &str = "market:rules";
const LATEST: &str = "market:prices:latest";
const CHECKPOINTS: &str = "market:checkpoints";

fn history_key(symbol: &str) -> String {
    format!("market:prices:history:{symbol}")
}

fn idempotency_key(stream: &str, key: &str) -> String {
    format!("{stream}:idem:{key}")
}

/// SET NX the idempotency key and XADD in one atomic step: either both happen or neither.
const ENQUEUE_ONCE: &str = r"
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'key', ARGV[3], 'body', ARGV[4])
end
return false
";

/// Take or renew a lease: set when free or already ours.
const ACQUIRE_LEASE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] or (not cur and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Drop a lease only if it is ours.
const RELEASE_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
";

fn lease_key(name: &str) -> String {
    format!("lease:{name}")
}

fn kv_key(ns: &str) -> String {
    format!("kv:{ns}")
}

/// The Redis store.
pub struct RedisStore {
    client: Client,
    conn: ConnectionManager,
    /// Idle connections for blocking reads.
    blocking: Mutex<Vec<ConnectionManager>>,
    limits: StoreLimits,
    enqueue_once: Script,
}

impl RedisStore {
    /// Connect; fails if Redis cannot be reached now (a later outage is survived).
    pub async fn connect(url: &str, limits: StoreLimits) -> Result<RedisStore> {
        let client = Client::open(url).with_context(|| format!("invalid redis_url `{url}`"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .with_context(|| format!("cannot connect to Redis at {url}"))?;
        Ok(RedisStore {
            client,
            conn,
            blocking: Mutex::new(Vec::new()),
            limits,
            enqueue_once: Script::new(ENQUEUE_ONCE),
        })
    }

    async fn blocking_conn(&self) -> Result<ConnectionManager> {
        if let Some(c) = self.blocking.lock().pop() {
            return Ok(c);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(None);
        self.client
            .get_connection_manager_with_config(config)
            .await
            .context("cannot open a Redis connection for stream reads")
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut c)
            .await;
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: Option<u64>,
        from: &str,
    ) -> Result<StreamReadReply> {
        let mut c = self.blocking_conn().await?;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(ms) = block_ms {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS").arg(stream).arg(from);
        let mut result: redis::RedisResult<Option<StreamReadReply>> = cmd.query_async(&mut c).await;
        if matches!(&result, Err(e) if e.code() == Some("NOGROUP")) {
            self.ensure_group(stream, group).await?;
            result = cmd.query_async(&mut c).await;
        }
        // Only a connection that answered goes back to the pool.
        let reply = result?;
        self.blocking.lock().push(c);
        Ok(reply.unwrap_or_default())
    }

    async fn delivery_counts(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<std::collections::HashMap<String, u64>> {
        let mut c = self.conn.clone();
        let reply: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(stream)
            .arg(group)
            .arg("-")
            .arg("+")
            .arg(count)
            .arg(consumer)
            .query_async(&mut c)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|p| (p.id, p.times_delivered as u64))
            .collect())
    }
}

fn field(map: &std::collections::HashMap<String, Value>, name: &str) -> Result<String> {
    match map.get(name) {
        Some(v) => redis::from_redis_value_ref::<String>(v).map_err(|e| anyhow!("{e}")),
        None => Ok(String::new()),
    }
}

fn decode_point(json: &str) -> Result<PricePoint> {
    serde_json::from_str(json).context("corrupt price record in Redis")
}

#[async_trait]
impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<()> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    async fn put_rule(&self, id: &str, json: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: () = c.hset(RULES, id, json).await?;
        Ok(())
    }

    async fn get_rule(&self, id: &str) -> Result<Option<String>> {
        let mut c = self.conn.clone();
        Ok(c.hget(RULES, id).await?)
    }

    async fn list_rules(&self) -> Result<Vec<String>> {
        let mut c = self.conn.clone();
        Ok(c.hvals(RULES).await?)
    }

    async fn delete_rule(&self, id: &str) -> Result<bool> {
        let mut c = self.conn.clone();
        let n: u64 = c.hdel(RULES, id).await?;
        Ok(n > 0)
    }

    async fn latest_price(&self, symbol: &str) -> Result<Option<PricePoint>> {
        let mut c = self.conn.clone();
        let v: Option<String> = c.hget(LATEST, symbol).await?;
        v.as_deref().map(decode_point).transpose()
    }

    async fn latest_prices(&self) -> Result<Vec<PricePoint>> {
        let mut c = self.conn.clone();
        let v: Vec<String> = c.hvals(LATEST).await?;
        v.iter().map(|s| decode_point(s)).collect()
    }

    async fn price_history(&self, symbol: &str, limit: usize) -> Result<Vec<PricePoint>> {
        let mut c = self.conn.clone();
        let stop = limit.max(1) as isize - 1;
        let v: Vec<String> = c.lrange(history_key(symbol), 0, stop).await?;
        let mut out: Vec<PricePoint> = v.iter().map(|s| decode_point(s)).collect::<Result<_>>()?;
        out.reverse();
        Ok(out)
    }

    async fn commit_market(&self, commit: &MarketCommit) -> Result<Vec<Option<String>>> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        // EVAL rather than EVALSHA: inside MULTI a missing script would fail alone while
        // the rest of the transaction went through.
        for (key, body) in &commit.requests {
            pipe.cmd("EVAL")
                .arg(ENQUEUE_ONCE)
                .arg(2)
                .arg(idempotency_key(super::NOTIFY_REQUESTS, key))
                .arg(super::NOTIFY_REQUESTS)
                .arg(self.limits.idempotency_ttl_secs)
                .arg(self.limits.stream_maxlen)
                .arg(key)
                .arg(body);
        }
        if !commit.rules.is_empty() {
            pipe.hset_multiple(RULES, &commit.rules).ignore();
        }
        if !commit.latest.is_empty() {
            let items: Vec<(String, String)> = commit
                .latest
                .iter()
                .map(|p| Ok((p.symbol.clone(), serde_json::to_string(p)?)))
                .collect::<Result<_>>()?;
            pipe.hset_multiple(LATEST, &items).ignore();
        }
        let keep = self.limits.history_len.max(1) as isize;
        let mut touched = std::collections::BTreeSet::new();
        for p in &commit.history {
            pipe.lpush(history_key(&p.symbol), serde_json::to_string(p)?)
                .ignore();
            touched.insert(p.symbol.as_str());
        }
        for sym in touched {
            pipe.ltrim(history_key(sym), 0, keep - 1).ignore();
        }
        if !commit.checkpoints.is_empty() {
            pipe.hset_multiple(CHECKPOINTS, &commit.checkpoints)
                .ignore();
        }
        let mut c = self.conn.clone();
        if commit.requests.is_empty() {
            let _: () = pipe.query_async(&mut c).await?;
            return Ok(Vec::new());
        }
        Ok(pipe.query_async(&mut c).await?)
    }

    async fn get_checkpoint(&self, name: &str) -> Result<Option<String>> {
        let mut c = self.conn.clone();
        Ok(c.hget(CHECKPOINTS, name).await?)
    }

    async fn enqueue_once(&self, stream: &str, key: &str, body: &str) -> Result<Option<String>> {
        let mut c = self.conn.clone();
        let id: Option<String> = self
            .enqueue_once
            .key(idempotency_key(stream, key))
            .key(stream)
            .arg(self.limits.idempotency_ttl_secs)
            .arg(self.limits.stream_maxlen)
            .arg(key)
            .arg(body)
            .invoke_async(&mut c)
            .await?;
        Ok(id)
    }

    async fn read_new(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<StreamEntry>> {
        let block = (block_ms > 0).then_some(block_ms);
        let reply = self
            .read_group(stream, group, consumer, count, block, ">")
            .await?;
        let mut out = Vec::new();
        for key in reply.keys {
            for id in key.ids {
                out.push(StreamEntry {
                    key: field(&id.map, "key")?,
                    body: field(&id.map, "body")?,
                    id: id.id,
                    deliveries: 1,
                });
            }
        }
        Ok(out)
    }

    async fn read_pending(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>> {
        let reply = self
            .read_group(stream, group, consumer, count, None, "0")
            .await?;
        let counts = self.delivery_counts(stream, group, consumer, count).await?;
        let mut out = Vec::new();
        for key in reply.keys {
            for id in key.ids {
                let deliveries = counts.get(&id.id).copied().unwrap_or(2);
                out.push(StreamEntry {
                    key: field(&id.map, "key")?,
                    body: field(&id.map, "body")?,
                    id: id.id,
                    deliveries,
                });
            }
        }
        Ok(out)
    }

    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> Result<Vec<StreamEntry>> {
        let mut c = self.conn.clone();
        let mut out = Vec::new();
        let mut cursor = "0-0".to_string();
        // One sweep over the pending list: XAUTOCLAIM returns a cursor until it wraps.
        loop {
            let opts =
                StreamAutoClaimOptions::default().count(count.saturating_sub(out.len()).max(1));
            let r: redis::RedisResult<StreamAutoClaimReply> = c
                .xautoclaim_options(stream, group, consumer, min_idle_ms, &cursor, opts)
                .await;
            let reply = match r {
                Ok(r) => r,
                Err(e) if e.code() == Some("NOGROUP") => {
                    self.ensure_group(stream, group).await?;
                    return Ok(out);
                }
                Err(e) => return Err(e.into()),
            };
            for id in reply.claimed {
                out.push(StreamEntry {
                    key: field(&id.map, "key")?,
                    body: field(&id.map, "body")?,
                    id: id.id,
                    deliveries: 0,
                });
            }
            if out.len() >= count || reply.next_stream_id == "0-0" {
                break;
            }
            cursor = reply.next_stream_id;
        }
        if !out.is_empty() {
            let counts = self
                .delivery_counts(stream, group, consumer, out.len().max(count) + 1000)
                .await?;
            for e in &mut out {
                e.deliveries = counts.get(&e.id).copied().unwrap_or(2);
            }
        }
        Ok(out)
    }

    async fn put_checkpoint(&self, name: &str, value: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: () = c.hset(CHECKPOINTS, name, value).await?;
        Ok(())
    }

    async fn acquire_lease(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<bool> {
        let mut c = self.conn.clone();
        let got: i64 = Script::new(ACQUIRE_LEASE)
            .key(lease_key(name))
            .arg(owner)
            .arg(ttl_ms.max(1))
            .invoke_async(&mut c)
            .await?;
        Ok(got == 1)
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: i64 = Script::new(RELEASE_LEASE)
            .key(lease_key(name))
            .arg(owner)
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        let _: u64 = c.xack(stream, group, ids).await?;
        Ok(())
    }

    async fn stream_len(&self, stream: &str) -> Result<u64> {
        let mut c = self.conn.clone();
        Ok(c.xlen(stream).await?)
    }

    async fn kv_get(&self, ns: &str, key: &str) -> Result<Option<String>> {
        let mut c = self.conn.clone();
        Ok(c.hget(kv_key(ns), key).await?)
    }

    async fn kv_put(&self, ns: &str, key: &str, value: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let _: () = c.hset(kv_key(ns), key, value).await?;
        Ok(())
    }

    async fn kv_delete(&self, ns: &str, key: &str) -> Result<bool> {
        let mut c = self.conn.clone();
        let n: u64 = c.hdel(kv_key(ns), key).await?;
        Ok(n > 0)
    }

    async fn kv_list(&self, ns: &str) -> Result<Vec<(String, String)>> {
        let mut c = self.conn.clone();
        let all: std::collections::HashMap<String, String> = c.hgetall(kv_key(ns)).await?;
        let mut out: Vec<(String, String)> = all.into_iter().collect();
        out.sort();
        Ok(out)
    }
}
