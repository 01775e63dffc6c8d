//! The Redis backend (Redis 7, `redis` crate, tokio).
//!
//! Layout: `market:rules` (hash id → JSON) with its indexes `market:rules:index:<scope>`
//! (sorted sets, `storage::rule_index`), `market:prices:latest` (hash symbol → JSON),
//! `market:prices:history:<symbol>` (list, newest first, trimmed to `history_len`),
//! `market:checkpoints` (hash), streams under their own names (`notify:requests`) with
//! idempotency keys `<stream>:idem:<key>` that expire after `idempotency_ttl_secs`,
//! leases `lease:<name>`, one hash `kv:<namespace>` per key-value namespace, and for the
//! plugins' `kv` capability `plugin-kv:{<plugin>}:k:<key>` (a string with its own
//! expiry) with an index `plugin-kv:{<plugin>}:index` that counts a plugin's live keys
//! (`redis_lua/plugin_kv*.lua`; the braces keep one plugin's keys in one cluster slot),
//! the market cluster's keys (`market:cluster:*`, `market:rules:changes`: see
//! `market::cluster`), and the scheduler's records `schedule:<name>` (a hash of version `v` and `json`,
//! read and compare-and-set by `redis_lua/schedule_*.lua` with Redis' clock).
//!
//! Commands go through a [`ConnectionManager`], which reconnects after a Redis restart;
//! a command that fails during the outage is an error the caller retries. Blocking
//! stream reads use connections of their own, so a `BLOCK` never stalls other commands
//! behind it on the multiplexed connection.
//!
//! Every write to a stream and every ack is a Lua script (`redis_lua/`): enqueueing checks
//! the stream's bound and the idempotency keys before it writes anything, and acking trims
//! what every consumer group has acknowledged, each in one atomic step. The market commit
//! is one script too (not `MULTI`, where a refused enqueue would not stop the other
//! writes): at the bound it writes nothing.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use async_trait::async_trait;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::StreamPendingCountReply;
use redis::{AsyncCommands, Client, Script, Value};

use super::{
    EventCommit, Fenced, KvOp, MarketCommit, PluginKvRefused, PricePoint, ScheduleCas,
    ScheduleCasReply, ScheduleRead, ScheduleRecord, ScheduleWrite, Store, StoreLimits, StreamEntry,
    StreamFull, StreamStats,
};

const RULES: &str = "market:rules";
/// The rule indexes (`rule_index`): a sorted set per scope, every score 0, so members
/// `"<created_at> <id>"` sort by creation time and a page is a rank range.
const RULE_INDEX_PREFIX: &str = "market:rules:index:";
/// Set once the indexes hold every rule (built at connect for rules stored before them).
const RULE_INDEX_READY: &str = "market:rules:index-ready";

fn rule_index_key(scope: &str) -> String {
    format!("{RULE_INDEX_PREFIX}{scope}")
}
const LATEST: &str = "market:prices:latest";
const CHECKPOINTS: &str = "market:checkpoints";

fn history_key(symbol: &str) -> String {
    format!("market:prices:history:{symbol}")
}

fn idempotency_key(stream: &str, key: &str) -> String {
    format!("{stream}:idem:{key}")
}

/// The stream helpers every stream script starts with.
const STREAMS_LUA: &str = include_str!("redis_lua/streams.lua");

/// Enqueue one entry unless its idempotency key was seen, within the stream's bound.
fn enqueue_once_script() -> Script {
    Script::new(&[STREAMS_LUA, include_str!("redis_lua/enqueue_once.lua")].concat())
}

/// XACK, then trim what every group acknowledged.
fn ack_script() -> Script {
    Script::new(&[STREAMS_LUA, include_str!("redis_lua/ack.lua")].concat())
}

/// The start-up rule index build's batch: index the scanned rules still stored.
fn index_rules_script() -> Script {
    Script::new(include_str!("redis_lua/index_rules.lua"))
}

/// The market engine's whole commit, all or nothing.
fn commit_market_script() -> Script {
    Script::new(&[STREAMS_LUA, include_str!("redis_lua/commit_market.lua")].concat())
}

