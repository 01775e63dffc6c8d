//! Capturing X's API responses from a page's Network domain (docs/design/x-scraper.md §2.7).
//!
//! Organization:
//! - [`CaptureState`] is the pure state machine: it is fed `Net` events (in whatever order the
//!   four event streams deliver them) and says which bodies to fetch and when a step is over.
//!   It is unit-tested with synthetic events below.
//! - [`Recorder`] is the per-page task that drains `requestWillBeSent`, `responseReceived`,
//!   `loadingFinished` and `loadingFailed` for the page's whole life
//!   (the streams are unbounded: an undrained one grows forever), fetches matching bodies with
//!   `Network.getResponseBody`, and wakes the step waiting in `PageLease`.
//!
//! Matching: URLs containing `/i/api/graphql/`, plus any other `/i/api/` (or `api.x.com`)
//! response with status >= 400 (its error body speaks about the account). Scoping: events whose
//! loader id differs from the current navigation's are dropped; until `Page.navigate` returns
//! the loader id everything is kept and pruned when it becomes known (the page's fetches start
//! before the navigation command answers, which waits for the `load` event).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::network::{
    EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent, EventResponseReceived,
    GetResponseBodyParams, RequestId,
};
use chromiumoxide::error::CdpError;
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// What a step waits for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// GraphQL operation names (`UserTweets`, `UserByScreenName`, ...) the step must see.
    pub operations: Vec<String>,
    /// How many completed responses each operation needs (0: none required).
    pub min_new: usize,
}

/// One captured HTTP response of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedResponse {
    pub url: String,
    pub status: u16,
    /// Header names as the server sent them (Chromium keeps their case).
    pub headers: Vec<(String, String)>,
    /// The body as text; `""` when it could not be fetched or exceeded `max_body_bytes`.
    pub body: String,
}

/// What one step (`open` or `scroll_more`) produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    /// The main frame's URL when the step ended (after redirects: a `/login` here means the
    /// session was refused).
    pub url: String,
    /// `page.content()` when asked for.
    pub html: Option<String>,
    /// Matching responses, in the order they completed.
    pub responses: Vec<CapturedResponse>,
    /// Wall-clock milliseconds since the epoch when the step ended.
    pub captured_at_ms: i64,
    /// The step hit `step_timeout`; `responses` holds whatever arrived.
    pub timed_out: bool,
    /// `scroll_more` saw no request start after all its nudges.
    pub end_of_timeline: bool,
}

/// The GraphQL operation of an X API URL: the path segment after `/i/api/graphql/<queryId>/`.
pub fn operation(url: &str) -> Option<&str> {
    let rest = &url[url.find("/i/api/graphql/")? + "/i/api/graphql/".len()..];
    let rest = &rest[rest.find('/')? + 1..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let op = &rest[..end];
    (!op.is_empty()).then_some(op)
}

/// Whether a main-frame URL is one of X's login or lock pages (a step ends there at once).
pub fn is_login_url(url: &str) -> bool {
    let path = url
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]))
        .unwrap_or(url);
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let path = path.trim_end_matches('/');
    path == "/login" || path == "/i/flow/login" || path.starts_with("/account/access")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A GraphQL call: always captured.
    Graphql,
    /// Another X API call: captured only when it failed (status >= 400).
    Api,
}

fn classify(url: &str) -> Option<Kind> {
    if url.contains("/i/api/graphql/") {
        Some(Kind::Graphql)
    } else if url.contains("/i/api/") || url.starts_with("https://api.x.com/") {
        Some(Kind::Api)
    } else {
        None
    }
}

/// A network event, reduced to what the capture needs (ids and loader ids as strings).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Net {
    Sent {
        id: String,
        loader: String,
        url: String,
    },
    Response {
        id: String,
        loader: String,
        url: String,
        status: u16,
        headers: Vec<(String, String)>,
    },
    Finished {
        id: String,
    },
    Failed {
        id: String,
    },
    /// The answer to our `getResponseBody` (empty when it failed).
    Body {
        id: String,
        body: String,
    },
}

