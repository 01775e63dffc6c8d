//! Storage: one seam, two backends.
//!
//! [`Store`] holds what the workers share: alert rules, latest prices with a bounded
//! recent history per symbol, checkpoints (small key-value records), and streams with
//! consumer groups (`notify:requests`). `embedded` is a redb database file under
//! `data_dir` (state survives restarts, no server needed); `redis` is Redis 7. Both pass
//! the same test suite (`host/tests/all/storage.rs`).
//!
//! A general key-value space (`kv_*`, by namespace) holds small records that belong to no
//! other table: the X scraper's cookie jars and account records. The plugins' `kv`
//! capability has a space of its own (`plugin_kv_*`): bytes with optional times to live,
//! one namespace per plugin, a cap on live keys per namespace, and an atomic `incr`.
//!
//! Two operations carry the exactly-once guarantees the workers rely on:
//! - [`Store::enqueue_once`] appends to a stream only if its idempotency key was never
//!   seen, atomically, so a re-evaluated tick after a crash cannot enqueue twice;
//! - [`Store::commit_market`] enqueues notification requests (idempotently) and writes
//!   rule states, prices and source checkpoints in one transaction, so after a restart
//!   they all describe the same moment. One durable write per engine cycle is also what
//!   makes the embedded store fast: a cycle grows while the previous write syncs.
//!
//! Streams never lose an entry a consumer still needs, on either backend:
//! - an entry is deleted only once every consumer group has acknowledged it ([`Store::ack`]
//!   trims below the oldest entry any group still needs: its oldest pending entry or the
//!   first it was never handed). A stream no group reads yet keeps everything, so the
//!   producers of a stream create its consumers' groups up front ([`Store::ensure_group`]);
//! - a stream is bounded by refusing producers, not by trimming: an enqueue that would take
//!   a stream past `stream_maxlen` unacknowledged entries fails with [`StreamFull`] and
//!   writes nothing (not even its idempotency key, so a retry is not taken for a
//!   duplicate). Callers wait and retry (the market engine: back-pressure) or pass the
//!   refusal on (the API: 503 with `Retry-After`); [`StreamStats`] counts refusals.
//!
//! Redis' own `MAXLEN`/`MINID` trimming knows nothing about consumer groups, and its
//! `KEEPREF`/`ACKED` modes need Redis 8.2; the Redis backend computes the bound itself
//! from `XINFO GROUPS` and `XPENDING` inside its scripts (`redis_lua/`).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::config::{Config, StorageBackend};

pub mod embedded;
pub mod events;
mod redis_reply;
pub mod redis_store;
pub mod rule_index;

pub use rule_index::RuleScope;

pub use events::{EventCommit, KvEffect, KvOp, StaleAcks};

/// Stream announcing rule changes (`Store::rule_changed`): fields `id` and `keep`.
pub const RULE_CHANGES: &str = "market:rules:changes";

/// Stream that fired alerts go to and the notify worker consumes.
pub const NOTIFY_REQUESTS: &str = "notify:requests";

/// One price observation as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PricePoint {
    pub symbol: String,
    pub price: f64,
    /// The tick's own time (ms since the epoch).
    pub ts_ms: i64,
    /// The source that delivered it (a `[[market.sources]]` name).
    pub source: String,
}

/// One stream entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    /// The backend's entry id (`<ms>-<seq>` on Redis, a sequence number embedded).
    pub id: String,
    /// The idempotency key it was enqueued with.
    pub key: String,
    /// The payload (JSON).
    pub body: String,
    /// How many times this entry was handed to a consumer of this group (1 = first).
    pub deliveries: u64,
    /// Every field of the entry in the order it was written (`key` and `body` for the
    /// entries the host enqueues; whatever a producer wrote for an event).
    pub fields: Vec<(String, String)>,
    /// Why the entry cannot be read as text (a field that is not UTF-8), if so; its
    /// `fields` then hold a lossy rendering ([`events::text_fields`]).
    pub malformed: Option<String>,
}

