//! A ChromaDB server as the vector store (`[rag.store] kind = "chroma"`), over Chroma's v2
//! HTTP API: tenant and database (created if missing), one Chroma collection per
//! collection of ours (cosine space), chunks as records with metadata, filters as `where`.
//!
//! **Replacing a document's chunks exactly, on a store without transactions.** Chunk ids
//! are `document#version#index`, so writing a version twice overwrites instead of
//! duplicating. A replacement (an upsert or a delete) is:
//! 1. locally (redb, [`state`]): record the replacement as pending: the new record and every
//!    id that may be in Chroma for the document and is not in it (the committed record's,
//!    and those of any earlier pending replacement);
//! 2. Chroma: upsert the new chunks;
//! 3. Chroma: delete the stale ids;
//! 4. locally: the new record becomes the committed one, the pending entry goes.
//!
//! Requests are retried through connection errors and 5xx ([`client`]), so a server
//! restarted mid-ingest costs a pause. If our process dies (or the retries give up) between
//! 1 and 4, the pending entry stays: the next replacement of the document folds it in (its
//! stale ids are deleted too), and [`ChromaStore::open`] settles every other one by looking
//! at what Chroma holds: the new version complete → finish steps 3-4; else the committed
//! version complete → delete the partial new chunks; else (both incomplete: a fold of two
//! interrupted attempts) → delete every id of the document and drop its record, so the next
//! ingest, seeing no version, embeds it again. Each way the document ends with exactly the
//! chunks of one version, or none, and no stray record is left.
//!
//! **Reads hold to the committed record**: search and lookups return a chunk only if it is
//! in its document's committed record, so the brief overlap of old and new chunks between
//! steps 2 and 3 is never visible (a search may return fewer than k in that window).

mod client;
mod records;
mod state;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde_json::{Value, json};

use crate::backend::{
    CollectionInfo, DocRecord, StoreError, VectorBackend, VectorHit, check_model, check_name,
    check_upsert,
};
use crate::chunk::{DocumentChunks, Filter, StoredChunk, now_ms};
use client::Http;
use records::{META_CREATED, META_DIMENSION, META_MODEL, META_NAME, META_REEMBED_OF};
use state::{Change, Pending, Reembed, State};

/// Where the Chroma server is (`[rag.store]` with `kind = "chroma"`).
#[derive(Clone)]
pub struct ChromaConfig {
    /// `http://host:8000` (no path; credentials in it are ignored).
    pub url: String,
    /// Created if missing. Chroma's default: `default_tenant`.
    pub tenant: String,
    /// Created if missing. Chroma's default: `default_database`.
    pub database: String,
    /// Sent as `x-chroma-token` and `Authorization: Bearer`; never logged or shown.
    pub token: Option<String>,
    /// Per request.
    pub timeout: Duration,
    /// How long a request is retried through connection errors and 5xx before the
    /// operation fails (a server restart takes a few seconds).
    pub retry_for: Duration,
}

impl ChromaConfig {
    /// The server at `url` with Chroma's default tenant and database, a 30 s request
    /// timeout and 60 s of retries.
    pub fn new(url: impl Into<String>) -> ChromaConfig {
        ChromaConfig {
            url: url.into(),
            tenant: "default_tenant".into(),
            database: "default_database".into(),
            token: None,
            timeout: Duration::from_secs(30),
            retry_for: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for ChromaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChromaConfig")
            .field("url", &self.url)
            .field("tenant", &self.tenant)
            .field("database", &self.database)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("retry_for", &self.retry_for)
            .finish()
    }
}

/// A collection as known here: our record and Chroma's id for it.
#[derive(Debug, Clone)]
struct Remote {
    info: CollectionInfo,
    id: String,
}

/// The Chroma vector store (see the module note).
pub struct ChromaStore {
    http: Http,
    state: State,
    /// Collections seen on the server (name → record and id): a query costs no lookup.
    known: RwLock<HashMap<String, Remote>>,
    /// Records per request, from the server's `max_batch_size`.
    batch: usize,
    tenant: String,
    database: String,
}

impl std::fmt::Debug for ChromaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChromaStore")
            .field("url", &self.http.url())
            .field("tenant", &self.tenant)
            .field("database", &self.database)
            .field("state", &self.state)
            .finish()
    }
}

