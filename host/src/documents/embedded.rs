//! The embedded document store: a redb file (`data_dir/documents.redb`).
//!
//! Documents are JSON by (collection, `_id`). Every index keeps one row per document in
//! `doc_index`: (collection, index, key, `_id`), the key being the indexed values in the
//! order-preserving encoding of [`super::filter::encode_key`]. Unique indexes also keep
//! (collection, index, key as JSON) → `_id` in `doc_unique`, checked in the same
//! transaction as the write, so a duplicate is refused exactly as MongoDB's E11000
//! would be. Both change in the same transaction as the document they describe.
//!
//! Queries go through a small planner (docs/design/notify.md §2.3): an index whose
//! leading fields all have an `Eq` condition, optionally followed by a field with range
//! conditions or the sort field, turns the query into a key-range scan; each document
//! found is checked against the whole filter, and the scan stops at the limit when the
//! index order is the sort order. Without a usable index the collection is scanned. The
//! answer is the same either way: sorted by the sort keys, ties by `_id` ascending.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use redb::{Database, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::filter::{KEY_END, encode_key, encoded_len, value_range};
use super::{
    Cond, Doc, Documents, Filter, IndexSpec, Order, Query, Write, WriteOutcome, id_of, rev_of,
};

const DOCS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("docs");
/// (collection, index name, key as JSON) → `_id`, for unique indexes.
const UNIQUE: TableDefinition<(&str, &str, &str), &str> = TableDefinition::new("doc_unique");
/// (collection, index name, encoded key, `_id`): one row per document and index. The
/// `_id` in the key makes rows of equal keys distinct and orders them by `_id`.
const INDEX: TableDefinition<(&str, &str, &[u8], &str), ()> = TableDefinition::new("doc_index");
/// (collection, index name) → the index's fields and uniqueness.
const META: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("doc_index_meta");

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexMeta {
    fields: Vec<String>,
    unique: bool,
    /// The index's rows in `doc_index` are complete. Absent in META written before
    /// `doc_index` existed: `ensure_indexes` builds the rows then, and until it has,
    /// writes skip the index and the planner ignores it. (The converse is not detected:
    /// a binary from before `doc_index` writing to this file would leave rows stale.)
    #[serde(default)]
    rows: bool,
}

impl IndexMeta {
    /// The unique-index key of a document: its indexed values as a JSON array (missing =
    /// null).
    fn unique_key(&self, doc: &Doc) -> String {
        let values: Vec<&Value> = self.values(doc).collect();
        serde_json::to_string(&values).unwrap_or_default()
    }

    /// The `doc_index` key of a document.
    fn key(&self, doc: &Doc) -> Vec<u8> {
        encode_key(self.values(doc))
    }

    fn values<'a>(&'a self, doc: &'a Doc) -> impl Iterator<Item = &'a Value> {
        self.fields
            .iter()
            .map(|f| doc.get(f).unwrap_or(&Value::Null))
    }
}

/// The key of `DOCS` and `META`: (collection, `_id` or index name).
type PairKey = (&'static str, &'static str);
/// The key of `INDEX`.
type IndexKey = (&'static str, &'static str, &'static [u8], &'static str);

/// A collection's indexes, by name.
type Indexes = Arc<Vec<(String, IndexMeta)>>;

fn load_indexes(meta: &impl ReadableTable<PairKey, &'static [u8]>, coll: &str) -> Result<Indexes> {
    let mut out = Vec::new();
    for item in meta.range((coll, "")..)? {
        let (k, v) = item?;
        let (c, name) = k.value();
        if c != coll {
            break;
        }
        out.push((name.to_string(), serde_json::from_slice(v.value())?));
    }
    Ok(Arc::new(out))
}

/// The tables a write transaction works on, opened once per batch (opening a table is
/// not free, and a batch may hold thousands of writes).
struct WriteTables<'tx> {
    docs: Table<'tx, PairKey, &'static [u8]>,
    unique: Table<'tx, (&'static str, &'static str, &'static str), &'static str>,
    index: Table<'tx, IndexKey, ()>,
    meta: Table<'tx, PairKey, &'static [u8]>,
    /// Each collection's indexes, read from META once per transaction: writes are hot
    /// and META changes only in `ensure_indexes`, which is a transaction of its own.
    indexes: HashMap<String, Indexes>,
}

