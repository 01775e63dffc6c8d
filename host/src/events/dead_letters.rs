//! Event dead letters: events that will not be handled, kept in the document store
//! (collection `event_dead_letters`) with their stream, entry id, fields, every attempt's
//! error and the handler's version, beside the notify worker's in
//! `GET /api/v1/dead-letters`.
//!
//! A dead letter's id is derived from (stream, group, entry id), so writing it again
//! after a crash between the write and the ack is the same dead letter, not a second.
//! A replay appends the event to its stream again under the idempotency key
//! `replay:<id>` and then marks the dead letter replayed by compare-and-set: two replays
//! at once, or a crash between the two steps, still put the event back once, and a second
//! replay is refused.

use std::sync::Arc;

use anyhow::Result;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::attempts::Failure;
use crate::documents::{Doc, Documents, Filter, Order, Query, Write, WriteOutcome, rev_of};
use crate::storage::{Store, StreamFull};
use crate::util::rfc3339_ms;

/// The collection.
pub const COLLECTION: &str = "event_dead_letters";

/// Why an event became a dead letter.
pub mod reason {
    /// The handler answered `dead-letter`.
    pub const HANDLER: &str = "handler_dead_letter";
    /// Every attempt failed.
    pub const MAX_ATTEMPTS: &str = "max_attempts";
    /// The entry cannot be made into an event (a field that is not UTF-8).
    pub const INVALID_EVENT: &str = "invalid_event";
}

/// A new dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub stream: String,
    pub group: String,
    pub listener: String,
    pub entry_id: String,
    pub fields: Vec<(String, String)>,
    pub reason: &'static str,
    pub last_error: String,
    pub failures: Vec<Failure>,
    pub plugin: String,
    pub plugin_version: String,
    /// The stream's bound, for the replay.
    pub maxlen: u64,
}

/// The id of the dead letter of an entry.
pub fn id_for(stream: &str, group: &str, entry_id: &str) -> String {
    let mut h = Sha256::new();
    for part in [stream, group, entry_id] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("ev-{hex}")
}

/// Store a dead letter (again, after a crash: the same one).
pub async fn put(docs: &Arc<dyn Documents>, dl: &DeadLetter) -> Result<String> {
    let id = id_for(&dl.stream, &dl.group, &dl.entry_id);
    let fields: serde_json::Map<String, Value> = dl
        .fields
        .iter()
        .map(|(n, v)| (n.clone(), Value::String(v.clone())))
        .collect();
    let mut doc = Doc::new();
    doc.insert("_id".into(), json!(id));
    doc.insert("stream".into(), json!(dl.stream));
    doc.insert("group".into(), json!(dl.group));
    doc.insert("listener".into(), json!(dl.listener));
    doc.insert("entry_id".into(), json!(dl.entry_id));
    // Opaque JSON as text (field names are the producer's).
    doc.insert(
        "fields".into(),
        json!(serde_json::to_string(&Value::Object(fields))?),
    );
    doc.insert(
        "field_order".into(),
        json!(serde_json::to_string(&dl.fields)?),
    );
    doc.insert("reason".into(), json!(dl.reason));
    doc.insert(
        "last_error".into(),
        json!(crate::util::truncate(&dl.last_error, 4096)),
    );
    doc.insert(
        "attempts".into(),
        json!(serde_json::to_string(&dl.failures)?),
    );
    doc.insert("attempt_count".into(), json!(dl.failures.len()));
    doc.insert("plugin".into(), json!(dl.plugin));
    doc.insert("plugin_version".into(), json!(dl.plugin_version));
    doc.insert("maxlen".into(), json!(dl.maxlen));
    doc.insert("state".into(), json!("dead"));
    doc.insert("dead_at_ms".into(), json!(crate::util::now_ms()));
    docs.write(vec![Write::Insert {
        coll: COLLECTION.into(),
        doc,
    }])
    .await?;
    Ok(id)
}