impl StreamEntry {
    /// An entry from its raw fields: `key` and `body` are read from them.
    pub fn from_fields(id: String, raw: Vec<(Vec<u8>, Vec<u8>)>, deliveries: u64) -> StreamEntry {
        let (fields, malformed) = events::text_fields(raw);
        StreamEntry {
            key: events::field_value(&fields, "key"),
            body: events::field_value(&fields, "body"),
            id,
            deliveries,
            fields,
            malformed,
        }
    }
}

/// Everything the market monitor persists at one point, written atomically.
#[derive(Debug, Clone, Default)]
pub struct MarketCommit {
    /// Notification requests for [`NOTIFY_REQUESTS`] as (idempotency key, JSON body);
    /// a key enqueued before is skipped.
    pub requests: Vec<(String, String)>,
    /// Rules whose record changed (firing state, status), as JSON by id.
    pub rules: Vec<(String, String)>,
    /// Latest price per symbol.
    pub latest: Vec<PricePoint>,
    /// Points to append to the per-symbol history (bounded to `history_len`).
    pub history: Vec<PricePoint>,
    /// Source checkpoints (name → opaque text), e.g. a replay file offset.
    pub checkpoints: Vec<(String, String)>,
    /// Several hosts (`market::cluster`): each (lease key, token) must still be held,
    /// or nothing is written and the error is a [`Fenced`]. With a fence, rule records
    /// are only updated, never re-created (a rule deleted meanwhile stays deleted).
    /// Only the Redis store supports it; empty on one host.
    pub fence: Vec<(String, String)>,
}

/// A market commit refused because some of its leases are held by another host now (or
/// expired): nothing of it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fenced {
    /// The lease keys no longer holding their token.
    pub lost: Vec<String>,
}

impl std::fmt::Display for Fenced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "commit refused: this host no longer holds the leases {}; nothing was written",
            self.lost.join(", ")
        )
    }
}

impl std::error::Error for Fenced {}

impl Fenced {
    /// The refusal inside an error from a store call, if that is what it is.
    pub fn find(e: &anyhow::Error) -> Option<&Fenced> {
        e.downcast_ref::<Fenced>()
    }
}

/// An enqueue refused because the stream already holds its bound of entries that some
/// consumer group still needs. Nothing of the refused write was stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamFull {
    pub stream: String,
    /// Entries in the stream when the enqueue was refused.
    pub len: u64,
    /// The bound (`stream_maxlen`).
    pub maxlen: u64,
    /// The consumer group holding the oldest entry still needed (`None`: no group reads
    /// the stream yet, so every entry is kept for the groups to come).
    pub held_by: Option<String>,
}

impl std::fmt::Display for StreamFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stream `{}` is full: {} entries wait for a consumer group (bound {}",
            self.stream, self.len, self.maxlen
        )?;
        match &self.held_by {
            Some(g) => write!(f, "; the oldest is held by group `{g}`")?,
            None => write!(f, "; no consumer group reads it yet")?,
        }
        write!(
            f,
            "); nothing was written: retry once the consumers catch up"
        )
    }
}

impl std::error::Error for StreamFull {}

impl StreamFull {
    /// The refusal inside an error from a store call, if that is what it is.
    pub fn find(e: &anyhow::Error) -> Option<&StreamFull> {
        e.downcast_ref::<StreamFull>()
    }
}

/// A plugin `kv` write refused by the plugin's own limits or by the stored value; nothing
/// was written. Found inside a store error with [`PluginKvRefused::find`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginKvRefused {
    #[error(
        "the plugin already holds its cap of {max} live keys; delete keys, let them expire, \
         or raise `[capabilities.kv] max_keys`"
    )]
    TooManyKeys { max: u64 },
    #[error("the stored value is not a decimal 64-bit integer, so it cannot be incremented")]
    NotAnInteger,
    #[error("adding {by} to the stored value would overflow a 64-bit integer")]
    Overflow { by: i64 },
}

impl PluginKvRefused {
    /// The refusal inside an error from a store call, if that is what it is.
    pub fn find(e: &anyhow::Error) -> Option<&PluginKvRefused> {
        e.downcast_ref::<PluginKvRefused>()
    }
}

/// Per-stream counters a store keeps for `/metrics`.
#[derive(Debug, Default)]
pub struct StreamStats {
    refused: Mutex<BTreeMap<String, u64>>,
}

