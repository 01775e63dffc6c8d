//! `impressox:plugin/docs`: JSON documents for tasks and event handlers, on the document
//! store in use (embedded or MongoDB). Grant: `[plugins.grants.<name>] docs = ["whales"]`.
//!
//! - **Namespaces**: a granted name is the plugin's own collection, stored as
//!   `plugin.<plugin>.<collection>`; a call naming anything else (`tweets`, `deliveries`,
//!   another plugin's collection, a path) is refused before the store is asked. So a
//!   plugin never reaches the host's collections or another plugin's.
//! - **Documents** are JSON objects, validated on the way in: bad JSON, a non-object, a
//!   field name the stores cannot keep (empty, starting with `$`, holding `.` or NUL, at
//!   any depth) or a top-level `_` field other than `_id` is an `error` naming what is
//!   wrong. `_id` is the id argument; the host keeps `_rev` and `_updated_us`, and neither
//!   is shown to the plugin.
//! - **find** takes an equality filter (`{"symbol": "BTCUSDT", "tier": 2}`: scalar values
//!   only) and returns the most recently written first, at most `limit`, itself capped
//!   by `max_find_limit`.
//!
//! The seam: [`Service`] (config + the host's document store), [`Service::grant`] (one
//! plugin's collections, checked at load), [`add_to_linker`]; `host.rs` is the adapter.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::error::CapError;
use crate::documents::{Doc, Documents, Filter, Order, Query, Write, WriteOutcome};

pub mod config;
pub(super) mod host;

pub use config::DocsConfig;

/// The host-kept write time `find` orders by, in microseconds: two upserts of one call
/// land in the same millisecond, and "newest first" must still put the later one first.
const UPDATED: &str = "_updated_us";

/// The backend's revision counter.
const REV: &str = "_rev";

/// The `docs` capability of a host.
#[derive(Clone)]
pub struct Service {
    docs: Arc<dyn Documents>,
    config: DocsConfig,
}

impl Service {
    pub fn new(config: DocsConfig, docs: Arc<dyn Documents>) -> Service {
        Service { docs, config }
    }

    /// The state of plugin `name` granted `collections`; an invalid name is refused
    /// (the load fails naming the grant key).
    pub fn grant(&self, name: &str, collections: &[String]) -> Result<Granted, String> {
        let mut physical = BTreeMap::new();
        for c in collections {
            if !valid_collection(c) {
                return Err(format!(
                    "`[plugins.grants.{name}] docs`: `{c}` is not a collection name; use 1-64 \
                     characters of a-z, 0-9, `-` and `_`"
                ));
            }
            physical.insert(c.clone(), physical_name(name, c));
        }
        Ok(Granted {
            docs: self.docs.clone(),
            plugin: name.to_string(),
            collections: physical,
            config: self.config,
        })
    }
}

/// Where a plugin's collection is stored. Plugin names and collection names hold no `.`,
/// so no two (plugin, collection) pairs share a stored name.
pub fn physical_name(plugin: &str, collection: &str) -> String {
    format!("plugin.{plugin}.{collection}")
}