/// At most this many records per request even if the server allows more: a batch of
/// 384-dim vectors as JSON is about 4 KB a record.
const MAX_BATCH: usize = 1000;

fn ids_json(ids: &[&str]) -> Value {
    json!(ids)
}

impl ChromaStore {
    /// Connects (tenant and database created if missing), then settles replacements a
    /// crash left pending (see the module note).
    pub fn open(config: ChromaConfig, local_dir: &Path) -> Result<ChromaStore, StoreError> {
        let http = Http::new(
            &config.url,
            &config.tenant,
            &config.database,
            config.token.as_deref(),
            config.timeout,
            config.retry_for,
        )?;
        let tenant_path = format!("/tenants/{}", Http::segment(&config.tenant));
        if http
            .get_root(&format!("get tenant {:?}", config.tenant), &tenant_path)?
            .is_none()
        {
            http.create_root(
                &format!("create tenant {:?}", config.tenant),
                "/tenants",
                &json!({"name": config.tenant}),
            )?;
        }
        let db_path = format!(
            "{tenant_path}/databases/{}",
            Http::segment(&config.database)
        );
        if http
            .get_root(&format!("get database {:?}", config.database), &db_path)?
            .is_none()
        {
            http.create_root(
                &format!("create database {:?}", config.database),
                &format!("{tenant_path}/databases"),
                &json!({"name": config.database}),
            )?;
        }
        let batch = http
            .get_root("pre-flight checks", "/pre-flight-checks")?
            .and_then(|v| v.get("max_batch_size")?.as_u64())
            .map_or(MAX_BATCH, |n| (n as usize).clamp(1, MAX_BATCH));
        let store = ChromaStore {
            http,
            state: State::open(local_dir)?,
            known: RwLock::new(HashMap::new()),
            batch,
            tenant: config.tenant,
            database: config.database,
        };
        store.recover()?;
        Ok(store)
    }

