//! The embedded vector store: collections of chunks with their vectors, on disk in one redb
//! file under the data dir, searched in memory.
//!
//! **Durability.** redb commits a write transaction atomically (copy-on-write pages and a
//! checksummed commit slot), so a kill -9 at any point leaves either the whole upsert of a
//! document or none of it: never a document with half its new chunks, never old and new
//! chunks side by side. Every change to a document (its chunks, its record, the lexical
//! index's to-do entry) is one transaction.
//!
//! **Search.** At open the vectors of every collection are read into one contiguous matrix
//! per collection ([`crate::scan`]), with an int8 copy and the chunk records beside it;
//! writes update disk first, then memory. Search scans the int8 copy for a candidate list
//! and re-ranks it exactly (recall against the exact scan tested in `scan`); nothing is
//! built or rebuilt beyond the copy itself.
//!
//! **Collections** record the model id and dimension of the embedder that filled them;
//! writing or searching with another is refused (`StoreError::ModelMismatch`) until the
//! collection is re-embedded.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use redb::{Database, ReadableTable, TableDefinition};

pub use crate::backend::{CollectionInfo, StoreError, VectorHit};
use crate::backend::{DocRecord, VectorBackend, check_model, check_name, check_upsert};
use crate::chunk::{DocumentChunks, Filter, StoredChunk, now_ms};
use crate::scan;

const COLLECTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("collections");
/// (collection, chunk id) → encoded chunk (see [`encode`]).
const CHUNKS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("chunks");
/// (collection, document id) → the document's record (version, chunk ids).
const DOCS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("documents");
/// (collection, document id) → (): documents whose lexical entries may lag the vectors
/// (written in the same transaction as the change, cleared once the lexical index has
/// committed it; see [`crate::index`]).
const LEXICAL_TODO: TableDefinition<(&str, &str), ()> = TableDefinition::new("lexical_todo");

/// One collection in memory: the matrix and the records of its rows.
struct Memory {
    info: CollectionInfo,
    vectors: Vec<f32>,
    /// int8 copies of `vectors` and their scales ([`scan::quantise`]), what the scan reads.
    codes: Vec<i8>,
    scales: Vec<f32>,
    rows: Vec<Arc<StoredChunk>>,
    by_id: HashMap<String, usize>,
}

impl Memory {
    fn new(info: CollectionInfo) -> Memory {
        Memory {
            info,
            vectors: Vec::new(),
            codes: Vec::new(),
            scales: Vec::new(),
            rows: Vec::new(),
            by_id: HashMap::new(),
        }
    }

    fn insert(&mut self, chunk: Arc<StoredChunk>, vector: &[f32]) {
        let (codes, scale) = scan::quantise(vector);
        if let Some(&row) = self.by_id.get(&chunk.chunk_id) {
            let d = self.info.dimension;
            self.vectors[row * d..row * d + d].copy_from_slice(vector);
            self.codes[row * d..row * d + d].copy_from_slice(&codes);
            self.scales[row] = scale;
            self.rows[row] = chunk;
            return;
        }
        self.by_id.insert(chunk.chunk_id.clone(), self.rows.len());
        self.rows.push(chunk);
        self.vectors.extend_from_slice(vector);
        self.codes.extend_from_slice(&codes);
        self.scales.push(scale);
    }

    /// Removes a row by moving the last row into its place (O(dim), order is not kept).
    fn remove(&mut self, chunk_id: &str) {
        let Some(row) = self.by_id.remove(chunk_id) else {
            return;
        };
        let d = self.info.dimension;
        let last = self.rows.len() - 1;
        if row != last {
            self.vectors.copy_within(last * d..last * d + d, row * d);
            self.codes.copy_within(last * d..last * d + d, row * d);
            self.scales.swap(row, last);
            self.rows.swap(row, last);
            self.by_id.insert(self.rows[row].chunk_id.clone(), row);
        }
        self.rows.pop();
        self.scales.pop();
        self.vectors.truncate(last * d);
        self.codes.truncate(last * d);
    }
}

/// The embedded vector store.
pub struct VectorStore {
    db: Database,
    path: PathBuf,
    memory: RwLock<HashMap<String, Memory>>,
}

impl std::fmt::Debug for VectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Chunk encoding: u32 LE length of the JSON record, the record, then the vector as f32 LE.
fn encode(chunk: &StoredChunk, vector: &[f32]) -> Vec<u8> {
    let json = serde_json::to_vec(chunk).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + json.len() + vector.len() * 4);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    for x in vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> Option<(StoredChunk, Vec<f32>)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let chunk = serde_json::from_slice(bytes.get(4..4 + len)?).ok()?;
    let rest = bytes.get(4 + len..)?;
    let vector = rest
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some((chunk, vector))
}

