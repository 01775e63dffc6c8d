//! `/api/v1/rag`: retrieval for the agent (SPEC §10.3).
//!
//! - `POST /api/v1/rag/query` `{collection, query, k, mode, filter, min_score}` → the
//!   chunks with text, scores and provenance (document id, source, URL, offsets, times).
//!   A bad field is a 400 naming it (`rag::request`); an unknown collection a 404; a
//!   collection embedded by another model a 409 saying to run `impressox rag reindex`.
//! - `GET /api/v1/rag/collections`: each collection's model, dimension and chunk count,
//!   and each source's last pass.
//!
//! [`run_query`] is the one implementation: the REST route and the MCP tool
//! `search_context` both call it. Queries embed text and scan vectors, so they run on the
//! blocking pool.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::rag::RagHandle;
use crate::rag::request;
use impressox_rag::{QueryError, StoreError};

fn handle(state: &ApiState) -> Result<&RagHandle, ApiError> {
    state.services.rag.as_ref().ok_or_else(|| {
        ApiError::unavailable_because(
            "rag_not_running",
            "the rag worker does not run in this process (add \"rag\" to [workers] enabled)",
        )
    })
}

/// Answers a query request (the REST body or the MCP tool's arguments).
pub async fn run_query(state: &ApiState, body: Value) -> Result<Value, ApiError> {
    let rag = handle(state)?.clone();
    let q = request::parse_query(&body, None)
        .map_err(|e| ApiError::invalid("invalid_field", e.to_string()))?;
    let started = std::time::Instant::now();
    let service = rag.service.clone();
    let (q, hits) = tokio::task::spawn_blocking(move || {
        let hits = service.query(&q);
        (q, hits)
    })
    .await
    .map_err(|_| ApiError::unavailable("the query task failed"))?;
    let hits = hits.map_err(query_error)?;
    Ok(request::answer_view(
        &q,
        rag.service.embedder().model_id(),
        started.elapsed().as_secs_f64() * 1000.0,
        &hits,
    ))
}

fn query_error(e: QueryError) -> ApiError {
    match e {
        QueryError::Invalid {
            field: "collection",
            message,
        } => ApiError::not_found(format!("collection: {message}")),
        QueryError::Invalid { field, message } => {
            ApiError::invalid("invalid_field", format!("{field}: {message}"))
        }
        QueryError::Store(StoreError::UnknownCollection(c)) => {
            ApiError::not_found(format!("collection: unknown collection {c:?}"))
        }
        QueryError::Store(e @ StoreError::ModelMismatch { .. }) => ApiError::conflict_because(
            "model_mismatch",
            format!("collection: {e}; run `impressox rag reindex` to re-embed it"),
        ),
        // A Chroma server down, a disk error: the caller retries; the log has the cause.
        QueryError::Store(e) => ApiError::store(anyhow::anyhow!(e)),
        QueryError::Embed(e) => {
            tracing::warn!(error = %e, "embedding a query failed");
            ApiError::unavailable_because("embedder_unavailable", "the embedder failed; try again")
        }
    }
}

/// `POST /api/v1/rag/query`
pub async fn query(State(state): State<ApiState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid("invalid_json", format!("the body is not JSON: {e}")))?;
    Ok(Json(run_query(&state, body).await?))
}

/// `GET /api/v1/rag/collections`
pub async fn collections(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let rag = handle(&state)?;
    let service = rag.service.clone();
    // A Chroma store answers over the network with a blocking client: off the async threads.
    let listed = tokio::task::spawn_blocking(move || service.index().collections())
        .await
        .map_err(|_| ApiError::unavailable("the listing task failed"))?
        .map_err(|e| query_error(e.into()))?;
    let collections: Vec<Value> = listed
        .into_iter()
        .map(|(info, chunks)| {
            json!({
                "name": info.name,
                "model": info.model_id,
                "dimension": info.dimension,
                "chunks": chunks,
                "created_at": crate::util::rfc3339_ms(info.created_ms),
            })
        })
        .collect();
    let sources = rag.sources.lock().clone();
    Ok(Json(json!({
        "model": rag.service.embedder().model_id(),
        "collections": collections,
        "sources": sources,
    })))
}
