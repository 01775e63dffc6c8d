//! The `openai` embedder: any server that speaks OpenAI's `POST /v1/embeddings` (OpenAI
//! itself, Ollama, Hugging Face TEI, vLLM).
//!
//! - Texts go in batches of `batch_size`, one request after another (a burst of parallel
//!   requests is what rate limits punish).
//! - A batch that meets a 429, 408, 5xx, a timeout or a broken connection is retried up to
//!   `max_retries` times with jittered exponential backoff, honouring `Retry-After`
//!   ([`super::retry`]); any other status fails at once (a bad key stays bad).
//! - Vectors are put in the order of their `index` (servers may answer out of order),
//!   checked to cover the batch exactly, checked against the dimension (configured, or
//!   learnt from the first response and held from then on), and L2-normalised.
//! - Errors name the endpoint and the status, never the key (a server's message that
//!   quotes the key has it masked).
//!
//! Why reqwest's blocking client: the [`Embedder`] seam is synchronous and the host calls
//! it from tokio's `spawn_blocking` threads and from the CLI, where a blocking client is
//! the right tool; reqwest (rustls) is already in the workspace, so this adds no second
//! HTTP and TLS stack, only its `blocking` feature. Its client must not be *built* on an
//! async worker thread (it starts its own runtime), so it is built on the first `embed`,
//! which runs on a blocking thread; [`OpenAiEmbedder::new`] may be called anywhere.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use reqwest::blocking::Client;
use serde::Deserialize;

use super::retry::{Backoff, parse_retry_after, retryable_status};
use super::{EmbedError, Embedder, normalise};

/// Texts per request unless configured.
pub const DEFAULT_BATCH_SIZE: usize = 64;
/// Retries per batch unless configured.
pub const DEFAULT_MAX_RETRIES: u32 = 5;
/// One request's time limit unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How to reach the embeddings endpoint.
#[derive(Clone)]
pub struct OpenAiConfig {
    /// The server's root, e.g. `https://api.openai.com` or `http://127.0.0.1:11434`
    /// (a trailing `/v1` is accepted too); requests go to `{base_url}/v1/embeddings`.
    pub base_url: String,
    /// The model name the server knows, e.g. `text-embedding-3-small`, `nomic-embed-text`.
    pub model: String,
    /// Sent as `Authorization: Bearer …` when set (the host reads it from the environment
    /// variable the config names; it is never logged or shown).
    pub api_key: Option<String>,
    /// The vectors' length; when `None`, learnt from the first response. Either way every
    /// response is checked against it. It is not sent to the server.
    pub dimension: Option<usize>,
    /// Texts per request.
    pub batch_size: usize,
    /// Further tries of a batch after a retryable failure.
    pub max_retries: u32,
    /// One request's time limit (connect, send, answer).
    pub timeout: Duration,
    /// The waits between tries.
    pub backoff: Backoff,
}

impl OpenAiConfig {
    /// A config with the defaults: no key, dimension learnt, batches of 64, 5 retries,
    /// 60 s per request.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            dimension: None,
            batch_size: DEFAULT_BATCH_SIZE,
            max_retries: DEFAULT_MAX_RETRIES,
            timeout: DEFAULT_TIMEOUT,
            backoff: Backoff::default(),
        }
    }
}

/// The key is never printed, not even by `{:?}`.
impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("dimension", &self.dimension)
            .field("batch_size", &self.batch_size)
            .field("max_retries", &self.max_retries)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An OpenAI-compatible embeddings endpoint.
pub struct OpenAiEmbedder {
    config: OpenAiConfig,
    endpoint: String,
    model_id: String,
    /// 0 until known.
    dimension: AtomicUsize,
    /// Built on first use (see the module note); cheap to clone (shared pool).
    client: Mutex<Option<Client>>,
}