#[derive(Debug)]
struct Meta {
    url: String,
    status: u16,
    headers: Vec<(String, String)>,
}

#[derive(Debug)]
struct Req {
    loader: String,
    kind: Kind,
    meta: Option<Meta>,
    body_requested: bool,
}

/// The state of one page's capture (see the module docs).
#[derive(Debug)]
pub(crate) struct CaptureState {
    /// The current navigation's loader id; `None` until `Page.navigate` answered.
    loader: Option<String>,
    /// Matching requests not yet completed (the "in flight" set of the step rule).
    reqs: HashMap<String, Req>,
    /// `loadingFinished` seen before `responseReceived` (separate streams may reorder).
    finished_early: HashSet<String>,
    /// `loadingFailed` seen before `requestWillBeSent`.
    failed_early: HashSet<String>,
    /// Completed responses of this step, with their loader ids, in completion order.
    done: Vec<(String, CapturedResponse)>,
    /// Matching requests started since the step began.
    started: usize,
    last_activity: Instant,
}

/// Ids remembered for reordering are bounded: a page that loads thousands of images between
/// navigations must not grow them forever.
const EARLY_CAP: usize = 4096;

impl CaptureState {
    pub(crate) fn new(now: Instant) -> Self {
        CaptureState {
            loader: None,
            reqs: HashMap::new(),
            finished_early: HashSet::new(),
            failed_early: HashSet::new(),
            done: Vec::new(),
            started: 0,
            last_activity: now,
        }
    }

    /// A navigation is about to start: forget everything; the loader is unknown until
    /// [`CaptureState::set_loader`].
    pub(crate) fn reset(&mut self, now: Instant) {
        *self = CaptureState::new(now);
    }

    /// The navigation's loader id is known: drop what belongs to another document.
    pub(crate) fn set_loader(&mut self, loader: &str) {
        self.reqs.retain(|_, r| r.loader == loader);
        self.done.retain(|(l, _)| l == loader);
        self.loader = Some(loader.to_string());
    }

    /// A new step on the same document (a scroll). Responses returned by earlier steps were
    /// taken with [`CaptureState::take_done`]; what is still in `done` completed between two
    /// steps (X's app fetches ahead while the runner paces) and belongs to this step — never
    /// dropped.
    pub(crate) fn begin_step(&mut self, now: Instant) {
        self.started = 0;
        self.last_activity = now;
    }

    fn accepts(&self, loader: &str) -> bool {
        self.loader.as_deref().is_none_or(|l| l == loader)
    }

    fn remember(set: &mut HashSet<String>, id: String) {
        if set.len() >= EARLY_CAP {
            set.clear();
        }
        set.insert(id);
    }