fn valid_collection(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 64
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// One plugin's collections.
pub struct Granted {
    docs: Arc<dyn Documents>,
    plugin: String,
    /// Granted name → stored name.
    collections: BTreeMap<String, String>,
    config: DocsConfig,
}

impl Granted {
    /// The stored name of a granted collection; anything else is refused.
    fn collection(&self, name: &str) -> Result<&str, CapError> {
        self.collections
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| {
                let granted: Vec<&str> = self.collections.keys().map(String::as_str).collect();
                CapError::refused(format!(
                    "docs: collection {name:?} is not granted to plugin `{}` (granted: {}); \
                 grant it with `[plugins.grants.{}] docs = [..., \"{name}\"]`",
                    self.plugin,
                    granted.join(", "),
                    self.plugin
                ))
            })
    }

    fn check_id(&self, id: &str) -> Result<(), CapError> {
        if id.is_empty() || id.len() > self.config.max_id_bytes || id.contains('\0') {
            return Err(CapError::refused(format!(
                "docs: id {:?} must be 1 to {} bytes without NUL (`[capabilities.docs] max_id_bytes`)",
                crate::util::truncate(id, 80),
                self.config.max_id_bytes
            )));
        }
        Ok(())
    }

    /// The document a plugin's JSON stands for, ready to store.
    pub fn document(&self, id: &str, json: &str) -> Result<Doc, CapError> {
        self.check_id(id)?;
        if json.len() > self.config.max_document_bytes {
            return Err(CapError::refused(format!(
                "docs: document `{id}` is {} bytes of JSON, over the {}-byte cap \
                 (`[capabilities.docs] max_document_bytes`)",
                json.len(),
                self.config.max_document_bytes
            )));
        }
        let value: Value = serde_json::from_str(json)
            .map_err(|e| CapError::refused(format!("docs: document `{id}` is not JSON: {e}")))?;
        let Value::Object(mut doc) = value else {
            return Err(CapError::refused(format!(
                "docs: document `{id}` must be a JSON object, not {}",
                kind_of(&value)
            )));
        };
        match doc.get("_id") {
            None => {}
            Some(Value::String(s)) if s == id => {}
            Some(other) => {
                return Err(CapError::refused(format!(
                    "docs: document `{id}` has `_id` {other}, which is not its id; leave `_id` out"
                )));
            }
        }
        // What `get` handed out, coming back: the host's fields are the host's.
        doc.remove(REV);
        doc.remove(UPDATED);
        for key in doc.keys() {
            if key.starts_with('_') && key != "_id" {
                return Err(CapError::refused(format!(
                    "docs: document `{id}`: field `{key}`: names starting with `_` are kept \
                     for the store"
                )));
            }
        }
        check_fields(&doc, "")
            .map_err(|e| CapError::refused(format!("docs: document `{id}`: {e}")))?;
        doc.insert("_id".into(), Value::String(id.to_string()));
        doc.insert(UPDATED.into(), crate::util::now_us().into());
        Ok(doc)
    }

    /// An equality filter from JSON; errors name the field.
    pub fn filter(&self, json: &str) -> Result<Filter, CapError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| CapError::refused(format!("docs: the filter is not JSON: {e}")))?;
        let Value::Object(fields) = value else {
            return Err(CapError::refused(format!(
                "docs: the filter must be a JSON object of field → value, not {}",
                kind_of(&value)
            )));
        };
        let mut filter = Filter::all();
        for (field, v) in fields {
            if field.is_empty() || field.starts_with('$') || field.contains('.') {
                return Err(CapError::refused(format!(
                    "docs: filter field {field:?} is not a field name (equality on top-level \
                     fields only)"
                )));
            }
            if field.starts_with('_') && field != "_id" {
                return Err(CapError::refused(format!(
                    "docs: filter field `{field}` is kept for the store"
                )));
            }
            if v.is_object() || v.is_array() {
                return Err(CapError::refused(format!(
                    "docs: filter field `{field}`: only a string, number, boolean or null \
                     can be compared"
                )));
            }
            filter = filter.eq(&field, v);
        }
        Ok(filter)
    }

    pub async fn upsert(&self, collection: &str, id: &str, json: &str) -> Result<(), CapError> {
        let coll = self.collection(collection)?;
        let doc = self.document(id, json)?;
        self.docs
            .write(vec![Write::Upsert {
                coll: coll.to_string(),
                doc,
            }])
            .await
            .map_err(CapError::Backend)?;
        Ok(())
    }

    pub async fn get(&self, collection: &str, id: &str) -> Result<Option<String>, CapError> {
        let coll = self.collection(collection)?;
        self.check_id(id)?;
        let doc = self.docs.get(coll, id).await.map_err(CapError::Backend)?;
        Ok(doc.map(shown))
    }

    pub async fn find(
        &self,
        collection: &str,
        filter_json: &str,
        limit: u32,
    ) -> Result<Vec<String>, CapError> {
        let coll = self.collection(collection)?;
        if limit == 0 || limit > self.config.max_find_limit {
            return Err(CapError::refused(format!(
                "docs: find limit {limit} must be 1 to {} (`[capabilities.docs] max_find_limit`)",
                self.config.max_find_limit
            )));
        }
        let query = Query::new(self.filter(filter_json)?)
            .sort(UPDATED, Order::Desc)
            .sort("_id", Order::Asc)
            .limit(limit as usize);
        let docs = self
            .docs
            .find(coll, &query)
            .await
            .map_err(CapError::Backend)?;
        Ok(docs.into_iter().map(shown).collect())
    }

    pub async fn delete(&self, collection: &str, id: &str) -> Result<bool, CapError> {
        let coll = self.collection(collection)?;
        self.check_id(id)?;
        let out = self
            .docs
            .write(vec![Write::Delete {
                coll: coll.to_string(),
                id: id.to_string(),
            }])
            .await
            .map_err(CapError::Backend)?;
        Ok(out.first() == Some(&WriteOutcome::Deleted))
    }
}

