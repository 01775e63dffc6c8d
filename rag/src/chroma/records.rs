//! How our records look in Chroma: collection names, a chunk as a Chroma record (id,
//! document text, metadata), and a [`Filter`] as a Chroma `where`.
//!
//! **Collection names.** Chroma accepts 3-512 chars of `[a-zA-Z0-9._-]`, starting and
//! ending with a letter or digit; ours are 1-128 chars of anything but control characters.
//! A name of `[a-zA-Z0-9_-]` ending in a letter or digit is kept readable as `ix-NAME`;
//! any other becomes `ixh-` and a 64-bit FNV-1a hash of it. The two prefixes cannot meet,
//! and the collection's metadata records our name, so a hash collision is detected (and
//! refused) instead of mixing two collections.
//!
//! **Metadata keys** of a chunk: `document_id`, `version`, `index`, `source`, `url`,
//! `start`, `end`, `time_ms`, `indexed_ms`, `author`, `author_key` (lower case without `@`,
//! what the author filter compares), `cashtags` (a list of strings, `$IREN` form: Chroma
//! 1.5 stores list metadata and matches an element with `$contains`, so one key serves any
//! number of tickers), and `metadata` (the chunker's key/value pairs as JSON). The text is
//! the record's document. Absent values are left out (Chroma has no null metadata).

use serde_json::{Map, Value, json};

use crate::chunk::{Filter, StoredChunk};

/// Collection metadata keys: what [`crate::CollectionInfo`] records.
pub(crate) const META_NAME: &str = "impressox_name";
pub(crate) const META_MODEL: &str = "impressox_model";
pub(crate) const META_DIMENSION: &str = "impressox_dimension";
pub(crate) const META_CREATED: &str = "impressox_created_ms";
/// On a collection being filled by a re-embedding: whose (listings skip it).
pub(crate) const META_REEMBED_OF: &str = "impressox_reembed_of";

/// The Chroma collection name for our collection `name` (see the module note).
pub(crate) fn chroma_name(name: &str) -> String {
    let simple = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if simple {
        format!("ix-{name}")
    } else {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("ixh-{h:016x}")
    }
}

fn lower_author(a: &str) -> String {
    a.trim().trim_start_matches('@').to_lowercase()
}

/// A chunk's metadata as Chroma stores it.
pub(crate) fn chunk_metadata(c: &StoredChunk) -> Value {
    let mut m = Map::new();
    m.insert("document_id".into(), json!(c.document_id));
    m.insert("version".into(), json!(c.version));
    m.insert("index".into(), json!(c.index));
    m.insert("source".into(), json!(c.source));
    if let Some(url) = &c.url {
        m.insert("url".into(), json!(url));
    }
    m.insert("start".into(), json!(c.start));
    m.insert("end".into(), json!(c.end));
    if let Some(t) = c.time_ms {
        m.insert("time_ms".into(), json!(t));
    }
    m.insert("indexed_ms".into(), json!(c.indexed_ms));
    if let Some(a) = &c.author {
        m.insert("author".into(), json!(a));
        m.insert("author_key".into(), json!(lower_author(a)));
    }
    if !c.cashtags.is_empty() {
        m.insert("cashtags".into(), json!(c.cashtags));
    }
    if !c.metadata.is_empty() {
        let pairs = serde_json::to_string(&c.metadata).unwrap_or_default();
        m.insert("metadata".into(), json!(pairs));
    }
    Value::Object(m)
}

/// A chunk back from its Chroma record; `None` if the record is not one of ours.
pub(crate) fn chunk_from_record(
    id: &str,
    text: Option<&str>,
    meta: Option<&Value>,
) -> Option<StoredChunk> {
    let m = meta?.as_object()?;
    let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    let i = |k: &str| m.get(k).and_then(Value::as_i64);
    Some(StoredChunk {
        chunk_id: id.to_string(),
        document_id: s("document_id")?,
        version: s("version")?,
        index: u32::try_from(i("index")?).ok()?,
        text: text.unwrap_or_default().to_string(),
        source: s("source")?,
        url: s("url"),
        start: u32::try_from(i("start")?).ok()?,
        end: u32::try_from(i("end")?).ok()?,
        time_ms: i("time_ms"),
        indexed_ms: i("indexed_ms").unwrap_or(0),
        metadata: s("metadata")
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
        cashtags: m
            .get("cashtags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        author: s("author"),
    })
}

/// The filter as a Chroma `where` (`None`: no filter).
pub(crate) fn where_clause(filter: &Filter) -> Option<Value> {
    let mut clauses = Vec::new();
    if !filter.sources.is_empty() {
        clauses.push(json!({"source": {"$in": filter.sources}}));
    }
    if let Some(tag) = filter.normalised_cashtag() {
        clauses.push(json!({"cashtags": {"$contains": tag}}));
    }
    if let Some(a) = &filter.author {
        clauses.push(json!({"author_key": {"$eq": lower_author(a)}}));
    }
    // A chunk without a time has no `time_ms` key, and a comparison on a missing key
    // fails: such chunks are excluded from a time filter, as in the embedded store.
    if let Some(s) = filter.since_ms {
        clauses.push(json!({"time_ms": {"$gte": s}}));
    }
    if let Some(u) = filter.until_ms {
        clauses.push(json!({"time_ms": {"$lt": u}}));
    }
    match clauses.len() {
        0 => None,
        1 => clauses.pop(),
        _ => Some(json!({"$and": clauses})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_readable_when_they_can_be_and_never_collide_by_prefix() {
        assert_eq!(chroma_name("tweets"), "ix-tweets");
        assert_eq!(chroma_name("a"), "ix-a");
        assert!(chroma_name("my docs").starts_with("ixh-"));
        assert!(chroma_name("trailing_").starts_with("ixh-"));
        assert_ne!(chroma_name("a b"), chroma_name("a c"));
        assert_eq!(chroma_name("h-1234"), "ix-h-1234");
    }

    #[test]
    fn a_chunk_round_trips_through_its_record() {
        let c = StoredChunk {
            chunk_id: "d#1#0".into(),
            document_id: "d".into(),
            version: "1".into(),
            index: 0,
            text: "$IREN up".into(),
            source: "tweets".into(),
            url: Some("https://x.com/i/status/1".into()),
            start: 0,
            end: 8,
            time_ms: Some(1_700_000_000_000),
            indexed_ms: 5,
            metadata: vec![("author".into(), "@Alice".into())],
            cashtags: vec!["$IREN".into()],
            author: Some("@Alice".into()),
        };
        let meta = chunk_metadata(&c);
        assert_eq!(meta["author_key"], "alice");
        let back = chunk_from_record("d#1#0", Some("$IREN up"), Some(&meta)).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn filters_become_one_where() {
        assert_eq!(where_clause(&Filter::default()), None);
        let f = Filter {
            cashtag: Some("iren".into()),
            ..Filter::default()
        };
        assert_eq!(
            where_clause(&f).unwrap(),
            json!({"cashtags": {"$contains": "$IREN"}})
        );
        let f = Filter {
            sources: vec!["tweets".into()],
            author: Some("@Bob".into()),
            since_ms: Some(1),
            until_ms: Some(2),
            ..Filter::default()
        };
        assert_eq!(
            where_clause(&f).unwrap()["$and"].as_array().unwrap().len(),
            4
        );
    }
}
