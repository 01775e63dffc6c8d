//! Sending one plugin request: the grant, the address guard, the limits, then the network.
//!
//! This is what stands behind wasmtime-wasi-http's send hook ([`Hooks`]): wasmtime-wasi-http
//! parses the guest's `outgoing-request` into an `http::Request` and hands it here; nothing
//! reaches the network any other way (the crate is built without its own sender). In order:
//! 1. the URL's scheme, host and port must be in the plugin's grant — otherwise
//!    `http-request-denied`, before any lookup or connection;
//! 2. the call's request budget;
//! 3. the request body is read (it counts against the call's byte budget);
//! 4. the request goes out through the host's guarded client ([`crate::net::Outbound`]):
//!    IP literals checked before sending, names resolved once and only vetted addresses
//!    connected to, no proxy from the environment, redirects not followed unless
//!    `max_redirects` allows and then each hop re-checked against the grant too; a
//!    refused address is `destination-ip-prohibited`;
//! 5. the whole exchange is bounded by `timeout_ms` and by the call's deadline, and the
//!    response body by `max_response_bytes` and the call's byte budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use reqwest::Url;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::allow::AllowList;
use super::budget::{CallBudget, CappedBody};
use super::config::HttpConfig;
use super::metrics::PluginMetrics;
use crate::net::guard::{GuardError, HopCheck, RedirectRefused, SystemLookup, source_of};
use crate::net::{Outbound, OutboundPolicy};

/// How long a request may outlive the call that made it (see [`PluginHttp::timeout`]).
const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// What a response future resolves to, in wasmtime-wasi-http's terms.
type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

/// One plugin's outbound HTTP: its grant, its guarded client, its counters. Shared by all
/// the plugin's stores; built when the plugin loads.
pub struct PluginHttp {
    name: Arc<str>,
    allow: Arc<AllowList>,
    client: Outbound,
    config: HttpConfig,
    metrics: Arc<PluginMetrics>,
}

