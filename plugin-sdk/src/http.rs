//! Outbound HTTP for tasks and event handlers: a small blocking client over the standard
//! `wasi:http/outgoing-handler`.
//!
//! The operator grants the hosts (`[plugins.grants.<name>] http = ["api.example.com"]`);
//! a request anywhere else fails with [`Error::NotGranted`] before any connection, and one
//! to a private or loopback address with [`Error::AddressRefused`]. Redirects are followed
//! only as far as the host's `[plugins.http] max_redirects` allows (by default not at all:
//! a 3xx is an ordinary [`Response`]). Every request ends by the call's deadline; a body
//! larger than the host's cap is [`Error::TooLarge`].
//!
//! ```no_run
//! use impressox_plugin_sdk::http::{self, Request};
//!
//! /// The `usd` price of `id` from a CoinGecko-style JSON API.
//! fn price(id: &str) -> Result<String, String> {
//!     let response = Request::get(&format!(
//!         "https://api.coingecko.com/api/v3/simple/price?ids={id}&vs_currencies=usd"
//!     ))
//!     .header("accept", "application/json")
//!     .send()
//!     .map_err(|e| format!("price request failed: {e}"))?;
//!     if !response.is_success() {
//!         return Err(format!("price API answered {}", response.status));
//!     }
//!     // `response.body` holds the bytes; parse them with the JSON library of your choice.
//!     Ok(response.text().map_err(|e| e.to_string())?.to_string())
//! }
//!
//! /// A JSON POST with a header and a timeout shorter than the call's.
//! fn report(summary: &str) -> Result<u16, http::Error> {
//!     let body = format!("{{\"summary\":{summary:?}}}");
//!     let response = Request::post("https://hooks.example.com/report")
//!         .header("x-api-key", "from config::secret")
//!         .json(body)
//!         .timeout(std::time::Duration::from_secs(2))
//!         .send()?;
//!     Ok(response.status)
//! }
//! ```

use std::fmt;
use std::time::Duration;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

/// The request methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

/// An outgoing request; build it, then [`Request::send`].
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code (200, 404, ...).
    pub status: u16,
    /// The headers, names in lower case, in the order the server sent them.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The URL could not be used (not `http(s)://host/...`, or a header the host forbids).
    InvalidRequest(String),
    /// The URL's host (with its scheme and port) is not in this plugin's `http` grant.
    NotGranted,
    /// The host resolves to an address plugins may not reach (loopback, private,
    /// link-local, cloud metadata).
    AddressRefused,
    /// The request ran out of time (connecting, or waiting for the response).
    Timeout,
    /// The response body is larger than the host allows.
    TooLarge,
    /// Anything else the host or the network reported.
    Failed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            Error::NotGranted => write!(
                f,
                "the host refused the request: its host is not in this plugin's `http` grant"
            ),
            Error::AddressRefused => write!(
                f,
                "the host refused the request: the server's address is private or local"
            ),
            Error::Timeout => write!(f, "the request timed out"),
            Error::TooLarge => write!(f, "the response body is larger than the host allows"),
            Error::Failed(why) => write!(f, "the request failed: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl Request {
    /// A request with `method` to `url` (`http://` or `https://`).
    pub fn new(method: Method, url: &str) -> Request {
        Request {
            method,
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }

    /// A `GET` of `url`.
    pub fn get(url: &str) -> Request {
        Request::new(Method::Get, url)
    }

    /// A `POST` to `url`.
    pub fn post(url: &str) -> Request {
        Request::new(Method::Post, url)
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Request {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_ref().to_vec()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Set a JSON body (already serialized) and its `content-type`.
    pub fn json(self, json: impl Into<String>) -> Request {
        self.header("content-type", "application/json")
            .body(json.into().into_bytes())
    }

    /// Give up after `timeout` to connect and `timeout` more for the response to begin
    /// (the call's deadline applies in any case).
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Send it and read the whole response.
    pub fn send(self) -> Result<Response, Error> {
        let parts = split_url(&self.url)?;
        let entries: Vec<(String, Vec<u8>)> = self.headers;
        let fields = Fields::from_list(&entries)
            .map_err(|e| Error::InvalidRequest(format!("a header was refused: {e:?}")))?;
        let request = OutgoingRequest::new(fields);
        let method = match self.method {
            Method::Get => WasiMethod::Get,
            Method::Head => WasiMethod::Head,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Patch => WasiMethod::Patch,
            Method::Delete => WasiMethod::Delete,
            Method::Options => WasiMethod::Options,
        };
        let invalid = |what: &str| Error::InvalidRequest(format!("bad {what} in `{}`", self.url));
        request
            .set_method(&method)
            .map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&parts.scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(&parts.authority))
            .map_err(|()| invalid("host"))?;
        request
            .set_path_with_query(Some(&parts.path_with_query))
            .map_err(|()| invalid("path"))?;
        let options = self.timeout.map(|t| {
            let o = RequestOptions::new();
            let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            let _ = o.set_connect_timeout(Some(ns));
            let _ = o.set_first_byte_timeout(Some(ns));
            o
        });
        let body = request
            .body()
            .map_err(|()| Error::Failed("no request body".into()))?;
        // The request goes out first: the host reads the body as it is written.
        let pending = outgoing_handler::handle(request, options).map_err(from_code)?;
        write_body(&body, &self.body)?;
        OutgoingBody::finish(body, None).map_err(from_code)?;

        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(from_code(code)),
            Some(Err(())) | None => return Err(Error::Failed("no response".into())),
        };
        let status = response.status();
        let headers = response.headers().entries();
        let incoming = response
            .consume()
            .map_err(|()| Error::Failed("response body already taken".into()))?;
        let body = read_body(&incoming)?;
        drop(IncomingBody::finish(incoming));
        drop(response);
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// A `GET` of `url`, read whole.
pub fn get(url: &str) -> Result<Response, Error> {
    Request::get(url).send()
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (any case), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }
}

struct UrlParts {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

/// Split `http(s)://authority/path?query#fragment`; the host checks the rest.
fn split_url(url: &str) -> Result<UrlParts, Error> {
    let bad = |why: &str| Error::InvalidRequest(format!("`{url}`: {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("not an absolute URL"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        _ => return Err(bad("only http and https URLs can be requested")),
    };
    let rest = rest.split('#').next().unwrap_or("");
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if authority.contains('@') {
        return Err(bad(
            "credentials in the URL are not supported; send a header",
        ));
    }
    let path_with_query = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    Ok(UrlParts {
        scheme,
        authority: authority.to_string(),
        path_with_query,
    })
}

fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), Error> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body
        .write()
        .map_err(|()| Error::Failed("request body stream unavailable".into()))?;
    // `blocking-write-and-flush` takes at most 4096 bytes at a time.
    for chunk in bytes.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| match e {
                StreamError::LastOperationFailed(e) => {
                    match wasip2::http::types::http_error_code(&e) {
                        Some(code) => from_code(code),
                        None => from_text(e.to_debug_string()),
                    }
                }
                StreamError::Closed => Error::Failed("the request body was closed early".into()),
            })?;
    }
    Ok(())
}

