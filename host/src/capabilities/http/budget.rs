//! What one plugin call may spend on HTTP, and the response body that enforces it.
//!
//! A call has a budget of requests and of bytes (request and response bodies together,
//! `[plugins.http] max_requests_per_call`, `max_bytes_per_call`); each response also has
//! its own size cap (`max_response_bytes`). Bytes are counted as they arrive, so a server
//! that sends more than allowed is cut off mid-body with `http-response-body-size` rather
//! than read to the end: a plugin that abuses HTTP hurts only its own call.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::Error;

use super::metrics::PluginMetrics;

/// The HTTP budget of the call running in one store; refilled when a call begins.
#[derive(Debug)]
pub struct CallBudget {
    max_requests: u32,
    max_bytes: u64,
    requests: AtomicU32,
    bytes: AtomicU64,
}

impl CallBudget {
    pub fn new(max_requests: u32, max_bytes: u64) -> CallBudget {
        CallBudget {
            max_requests,
            max_bytes,
            requests: AtomicU32::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// A new call: nothing spent.
    pub fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
    }

    /// Count one request; an error when the call has made all it may.
    pub fn take_request(&self) -> Result<(), String> {
        let before = self.requests.fetch_add(1, Ordering::Relaxed);
        if before >= self.max_requests {
            return Err(format!(
                "this call already made {} HTTP requests, the most one call may make \
                 ([plugins.http] max_requests_per_call)",
                self.max_requests
            ));
        }
        Ok(())
    }

    /// Count `n` bytes moved; an error when they take the call over its byte budget.
    pub fn take_bytes(&self, n: u64) -> Result<(), String> {
        let after = self.bytes.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if after > self.max_bytes {
            return Err(format!(
                "this call moved more than {} bytes over HTTP, the most one call may \
                 ([plugins.http] max_bytes_per_call)",
                self.max_bytes
            ));
        }
        Ok(())
    }

    /// Bytes the call may still move.
    pub fn bytes_left(&self) -> u64 {
        self.max_bytes
            .saturating_sub(self.bytes.load(Ordering::Relaxed))
    }
}

/// A response body cut at the response's size cap and at the call's byte budget.
pub struct CappedBody<B> {
    inner: B,
    /// Bytes this response may still deliver.
    left: u64,
    cap: u64,
    budget: Arc<CallBudget>,
    metrics: Arc<PluginMetrics>,
    plugin: Arc<str>,
    /// Set once the body failed: nothing more is read.
    done: bool,
}

impl<B> CappedBody<B> {
    pub fn new(
        inner: B,
        cap: u64,
        budget: Arc<CallBudget>,
        metrics: Arc<PluginMetrics>,
        plugin: Arc<str>,
    ) -> CappedBody<B> {
        CappedBody {
            inner,
            left: cap,
            cap,
            budget,
            metrics,
            plugin,
            done: false,
        }
    }
}

impl<B> Body for CappedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                this.metrics.failed();
                tracing::debug!(target: "plugin", plugin = %this.plugin, "HTTP response body failed: {e}");
                return Poll::Ready(Some(Err(Error::HttpResponseIncomplete)));
            }
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let n = data.len() as u64;
            if n > this.left {
                this.done = true;
                this.metrics.refused();
                tracing::warn!(target: "plugin", plugin = %this.plugin,
                    "HTTP response body over {} bytes ([plugins.http] max_response_bytes): cut",
                    this.cap);
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(this.cap)))));
            }
            if let Err(why) = this.budget.take_bytes(n) {
                this.done = true;
                this.metrics.refused();
                tracing::warn!(target: "plugin", plugin = %this.plugin, "{why}: response cut");
                return Poll::Ready(Some(Err(Error::InternalError(Some(why)))));
            }
            this.left -= n;
            this.metrics.received(n);
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    fn capped(body: &'static [u8], cap: u64, budget: Arc<CallBudget>) -> CappedBody<Full<Bytes>> {
        CappedBody::new(
            Full::new(Bytes::from_static(body)),
            cap,
            budget,
            Arc::new(PluginMetrics::default()),
            "p".into(),
        )
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_body_within_the_caps_passes_and_is_counted() {
        let budget = Arc::new(CallBudget::new(4, 100));
        let out = block_on(capped(b"hello", 5, budget.clone()).collect()).unwrap();
        assert_eq!(out.to_bytes(), Bytes::from_static(b"hello"));
        assert_eq!(budget.bytes_left(), 95);
    }

    #[test]
    fn a_body_over_its_cap_is_cut() {
        let budget = Arc::new(CallBudget::new(4, 100));
        let err = block_on(capped(b"hello", 4, budget).collect()).unwrap_err();
        assert!(matches!(err, Error::HttpResponseBodySize(Some(4))), "{err}");
    }

    #[test]
    fn the_call_budget_spans_responses_and_refills_per_call() {
        let budget = Arc::new(CallBudget::new(2, 8));
        block_on(capped(b"hello", 100, budget.clone()).collect()).unwrap();
        let err = block_on(capped(b"hello", 100, budget.clone()).collect()).unwrap_err();
        assert!(err.to_string().contains("max_bytes_per_call"), "{err}");
        assert!(budget.take_request().is_ok() && budget.take_request().is_ok());
        let err = budget.take_request().unwrap_err();
        assert!(err.contains("max_requests_per_call"), "{err}");
        budget.reset();
        assert!(budget.take_request().is_ok());
        assert_eq!(budget.bytes_left(), 8);
    }
}
