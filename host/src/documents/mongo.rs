//! The MongoDB backend (`mongodb` 3.9; tested against SecantusDB).
//!
//! JSON documents go through serde into BSON (`bson::to_document`), not through Extended
//! JSON, so a `$date` key in user data stays a plain key. `_rev` is kept by the writes
//! themselves: inserts set 1, a compare-and-set replaces only the document with the
//! expected `_rev`, and an upsert bumps it in one round trip with a pipeline update. A
//! duplicate key (E11000, also from a unique secondary index) is an outcome, not an error.

use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};

use super::{Cond, Doc, Documents, Filter, IndexSpec, Order, Query, Write, WriteOutcome, id_of};

const DUPLICATE_KEY: i32 = 11000;

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(m) => m
            .write_errors
            .iter()
            .flatten()
            .any(|w| w.code == DUPLICATE_KEY),
        _ => false,
    }
}

/// The MongoDB document store.
pub struct MongoDocuments {
    db: Database,
}

impl MongoDocuments {
    /// Connect and check the server answers (a clear start-up error otherwise). The URL
    /// may hold a password, so errors never repeat it.
    pub async fn connect(url: &str, database: &str) -> Result<MongoDocuments> {
        let mut options = ClientOptions::parse(url)
            .await
            .context("[documents] mongodb_url is not a valid MongoDB connection string")?;
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(Duration::from_secs(5));
        }
        options.app_name = Some("impressox".into());
        let client = Client::with_options(options).context("cannot create a MongoDB client")?;
        let db = client.database(database);
        db.run_command(doc! {"ping": 1}).await.with_context(|| {
            format!(
                "cannot reach MongoDB at [documents] mongodb_url (hosts: {})",
                hosts_of(url)
            )
        })?;
        Ok(MongoDocuments { db })
    }

    fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }
}

/// The host list of a connection string, without credentials.
fn hosts_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    rest.split(['/', '?']).next().unwrap_or("").to_string()
}

fn to_bson_doc(d: &Doc) -> Result<Document> {
    bson::to_document(d).context("document cannot be stored as BSON")
}

fn from_bson_doc(d: Document) -> Result<Doc> {
    bson::from_document(d).context("stored document is not valid JSON")
}

fn to_bson(v: &serde_json::Value) -> Result<Bson> {
    bson::to_bson(v).context("value cannot be stored as BSON")
}

fn filter_doc(f: &Filter) -> Result<Document> {
    let mut out = Document::new();
    for (field, cond) in &f.0 {
        let (op, value) = match cond {
            Cond::Eq(v) => ("$eq", to_bson(v)?),
            Cond::Ne(v) => ("$ne", to_bson(v)?),
            Cond::In(vs) => (
                "$in",
                Bson::Array(vs.iter().map(to_bson).collect::<Result<_>>()?),
            ),
            Cond::Lt(v) => ("$lt", to_bson(v)?),
            Cond::Lte(v) => ("$lte", to_bson(v)?),
            Cond::Gt(v) => ("$gt", to_bson(v)?),
            Cond::Gte(v) => ("$gte", to_bson(v)?),
            // Missing and null are one thing here, as in the embedded backend.
            Cond::Exists(true) => ("$ne", Bson::Null),
            Cond::Exists(false) => ("$eq", Bson::Null),
        };
        match out.get_mut(field) {
            Some(Bson::Document(ops)) => {
                ops.insert(op, value);
            }
            _ => {
                out.insert(field.clone(), doc! { op: value });
            }
        }
    }
    Ok(out)
}

fn sort_doc(sort: &[(String, Order)]) -> Document {
    let mut d = Document::new();
    for (field, order) in sort {
        d.insert(field.clone(), if *order == Order::Asc { 1 } else { -1 });
    }
    d
}

