//! The `documents` source: a document-store collection (the scraper's `tweets`) followed
//! by a cursor, on either document store (embedded or MongoDB).
//!
//! **The cursor** is a position `(value of cursor_field, _id)`: records are read in that
//! order, a page at a time, with keyset paging (`field == v AND _id > id`, then
//! `field > v`), so records sharing one value (a scraper batch stamped with the same
//! millisecond) are neither skipped nor read forever. The field must grow when a record is
//! stored or updated (`last_seen_ms` for tweets), so an update comes back past the cursor
//! and is re-chunked; the ingest's version check embeds it only if its chunks changed.
//!
//! The cursor is saved (see [`super::cursors`]) only after a page is ingested: a crash
//! re-reads that page, and re-reading is harmless (same versions, same chunk ids).
//!
//! **Deleted records** leave no trace in a cursor, so [`DocumentsFollower::missing`]
//! compares the ids stored in the index with the collection, a batch of ids at a time,
//! every `reconcile` interval.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::documents::{Doc, Documents, Filter, IndexSpec, Order, Query};
use crate::rag::service::SourceDocument;

/// Records read per page.
pub const PAGE: usize = 500;

/// Where a follower is: the last record ingested.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub value: Value,
    pub id: String,
}

/// Fields of a stored record that say nothing about its content: left out of the text the
/// chunker reads (the raw JSON is large and already parsed into the other fields).
const NOT_CONTENT: &[&str] = &["raw_json", "_rev"];

/// Turns a record into a document for the chunker.
pub fn to_document(doc: &Doc) -> Option<SourceDocument> {
    let id = doc.get("_id")?.as_str()?.to_string();
    let mut body = doc.clone();
    for k in NOT_CONTENT {
        body.remove(*k);
    }
    let url = doc.get("url").and_then(Value::as_str).map(str::to_string);
    let time_ms = doc.get("date_ms").and_then(Value::as_i64);
    Some(SourceDocument {
        id,
        text: Value::Object(body).to_string(),
        media_type: "application/json".into(),
        metadata: Vec::new(),
        url,
        time_ms,
    })
}

/// Reads a collection past a position.
pub struct DocumentsFollower<'a> {
    pub docs: &'a dyn Documents,
    pub collection: &'a str,
    pub field: &'a str,
}

impl DocumentsFollower<'_> {
    /// The index every page's read is served by: on the cursor field (ties come out by
    /// `_id` on both stores). Without it each page would be a sort of the whole collection
    /// (the embedded store scanned it: 10,000 tweets took 19x as long as 2,000). Idempotent,
    /// so each runner asks once when it starts.
    pub async fn ensure_cursor_index(&self) -> Result<()> {
        let name = format!("impressox_rag_by_{}", self.field);
        let fields = [(self.field, Order::Asc)];
        self.docs
            .ensure_indexes(&[IndexSpec {
                collection: self.collection,
                name: &name,
                fields: &fields,
                unique: false,
            }])
            .await
    }

    /// The next page of records after `at` (from the start when `None`), in cursor order.
    pub async fn next_page(&self, at: Option<&Position>, limit: usize) -> Result<Vec<Doc>> {
        let Some(at) = at else {
            let q = Query::new(Filter::all().ne(self.field, Value::Null))
                .sort(self.field, Order::Asc)
                .sort("_id", Order::Asc)
                .limit(limit);
            return self.docs.find(self.collection, &q).await;
        };
        // Records sharing the cursor's value, past its id.
        let same = Query::new(
            Filter::all()
                .eq(self.field, at.value.clone())
                .gt("_id", at.id.clone()),
        )
        .sort("_id", Order::Asc)
        .limit(limit);
        let mut page = self.docs.find(self.collection, &same).await?;
        if page.len() < limit {
            let later = Query::new(Filter::all().gt(self.field, at.value.clone()))
                .sort(self.field, Order::Asc)
                .sort("_id", Order::Asc)
                .limit(limit - page.len());
            page.extend(self.docs.find(self.collection, &later).await?);
        }
        Ok(page)
    }

    /// The position of a record (the last of a page).
    pub fn position_of(&self, doc: &Doc) -> Option<Position> {
        Some(Position {
            value: doc.get(self.field).cloned().unwrap_or(Value::Null),
            id: doc.get("_id")?.as_str()?.to_string(),
        })
    }

    /// Of `ids` (records' `_id`s), those the collection no longer has. MongoDB answers
    /// `_id IN (...)` from its index, a batch at a time; the embedded store would scan the
    /// collection for that, so it is asked point reads instead (microseconds each).
    pub async fn missing(&self, ids: &[String]) -> Result<Vec<String>> {
        let mut gone = Vec::new();
        if self.docs.backend() == "embedded" {
            for id in ids {
                if self.docs.get(self.collection, id).await?.is_none() {
                    gone.push(id.clone());
                }
            }
            return Ok(gone);
        }
        for batch in ids.chunks(PAGE) {
            let q = Query::new(Filter::all().is_in(
                "_id",
                batch.iter().map(|i| Value::String(i.clone())).collect(),
            ));
            let found: std::collections::HashSet<String> = self
                .docs
                .find(self.collection, &q)
                .await?
                .iter()
                .filter_map(|d| d.get("_id").and_then(Value::as_str).map(str::to_string))
                .collect();
            gone.extend(batch.iter().filter(|i| !found.contains(*i)).cloned());
        }
        Ok(gone)
    }
}