impl<'tx> WriteTables<'tx> {
    fn open(tx: &'tx WriteTransaction) -> Result<WriteTables<'tx>> {
        Ok(WriteTables {
            docs: tx.open_table(DOCS)?,
            unique: tx.open_table(UNIQUE)?,
            index: tx.open_table(INDEX)?,
            meta: tx.open_table(META)?,
            indexes: HashMap::new(),
        })
    }

    fn indexes(&mut self, coll: &str) -> Result<Indexes> {
        if let Some(i) = self.indexes.get(coll) {
            return Ok(i.clone());
        }
        let i = load_indexes(&self.meta, coll)?;
        self.indexes.insert(coll.to_string(), i.clone());
        Ok(i)
    }

    /// Apply one write.
    fn apply(&mut self, w: Write) -> Result<WriteOutcome> {
        let (coll, new_doc, expected_rev, mode) = match w {
            Write::Delete { coll, id } => {
                let Some(removed) = self.docs.remove((coll.as_str(), id.as_str()))? else {
                    return Ok(WriteOutcome::Missing);
                };
                let old: Doc = serde_json::from_slice(removed.value())?;
                drop(removed);
                for (name, m) in self.indexes(&coll)?.iter() {
                    if m.unique {
                        let key = m.unique_key(&old);
                        self.unique
                            .remove((coll.as_str(), name.as_str(), key.as_str()))?;
                    }
                    if m.rows {
                        let key = m.key(&old);
                        self.index.remove((
                            coll.as_str(),
                            name.as_str(),
                            key.as_slice(),
                            id.as_str(),
                        ))?;
                    }
                }
                return Ok(WriteOutcome::Deleted);
            }
            Write::Insert { coll, doc } => (coll, doc, None, 0),
            Write::Upsert { coll, doc } => (coll, doc, None, 1),
            Write::ReplaceIf { coll, doc, rev } => (coll, doc, Some(rev), 2),
        };
        let id = id_of(&coll, &new_doc)?.to_string();
        let old: Option<Doc> = self
            .docs
            .get((coll.as_str(), id.as_str()))?
            .map(|v| serde_json::from_slice(v.value()))
            .transpose()?;
        match (mode, &old, expected_rev) {
            (0, Some(_), _) => return Ok(WriteOutcome::Duplicate),
            (2, None, _) => return Ok(WriteOutcome::Conflict),
            (2, Some(o), Some(rev)) if rev_of(o) != rev => return Ok(WriteOutcome::Conflict),
            _ => {}
        }
        let indexes = self.indexes(&coll)?;
        // Every check before the first change: a Duplicate leaves nothing behind.
        for (name, m) in indexes.iter().filter(|(_, m)| m.unique) {
            let key = m.unique_key(&new_doc);
            if let Some(holder) = self
                .unique
                .get((coll.as_str(), name.as_str(), key.as_str()))?
                && holder.value() != id
            {
                return Ok(WriteOutcome::Duplicate);
            }
        }
        for (name, m) in indexes.iter() {
            if m.unique {
                if let Some(o) = &old {
                    let key = m.unique_key(o);
                    self.unique
                        .remove((coll.as_str(), name.as_str(), key.as_str()))?;
                }
                let key = m.unique_key(&new_doc);
                self.unique
                    .insert((coll.as_str(), name.as_str(), key.as_str()), id.as_str())?;
            }
            if m.rows {
                let key = m.key(&new_doc);
                if let Some(o) = &old {
                    let old_key = m.key(o);
                    if old_key == key {
                        continue; // most updates leave most indexes alone
                    }
                    self.index.remove((
                        coll.as_str(),
                        name.as_str(),
                        old_key.as_slice(),
                        id.as_str(),
                    ))?;
                }
                self.index.insert(
                    (coll.as_str(), name.as_str(), key.as_slice(), id.as_str()),
                    (),
                )?;
            }
        }
        let rev = old.as_ref().map(rev_of).unwrap_or(0) + 1;
        let mut stored = new_doc;
        stored.insert("_rev".into(), Value::from(rev));
        self.docs.insert(
            (coll.as_str(), id.as_str()),
            serde_json::to_vec(&stored)?.as_slice(),
        )?;
        Ok(match mode {
            0 => WriteOutcome::Inserted,
            1 => WriteOutcome::Upserted {
                created: old.is_none(),
            },
            _ => WriteOutcome::Replaced { rev },
        })
    }
}

/// How a query reads an index.
#[derive(Debug, PartialEq)]
struct Plan {
    index: String,
    /// Encoded keys from `start` (inclusive) to `end` (exclusive).
    start: Vec<u8>,
    end: Vec<u8>,
    /// The index order serves the sort's first key, which is the field whose encoded
    /// value starts at byte `at` of every key (right after the `Eq` prefix); `Desc`
    /// scans backwards. Rows are grouped by that value and each group re-sorted by the
    /// remaining sort keys and `_id`, so ties come out as the in-memory sort gives them.
    ordered: Option<(Order, usize)>,
    /// The key range alone decides the filter (every condition is an `Eq` of the prefix
    /// or a range of the next field): `count` needs no documents.
    covered: bool,
}

/// The sort keys that can change the order: a field with an `Eq` condition is equal in
/// every match.
fn effective_sort<'a>(filter: &Filter, sort: &'a [(String, Order)]) -> Vec<&'a (String, Order)> {
    sort.iter()
        .filter(|(f, _)| {
            !filter
                .0
                .iter()
                .any(|(g, c)| g == f && matches!(c, Cond::Eq(_)))
        })
        .collect()
}