/// A stored document as the plugin sees it: without the host's fields.
fn shown(mut doc: Doc) -> String {
    doc.remove(REV);
    doc.remove(UPDATED);
    Value::Object(doc).to_string()
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Field names both stores keep as they are, at any depth; the error names the path.
fn check_fields(map: &serde_json::Map<String, Value>, path: &str) -> Result<(), String> {
    for (k, child) in map {
        let here = || {
            if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            }
        };
        if k.is_empty() || k.starts_with('$') || k.contains('.') || k.contains('\0') {
            return Err(format!(
                "field {:?}: a field name may not be empty, start with `$` or hold `.` or NUL",
                here()
            ));
        }
        check_value(child, &here)?;
    }
    Ok(())
}

fn check_value(v: &Value, here: &dyn Fn() -> String) -> Result<(), String> {
    match v {
        Value::Object(map) => check_fields(map, &here()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_value(item, &|| format!("{}[{i}]", here()))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted() -> Granted {
        let dir = tempfile::tempdir().unwrap();
        let docs = crate::documents::embedded::EmbeddedDocuments::open(&dir.path().join("d.redb"))
            .unwrap();
        std::mem::forget(dir);
        Service::new(DocsConfig::default(), Arc::new(docs))
            .grant("whale-alert", &["whales".into()])
            .unwrap()
    }

    fn refusal<T: std::fmt::Debug>(r: Result<T, CapError>) -> String {
        match r {
            Err(CapError::Refused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn documents_are_validated_naming_what_is_wrong() {
        let g = granted();
        assert!(refusal(g.document("a", "{")).contains("not JSON"));
        assert!(refusal(g.document("a", "[1]")).contains("not an array"));
        assert!(refusal(g.document("a", r#"{"_id":"b"}"#)).contains("not its id"));
        assert!(refusal(g.document("a", r#"{"x":{"$set":1}}"#)).contains("\"x.$set\""));
        assert!(refusal(g.document("a", r#"{"_secret":1}"#)).contains("`_secret`"));
        let doc = g.document("a", r#"{"_rev":3,"v":1}"#).unwrap();
        assert_eq!(doc["_id"], "a");
        assert!(!doc.contains_key("_rev"));
    }

    #[test]
    fn only_granted_collections_are_reached() {
        let g = granted();
        assert_eq!(g.collection("whales").unwrap(), "plugin.whale-alert.whales");
        for other in [
            "tweets",
            "deliveries",
            "plugin.other.whales",
            "../whales",
            "whales\0",
        ] {
            assert!(
                refusal(g.collection(other)).contains("not granted"),
                "{other}"
            );
        }
    }

    #[test]
    fn filters_are_equality_on_scalars() {
        let g = granted();
        assert!(refusal(g.filter(r#"{"a":{"$gt":1}}"#)).contains("only a string"));
        assert!(refusal(g.filter(r#"{"$where":"1"}"#)).contains("not a field name"));
        assert!(refusal(g.filter("[]")).contains("JSON object"));
        assert_eq!(g.filter(r#"{"a":1}"#).unwrap(), Filter::all().eq("a", 1));
    }
}