    /// Our record of a Chroma collection, checked: it must be ours (named in its metadata)
    /// and in cosine space (scores are `1 - distance`).
    fn parse_collection(&self, name: &str, v: &Value) -> Result<Remote, StoreError> {
        let bad = |message: String| StoreError::Remote {
            url: self.http.url().to_string(),
            operation: format!("collection {name:?}"),
            message,
        };
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("the server's answer has no collection id".into()))?;
        let meta = v.get("metadata").cloned().unwrap_or(Value::Null);
        let stored_name = meta.get(META_NAME).and_then(Value::as_str);
        if stored_name != Some(name) {
            return Err(bad(format!(
                "the Chroma collection {:?} is not this one (it records the name {stored_name:?})",
                records::chroma_name(name)
            )));
        }
        let space = v
            .pointer("/configuration_json/hnsw/space")
            .or_else(|| v.pointer("/configuration_json/spann/space"))
            .and_then(Value::as_str);
        if let Some(space) = space
            && space != "cosine"
        {
            return Err(bad(format!(
                "the collection uses the {space:?} distance; it must be \"cosine\""
            )));
        }
        let info = CollectionInfo {
            name: name.to_string(),
            model_id: meta
                .get(META_MODEL)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            dimension: meta
                .get(META_DIMENSION)
                .and_then(Value::as_u64)
                .unwrap_or_default() as usize,
            created_ms: meta
                .get(META_CREATED)
                .and_then(Value::as_i64)
                .unwrap_or_default(),
        };
        Ok(Remote {
            info,
            id: id.to_string(),
        })
    }

    /// The collection as known, asking the server on first use; `None` if it has none.
    fn remote(&self, name: &str) -> Result<Option<Remote>, StoreError> {
        if let Some(r) = self.known.read().get(name) {
            return Ok(Some(r.clone()));
        }
        check_name(name)?;
        let path = format!(
            "/collections/{}",
            Http::segment(&records::chroma_name(name))
        );
        let Some(v) = self.http.get(&format!("get collection {name:?}"), &path)? else {
            return Ok(None);
        };
        let remote = self.parse_collection(name, &v)?;
        self.state.bind_collection(name, &remote.id)?;
        self.known.write().insert(name.to_string(), remote.clone());
        Ok(Some(remote))
    }

    fn must_remote(&self, name: &str) -> Result<Remote, StoreError> {
        self.remote(name)?
            .ok_or_else(|| StoreError::UnknownCollection(name.to_string()))
    }

    /// Which of `ids` Chroma holds.
    fn present(&self, remote: &Remote, ids: &[&str]) -> Result<HashSet<String>, StoreError> {
        let mut out = HashSet::new();
        for part in ids.chunks(self.batch) {
            let v = self.http.post(
                &format!(
                    "get {} chunks of collection {:?}",
                    part.len(),
                    remote.info.name
                ),
                &format!("{}/get", Http::collection_path(&remote.id)),
                &json!({"ids": ids_json(part), "include": []}),
            )?;
            for id in v.get("ids").and_then(Value::as_array).into_iter().flatten() {
                if let Some(id) = id.as_str() {
                    out.insert(id.to_string());
                }
            }
        }
        Ok(out)
    }

    /// Chunks by id with text and metadata (those Chroma holds).
    fn fetch(
        &self,
        remote: &Remote,
        ids: &[&str],
    ) -> Result<HashMap<String, Arc<StoredChunk>>, StoreError> {
        let mut out = HashMap::new();
        for part in ids.chunks(self.batch) {
            let v = self.http.post(
                &format!(
                    "get {} chunks of collection {:?}",
                    part.len(),
                    remote.info.name
                ),
                &format!("{}/get", Http::collection_path(&remote.id)),
                &json!({"ids": ids_json(part), "include": ["documents", "metadatas"]}),
            )?;
            let got = v
                .get("ids")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let docs = v.get("documents").and_then(Value::as_array);
            let metas = v.get("metadatas").and_then(Value::as_array);
            for (i, id) in got.iter().enumerate() {
                let Some(id) = id.as_str() else { continue };
                let text = docs.and_then(|d| d.get(i)?.as_str());
                let meta = metas.and_then(|m| m.get(i));
                if let Some(c) = records::chunk_from_record(id, text, meta) {
                    out.insert(id.to_string(), Arc::new(c));
                }
            }
        }
        Ok(out)
    }

    fn delete_ids(&self, remote: &Remote, ids: &[&str]) -> Result<(), StoreError> {
        for part in ids.chunks(self.batch) {
            self.http.post(
                &format!(
                    "delete {} chunks of collection {:?}",
                    part.len(),
                    remote.info.name
                ),
                &format!("{}/delete", Http::collection_path(&remote.id)),
                &json!({"ids": ids_json(part)}),
            )?;
        }
        Ok(())
    }

    fn upsert_chunks(
        &self,
        remote: &Remote,
        chunks: &[(Arc<StoredChunk>, &[f32])],
    ) -> Result<(), StoreError> {
        for part in chunks.chunks(self.batch) {
            let body = json!({
                "ids": part.iter().map(|(c, _)| c.chunk_id.as_str()).collect::<Vec<_>>(),
                "embeddings": part.iter().map(|(_, v)| v).collect::<Vec<_>>(),
                "documents": part.iter().map(|(c, _)| c.text.as_str()).collect::<Vec<_>>(),
                "metadatas": part.iter().map(|(c, _)| records::chunk_metadata(c)).collect::<Vec<_>>(),
            });
            self.http.post(
                &format!(
                    "upsert {} chunks into collection {:?}",
                    part.len(),
                    remote.info.name
                ),
                &format!("{}/upsert", Http::collection_path(&remote.id)),
                &body,
            )?;
        }
        Ok(())
    }

    /// Steps 1-4 of the module note for a batch of documents of one collection:
    /// `(document id, new record or None, new chunks with vectors)`.
    fn replace(
        &self,
        remote: &Remote,
        docs: &[(&str, Option<DocRecord>)],
        chunks: &[(Arc<StoredChunk>, &[f32])],
    ) -> Result<(), StoreError> {
        let collection = remote.info.name.as_str();
        let ids: Vec<&str> = docs.iter().map(|(id, _)| *id).collect();
        let committed = self.state.records(collection, &ids)?;
        let pending = self.state.pending_of(collection, &ids)?;
        let mut begins = Vec::with_capacity(docs.len());
        let mut stale_all: Vec<String> = Vec::new();
        for (((id, new), old), prior) in docs.iter().zip(committed).zip(pending) {
            let keep: HashSet<&str> = new
                .iter()
                .flat_map(|r| r.chunk_ids.iter().map(String::as_str))
                .collect();
            let mut stale: Vec<String> = Vec::new();
            let maybe_there =
                old.iter()
                    .flat_map(|r| r.chunk_ids.iter())
                    .chain(prior.iter().flat_map(|p| {
                        p.stale
                            .iter()
                            .chain(p.new.iter().flat_map(|r| r.chunk_ids.iter()))
                    }));
            for c in maybe_there {
                if !keep.contains(c.as_str()) && !stale.contains(c) {
                    stale.push(c.clone());
                }
            }
            stale_all.extend(stale.iter().cloned());
            begins.push((
                *id,
                Pending {
                    new: new.clone(),
                    stale,
                },
            ));
        }
        let changes: Vec<Change<'_>> = begins
            .iter()
            .map(|(id, p)| Change::Begin(id, p.clone()))
            .collect();
        self.state.apply(collection, &changes)?;
        self.upsert_chunks(remote, chunks)?;
        let stale: Vec<&str> = stale_all.iter().map(String::as_str).collect();
        self.delete_ids(remote, &stale)?;
        let commits: Vec<Change<'_>> = docs
            .iter()
            .map(|(id, new)| Change::Commit(id, new.as_ref()))
            .collect();
        self.state.apply(collection, &commits)
    }

    /// **Re-embedding without a transaction.** Chroma cannot swap every vector of a
    /// collection at once, so the chunks are copied with their new vectors into a new
    /// Chroma collection under a temporary name (`<name>--reembed`, no `impressox_name`
    /// so listings skip it), recorded locally first; then the old collection is deleted
    /// and the new one renamed to the collection's name with its metadata (new model and
    /// dimension), and the local record follows the new id with every document record
    /// kept (same chunk ids). Until the delete, the old collection serves unchanged; after
    /// it, the next step only goes forward: [`ChromaStore::settle_reembeds`] finishes the
    /// rename at open (or right away). Other hosts writing to the collection meanwhile
    /// would write to the old one: stop them, as for any reindex.
    fn reembed_into_new(
        &self,
        collection: &str,
        model_id: &str,
        dimension: usize,
        vectors: &HashMap<String, Vec<f32>>,
    ) -> Result<usize, StoreError> {
        let old = self.must_remote(collection)?;
        let chunks = self.all_chunks(collection)?;
        let mut with_vectors: Vec<(Arc<StoredChunk>, &[f32])> = Vec::with_capacity(chunks.len());
        for c in &chunks {
            with_vectors.push((
                c.clone(),
                crate::backend::new_vector(c, vectors, dimension)?,
            ));
        }
        let temp = format!("{}--reembed", records::chroma_name(collection));
        // A leftover of an attempt that never got recorded (it died creating it).
        self.http.delete(
            &format!("delete collection {temp:?}"),
            &format!("/collections/{}", Http::segment(&temp)),
        )?;
        let metadata = json!({
            META_NAME: collection,
            META_MODEL: model_id,
            META_DIMENSION: dimension,
            META_CREATED: old.info.created_ms,
        });
        let v = self.http.post(
            &format!("create collection {temp:?}"),
            "/collections",
            &json!({
                "name": temp,
                "metadata": {META_REEMBED_OF: collection},
                "configuration": {"hnsw": {"space": "cosine"}},
            }),
        )?;
        let new_id = v
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| StoreError::Remote {
                url: self.http.url().to_string(),
                operation: format!("create collection {temp:?}"),
                message: "the server's answer has no collection id".into(),
            })?
            .to_string();
        let plan = Reembed {
            old_id: old.id.clone(),
            new_id: new_id.clone(),
            metadata,
        };
        self.state.begin_reembed(collection, &plan)?;
        let target = Remote {
            info: CollectionInfo {
                model_id: model_id.to_string(),
                dimension,
                ..old.info.clone()
            },
            id: new_id,
        };
        self.upsert_chunks(&target, &with_vectors)?;
        let count = self
            .http
            .get(
                &format!("count collection {temp:?}"),
                &format!("{}/count", Http::collection_path(&target.id)),
            )?
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as usize;
        if count != with_vectors.len() {
            return Err(StoreError::Remote {
                url: self.http.url().to_string(),
                operation: format!("re-embed {collection:?}"),
                message: format!(
                    "the new collection holds {count} chunks, not {}; the old one still serves",
                    with_vectors.len()
                ),
            });
        }
        self.http.delete(
            &format!("delete collection {collection:?} (re-embedded)"),
            &format!(
                "/collections/{}",
                Http::segment(&records::chroma_name(collection))
            ),
        )?;
        self.finish_swap(collection, &plan)?;
        self.known.write().insert(collection.to_string(), target);
        Ok(with_vectors.len())
    }

    /// Renames the new collection to the collection's name and makes it the recorded one.
    fn finish_swap(&self, collection: &str, plan: &Reembed) -> Result<(), StoreError> {
        let operation = format!("rename the re-embedded collection {collection:?}");
        let body =
            json!({"new_name": records::chroma_name(collection), "new_metadata": plan.metadata});
        if let Err(e) = self
            .http
            .put(&operation, &Http::collection_path(&plan.new_id), &body)
        {
            // A retried rename that went through the first time is refused as a duplicate
            // name: it is done if the name now leads to the new collection.
            if self.serving_id(collection)?.as_deref() != Some(plan.new_id.as_str()) {
                return Err(e);
            }
        }
        self.state.end_reembed(collection, Some(&plan.new_id))
    }

    /// The Chroma id now under the collection's name, asking the server.
    fn serving_id(&self, collection: &str) -> Result<Option<String>, StoreError> {
        let path = format!(
            "/collections/{}",
            Http::segment(&records::chroma_name(collection))
        );
        Ok(self
            .http
            .get(&format!("get collection {collection:?}"), &path)?
            .and_then(|v| Some(v.get("id")?.as_str()?.to_string())))
    }

    /// Settles every re-embedding a crash or a failure left under way: the old collection
    /// still serving → the new one is dropped (the reindex failed; run it again); the name
    /// free → the swap is finished; the new one serving → the local record follows it;
    /// anything else (the collection re-created meanwhile) → the new one is dropped.
    fn settle_reembeds(&self) -> Result<(), StoreError> {
        for (collection, plan) in self.state.reembeds()? {
            let serving = self.serving_id(&collection)?;
            if serving.is_none() {
                self.finish_swap(&collection, &plan)?;
            } else if serving.as_deref() == Some(plan.new_id.as_str()) {
                self.state.end_reembed(&collection, Some(&plan.new_id))?;
            } else {
                let temp = format!("{}--reembed", records::chroma_name(&collection));
                self.http.delete(
                    &format!("delete collection {temp:?}"),
                    &format!("/collections/{}", Http::segment(&temp)),
                )?;
                self.state.end_reembed(&collection, None)?;
            }
            self.known.write().remove(&collection);
        }
        Ok(())
    }

    /// Settles every pending replacement (see the module note).
    fn recover(&self) -> Result<(), StoreError> {
        self.settle_reembeds()?;
        for (collection, id, pending) in self.state.all_pending()? {
            let Some(remote) = self.remote(&collection)? else {
                // The collection is gone from the server: nothing of it to settle.
                self.state
                    .apply(&collection, &[Change::Commit(&id, None)])?;
                continue;
            };
            let committed = self.state.records(&collection, &[id.as_str()])?.remove(0);
            let mut all: Vec<&str> = pending.stale.iter().map(String::as_str).collect();
            for r in pending.new.iter().chain(committed.iter()) {
                all.extend(r.chunk_ids.iter().map(String::as_str));
            }
            all.sort_unstable();
            all.dedup();
            let there = self.present(&remote, &all)?;
            let complete = |r: &DocRecord| r.chunk_ids.iter().all(|c| there.contains(c));
            let keep: Option<&DocRecord> = match (&pending.new, &committed) {
                (None, _) => None,
                (Some(new), _) if complete(new) => Some(new),
                (Some(_), Some(old)) if complete(old) => Some(old),
                _ => None,
            };
            let keep_ids: HashSet<&str> = keep
                .iter()
                .flat_map(|r| r.chunk_ids.iter().map(String::as_str))
                .collect();
            let drop: Vec<&str> = all
                .iter()
                .copied()
                .filter(|c| there.contains(*c) && !keep_ids.contains(c))
                .collect();
            self.delete_ids(&remote, &drop)?;
            self.state
                .apply(&collection, &[Change::Commit(&id, keep)])?;
        }
        Ok(())
    }

    /// Keeps the chunks that are in their document's committed record.
    fn current(
        &self,
        collection: &str,
        chunks: impl IntoIterator<Item = Arc<StoredChunk>>,
    ) -> Result<Vec<Option<Arc<StoredChunk>>>, StoreError> {
        let chunks: Vec<Arc<StoredChunk>> = chunks.into_iter().collect();
        let mut doc_ids: Vec<&str> = chunks.iter().map(|c| c.document_id.as_str()).collect();
        doc_ids.sort_unstable();
        doc_ids.dedup();
        let records: HashMap<&str, Option<DocRecord>> = doc_ids
            .iter()
            .copied()
            .zip(self.state.records(collection, &doc_ids)?)
            .collect();
        Ok(chunks
            .iter()
            .map(|c| {
                let ok = records
                    .get(c.document_id.as_str())
                    .and_then(Option::as_ref)
                    .is_some_and(|r| r.chunk_ids.contains(&c.chunk_id));
                ok.then(|| c.clone())
            })
            .collect())
    }
}