/// Choose the index that pins down the most: the longest `Eq` prefix, then one with a
/// range on the next field, then one whose next field is the sort key. `None`: scan.
fn plan(
    indexes: &[(String, IndexMeta)],
    filter: &Filter,
    sort: &[(String, Order)],
    limit: Option<usize>,
) -> Option<Plan> {
    let eq = |field: &str| {
        filter.0.iter().find_map(|(f, c)| match c {
            Cond::Eq(v) if f == field => Some(v),
            _ => None,
        })
    };
    let is_range = |c: &Cond| matches!(c, Cond::Lt(_) | Cond::Lte(_) | Cond::Gt(_) | Cond::Gte(_));
    let sort = effective_sort(filter, sort);
    let mut best: Option<((usize, bool, bool), &str, &IndexMeta)> = None;
    for (name, m) in indexes.iter().filter(|(_, m)| m.rows) {
        let k = m.fields.iter().take_while(|f| eq(f).is_some()).count();
        let next = m.fields.get(k);
        let ranged = next.is_some_and(|n| filter.0.iter().any(|(f, c)| f == n && is_range(c)));
        let sorted = next.is_some() && sort.first().map(|(f, _)| f) == next;
        // A sort-only scan of a whole index pays one random read per document: worth it
        // only when a limit can stop it early.
        if k == 0 && !ranged && !(sorted && limit.is_some()) {
            continue;
        }
        let score = (k, ranged, sorted);
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, name, m));
        }
    }
    let ((k, _, sorted), name, m) = best?;
    let prefix = encode_key(m.fields[..k].iter().filter_map(|f| eq(f)));
    let next = m.fields.get(k);
    let range =
        next.and_then(|n| value_range(filter.0.iter().filter(|(f, _)| f == n).map(|(_, c)| c)));
    let (lo, hi) = range.unwrap_or_else(|| (Vec::new(), vec![KEY_END]));
    let covered = filter.0.iter().all(|(f, c)| match c {
        // Only the first `Eq` of a field is in the prefix; another one must agree.
        Cond::Eq(v) => {
            m.fields[..k].contains(f) && eq(f).is_some_and(|p| encode_key([p]) == encode_key([v]))
        }
        c if is_range(c) => Some(f) == next,
        _ => false,
    });
    Some(Plan {
        index: name.to_string(),
        start: [prefix.as_slice(), &lo].concat(),
        end: [prefix.as_slice(), &hi].concat(),
        ordered: sorted.then(|| (sort[0].1, prefix.len())),
        covered,
    })
}

/// Visit the `(key, _id)` rows of `plan`'s range in index order (backwards for a
/// descending sort) until `visit` says stop.
fn scan_rows(
    index: &impl ReadableTable<IndexKey, ()>,
    coll: &str,
    plan: &Plan,
    mut visit: impl FnMut(&[u8], &str) -> Result<bool>,
) -> Result<()> {
    if plan.start >= plan.end {
        return Ok(()); // contradictory conditions
    }
    let range = index.range(
        (coll, plan.index.as_str(), plan.start.as_slice(), "")
            ..(coll, plan.index.as_str(), plan.end.as_slice(), ""),
    )?;
    let rows: Box<dyn Iterator<Item = _>> = match plan.ordered {
        Some((Order::Desc, _)) => Box::new(range.rev()),
        _ => Box::new(range),
    };
    for row in rows {
        let (k, _) = row?;
        let (_, _, key, id) = k.value();
        if !visit(key, id)? {
            break;
        }
    }
    Ok(())
}

fn fetch(
    docs: &impl ReadableTable<PairKey, &'static [u8]>,
    coll: &str,
    id: &str,
) -> Result<Option<Doc>> {
    Ok(docs
        .get((coll, id))?
        .map(|v| serde_json::from_slice(v.value()))
        .transpose()?)
}

fn id_str(d: &Doc) -> &str {
    d.get("_id").and_then(Value::as_str).unwrap_or_default()
}

/// The greatest string lower bound the filter puts on `_id` (`Gt`/`Gte`/`Eq`), or "".
/// Scanning from it is safe: every matching document's `_id` is at or above it.
fn id_lower_bound(filter: &Filter) -> String {
    filter
        .0
        .iter()
        .filter(|(field, _)| field == "_id")
        .filter_map(|(_, cond)| match cond {
            Cond::Gt(Value::String(s))
            | Cond::Gte(Value::String(s))
            | Cond::Eq(Value::String(s)) => Some(s.clone()),
            _ => None,
        })
        .max()
        .unwrap_or_default()
}