    /// Feeds one event; returns the id of a request whose body must now be fetched.
    pub(crate) fn on_event(&mut self, ev: Net, now: Instant) -> Option<String> {
        match ev {
            Net::Sent { id, loader, url } => {
                let kind = classify(&url)?;
                if !self.accepts(&loader) || self.failed_early.remove(&id) {
                    return None;
                }
                self.last_activity = now;
                if let Some(r) = self.reqs.get_mut(&id) {
                    // A redirect of the same request, or responseReceived came first.
                    r.kind = kind;
                    return None;
                }
                self.started += 1;
                self.reqs.insert(
                    id,
                    Req {
                        loader,
                        kind,
                        meta: None,
                        body_requested: false,
                    },
                );
                None
            }
            Net::Response {
                id,
                loader,
                url,
                status,
                headers,
            } => {
                let finished = self.finished_early.remove(&id);
                let kind = match self.reqs.get(&id) {
                    Some(r) => r.kind,
                    None => {
                        let kind = classify(&url)?;
                        if !self.accepts(&loader) {
                            return None;
                        }
                        // requestWillBeSent has not been seen yet: count the start now.
                        self.started += 1;
                        self.reqs.insert(
                            id.clone(),
                            Req {
                                loader,
                                kind,
                                meta: None,
                                body_requested: false,
                            },
                        );
                        kind
                    }
                };
                self.last_activity = now;
                if kind == Kind::Api && status < 400 {
                    // A successful non-GraphQL call says nothing about the account.
                    self.reqs.remove(&id);
                    return None;
                }
                let r = self.reqs.get_mut(&id)?;
                r.meta = Some(Meta {
                    url,
                    status,
                    headers,
                });
                if finished && !r.body_requested {
                    r.body_requested = true;
                    return Some(id);
                }
                None
            }
            Net::Finished { id } => {
                let Some(r) = self.reqs.get_mut(&id) else {
                    Self::remember(&mut self.finished_early, id);
                    return None;
                };
                self.last_activity = now;
                if r.meta.is_some() && !r.body_requested {
                    r.body_requested = true;
                    return Some(id);
                }
                if r.meta.is_none() {
                    Self::remember(&mut self.finished_early, id);
                }
                None
            }
            Net::Failed { id } => {
                let Some(r) = self.reqs.remove(&id) else {
                    Self::remember(&mut self.failed_early, id);
                    return None;
                };
                self.last_activity = now;
                if let Some(m) = r.meta {
                    // The status and headers arrived; the body did not. Still worth returning.
                    self.complete(r.loader, m, String::new());
                }
                None
            }
            Net::Body { id, body } => {
                let r = self.reqs.remove(&id)?;
                self.last_activity = now;
                if let Some(m) = r.meta {
                    self.complete(r.loader, m, body);
                }
                None
            }
        }
    }

    fn complete(&mut self, loader: String, m: Meta, body: String) {
        self.done.push((
            loader,
            CapturedResponse {
                url: m.url,
                status: m.status,
                headers: m.headers,
                body,
            },
        ));
    }

    /// Matching requests started in this step.
    pub(crate) fn started(&self) -> usize {
        self.started
    }

    /// Whether the step may end: the expected operations arrived, nothing matching is in
    /// flight, and nothing matching happened for `settle`.
    pub(crate) fn settled(&self, expect: &Expect, settle: Duration, now: Instant) -> bool {
        self.reqs.is_empty()
            && now.saturating_duration_since(self.last_activity) >= settle
            && expect.operations.iter().all(|op| {
                self.done
                    .iter()
                    .filter(|(_, r)| operation(&r.url) == Some(op.as_str()))
                    .count()
                    >= expect.min_new
            })
    }

    /// The step's completed responses (and forgets them).
    pub(crate) fn take_done(&mut self) -> Vec<CapturedResponse> {
        std::mem::take(&mut self.done)
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }
}