impl VectorBackend for ChromaStore {
    fn document_ids(
        &self,
        collection: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.state.document_ids(collection, prefix)
    }

    fn all_chunks(&self, collection: &str) -> Result<Vec<Arc<StoredChunk>>, StoreError> {
        let ids: Vec<String> = self
            .state
            .document_ids(collection, "")?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut out = Vec::new();
        for batch in ids.chunks(self.batch.max(1)) {
            out.extend(
                self.documents_chunks(collection, batch)?
                    .into_iter()
                    .flatten(),
            );
        }
        Ok(out)
    }

    /// Re-embeds into a new Chroma collection, then swaps it in by name (see
    /// [`ChromaStore::reembed_into_new`]): a half re-embedded collection never serves.
    fn reembed(
        &self,
        collection: &str,
        model_id: &str,
        dimension: usize,
        vectors: &HashMap<String, Vec<f32>>,
    ) -> Result<usize, StoreError> {
        let result = self.reembed_into_new(collection, model_id, dimension, vectors);
        if result.is_err() {
            // Settle now what can be settled (drop the new collection if the old one still
            // serves; finish the swap if the old one is gone), else at the next open.
            // A failure here leaves the record for the next open; the first error is the
            // one to report.
            self.known.write().remove(collection);
            let _ = self.settle_reembeds();
        }
        result
    }