impl VectorStore {
    /// Opens (or creates) `dir/vectors.redb` and loads every collection into memory.
    pub fn open(dir: &Path) -> Result<VectorStore, StoreError> {
        let path = dir.join("vectors.redb");
        let io = |e: &dyn std::fmt::Display| StoreError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(&e))?;
        let db = Database::create(&path).map_err(|e| io(&e))?;
        let tx = db.begin_write().map_err(|e| io(&e))?;
        tx.open_table(COLLECTIONS).map_err(|e| io(&e))?;
        tx.open_table(CHUNKS).map_err(|e| io(&e))?;
        tx.open_table(DOCS).map_err(|e| io(&e))?;
        tx.open_table(LEXICAL_TODO).map_err(|e| io(&e))?;
        tx.commit().map_err(|e| io(&e))?;

        let mut memory = HashMap::new();
        let rx = db.begin_read().map_err(|e| io(&e))?;
        let collections = rx.open_table(COLLECTIONS).map_err(|e| io(&e))?;
        for entry in collections.iter().map_err(|e| io(&e))? {
            let (name, info) = entry.map_err(|e| io(&e))?;
            let info: CollectionInfo = serde_json::from_slice(info.value())
                .map_err(|e| io(&format!("collection {:?}: {e}", name.value())))?;
            memory.insert(name.value().to_string(), Memory::new(info));
        }
        let chunks = rx.open_table(CHUNKS).map_err(|e| io(&e))?;
        for entry in chunks.iter().map_err(|e| io(&e))? {
            let (key, value) = entry.map_err(|e| io(&e))?;
            let (collection, id) = key.value();
            let (chunk, vector) = decode(value.value())
                .ok_or_else(|| io(&format!("chunk {collection:?}/{id:?} is unreadable")))?;
            let Some(mem) = memory.get_mut(collection) else {
                return Err(io(&format!(
                    "chunk {id:?} of unknown collection {collection:?}"
                )));
            };
            if vector.len() != mem.info.dimension {
                return Err(io(&format!(
                    "chunk {collection:?}/{id:?} has {} dims, collection {}",
                    vector.len(),
                    mem.info.dimension
                )));
            }
            mem.insert(Arc::new(chunk), &vector);
        }
        drop(chunks);
        drop(collections);
        drop(rx);
        Ok(VectorStore {
            db,
            path,
            memory: RwLock::new(memory),
        })
    }

    fn io(&self, e: &dyn std::fmt::Display) -> StoreError {
        StoreError::Io {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// The collection `name` for vectors of `model_id` × `dimension`: created if new,
    /// refused if it holds another model's vectors.
    pub fn ensure_collection(
        &self,
        name: &str,
        model_id: &str,
        dimension: usize,
    ) -> Result<CollectionInfo, StoreError> {
        check_name(name)?;
        if let Some(info) = self.collection(name) {
            check_model(&info, model_id, dimension)?;
            return Ok(info);
        }
        let info = CollectionInfo {
            name: name.to_string(),
            model_id: model_id.to_string(),
            dimension,
            created_ms: now_ms(),
        };
        let mut memory = self.memory.write();
        if let Some(existing) = memory.get(name) {
            check_model(&existing.info, model_id, dimension)?;
            return Ok(existing.info.clone());
        }
        let tx = self.db.begin_write().map_err(|e| self.io(&e))?;
        {
            let mut t = tx.open_table(COLLECTIONS).map_err(|e| self.io(&e))?;
            let json = serde_json::to_vec(&info).map_err(|e| self.io(&e))?;
            t.insert(name, json.as_slice()).map_err(|e| self.io(&e))?;
        }
        tx.commit().map_err(|e| self.io(&e))?;
        memory.insert(name.to_string(), Memory::new(info.clone()));
        Ok(info)
    }

    /// The collection's record, if it exists.
    pub fn collection(&self, name: &str) -> Option<CollectionInfo> {
        self.memory.read().get(name).map(|m| m.info.clone())
    }

    /// Every collection with its number of chunks.
    pub fn collections(&self) -> Vec<(CollectionInfo, usize)> {
        let mut out: Vec<_> = self
            .memory
            .read()
            .values()
            .map(|m| (m.info.clone(), m.rows.len()))
            .collect();
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        out
    }

    /// The version stored for a document, if any (what an ingest compares to skip an
    /// unchanged document without embedding it).
    pub fn document_version(
        &self,
        collection: &str,
        document_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self.doc_record(collection, document_id)?.map(|r| r.version))
    }

    /// The documents of a collection whose ids start with `prefix`, with their versions,
    /// in id order: what a source compares with what it still has, to remove the
    /// documents that are gone.
    pub fn document_ids(
        &self,
        collection: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        crate::backend::prefixed_versions(&self.db, DOCS, collection, prefix, |e| self.io(e))
    }

    pub(crate) fn doc_record(
        &self,
        collection: &str,
        document_id: &str,
    ) -> Result<Option<DocRecord>, StoreError> {
        let rx = self.db.begin_read().map_err(|e| self.io(&e))?;
        let t = rx.open_table(DOCS).map_err(|e| self.io(&e))?;
        let Some(v) = t.get((collection, document_id)).map_err(|e| self.io(&e))? else {
            return Ok(None);
        };
        serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| self.io(&format!("document {document_id:?}: {e}")))
    }

    /// A stored chunk by id.
    pub fn chunk(&self, collection: &str, chunk_id: &str) -> Option<Arc<StoredChunk>> {
        let memory = self.memory.read();
        let mem = memory.get(collection)?;
        mem.by_id.get(chunk_id).map(|&r| mem.rows[r].clone())
    }

    /// The chunks stored for a document, in chunk order.
    pub fn document_chunks(&self, collection: &str, document_id: &str) -> Vec<Arc<StoredChunk>> {
        let memory = self.memory.read();
        let Some(mem) = memory.get(collection) else {
            return Vec::new();
        };
        let Ok(Some(record)) = self.doc_record(collection, document_id) else {
            return Vec::new();
        };
        record
            .chunk_ids
            .iter()
            .filter_map(|id| mem.by_id.get(id).map(|&r| mem.rows[r].clone()))
            .collect()
    }

    /// Replaces the chunks of each document with the given ones (and their vectors), in one
    /// transaction: after it, each document has exactly these chunks. A document with no
    /// chunks is removed. Marks the documents for the lexical index in the same
    /// transaction.
    pub fn upsert(
        &self,
        collection: &str,
        docs: &[(DocumentChunks, Vec<Vec<f32>>)],
    ) -> Result<(), StoreError> {
        let info = self
            .collection(collection)
            .ok_or_else(|| StoreError::UnknownCollection(collection.to_string()))?;
        check_upsert(&info, docs)?;
        let now = now_ms();
        let mut removed: Vec<String> = Vec::new();
        let mut added: Vec<(Arc<StoredChunk>, &[f32])> = Vec::new();
        // One writer at a time keeps disk and memory in the same order.
        let mut memory = self.memory.write();
        let tx = self.db.begin_write().map_err(|e| self.io(&e))?;
        {
            let mut chunks = tx.open_table(CHUNKS).map_err(|e| self.io(&e))?;
            let mut records = tx.open_table(DOCS).map_err(|e| self.io(&e))?;
            let mut todo = tx.open_table(LEXICAL_TODO).map_err(|e| self.io(&e))?;
            for (doc, vectors) in docs {
                let id = doc.document_id.as_str();
                let old: Option<DocRecord> = records
                    .get((collection, id))
                    .map_err(|e| self.io(&e))?
                    .and_then(|v| serde_json::from_slice(v.value()).ok());
                let new_chunks: Vec<Arc<StoredChunk>> = (0..doc.chunks.len() as u32)
                    .map(|i| Arc::new(StoredChunk::from_input(doc, i, now)))
                    .collect();
                for old_id in old.iter().flat_map(|r| &r.chunk_ids) {
                    if !new_chunks.iter().any(|c| c.chunk_id == *old_id) {
                        chunks
                            .remove((collection, old_id.as_str()))
                            .map_err(|e| self.io(&e))?;
                        removed.push(old_id.clone());
                    }
                }
                for (c, v) in new_chunks.iter().zip(vectors) {
                    chunks
                        .insert((collection, c.chunk_id.as_str()), encode(c, v).as_slice())
                        .map_err(|e| self.io(&e))?;
                    added.push((c.clone(), v.as_slice()));
                }
                if new_chunks.is_empty() {
                    records.remove((collection, id)).map_err(|e| self.io(&e))?;
                } else {
                    let record = DocRecord {
                        version: doc.version.clone(),
                        chunk_ids: new_chunks.iter().map(|c| c.chunk_id.clone()).collect(),
                    };
                    let json = serde_json::to_vec(&record).map_err(|e| self.io(&e))?;
                    records
                        .insert((collection, id), json.as_slice())
                        .map_err(|e| self.io(&e))?;
                }
                todo.insert((collection, id), ()).map_err(|e| self.io(&e))?;
            }
        }
        tx.commit().map_err(|e| self.io(&e))?;
        let mem = memory
            .get_mut(collection)
            .ok_or_else(|| StoreError::UnknownCollection(collection.to_string()))?;
        for id in &removed {
            mem.remove(id);
        }
        for (c, v) in added {
            mem.insert(c, v);
        }
        Ok(())
    }

    /// Re-embeds a collection in one transaction: every chunk gets its vector from
    /// `vector_of` (its text → a vector of `dimension`), and the collection records the
    /// new model. A crash before the commit leaves the old model's vectors whole; after it,
    /// all are the new model's: never a mixture. Texts, ids and the lexical index do not
    /// change.
    pub fn reembed(
        &self,
        collection: &str,
        model_id: &str,
        dimension: usize,
        vectors: &HashMap<String, Vec<f32>>,
    ) -> Result<usize, StoreError> {
        let old = self
            .collection(collection)
            .ok_or_else(|| StoreError::UnknownCollection(collection.to_string()))?;
        let mut memory = self.memory.write();
        let rows: Vec<Arc<StoredChunk>> = memory
            .get(collection)
            .map(|m| m.rows.clone())
            .unwrap_or_default();
        for c in &rows {
            crate::backend::new_vector(c, vectors, dimension)?;
        }
        let info = CollectionInfo {
            model_id: model_id.to_string(),
            dimension,
            ..old
        };
        let tx = self.db.begin_write().map_err(|e| self.io(&e))?;
        {
            let mut t = tx.open_table(COLLECTIONS).map_err(|e| self.io(&e))?;
            let json = serde_json::to_vec(&info).map_err(|e| self.io(&e))?;
            t.insert(collection, json.as_slice())
                .map_err(|e| self.io(&e))?;
            let mut chunks = tx.open_table(CHUNKS).map_err(|e| self.io(&e))?;
            for c in &rows {
                let v = &vectors[&c.chunk_id];
                chunks
                    .insert((collection, c.chunk_id.as_str()), encode(c, v).as_slice())
                    .map_err(|e| self.io(&e))?;
            }
        }
        tx.commit().map_err(|e| self.io(&e))?;
        let mut mem = Memory::new(info);
        for c in &rows {
            mem.insert(c.clone(), &vectors[&c.chunk_id]);
        }
        memory.insert(collection.to_string(), mem);
        Ok(rows.len())
    }

    /// Every stored chunk of a collection (what a re-embedding reads).
    pub fn all_chunks(&self, collection: &str) -> Vec<Arc<StoredChunk>> {
        self.memory
            .read()
            .get(collection)
            .map(|m| m.rows.clone())
            .unwrap_or_default()
    }

    /// Removes documents and all their chunks (one transaction). Unknown ids are no-ops.
    pub fn delete(&self, collection: &str, document_ids: &[&str]) -> Result<(), StoreError> {
        if self.collection(collection).is_none() {
            return Err(StoreError::UnknownCollection(collection.to_string()));
        }
        let mut memory = self.memory.write();
        let mut removed = Vec::new();
        let tx = self.db.begin_write().map_err(|e| self.io(&e))?;
        {
            let mut chunks = tx.open_table(CHUNKS).map_err(|e| self.io(&e))?;
            let mut records = tx.open_table(DOCS).map_err(|e| self.io(&e))?;
            let mut todo = tx.open_table(LEXICAL_TODO).map_err(|e| self.io(&e))?;
            for id in document_ids {
                let old: Option<DocRecord> = records
                    .remove((collection, *id))
                    .map_err(|e| self.io(&e))?
                    .and_then(|v| serde_json::from_slice(v.value()).ok());
                for chunk_id in old.into_iter().flat_map(|r| r.chunk_ids) {
                    chunks
                        .remove((collection, chunk_id.as_str()))
                        .map_err(|e| self.io(&e))?;
                    removed.push(chunk_id);
                }
                todo.insert((collection, *id), ())
                    .map_err(|e| self.io(&e))?;
            }
        }
        tx.commit().map_err(|e| self.io(&e))?;
        if let Some(mem) = memory.get_mut(collection) {
            for id in &removed {
                mem.remove(id);
            }
        }
        Ok(())
    }

    /// The `k` chunks most similar to `query` (a unit vector of the collection's model)
    /// that pass `filter`, best first, with scores at or above `min_score` when given.
    pub fn search(
        &self,
        collection: &str,
        model_id: &str,
        query: &[f32],
        k: usize,
        filter: &Filter,
        min_score: Option<f32>,
    ) -> Result<Vec<VectorHit>, StoreError> {
        let memory = self.memory.read();
        let mem = memory
            .get(collection)
            .ok_or_else(|| StoreError::UnknownCollection(collection.to_string()))?;
        check_model(&mem.info, model_id, query.len())?;
        let matcher = filter.matcher();
        let all = |_: usize| true;
        let filtered = |row: usize| matcher(&mem.rows[row]);
        let keep: &(dyn Fn(usize) -> bool + Sync) =
            if filter.is_empty() { &all } else { &filtered };
        Ok(scan::top_k_quantised(
            &mem.vectors,
            &mem.codes,
            &mem.scales,
            mem.info.dimension,
            query,
            k,
            keep,
        )
        .into_iter()
        .filter(|s| min_score.is_none_or(|m| s.score >= m))
        .map(|s| VectorHit {
            chunk: mem.rows[s.row].clone(),
            score: s.score,
        })
        .collect())
    }
}

