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
//! - `reembedding`: our collection name → a re-embedding under way ([`Reembed`]): the
//!   Chroma collection being filled with the new vectors, which replaces the old one by a
//!   rename. Recorded before the first write to it, so a crash is settled at open.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::backend::{DocRecord, StoreError};

const DOCS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("documents");
const REPLACING: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("replacing");
const LEXICAL_TODO: TableDefinition<(&str, &str), ()> = TableDefinition::new("lexical_todo");
const COLLECTIONS: TableDefinition<&str, &str> = TableDefinition::new("collections");
const REEMBEDDING: TableDefinition<&str, &[u8]> = TableDefinition::new("reembedding");

/// A re-embedding under way (see `ChromaStore::reembed`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Reembed {
    /// The Chroma id of the collection being replaced.
    pub old_id: String,
    /// The Chroma id of the new collection, under its temporary name until the swap.
    pub new_id: String,
    /// The metadata the new collection takes with our collection's name.
    pub metadata: serde_json::Value,
}

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
        tx.open_table(REEMBEDDING).map_err(|e| io(&e))?;
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

    /// Records a re-embedding of `name` as under way.
    pub(crate) fn begin_reembed(&self, name: &str, r: &Reembed) -> Result<(), StoreError> {
        let json = serde_json::to_vec(r).map_err(|e| self.io(&e))?;
        let tx = self.db.begin_write().map_err(|e| self.io(&e))?;
        tx.open_table(REEMBEDDING)
            .map_err(|e| self.io(&e))?
            .insert(name, json.as_slice())
            .map_err(|e| self.io(&e))?;
        tx.commit().map_err(|e| self.io(&e))
    }

    /// Every re-embedding under way.
    pub(crate) fn reembeds(&self) -> Result<Vec<(String, Reembed)>, StoreError> {
        let rx = self.db.begin_read().map_err(|e| self.io(&e))?;
        let t = rx.open_table(REEMBEDDING).map_err(|e| self.io(&e))?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(|e| self.io(&e))? {
            let (k, v) = entry.map_err(|e| self.io(&e))?;
            let r: Reembed = serde_json::from_slice(v.value())
                .map_err(|e| self.io(&format!("re-embedding of {:?}: {e}", k.value())))?;
            out.push((k.value().to_string(), r));
        }
        Ok(out)
    }

    /// Ends the re-embedding of `name`. `swapped`: the new collection now serves under our
    /// name, so it becomes the recorded one with every document record kept (it holds the
    /// same chunks by the same ids); else the old one still serves and nothing else changes.
    pub(crate) fn end_reembed(&self, name: &str, swapped: Option<&str>) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.io(&e))?;
        {
            if let Some(new_id) = swapped {
                tx.open_table(COLLECTIONS)
                    .map_err(|e| self.io(&e))?
                    .insert(name, new_id)
                    .map_err(|e| self.io(&e))?;
            }
            tx.open_table(REEMBEDDING)
                .map_err(|e| self.io(&e))?
                .remove(name)
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
