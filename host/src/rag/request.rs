//! A query as the agent writes it (REST body, MCP tool arguments, the `rag` capability's
//! JSON), checked field by field, and a result as the agent reads it. One shape for every
//! way in, so an error names the same field wherever the query came from.
//!
//! ```json
//! {"collection": "tweets", "query": "$IREN hashrate", "k": 10, "mode": "hybrid",
//!  "filter": {"source": "x", "cashtag": "$IREN", "author": "iren_ltd",
//!             "since": "2026-12-01T00:00:00Z", "until": 1765000000000},
//!  "min_score": 0.2}
//! ```

use impressox_rag::{Filter, Hit, MAX_K, Mode, Query};
use serde_json::{Map, Value, json};

use crate::util::{parse_rfc3339_ms, rfc3339_ms};

/// `k` when the request does not say.
pub const DEFAULT_K: usize = 10;

/// A field the request got wrong: its JSON path and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn bad(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Reads a query request. `default_collection` answers for a missing `collection` (the
/// only one there is, for the CLI); `None` makes it required.
pub fn parse_query(body: &Value, default_collection: Option<&str>) -> Result<Query, FieldError> {
    let Value::Object(o) = body else {
        return Err(bad("body", "must be a JSON object"));
    };
    const KNOWN: &[&str] = &["collection", "query", "k", "mode", "filter", "min_score"];
    if let Some(k) = o.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(
            k,
            format!("unknown field (known: {})", KNOWN.join(", ")),
        ));
    }
    let collection = match o.get("collection") {
        Some(Value::String(c)) if !c.is_empty() => c.clone(),
        None | Some(Value::Null) => default_collection
            .map(str::to_string)
            .ok_or_else(|| bad("collection", "is required"))?,
        _ => return Err(bad("collection", "must be a non-empty string")),
    };
    let text = match o.get("query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
        Some(Value::String(_)) => return Err(bad("query", "must not be empty")),
        None | Some(Value::Null) => return Err(bad("query", "is required")),
        _ => return Err(bad("query", "must be a string")),
    };
    let k = match o.get("k") {
        None | Some(Value::Null) => DEFAULT_K,
        Some(v) => match v.as_u64() {
            Some(k) if (1..=MAX_K as u64).contains(&k) => k as usize,
            _ => {
                return Err(bad(
                    "k",
                    format!("must be an integer from 1 to {MAX_K}, got {v}"),
                ));
            }
        },
    };
    let mode = match o.get("mode") {
        None | Some(Value::Null) => Mode::Hybrid,
        Some(Value::String(m)) => m.parse::<Mode>().map_err(|_| {
            bad(
                "mode",
                format!("must be vector, lexical or hybrid, got {m:?}"),
            )
        })?,
        Some(_) => return Err(bad("mode", "must be a string")),
    };
    let min_score = match o.get("min_score") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(s) if s.is_finite() => Some(s as f32),
            _ => return Err(bad("min_score", "must be a number")),
        },
    };
    let filter = match o.get("filter") {
        None | Some(Value::Null) => Filter::default(),
        Some(Value::Object(f)) => parse_filter(f)?,
        Some(_) => return Err(bad("filter", "must be an object")),
    };
    Ok(Query {
        collection,
        text,
        k,
        mode,
        filter,
        min_score,
    })
}