impl std::fmt::Debug for PluginHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHttp")
            .field("name", &self.name)
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl PluginHttp {
    /// The outbound HTTP of plugin `name` with grant `allow`.
    pub fn new(
        name: &str,
        allow: AllowList,
        config: &HttpConfig,
        metrics: Arc<PluginMetrics>,
    ) -> anyhow::Result<PluginHttp> {
        let allow = Arc::new(allow);
        let policy = OutboundPolicy {
            allow_private_addresses: config.allow_private_addresses,
            proxy: None,
            timeout: Duration::from_millis(config.timeout_ms),
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            max_redirects: config.max_redirects,
            ..OutboundPolicy::default()
        };
        let hop_allow = allow.clone();
        let hop: HopCheck = Arc::new(move |url: &Url| {
            if hop_allow.allows(url) {
                Ok(())
            } else {
                Err(format!(
                    "{} is not in the plugin's `http` grant",
                    url.host_str().unwrap_or("")
                ))
            }
        });
        let client = Outbound::with_hop_check(&policy, Arc::new(SystemLookup), hop)?;
        Ok(PluginHttp {
            name: name.into(),
            allow,
            client,
            config: config.clone(),
            metrics,
        })
    }

    /// A fresh per-call budget for one of this plugin's stores.
    pub fn budget(&self) -> CallBudget {
        CallBudget::new(
            self.config.max_requests_per_call,
            self.config.max_bytes_per_call,
        )
    }

    /// Send `request` for the call whose deadline is `deadline`.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        deadline: Instant,
        budget: Arc<CallBudget>,
    ) -> Result<Sent, Error> {
        let plugin = &*self.name;
        let url =
            Url::parse(&request.uri().to_string()).map_err(|_| Error::HttpRequestUriInvalid)?;
        let host = url.host_str().unwrap_or("").to_string();
        if !self.allow.allows(&url) {
            self.metrics.refused();
            tracing::warn!(target: "plugin", plugin, %host, scheme = url.scheme(),
                port = url.port_or_known_default(),
                "HTTP request refused: not in the plugin's grant ([plugins.grants.{plugin}] http)");
            return Err(Error::HttpRequestDenied);
        }
        if let Err(why) = budget.take_request() {
            self.metrics.refused();
            tracing::warn!(target: "plugin", plugin, %host, "HTTP request refused: {why}");
            return Err(Error::InternalError(Some(why)));
        }
        let (parts, body) = request.into_parts();
        let body = self.read_body(body, &budget).await?;

        let builder = match self.client.request(parts.method, url).await {
            Ok(b) => b,
            Err(e) => return Err(self.refused_by_guard(&host, &e)),
        };
        let mut headers = parts.headers;
        // reqwest writes Host (and the body's length) from the URL and the body itself.
        headers.remove(http::header::HOST);
        headers.remove(http::header::CONTENT_LENGTH);
        let timeout = self.timeout(options, deadline);
        let sent_bytes = body.len() as u64;
        self.metrics.request();
        let response = builder
            .headers(headers)
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| self.send_error(&host, &e))?;
        self.metrics.sent(sent_bytes);

        let cap = self.config.max_response_bytes;
        if let Some(len) = response.content_length()
            && len > cap
        {
            self.metrics.refused();
            tracing::warn!(target: "plugin", plugin, %host,
                "HTTP response of {len} bytes over {cap} ([plugins.http] max_response_bytes): refused");
            return Err(Error::HttpResponseBodySize(Some(len)));
        }
        let response: http::Response<reqwest::Body> = response.into();
        let response = response.map(|body| {
            CappedBody::new(body, cap, budget, self.metrics.clone(), self.name.clone())
                .boxed_unsync()
        });
        let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
        Ok((response, io))
    }

    /// The whole request body, within the call's byte budget.
    async fn read_body(&self, body: WasiBody, budget: &CallBudget) -> Result<Bytes, Error> {
        let limit = budget.bytes_left();
        let limited = http_body_util::Limited::new(body, limit.try_into().unwrap_or(usize::MAX));
        let bytes = match limited.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                return Err(match e.downcast::<Error>() {
                    Ok(inner) => *inner,
                    Err(_) => {
                        self.metrics.refused();
                        Error::HttpRequestBodySize(Some(limit))
                    }
                });
            }
        };
        budget
            .take_bytes(bytes.len() as u64)
            .map_err(|why| Error::InternalError(Some(why)))?;
        Ok(bytes)
    }

    /// The request's timeout: the configured one, the guest's own if shorter, and never
    /// much past the call's deadline. The grace keeps the deadline itself the first to
    /// fire while the guest waits, so a hanging server ends the call as a timeout (not as
    /// an error the plugin might retry); a request nobody waits for still stops soon after.
    fn timeout(&self, options: Option<RequestOptions>, deadline: Instant) -> Duration {
        let mut timeout = Duration::from_millis(self.config.timeout_ms);
        if let Some(o) = options {
            let guest = [o.connect_timeout, o.first_byte_timeout]
                .into_iter()
                .flatten()
                .sum::<Duration>();
            if guest > Duration::ZERO {
                timeout = timeout.min(guest);
            }
        }
        timeout.min(deadline.saturating_duration_since(Instant::now()) + DEADLINE_GRACE)
    }

    fn refused_by_guard(&self, host: &str, e: &GuardError) -> Error {
        let plugin = &*self.name;
        self.metrics.refused();
        match e {
            GuardError::Refused(why) => {
                tracing::warn!(target: "plugin", plugin, %host, "HTTP request refused: {why}");
                Error::DestinationIpProhibited
            }
            GuardError::Lookup { message, .. } => {
                tracing::info!(target: "plugin", plugin, %host, "HTTP request failed: {message}");
                Error::DnsError {
                    rcode: None,
                    info_code: None,
                }
            }
        }
    }

    /// A failed send in wasi:http's terms; the detail goes to the log (it may name an
    /// internal address), the guest gets the error code.
    fn send_error(&self, host: &str, e: &reqwest::Error) -> Error {
        let plugin = &*self.name;
        if let Some(g) = source_of::<GuardError>(e) {
            return self.refused_by_guard(host, g);
        }
        if let Some(RedirectRefused(why)) = source_of::<RedirectRefused>(e) {
            self.metrics.refused();
            tracing::warn!(target: "plugin", plugin, %host, "HTTP redirect refused: {why}");
            return Error::HttpRequestDenied;
        }
        self.metrics.failed();
        tracing::info!(target: "plugin", plugin, %host, "HTTP request failed: {e}");
        if e.is_redirect() {
            Error::LoopDetected
        } else if e.is_timeout() {
            if e.is_connect() {
                Error::ConnectionTimeout
            } else {
                Error::HttpResponseTimeout
            }
        } else if e.is_connect() {
            Error::ConnectionRefused
        } else {
            Error::HttpProtocolError
        }
    }
}

/// wasmtime-wasi-http's hooks for one store: the plugin's HTTP (none while probing or
/// when not granted), the running call's deadline and budget.
pub struct Hooks {
    pub(super) plugin: Option<Arc<PluginHttp>>,
    pub(super) deadline: Instant,
    pub(super) budget: Arc<CallBudget>,
}

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _request_error: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<Sent, Error>> + Send> {
        let plugin = self.plugin.clone();
        let deadline = self.deadline;
        let budget = self.budget.clone();
        Box::new(async move {
            match plugin {
                Some(p) => p.send(request, options, deadline, budget).await,
                None => Err(Error::HttpRequestDenied),
            }
        })
    }
}