/// One dead letter as the API shows it.
pub fn view(doc: &Doc) -> Value {
    let s = |k: &str| doc.get(k).cloned().unwrap_or(Value::Null);
    let parsed = |k: &str| {
        doc.get(k)
            .and_then(Value::as_str)
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .unwrap_or(Value::Null)
    };
    let attempts: Vec<Value> = match parsed("attempts") {
        Value::Array(list) => list
            .into_iter()
            .map(|f| {
                json!({
                    "attempt": f["attempt"],
                    "at": f["at_ms"].as_i64().map(rfc3339_ms),
                    "host": f["host"],
                    "error": f["error"],
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    json!({
        "id": s("_id"),
        "kind": "event",
        "stream": s("stream"),
        "group": s("group"),
        "listener": s("listener"),
        "entry_id": s("entry_id"),
        "fields": parsed("fields"),
        "reason": s("reason"),
        "last_error": s("last_error"),
        "attempts": attempts,
        "plugin": s("plugin"),
        "plugin_version": s("plugin_version"),
        "state": s("state"),
        "replayed_as": s("replayed_as"),
        "dead_at": doc.get("dead_at_ms").and_then(Value::as_i64).map(rfc3339_ms),
    })
}

/// Dead letters still dead, newest first, optionally of one stream.
pub async fn list(
    docs: &Arc<dyn Documents>,
    stream: Option<&str>,
    limit: usize,
) -> Result<Vec<Doc>> {
    let mut f = Filter::all().eq("state", "dead");
    if let Some(s) = stream {
        f = f.eq("stream", s);
    }
    docs.find(
        COLLECTION,
        &Query::new(f).sort("dead_at_ms", Order::Desc).limit(limit),
    )
    .await
}

/// Dead letters still dead (for `/metrics`).
pub async fn count(docs: &Arc<dyn Documents>) -> Result<u64> {
    docs.count(COLLECTION, &Filter::all().eq("state", "dead"))
        .await
}

/// Why a replay did not happen.
#[derive(Debug)]
pub enum ReplayRefused {
    NotFound,
    /// Replayed before (the new entry's id).
    AlreadyReplayed(String),
    /// The stream is at its bound; nothing was written.
    Full(StreamFull),
    /// Changed at the same moment (another replay).
    Raced,
}

/// Put a dead letter's event back on its stream with a fresh attempt count; the new
/// entry's id.
pub async fn replay(
    store: &Arc<dyn Store>,
    docs: &Arc<dyn Documents>,
    id: &str,
) -> Result<Result<String, ReplayRefused>> {
    let Some(mut doc) = docs.get(COLLECTION, id).await? else {
        return Ok(Err(ReplayRefused::NotFound));
    };
    if doc.get("state").and_then(Value::as_str) != Some("dead") {
        let new = doc
            .get("replayed_as")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        return Ok(Err(ReplayRefused::AlreadyReplayed(new)));
    }
    let text = |k: &str| {
        doc.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let stream = text("stream");
    let fields: Vec<(String, String)> =
        serde_json::from_str(&text("field_order")).unwrap_or_default();
    let maxlen = doc.get("maxlen").and_then(Value::as_u64).unwrap_or(100_000);
    let key = format!("replay:{id}");
    let new_id = match store
        .append_event(&stream, Some(&key), &fields, maxlen)
        .await
    {
        Ok(Some(new)) => new,
        // Appended by an earlier replay that did not get to mark the dead letter.
        Ok(None) => String::new(),
        Err(e) => match StreamFull::find(&e) {
            Some(full) => return Ok(Err(ReplayRefused::Full(full.clone()))),
            None => return Err(e),
        },
    };
    let rev = rev_of(&doc);
    doc.insert("state".into(), json!("replayed"));
    doc.insert("replayed_as".into(), json!(new_id));
    doc.insert("replayed_at_ms".into(), json!(crate::util::now_ms()));
    let out = docs
        .write(vec![Write::ReplaceIf {
            coll: COLLECTION.into(),
            doc,
            rev,
        }])
        .await?;
    Ok(match out.first() {
        Some(WriteOutcome::Replaced { .. }) => Ok(new_id),
        _ => Err(ReplayRefused::Raced),
    })
}

/// Delete a dead letter; false if there was none.
pub async fn purge(docs: &Arc<dyn Documents>, id: &str) -> Result<bool> {
    let out = docs
        .write(vec![Write::Delete {
            coll: COLLECTION.into(),
            id: id.to_string(),
        }])
        .await?;
    Ok(out.first() == Some(&WriteOutcome::Deleted))
}

/// Delete dead letters made before `cutoff_ms`; how many.
pub async fn expire(docs: &Arc<dyn Documents>, cutoff_ms: i64) -> Result<u64> {
    docs.delete_where(COLLECTION, &Filter::all().lt("dead_at_ms", cutoff_ms))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_tell_entries_apart() {
        let a = id_for("s", "g", "1-0");
        assert_eq!(a, id_for("s", "g", "1-0"));
        assert_ne!(a, id_for("s", "g", "1-1"));
        assert_ne!(id_for("ab", "c", "1"), id_for("a", "bc", "1"));
        assert!(a.starts_with("ev-") && a.len() == 23);
    }
}
