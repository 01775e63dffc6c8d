//! The admin HTTP API (axum): health, Prometheus metrics, plugin status and reload, and
//! one file per resource of the workers (rules, prices, notifications, scraper targets,
//! schedules).
//!
//! `/ui` is the web console ([`console`]): HTML pages over these same handlers. `/mcp` is
//! the Model Context Protocol endpoint ([`mcp`]): the agent's tools over the same code
//! paths, behind the same token.
//!
//! Every `/api/v1` route requires `Authorization: Bearer <IMPRESSOX_API_TOKEN>` when a
//! token is set; without a token the server refuses to bind anywhere but loopback.
//! Errors are `{"error": {"code": "...", "message": "..."}}`. A failure of a store, a
//! document store or the host itself is logged with its detail and answered with a
//! stable code and message (`store_unavailable`, ...): server error texts never reach a
//! caller.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::market::MarketHandle;
use crate::runtime::Runtime;
use crate::runtime::watcher::RescanTrigger;
use crate::storage::Store;

mod cluster;
pub mod console;
mod events;
#[doc(hidden)]
pub mod fuzzing;
mod health;
pub mod mcp;
mod metrics;
mod notifications;
mod openapi;
mod plugins;
mod preferences;
mod prices;
pub mod rag;
mod rules;
mod schedules;
mod scraper;
mod telegram_link;

/// What route handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub runtime: Runtime,
    pub rescan: Option<RescanTrigger>,
    pub services: Services,
    token: Option<Arc<str>>,
    /// The console's short-lived document counts, shared by its requests.
    counts: console::CountsCache,
}

/// The stores and workers the API fronts; routes answer 503 for a missing one.
#[derive(Clone, Default)]
pub struct Services {
    pub store: Option<Arc<dyn Store>>,
    pub market: Option<MarketHandle>,
    /// The document store (delivery logs, preferences).
    pub docs: Option<Arc<dyn crate::documents::Documents>>,
    /// The notify worker, when this process runs it.
    pub notify: Option<crate::notify::NotifyHandle>,
    /// The x-scraper worker, when this process runs it (accounts view, metrics, waking
    /// it for a new target).
    pub scraper: Option<crate::scraper::ScraperHandle>,
    /// The events worker, when this process runs it (listener metrics).
    pub events: Option<crate::events::EventsHandle>,
    /// The rag worker, when this process runs it (queries, collections, sources).
    pub rag: Option<crate::rag::RagHandle>,
    /// `[[listeners]]`, so any host's API knows each stream's bound for producers.
    pub listeners: Vec<crate::events::ListenerConfig>,
    /// `[market]`'s limits on new rules (per user, in all, which symbols); the built-in
    /// defaults when not set from the configuration.
    pub rules: crate::market::rule_limits::RulePolicy,
    /// `[scraper]`'s defaults for targets created through the API, so an API-only
    /// process stores what the worker would; the built-in defaults when unset.
    pub scraper_defaults: Option<crate::scraper::targets::TargetDefaults>,
    /// The VAPID public key pages subscribe with (`GET /api/v1/webpush/public-key`), when
    /// `[notify.webpush] private_key_env` is set.
    pub webpush_public_key: Option<String>,
    /// The scheduler worker, when this process runs it (metrics, waking it after a
    /// change made here).
    pub scheduler: Option<crate::scheduler::SchedulerHandle>,
    /// `[[schedules]]` of this process's config (read-only through the API).
    pub schedules: Vec<crate::scheduler::catalog::Definition>,
    /// Cancelled when the API shuts down: ends the MCP sessions (and their open event
    /// streams, which would hold a graceful shutdown forever).
    pub mcp_sessions: tokio_util::sync::CancellationToken,
}

impl ApiState {
    /// The key-value store, or a 503.
    pub fn store(&self) -> Result<&Arc<dyn Store>, ApiError> {
        self.services
            .store
            .as_ref()
            .ok_or_else(|| ApiError::unavailable("no store is configured in this process"))
    }

    /// The document store, or a 503.
    pub fn docs(&self) -> Result<&Arc<dyn crate::documents::Documents>, ApiError> {
        self.services
            .docs
            .as_ref()
            .ok_or_else(|| ApiError::unavailable("no document store is configured in this process"))
    }
}

/// What a caller reads when a store failed: the same text whatever the server said.
pub const STORE_UNAVAILABLE: &str =
    "the data store did not answer; try again shortly (the host's log has the details)";

