//! The `openai` embedder against a stand-in for an OpenAI-compatible server (the real one
//! is unreachable from tests): a small HTTP/1.1 server on a free loopback port that
//! answers `POST /v1/embeddings` with OpenAI's JSON, records every request (its
//! Authorization header and batch size), and plays a script of failures first: 429 with
//! Retry-After, 500, a dropped connection, a wrong dimension, a 401.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use impressox_rag::embed::retry::Backoff;
use impressox_rag::{EmbedError, Embedder, OpenAiConfig, OpenAiEmbedder};

/// What the stand-in does with the next request.
#[derive(Clone, Debug)]
enum Step {
    /// An error status, with an optional Retry-After, and OpenAI's error JSON.
    Status(u16, Option<&'static str>),
    /// Close the connection without answering.
    Drop,
    /// Answer with vectors of this many dimensions instead of the server's own.
    Dimension(usize),
    /// Answer with the given body (status 200).
    Body(&'static str),
    /// Answer normally.
    Ok,
}

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Option<String>,
    model: String,
    inputs: Vec<String>,
}

struct StandIn {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// The deterministic vector the stand-in gives a text (not unit length, so the client's
/// normalising shows).
fn vector_of(text: &str, dim: usize) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..dim)
        .map(|i| {
            let x = h.rotate_left(i as u32 * 7) ^ (i as u64 * 0x9e37_79b9);
            ((x % 2000) as f32 - 1000.0) / 10.0
        })
        .collect()
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

impl StandIn {
    fn start(dim: usize, script: Vec<Step>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (script, seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (s, r) = (s.clone(), r.clone());
                std::thread::spawn(move || serve(conn, dim, &s, &r));
            }
        });
        Self { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// One connection: requests until the client closes it (reqwest keeps connections alive).
fn serve(conn: TcpStream, dim: usize, script: &Mutex<VecDeque<Step>>, seen: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let (mut length, mut authorization) = (0usize, None);
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let inputs: Vec<String> = req["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        assert_eq!(req["encoding_format"], "float");
        seen.lock().unwrap().push(Seen {
            path,
            authorization,
            model: req["model"].as_str().unwrap().to_string(),
            inputs: inputs.clone(),
        });
        let step = script.lock().unwrap().pop_front();
        let (status, extra, body) = match step {
            Some(Step::Drop) => return,
            Some(Step::Status(code, retry_after)) => (
                code,
                retry_after
                    .map(|r| format!("Retry-After: {r}\r\n"))
                    .unwrap_or_default(),
                format!(
                    r#"{{"error":{{"message":"stand-in says {code}","type":"server_error","code":null}}}}"#
                ),
            ),
            Some(Step::Body(b)) => (200, String::new(), b.to_string()),
            other => {
                let d = match other {
                    Some(Step::Dimension(d)) => d,
                    _ => dim,
                };
                // Reversed, as a server that finishes out of order may answer.
                let data: Vec<serde_json::Value> = inputs
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, t)| {
                        serde_json::json!({"object": "embedding", "index": i, "embedding": vector_of(t, d)})
                    })
                    .collect();
                let b = serde_json::json!({
                    "object": "list",
                    "data": data,
                    "model": req["model"],
                    "usage": {"prompt_tokens": inputs.len(), "total_tokens": inputs.len()},
                });
                (200, String::new(), b.to_string())
            }
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n",
            body.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(body.as_bytes()).is_err() {
            return;
        }
    }
}

fn config(server: &StandIn) -> OpenAiConfig {
    let mut c = OpenAiConfig::new(&server.url, "text-embedding-test");
    c.api_key = Some("sk-test-secret-key".into());
    c.timeout = Duration::from_secs(5);
    c.backoff = Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_secs(2),
    };
    c
}

fn texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("tweet number {i} about $BTC"))
        .collect()
}

#[test]
fn batches_in_input_order_with_the_key_and_normalised_vectors() {
    let server = StandIn::start(24, vec![]);
    let mut c = config(&server);
    c.batch_size = 64;
    let e = OpenAiEmbedder::new(c).unwrap();
    assert_eq!(e.endpoint(), format!("{}/v1/embeddings", server.url));
    assert_eq!(e.model_id(), "openai/text-embedding-test");
    assert_eq!(e.dimension(), 0, "not known before the first answer");
    let texts = texts(150);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = e.embed(&refs).unwrap();
    assert_eq!(e.dimension(), 24, "learnt from the first answer");
    assert_eq!(got.len(), 150);
    for (t, v) in texts.iter().zip(&got) {
        let want = unit(vector_of(t, 24));
        for (a, b) in v.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{t}");
        }
    }
    let seen = server.seen();
    let sizes: Vec<usize> = seen.iter().map(|s| s.inputs.len()).collect();
    assert_eq!(sizes, [64, 64, 22]);
    let sent: Vec<&String> = seen.iter().flat_map(|s| &s.inputs).collect();
    assert_eq!(
        sent,
        texts.iter().collect::<Vec<_>>(),
        "each text once, in order"
    );
    for s in &seen {
        assert_eq!(s.path, "/v1/embeddings");
        assert_eq!(s.model, "text-embedding-test");
        assert_eq!(
            s.authorization.as_deref(),
            Some("Bearer sk-test-secret-key")
        );
    }
    assert!(e.embed(&[]).unwrap().is_empty());
    assert_eq!(server.seen().len(), 3, "no request for no text");
}

