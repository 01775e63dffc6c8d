//! The embedded document store: a redb file (`data_dir/documents.redb`).
//!
//! Documents are JSON by (collection, `_id`). Unique indexes are kept as rows
//! (collection, index, key) → `_id`, checked and maintained in the same transaction as
//! the write, so a duplicate is refused exactly as MongoDB's E11000 would be. Queries
//! scan the collection and filter in memory: right for the sizes an embedded deployment
//! holds (the MongoDB backend serves the big ones); non-unique indexes are recorded but
//! not used for planning yet.

use std::path::Path;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Doc, Documents, Filter, IndexSpec, Query, Write, WriteOutcome, id_of, rev_of};

const DOCS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("docs");
/// (collection, index name, key as JSON) → `_id`, for unique indexes.
const UNIQUE: TableDefinition<(&str, &str, &str), &str> = TableDefinition::new("doc_unique");
/// (collection, index name) → the index's fields and uniqueness.
const META: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("doc_index_meta");

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexMeta {
    fields: Vec<String>,
    unique: bool,
}

impl IndexMeta {
    /// The index key of a document: its indexed values as a JSON array (missing = null).
    fn key(&self, doc: &Doc) -> String {
        let values: Vec<&Value> = self
            .fields
            .iter()
            .map(|f| doc.get(f).unwrap_or(&Value::Null))
            .collect();
        serde_json::to_string(&values).unwrap_or_default()
    }
}