/// The documents matching `query`, sorted by its sort keys then `_id`, cut at its limit.
fn select(
    docs: &impl ReadableTable<PairKey, &'static [u8]>,
    index: &impl ReadableTable<IndexKey, ()>,
    meta: &impl ReadableTable<PairKey, &'static [u8]>,
    coll: &str,
    query: &Query,
) -> Result<Vec<Doc>> {
    let indexes = load_indexes(meta, coll)?;
    let filter = &query.filter;
    let Some(plan) = plan(&indexes, filter, &query.sort, query.limit) else {
        // Full scan: `DOCS` is in `_id` order and `apply_order` sorts stably. A query in
        // `_id` order (paging through a collection: `scraper reparse`) starts at its `_id`
        // lower bound and stops at its limit instead of reading the whole collection.
        let id_ordered = match query.sort.as_slice() {
            [] => true,
            [(field, Order::Asc)] => field == "_id",
            _ => false,
        };
        let start = if id_ordered {
            id_lower_bound(filter)
        } else {
            String::new()
        };
        let limit = query.limit.filter(|_| id_ordered).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for item in docs.range((coll, start.as_str())..)? {
            let (k, v) = item?;
            if k.value().0 != coll || out.len() >= limit {
                break;
            }
            let d: Doc = serde_json::from_slice(v.value())?;
            if filter.matches(&d) {
                out.push(d);
            }
        }
        query.apply_order(&mut out);
        return Ok(out);
    };
    let Some((_, at)) = plan.ordered else {
        let mut out = Vec::new();
        scan_rows(index, coll, &plan, |_, id| {
            if let Some(d) = fetch(docs, coll, id)?
                && filter.matches(&d)
            {
                out.push(d);
            }
            Ok(true)
        })?;
        out.sort_by(|a, b| id_str(a).cmp(id_str(b)));
        query.apply_order(&mut out);
        return Ok(out);
    };
    // Index order is sort order: group rows by the sort field's value, order each group
    // by the remaining keys and `_id`, stop once the limit is reached.
    let rest = Query {
        filter: Filter::all(),
        sort: effective_sort(filter, &query.sort)[1..]
            .iter()
            .map(|s| (*s).clone())
            .collect(),
        limit: None,
    };
    let limit = query.limit.unwrap_or(usize::MAX);
    let mut out: Vec<Doc> = Vec::new();
    let mut group_key: Vec<u8> = Vec::new();
    let mut group: Vec<String> = Vec::new();
    let flush = |group: &mut Vec<String>, out: &mut Vec<Doc>| -> Result<()> {
        group.sort_unstable();
        let mut found = Vec::new();
        for id in group.drain(..) {
            if let Some(d) = fetch(docs, coll, &id)?
                && filter.matches(&d)
            {
                found.push(d);
                // Without further sort keys the group is already in its final order.
                if rest.sort.is_empty() && out.len() + found.len() >= limit {
                    break;
                }
            }
        }
        rest.apply_order(&mut found);
        out.extend(found);
        out.truncate(limit);
        Ok(())
    };
    scan_rows(index, coll, &plan, |key, id| {
        let value = key.get(at..).and_then(|v| Some(&v[..encoded_len(v)?]));
        let value = value.context("a malformed index key")?;
        if value != group_key.as_slice() {
            flush(&mut group, &mut out)?;
            if out.len() >= limit {
                return Ok(false);
            }
            group_key.clear();
            group_key.extend_from_slice(value);
        }
        group.push(id.to_string());
        Ok(true)
    })?;
    if out.len() < limit {
        flush(&mut group, &mut out)?;
    }
    Ok(out)
}

/// How many documents match `filter`.
fn count_matching(
    docs: &impl ReadableTable<PairKey, &'static [u8]>,
    index: &impl ReadableTable<IndexKey, ()>,
    meta: &impl ReadableTable<PairKey, &'static [u8]>,
    coll: &str,
    filter: &Filter,
) -> Result<u64> {
    let indexes = load_indexes(meta, coll)?;
    match plan(&indexes, filter, &[], None) {
        Some(plan) if plan.covered => {
            let mut n = 0;
            scan_rows(index, coll, &plan, |_, _| {
                n += 1;
                Ok(true)
            })?;
            Ok(n)
        }
        _ => Ok(select(docs, index, meta, coll, &Query::new(filter.clone()))?.len() as u64),
    }
}

/// The embedded document store.
pub struct EmbeddedDocuments {
    /// Shared with the blocking threads that run write transactions.
    db: Arc<Database>,
}

impl EmbeddedDocuments {
    pub fn open(path: &Path) -> Result<EmbeddedDocuments> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
        }
        let db = Database::create(path).with_context(|| {
            format!(
                "failed to open the embedded document store {} (is another impressox process using it?)",
                path.display()
            )
        })?;
        let tx = db.begin_write()?;
        WriteTables::open(&tx)?;
        tx.commit()?;
        Ok(EmbeddedDocuments { db: Arc::new(db) })
    }
}