/// The per-page listener task and what the page's lease shares with it.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) state: Arc<Mutex<CaptureState>>,
    /// Woken after every event the state saw, and on a renderer crash.
    pub(crate) changed: Arc<Notify>,
    /// Set (by the browser's crash watcher, `launch.rs`) when the renderer crashed: the page
    /// must be replaced.
    pub(crate) crashed: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    /// Subscribes to the page's events and starts the task. Called before the page's first
    /// navigation so no response of the first document is missed.
    pub(crate) async fn start(
        page: &Page,
        max_body_bytes: usize,
        body_timeout: Duration,
    ) -> Result<Recorder, CdpError> {
        let mut sent = page.event_listener::<EventRequestWillBeSent>().await?;
        let mut response = page.event_listener::<EventResponseReceived>().await?;
        let mut finished = page.event_listener::<EventLoadingFinished>().await?;
        let mut failed = page.event_listener::<EventLoadingFailed>().await?;

        let state = Arc::new(Mutex::new(CaptureState::new(Instant::now())));
        let changed = Arc::new(Notify::new());
        let crashed = Arc::new(AtomicBool::new(false));
        let (body_tx, mut body_rx) = tokio::sync::mpsc::unbounded_channel::<Net>();

        let task = {
            let (state, changed, page) = (state.clone(), changed.clone(), page.clone());
            tokio::spawn(async move {
                loop {
                    // `biased`: the handler pushes an event only after the events that precede
                    // it in the protocol, so polling the streams in protocol order delivers
                    // them in order; CaptureState copes with reordering anyway.
                    let ev = tokio::select! {
                        biased;
                        Some(e) = sent.next() => Net::Sent {
                            id: e.request_id.inner().clone(),
                            loader: e.loader_id.inner().clone(),
                            url: e.request.url.clone(),
                        },
                        Some(e) = response.next() => Net::Response {
                            id: e.request_id.inner().clone(),
                            loader: e.loader_id.inner().clone(),
                            url: e.response.url.clone(),
                            status: u16::try_from(e.response.status).unwrap_or(0),
                            headers: headers_of(e.response.headers.inner()),
                        },
                        Some(e) = finished.next() => Net::Finished { id: e.request_id.inner().clone() },
                        Some(e) = failed.next() => Net::Failed { id: e.request_id.inner().clone() },
                        Some(b) = body_rx.recv() => b,
                        else => break,
                    };
                    let fetch = {
                        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                        s.on_event(ev, Instant::now())
                    };
                    if let Some(id) = fetch {
                        tokio::spawn(fetch_body(
                            page.clone(),
                            id,
                            max_body_bytes,
                            body_timeout,
                            body_tx.clone(),
                        ));
                    }
                    changed.notify_waiters();
                }
            })
        };
        Ok(Recorder {
            state,
            changed,
            crashed,
            task,
        })
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut CaptureState) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Fetches one body and reports it back to the recorder (empty when it cannot be had: evicted,
/// page gone, too large), so the request never stays "in flight" forever.
async fn fetch_body(
    page: Page,
    id: String,
    max_body_bytes: usize,
    timeout: Duration,
    tx: tokio::sync::mpsc::UnboundedSender<Net>,
) {
    let res = tokio::time::timeout(
        timeout,
        page.execute(GetResponseBodyParams::new(RequestId::new(id.clone()))),
    )
    .await;
    let body = match res {
        Ok(Ok(r)) => {
            let r = r.result;
            let text = if r.base64_encoded {
                match base64::engine::general_purpose::STANDARD.decode(r.body.as_bytes()) {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(e) => {
                        tracing::warn!(error = %e, "response body is not valid base64");
                        String::new()
                    }
                }
            } else {
                r.body
            };
            if text.len() > max_body_bytes {
                tracing::warn!(
                    bytes = text.len(),
                    max_body_bytes,
                    "response body larger than max_body_bytes; dropped"
                );
                String::new()
            } else {
                text
            }
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "response body unavailable");
            String::new()
        }
        Err(_) => {
            tracing::debug!("response body fetch timed out");
            String::new()
        }
    };
    let _ = tx.send(Net::Body { id, body });
}