#[async_trait]
impl Documents for MongoDocuments {
    fn backend(&self) -> &'static str {
        "mongodb"
    }

    async fn ping(&self) -> Result<()> {
        self.db.run_command(doc! {"ping": 1}).await?;
        Ok(())
    }

    async fn ensure_indexes(&self, specs: &[IndexSpec<'_>]) -> Result<()> {
        for spec in specs {
            let mut keys = Document::new();
            for (field, order) in spec.fields {
                keys.insert(*field, if *order == Order::Asc { 1 } else { -1 });
            }
            let model = IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(spec.name.to_string())
                        .unique(spec.unique)
                        .build(),
                )
                .build();
            self.coll(spec.collection)
                .create_index(model)
                .await
                .with_context(|| {
                    format!(
                        "cannot create index `{}` on `{}`",
                        spec.name, spec.collection
                    )
                })?;
        }
        Ok(())
    }

    async fn get(&self, coll: &str, id: &str) -> Result<Option<Doc>> {
        self.coll(coll)
            .find_one(doc! {"_id": id})
            .await?
            .map(from_bson_doc)
            .transpose()
    }

    async fn find(&self, coll: &str, query: &Query) -> Result<Vec<Doc>> {
        let collection = self.coll(coll);
        let mut find = collection.find(filter_doc(&query.filter)?);
        if !query.sort.is_empty() {
            find = find.sort(sort_doc(&query.sort));
        }
        if let Some(n) = query.limit {
            find = find.limit(n as i64);
        }
        let mut cursor = find.await?;
        let mut out = Vec::new();
        while cursor.advance().await? {
            out.push(from_bson_doc(cursor.deserialize_current()?)?);
        }
        Ok(out)
    }

    async fn count(&self, coll: &str, filter: &Filter) -> Result<u64> {
        Ok(self.coll(coll).count_documents(filter_doc(filter)?).await?)
    }

    async fn write(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>> {
        // A run of inserts into one collection is one unordered `insert_many` (one round
        // trip; each document still stands alone, a duplicate fails by itself). Other
        // writes are a round trip each, up to WRITE_CONCURRENCY of them at once (order of
        // outcomes kept), since a batch never touches one `_id` twice.
        let mut out = Vec::with_capacity(writes.len());
        let mut writes = writes.into_iter().peekable();
        while writes.peek().is_some() {
            let inserts_into = match writes.peek() {
                Some(Write::Insert { coll, .. }) => Some(coll.clone()),
                _ => None,
            };
            if let Some(coll) = inserts_into {
                let mut docs = Vec::new();
                while let Some(Write::Insert { coll: c, .. }) = writes.peek()
                    && *c == coll
                {
                    if let Some(Write::Insert { doc, .. }) = writes.next() {
                        docs.push(doc);
                    }
                }
                out.extend(self.insert_many(&coll, docs).await?);
                continue;
            }
            let mut chunk = Vec::new();
            while chunk.len() < WRITE_CONCURRENCY
                && writes
                    .peek()
                    .is_some_and(|w| !matches!(w, Write::Insert { .. }))
            {
                chunk.extend(writes.next());
            }
            let results =
                futures_util::future::join_all(chunk.into_iter().map(|w| self.write_one(w))).await;
            for r in results {
                out.push(r?);
            }
        }
        Ok(out)
    }

    async fn delete_where(&self, coll: &str, filter: &Filter) -> Result<u64> {
        Ok(self
            .coll(coll)
            .delete_many(filter_doc(filter)?)
            .await?
            .deleted_count)
    }
}

/// Writes of one batch in flight at once.
const WRITE_CONCURRENCY: usize = 32;

