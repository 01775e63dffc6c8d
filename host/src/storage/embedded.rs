//! The embedded backend: one redb database file under `data_dir`.
//!
//! redb is an ACID, crash-safe embedded key-value store in pure Rust; every write below
//! is one transaction, committed durably before the call returns. Streams are a table
//! keyed by (stream, sequence) with a per-group cursor and a pending table, which is the
//! part of Redis Streams' consumer-group model the workers use.
//!
//! Entries are only ever deleted from a stream's head (below what every group has
//! acknowledged, see [`trim_acknowledged`]), so a stream's entries are the contiguous
//! sequences from its first to its last, and its length is their difference.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::rule_index::IndexedRule;
use anyhow::{Context, Result};
use async_trait::async_trait;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{
    EventCommit, KvOp, MarketCommit, PluginKvRefused, PricePoint, ScheduleCas, ScheduleCasReply,
    ScheduleRead, ScheduleRecord, ScheduleWrite, Store, StoreLimits, StreamEntry, StreamFull,
    StreamStats,
};
use crate::util::now_ms;

const RULES: TableDefinition<&str, &str> = TableDefinition::new("rules");
/// The rule indexes (`rule_index`): (scope, `"<created_at> <id>"`), and each scope's size.
const RULE_INDEX: TableDefinition<(&str, &str), ()> = TableDefinition::new("rule_index");
const RULE_INDEX_SIZE: TableDefinition<&str, u64> = TableDefinition::new("rule_index_size");
const LATEST: TableDefinition<&str, &[u8]> = TableDefinition::new("prices_latest");
/// (symbol, per-symbol sequence) → point; the oldest beyond `history_len` is removed.
const HISTORY: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("prices_history");
const HISTORY_SEQ: TableDefinition<&str, u64> = TableDefinition::new("prices_history_seq");
const CHECKPOINTS: TableDefinition<&str, &str> = TableDefinition::new("checkpoints");
const STREAM: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("stream_entries");
const STREAM_SEQ: TableDefinition<&str, u64> = TableDefinition::new("stream_seq");
/// (stream, idempotency key) → when it was first enqueued (ms).
const IDEMPOTENCY: TableDefinition<(&str, &str), i64> = TableDefinition::new("stream_idempotency");
/// (stream, group) → the highest sequence delivered to the group (0: none yet).
const GROUPS: TableDefinition<(&str, &str), u64> = TableDefinition::new("stream_groups");
/// (stream, group, sequence) → who holds it and how often it was delivered.
const PENDING: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("stream_pending");
/// lease name → (owner, until ms).
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases");
/// (namespace, key) → value: the general key-value space. A tuple key keeps one
/// namespace's keys adjacent, so listing it is a range scan.
const KV: TableDefinition<(&str, &str), &str> = TableDefinition::new("kv");
/// (plugin, key) → the plugins' `kv` capability: 8 bytes of expiry (ms since the epoch,
/// big-endian; 0: never) followed by the value. An expired row is absent to readers and
/// removed by the next write that needs the room.
const PLUGIN_KV: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("plugin_kv");
/// plugin → rows it has in [`PLUGIN_KV`] (expired ones until removed).
const PLUGIN_KV_ROWS: TableDefinition<&str, u64> = TableDefinition::new("plugin_kv_rows");
/// schedule name → the scheduler's shared record: 8 bytes of version (big-endian)
/// followed by its JSON (none: deleted, the version kept so an old one never matches).
const SCHEDULES: TableDefinition<&str, &[u8]> = TableDefinition::new("schedules");

#[derive(Serialize, Deserialize)]
struct StoredEntry {
    /// The idempotency key ("" for an event appended without one).
    key: String,
    body: String,
    /// An event's fields as its producer wrote them (`append_event`); absent for the
    /// entries the host enqueues, whose fields are `key` and `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fields: Option<Vec<(String, String)>>,
}