impl StreamStats {
    /// Count an enqueue refused at the stream's bound.
    pub fn count_refusal(&self, stream: &str) {
        *self.refused.lock().entry(stream.to_string()).or_default() += 1;
    }

    /// Enqueues refused at the bound so far, by stream.
    pub fn refusals(&self) -> Vec<(String, u64)> {
        self.refused
            .lock()
            .iter()
            .map(|(s, n)| (s.clone(), *n))
            .collect()
    }

    /// Refusals of one stream.
    pub fn refusals_of(&self, stream: &str) -> u64 {
        self.refused.lock().get(stream).copied().unwrap_or(0)
    }
}

/// Limits a store applies on every write.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    /// Points kept per symbol in the recent history.
    pub history_len: usize,
    /// Most entries a stream holds that some consumer group has not acknowledged yet;
    /// an enqueue past it is refused ([`StreamFull`]). A single write of more entries
    /// than this is accepted only into an empty stream, so it cannot wait forever.
    pub stream_maxlen: usize,
    /// How long an idempotency key is remembered.
    pub idempotency_ttl_secs: u64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            history_len: 600,
            stream_maxlen: 100_000,
            idempotency_ttl_secs: 7 * 24 * 3600,
        }
    }
}

/// The storage seam. Every method is a complete, durable operation.
#[async_trait]
pub trait Store: Send + Sync {
    /// Which backend this is (`embedded` or `redis`), for logs and `/readyz`.
    fn backend(&self) -> &'static str;
    /// Cheap reachability check.
    async fn ping(&self) -> Result<()>;

