//! `search_context`: retrieval for the agent, the query `POST /api/v1/rag/query` runs
//! ([`crate::api::rag::run_query`]): the same body, checks and answer (chunks with text,
//! score and provenance), so both paths name a bad field alike.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{ErrorData, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::super::rag::run_query;
use super::args::Args;
use super::tools::{Tools, answer};

/// The arguments of `search_context`: the body of `POST /api/v1/rag/query`. Only the
/// schema comes from here; the object is handed to the query as its body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema: never built, only described
pub struct SearchContext {
    /// The collection to search (a `[[rag.sources]]` collection, e.g. `tweets` or `docs`).
    collection: String,
    /// What to look for, in words; exact tickers (`$IREN`) are matched lexically too.
    query: String,
    /// How many chunks to return, 1 to 100 (default 10).
    k: Option<usize>,
    /// `hybrid` (default: lexical and vector results fused), `vector` or `lexical`.
    mode: Option<SearchMode>,
    /// Only chunks whose document matches every given field.
    filter: Option<SearchFilter>,
    /// Leave out chunks scoring below this.
    min_score: Option<f64>,
}

/// `filter`
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SearchFilter {
    /// A source name (`[[rag.sources]]` name) or a list of them.
    source: Option<Value>,
    /// A cashtag the chunk names, e.g. `$IREN` (case-insensitive).
    cashtag: Option<String>,
    /// The author (a tweet's handle).
    author: Option<String>,
    /// Only documents from this time on: RFC 3339 (`2026-12-01T00:00:00Z`) or ms since the
    /// epoch.
    since: Option<Value>,
    /// Only documents up to this time: RFC 3339 or ms since the epoch.
    until: Option<Value>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum SearchMode {
    Hybrid,
    Vector,
    Lexical,
}

#[tool_router(router = search_router, vis = "pub(super)")]
impl Tools {
    #[tool(
        description = "Retrieve context for a question from the indexed documents (tweets the \
        scraper collected, web pages, files): the best-matching chunks, each with its text, \
        score, document id, source, URL, offsets and timestamps. Example: {\"collection\": \
        \"tweets\", \"query\": \"$IREN guidance\", \"k\": 5}.",
        annotations(title = "Search context", read_only_hint = true)
    )]
    async fn search_context(
        &self,
        Parameters(args): Parameters<Args<SearchContext>>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(run_query(&self.state, Value::Object(args.into_raw())).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema names exactly the fields the REST query takes (`rag::request`).
    #[test]
    fn the_search_schema_has_the_query_bodys_fields() {
        let schema = serde_json::to_value(schemars::schema_for!(SearchContext)).unwrap();
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(&schema["properties"]),
            ["collection", "filter", "k", "min_score", "mode", "query"]
        );
        assert_eq!(
            keys(&schema["$defs"]["SearchFilter"]["properties"]),
            ["author", "cashtag", "since", "source", "until"]
        );
        let body = serde_json::json!({"collection": "t", "query": "$IREN", "k": 5,
            "mode": "lexical", "filter": {"source": ["x"], "cashtag": "iren", "author": "a",
            "since": "2026-12-01T00:00:00Z", "until": 1900000000000i64}, "min_score": 0.1});
        crate::rag::request::parse_query(&body, None).unwrap();
        for mode in schema["$defs"]["SearchMode"]["enum"].as_array().unwrap() {
            let mut b = body.clone();
            b["mode"] = mode.clone();
            crate::rag::request::parse_query(&b, None).unwrap();
        }
    }
}