/// What a stream script answered: an id per item (`None`: a duplicate key), or the bound.
fn enqueue_reply(stream: &str, reply: Vec<String>) -> Result<Vec<Option<String>>> {
    match reply.first().map(String::as_str) {
        Some("ok") => Ok(reply
            .into_iter()
            .skip(1)
            .map(|id| (!id.is_empty()).then_some(id))
            .collect()),
        Some("full") => {
            let number = |i: usize| reply.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
            let held_by = reply.get(3).filter(|g| !g.is_empty()).cloned();
            Err(StreamFull {
                stream: stream.to_string(),
                len: number(1),
                maxlen: number(2),
                held_by,
            }
            .into())
        }
        _ => Err(anyhow!(
            "unexpected answer from the enqueue script: {reply:?}"
        )),
    }
}

/// One event appended once, within its stream's bound.
fn append_event_script() -> Script {
    Script::new(&[STREAMS_LUA, include_str!("redis_lua/append_event.lua")].concat())
}

/// Handled events acknowledged with their handlers' effects, all or nothing.
fn commit_events_script() -> Script {
    Script::new(
        &[
            STREAMS_LUA,
            include_str!("redis_lua/plugin_kv.lua"),
            include_str!("redis_lua/commit_events.lua"),
        ]
        .concat(),
    )
}

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

/// A plugin's value key and its index. Plugin names hold no `}`, so no two (plugin, key)
/// pairs share a value key, whatever bytes the key holds.
fn plugin_kv_keys(ns: &str, key: &str) -> (String, String) {
    (
        format!("plugin-kv:{{{ns}}}:k:{key}"),
        format!("plugin-kv:{{{ns}}}:index"),
    )
}

fn schedule_key(name: &str) -> String {
    format!("schedule:{name}")
}

/// The clock reading a scheduler script ends its answer with.
fn script_clock(reply: &mut Vec<String>) -> Result<i64> {
    reply
        .pop()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| anyhow!("the scheduler script's answer has no clock reading"))
}

fn plugin_kv_script(body: &str) -> Script {
    Script::new(&[include_str!("redis_lua/plugin_kv.lua"), body].concat())
}