    /// Insert or replace a rule record (JSON) by id.
    async fn put_rule(&self, id: &str, json: &str) -> Result<()>;
    async fn get_rule(&self, id: &str) -> Result<Option<String>>;
    /// Every rule record, in no particular order.
    async fn list_rules(&self) -> Result<Vec<String>>;
    /// Remove a rule; false if it did not exist.
    async fn delete_rule(&self, id: &str) -> Result<bool>;
    /// A page of the rules in `scope`, by creation time then id: the rule records (JSON)
    /// from position `offset`, at most `limit`. Reads the page through an index
    /// ([`rule_index`]), never the whole collection.
    async fn page_rules(
        &self,
        scope: &RuleScope,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<String>>;
    /// How many rules `scope` holds (an index's size; no scan).
    async fn count_rules_in(&self, scope: &RuleScope) -> Result<u64>;

    async fn latest_price(&self, symbol: &str) -> Result<Option<PricePoint>>;
    async fn latest_prices(&self) -> Result<Vec<PricePoint>>;
    /// The recent history of a symbol, oldest first, at most `limit` points.
    async fn price_history(&self, symbol: &str, limit: usize) -> Result<Vec<PricePoint>>;

    /// Enqueue the requests and write rules, prices and checkpoints in one transaction.
    /// Returns, per request, its new entry id or `None` for a duplicate key. When the new
    /// requests do not fit under the stream's bound, nothing at all is written and the
    /// error is a [`StreamFull`].
    async fn commit_market(&self, commit: &MarketCommit) -> Result<Vec<Option<String>>>;
    async fn get_checkpoint(&self, name: &str) -> Result<Option<String>>;
    /// Announce that rule `id` was created, changed or deleted (`keep_firing`: the market
    /// engine keeps its firing state), so the host evaluating it learns at once (several
    /// hosts: `market::cluster`). A no-op where only one host evaluates (embedded).
    async fn rule_changed(&self, id: &str, keep_firing: bool) -> Result<()> {
        let _ = (id, keep_firing);
        Ok(())
    }
    /// Write one checkpoint by itself.
    async fn put_checkpoint(&self, name: &str, value: &str) -> Result<()>;

    /// Take or renew the lease `name` for `owner` for `ttl_ms`; false while someone else
    /// holds it (for work one host at a time must do: a bot's long poll, a schedule).
    async fn acquire_lease(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<bool>;
    /// Give the lease up if `owner` holds it.
    async fn release_lease(&self, name: &str, owner: &str) -> Result<()>;

    /// Append `body` to `stream` unless `key` was enqueued before (on this stream).
    /// Returns the new entry id, or `None` for a duplicate. At the stream's bound the
    /// error is a [`StreamFull`] and `key` stays unrecorded.
    async fn enqueue_once(&self, stream: &str, key: &str, body: &str) -> Result<Option<String>>;
    /// Create consumer group `group` on `stream` (and the stream) if it does not exist,
    /// positioned before the oldest entry: from now on nothing it has not acknowledged is
    /// trimmed. Producers call it for their consumers' groups before the first enqueue.
    async fn ensure_group(&self, stream: &str, group: &str) -> Result<()>;
    /// Delete consumer group `group` of `stream` with its pending entries, for a group no
    /// one reads with any more (it would hold every later entry); false if there was none.
    /// What only it still needed goes with the next trim.
    async fn drop_group(&self, stream: &str, group: &str) -> Result<bool>;
    /// Entries of `stream` never delivered to `group`, at most `count`, waiting up to
    /// `block_ms` for one to arrive. They become pending for `consumer` until acked.
    async fn read_new(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<StreamEntry>>;
    /// Entries delivered to `consumer` of `group` and not acked yet (e.g. after a crash).
    async fn read_pending(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>>;
    /// Entries of `group` pending with any consumer for at least `min_idle_ms` (a crashed
    /// or stuck host's), now pending for `consumer` (Redis' XAUTOCLAIM). Entries trimmed
    /// away meanwhile leave the pending list. At most `count`.
    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> Result<Vec<StreamEntry>>;
    /// Mark entries as processed by `group`, then delete the entries every group of the
    /// stream has acknowledged.
    async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<()>;
    /// `ack`, trimming only when `trim`: a consumer working through a backlog acknowledges
    /// batch after batch and trims now and then (each trim deletes everything acknowledged
    /// so far, and an append at the bound trims before it refuses). Stores whose trim is
    /// cheap always trim.
    async fn ack_maybe_trim(
        &self,
        stream: &str,
        group: &str,
        ids: &[String],
        trim: bool,
    ) -> Result<()> {
        let _ = trim;
        self.ack(stream, group, ids).await
    }
    /// Number of entries in the stream (those some group still needs, plus any not
    /// trimmed yet).
    async fn stream_len(&self, stream: &str) -> Result<u64>;
    /// Counters of this store's streams (refusals at the bound).
    fn stream_stats(&self) -> &StreamStats;

    /// The value of `key` in namespace `ns`.
    async fn kv_get(&self, ns: &str, key: &str) -> Result<Option<String>>;
    /// Set `key` in `ns` to `value`, replacing what was there.
    async fn kv_put(&self, ns: &str, key: &str, value: &str) -> Result<()>;
    /// Remove `key` from `ns`; false if it did not exist.
    async fn kv_delete(&self, ns: &str, key: &str) -> Result<bool>;
    /// Every (key, value) of `ns`, sorted by key. Loads the whole namespace: meant for
    /// small ones (sessions and records per account), not for bulk data.
    async fn kv_list(&self, ns: &str) -> Result<Vec<(String, String)>>;

    // The plugins' `kv` capability (`capabilities::kv`). `ns` is the plugin's name, given
    // by the host; keys and values are the plugin's. A key whose time to live has passed
    // is absent. Refusals are a [`PluginKvRefused`] in the error, and write nothing.

    /// The live value of `key` in `ns`.
    async fn plugin_kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>>;
    /// Set `key` to `value`, expiring after `ttl_ms` (none: never, dropping an earlier
    /// expiry). A new key is refused while `ns` holds `max_keys` live keys.
    async fn plugin_kv_set(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        max_keys: u64,
    ) -> Result<()>;
    /// Remove `key`; false if it was not there (or had expired).
    async fn plugin_kv_delete(&self, ns: &str, key: &str) -> Result<bool>;
    /// Atomically add `by` to the decimal integer at `key` (missing: 0), keeping its
    /// expiry; returns the new value. A new key counts against `max_keys`.
    async fn plugin_kv_incr(&self, ns: &str, key: &str, by: i64, max_keys: u64) -> Result<i64>;

    // Event streams (`crate::events`): producers' fields as they are, a bound per stream,
    // and acknowledgements committed with the handlers' effects (`events.rs`).

    /// Append an event with `fields` to `stream`, unless `key` (an idempotency key, if
    /// any) was used before on it. At `maxlen` entries that some group still needs the
    /// error is a [`StreamFull`] and nothing is written. Returns the new id, or `None`
    /// for a duplicate key.
    async fn append_event(
        &self,
        stream: &str,
        key: Option<&str>,
        fields: &[(String, String)],
        maxlen: u64,
    ) -> Result<Option<String>>;
    /// Create consumer group `group` on `stream` if it does not exist: before the oldest
    /// entry (`at_end` false: Redis' `0`), or after the newest (`$`).
    async fn ensure_group_at(&self, stream: &str, group: &str, at_end: bool) -> Result<()>;
    /// Tell the stream that `consumer` still works on `ids` (restart their idle time), so
    /// a long call or a wait before a retry is not taken for a crash and claimed by
    /// another host. Ids no longer pending for `consumer` are left alone.
    async fn touch_pending(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        ids: &[String],
    ) -> Result<()>;
    /// Entries of `group` delivered and not acknowledged yet, with any consumer.
    async fn pending_count(&self, stream: &str, group: &str) -> Result<u64>;
    /// Acknowledge handled events with their handlers' effects, all or nothing: a `kv`
    /// refusal ([`PluginKvRefused`]), `notify:requests` at its bound ([`StreamFull`]) or
    /// an acked entry no longer pending with `commit.consumer` ([`StaleAcks`]) writes
    /// nothing at all.
    async fn commit_events(&self, commit: &EventCommit) -> Result<()>;
    // scheduler
    //
    // One shared record per schedule (`scheduler::claim`: its next occurrence and the
    // occurrences taken and not finished), changed only by compare-and-set on a version,
    // so of several hosts acting on the same record exactly one wins. Both calls also
    // answer the store's own clock, which every host judges leases and due times by.

    /// The records of `names` (JSON, `None` when absent or deleted) with their versions,
    /// read at one moment, and the store's clock then.
    async fn schedule_load(&self, names: &[String]) -> Result<ScheduleRead>;
    /// Write each record whose version is still the one its writer read (`json: None`
    /// deletes it; its version still goes up, so an old version never matches again).
    /// Each write succeeds or fails on its own; the outcomes come in input order.
    async fn schedule_cas(&self, writes: &[ScheduleWrite]) -> Result<ScheduleCasReply>;
}

// --------------------------------------------------------------------------- scheduler

/// A scheduler record as stored: its JSON (`None`: absent) and its version (0: never
/// written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRecord {
    pub json: Option<String>,
    pub version: u64,
}

/// What [`Store::schedule_load`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRead {
    /// One per name asked for, in order.
    pub records: Vec<ScheduleRecord>,
    /// The store's clock (ms since the epoch) at the read.
    pub now_ms: i64,
}

/// One compare-and-set of [`Store::schedule_cas`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleWrite {
    pub name: String,
    /// The version the writer read (0: the record did not exist).
    pub version: u64,
    /// The new record; `None` deletes it.
    pub json: Option<String>,
}

/// The outcome of one [`ScheduleWrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleCas {
    /// Written; the record's new version.
    Written { version: u64 },
    /// Another writer came first: the record as it is now.
    Conflict(ScheduleRecord),
}

/// What [`Store::schedule_cas`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleCasReply {
    /// One per write, in order.
    pub outcomes: Vec<ScheduleCas>,
    /// The store's clock (ms since the epoch) at the write.
    pub now_ms: i64,
}

/// Open the configured backend.
pub async fn open(config: &Config, limits: StoreLimits) -> Result<Arc<dyn Store>> {
    Ok(match config.storage.backend {
        StorageBackend::Embedded => {
            let path = config.data_dir().join("impressox.redb");
            Arc::new(embedded::EmbeddedStore::open(&path, limits)?)
        }
        StorageBackend::Redis => {
            Arc::new(redis_store::RedisStore::connect(&config.storage.redis_url, limits).await?)
        }
    })
}
