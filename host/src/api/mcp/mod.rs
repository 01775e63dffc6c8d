//! The Model Context Protocol at `/mcp`: the agent's tools over rules, alerts and
//! retrieval, for any MCP client (an agent framework, Claude), over streamable HTTP with
//! the official SDK (`rmcp`). Design: docs/design/mcp.md.
//!
//! Organization:
//! - [`tools`]: the tools and the session handler; each tool calls the code path its REST
//!   route uses, so an agent and a person get the same checks and answers;
//! - [`search`]: `search_context`, the RAG query of `POST /api/v1/rag/query`;
//! - [`args`]: tool arguments parsed by the REST body parser (errors name the field);
//! - this file: the HTTP service, nested into the API's router behind the same bearer
//!   token as `/api/v1` (see `super::router_with`).
//!
//! Sessions live in this process ([`LocalSessionManager`]): a client that reaches another
//! host behind a balancer initializes again there. Every tool is a plain request and
//! answer, so nothing but the session id is lost with a host.

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::ApiState;

mod args;
mod search;
mod tools;

pub use tools::Tools;

/// The `/mcp` endpoint. `sessions`: cancelled at shutdown, which ends every session and
/// its open event stream (an agent keeps one open; the server would otherwise wait for it
/// before it stops).
pub fn service(
    state: ApiState,
    sessions: CancellationToken,
) -> StreamableHttpService<Tools, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(sessions);
    // The SDK accepts only loopback `Host` headers by default, against DNS rebinding: a
    // web page whose name resolves to 127.0.0.1 would otherwise reach a local server. With
    // a token that page cannot authenticate, and the API may serve other names (a
    // container, a proxy), so the token is the guard; without one the API binds to
    // loopback only (`check_bind`) and the loopback check stays.
    if state.token.is_some() {
        config = config.disable_allowed_hosts();
    }
    StreamableHttpService::new(
        move || {
            Ok(Tools::new(
                state.clone(),
                Tools::tool_router() + Tools::search_router(),
            ))
        },
        Arc::new(LocalSessionManager::default()),
        config,
    )
}