/// An [`IndexSpec`] that a blocking thread can own.
struct OwnedIndexSpec {
    collection: String,
    name: String,
    fields: Vec<String>,
    unique: bool,
}

/// Records each index and fills its rows from the stored documents, in one transaction
/// (see `ensure_indexes`).
fn build_indexes(db: &Database, specs: &[OwnedIndexSpec]) -> Result<()> {
    let tx = db.begin_write()?;
    {
        let mut t = WriteTables::open(&tx)?;
        for spec in specs {
            let (coll, name) = (spec.collection.as_str(), spec.name.as_str());
            let existing: Option<IndexMeta> = t
                .meta
                .get((coll, name))?
                .map(|v| serde_json::from_slice(v.value()))
                .transpose()?;
            let meta = match existing {
                Some(m) if m.rows => continue,
                // Recorded before `doc_index` existed: its unique rows are there.
                Some(m) => IndexMeta { rows: true, ..m },
                None => {
                    let m = IndexMeta {
                        fields: spec.fields.clone(),
                        unique: spec.unique,
                        rows: true,
                    };
                    if m.unique {
                        // Build from what is stored; duplicates make it an error.
                        for item in t.docs.range((coll, "")..)? {
                            let (k, v) = item?;
                            let (c, id) = k.value();
                            if c != coll {
                                break;
                            }
                            let d: Doc = serde_json::from_slice(v.value())?;
                            let key = m.unique_key(&d);
                            if t.unique.insert((coll, name, key.as_str()), id)?.is_some() {
                                bail!(
                                    "cannot create unique index `{name}` on `{coll}`: two documents share {key}"
                                );
                            }
                        }
                    }
                    m
                }
            };
            for item in t.docs.range((coll, "")..)? {
                let (k, v) = item?;
                let (c, id) = k.value();
                if c != coll {
                    break;
                }
                let d: Doc = serde_json::from_slice(v.value())?;
                t.index
                    .insert((coll, name, meta.key(&d).as_slice(), id), ())?;
            }
            t.meta
                .insert((coll, name), serde_json::to_vec(&meta)?.as_slice())?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[async_trait]
impl Documents for EmbeddedDocuments {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> Result<()> {
        self.db.begin_read()?;
        Ok(())
    }

    async fn ensure_indexes(&self, specs: &[IndexSpec<'_>]) -> Result<()> {
        // A new index is built from every stored document of its collection, in one write
        // transaction: seconds at a million documents. On a blocking thread, like `write`,
        // so the async workers sharing this runtime keep running meanwhile.
        let owned: Vec<OwnedIndexSpec> = specs
            .iter()
            .map(|s| OwnedIndexSpec {
                collection: s.collection.to_string(),
                name: s.name.to_string(),
                fields: s.fields.iter().map(|(f, _)| f.to_string()).collect(),
                unique: s.unique,
            })
            .collect();
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || build_indexes(&db, &owned)).await?
    }

    async fn get(&self, coll: &str, id: &str) -> Result<Option<Doc>> {
        let tx = self.db.begin_read()?;
        fetch(&tx.open_table(DOCS)?, coll, id)
    }

    async fn find(&self, coll: &str, query: &Query) -> Result<Vec<Doc>> {
        let tx = self.db.begin_read()?;
        select(
            &tx.open_table(DOCS)?,
            &tx.open_table(INDEX)?,
            &tx.open_table(META)?,
            coll,
            query,
        )
    }

    async fn count(&self, coll: &str, filter: &Filter) -> Result<u64> {
        let tx = self.db.begin_read()?;
        count_matching(
            &tx.open_table(DOCS)?,
            &tx.open_table(INDEX)?,
            &tx.open_table(META)?,
            coll,
            filter,
        )
    }

    async fn write(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>> {
        // A batch (JSON, index maintenance, the durable commit) takes milliseconds: on a
        // blocking thread, so the async workers keep sending meanwhile.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_write()?;
            let mut out = Vec::with_capacity(writes.len());
            {
                let mut t = WriteTables::open(&tx)?;
                for w in writes {
                    out.push(t.apply(w)?);
                }
            }
            tx.commit()?;
            Ok(out)
        })
        .await?
    }

    async fn delete_where(&self, coll: &str, filter: &Filter) -> Result<u64> {
        // Select and delete in one transaction: a document changed in between by another
        // writer is not deleted on the strength of its old values.
        let tx = self.db.begin_write()?;
        let mut n = 0;
        {
            let mut t = WriteTables::open(&tx)?;
            let ids: Vec<String> = select(
                &t.docs,
                &t.index,
                &t.meta,
                coll,
                &Query::new(filter.clone()),
            )?
            .iter()
            .map(|d| id_str(d).to_string())
            .collect();
            for id in ids {
                let w = Write::Delete {
                    coll: coll.to_string(),
                    id,
                };
                if t.apply(w)? == WriteOutcome::Deleted {
                    n += 1;
                }
            }
        }
        tx.commit()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;

    use super::*;
    use crate::documents::{Order, Write};

    /// The notify worker's `deliveries` indexes (notify/log.rs).
    const DELIVERY_INDEXES: &[IndexSpec<'static>] = &[
        IndexSpec {
            collection: "deliveries",
            name: "by_notification",
            fields: &[("notification_id", Order::Asc)],
            unique: false,
        },
        IndexSpec {
            collection: "deliveries",
            name: "due",
            fields: &[("state", Order::Asc), ("due_at_ms", Order::Asc)],
            unique: false,
        },
        IndexSpec {
            collection: "deliveries",
            name: "lease",
            fields: &[("state", Order::Asc), ("lease_until_ms", Order::Asc)],
            unique: false,
        },
        IndexSpec {
            collection: "deliveries",
            name: "final",
            fields: &[("state", Order::Asc), ("final_ms", Order::Asc)],
            unique: false,
        },
    ];

    fn delivery(i: usize, state: &str, due: i64) -> Doc {
        json!({
            "_id": format!("d_{i:032x}"),
            "notification_id": format!("n_{}", i / 2),
            "channel": "telegram",
            "target": format!("chat-{}", i % 977),
            "state": state,
            "due_at_ms": due,
            "attempts": 1,
            "created_ms": 1_700_000_000_000i64 + i as i64,
            "lease_until_ms": 0,
            "final_ms": if state == "sent" { 1_700_000_000_000i64 + i as i64 } else { 0 },
            "owner": "host-a",
            "reason": null,
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn meta(fields: &[&str]) -> IndexMeta {
        IndexMeta {
            fields: fields.iter().map(|f| f.to_string()).collect(),
            unique: false,
            rows: true,
        }
    }

    /// The RAG documents source's three reads (rag/sources/documents.rs) are each served
    /// by its one-field cursor index, not by a sort of the whole collection.
    #[test]
    fn the_rag_cursor_reads_are_range_scans_of_the_cursor_index() {
        let indexes = vec![(
            "impressox_rag_by_last_seen_ms".to_string(),
            meta(&["last_seen_ms"]),
        )];
        let by_cursor = [
            ("last_seen_ms".to_string(), Order::Asc),
            ("_id".to_string(), Order::Asc),
        ];
        let first = Filter::all().ne("last_seen_ms", Value::Null);
        let p = plan(&indexes, &first, &by_cursor, Some(256)).unwrap();
        assert_eq!(p.ordered, Some((Order::Asc, 0)));
        let later = Filter::all().gt("last_seen_ms", 5);
        let p = plan(&indexes, &later, &by_cursor, Some(256)).unwrap();
        assert_eq!(p.ordered, Some((Order::Asc, 0)));
        assert!(p.covered);
        let same = Filter::all().eq("last_seen_ms", 5).gt("_id", "t_9");
        let p = plan(
            &indexes,
            &same,
            &[("_id".to_string(), Order::Asc)],
            Some(256),
        )
        .unwrap();
        assert_eq!(p.start, encode_key([&json!(5)]));
    }

    #[test]
    fn the_planner_picks_the_index_that_pins_down_most() {
        let indexes = vec![
            ("by_notification".to_string(), meta(&["notification_id"])),
            ("due".to_string(), meta(&["state", "due_at_ms"])),
            (
                "old".to_string(),
                IndexMeta {
                    rows: false,
                    ..meta(&["state", "x"])
                },
            ),
        ];
        let due = Filter::all().eq("state", "queued").lte("due_at_ms", 5);
        let sort = [("due_at_ms".to_string(), Order::Asc)];
        let p = plan(&indexes, &due, &sort, Some(256)).unwrap();
        let prefix = encode_key([&json!("queued")]);
        assert_eq!(p.index, "due");
        assert_eq!(p.ordered, Some((Order::Asc, prefix.len())));
        assert!(p.covered);
        assert!(p.start.starts_with(&prefix) && p.end.starts_with(&prefix));
        // Descending sort, a residual condition: still ordered, no longer covered.
        let f = due.clone().ne("owner", "me");
        let p = plan(&indexes, &f, &[("due_at_ms".into(), Order::Desc)], None).unwrap();
        assert_eq!(p.ordered, Some((Order::Desc, prefix.len())));
        assert!(!p.covered);
        // Sorting on another field: the range still narrows, the sort is in memory.
        let p = plan(&indexes, &due, &[("created_ms".into(), Order::Asc)], None).unwrap();
        assert_eq!((p.index.as_str(), p.ordered), ("due", None));
        // Nothing to pin down, or an index whose rows are not built yet: scan.
        assert_eq!(
            plan(&indexes, &Filter::all().ne("state", "x"), &[], None),
            None
        );
        assert_eq!(plan(&indexes, &Filter::all().eq("x", 1), &[], None), None);
        // A sort on a field with an `Eq` is no sort.
        let f = Filter::all().eq("state", "queued").eq("due_at_ms", 3);
        let p = plan(&indexes, &f, &[("state".into(), Order::Desc)], Some(1)).unwrap();
        assert_eq!(p.ordered, None);
        assert!(p.covered);
    }

    fn ids(docs: &[Doc]) -> Vec<&str> {
        docs.iter().map(id_str).collect()
    }

    /// Random documents and queries, answered by a collection with indexes and by one
    /// without: the index path must give exactly the full scan's answer (order and ties
    /// included), through inserts, updates that move keys, deletes and purges.
    #[tokio::test]
    async fn index_plans_answer_like_a_full_scan() {
        let dir = tempfile::tempdir().unwrap();
        let d = EmbeddedDocuments::open(&dir.path().join("documents.redb")).unwrap();
        d.ensure_indexes(&[
            IndexSpec {
                collection: "ix",
                name: "s_t",
                fields: &[("s", Order::Asc), ("t", Order::Asc)],
                unique: false,
            },
            IndexSpec {
                collection: "ix",
                name: "s_t_u",
                fields: &[("s", Order::Asc), ("t", Order::Asc), ("u", Order::Asc)],
                unique: false,
            },
            IndexSpec {
                collection: "ix",
                name: "t",
                fields: &[("t", Order::Asc)],
                unique: false,
            },
        ])
        .await
        .unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let value = |rng: &mut fastrand::Rng| match rng.u8(0..10) {
            0 => Value::Null,
            1 => json!(rng.i64(0..8) as f64 + 0.5),
            2 => json!(["a", "b"][rng.usize(0..2)]),
            3 => json!(rng.bool()),
            _ => json!(rng.i64(0..8)), // few values: many ties
        };
        let random_doc = |rng: &mut fastrand::Rng, id: usize| {
            let mut d = Doc::new();
            d.insert("_id".into(), json!(format!("{id:04}")));
            if rng.u8(0..8) > 0 {
                d.insert("s".into(), json!(["x", "y", "z"][rng.usize(0..3)]));
            }
            if rng.u8(0..8) > 0 {
                d.insert("t".into(), value(rng));
            }
            d.insert("u".into(), json!(rng.i64(0..4)));
            d
        };
        let both = |w: Write| {
            let other = match &w {
                Write::Upsert { doc, .. } => Write::Upsert {
                    coll: "scan".into(),
                    doc: doc.clone(),
                },
                Write::Delete { id, .. } => Write::Delete {
                    coll: "scan".into(),
                    id: id.clone(),
                },
                _ => unreachable!(),
            };
            vec![w, other]
        };
        for round in 0..4 {
            // Upserts (new and moved documents) and deletes.
            let mut writes = Vec::new();
            for _ in 0..300 {
                let id = rng.usize(0..400);
                if rng.u8(0..6) == 0 {
                    writes.extend(both(Write::Delete {
                        coll: "ix".into(),
                        id: format!("{id:04}"),
                    }));
                } else {
                    let doc = random_doc(&mut rng, id);
                    writes.extend(both(Write::Upsert {
                        coll: "ix".into(),
                        doc,
                    }));
                }
                d.write(std::mem::take(&mut writes)).await.unwrap();
            }
            for _ in 0..300 {
                let mut f = Filter::all();
                if rng.u8(0..4) > 0 {
                    f = f.eq("s", json!(["x", "y", "z"][rng.usize(0..3)]));
                }
                for _ in 0..rng.usize(0..3) {
                    let v = value(&mut rng);
                    f = match rng.u8(0..5) {
                        0 => f.lt("t", v),
                        1 => f.lte("t", v),
                        2 => f.gt("t", v),
                        3 => f.gte("t", v),
                        _ => f.eq("t", v),
                    };
                }
                if rng.u8(0..4) == 0 {
                    f = f.ne("u", 1);
                }
                let mut q = Query::new(f.clone());
                let dir = |rng: &mut fastrand::Rng| {
                    if rng.bool() { Order::Asc } else { Order::Desc }
                };
                match rng.u8(0..4) {
                    0 => {}
                    1 => q = q.sort("t", dir(&mut rng)),
                    2 => q = q.sort("t", dir(&mut rng)).sort("u", dir(&mut rng)),
                    _ => q = q.sort("u", dir(&mut rng)),
                }
                if rng.bool() {
                    q = q.limit(rng.usize(1..30));
                }
                let with_index = d.find("ix", &q).await.unwrap();
                let scanned = d.find("scan", &q).await.unwrap();
                assert_eq!(ids(&with_index), ids(&scanned), "round {round}: {q:?}");
                assert_eq!(
                    d.count("ix", &f).await.unwrap(),
                    d.count("scan", &f).await.unwrap(),
                    "round {round}: count {f:?}"
                );
            }
            // Purge through the index, then everything must still agree.
            let f = Filter::all().eq("s", "z").lt("t", rng.i64(0..8));
            assert_eq!(
                d.delete_where("ix", &f).await.unwrap(),
                d.delete_where("scan", &f).await.unwrap(),
                "purge {f:?}"
            );
            let all = Query::default();
            assert_eq!(
                ids(&d.find("ix", &all).await.unwrap()),
                ids(&d.find("scan", &all).await.unwrap())
            );
        }
    }

    /// Paging in `_id` order (`scraper reparse`) starts at the bound and stops at the limit;
    /// the answer is the same as a filter over everything.
    #[tokio::test]
    async fn id_ordered_pages_start_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let d = EmbeddedDocuments::open(&dir.path().join("documents.redb")).unwrap();
        let writes = (0..500)
            .map(|i| {
                let mut doc = Doc::new();
                doc.insert("_id".into(), json!(format!("{i:04}")));
                doc.insert("odd".into(), json!(i % 2 == 1));
                Write::Insert {
                    coll: "pages".into(),
                    doc,
                }
            })
            .collect();
        d.write(writes).await.unwrap();
        let mut seen: Vec<String> = Vec::new();
        let mut after = String::new();
        loop {
            let q = Query::new(Filter::all().gt("_id", after.clone()).eq("odd", true))
                .sort("_id", Order::Asc)
                .limit(40);
            let page = d.find("pages", &q).await.unwrap();
            let Some(last) = page.last() else { break };
            after = id_str(last).to_string();
            seen.extend(ids(&page).into_iter().map(String::from));
        }
        let expected: Vec<String> = (0..500)
            .filter(|i| i % 2 == 1)
            .map(|i| format!("{i:04}"))
            .collect();
        assert_eq!(seen, expected);
    }

    /// The due-poller's query over 50,000 deliveries of which 10 are due, on a collection
    /// with the notify indexes and on one without (the full scan every query did before
    /// the planner). By hand: `cargo test --release -p impressox-host --lib
    /// due_query_timing -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore]
    async fn due_query_timing() {
        let dir = tempfile::tempdir().unwrap();
        let d = EmbeddedDocuments::open(&dir.path().join("documents.redb")).unwrap();
        d.ensure_indexes(DELIVERY_INDEXES).await.unwrap();
        let now = 1_800_000_000_000i64;
        let n = 50_000;
        for coll in ["deliveries", "plain"] {
            let started = Instant::now();
            for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
                let writes = chunk
                    .iter()
                    .map(|&i| {
                        let (state, due) = match i {
                            _ if i % 5000 == 7 => ("queued", now - 1000 + i as i64 / 5000),
                            _ if i % 3 == 0 => ("queued", now + 60_000 + i as i64),
                            _ => ("sent", now - 3_600_000 + i as i64),
                        };
                        Write::Insert {
                            coll: coll.into(),
                            doc: delivery(i, state, due),
                        }
                    })
                    .collect();
                d.write(writes).await.unwrap();
            }
            let insert = started.elapsed();
            let q = Query::new(Filter::all().eq("state", "queued").lte("due_at_ms", now))
                .sort("due_at_ms", Order::Asc)
                .limit(256);
            assert_eq!(d.find(coll, &q).await.unwrap().len(), 10);
            let runs = 20;
            let started = Instant::now();
            for _ in 0..runs {
                d.find(coll, &q).await.unwrap();
            }
            let per_query = started.elapsed() / runs;
            let started = Instant::now();
            let queued = d
                .count(coll, &Filter::all().eq("state", "queued"))
                .await
                .unwrap();
            let count = started.elapsed();
            // Claim-like updates (queued -> sending, new lease), one transaction each.
            let started = Instant::now();
            for i in (0..600).step_by(3) {
                let mut doc = delivery(i, "sending", now);
                doc.insert("lease_until_ms".into(), json!(now + 30_000));
                d.write(vec![Write::Upsert {
                    coll: coll.into(),
                    doc,
                }])
                .await
                .unwrap();
            }
            let single = started.elapsed() / 200;
            println!(
                "{coll}: {n} docs inserted in {insert:?} ({:.0} docs/s, batches of 1000); \
                 due query {per_query:?}; count(state=queued)={queued} in {count:?}; \
                 one-update transaction {single:?}",
                n as f64 / insert.as_secs_f64()
            );
        }
    }
}