#[test]
fn a_base_url_ending_in_v1_and_no_key() {
    let server = StandIn::start(8, vec![]);
    let mut c = config(&server);
    c.base_url = format!("{}/v1/", server.url);
    c.api_key = None;
    let e = OpenAiEmbedder::new(c).unwrap();
    e.embed(&["a"]).unwrap();
    let seen = server.seen();
    assert_eq!(seen[0].path, "/v1/embeddings");
    assert_eq!(seen[0].authorization, None);
}

#[test]
fn a_429_waits_for_retry_after_then_succeeds() {
    let server = StandIn::start(8, vec![Step::Status(429, Some("1"))]);
    let e = OpenAiEmbedder::new(config(&server)).unwrap();
    let started = Instant::now();
    let got = e.embed(&["a", "b"]).unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(got.len(), 2);
    assert_eq!(server.seen().len(), 2);
}

#[test]
fn a_500_and_a_dropped_connection_are_retried() {
    let server = StandIn::start(
        8,
        vec![Step::Status(500, None), Step::Drop, Step::Status(503, None)],
    );
    let e = OpenAiEmbedder::new(config(&server)).unwrap();
    let got = e.embed(&["a", "b", "c"]).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(server.seen().len(), 4, "three failures, then the answer");
}

#[test]
fn a_lasting_failure_gives_up_after_max_retries_naming_endpoint_and_status() {
    let server = StandIn::start(8, vec![Step::Status(502, None); 10]);
    let mut c = config(&server);
    c.max_retries = 3;
    let e = OpenAiEmbedder::new(c).unwrap();
    let err = e.embed(&["a"]).unwrap_err();
    assert!(
        matches!(err, EmbedError::GaveUp { tries: 4, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("{}/v1/embeddings", server.url)),
        "{text}"
    );
    assert!(text.contains("HTTP 502"), "{text}");
    assert!(text.contains("stand-in says 502"), "{text}");
    assert_eq!(server.seen().len(), 4);
}

#[test]
fn a_401_is_not_retried_and_the_key_never_shows() {
    let server = StandIn::start(8, vec![Step::Status(401, None)]);
    let e = OpenAiEmbedder::new(config(&server)).unwrap();
    let err = e.embed(&["a"]).unwrap_err();
    assert!(
        matches!(err, EmbedError::Status { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(server.seen().len(), 1, "not retried");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("sk-test-secret-key"), "{text}");
    let config_debug = format!("{:?}", config(&server));
    assert!(
        !config_debug.contains("sk-test-secret-key"),
        "{config_debug}"
    );
}

#[test]
fn a_server_echoing_the_key_has_it_masked() {
    let server = StandIn::start(
        8,
        vec![Step::Body(
            r#"{"error":{"message":"Incorrect API key provided: sk-test-secret-key"}}"#,
        )],
    );
    let e = OpenAiEmbedder::new(config(&server)).unwrap();
    let err = e.embed(&["a"]).unwrap_err().to_string();
    // A 200 without `data` is not an embeddings list; serde's message is the cause.
    assert!(!err.contains("sk-test-secret-key"), "{err}");
    assert!(err.contains("not an embeddings list"), "{err}");
}

#[test]
fn a_wrong_dimension_is_refused_configured_or_learnt() {
    // Configured 8, the server answers 16.
    let server = StandIn::start(16, vec![]);
    let mut c = config(&server);
    c.dimension = Some(8);
    let e = OpenAiEmbedder::new(c).unwrap();
    assert_eq!(e.dimension(), 8);
    let err = e.embed(&["a"]).unwrap_err();
    assert!(
        matches!(
            err,
            EmbedError::Dimension {
                expected: 8,
                got: 16,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("text-embedding-test"), "{err}");

    // Learnt 8 from the first good answer (a broken one teaches nothing); a later answer
    // of 12 is refused.
    let server = StandIn::start(
        8,
        vec![
            Step::Body(r#"{"data":"nope"}"#),
            Step::Ok,
            Step::Dimension(12),
        ],
    );
    let e = OpenAiEmbedder::new(config(&server)).unwrap();
    assert!(e.embed(&["a"]).is_err());
    assert_eq!(e.dimension(), 0, "a broken answer teaches nothing");
    e.embed(&["a"]).unwrap();
    assert_eq!(e.dimension(), 8);
    let err = e.embed(&["a"]).unwrap_err();
    assert!(
        matches!(
            err,
            EmbedError::Dimension {
                expected: 8,
                got: 12,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn ensure_dimension_asks_once() {
    let server = StandIn::start(32, vec![]);
    let e = OpenAiEmbedder::new(config(&server)).unwrap();
    assert_eq!(e.ensure_dimension().unwrap(), 32);
    assert_eq!(e.ensure_dimension().unwrap(), 32);
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn answers_that_do_not_cover_the_batch_are_refused() {
    let server = StandIn::start(
        4,
        vec![
            Step::Body(r#"{"data":[{"index":0,"embedding":[1,0,0,0]}]}"#),
            Step::Body(
                r#"{"data":[{"index":0,"embedding":[1,0,0,0]},{"index":0,"embedding":[0,1,0,0]}]}"#,
            ),
            Step::Body(
                r#"{"data":[{"index":0,"embedding":[1,0,0,0]},{"index":5,"embedding":[0,1,0,0]}]}"#,
            ),
        ],
    );
    let e = OpenAiEmbedder::new(config(&server)).unwrap();
    let a = e.embed(&["a", "b"]).unwrap_err().to_string();
    assert!(a.contains("1 vectors for 2 texts"), "{a}");
    let b = e.embed(&["a", "b"]).unwrap_err().to_string();
    assert!(b.contains("index 0 twice"), "{b}");
    let c = e.embed(&["a", "b"]).unwrap_err().to_string();
    assert!(c.contains("index 5"), "{c}");
}

#[test]
fn bad_configs_are_refused_up_front() {
    for (base, model, batch) in [
        ("not a url", "m", 1),
        ("ftp://host", "m", 1),
        ("http://127.0.0.1:1", " ", 1),
        ("http://127.0.0.1:1", "m", 0),
    ] {
        let mut c = OpenAiConfig::new(base, model);
        c.batch_size = batch;
        assert!(OpenAiEmbedder::new(c).is_err(), "{base} {model:?} {batch}");
    }
}

#[test]
fn an_unreachable_endpoint_is_retried_then_named() {
    // A port nothing listens on (bound, then closed).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = OpenAiConfig::new(format!("http://127.0.0.1:{port}"), "m");
    c.max_retries = 2;
    c.backoff = Backoff {
        base: Duration::from_millis(10),
        max: Duration::from_millis(50),
    };
    let e = OpenAiEmbedder::new(c).unwrap();
    let err = e.embed(&["a"]).unwrap_err();
    assert!(
        matches!(err, EmbedError::GaveUp { tries: 3, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{port}/v1/embeddings")),
        "{err}"
    );
}

#[test]
fn an_index_learns_the_dimension_before_recording_the_collection() {
    use impressox_rag::{ChunkText, DocumentChunks, Filter, Mode, Query, RagIndex};
    let server = StandIn::start(16, vec![]);
    let e = OpenAiEmbedder::new(config(&server)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let index = RagIndex::open(dir.path()).unwrap();
    let doc = |id: &str, text: &str| DocumentChunks {
        document_id: id.into(),
        version: "1".into(),
        source: "tweets".into(),
        url: None,
        time_ms: None,
        chunks: vec![ChunkText {
            text: text.into(),
            start: 0,
            end: text.chars().count() as u32,
            metadata: vec![],
        }],
    };
    index
        .embed_and_upsert(
            "tweets",
            &e,
            vec![doc("1", "$IREN data center"), doc("2", "gm")],
        )
        .unwrap();
    let info = index.vectors().collection("tweets").unwrap().unwrap();
    assert_eq!(
        (info.model_id.as_str(), info.dimension),
        ("openai/text-embedding-test", 16)
    );

    // A fresh embedder (a restarted host) learns it again before its first query.
    let again = OpenAiEmbedder::new(config(&server)).unwrap();
    let hits = index
        .query(
            &again,
            &Query {
                collection: "tweets".into(),
                text: "gm".into(),
                k: 1,
                mode: Mode::Vector,
                filter: Filter::default(),
                min_score: None,
            },
        )
        .unwrap();
    assert_eq!(
        hits[0].chunk.document_id, "2",
        "the stand-in's vector of the same text"
    );
}