impl MongoDocuments {
    /// Insert documents in one unordered `insert_many`: each is inserted or found a
    /// duplicate by itself.
    async fn insert_many(&self, coll: &str, docs: Vec<Doc>) -> Result<Vec<WriteOutcome>> {
        let mut bson_docs = Vec::with_capacity(docs.len());
        for mut doc in docs {
            id_of(coll, &doc)?;
            doc.insert("_rev".into(), 1.into());
            bson_docs.push(to_bson_doc(&doc)?);
        }
        let n = bson_docs.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut out = vec![WriteOutcome::Inserted; n];
        match self.coll(coll).insert_many(bson_docs).ordered(false).await {
            Ok(_) => Ok(out),
            Err(e) => {
                let ErrorKind::InsertMany(m) = e.kind.as_ref() else {
                    return Err(e.into());
                };
                let only_duplicates = m.write_concern_error.is_none()
                    && m.write_errors
                        .iter()
                        .flatten()
                        .all(|w| w.code == DUPLICATE_KEY);
                if !only_duplicates {
                    return Err(e.into());
                }
                for w in m.write_errors.iter().flatten() {
                    if let Some(o) = out.get_mut(w.index) {
                        *o = WriteOutcome::Duplicate;
                    }
                }
                Ok(out)
            }
        }
    }

    async fn write_one(&self, w: Write) -> Result<WriteOutcome> {
        Ok(match w {
            Write::Insert { coll, mut doc } => {
                id_of(&coll, &doc)?;
                doc.insert("_rev".into(), 1.into());
                match self.coll(&coll).insert_one(to_bson_doc(&doc)?).await {
                    Ok(_) => WriteOutcome::Inserted,
                    Err(e) if is_duplicate_key(&e) => WriteOutcome::Duplicate,
                    Err(e) => return Err(e.into()),
                }
            }
            Write::Upsert { coll, mut doc } => {
                let id = id_of(&coll, &doc)?.to_string();
                doc.remove("_rev");
                let new_doc = to_bson_doc(&doc)?;
                // Replace the whole document and bump `_rev` in one atomic update.
                let pipeline = vec![doc! {"$replaceWith": {"$mergeObjects": [
                    {"$literal": new_doc},
                    {"_rev": {"$add": [{"$ifNull": ["$_rev", 0]}, 1]}},
                ]}}];
                match self
                    .coll(&coll)
                    .update_one(doc! {"_id": &id}, pipeline)
                    .upsert(true)
                    .await
                {
                    Ok(r) => WriteOutcome::Upserted {
                        created: r.upserted_id.is_some(),
                    },
                    Err(e) if is_duplicate_key(&e) => WriteOutcome::Duplicate,
                    Err(e) => return Err(e.into()),
                }
            }
            Write::ReplaceIf { coll, mut doc, rev } => {
                let id = id_of(&coll, &doc)?.to_string();
                doc.insert("_rev".into(), (rev + 1).into());
                match self
                    .coll(&coll)
                    .replace_one(doc! {"_id": &id, "_rev": rev as i64}, to_bson_doc(&doc)?)
                    .await
                {
                    Ok(r) if r.matched_count == 1 => WriteOutcome::Replaced { rev: rev + 1 },
                    Ok(_) => WriteOutcome::Conflict,
                    Err(e) if is_duplicate_key(&e) => WriteOutcome::Duplicate,
                    Err(e) => return Err(e.into()),
                }
            }
            Write::Delete { coll, id } => {
                let r = self.coll(&coll).delete_one(doc! {"_id": &id}).await?;
                if r.deleted_count == 1 {
                    WriteOutcome::Deleted
                } else {
                    WriteOutcome::Missing
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_never_show_credentials() {
        assert_eq!(
            hosts_of("mongodb://user:secret@db1:27017,db2/x?tls=true"),
            "db1:27017,db2"
        );
        assert_eq!(
            hosts_of("mongodb://127.0.0.1:1/?directConnection=true"),
            "127.0.0.1:1"
        );
    }

    #[test]
    fn filters_merge_conditions_per_field() {
        let f = Filter::all()
            .eq("state", "queued")
            .gte("due", 3)
            .lte("due", 9);
        let d = filter_doc(&f).unwrap();
        assert_eq!(
            d,
            doc! {"state": {"$eq": "queued"}, "due": {"$gte": 3i64, "$lte": 9i64}}
        );
    }
}
