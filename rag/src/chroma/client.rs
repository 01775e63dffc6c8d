//! The HTTP side of the Chroma backend: one blocking client, the v2 paths, retries with
//! backoff, and errors that name the server and the operation (never the token).
//!
//! **Why a blocking client** (`reqwest::blocking`): the crate is synchronous by design
//! ([`crate::Embedder`] and [`crate::RagIndex`] are called from `spawn_blocking` threads
//! and from the CLI), so the store blocks like redb does. reqwest's blocking client runs
//! its requests on a runtime of its own (one background thread), which makes it safe on
//! any thread that is not itself driving an async runtime; it is already in the workspace
//! (rustls, no system OpenSSL). The one rule for callers: never call it from inside an
//! async task (use `spawn_blocking`), where blocking would panic.
//!
//! **Retries**: every request this backend sends is idempotent (upsert by id, delete by
//! id, get, query, create-if-missing), so a connection error, a timeout, a 5xx or a 429 is
//! retried with exponential backoff (50 ms doubling to 1 s) until `retry_for` has passed:
//! a server restarted mid-ingest costs a pause, not an error. A 4xx other than 429 is
//! answered at once with the server's message.

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::Value;

use crate::backend::StoreError;

/// The header Chroma's token authentication reads by default; the token is also sent as
/// `Authorization: Bearer`, the other header a Chroma server can be configured to read.
const TOKEN_HEADER: &str = "x-chroma-token";
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A failed request before it is given the operation's name.
enum Failure {
    /// The server answered with this status and message.
    Status(u16, String),
    /// No usable answer (connection, timeout, body), after retries.
    Transport(String),
}

pub(crate) struct Http {
    client: Client,
    /// `url/api/v2/tenants/T/databases/D`, what collection paths start with.
    base: String,
    /// The server's root (`url/api/v2`).
    root: String,
    /// The URL as errors show it: no user info, no trailing slash.
    shown: String,
    retry_for: Duration,
    /// Kept only to scrub it from a server's error text (a server or proxy that echoes
    /// the request's headers must not put it into our errors and logs).
    token: Option<String>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("url", &self.shown).finish()
    }
}