fn parse_filter(f: &Map<String, Value>) -> Result<Filter, FieldError> {
    const KNOWN: &[&str] = &["source", "cashtag", "author", "since", "until"];
    if let Some(k) = f.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(
            &format!("filter.{k}"),
            format!("unknown filter (known: {})", KNOWN.join(", ")),
        ));
    }
    let string = |key: &str| -> Result<Option<String>, FieldError> {
        match f.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
            Some(_) => Err(bad(&format!("filter.{key}"), "must be a non-empty string")),
        }
    };
    let sources = match f.get("source") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|v| {
                v.as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| bad("filter.source", "must hold non-empty strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(bad(
                "filter.source",
                "must be a source name or a non-empty list of them",
            ));
        }
    };
    let time = |key: &str| -> Result<Option<i64>, FieldError> {
        match f.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_rfc3339_ms(s).map(Some).ok_or_else(|| {
                bad(
                    &format!("filter.{key}"),
                    format!("`{s}` is not an RFC 3339 time (2026-12-01T00:00:00Z)"),
                )
            }),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                bad(
                    &format!("filter.{key}"),
                    "must be an RFC 3339 time or ms since the epoch",
                )
            }),
        }
    };
    let filter = Filter {
        sources,
        cashtag: string("cashtag")?,
        author: string("author")?,
        since_ms: time("since")?,
        until_ms: time("until")?,
    };
    if let (Some(s), Some(u)) = (filter.since_ms, filter.until_ms)
        && s >= u
    {
        return Err(bad("filter.until", "must be after filter.since"));
    }
    Ok(filter)
}

/// A result as the agent reads it: the chunk, its scores and its provenance.
pub fn hit_view(hit: &Hit) -> Value {
    let c = &hit.chunk;
    let metadata: Map<String, Value> = c
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "chunk_id": c.chunk_id,
        "document_id": c.document_id,
        "text": c.text,
        "score": hit.score,
        "vector_score": hit.vector_score,
        "lexical_score": hit.lexical_score,
        "source": c.source,
        "url": c.url,
        "start": c.start,
        "end": c.end,
        "time": c.time_ms.map(rfc3339_ms),
        "indexed_at": rfc3339_ms(c.indexed_ms),
        "author": c.author,
        "cashtags": c.cashtags,
        "metadata": metadata,
    })
}

/// A query's answer as the agent reads it (REST, MCP and the `rag` capability).
pub fn answer_view(q: &Query, model: &str, took_ms: f64, hits: &[Hit]) -> Value {
    json!({
        "collection": q.collection,
        "mode": mode_name(q.mode),
        "model": model,
        "took_ms": took_ms,
        "results": hits.iter().map(hit_view).collect::<Vec<_>>(),
    })
}

/// The mode's name.
pub fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Vector => "vector",
        Mode::Lexical => "lexical",
        Mode::Hybrid => "hybrid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_request_reads_and_every_bad_field_is_named() {
        let q = parse_query(
            &json!({"collection": "t", "query": "$IREN", "k": 5, "mode": "lexical",
                    "filter": {"source": ["x"], "cashtag": "iren", "since": "2026-12-01T00:00:00Z", "until": 1900000000000i64},
                    "min_score": 0.1}),
            None,
        )
        .unwrap();
        assert_eq!((q.k, q.mode, q.filter.sources.len()), (5, Mode::Lexical, 1));
        assert!(q.filter.since_ms.is_some());
        let field = |v: Value| parse_query(&v, None).unwrap_err().field;
        assert_eq!(field(json!({"query": "x"})), "collection");
        assert_eq!(field(json!({"collection": "t", "query": " "})), "query");
        assert_eq!(
            field(json!({"collection": "t", "query": "x", "k": 101})),
            "k"
        );
        assert_eq!(field(json!({"collection": "t", "query": "x", "k": 0})), "k");
        assert_eq!(
            field(json!({"collection": "t", "query": "x", "mode": "fuzzy"})),
            "mode"
        );
        assert_eq!(
            field(json!({"collection": "t", "query": "x", "filter": {"since": "soon"}})),
            "filter.since"
        );
        assert_eq!(
            field(json!({"collection": "t", "query": "x", "filter": {"colour": 1}})),
            "filter.colour"
        );
        assert_eq!(
            field(json!({"collection": "t", "query": "x", "top": 3})),
            "top"
        );
        assert_eq!(
            parse_query(&json!({"query": "x"}), Some("d"))
                .unwrap()
                .collection,
            "d"
        );
    }
}