/// A JSON error response.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header (a temporary refusal).
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// A 404 naming what was not found.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            retry_after_secs: None,
        }
    }
    /// A 400 naming the bad field (or the body as a whole).
    pub fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }
    /// A 409: the thing exists already.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        Self::conflict_because("conflict", message)
    }
    /// A 409 with its own code: the request conflicts with what is stored (a limit).
    pub fn conflict_because(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }
    /// A 503 for a failed store or document-store operation. The server's own text
    /// (addresses, key names, driver internals) goes to the log only; the caller gets a
    /// stable message to retry on.
    pub fn store(e: anyhow::Error) -> ApiError {
        tracing::warn!(error = %format!("{e:#}"), "store operation failed in an API request");
        ApiError::unavailable_because("store_unavailable", STORE_UNAVAILABLE)
    }
    /// A 503 with its own code and a fixed message.
    pub fn unavailable_because(code: &'static str, message: &str) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }
    /// A 503: a dependency is not ready.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
            retry_after_secs: None,
        }
    }
    /// A 503 for a temporary refusal (a queue at its bound) with `Retry-After`.
    pub fn busy(code: &'static str, message: impl Into<String>, retry_after_secs: u64) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code,
            message: message.into(),
            retry_after_secs: Some(retry_after_secs),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// Refuse a non-loopback address without a token.
pub fn check_bind(listen: SocketAddr, token: Option<&str>) -> Result<()> {
    if token.is_none() && !listen.ip().is_loopback() {
        bail!(
            "[api] listen = {listen} is not a loopback address; set IMPRESSOX_API_TOKEN to \
             require a bearer token before serving the admin API beyond this machine"
        );
    }
    Ok(())
}

/// The router for the plugin runtime alone.
pub fn router(runtime: Runtime, rescan: Option<RescanTrigger>, token: Option<String>) -> Router {
    router_with(runtime, rescan, token, Services::default())
}

/// The router with stores and workers.
pub fn router_with(
    runtime: Runtime,
    rescan: Option<RescanTrigger>,
    token: Option<String>,
    services: Services,
) -> Router {
    use axum::routing::get;
    let state = ApiState {
        runtime,
        rescan,
        services,
        token: token.map(Arc::from),
        counts: console::CountsCache::default(),
    };
    let v1 = Router::new()
        .route("/rules", get(rules::list).post(rules::create))
        .route(
            "/rules/{id}",
            get(rules::get).patch(rules::patch).delete(rules::delete),
        )
        .route("/prices/{symbol}", get(prices::get))
        .route("/cluster", get(cluster::get))
        .route("/notifications", axum::routing::post(notifications::create))
        .route("/notifications/{id}", get(notifications::get))
        .route("/dead-letters", get(notifications::dead_letters))
        .route(
            "/dead-letters/{id}/replay",
            axum::routing::post(notifications::replay),
        )
        .route("/dead-letters/{id}", axum::routing::delete(events::purge))
        .route(
            "/streams/{stream}/events",
            axum::routing::post(events::append),
        )
        .route("/listeners", get(events::listeners))
        .route(
            "/users/{user_id}/preferences",
            get(preferences::get).put(preferences::put),
        )
        .route(
            "/users/{user_id}/push-subscriptions",
            axum::routing::post(preferences::add_push_subscription)
                .delete(preferences::remove_push_subscription),
        )
        .route("/webpush/public-key", get(preferences::webpush_public_key))
        .route(
            "/users/{user_id}/telegram-link",
            axum::routing::post(telegram_link::create),
        )
        .route("/scraper/targets", get(scraper::list).post(scraper::create))
        .route(
            "/scraper/targets/{id}",
            axum::routing::delete(scraper::delete),
        )
        .route("/scraper/accounts", get(scraper::accounts))
        .route("/schedules", get(schedules::list).post(schedules::create))
        .route(
            "/schedules/{name}",
            get(schedules::get)
                .patch(schedules::patch)
                .delete(schedules::delete),
        )
        .route(
            "/schedules/{name}/run",
            axum::routing::post(schedules::run_now),
        )
        .route(
            "/schedules/{name}/pause",
            axum::routing::post(schedules::pause),
        )
        .route(
            "/schedules/{name}/resume",
            axum::routing::post(schedules::resume),
        )
        .route("/rag/query", axum::routing::post(rag::query))
        .route("/rag/collections", get(rag::collections))
        .route("/plugins", axum::routing::get(plugins::list))
        .route("/plugins/reload", axum::routing::post(plugins::reload))
        .route("/plugins/{name}", axum::routing::get(plugins::get))
        .route("/openapi.json", axum::routing::get(openapi::document))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    // `/mcp` behind the same bearer check as `/api/v1`: a router of its own, so the check
    // wraps the MCP service (a tower service, not a handler).
    let mcp = Router::new()
        .fallback_service(mcp::service(
            state.clone(),
            state.services.mcp_sessions.clone(),
        ))
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", axum::routing::get(health::healthz))
        .route("/readyz", axum::routing::get(health::readyz))
        .route("/metrics", axum::routing::get(metrics::metrics))
        .nest("/api/v1", v1)
        .nest("/ui", console::router(state.clone()))
        .nest_service("/mcp", mcp)
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state)
}

async fn require_token(
    State(state): State<ApiState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.token {
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes())) {
            return ApiError {
                status: StatusCode::UNAUTHORIZED,
                code: "unauthorized",
                message: "missing or wrong bearer token".into(),
                retry_after_secs: None,
            }
            .into_response();
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Bind and serve until `shutdown` resolves.
pub async fn serve(
    listen: SocketAddr,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("failed to bind the admin API to {listen}"))?;
    tracing::info!(%listen, "admin API listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Bind first (so the caller learns the port), then serve in the background.
pub async fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("failed to bind the admin API to {listen}"))
}