impl StoredEntry {
    fn into_entry(self, seq: u64, deliveries: u64) -> StreamEntry {
        let fields = self.fields.unwrap_or_else(|| {
            vec![
                ("key".into(), self.key.clone()),
                ("body".into(), self.body.clone()),
            ]
        });
        StreamEntry {
            id: seq.to_string(),
            key: self.key,
            body: self.body,
            deliveries,
            fields,
            malformed: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PendingEntry {
    consumer: String,
    deliveries: u64,
    /// When it was last handed out (0 in rows written before this field: idle).
    #[serde(default)]
    delivered_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct Lease {
    owner: String,
    until_ms: i64,
}

/// The embedded store.
pub struct EmbeddedStore {
    db: Arc<Database>,
    limits: StoreLimits,
    /// Wakes blocked `read_new` callers when something is enqueued in this process.
    appended: Notify,
    stats: StreamStats,
}

impl EmbeddedStore {
    /// Open (or create) the database file, creating its folder, and forget idempotency
    /// keys older than their time to live.
    pub fn open(path: &Path, limits: StoreLimits) -> Result<EmbeddedStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
        }
        let db = Database::create(path).with_context(|| {
            format!(
                "failed to open the embedded store {} (is another impressox process using it?)",
                path.display()
            )
        })?;
        let store = EmbeddedStore {
            db: Arc::new(db),
            limits,
            appended: Notify::new(),
            stats: StreamStats::default(),
        };
        store.init_tables()?;
        store.prune_idempotency_keys()?;
        Ok(store)
    }

    /// Create every table, so readers never meet a missing one.
    fn init_tables(&self) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(RULES)?;
        tx.open_table(RULE_INDEX)?;
        tx.open_table(RULE_INDEX_SIZE)?;
        Self::index_unindexed_rules(&tx)?;
        tx.open_table(LATEST)?;
        tx.open_table(HISTORY)?;
        tx.open_table(HISTORY_SEQ)?;
        tx.open_table(CHECKPOINTS)?;
        tx.open_table(STREAM)?;
        tx.open_table(STREAM_SEQ)?;
        tx.open_table(IDEMPOTENCY)?;
        tx.open_table(GROUPS)?;
        tx.open_table(PENDING)?;
        tx.open_table(LEASES)?;
        tx.open_table(KV)?;
        tx.open_table(PLUGIN_KV)?;
        tx.open_table(PLUGIN_KV_ROWS)?;
        tx.open_table(SCHEDULES)?;
        tx.commit()?;
        Ok(())
    }

    fn prune_idempotency_keys(&self) -> Result<()> {
        let cutoff = now_ms() - (self.limits.idempotency_ttl_secs as i64) * 1000;
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(IDEMPOTENCY)?;
            t.retain(|_, created| created >= cutoff)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Append entries whose keys are new, inside `tx`; all or nothing at the stream's
    /// bound (a [`StreamFull`] error, and the caller drops `tx`, so no key is recorded).
    fn append_once(
        &self,
        tx: &redb::WriteTransaction,
        stream: &str,
        items: &[(String, String)],
    ) -> Result<Vec<Option<String>>> {
        let items: Vec<(Option<&str>, StoredEntry)> = items
            .iter()
            .map(|(key, body)| {
                (
                    Some(key.as_str()),
                    StoredEntry {
                        key: key.clone(),
                        body: body.clone(),
                        fields: None,
                    },
                )
            })
            .collect();
        append(tx, stream, items, self.limits.stream_maxlen as u64)
    }

    /// Create `group` on `stream` unless it exists: before the oldest entry, or after the
    /// newest (`at_end`). An existing group costs a read, not a durable write: producers
    /// call this before their appends.
    fn create_group(&self, stream: &str, group: &str, at_end: bool) -> Result<()> {
        if self
            .db
            .begin_read()?
            .open_table(GROUPS)?
            .get((stream, group))?
            .is_some()
        {
            return Ok(());
        }
        let tx = self.db.begin_write()?;
        {
            let mut groups = tx.open_table(GROUPS)?;
            if groups.get((stream, group))?.is_none() {
                let start = if at_end {
                    tx.open_table(STREAM_SEQ)?
                        .get(stream)?
                        .map_or(0, |v| v.value())
                } else {
                    0
                };
                groups.insert((stream, group), start)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Count a refusal at the bound, passing every result through.
    fn counted<T>(&self, stream: &str, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && StreamFull::find(e).is_some()
        {
            self.stats.count_refusal(stream);
        }
        result
    }

    fn entries_after(
        &self,
        stream: &str,
        after: u64,
        count: usize,
    ) -> Result<Vec<(u64, StoredEntry)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(STREAM)?;
        let mut out = Vec::new();
        for item in t.range((stream, after + 1)..=(stream, u64::MAX))? {
            let (k, v) = item?;
            out.push((k.value().1, serde_json::from_slice(v.value())?));
            if out.len() >= count {
                break;
            }
        }
        Ok(out)
    }

    /// Hand pending entries of `group` that `pick` selects (at most `count`) to
    /// `consumer` again, counting the delivery; entries trimmed meanwhile leave the
    /// pending list. What `read_pending` and `claim_stale` share.
    fn redeliver(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        pick: impl Fn(&PendingEntry) -> bool,
    ) -> Result<Vec<StreamEntry>> {
        let tx = self.db.begin_write()?;
        let mut out = Vec::new();
        {
            let mut pending = tx.open_table(PENDING)?;
            let entries = tx.open_table(STREAM)?;
            let mut chosen: Vec<(u64, PendingEntry)> = Vec::new();
            for item in pending.range((stream, group, 0)..=(stream, group, u64::MAX))? {
                let (k, v) = item?;
                let p: PendingEntry = serde_json::from_slice(v.value())?;
                if pick(&p) {
                    chosen.push((k.value().2, p));
                    if chosen.len() >= count {
                        break;
                    }
                }
            }
            let now = now_ms();
            for (seq, mut p) in chosen {
                let Some(raw) = entries.get((stream, seq))? else {
                    pending.remove((stream, group, seq))?;
                    continue;
                };
                let e: StoredEntry = serde_json::from_slice(raw.value())?;
                p.consumer = consumer.to_string();
                p.deliveries += 1;
                p.delivered_ms = now;
                pending.insert((stream, group, seq), serde_json::to_vec(&p)?.as_slice())?;
                out.push(e.into_entry(seq, p.deliveries));
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn try_read_new(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>> {
        let tx = self.db.begin_write()?;
        let mut out = Vec::new();
        {
            let mut groups = tx.open_table(GROUPS)?;
            let known = groups.get((stream, group))?.map(|v| v.value());
            let last = known.unwrap_or(0);
            let entries = self.entries_after(stream, last, count)?;
            if entries.is_empty() {
                // A group exists from its first read on (as with Redis), so what it has
                // not read yet is kept for it from then on.
                if known.is_none() {
                    groups.insert((stream, group), 0)?;
                } else {
                    return Ok(out);
                }
            }
            let mut pending = tx.open_table(PENDING)?;
            let mut newest = last;
            for (seq, entry) in entries {
                let p = PendingEntry {
                    consumer: consumer.to_string(),
                    deliveries: 1,
                    delivered_ms: now_ms(),
                };
                pending.insert((stream, group, seq), serde_json::to_vec(&p)?.as_slice())?;
                newest = seq;
                out.push(entry.into_entry(seq, 1));
            }
            groups.insert((stream, group), newest)?;
        }
        tx.commit()?;
        Ok(out)
    }
}

/// Append `items` to `stream` inside `tx`, skipping those whose idempotency key (if any)
/// was seen; all or nothing at `maxlen` entries some group still needs (a [`StreamFull`]
/// error, and the caller drops `tx`, so no key is recorded).
fn append(
    tx: &redb::WriteTransaction,
    stream: &str,
    items: Vec<(Option<&str>, StoredEntry)>,
    maxlen: u64,
) -> Result<Vec<Option<String>>> {
    let mut out = Vec::with_capacity(items.len());
    if items.is_empty() {
        return Ok(out);
    }
    let mut idem = tx.open_table(IDEMPOTENCY)?;
    let mut seqs = tx.open_table(STREAM_SEQ)?;
    let mut entries = tx.open_table(STREAM)?;
    let mut fresh = std::collections::HashSet::new();
    let mut unkeyed = 0u64;
    for (key, _) in &items {
        match key {
            Some(key) if idem.get((stream, *key))?.is_none() => {
                fresh.insert(*key);
            }
            Some(_) => {}
            None => unkeyed += 1,
        }
    }
    let wanted = fresh.len() as u64 + unkeyed;
    let maxlen = maxlen.max(1);
    let fits = |len: u64| len == 0 || len + wanted <= maxlen;
    if wanted > 0 && !fits(stream_len_in(&entries, stream)?) {
        let held_by = trim_acknowledged(
            &mut entries,
            &tx.open_table(GROUPS)?,
            &tx.open_table(PENDING)?,
            stream,
        )?;
        let len = stream_len_in(&entries, stream)?;
        if !fits(len) {
            return Err(StreamFull {
                stream: stream.to_string(),
                len,
                maxlen,
                held_by,
            }
            .into());
        }
    }
    let mut seq = seqs.get(stream)?.map(|v| v.value()).unwrap_or(0);
    let now = now_ms();
    for (key, stored) in items {
        if let Some(key) = key {
            if idem.get((stream, key))?.is_some() {
                out.push(None);
                continue;
            }
            idem.insert((stream, key), now)?;
        }
        seq += 1;
        entries.insert((stream, seq), serde_json::to_vec(&stored)?.as_slice())?;
        out.push(Some(seq.to_string()));
    }
    seqs.insert(stream, seq)?;
    Ok(out)
}

/// Acknowledge `ids` for `group` inside `tx`, then trim what every group acknowledged:
/// what `ack` and an event commit share.
fn ack_in(tx: &redb::WriteTransaction, stream: &str, group: &str, ids: &[String]) -> Result<()> {
    let mut pending = tx.open_table(PENDING)?;
    for id in ids {
        let seq: u64 = id
            .parse()
            .with_context(|| format!("`{id}` is not an entry id of the embedded store"))?;
        pending.remove((stream, group, seq))?;
    }
    trim_acknowledged(
        &mut tx.open_table(STREAM)?,
        &tx.open_table(GROUPS)?,
        &pending,
        stream,
    )?;
    Ok(())
}

/// Entries in `stream`: its sequences are contiguous (trimming only removes a head).
fn stream_len_in(
    entries: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    stream: &str,
) -> Result<u64> {
    let mut range = entries.range((stream, 0)..=(stream, u64::MAX))?;
    let Some(first) = range.next() else {
        return Ok(0);
    };
    let first = first?.0.value().1;
    let last = match range.next_back() {
        Some(last) => last?.0.value().1,
        None => first,
    };
    Ok(last - first + 1)
}

/// Delete the entries of `stream` every consumer group has acknowledged: those below the
/// oldest entry any group still needs (its oldest pending entry, or else the first it was
/// never handed). A stream no group reads yet keeps everything. Returns the group holding
/// the oldest needed entry.
fn trim_acknowledged(
    entries: &mut redb::Table<'_, (&'static str, u64), &'static [u8]>,
    groups: &impl ReadableTable<(&'static str, &'static str), u64>,
    pending: &impl ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
    stream: &str,
) -> Result<Option<String>> {
    let mut oldest: Option<(u64, String)> = None;
    for item in groups.range((stream, "")..)? {
        let (k, last) = item?;
        let (s, group) = k.value();
        if s != stream {
            break;
        }
        let mut need = last.value() + 1;
        if let Some(p) = pending
            .range((stream, group, 0)..=(stream, group, u64::MAX))?
            .next()
        {
            need = need.min(p?.0.value().2);
        }
        if oldest.as_ref().is_none_or(|(o, _)| need < *o) {
            oldest = Some((need, group.to_string()));
        }
    }
    let Some((below, group)) = oldest else {
        return Ok(None);
    };
    entries.retain_in((stream, 0)..(stream, below), |_, _| false)?;
    Ok(Some(group))
}

fn decode_point(bytes: &[u8]) -> Result<PricePoint> {
    serde_json::from_slice(bytes).context("corrupt price record in the embedded store")
}

/// The rule indexes' upkeep, inside the caller's write transaction.
impl EmbeddedStore {
    fn index_rule(tx: &redb::WriteTransaction, rule: &IndexedRule) -> Result<()> {
        let mut index = tx.open_table(RULE_INDEX)?;
        let mut sizes = tx.open_table(RULE_INDEX_SIZE)?;
        let entry = rule.entry();
        for scope in rule.scopes() {
            if index
                .insert((scope.as_str(), entry.as_str()), ())?
                .is_none()
            {
                let n = sizes.get(scope.as_str())?.map_or(0, |v| v.value());
                sizes.insert(scope.as_str(), n + 1)?;
            }
        }
        Ok(())
    }

    fn unindex_rule(tx: &redb::WriteTransaction, rule: &IndexedRule) -> Result<()> {
        let mut index = tx.open_table(RULE_INDEX)?;
        let mut sizes = tx.open_table(RULE_INDEX_SIZE)?;
        let entry = rule.entry();
        for scope in rule.scopes() {
            if index.remove((scope.as_str(), entry.as_str()))?.is_some() {
                let n = sizes.get(scope.as_str())?.map_or(0, |v| v.value());
                if n <= 1 {
                    sizes.remove(scope.as_str())?;
                } else {
                    sizes.insert(scope.as_str(), n - 1)?;
                }
            }
        }
        Ok(())
    }

    /// Index rules stored before the indexes existed (an empty index beside rules).
    fn index_unindexed_rules(tx: &redb::WriteTransaction) -> Result<()> {
        let rules: Vec<String> = {
            let index = tx.open_table(RULE_INDEX)?;
            let rules = tx.open_table(RULES)?;
            if !index.is_empty()? || rules.is_empty()? {
                return Ok(());
            }
            rules
                .iter()?
                .map(|item| item.map(|(_, v)| v.value().to_string()))
                .collect::<Result<_, _>>()?
        };
        for json in &rules {
            if let Some(keys) = IndexedRule::indexable(json) {
                Self::index_rule(tx, &keys)?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> Result<()> {
        self.db.begin_read()?;
        Ok(())
    }

    async fn put_rule(&self, id: &str, json: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        let before = tx
            .open_table(RULES)?
            .insert(id, json)?
            .map(|v| v.value().to_string());
        if let Some(old) = before
            .as_deref()
            .and_then(|j| IndexedRule::from_json(j).ok())
        {
            Self::unindex_rule(&tx, &old)?;
        }
        if let Some(keys) = IndexedRule::indexable(json) {
            Self::index_rule(&tx, &keys)?;
        }
        tx.commit()?;
        Ok(())
    }

    async fn get_rule(&self, id: &str) -> Result<Option<String>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(RULES)?;
        Ok(t.get(id)?.map(|v| v.value().to_string()))
    }

    async fn list_rules(&self) -> Result<Vec<String>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(RULES)?;
        let mut out = Vec::with_capacity(t.len()? as usize);
        for item in t.iter()? {
            out.push(item?.1.value().to_string());
        }
        Ok(out)
    }

    async fn delete_rule(&self, id: &str) -> Result<bool> {
        let tx = self.db.begin_write()?;
        let removed = tx
            .open_table(RULES)?
            .remove(id)?
            .map(|v| v.value().to_string());
        if let Some(old) = removed
            .as_deref()
            .and_then(|j| IndexedRule::from_json(j).ok())
        {
            Self::unindex_rule(&tx, &old)?;
        }
        tx.commit()?;
        Ok(removed.is_some())
    }

    async fn page_rules(
        &self,
        scope: &super::RuleScope,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<String>> {
        let tx = self.db.begin_read()?;
        let index = tx.open_table(RULE_INDEX)?;
        let rules = tx.open_table(RULES)?;
        let key = scope.key();
        let mut out = Vec::with_capacity(limit.min(1000));
        // `(key, "")` is the scope's first entry; every entry of the scope starts with
        // its key, so the range ends where the key changes.
        for item in index.range((key.as_str(), "")..)?.skip(offset) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            let (scope_key, entry) = k.value();
            if scope_key != key {
                break;
            }
            if let Some(json) = rules.get(super::rule_index::id_of_entry(entry))? {
                out.push(json.value().to_string());
            }
        }
        Ok(out)
    }

    async fn count_rules_in(&self, scope: &super::RuleScope) -> Result<u64> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(RULE_INDEX_SIZE)?;
        Ok(t.get(scope.key().as_str())?.map_or(0, |v| v.value()))
    }

    async fn latest_price(&self, symbol: &str) -> Result<Option<PricePoint>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(LATEST)?;
        t.get(symbol)?.map(|v| decode_point(v.value())).transpose()
    }

    async fn latest_prices(&self) -> Result<Vec<PricePoint>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(LATEST)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            out.push(decode_point(item?.1.value())?);
        }
        Ok(out)
    }

    async fn price_history(&self, symbol: &str, limit: usize) -> Result<Vec<PricePoint>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(HISTORY)?;
        let mut out = Vec::new();
        for item in t.range((symbol, 0)..=(symbol, u64::MAX))?.rev() {
            out.push(decode_point(item?.1.value())?);
            if out.len() >= limit {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    async fn commit_market(&self, commit: &MarketCommit) -> Result<Vec<Option<String>>> {
        if !commit.fence.is_empty() {
            anyhow::bail!(
                "the embedded store serves one host: a fenced (several-host) market commit \
                 needs the Redis store"
            );
        }
        let tx = self.db.begin_write()?;
        let stream = super::NOTIFY_REQUESTS;
        let ids = self.counted(stream, self.append_once(&tx, stream, &commit.requests))?;
        {
            let mut rules = tx.open_table(RULES)?;
            for (id, json) in &commit.rules {
                rules.insert(id.as_str(), json.as_str())?;
            }
            let mut latest = tx.open_table(LATEST)?;
            for p in &commit.latest {
                latest.insert(p.symbol.as_str(), serde_json::to_vec(p)?.as_slice())?;
            }
            let mut history = tx.open_table(HISTORY)?;
            let mut seqs = tx.open_table(HISTORY_SEQ)?;
            let keep = self.limits.history_len.max(1) as u64;
            for p in &commit.history {
                let sym = p.symbol.as_str();
                let seq = seqs.get(sym)?.map(|v| v.value()).unwrap_or(0);
                history.insert((sym, seq), serde_json::to_vec(p)?.as_slice())?;
                if seq >= keep {
                    history.remove((sym, seq - keep))?;
                }
                seqs.insert(sym, seq + 1)?;
            }
            let mut checkpoints = tx.open_table(CHECKPOINTS)?;
            for (name, value) in &commit.checkpoints {
                checkpoints.insert(name.as_str(), value.as_str())?;
            }
        }
        tx.commit()?;
        if ids.iter().any(Option::is_some) {
            self.appended.notify_waiters();
        }
        Ok(ids)
    }

    async fn get_checkpoint(&self, name: &str) -> Result<Option<String>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(CHECKPOINTS)?;
        Ok(t.get(name)?.map(|v| v.value().to_string()))
    }

    async fn enqueue_once(&self, stream: &str, key: &str, body: &str) -> Result<Option<String>> {
        let tx = self.db.begin_write()?;
        let appended = self.append_once(&tx, stream, &[(key.to_string(), body.to_string())]);
        let id = self.counted(stream, appended)?.remove(0);
        tx.commit()?;
        if id.is_some() {
            self.appended.notify_waiters();
        }
        Ok(id)
    }

    async fn drop_group(&self, stream: &str, group: &str) -> Result<bool> {
        let tx = self.db.begin_write()?;
        let existed = {
            let existed = tx.open_table(GROUPS)?.remove((stream, group))?.is_some();
            tx.open_table(PENDING)?
                .retain_in((stream, group, 0)..=(stream, group, u64::MAX), |_, _| false)?;
            existed
        };
        tx.commit()?;
        Ok(existed)
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<()> {
        self.create_group(stream, group, false)
    }

    async fn read_new(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<StreamEntry>> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(block_ms);
        loop {
            // Register interest before looking, so an append in between is not missed.
            let notified = self.appended.notified();
            let got = self.try_read_new(stream, group, consumer, count)?;
            if !got.is_empty() || block_ms == 0 {
                return Ok(got);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn read_pending(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>> {
        self.redeliver(stream, group, consumer, count, |p| p.consumer == consumer)
    }

    async fn claim_stale(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> Result<Vec<StreamEntry>> {
        let now = now_ms();
        self.redeliver(stream, group, consumer, count, |p| {
            now - p.delivered_ms >= min_idle_ms as i64
        })
    }

    async fn put_checkpoint(&self, name: &str, value: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(CHECKPOINTS)?.insert(name, value)?;
        tx.commit()?;
        Ok(())
    }

    async fn acquire_lease(&self, name: &str, owner: &str, ttl_ms: u64) -> Result<bool> {
        let tx = self.db.begin_write()?;
        {
            let mut leases = tx.open_table(LEASES)?;
            let now = now_ms();
            let held_by_other = match leases.get(name)? {
                Some(v) => {
                    let l: Lease = serde_json::from_slice(v.value())?;
                    l.owner != owner && l.until_ms > now
                }
                None => false,
            };
            if held_by_other {
                return Ok(false);
            }
            let lease = Lease {
                owner: owner.to_string(),
                until_ms: now + ttl_ms as i64,
            };
            leases.insert(name, serde_json::to_vec(&lease)?.as_slice())?;
        }
        tx.commit()?;
        Ok(true)
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut leases = tx.open_table(LEASES)?;
            let mine = match leases.get(name)? {
                Some(v) => serde_json::from_slice::<Lease>(v.value())?.owner == owner,
                None => false,
            };
            if mine {
                leases.remove(name)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<()> {
        let tx = self.db.begin_write()?;
        ack_in(&tx, stream, group, ids)?;
        tx.commit()?;
        Ok(())
    }

    async fn stream_len(&self, stream: &str) -> Result<u64> {
        let tx = self.db.begin_read()?;
        stream_len_in(&tx.open_table(STREAM)?, stream)
    }

    fn stream_stats(&self) -> &StreamStats {
        &self.stats
    }

    async fn kv_get(&self, ns: &str, key: &str) -> Result<Option<String>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(KV)?;
        Ok(t.get((ns, key))?.map(|v| v.value().to_string()))
    }

    async fn kv_put(&self, ns: &str, key: &str, value: &str) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(KV)?.insert((ns, key), value)?;
        tx.commit()?;
        Ok(())
    }

    async fn kv_delete(&self, ns: &str, key: &str) -> Result<bool> {
        let tx = self.db.begin_write()?;
        let existed = tx.open_table(KV)?.remove((ns, key))?.is_some();
        tx.commit()?;
        Ok(existed)
    }

    async fn kv_list(&self, ns: &str) -> Result<Vec<(String, String)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(KV)?;
        let mut out = Vec::new();
        // Keys of `ns` sort after (ns, "") and before any longer namespace's.
        for item in t.range((ns, "")..)? {
            let (k, v) = item?;
            let (n, key) = k.value();
            if n != ns {
                break;
            }
            out.push((key.to_string(), v.value().to_string()));
        }
        Ok(out)
    }

    async fn plugin_kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PLUGIN_KV)?;
        let Some(row) = t.get((ns, key))? else {
            return Ok(None);
        };
        Ok(live_value(row.value(), now_ms()).map(<[u8]>::to_vec))
    }

    async fn plugin_kv_set(
        &self,
        ns: &str,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        max_keys: u64,
    ) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut kv = PluginKvTables::open(&tx)?;
            kv.set(ns, key, value, ttl_ms, max_keys, now_ms())?;
        }
        tx.commit()?;
        Ok(())
    }

    async fn plugin_kv_delete(&self, ns: &str, key: &str) -> Result<bool> {
        let tx = self.db.begin_write()?;
        let was_live = PluginKvTables::open(&tx)?.delete(ns, key, now_ms())?;
        tx.commit()?;
        Ok(was_live)
    }

    async fn plugin_kv_incr(&self, ns: &str, key: &str, by: i64, max_keys: u64) -> Result<i64> {
        let tx = self.db.begin_write()?;
        let new = PluginKvTables::open(&tx)?.incr(ns, key, by, max_keys, now_ms())?;
        tx.commit()?;
        Ok(new)
    }

    async fn append_event(
        &self,
        stream: &str,
        key: Option<&str>,
        fields: &[(String, String)],
        maxlen: u64,
    ) -> Result<Option<String>> {
        let stored = StoredEntry {
            key: key.unwrap_or_default().to_string(),
            body: String::new(),
            fields: Some(fields.to_vec()),
        };
        let tx = self.db.begin_write()?;
        let appended = append(&tx, stream, vec![(key, stored)], maxlen);
        let id = self.counted(stream, appended)?.remove(0);
        tx.commit()?;
        if id.is_some() {
            self.appended.notify_waiters();
        }
        Ok(id)
    }

    async fn ensure_group_at(&self, stream: &str, group: &str, at_end: bool) -> Result<()> {
        self.create_group(stream, group, at_end)
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
        let tx = self.db.begin_write()?;
        {
            let mut pending = tx.open_table(PENDING)?;
            let now = now_ms();
            for id in ids {
                let Ok(seq) = id.parse::<u64>() else { continue };
                let touched = match pending.get((stream, group, seq))? {
                    Some(v) => {
                        let mut p: PendingEntry = serde_json::from_slice(v.value())?;
                        (p.consumer == consumer).then(|| {
                            p.delivered_ms = now;
                            p
                        })
                    }
                    None => None,
                };
                if let Some(p) = touched {
                    pending.insert((stream, group, seq), serde_json::to_vec(&p)?.as_slice())?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    async fn pending_count(&self, stream: &str, group: &str) -> Result<u64> {
        let tx = self.db.begin_read()?;
        let pending = tx.open_table(PENDING)?;
        let mut n = 0;
        for item in pending.range((stream, group, 0)..=(stream, group, u64::MAX))? {
            item?;
            n += 1;
        }
        Ok(n)
    }

    async fn commit_events(&self, commit: &EventCommit) -> Result<()> {
        if commit.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write()?;
        {
            let pending = tx.open_table(PENDING)?;
            let mut stale = Vec::new();
            for id in &commit.acks {
                let mine = match id.parse::<u64>() {
                    Ok(seq) => {
                        match pending.get((commit.stream.as_str(), commit.group.as_str(), seq))? {
                            Some(v) => {
                                serde_json::from_slice::<PendingEntry>(v.value())?.consumer
                                    == commit.consumer
                            }
                            None => false,
                        }
                    }
                    Err(_) => false,
                };
                if !mine {
                    stale.push(id.clone());
                }
            }
            if !stale.is_empty() {
                return Err(super::StaleAcks { ids: stale }.into());
            }
        }
        let notify = super::NOTIFY_REQUESTS;
        let ids = self.counted(notify, self.append_once(&tx, notify, &commit.notify))?;
        {
            let mut kv = PluginKvTables::open(&tx)?;
            let now = now_ms();
            for e in &commit.kv {
                match &e.op {
                    KvOp::Set { value, ttl_ms } => {
                        kv.set(&e.ns, &e.key, value, *ttl_ms, commit.kv_max_keys, now)?
                    }
                    KvOp::Delete => {
                        kv.delete(&e.ns, &e.key, now)?;
                    }
                    KvOp::Incr(by) => {
                        kv.incr(&e.ns, &e.key, *by, commit.kv_max_keys, now)?;
                    }
                }
            }
            let mut general = tx.open_table(KV)?;
            for (ns, key) in &commit.forget {
                general.remove((ns.as_str(), key.as_str()))?;
            }
        }
        if !commit.acks.is_empty() {
            ack_in(&tx, &commit.stream, &commit.group, &commit.acks)?;
        }
        tx.commit()?;
        if ids.iter().any(Option::is_some) {
            self.appended.notify_waiters();
        }
        Ok(())
    }

    async fn schedule_load(&self, names: &[String]) -> Result<ScheduleRead> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SCHEDULES)?;
        let mut records = Vec::with_capacity(names.len());
        for name in names {
            records.push(match t.get(name.as_str())? {
                Some(row) => decode_schedule(row.value())?,
                None => ScheduleRecord {
                    json: None,
                    version: 0,
                },
            });
        }
        Ok(ScheduleRead {
            records,
            now_ms: now_ms(),
        })
    }

    async fn schedule_cas(&self, writes: &[ScheduleWrite]) -> Result<ScheduleCasReply> {
        let tx = self.db.begin_write()?;
        let mut outcomes = Vec::with_capacity(writes.len());
        {
            let mut t = tx.open_table(SCHEDULES)?;
            for w in writes {
                let current = match t.get(w.name.as_str())? {
                    Some(row) => decode_schedule(row.value())?,
                    None => ScheduleRecord {
                        json: None,
                        version: 0,
                    },
                };
                if current.version != w.version {
                    outcomes.push(ScheduleCas::Conflict(current));
                    continue;
                }
                let version = current.version + 1;
                let mut row = version.to_be_bytes().to_vec();
                row.extend_from_slice(w.json.as_deref().unwrap_or("").as_bytes());
                t.insert(w.name.as_str(), row.as_slice())?;
                outcomes.push(ScheduleCas::Written { version });
            }
        }
        tx.commit()?;
        Ok(ScheduleCasReply {
            outcomes,
            now_ms: now_ms(),
        })
    }
}

/// The two tables of the plugins' `kv` capability, open in one write transaction, so a
/// single call and an event commit change them the same way.
struct PluginKvTables<'tx> {
    values: redb::Table<'tx, (&'static str, &'static str), &'static [u8]>,
    rows: redb::Table<'tx, &'static str, u64>,
}

impl<'tx> PluginKvTables<'tx> {
    fn open(tx: &'tx redb::WriteTransaction) -> Result<PluginKvTables<'tx>> {
        Ok(PluginKvTables {
            values: tx.open_table(PLUGIN_KV)?,
            rows: tx.open_table(PLUGIN_KV_ROWS)?,
        })
    }

    fn set(
        &mut self,
        ns: &str,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        max_keys: u64,
        now: i64,
    ) -> Result<()> {
        let expires = ttl_ms.map_or(0, |ttl| (now as u64).saturating_add(ttl.max(1)));
        let exists = self.values.get((ns, key))?.is_some();
        if !exists {
            make_room(&mut self.values, &mut self.rows, ns, now, max_keys)?;
        }
        self.values
            .insert((ns, key), encode_row(expires, value).as_slice())?;
        Ok(())
    }

    /// Whether a live value was removed.
    fn delete(&mut self, ns: &str, key: &str, now: i64) -> Result<bool> {
        let removed = self.values.remove((ns, key))?;
        Ok(match removed {
            Some(row) => {
                let live = live_value(row.value(), now).is_some();
                drop(row);
                let n = self.rows.get(ns)?.map_or(0, |v| v.value());
                self.rows.insert(ns, n.saturating_sub(1))?;
                live
            }
            None => false,
        })
    }

    fn incr(&mut self, ns: &str, key: &str, by: i64, max_keys: u64, now: i64) -> Result<i64> {
        // (expiry, current value) of a live row; a missing or expired one counts as 0.
        let current = match self.values.get((ns, key))? {
            Some(row) => Some(match live_value(row.value(), now) {
                Some(v) => (row_expiry(row.value()), Some(parse_integer(v)?)),
                None => (0, None),
            }),
            None => None,
        };
        let (expires, value) = match current {
            Some((expires, value)) => (expires, value.unwrap_or(0)),
            None => {
                make_room(&mut self.values, &mut self.rows, ns, now, max_keys)?;
                (0, 0)
            }
        };
        let new = value
            .checked_add(by)
            .ok_or(PluginKvRefused::Overflow { by })?;
        self.values.insert(
            (ns, key),
            encode_row(expires, new.to_string().as_bytes()).as_slice(),
        )?;
        Ok(new)
    }
}

/// A [`SCHEDULES`] row: version, then JSON (empty: deleted).
fn decode_schedule(row: &[u8]) -> Result<ScheduleRecord> {
    let version = row
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .context("corrupt schedule record in the embedded store")?;
    let json = std::str::from_utf8(row.get(8..).unwrap_or_default())
        .context("corrupt schedule record in the embedded store")?;
    Ok(ScheduleRecord {
        json: (!json.is_empty()).then(|| json.to_string()),
        version,
    })
}

// ------------------------------------------------------------------ plugin kv rows

fn encode_row(expires_ms: u64, value: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(8 + value.len());
    row.extend_from_slice(&expires_ms.to_be_bytes());
    row.extend_from_slice(value);
    row
}

fn row_expiry(row: &[u8]) -> u64 {
    row.get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// The value of a row, unless it has expired at `now`.
fn live_value(row: &[u8], now: i64) -> Option<&[u8]> {
    let expires = row_expiry(row);
    if expires != 0 && expires <= now as u64 {
        return None;
    }
    row.get(8..)
}

fn parse_integer(value: &[u8]) -> Result<i64, PluginKvRefused> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(PluginKvRefused::NotAnInteger)
}

/// Count a new row of `ns`, first removing its expired rows when it is at `max_keys`;
/// refused when it stays there.
fn make_room(
    t: &mut redb::Table<(&'static str, &'static str), &'static [u8]>,
    rows: &mut redb::Table<&'static str, u64>,
    ns: &str,
    now: i64,
    max_keys: u64,
) -> Result<()> {
    let mut n = rows.get(ns)?.map_or(0, |v| v.value());
    if n >= max_keys {
        let mut expired = Vec::new();
        for item in t.range((ns, "")..)? {
            let (k, v) = item?;
            let (row_ns, key) = k.value();
            if row_ns != ns {
                break;
            }
            if live_value(v.value(), now).is_none() {
                expired.push(key.to_string());
            }
        }
        for key in &expired {
            t.remove((ns, key.as_str()))?;
        }
        n = n.saturating_sub(expired.len() as u64);
        if n >= max_keys {
            rows.insert(ns, n)?;
            return Err(PluginKvRefused::TooManyKeys { max: max_keys }.into());
        }
    }
    rows.insert(ns, n + 1)?;
    Ok(())
}