impl VectorBackend for VectorStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn document_ids(
        &self,
        collection: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        VectorStore::document_ids(self, collection, prefix)
    }

    fn all_chunks(&self, collection: &str) -> Result<Vec<Arc<StoredChunk>>, StoreError> {
        Ok(VectorStore::all_chunks(self, collection))
    }

    fn reembed(
        &self,
        collection: &str,
        model_id: &str,
        dimension: usize,
        vectors: &HashMap<String, Vec<f32>>,
    ) -> Result<usize, StoreError> {
        VectorStore::reembed(self, collection, model_id, dimension, vectors)
    }

    fn ensure_collection(
        &self,
        name: &str,
        model_id: &str,
        dimension: usize,
    ) -> Result<CollectionInfo, StoreError> {
        VectorStore::ensure_collection(self, name, model_id, dimension)
    }

    fn collection(&self, name: &str) -> Result<Option<CollectionInfo>, StoreError> {
        Ok(VectorStore::collection(self, name))
    }

    fn collections(&self) -> Result<Vec<(CollectionInfo, usize)>, StoreError> {
        Ok(VectorStore::collections(self))
    }

    fn document_version(
        &self,
        collection: &str,
        document_id: &str,
    ) -> Result<Option<String>, StoreError> {
        VectorStore::document_version(self, collection, document_id)
    }

    fn documents_chunks(
        &self,
        collection: &str,
        document_ids: &[String],
    ) -> Result<Vec<Vec<Arc<StoredChunk>>>, StoreError> {
        Ok(document_ids
            .iter()
            .map(|id| VectorStore::document_chunks(self, collection, id))
            .collect())
    }

    fn chunks_by_id(
        &self,
        collection: &str,
        chunk_ids: &[&str],
    ) -> Result<Vec<Option<Arc<StoredChunk>>>, StoreError> {
        Ok(chunk_ids
            .iter()
            .map(|id| VectorStore::chunk(self, collection, id))
            .collect())
    }

    fn upsert(
        &self,
        collection: &str,
        docs: &[(DocumentChunks, Vec<Vec<f32>>)],
    ) -> Result<(), StoreError> {
        VectorStore::upsert(self, collection, docs)
    }

    fn delete(&self, collection: &str, document_ids: &[&str]) -> Result<(), StoreError> {
        VectorStore::delete(self, collection, document_ids)
    }

    fn search(
        &self,
        collection: &str,
        model_id: &str,
        query: &[f32],
        k: usize,
        filter: &Filter,
        min_score: Option<f32>,
    ) -> Result<Vec<VectorHit>, StoreError> {
        VectorStore::search(self, collection, model_id, query, k, filter, min_score)
    }

    fn lexical_todo(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
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

    fn clear_lexical_todo(
        &self,
        collection: &str,
        document_ids: &[String],
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(|e| self.io(&e))?;
        {
            let mut t = tx.open_table(LEXICAL_TODO).map_err(|e| self.io(&e))?;
            for id in document_ids {
                t.remove((collection, id.as_str()))
                    .map_err(|e| self.io(&e))?;
            }
        }
        tx.commit().map_err(|e| self.io(&e))?;
        Ok(())
    }
}