impl OpenAiEmbedder {
    /// Checks the config; makes no request (the first `embed` does).
    pub fn new(config: OpenAiConfig) -> Result<Self, EmbedError> {
        let err = |message: String| EmbedError::Endpoint {
            endpoint: config.base_url.clone(),
            message,
        };
        let base = config.base_url.trim().trim_end_matches('/');
        let url = reqwest::Url::parse(base).map_err(|e| err(format!("base_url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err(format!(
                "base_url: scheme {} (http or https)",
                url.scheme()
            )));
        }
        if config.model.trim().is_empty() {
            return Err(err("model: empty".into()));
        }
        if config.batch_size == 0 {
            return Err(err("batch_size: 0 (at least 1)".into()));
        }
        if config.dimension == Some(0) {
            return Err(err("dimension: 0".into()));
        }
        let endpoint = if base.ends_with("/v1") {
            format!("{base}/embeddings")
        } else {
            format!("{base}/v1/embeddings")
        };
        Ok(Self {
            model_id: format!("openai/{}", config.model.trim()),
            dimension: AtomicUsize::new(config.dimension.unwrap_or(0)),
            endpoint,
            config,
            client: Mutex::new(None),
        })
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn client(&self) -> Result<Client, EmbedError> {
        let mut slot = self.client.lock();
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let client = Client::builder()
            .timeout(self.config.timeout)
            .build()
            .map_err(|e| self.endpoint_err(format!("HTTP client: {e}")))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    fn endpoint_err(&self, message: String) -> EmbedError {
        EmbedError::Endpoint {
            endpoint: self.endpoint.clone(),
            message: self.scrub(message),
        }
    }

    /// Removes the key from text that came from outside (a server echoing it).
    fn scrub(&self, text: String) -> String {
        match self.config.api_key.as_deref() {
            Some(key) if !key.is_empty() && text.contains(key) => text.replace(key, "***"),
            _ => text,
        }
    }

    /// One batch, with retries.
    fn embed_batch(&self, client: &Client, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = serde_json::json!({
            "model": self.config.model,
            "input": texts,
            "encoding_format": "float",
        });
        let mut attempt = 0u32;
        loop {
            let mut request = client.post(&self.endpoint).json(&body);
            if let Some(key) = self.config.api_key.as_deref().filter(|k| !k.is_empty()) {
                request = request.bearer_auth(key);
            }
            // Each failure says whether it is worth another try and what the server asked.
            let failure = match request.send() {
                Ok(response) if response.status().is_success() => {
                    let bytes = response.bytes().map_err(|e| {
                        self.endpoint_err(format!("reading the response: {}", reqwest_cause(&e)))
                    });
                    match bytes {
                        Ok(bytes) => return self.parse(&bytes, texts.len()),
                        // The body broke off mid-way: the connection's fault, retried.
                        Err(e) => (e, true, None),
                    }
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    let text = response.text().unwrap_or_default();
                    let e = EmbedError::Status {
                        endpoint: self.endpoint.clone(),
                        status,
                        message: self.scrub(server_message(&text)),
                    };
                    (e, retryable_status(status), retry_after)
                }
                Err(e) => (
                    self.endpoint_err(reqwest_cause(&e)),
                    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
                    None,
                ),
            };
            let (error, retryable, retry_after) = failure;
            if !retryable || attempt >= self.config.max_retries {
                return Err(if retryable && self.config.max_retries > 0 {
                    EmbedError::GaveUp {
                        tries: attempt + 1,
                        last: Box::new(error),
                    }
                } else {
                    error
                });
            }
            std::thread::sleep(self.config.backoff.delay(attempt, retry_after));
            attempt += 1;
        }
    }

    /// The vectors of a 200 answer, in input order, checked and normalised.
    fn parse(&self, bytes: &[u8], expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        let response: Response = serde_json::from_slice(bytes).map_err(|e| {
            self.endpoint_err(format!("the response is not an embeddings list: {e}"))
        })?;
        if response.data.len() != expected {
            return Err(self.endpoint_err(format!(
                "{} vectors for {expected} texts",
                response.data.len()
            )));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; expected];
        for item in response.data {
            let slot = out.get_mut(item.index).ok_or_else(|| {
                self.endpoint_err(format!("index {} in a batch of {expected}", item.index))
            })?;
            if slot.is_some() {
                return Err(self.endpoint_err(format!("index {} twice", item.index)));
            }
            let got = item.embedding.len();
            // The first answer fixes the dimension when none was configured; from then on
            // every vector must have it (a model swapped behind the URL is caught here).
            let want =
                match self
                    .dimension
                    .compare_exchange(0, got, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => got,
                    Err(known) => known,
                };
            if got != want || got == 0 {
                return Err(EmbedError::Dimension {
                    model: format!("{} at {}", self.config.model, self.endpoint),
                    expected: want,
                    got,
                });
            }
            let mut v = item.embedding;
            normalise(&mut v);
            *slot = Some(v);
        }
        // Count and uniqueness were checked, so every slot is filled.
        Ok(out.into_iter().map(|v| v.unwrap_or_default()).collect())
    }
}

impl Embedder for OpenAiEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The configured or learnt dimension; 0 until the first response when none was
    /// configured (see [`Embedder::ensure_dimension`]).
    fn dimension(&self) -> usize {
        self.dimension.load(Ordering::Acquire)
    }

    /// Asks the server (one short text) when the dimension is not known yet.
    fn ensure_dimension(&self) -> Result<usize, EmbedError> {
        match self.dimension.load(Ordering::Acquire) {
            0 => Ok(self.embed(&["dimension probe"])?[0].len()),
            d => Ok(d),
        }
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client()?;
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.config.batch_size) {
            out.extend(self.embed_batch(&client, batch)?);
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vec<f32>,
}

/// The useful part of an error body: OpenAI's `{"error": {"message": …}}` (TEI's
/// `{"error": "…"}`) or the start of the text.
fn server_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            e.get("message")
                .and_then(|m| m.as_str())
                .or_else(|| e.as_str())
                .map(str::to_string)
        });
    let text = from_json.unwrap_or_else(|| body.trim().to_string());
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// A reqwest error as its kind and its causes, without the URL (the caller names the
/// endpoint once).
fn reqwest_cause(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the response broke off"
    } else {
        "the request failed"
    }
    .to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