/// The Redis store.
pub struct RedisStore {
    client: Client,
    conn: ConnectionManager,
    /// Idle connections for blocking reads.
    blocking: Mutex<Vec<ConnectionManager>>,
    limits: StoreLimits,
    enqueue_once: Script,
    ack: Script,
    commit_market: Script,
    plugin_kv_set: Script,
    plugin_kv_incr: Script,
    plugin_kv_delete: Script,
    append_event: Script,
    commit_events: Script,
    touch_pending: Script,
    schedule_load: Script,
    schedule_cas: Script,
    stats: StreamStats,
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
        RedisStore {
            client,
            conn,
            blocking: Mutex::new(Vec::new()),
            limits,
            enqueue_once: enqueue_once_script(),
            ack: ack_script(),
            commit_market: commit_market_script(),
            plugin_kv_set: plugin_kv_script(include_str!("redis_lua/plugin_kv_set.lua")),
            plugin_kv_incr: plugin_kv_script(include_str!("redis_lua/plugin_kv_incr.lua")),
            plugin_kv_delete: Script::new(include_str!("redis_lua/plugin_kv_delete.lua")),
            append_event: append_event_script(),
            commit_events: commit_events_script(),
            touch_pending: Script::new(include_str!("redis_lua/touch_pending.lua")),
            schedule_load: Script::new(include_str!("redis_lua/schedule_load.lua")),
            schedule_cas: Script::new(include_str!("redis_lua/schedule_cas.lua")),
            stats: StreamStats::default(),
        }
        .with_rule_indexes()
        .await
    }

    /// Index the rules stored before the indexes existed (once per Redis; idempotent, so
    /// two hosts starting together both writing it is harmless).
    async fn with_rule_indexes(self) -> Result<RedisStore> {
        let mut c = self.conn.clone();
        let ready: bool = c
            .exists(RULE_INDEX_READY)
            .await
            .context("cannot read the rule index marker")?;
        if ready {
            return Ok(self);
        }
        let mut cursor: u64 = 0;
        loop {
            let (next, pairs): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
                .arg(RULES)
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await?;
            // One script a batch: it indexes a scanned rule only if it is still stored
            // (another host may delete it meanwhile; its entries must not come back).
            let script = index_rules_script();
            let mut batch = script.prepare_invoke();
            batch.key(RULES).arg(RULE_INDEX_PREFIX);
            let mut any = false;
            for (id, json) in &pairs {
                match super::rule_index::IndexedRule::from_json(json) {
                    Ok(keys) => {
                        batch.arg(id).arg(&keys.created_at).arg(keys.entry());
                        for scope in keys.scopes() {
                            batch.arg(scope);
                        }
                        any = true;
                    }
                    Err(e) => tracing::warn!(rule = %id, error = %e, "rule left out of the index"),
                }
            }
            if any {
                let _: u64 = batch.invoke_async(&mut c).await?;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let _: () = c.set(RULE_INDEX_READY, 1).await?;
        Ok(self)
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

    async fn create_group(&self, stream: &str, group: &str) -> Result<()> {
        self.create_group_at(stream, group, "0").await
    }

    async fn create_group_at(&self, stream: &str, group: &str, from: &str) -> Result<()> {
        let mut c = self.conn.clone();
        let r: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg(from)
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
    ) -> Result<Vec<StreamEntry>> {
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
        let mut result: redis::RedisResult<Value> = cmd.query_async(&mut c).await;
        if matches!(&result, Err(e) if e.code() == Some("NOGROUP")) {
            self.create_group(stream, group).await?;
            result = cmd.query_async(&mut c).await;
        }
        // Only a connection that answered goes back to the pool.
        let reply = result?;
        self.blocking.lock().push(c);
        super::redis_reply::read_group_entries(&reply)
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
        let mut pipe = redis::pipe();
        pipe.atomic().hset(RULES, id, json).ignore();
        // A record without the indexed fields is stored (the store does not judge rules)
        // but is in no page; the rule layer never writes one.
        if let Some(keys) = super::rule_index::IndexedRule::indexable(json) {
            let entry = keys.entry();
            for scope in keys.scopes() {
                pipe.zadd(rule_index_key(&scope), &entry, 0).ignore();
            }
        }
        let mut c = self.conn.clone();
        let _: () = pipe.query_async(&mut c).await?;
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
        let json: Option<String> = c.hget(RULES, id).await?;
        let mut pipe = redis::pipe();
        pipe.atomic().hdel(RULES, id);
        // An unreadable record has no index entries to find; it is removed all the same.
        if let Some(keys) = json
            .as_deref()
            .and_then(|j| super::rule_index::IndexedRule::from_json(j).ok())
        {
            let entry = keys.entry();
            for scope in keys.scopes() {
                pipe.zrem(rule_index_key(&scope), &entry).ignore();
            }
        }
        let (n,): (u64,) = pipe.query_async(&mut c).await?;
        Ok(n > 0)
    }

    async fn page_rules(
        &self,
        scope: &super::RuleScope,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut c = self.conn.clone();
        let entries: Vec<String> = c
            .zrange(
                rule_index_key(&scope.key()),
                offset as isize,
                (offset + limit - 1) as isize,
            )
            .await?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = entries
            .iter()
            .map(|e| super::rule_index::id_of_entry(e))
            .collect();
        let found: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(RULES)
            .arg(&ids)
            .query_async(&mut c)
            .await?;
        // A rule deleted between the two reads is left out.
        Ok(found.into_iter().flatten().collect())
    }

    async fn count_rules_in(&self, scope: &super::RuleScope) -> Result<u64> {
        let mut c = self.conn.clone();
        Ok(c.zcard(rule_index_key(&scope.key())).await?)
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
        let stream = super::NOTIFY_REQUESTS;
        let mut script = self.commit_market.prepare_invoke();
        script
            .key(stream)
            .key(RULES)
            .key(LATEST)
            .key(CHECKPOINTS)
            .arg(self.limits.idempotency_ttl_secs)
            .arg(self.limits.stream_maxlen)
            .arg(self.limits.history_len.max(1));
        script.arg(commit.fence.len());
        for (key, token) in &commit.fence {
            script.key(key).arg(token);
        }
        script.arg(commit.requests.len());
        for (key, body) in &commit.requests {
            script.key(idempotency_key(stream, key)).arg(key).arg(body);
        }
        let latest: Vec<(String, String)> = commit
            .latest
            .iter()
            .map(|p| Ok((p.symbol.clone(), serde_json::to_string(p)?)))
            .collect::<Result<_>>()?;
        for pairs in [&commit.rules, &latest, &commit.checkpoints] {
            script.arg(pairs.len());
            for (field, value) in pairs {
                script.arg(field).arg(value);
            }
        }
        // Per symbol, oldest first: each is pushed on the list's head.
        let mut history: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for p in &commit.history {
            history
                .entry(p.symbol.as_str())
                .or_default()
                .push(serde_json::to_string(p)?);
        }
        for (symbol, points) in &history {
            script.key(history_key(symbol)).arg(points.len());
            for p in points {
                script.arg(p);
            }
        }
        let mut c = self.conn.clone();
        let reply: Vec<String> = script.invoke_async(&mut c).await?;
        if reply.first().map(String::as_str) == Some("fenced") {
            return Err(Fenced {
                lost: reply[1..].to_vec(),
            }
            .into());
        }
        let ids = enqueue_reply(stream, reply);
        if ids.as_ref().is_err_and(|e| StreamFull::find(e).is_some()) {
            self.stats.count_refusal(stream);
        }
        ids
    }

    async fn rule_changed(&self, id: &str, keep_firing: bool) -> Result<()> {
        let mut c = self.conn.clone();
        // Bounded: a host reads the changes as they come; one that was away longer than
        // this loads its partitions' rules afresh when it takes them.
        let _: String = redis::cmd("XADD")
            .arg(super::RULE_CHANGES)
            .arg("MAXLEN")
            .arg("~")
            .arg(100_000)
            .arg("*")
            .arg("id")
            .arg(id)
            .arg("keep")
            .arg(if keep_firing { "1" } else { "0" })
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    async fn get_checkpoint(&self, name: &str) -> Result<Option<String>> {
        let mut c = self.conn.clone();
        Ok(c.hget(CHECKPOINTS, name).await?)
    }

    async fn enqueue_once(&self, stream: &str, key: &str, body: &str) -> Result<Option<String>> {
        let mut c = self.conn.clone();
        let reply: Vec<String> = self
            .enqueue_once
            .key(stream)
            .key(idempotency_key(stream, key))
            .arg(self.limits.idempotency_ttl_secs)
            .arg(self.limits.stream_maxlen)
            .arg(key)
            .arg(body)
            .invoke_async(&mut c)
            .await?;
        match enqueue_reply(stream, reply) {
            Ok(mut ids) => Ok(ids.pop().flatten()),
            Err(e) => {
                if StreamFull::find(&e).is_some() {
                    self.stats.count_refusal(stream);
                }
                Err(e)
            }
        }
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<()> {
        self.create_group(stream, group).await
    }

    async fn drop_group(&self, stream: &str, group: &str) -> Result<bool> {
        let mut c = self.conn.clone();
        // XGROUP DESTROY needs the stream to exist.
        let exists: bool = c.exists(stream).await?;
        if !exists {
            return Ok(false);
        }
        let n: u64 = redis::cmd("XGROUP")
            .arg("DESTROY")
            .arg(stream)
            .arg(group)
            .query_async(&mut c)
            .await?;
        Ok(n > 0)
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
        self.read_group(stream, group, consumer, count, block, ">")
            .await
    }

    async fn read_pending(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>> {
        let mut out = self
            .read_group(stream, group, consumer, count, None, "0")
            .await?;
        let counts = self.delivery_counts(stream, group, consumer, count).await?;
        for e in &mut out {
            e.deliveries = counts.get(&e.id).copied().unwrap_or(2);
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
            let r: redis::RedisResult<Value> = redis::cmd("XAUTOCLAIM")
                .arg(stream)
                .arg(group)
                .arg(consumer)
                .arg(min_idle_ms)
                .arg(&cursor)
                .arg("COUNT")
                .arg(count.saturating_sub(out.len()).max(1))
                .query_async(&mut c)
                .await;
            let reply = match r {
                Ok(r) => r,
                Err(e) if e.code() == Some("NOGROUP") => {
                    self.create_group(stream, group).await?;
                    return Ok(out);
                }
                Err(e) => return Err(e.into()),
            };
            let (next, claimed) = super::redis_reply::autoclaim_entries(&reply)?;
            out.extend(claimed);
            if out.len() >= count || next == "0-0" {
                break;
            }
            cursor = next;
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
        let mut script = self.ack.key(stream);
        script.arg(group);
        for id in ids {
            script.arg(id);
        }
        let _: i64 = script.invoke_async(&mut c).await?;
        Ok(())
    }

    async fn ack_maybe_trim(
        &self,
        stream: &str,
        group: &str,
        ids: &[String],
        trim: bool,
    ) -> Result<()> {
        if trim || ids.is_empty() {
            return self.ack(stream, group, ids).await;
        }
        // A plain XACK: the trim's group scan and deletions are what cost Redis most here.
        let mut c = self.conn.clone();
        let _: i64 = c.xack(stream, group, ids).await?;
        Ok(())
    }

    async fn stream_len(&self, stream: &str) -> Result<u64> {
        let mut c = self.conn.clone();
        Ok(c.xlen(stream).await?)
    }

    fn stream_stats(&self) -> &StreamStats {
        &self.stats
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

    async fn plugin_kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let mut c = self.conn.clone();
        let (value_key, _) = plugin_kv_keys(ns, key);
        Ok(c.get(value_key).await?)
    }

    async fn plugin_kv_set(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        max_keys: u64,
    ) -> Result<()> {
        let mut c = self.conn.clone();
        let (value_key, index) = plugin_kv_keys(ns, key);
        let ttl = ttl_ms.map(|t| t.max(1).to_string()).unwrap_or_default();
        let reply: Vec<String> = self
            .plugin_kv_set
            .key(value_key)
            .key(index)
            .arg(key)
            .arg(value)
            .arg(ttl)
            .arg(max_keys)
            .invoke_async(&mut c)
            .await?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(()),
            Some("full") => Err(PluginKvRefused::TooManyKeys { max: max_keys }.into()),
            _ => Err(anyhow!(
                "unexpected answer from the kv set script: {reply:?}"
            )),
        }
    }

    async fn plugin_kv_delete(&self, ns: &str, key: &str) -> Result<bool> {
        let mut c = self.conn.clone();
        let (value_key, index) = plugin_kv_keys(ns, key);
        let removed: u64 = self
            .plugin_kv_delete
            .key(value_key)
            .key(index)
            .arg(key)
            .invoke_async(&mut c)
            .await?;
        Ok(removed > 0)
    }

    async fn plugin_kv_incr(&self, ns: &str, key: &str, by: i64, max_keys: u64) -> Result<i64> {
        let mut c = self.conn.clone();
        let (value_key, index) = plugin_kv_keys(ns, key);
        let reply: Vec<String> = self
            .plugin_kv_incr
            .key(value_key)
            .key(index)
            .arg(key)
            .arg(by)
            .arg(max_keys)
            .invoke_async(&mut c)
            .await?;
        match reply.first().map(String::as_str) {
            Some("ok") => reply
                .get(1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("unexpected answer from the kv incr script: {reply:?}")),
            Some("full") => Err(PluginKvRefused::TooManyKeys { max: max_keys }.into()),
            Some("nan") => Err(PluginKvRefused::NotAnInteger.into()),
            Some("overflow") => Err(PluginKvRefused::Overflow { by }.into()),
            _ => Err(anyhow!(
                "unexpected answer from the kv incr script: {reply:?}"
            )),
        }
    }

    async fn append_event(
        &self,
        stream: &str,
        key: Option<&str>,
        fields: &[(String, String)],
        maxlen: u64,
    ) -> Result<Option<String>> {
        let mut c = self.conn.clone();
        let mut script = self.append_event.key(stream);
        script
            .key(key.map(|k| idempotency_key(stream, k)).unwrap_or_default())
            .arg(self.limits.idempotency_ttl_secs)
            .arg(maxlen.max(1));
        for (name, value) in fields {
            script.arg(name).arg(value);
        }
        let reply: Vec<String> = script.invoke_async(&mut c).await?;
        let result = enqueue_reply(stream, reply).map(|mut ids| ids.pop().flatten());
        if let Err(e) = &result
            && StreamFull::find(e).is_some()
        {
            self.stats.count_refusal(stream);
        }
        result
    }

    async fn ensure_group_at(&self, stream: &str, group: &str, at_end: bool) -> Result<()> {
        self.create_group_at(stream, group, if at_end { "$" } else { "0" })
            .await
    }

    async fn touch_pending(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        ids: &[String],
    ) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut c = self.conn.clone();
        for chunk in ids.chunks(500) {
            let mut script = self.touch_pending.key(stream);
            script.arg(group).arg(consumer);
            for id in chunk {
                script.arg(id);
            }
            let _: i64 = script.invoke_async(&mut c).await?;
        }
        Ok(())
    }

    async fn pending_count(&self, stream: &str, group: &str) -> Result<u64> {
        let mut c = self.conn.clone();
        let r: redis::RedisResult<Value> = redis::cmd("XPENDING")
            .arg(stream)
            .arg(group)
            .query_async(&mut c)
            .await;
        match r {
            Ok(Value::Array(items)) => Ok(match items.first() {
                Some(Value::Int(n)) => *n as u64,
                _ => 0,
            }),
            Ok(_) => Ok(0),
            Err(e) if e.code() == Some("NOGROUP") => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    async fn commit_events(&self, commit: &EventCommit) -> Result<()> {
        if commit.is_empty() {
            return Ok(());
        }
        let notify = super::NOTIFY_REQUESTS;
        let mut script = self.commit_events.key(&commit.stream);
        script.key(notify);
        for (key, _) in &commit.notify {
            script.key(idempotency_key(notify, key));
        }
        for e in &commit.kv {
            let (value_key, index) = plugin_kv_keys(&e.ns, &e.key);
            script.key(value_key).key(index);
        }
        for (ns, _) in &commit.forget {
            script.key(kv_key(ns));
        }
        script
            .arg(&commit.group)
            .arg(self.limits.idempotency_ttl_secs)
            .arg(self.limits.stream_maxlen.max(1))
            .arg(commit.kv_max_keys)
            .arg(commit.acks.len())
            .arg(commit.notify.len())
            .arg(commit.kv.len())
            .arg(commit.forget.len())
            .arg(&commit.consumer);
        for id in &commit.acks {
            script.arg(id);
        }
        for (key, body) in &commit.notify {
            script.arg(key).arg(body);
        }
        for e in &commit.kv {
            match &e.op {
                KvOp::Set { value, ttl_ms } => script
                    .arg("set")
                    .arg(&e.key)
                    .arg(value.as_slice())
                    .arg(ttl_ms.map(|t| t.max(1).to_string()).unwrap_or_default()),
                KvOp::Delete => script.arg("del").arg(&e.key).arg("").arg(""),
                KvOp::Incr(by) => script.arg("incr").arg(&e.key).arg(*by).arg(""),
            };
        }
        for (_, key) in &commit.forget {
            script.arg(key);
        }
        let mut c = self.conn.clone();
        let reply: Vec<String> = script.invoke_async(&mut c).await?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(()),
            Some("stale") => Err(super::StaleAcks {
                ids: reply[1..].to_vec(),
            }
            .into()),
            Some("full") => {
                self.stats.count_refusal(notify);
                enqueue_reply(notify, reply).map(|_| ())
            }
            Some("kv") => {
                let by = reply.get(2).and_then(|b| b.parse().ok()).unwrap_or(0);
                Err(match reply.get(1).map(String::as_str) {
                    Some("keys") => PluginKvRefused::TooManyKeys {
                        max: commit.kv_max_keys,
                    },
                    Some("nan") => PluginKvRefused::NotAnInteger,
                    _ => PluginKvRefused::Overflow { by },
                }
                .into())
            }
            _ => Err(anyhow!(
                "unexpected answer from the event commit script: {reply:?}"
            )),
        }
    }

    async fn schedule_load(&self, names: &[String]) -> Result<ScheduleRead> {
        let mut script = self.schedule_load.prepare_invoke();
        for name in names {
            script.key(schedule_key(name));
        }
        let mut c = self.conn.clone();
        let mut reply: Vec<String> = script.invoke_async(&mut c).await?;
        let now_ms = script_clock(&mut reply)?;
        if reply.len() != 2 * names.len() {
            return Err(anyhow!(
                "unexpected answer from the schedule load script: {reply:?}"
            ));
        }
        let records = reply
            .chunks(2)
            .map(|pair| ScheduleRecord {
                version: pair[0].parse().unwrap_or(0),
                json: (!pair[1].is_empty()).then(|| pair[1].clone()),
            })
            .collect();
        Ok(ScheduleRead { records, now_ms })
    }

    async fn schedule_cas(&self, writes: &[ScheduleWrite]) -> Result<ScheduleCasReply> {
        let mut script = self.schedule_cas.prepare_invoke();
        for w in writes {
            script
                .key(schedule_key(&w.name))
                .arg(w.version)
                .arg(w.json.as_deref().unwrap_or(""));
        }
        let mut c = self.conn.clone();
        let mut reply: Vec<String> = script.invoke_async(&mut c).await?;
        let now_ms = script_clock(&mut reply)?;
        if reply.len() != 3 * writes.len() {
            return Err(anyhow!(
                "unexpected answer from the schedule CAS script: {reply:?}"
            ));
        }
        let outcomes = reply
            .chunks(3)
            .map(|r| {
                let version = r[1].parse().unwrap_or(0);
                if r[0] == "ok" {
                    ScheduleCas::Written { version }
                } else {
                    ScheduleCas::Conflict(ScheduleRecord {
                        version,
                        json: (!r[2].is_empty()).then(|| r[2].clone()),
                    })
                }
            })
            .collect();
        Ok(ScheduleCasReply { outcomes, now_ms })
    }
}
