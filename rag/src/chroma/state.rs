//! The Chroma backend's local state, in one small redb file (`local_dir/chroma-state.redb`):
//! what must survive a crash of our process or of the server to make every replacement
//! converge, and what a remote store cannot answer in one atomic step.
//!
//! - `documents`: (collection, document id) → the committed record (version, chunk ids).
//!   The version is what an ingest compares; the chunk ids say which records in Chroma
//!   are the document's current ones (search and lookups drop any other).
//! - `replacing`: (collection, document id) → a replacement under way: the new record
//!   (none for a delete) and every chunk id that may still be in Chroma and must go.
//! - `lexical_todo`: as in the embedded store (docs/design/rag.md §10).
//! - `collections`: our collection name → Chroma's collection id, so a collection deleted
//!   and re-created on the server (or another server) is noticed and its local records
//!   dropped instead of trusted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::backend::{DocRecord, StoreError};

const DOCS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("documents");
const REPLACING: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("replacing");
const LEXICAL_TODO: TableDefinition<(&str, &str), ()> = TableDefinition::new("lexical_todo");
const COLLECTIONS: TableDefinition<&str, &str> = TableDefinition::new("collections");

/// A replacement under way (see the module note).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Pending {
    /// The record the document will have; `None`: it is being deleted.
    pub new: Option<DocRecord>,
    /// Ids that may be in Chroma and are not in `new`.
    pub stale: Vec<String>,
}

pub(crate) struct State {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("path", &self.path).finish()
    }
}

/// A change to apply in one transaction.
pub(crate) enum Change<'a> {
    /// Start a replacement; also lists the document in the lexical to-do.
    Begin(&'a str, Pending),
    /// The replacement is done: the document's record is now `Some` (or it is gone).
    Commit(&'a str, Option<&'a DocRecord>),
}