fn read_body(incoming: &IncomingBody) -> Result<Vec<u8>, Error> {
    let stream = incoming
        .stream()
        .map_err(|()| Error::Failed("response body stream unavailable".into()))?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(out),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match wasip2::http::types::http_error_code(&e) {
                    Some(code) => from_code(code),
                    None => from_text(e.to_debug_string()),
                });
            }
        }
    }
}

/// A body stream's failure that carries no `error-code` (wasmtime-wasi-http 48 passes
/// response-body errors to the guest as text only), told apart by that text.
fn from_text(text: String) -> Error {
    if text.contains("body size exceeds limit") {
        Error::TooLarge
    } else if text.contains("timed out") || text.contains("timeout") {
        Error::Timeout
    } else {
        Error::Failed(text)
    }
}

fn from_code(code: ErrorCode) -> Error {
    match code {
        ErrorCode::HttpRequestDenied => Error::NotGranted,
        ErrorCode::DestinationIpProhibited => Error::AddressRefused,
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => Error::Timeout,
        ErrorCode::HttpResponseBodySize(_) => Error::TooLarge,
        ErrorCode::InternalError(Some(message)) => Error::Failed(message),
        ErrorCode::HttpRequestUriInvalid => Error::InvalidRequest("invalid URL".into()),
        other => Error::Failed(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        let p = split_url("https://api.example.com:8443/v1/x?a=1#frag").unwrap();
        assert!(matches!(p.scheme, Scheme::Https));
        assert_eq!(p.authority, "api.example.com:8443");
        assert_eq!(p.path_with_query, "/v1/x?a=1");
        let p = split_url("http://[::1]?q").unwrap();
        assert_eq!(p.authority, "[::1]");
        assert_eq!(p.path_with_query, "/?q");
        assert_eq!(split_url("HTTP://h").unwrap().path_with_query, "/");
        for bad in ["ftp://h/", "h/x", "https:///x", "https://u:p@h/"] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn body_errors_given_as_text_are_sorted() {
        let big = "HTTP response body size exceeds limit: 10000 bytes".to_string();
        assert_eq!(from_text(big), Error::TooLarge);
        assert_eq!(from_text("HTTP response timeout".into()), Error::Timeout);
        let other = from_text("internal error: max_bytes_per_call".into());
        assert!(other.to_string().contains("max_bytes_per_call"), "{other}");
    }
}