/// The embedded document store.
pub struct EmbeddedDocuments {
    db: Database,
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
        tx.open_table(DOCS)?;
        tx.open_table(UNIQUE)?;
        tx.open_table(META)?;
        tx.commit()?;
        Ok(EmbeddedDocuments { db })
    }

    fn unique_indexes(tx: &WriteTransaction, coll: &str) -> Result<Vec<(String, IndexMeta)>> {
        let meta = tx.open_table(META)?;
        let mut out = Vec::new();
        for item in meta.range((coll, "")..)? {
            let (k, v) = item?;
            let (c, name) = k.value();
            if c != coll {
                break;
            }
            let m: IndexMeta = serde_json::from_slice(v.value())?;
            if m.unique {
                out.push((name.to_string(), m));
            }
        }
        Ok(out)
    }

    /// Apply one write inside `tx`.
    fn apply(tx: &WriteTransaction, w: Write) -> Result<WriteOutcome> {
        let (coll, new_doc, expected_rev, mode) = match w {
            Write::Delete { coll, id } => {
                let mut docs = tx.open_table(DOCS)?;
                let Some(old) = docs.remove((coll.as_str(), id.as_str()))? else {
                    return Ok(WriteOutcome::Missing);
                };
                let old: Doc = serde_json::from_slice(old.value())?;
                let mut unique = tx.open_table(UNIQUE)?;
                for (name, m) in Self::unique_indexes(tx, &coll)? {
                    unique.remove((coll.as_str(), name.as_str(), m.key(&old).as_str()))?;
                }
                return Ok(WriteOutcome::Deleted);
            }
            Write::Insert { coll, doc } => (coll, doc, None, 0),
            Write::Upsert { coll, doc } => (coll, doc, None, 1),
            Write::ReplaceIf { coll, doc, rev } => (coll, doc, Some(rev), 2),
        };
        let id = id_of(&coll, &new_doc)?.to_string();
        let mut docs = tx.open_table(DOCS)?;
        let old: Option<Doc> = docs
            .get((coll.as_str(), id.as_str()))?
            .map(|v| serde_json::from_slice(v.value()))
            .transpose()?;
        match (mode, &old, expected_rev) {
            (0, Some(_), _) => return Ok(WriteOutcome::Duplicate),
            (2, None, _) => return Ok(WriteOutcome::Conflict),
            (2, Some(o), Some(rev)) if rev_of(o) != rev => return Ok(WriteOutcome::Conflict),
            _ => {}
        }
        let indexes = Self::unique_indexes(tx, &coll)?;
        let mut unique = tx.open_table(UNIQUE)?;
        for (name, m) in &indexes {
            let key = m.key(&new_doc);
            if let Some(holder) = unique.get((coll.as_str(), name.as_str(), key.as_str()))?
                && holder.value() != id
            {
                return Ok(WriteOutcome::Duplicate);
            }
        }
        if let Some(o) = &old {
            for (name, m) in &indexes {
                unique.remove((coll.as_str(), name.as_str(), m.key(o).as_str()))?;
            }
        }
        for (name, m) in &indexes {
            unique.insert(
                (coll.as_str(), name.as_str(), m.key(&new_doc).as_str()),
                id.as_str(),
            )?;
        }
        let rev = old.as_ref().map(rev_of).unwrap_or(0) + 1;
        let mut stored = new_doc;
        stored.insert("_rev".into(), Value::from(rev));
        docs.insert(
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

    fn scan(&self, coll: &str, filter: &Filter) -> Result<Vec<Doc>> {
        let tx = self.db.begin_read()?;
        let docs = tx.open_table(DOCS)?;
        let mut out = Vec::new();
        for item in docs.range((coll, "")..)? {
            let (k, v) = item?;
            if k.value().0 != coll {
                break;
            }
            let d: Doc = serde_json::from_slice(v.value())?;
            if filter.matches(&d) {
                out.push(d);
            }
        }
        Ok(out)
    }
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

    async fn ensure_indexes(&self, specs: &[IndexSpec]) -> Result<()> {
        let tx = self.db.begin_write()?;
        for spec in specs {
            let meta = IndexMeta {
                fields: spec.fields.iter().map(|(f, _)| f.to_string()).collect(),
                unique: spec.unique,
            };
            let existing = tx
                .open_table(META)?
                .get((spec.collection, spec.name))?
                .map(|v| v.value().to_vec());
            if existing.is_some() {
                continue;
            }
            if meta.unique {
                // Build the index from what is stored; duplicates make it an error.
                let docs = tx.open_table(DOCS)?;
                let mut unique = tx.open_table(UNIQUE)?;
                for item in docs.range((spec.collection, "")..)? {
                    let (k, v) = item?;
                    let (c, id) = k.value();
                    if c != spec.collection {
                        break;
                    }
                    let d: Doc = serde_json::from_slice(v.value())?;
                    let key = meta.key(&d);
                    if unique
                        .insert((spec.collection, spec.name, key.as_str()), id)?
                        .is_some()
                    {
                        bail!(
                            "cannot create unique index `{}` on `{}`: two documents share {key}",
                            spec.name,
                            spec.collection
                        );
                    }
                }
            }
            tx.open_table(META)?.insert(
                (spec.collection, spec.name),
                serde_json::to_vec(&meta)?.as_slice(),
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    async fn get(&self, coll: &str, id: &str) -> Result<Option<Doc>> {
        let tx = self.db.begin_read()?;
        let docs = tx.open_table(DOCS)?;
        Ok(docs
            .get((coll, id))?
            .map(|v| serde_json::from_slice(v.value()))
            .transpose()?)
    }

    async fn find(&self, coll: &str, query: &Query) -> Result<Vec<Doc>> {
        let mut docs = self.scan(coll, &query.filter)?;
        query.apply_order(&mut docs);
        Ok(docs)
    }

    async fn count(&self, coll: &str, filter: &Filter) -> Result<u64> {
        Ok(self.scan(coll, filter)?.len() as u64)
    }

    async fn write(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>> {
        let tx = self.db.begin_write()?;
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            out.push(Self::apply(&tx, w)?);
        }
        tx.commit()?;
        Ok(out)
    }

    async fn delete_where(&self, coll: &str, filter: &Filter) -> Result<u64> {
        let ids: Vec<String> = self
            .scan(coll, filter)?
            .iter()
            .filter_map(|d| d.get("_id").and_then(Value::as_str).map(String::from))
            .collect();
        let writes = ids
            .into_iter()
            .map(|id| Write::Delete {
                coll: coll.to_string(),
                id,
            })
            .collect();
        let out = self.write(writes).await?;
        Ok(out.iter().filter(|o| **o == WriteOutcome::Deleted).count() as u64)
    }
}