/// Path segments are URL-encoded (tenant and database names come from config).
fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An error and its causes on one line (reqwest's own message is "error sending
/// request"; the cause, e.g. "connection refused", is in its sources).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl Http {
    pub(crate) fn new(
        url: &str,
        tenant: &str,
        database: &str,
        token: Option<&str>,
        timeout: Duration,
        retry_for: Duration,
    ) -> Result<Http, StoreError> {
        let bad = |message: String| StoreError::Remote {
            url: url.to_string(),
            operation: "configuration".into(),
            message,
        };
        let mut parsed = reqwest::Url::parse(url).map_err(|e| bad(format!("bad url: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("the url must be http:// or https://".into()));
        }
        // Credentials in the URL would reach error messages; the token has its own key.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        let shown = parsed.as_str().trim_end_matches('/').to_string();
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            let mut v = HeaderValue::from_str(token)
                .map_err(|_| bad("the token is not a valid header value".into()))?;
            v.set_sensitive(true);
            headers.insert(TOKEN_HEADER, v);
            let mut bearer = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| bad("the token is not a valid header value".into()))?;
            bearer.set_sensitive(true);
            headers.insert(AUTHORIZATION, bearer);
        }
        let client = Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| bad(chain(&e.without_url())))?;
        let root = format!("{shown}/api/v2");
        let base = format!(
            "{root}/tenants/{}/databases/{}",
            segment(tenant),
            segment(database)
        );
        let url = shown.clone();
        Ok(Http {
            client,
            base,
            root,
            shown: url,
            retry_for,
            token: token.filter(|t| !t.is_empty()).map(str::to_string),
        })
    }

    pub(crate) fn url(&self) -> &str {
        &self.shown
    }

    fn error(&self, operation: &str, failure: Failure) -> StoreError {
        let message = match failure {
            Failure::Status(status @ (401 | 403), message) => format!(
                "HTTP {status}: {message}: the server refused the credentials ({})",
                if self.token.is_some() {
                    "a token was sent, as Authorization: Bearer and X-Chroma-Token; it is \
                     not the server's"
                } else {
                    "no token was sent"
                }
            ),
            Failure::Status(status, message) => format!("HTTP {status}: {message}"),
            Failure::Transport(message) => message,
        };
        let message = match &self.token {
            Some(t) if message.contains(t.as_str()) => message.replace(t.as_str(), "<token>"),
            _ => message,
        };
        StoreError::Remote {
            url: self.shown.clone(),
            operation: operation.to_string(),
            message,
        }
    }

    /// Sends a request under the retry policy; `Ok(None)` is a 404.
    fn send(
        &self,
        operation: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, StoreError> {
        let start = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 0u32;
        loop {
            tries += 1;
            let mut request = self.client.request(method.clone(), url);
            if let Some(body) = body {
                request = request.json(body);
            }
            let failure = match request.send() {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match response.text() {
                        Ok(text) if (200..300).contains(&status) => {
                            if text.trim().is_empty() {
                                return Ok(Some(Value::Null));
                            }
                            return serde_json::from_str(&text).map(Some).map_err(|e| {
                                self.error(
                                    operation,
                                    Failure::Transport(format!("unreadable answer: {e}")),
                                )
                            });
                        }
                        Ok(_) if status == 404 => return Ok(None),
                        Ok(text) => {
                            // Chroma answers {"error": KIND, "message": TEXT}.
                            let message = serde_json::from_str::<Value>(&text)
                                .ok()
                                .and_then(|v| {
                                    let kind = v.get("error")?.as_str()?.to_string();
                                    let msg = v.get("message")?.as_str()?.to_string();
                                    Some(format!("{kind}: {msg}"))
                                })
                                .unwrap_or_else(|| text.chars().take(500).collect());
                            Failure::Status(status, message)
                        }
                        Err(e) => Failure::Transport(chain(&e.without_url())),
                    }
                }
                Err(e) => Failure::Transport(chain(&e.without_url())),
            };
            let retry = match &failure {
                Failure::Status(s, _) => *s >= 500 || *s == 429,
                Failure::Transport(_) => true,
            };
            if !retry || start.elapsed() + backoff > self.retry_for {
                let failure = match failure {
                    Failure::Transport(m) if tries > 1 => Failure::Transport(format!(
                        "{m} (gave up after {tries} tries in {:.1} s)",
                        start.elapsed().as_secs_f64()
                    )),
                    Failure::Status(s, m) if tries > 1 => {
                        Failure::Status(s, format!("{m} (gave up after {tries} tries)"))
                    }
                    other => other,
                };
                return Err(self.error(operation, failure));
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// A request whose 404 is an error.
    fn must(
        &self,
        operation: &str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, StoreError> {
        self.send(operation, method, url, body)?
            .ok_or_else(|| self.error(operation, Failure::Status(404, "not found".into())))
    }

    /// GET under `/api/v2` (`path` starts with `/`); `None` on 404.
    pub(crate) fn get_root(
        &self,
        operation: &str,
        path: &str,
    ) -> Result<Option<Value>, StoreError> {
        self.send(
            operation,
            reqwest::Method::GET,
            &format!("{}{path}", self.root),
            None,
        )
    }

    /// POST under `/api/v2`; a 409 (already exists) counts as success.
    pub(crate) fn create_root(
        &self,
        operation: &str,
        path: &str,
        body: &Value,
    ) -> Result<(), StoreError> {
        match self.send(
            operation,
            reqwest::Method::POST,
            &format!("{}{path}", self.root),
            Some(body),
        ) {
            Ok(_) => Ok(()),
            Err(StoreError::Remote { message, .. }) if message.starts_with("HTTP 409") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// GET under the database; `None` on 404.
    pub(crate) fn get(&self, operation: &str, path: &str) -> Result<Option<Value>, StoreError> {
        self.send(
            operation,
            reqwest::Method::GET,
            &format!("{}{path}", self.base),
            None,
        )
    }

    /// POST under the database.
    pub(crate) fn post(
        &self,
        operation: &str,
        path: &str,
        body: &Value,
    ) -> Result<Value, StoreError> {
        self.must(
            operation,
            reqwest::Method::POST,
            &format!("{}{path}", self.base),
            Some(body),
        )
    }

    /// PUT under the database.
    pub(crate) fn put(
        &self,
        operation: &str,
        path: &str,
        body: &Value,
    ) -> Result<Value, StoreError> {
        self.must(
            operation,
            reqwest::Method::PUT,
            &format!("{}{path}", self.base),
            Some(body),
        )
    }

    /// DELETE under the database; `false` if there was nothing (a 404, also what a retry
    /// of a delete that went through sees).
    pub(crate) fn delete(&self, operation: &str, path: &str) -> Result<bool, StoreError> {
        Ok(self
            .send(
                operation,
                reqwest::Method::DELETE,
                &format!("{}{path}", self.base),
                None,
            )?
            .is_some())
    }

    /// The collection path segment for a Chroma collection id.
    pub(crate) fn collection_path(id: &str) -> String {
        format!("/collections/{}", segment(id))
    }

    /// The segment encoding, for names in paths.
    pub(crate) fn segment(s: &str) -> String {
        segment(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_server_without_credentials_or_token() {
        let http = Http::new(
            "http://user:secret@127.0.0.1:9/",
            "default_tenant",
            "default_database",
            Some("tok-123"),
            Duration::from_millis(200),
            Duration::from_millis(300),
        )
        .unwrap();
        assert_eq!(http.url(), "http://127.0.0.1:9");
        let err = http.get("heartbeat", "/x").unwrap_err().to_string();
        assert!(
            err.starts_with("chroma server http://127.0.0.1:9: heartbeat: "),
            "{err}"
        );
        assert!(err.contains("gave up after"), "{err}");
        assert!(!err.contains("secret") && !err.contains("tok-123"), "{err}");
        assert!(format!("{http:?}").contains("127.0.0.1:9"));
        assert!(!format!("{http:?}").contains("tok-123"));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("default_tenant"), "default_tenant");
    }
}