fn headers_of(v: &serde_json::Value) -> Vec<(String, String)> {
    let Some(obj) = v.as_object() else {
        return Vec::new();
    };
    obj.iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GQL: &str = "http://127.0.0.1:1/i/api/graphql/Q1/UserTweets?variables=%7B%7D";

    fn sent(id: &str, loader: &str, url: &str) -> Net {
        Net::Sent {
            id: id.into(),
            loader: loader.into(),
            url: url.into(),
        }
    }
    fn resp(id: &str, loader: &str, url: &str, status: u16) -> Net {
        Net::Response {
            id: id.into(),
            loader: loader.into(),
            url: url.into(),
            status,
            headers: vec![("x-rate-limit-remaining".into(), "9".into())],
        }
    }
    fn fin(id: &str) -> Net {
        Net::Finished { id: id.into() }
    }
    fn body(id: &str, b: &str) -> Net {
        Net::Body {
            id: id.into(),
            body: b.into(),
        }
    }
    fn expect(ops: &[&str], n: usize) -> Expect {
        Expect {
            operations: ops.iter().map(|s| s.to_string()).collect(),
            min_new: n,
        }
    }

    #[test]
    fn operation_is_the_segment_after_the_query_id() {
        assert_eq!(operation(GQL), Some("UserTweets"));
        assert_eq!(
            operation("https://x.com/i/api/graphql/abc-DEF/UserByScreenName"),
            Some("UserByScreenName")
        );
        assert_eq!(operation("https://x.com/i/api/graphql/abc/"), None);
        assert_eq!(operation("https://x.com/i/api/1.1/foo.json"), None);
    }

    #[test]
    fn login_and_lock_urls_are_recognised_by_path() {
        assert!(is_login_url("http://127.0.0.1:9/login"));
        assert!(is_login_url(
            "https://x.com/i/flow/login?redirect_after_login=%2Fa"
        ));
        assert!(is_login_url("https://x.com/account/access"));
        assert!(!is_login_url("https://x.com/loginhelp"));
        assert!(!is_login_url("https://x.com/someone"));
    }

    #[test]
    fn in_order_events_fetch_the_body_once_finished_and_complete_with_it() {
        let t = Instant::now();
        let mut s = CaptureState::new(t);
        s.set_loader("L1");
        assert_eq!(s.on_event(sent("1", "L1", GQL), t), None);
        assert_eq!(s.on_event(resp("1", "L1", GQL, 200), t), None);
        assert!(!s.settled(&expect(&[], 0), Duration::ZERO, t), "in flight");
        assert_eq!(s.on_event(fin("1"), t), Some("1".to_string()));
        assert!(
            !s.settled(&expect(&[], 0), Duration::ZERO, t),
            "body pending"
        );
        s.on_event(body("1", "{}"), t);
        assert!(s.settled(&expect(&["UserTweets"], 1), Duration::ZERO, t));
        let done = s.take_done();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].status, 200);
        assert_eq!(done[0].body, "{}");
        assert_eq!(done[0].headers[0].0, "x-rate-limit-remaining");
    }

    #[test]
    fn loading_finished_before_response_received_still_fetches_the_body() {
        let t = Instant::now();
        let mut s = CaptureState::new(t);
        s.on_event(sent("1", "L1", GQL), t);
        assert_eq!(s.on_event(fin("1"), t), None);
        assert_eq!(s.on_event(resp("1", "L1", GQL, 200), t), Some("1".into()));
        // Even with requestWillBeSent arriving last of all.
        let mut s = CaptureState::new(t);
        assert_eq!(s.on_event(fin("2"), t), None);
        assert_eq!(s.on_event(resp("2", "L1", GQL, 200), t), Some("2".into()));
        s.on_event(sent("2", "L1", GQL), t);
        assert_eq!(s.started(), 1, "one request, counted once");
        s.on_event(body("2", "b"), t);
        assert_eq!(s.take_done().len(), 1);
    }

    #[test]
    fn responses_of_another_document_are_dropped_once_the_loader_is_known() {
        let t = Instant::now();
        let mut s = CaptureState::new(t);
        s.on_event(sent("old", "L0", GQL), t);
        s.on_event(sent("new", "L1", GQL), t);
        s.set_loader("L1");
        // A late answer of the previous page.
        assert_eq!(s.on_event(resp("old", "L0", GQL, 200), t), None);
        assert_eq!(s.on_event(fin("old"), t), None);
        s.on_event(sent("late", "L0", GQL), t);
        s.on_event(resp("new", "L1", GQL, 200), t);
        assert_eq!(s.on_event(fin("new"), t), Some("new".into()));
        s.on_event(body("new", "n"), t);
        assert!(s.settled(&expect(&["UserTweets"], 1), Duration::ZERO, t));
        let done = s.take_done();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].body, "n");
    }

    #[test]
    fn other_api_calls_are_kept_only_when_they_failed() {
        let t = Instant::now();
        let mut s = CaptureState::new(t);
        let ok = "http://h/i/api/1.1/jot/client_event.json";
        s.on_event(sent("a", "L", ok), t);
        s.on_event(resp("a", "L", ok, 200), t);
        assert_eq!(s.on_event(fin("a"), t), None);
        let bad = "http://h/i/api/2/badge_count.json";
        s.on_event(sent("b", "L", bad), t);
        s.on_event(resp("b", "L", bad, 403), t);
        assert_eq!(s.on_event(fin("b"), t), Some("b".into()));
        s.on_event(body("b", r#"{"errors":[{"code":326}]}"#), t);
        let done = s.take_done();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].status, 403);
        // Images and documents are never tracked.
        s.on_event(sent("i", "L", "http://h/pic.png"), t);
        assert!(s.settled(&expect(&[], 0), Duration::ZERO, t));
    }

    #[test]
    fn a_failed_load_with_a_response_is_returned_without_body_and_without_one_is_dropped() {
        let t = Instant::now();
        let mut s = CaptureState::new(t);
        s.on_event(sent("1", "L", GQL), t);
        s.on_event(resp("1", "L", GQL, 429), t);
        s.on_event(Net::Failed { id: "1".into() }, t);
        s.on_event(sent("2", "L", GQL), t);
        s.on_event(Net::Failed { id: "2".into() }, t);
        // loadingFailed before requestWillBeSent: the request never becomes in flight.
        s.on_event(Net::Failed { id: "3".into() }, t);
        s.on_event(sent("3", "L", GQL), t);
        assert!(s.settled(&expect(&[], 0), Duration::ZERO, t));
        let done = s.take_done();
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].status, done[0].body.as_str()), (429, ""));
    }

    #[test]
    fn settling_needs_the_expected_operations_and_quiet_time() {
        let t = Instant::now();
        let settle = Duration::from_millis(300);
        let mut s = CaptureState::new(t);
        assert!(!s.settled(&expect(&["UserTweets"], 1), Duration::ZERO, t));
        s.on_event(sent("1", "L", GQL), t);
        s.on_event(resp("1", "L", GQL, 200), t);
        s.on_event(fin("1"), t);
        s.on_event(body("1", "x"), t);
        assert!(
            !s.settled(&expect(&["UserTweets"], 1), settle, t),
            "not quiet yet"
        );
        let later = t + settle;
        assert!(s.settled(&expect(&["UserTweets"], 1), settle, later));
        assert!(!s.settled(&expect(&["UserTweets"], 2), settle, later));
        assert!(!s.settled(&expect(&["UserByScreenName"], 1), settle, later));
        // A scroll step starts afresh on the same document once the page took its responses.
        assert_eq!(s.take_done().len(), 1);
        s.begin_step(later);
        assert_eq!(s.started(), 0);
        assert!(!s.settled(&expect(&["UserTweets"], 1), settle, later + settle));
    }

    #[test]
    fn a_response_completed_between_steps_belongs_to_the_next_step() {
        let t = Instant::now();
        let mut s = CaptureState::new(t);
        s.on_event(sent("1", "L", GQL), t);
        s.on_event(resp("1", "L", GQL, 200), t);
        s.on_event(fin("1"), t);
        s.on_event(body("1", "page 1"), t);
        assert_eq!(s.take_done().len(), 1, "step 1 returns page 1");
        // X's app fetches ahead while the runner paces: page 2 completes between the steps.
        s.on_event(sent("2", "L", GQL), t);
        s.on_event(resp("2", "L", GQL, 200), t);
        s.on_event(fin("2"), t);
        s.on_event(body("2", "page 2"), t);
        s.begin_step(t);
        let done = s.take_done();
        assert_eq!(done.len(), 1, "page 2 is not dropped by the next step");
        assert_eq!(done[0].body, "page 2");
    }

    #[test]
    fn a_redirect_of_the_same_request_is_one_request() {
        let t = Instant::now();
        let mut s = CaptureState::new(t);
        s.on_event(sent("1", "L", GQL), t);
        s.on_event(sent("1", "L", GQL), t);
        assert_eq!(s.started(), 1);
    }

    #[test]
    fn headers_keep_their_names_and_stringify_non_strings() {
        let h = headers_of(&serde_json::json!({"X-Mixed-Case": "a", "n": 1}));
        assert!(h.contains(&("X-Mixed-Case".to_string(), "a".to_string())));
        assert!(h.contains(&("n".to_string(), "1".to_string())));
    }
}