impl State {
    pub(crate) fn open(dir: &Path) -> Result<State, StoreError> {
        let path = dir.join("chroma-state.redb");
        let io = |e: &dyn std::fmt::Display| StoreError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(&e))?;
        let db = Database::create(&path).map_err(|e| io(&e))?;
        let tx = db.begin_write().map_err(|e| io(&e))?;
        tx.open_table(DOCS).map_err(|e| io(&e))?;
        tx.open_table(REPLACING).map_err(|e| io(&e))?;
        tx.open_table(LEXICAL_TODO).map_err(|e| io(&e))?;
        tx.open_table(COLLECTIONS).map_err(|e| io(&e))?;
        tx.commit().map_err(|e| io(&e))?;
        Ok(State { db, path })
    }

    fn io(&self, e: &dyn std::fmt::Display) -> StoreError {
        StoreError::Io {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// The documents of `collection` whose ids start with `prefix`, with their versions.
    pub(crate) fn document_ids(
        &self,
        collection: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        crate::backend::prefixed_versions(&self.db, DOCS, collection, prefix, |e| self.io(e))
    }

    /// Committed records of `ids` (in order).
    pub(crate) fn records(
        &self,
        collection: &str,
        ids: &[&str],
    ) -> Result<Vec<Option<DocRecord>>, StoreError> {
        let rx = self.db.begin_read().map_err(|e| self.io(&e))?;
        let t = rx.open_table(DOCS).map_err(|e| self.io(&e))?;
        ids.iter()
            .map(|id| {
                let Some(v) = t.get((collection, *id)).map_err(|e| self.io(&e))? else {
                    return Ok(None);
                };
                serde_json::from_slice(v.value())
                    .map(Some)
                    .map_err(|e| self.io(&format!("document {id:?}: {e}")))
            })
            .collect()
    }

    /// Replacements under way of `ids` (in order).
    pub(crate) fn pending_of(
        &self,
        collection: &str,
        ids: &[&str],
    ) -> Result<Vec<Option<Pending>>, StoreError> {
        let rx = self.db.begin_read().map_err(|e| self.io(&e))?;
        let t = rx.open_table(REPLACING).map_err(|e| self.io(&e))?;
        ids.iter()
            .map(|id| {
                let Some(v) = t.get((collection, *id)).map_err(|e| self.io(&e))? else {
                    return Ok(None);
                };
                serde_json::from_slice(v.value())
                    .map(Some)
                    .map_err(|e| self.io(&format!("replacement of {id:?}: {e}")))
            })
            .collect()
    }

    /// Every replacement under way: (collection, document id, pending).
    pub(crate) fn all_pending(&self) -> Result<Vec<(String, String, Pending)>, StoreError> {
        let rx = self.db.begin_read().map_err(|e| self.io(&e))?;
        let t = rx.open_table(REPLACING).map_err(|e| self.io(&e))?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(|e| self.io(&e))? {
            let (k, v) = entry.map_err(|e| self.io(&e))?;
            let (c, d) = k.value();
            let p: Pending = serde_json::from_slice(v.value())
                .map_err(|e| self.io(&format!("replacement of {d:?}: {e}")))?;
            out.push((c.to_string(), d.to_string(), p));
        }
        Ok(out)
    }

    /// Applies changes to documents of `collection` in one transaction.
    pub(crate) fn apply(&self, collection: &str, changes: &[Change<'_>]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.io(&e))?;
        {
            let mut docs = tx.open_table(DOCS).map_err(|e| self.io(&e))?;
            let mut replacing = tx.open_table(REPLACING).map_err(|e| self.io(&e))?;
            let mut todo = tx.open_table(LEXICAL_TODO).map_err(|e| self.io(&e))?;
            for change in changes {
                match change {
                    Change::Begin(id, pending) => {
                        let json = serde_json::to_vec(pending).map_err(|e| self.io(&e))?;
                        replacing
                            .insert((collection, *id), json.as_slice())
                            .map_err(|e| self.io(&e))?;
                        todo.insert((collection, *id), ())
                            .map_err(|e| self.io(&e))?;
                    }
                    Change::Commit(id, record) => {
                        match record {
                            Some(r) => {
                                let json = serde_json::to_vec(r).map_err(|e| self.io(&e))?;
                                docs.insert((collection, *id), json.as_slice())
                                    .map_err(|e| self.io(&e))?;
                            }
                            None => {
                                docs.remove((collection, *id)).map_err(|e| self.io(&e))?;
                            }
                        }
                        replacing
                            .remove((collection, *id))
                            .map_err(|e| self.io(&e))?;
                        todo.insert((collection, *id), ())
                            .map_err(|e| self.io(&e))?;
                    }
                }
            }
        }
        tx.commit().map_err(|e| self.io(&e))
    }

    /// The Chroma id recorded for a collection.
    pub(crate) fn collection_id(&self, name: &str) -> Result<Option<String>, StoreError> {
        let rx = self.db.begin_read().map_err(|e| self.io(&e))?;
        let t = rx.open_table(COLLECTIONS).map_err(|e| self.io(&e))?;
        Ok(t.get(name)
            .map_err(|e| self.io(&e))?
            .map(|v| v.value().to_string()))
    }

    /// Records `chroma_id` as the collection's; if another id was recorded, the server's
    /// collection is not the one our records describe: they are dropped, and every dropped
    /// document goes to the lexical to-do (its entries then leave the BM25 index).
    pub(crate) fn bind_collection(&self, name: &str, chroma_id: &str) -> Result<(), StoreError> {
        if self.collection_id(name)?.as_deref() == Some(chroma_id) {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(|e| self.io(&e))?;
        {
            let mut docs = tx.open_table(DOCS).map_err(|e| self.io(&e))?;
            let mut replacing = tx.open_table(REPLACING).map_err(|e| self.io(&e))?;
            let mut todo = tx.open_table(LEXICAL_TODO).map_err(|e| self.io(&e))?;
            let mut ids: Vec<String> = Vec::new();
            for table in [&docs, &replacing] {
                for entry in table.range((name, "")..).map_err(|e| self.io(&e))? {
                    let (k, _) = entry.map_err(|e| self.io(&e))?;
                    let (c, d) = k.value();
                    if c != name {
                        break;
                    }
                    ids.push(d.to_string());
                }
            }
            for id in &ids {
                docs.remove((name, id.as_str())).map_err(|e| self.io(&e))?;
                replacing
                    .remove((name, id.as_str()))
                    .map_err(|e| self.io(&e))?;
                todo.insert((name, id.as_str()), ())
                    .map_err(|e| self.io(&e))?;
            }
            let mut collections = tx.open_table(COLLECTIONS).map_err(|e| self.io(&e))?;
            collections
                .insert(name, chroma_id)
                .map_err(|e| self.io(&e))?;
        }
        tx.commit().map_err(|e| self.io(&e))
    }

    pub(crate) fn lexical_todo(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let rx = self.db.begin_read().map_err(|e| self.io(&e))?;
        let t = rx.open_table(LEXICAL_TODO).map_err(|e| self.io(&e))?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for entry in t.iter().map_err(|e| self.io(&e))? {
            let (k, _) = entry.map_err(|e| self.io(&e))?;
            let (c, d) = k.value();
            out.entry(c.to_string()).or_default().push(d.to_string());
        }
        Ok(out)
    }

    pub(crate) fn clear_lexical_todo(
        &self,
        collection: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.io(&e))?;
        {
            let mut t = tx.open_table(LEXICAL_TODO).map_err(|e| self.io(&e))?;
            for id in ids {
                t.remove((collection, id.as_str()))
                    .map_err(|e| self.io(&e))?;
            }
        }
        tx.commit().map_err(|e| self.io(&e))
    }
}