    fn kind(&self) -> &'static str {
        "chroma"
    }

    fn ensure_collection(
        &self,
        name: &str,
        model_id: &str,
        dimension: usize,
    ) -> Result<CollectionInfo, StoreError> {
        check_name(name)?;
        if let Some(r) = self.remote(name)? {
            check_model(&r.info, model_id, dimension)?;
            return Ok(r.info);
        }
        // get_or_create: two hosts creating the same collection get the same one, and the
        // answer carries the metadata of whichever won (checked below).
        let body = json!({
            "name": records::chroma_name(name),
            "metadata": {
                META_NAME: name,
                META_MODEL: model_id,
                META_DIMENSION: dimension,
                META_CREATED: now_ms(),
            },
            "configuration": {"hnsw": {"space": "cosine"}},
            "get_or_create": true,
        });
        let v = self.http.post(
            &format!("create collection {name:?}"),
            "/collections",
            &body,
        )?;
        let remote = self.parse_collection(name, &v)?;
        check_model(&remote.info, model_id, dimension)?;
        self.state.bind_collection(name, &remote.id)?;
        self.known.write().insert(name.to_string(), remote.clone());
        Ok(remote.info)
    }

    fn collection(&self, name: &str) -> Result<Option<CollectionInfo>, StoreError> {
        if check_name(name).is_err() {
            return Ok(None);
        }
        Ok(self.remote(name)?.map(|r| r.info))
    }

    fn collections(&self) -> Result<Vec<(CollectionInfo, usize)>, StoreError> {
        const PAGE: usize = 100;
        let mut out = Vec::new();
        for page in 0.. {
            let v = self
                .http
                .get(
                    "list collections",
                    &format!("/collections?limit={PAGE}&offset={}", page * PAGE),
                )?
                .unwrap_or(Value::Null);
            let list = v.as_array().cloned().unwrap_or_default();
            for c in &list {
                let Some(name) = c
                    .pointer("/metadata/impressox_name")
                    .and_then(Value::as_str)
                else {
                    continue; // not one of ours
                };
                let remote = self.parse_collection(name, c)?;
                let count = self
                    .http
                    .get(
                        &format!("count collection {name:?}"),
                        &format!("{}/count", Http::collection_path(&remote.id)),
                    )?
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0) as usize;
                out.push((remote.info, count));
            }
            if list.len() < PAGE {
                break;
            }
        }
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(out)
    }

    fn document_version(
        &self,
        collection: &str,
        document_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .state
            .records(collection, &[document_id])?
            .remove(0)
            .map(|r| r.version))
    }

    fn documents_chunks(
        &self,
        collection: &str,
        document_ids: &[String],
    ) -> Result<Vec<Vec<Arc<StoredChunk>>>, StoreError> {
        let ids: Vec<&str> = document_ids.iter().map(String::as_str).collect();
        let records = self.state.records(collection, &ids)?;
        let wanted: Vec<&str> = records
            .iter()
            .flatten()
            .flat_map(|r| r.chunk_ids.iter().map(String::as_str))
            .collect();
        if wanted.is_empty() {
            return Ok(vec![Vec::new(); document_ids.len()]);
        }
        let remote = self.must_remote(collection)?;
        let found = self.fetch(&remote, &wanted)?;
        Ok(records
            .iter()
            .map(|r| {
                r.iter()
                    .flat_map(|r| r.chunk_ids.iter())
                    .filter_map(|id| found.get(id).cloned())
                    .collect()
            })
            .collect())
    }

    fn chunks_by_id(
        &self,
        collection: &str,
        chunk_ids: &[&str],
    ) -> Result<Vec<Option<Arc<StoredChunk>>>, StoreError> {
        if chunk_ids.is_empty() {
            return Ok(Vec::new());
        }
        let Some(remote) = self.remote(collection)? else {
            return Ok(vec![None; chunk_ids.len()]);
        };
        let mut found = self.fetch(&remote, chunk_ids)?;
        let in_order: Vec<Option<Arc<StoredChunk>>> =
            chunk_ids.iter().map(|id| found.remove(*id)).collect();
        let present: Vec<Arc<StoredChunk>> = in_order.iter().flatten().cloned().collect();
        let mut current = self.current(collection, present)?.into_iter();
        Ok(in_order
            .into_iter()
            .map(|c| c.and_then(|_| current.next().flatten()))
            .collect())
    }

    fn upsert(
        &self,
        collection: &str,
        docs: &[(DocumentChunks, Vec<Vec<f32>>)],
    ) -> Result<(), StoreError> {
        let remote = self.must_remote(collection)?;
        check_upsert(&remote.info, docs)?;
        let now = now_ms();
        // A document listed twice in one batch: the last one counts (as in the embedded
        // store, where they apply in order); the earlier ones are never written.
        let last: HashMap<&str, usize> = docs
            .iter()
            .enumerate()
            .map(|(i, (d, _))| (d.document_id.as_str(), i))
            .collect();
        let mut records = Vec::with_capacity(docs.len());
        let mut chunks: Vec<(Arc<StoredChunk>, &[f32])> = Vec::new();
        for (i, (doc, vectors)) in docs.iter().enumerate() {
            if last.get(doc.document_id.as_str()) != Some(&i) {
                continue;
            }
            let new: Vec<Arc<StoredChunk>> = (0..doc.chunks.len() as u32)
                .map(|i| Arc::new(StoredChunk::from_input(doc, i, now)))
                .collect();
            let record = (!new.is_empty()).then(|| DocRecord {
                version: doc.version.clone(),
                chunk_ids: new.iter().map(|c| c.chunk_id.clone()).collect(),
            });
            records.push((doc.document_id.as_str(), record));
            chunks.extend(new.into_iter().zip(vectors.iter().map(Vec::as_slice)));
        }
        self.replace(&remote, &records, &chunks)
    }

    fn delete(&self, collection: &str, document_ids: &[&str]) -> Result<(), StoreError> {
        let remote = self.must_remote(collection)?;
        let mut ids: Vec<&str> = document_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let docs: Vec<(&str, Option<DocRecord>)> = ids.into_iter().map(|id| (id, None)).collect();
        self.replace(&remote, &docs, &[])
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
        let remote = self.must_remote(collection)?;
        check_model(&remote.info, model_id, query.len())?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let mut body = json!({
            "query_embeddings": [query],
            "n_results": k,
            "include": ["documents", "metadatas", "distances"],
        });
        if let Some(w) = records::where_clause(filter) {
            body["where"] = w;
        }
        let v = self.http.post(
            &format!("query collection {collection:?}"),
            &format!("{}/query", Http::collection_path(&remote.id)),
            &body,
        )?;
        let first = |key: &str| v.get(key).and_then(|a| a.get(0)).and_then(Value::as_array);
        let ids = first("ids").cloned().unwrap_or_default();
        let docs = first("documents");
        let metas = first("metadatas");
        let dists = first("distances");
        let mut hits: Vec<(Arc<StoredChunk>, f32)> = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let Some(id) = id.as_str() else { continue };
            let text = docs.and_then(|d| d.get(i)?.as_str());
            let meta = metas.and_then(|m| m.get(i));
            let Some(chunk) = records::chunk_from_record(id, text, meta) else {
                continue;
            };
            let distance = dists.and_then(|d| d.get(i)?.as_f64()).unwrap_or(2.0) as f32;
            // Chroma's cosine distance is 1 - cos.
            hits.push((Arc::new(chunk), 1.0 - distance));
        }
        let current = self.current(collection, hits.iter().map(|(c, _)| c.clone()))?;
        Ok(hits
            .into_iter()
            .zip(current)
            .filter(|(_, c)| c.is_some())
            .map(|((chunk, score), _)| VectorHit { chunk, score })
            .filter(|h| min_score.is_none_or(|m| h.score >= m))
            .collect())
    }

    fn lexical_todo(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        self.state.lexical_todo()
    }

    fn clear_lexical_todo(
        &self,
        collection: &str,
        document_ids: &[String],
    ) -> Result<(), StoreError> {
        self.state.clear_lexical_todo(collection, document_ids)
    }
}
