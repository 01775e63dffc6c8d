//! [`RequestFilter`]: a check the embedding program runs on every request a page makes,
//! before Chromium sends it (the host's SSRF guard for rendered RAG pages).
//!
//! It rides on the Fetch domain the pool already uses for blocked resource types
//! (`intercept.rs`): each `Fetch.requestPaused` at the request stage — the document, every
//! subresource, XHR and `fetch()`, each redirect hop (CDP reports the request after a
//! redirect as a new paused request), frames of the page's process — is held until the
//! filter answers; a refusal fails the request with `AccessDenied`, so the page sees a
//! network error and nothing is sent. What the Fetch domain does not pause is not
//! filtered: WebSocket handshakes, WebRTC, and requests of workers in their own targets
//! (service workers are bypassed by the pool anyway). The filter decides on the URL; the
//! address Chromium then connects to comes from its own resolver. The host closes both
//! gaps by also giving such a context a proxy that resolves and vets each destination
//! itself (its `net/proxy.rs`; docs/design/rag.md §22).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The answer of a filter: `Err(reason)` refuses the request (the reason is logged; it
/// must not hold secrets).
pub type FilterFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A per-request check (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct RequestFilter(Arc<dyn Fn(String) -> FilterFuture + Send + Sync>);

impl RequestFilter {
    /// A filter calling `check` with each request's URL.
    pub fn new(check: impl Fn(String) -> FilterFuture + Send + Sync + 'static) -> Self {
        RequestFilter(Arc::new(check))
    }

    /// Runs the check on `url`.
    pub fn check(&self, url: String) -> FilterFuture {
        (self.0)(url)
    }
}

impl fmt::Debug for RequestFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestFilter")
    }
}
