//! A local stand-in for the Telegram Bot API (docs/design/notify.md §6.1, §7.1), for teloxide
//! to talk to through its configurable `api_url`.
//!
//! It serves `POST /bot<TOKEN>/<method>` as `api.telegram.org` does: the method name is matched
//! case-insensitively (teloxide sends the payload's Rust name, `SendMessage`), parameters come as
//! JSON or as a form, and every answer is `{"ok":true,"result":...}` or
//! `{"ok":false,"error_code":N,"description":"..."}` with Telegram's own descriptions, which is
//! what teloxide parses its `ApiError`s from. Only what the notify worker uses is implemented:
//! `sendMessage`, `getUpdates` (a real long poll, with `offset` confirmation and the 409 that a
//! second concurrent poller gets), `getMe`, `getWebhookInfo`, `deleteWebhook`; other methods get
//! Telegram's 404 "Not Found", as do requests with a wrong token.
//!
//! The failure knobs: scripted answers to `sendMessage` (one-shot queues and defaults, per chat or
//! for all: 429 with `retry_after`, 400, 403, 500, 502, or no answer at all), Telegram's rate
//! limits (opt-in, so that tests of other things are not slowed down by them), and strict
//! MarkdownV2 checking (opt-in). Every request is recorded with its arrival time and the status it
//! got, so tests can check ordering, spacing and retries.
//!
//! [`HttpServer`] (also used by the webhook receiver) serves an axum router and, when dropped,
//! cuts the connections it accepted, so a stopped stand-in looks stopped to pooled clients too.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// The token [`TelegramStandIn::start`] accepts (Telegram's shape: bot id, colon, secret).
pub const TOKEN: &str = "123456789:AAH-impressox_test_token_0123456789";

/// Telegram's answer to an unknown method or a wrong token (teloxide: `ApiError::InvalidToken`).
const NOT_FOUND: &str = "Not Found";

/// Telegram's answer to a second concurrent `getUpdates` (teloxide:
/// `ApiError::TerminatedByOtherGetUpdates`).
pub const CONFLICT: &str = "Conflict: terminated by other getUpdates request; make sure that only \
                            one bot instance is running";

/// The longest long poll Telegram allows, in seconds.
const MAX_POLL_SECS: i64 = 50;

/// Private chats have positive ids, groups negative ones, supergroups and channels -100….
const SUPERGROUP_BELOW: i64 = -1_000_000_000_000;

/// An answer to `sendMessage`, chosen by the test.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// The message is accepted (unless `enforce_limits` or `strict_markdown_v2` says otherwise).
    Ok,
    /// HTTP 429 `Too Many Requests: retry after N` with `parameters.retry_after = N`.
    RetryAfter(u32),
    /// HTTP 400 with this description; `"Bad Request: "` is prepended unless already there, so
    /// `BadRequest("chat not found".into())` gives teloxide's `ApiError::ChatNotFound`.
    BadRequest(String),
    /// HTTP 403 `Forbidden: bot was blocked by the user` (`ApiError::BotBlocked`).
    Forbidden,
    /// HTTP 500 `Internal Server Error`. teloxide sleeps 10 s on any 5xx before reporting it.
    ServerError,
    /// HTTP 502 with an HTML body, as Telegram's front end sends when the back end is down
    /// (teloxide: `InvalidJson`, after its 10 s 5xx delay).
    BadGateway,
    /// No answer ever: the request stays open until the client gives up or the stand-in is
    /// dropped.
    Hang,
}

/// One request as the stand-in saw it.
#[derive(Clone, Debug)]
pub struct TelegramRequest {
    pub at: Instant,
    /// Arrival as Unix milliseconds.
    pub wall_ms: i64,
    /// The method, lower-cased (`sendmessage`, `getupdates`, ...).
    pub method: String,
    /// `chat_id` as text: `"123456"`, `"-100123"`, `"@channel"`.
    pub chat_id: Option<String>,
    pub text: Option<String>,
    pub parse_mode: Option<String>,
    /// The parameters as JSON (a form's values are strings); `Null` if the body was neither.
    pub body: Value,
    /// The HTTP status answered; 0 while unanswered (a long poll in progress, or [`Reply::Hang`]).
    pub status: u16,
}

impl TelegramRequest {
    /// A `sendMessage` that Telegram accepted.
    pub fn is_sent(&self) -> bool {
        self.method == "sendmessage" && self.status == 200
    }
}

pub struct TelegramStandIn {
    http: HttpServer,
    shared: Arc<Shared>,
}

struct Shared {
    token: String,
    state: Mutex<StandInState>,
    /// Wakes long polls when a user message is queued.
    updates_added: Notify,
}

#[derive(Default)]
struct StandInState {
    requests: Vec<TelegramRequest>,
    next_message_id: i64,
    next_update_id: u32,
    /// Updates not yet confirmed by an `offset`, oldest first.
    updates: VecDeque<(u32, Value)>,
    /// A `getUpdates` is waiting; another one now is a conflict.
    polling: bool,
    conflicts: usize,
    /// One-shot answers to `sendMessage`, per chat (`Some`) or for any chat (`None`).
    queued: HashMap<Option<String>, VecDeque<Reply>>,
    defaults: HashMap<Option<String>, Reply>,
    enforce_limits: bool,
    strict_markdown_v2: bool,
}

impl TelegramStandIn {
    /// Serve on `127.0.0.1` on a port the kernel picks, accepting [`TOKEN`]. Must be called
    /// inside a tokio runtime.
    pub async fn start() -> TelegramStandIn {
        let shared = Arc::new(Shared {
            token: TOKEN.to_owned(),
            state: Mutex::new(StandInState {
                next_message_id: 1,
                next_update_id: 1000,
                ..StandInState::default()
            }),
            updates_added: Notify::new(),
        });
        // One route for every method, and a fallback for other paths, so that everything the
        // client sends is recorded and answered in Telegram's JSON.
        let router = Router::new()
            .route("/{bot}/{method}", any(handle))
            .fallback(not_found)
            .with_state(shared.clone());
        TelegramStandIn {
            http: HttpServer::start(router, "Telegram stand-in").await,
            shared,
        }
    }

    /// The `api_url` to configure: `http://127.0.0.1:P`, no trailing slash (teloxide appends
    /// `/bot<TOKEN>/<Method>`).
    pub fn url(&self) -> String {
        format!("http://{}", self.http.addr())
    }

    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Queue one-shot answers for the next `sendMessage`s to `chat` (`None`: to any chat). A
    /// chat's own queue is used before the shared one, and both before the defaults.
    pub fn reply_next(&self, chat: Option<&str>, replies: impl IntoIterator<Item = Reply>) {
        self.shared
            .state
            .lock()
            .queued
            .entry(chat.map(str::to_owned))
            .or_default()
            .extend(replies);
    }

    /// The answer once the queues are empty, for `chat` (`None`: for any chat without its own
    /// default). Initially [`Reply::Ok`].
    pub fn set_default_reply(&self, chat: Option<&str>, reply: Reply) {
        self.shared
            .state
            .lock()
            .defaults
            .insert(chat.map(str::to_owned), reply);
    }

    /// Telegram's rate limits, counted over accepted messages by arrival time: a private chat's
    /// 2nd message within 1 s, a group's (or channel's) 21st within 60 s, or the bot's 31st
    /// within 1 s gets 429 with `retry_after` 1 instead of being sent. Off by default.
    pub fn enforce_limits(&self, on: bool) {
        self.shared.state.lock().enforce_limits = on;
    }

    /// When on, a `sendMessage` longer than 4,096 UTF-16 units gets 400 `message is too long`,
    /// and one with `parse_mode` MarkdownV2 that has an unescaped `# + - = { } . !` outside code
    /// and link URLs gets 400 `can't parse entities` (a subset of Telegram's checks: what it
    /// flags, Telegram rejects too). Off by default.
    pub fn strict_markdown_v2(&self, on: bool) {
        self.shared.state.lock().strict_markdown_v2 = on;
    }

    /// A user writes `text` in `chat` (positive: a private chat with that user; negative: a
    /// group, where the sender is user 123456). Returns the update id; a waiting `getUpdates`
    /// answers at once. Text starting with `/` carries a `bot_command` entity, as Telegram's does.
    pub fn user_says(&self, chat: i64, text: &str) -> u32 {
        let mut state = self.shared.state.lock();
        let update_id = state.next_update_id;
        state.next_update_id += 1;
        let message_id = state.next_message_id;
        state.next_message_id += 1;
        let mut message = json!({
            "message_id": message_id,
            "date": unix_secs(),
            "chat": chat_json(&chat.to_string()),
            "from": {"id": if chat > 0 { chat } else { 123_456 }, "is_bot": false, "first_name": "Test"},
            "text": text,
        });
        if text.starts_with('/') {
            let command = text.split_whitespace().next().unwrap_or(text);
            message["entities"] = json!([{
                "offset": 0,
                "length": command.encode_utf16().count(),
                "type": "bot_command",
            }]);
        }
        state.updates.push_back((
            update_id,
            json!({"update_id": update_id, "message": message}),
        ));
        drop(state);
        self.shared.updates_added.notify_waiters();
        update_id
    }

    /// Updates not yet confirmed by a later `offset`.
    pub fn pending_updates(&self) -> usize {
        self.shared.state.lock().updates.len()
    }

    /// Whether a `getUpdates` is waiting for updates right now.
    pub fn polling(&self) -> bool {
        self.shared.state.lock().polling
    }

    /// How many `getUpdates` got 409 because another one was waiting.
    pub fn getupdates_conflicts(&self) -> usize {
        self.shared.state.lock().conflicts
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<TelegramRequest> {
        self.shared.state.lock().requests.clone()
    }

    /// The `sendMessage`s Telegram accepted, in arrival order.
    pub fn sent(&self) -> Vec<TelegramRequest> {
        let state = self.shared.state.lock();
        state
            .requests
            .iter()
            .filter(|r| r.is_sent())
            .cloned()
            .collect()
    }

    /// Texts of the messages accepted for `chat` (as text: `"123456"`, `"@name"`), in order.
    pub fn messages_to(&self, chat: &str) -> Vec<String> {
        let state = self.shared.state.lock();
        state
            .requests
            .iter()
            .filter(|r| r.is_sent() && r.chat_id.as_deref() == Some(chat))
            .map(|r| r.text.clone().unwrap_or_default())
            .collect()
    }

    /// How many times each text was accepted, over all chats (a duplicate shows up as 2).
    pub fn count_by_text(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in self.sent() {
            *counts.entry(r.text.unwrap_or_default()).or_default() += 1;
        }
        counts
    }

    /// Wait until at least `n` messages were accepted; false on timeout.
    pub async fn wait_for_sent(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let sent = self
                .shared
                .state
                .lock()
                .requests
                .iter()
                .filter(|r| r.is_sent())
                .count();
            if sent >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The most accepted messages (to `chat`, or to any chat for `None`) whose arrivals fall in
    /// one half-open interval of length `window`: the figure Telegram's limits bound.
    pub fn max_in_window(&self, chat: Option<&str>, window: Duration) -> usize {
        let times: Vec<Instant> = self
            .sent()
            .into_iter()
            .filter(|r| chat.is_none() || r.chat_id.as_deref() == chat)
            .map(|r| r.at)
            .collect();
        let (mut max, mut first) = (0, 0);
        for (last, &t) in times.iter().enumerate() {
            while t.duration_since(times[first]) >= window {
                first += 1;
            }
            max = max.max(last - first + 1);
        }
        max
    }
}

async fn not_found(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record(&shared, String::new(), &Map::new(), body, 404);
    api_error(StatusCode::NOT_FOUND, NOT_FOUND)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let method = method.to_ascii_lowercase();
    let params = parse_params(&headers, &body, query.as_deref());
    let body = params.clone().map(Value::Object).unwrap_or(Value::Null);
    let params = params.unwrap_or_default();

    if bot.strip_prefix("bot") != Some(shared.token.as_str()) {
        record(&shared, method, &params, body, 404);
        return api_error(StatusCode::NOT_FOUND, NOT_FOUND);
    }
    match method.as_str() {
        "sendmessage" => send_message(&shared, method, &params, body).await,
        "getupdates" => get_updates(&shared, method, &params, body).await,
        "getme" => {
            record(&shared, method, &params, body, 200);
            ok(json!({
                "id": 42,
                "is_bot": true,
                "first_name": "ImpressoX",
                "username": "impressox_test_bot",
                "can_join_groups": true,
                "can_read_all_group_messages": false,
                "supports_inline_queries": false,
                "has_main_web_app": false,
            }))
        }
        "getwebhookinfo" => {
            let pending = shared.state.lock().updates.len();
            record(&shared, method, &params, body, 200);
            ok(json!({"url": "", "has_custom_certificate": false, "pending_update_count": pending}))
        }
        // Harmless calls a bot may make at start-up; they only need to succeed.
        "deletewebhook" | "setmycommands" | "deletemycommands" | "sendchataction" => {
            record(&shared, method, &params, body, 200);
            ok(json!(true))
        }
        _ => {
            record(&shared, method, &params, body, 404);
            api_error(StatusCode::NOT_FOUND, NOT_FOUND)
        }
    }
}

async fn send_message(
    shared: &Shared,
    method: String,
    params: &Map<String, Value>,
    body: Value,
) -> Response {
    match answer_send_message(shared, method, params, body) {
        Some(response) => response,
        None => std::future::pending().await,
    }
}

/// The answer to a `sendMessage`, `None` for no answer ([`Reply::Hang`]). Synchronous, so the
/// lock is never held across an await.
fn answer_send_message(
    shared: &Shared,
    method: String,
    params: &Map<String, Value>,
    body: Value,
) -> Option<Response> {
    let chat = params.get("chat_id").and_then(chat_text);
    let text = params
        .get("text")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let parse_mode = params.get("parse_mode").and_then(Value::as_str);
    let mut state = shared.state.lock();
    let index = push_record(&mut state, method, params, body);

    let (Some(chat), Some(text)) = (chat, text.filter(|t| !t.is_empty())) else {
        let description = if params.get("chat_id").is_none() {
            "Bad Request: chat_id is empty"
        } else {
            "Bad Request: message text is empty"
        };
        state.requests[index].status = 400;
        return Some(api_error(StatusCode::BAD_REQUEST, description));
    };
    let reply = state.next_reply(&chat);
    let response = match reply {
        Reply::Ok => {
            if let Some(description) = state.strict_error(&text, parse_mode) {
                api_error(StatusCode::BAD_REQUEST, &description)
            } else if state.enforce_limits && state.over_limit(&chat, state.requests[index].at) {
                retry_after(1)
            } else {
                let message_id = state.next_message_id;
                state.next_message_id += 1;
                ok(json!({
                    "message_id": message_id,
                    "from": {"id": 42, "is_bot": true, "first_name": "ImpressoX", "username": "impressox_test_bot"},
                    "date": unix_secs(),
                    "chat": chat_json(&chat),
                    "text": text,
                }))
            }
        }
        Reply::RetryAfter(secs) => retry_after(secs),
        Reply::BadRequest(description) => {
            let description = if description.starts_with("Bad Request:") {
                description
            } else {
                format!("Bad Request: {description}")
            };
            api_error(StatusCode::BAD_REQUEST, &description)
        }
        Reply::Forbidden => api_error(
            StatusCode::FORBIDDEN,
            "Forbidden: bot was blocked by the user",
        ),
        Reply::ServerError => api_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        Reply::BadGateway => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
             <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n\
             </body>\r\n</html>\r\n",
        )
            .into_response(),
        Reply::Hang => return None,
    };
    state.requests[index].status = response.status().as_u16();
    Some(response)
}

async fn get_updates(
    shared: &Shared,
    method: String,
    params: &Map<String, Value>,
    body: Value,
) -> Response {
    let timeout = params.get("timeout").and_then(int).unwrap_or(0);
    let timeout = Duration::from_secs(timeout.clamp(0, MAX_POLL_SECS) as u64);
    let limit = params
        .get("limit")
        .and_then(int)
        .unwrap_or(100)
        .clamp(1, 100) as usize;
    let index = {
        let mut state = shared.state.lock();
        let index = push_record(&mut state, method, params, body);
        if state.polling {
            state.conflicts += 1;
            state.requests[index].status = 409;
            return api_error(StatusCode::CONFLICT, CONFLICT);
        }
        // Telegram forgets every update below a positive offset; a negative one keeps only the
        // last |offset| updates.
        match params.get("offset").and_then(int) {
            Some(offset) if offset > 0 => state.updates.retain(|(id, _)| i64::from(*id) >= offset),
            Some(offset) if offset < 0 => {
                let keep = offset.unsigned_abs() as usize;
                while state.updates.len() > keep {
                    state.updates.pop_front();
                }
            }
            _ => {}
        }
        state.polling = true;
        index
    };
    // Cleared however the poll ends, including the client going away mid-wait.
    let _polling = PollGuard(shared);

    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Registered before looking, so a message queued in between still wakes this poll.
        let added = shared.updates_added.notified();
        if !shared.state.lock().updates.is_empty() {
            break;
        }
        if tokio::time::timeout_at(deadline, added).await.is_err() {
            break;
        }
    }
    let mut state = shared.state.lock();
    let updates: Vec<Value> = state
        .updates
        .iter()
        .take(limit)
        .map(|(_, u)| u.clone())
        .collect();
    state.requests[index].status = 200;
    ok(Value::Array(updates))
}

struct PollGuard<'a>(&'a Shared);

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        self.0.state.lock().polling = false;
    }
}

impl StandInState {
    fn next_reply(&mut self, chat: &str) -> Reply {
        let own = Some(chat.to_owned());
        if let Some(reply) = self.queued.get_mut(&own).and_then(VecDeque::pop_front) {
            return reply;
        }
        if let Some(reply) = self.queued.get_mut(&None).and_then(VecDeque::pop_front) {
            return reply;
        }
        self.defaults
            .get(&own)
            .or_else(|| self.defaults.get(&None))
            .cloned()
            .unwrap_or(Reply::Ok)
    }

    /// Whether a message to `chat` arriving at `now` breaks one of Telegram's limits, counting
    /// the messages accepted before it.
    fn over_limit(&self, chat: &str, now: Instant) -> bool {
        let minute = Duration::from_secs(60);
        let second = Duration::from_secs(1);
        let recent = self
            .requests
            .iter()
            .rev()
            .filter(|r| r.is_sent())
            .take_while(|r| now.duration_since(r.at) < minute);
        let (mut chat_second, mut chat_minute, mut all_second) = (0, 0, 0);
        for r in recent {
            let within_second = now.duration_since(r.at) < second;
            if r.chat_id.as_deref() == Some(chat) {
                chat_minute += 1;
                chat_second += usize::from(within_second);
            }
            all_second += usize::from(within_second);
        }
        let private = chat.parse::<i64>().is_ok_and(|id| id > 0);
        (private && chat_second >= 1) || (!private && chat_minute >= 20) || all_second >= 30
    }

    fn strict_error(&self, text: &str, parse_mode: Option<&str>) -> Option<String> {
        if !self.strict_markdown_v2 {
            return None;
        }
        if text.encode_utf16().count() > 4096 {
            return Some("Bad Request: message is too long".into());
        }
        if parse_mode.is_some_and(|m| m.eq_ignore_ascii_case("MarkdownV2")) {
            return unescaped_reserved(text).map(|c| {
                format!(
                    "Bad Request: can't parse entities: Character '{c}' is reserved and must be \
                     escaped with the preceding '\\'"
                )
            });
        }
        None
    }
}

/// The first MarkdownV2 reserved character that is never markup and is not escaped, outside
/// code spans, code blocks and link URLs (where Telegram does not require escaping it).
fn unescaped_reserved(text: &str) -> Option<char> {
    let chars: Vec<char> = text.chars().collect();
    let fence = |i: usize| chars[i..].starts_with(&['`', '`', '`']);
    let (mut in_pre, mut in_code, mut in_url) = (false, false, false);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            i += 2;
            continue;
        }
        if in_pre {
            if fence(i) {
                in_pre = false;
                i += 3;
                continue;
            }
        } else if in_code {
            in_code = c != '`';
        } else if in_url {
            in_url = c != ')';
        } else if fence(i) {
            in_pre = true;
            i += 3;
            continue;
        } else if c == '`' {
            in_code = true;
        } else if c == ']' && chars.get(i + 1) == Some(&'(') {
            in_url = true;
            i += 1;
        } else if "#+-={}.!".contains(c) {
            return Some(c);
        }
        i += 1;
    }
    None
}

fn push_record(
    state: &mut StandInState,
    method: String,
    params: &Map<String, Value>,
    body: Value,
) -> usize {
    let text_param = |name: &str| params.get(name).and_then(Value::as_str).map(str::to_owned);
    state.requests.push(TelegramRequest {
        at: Instant::now(),
        wall_ms: unix_millis(),
        method,
        chat_id: params.get("chat_id").and_then(chat_text),
        text: text_param("text"),
        parse_mode: text_param("parse_mode"),
        body,
        status: 0,
    });
    state.requests.len() - 1
}

fn record(shared: &Shared, method: String, params: &Map<String, Value>, body: Value, status: u16) {
    let mut state = shared.state.lock();
    let index = push_record(&mut state, method, params, body);
    state.requests[index].status = status;
}

/// The parameters from a JSON body, a form body, or (with an empty body) the query string;
/// `None` if there are none in a form this stand-in reads (e.g. multipart).
fn parse_params(
    headers: &HeaderMap,
    body: &[u8],
    query: Option<&str>,
) -> Option<Map<String, Value>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if body.is_empty() {
        return Some(parse_form(query.unwrap_or("")));
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return Some(parse_form(&String::from_utf8_lossy(body)));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn parse_form(form: &str) -> Map<String, Value> {
    form.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), Value::String(percent_decode(value)))
        })
        .collect()
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `chat_id` as text, whether sent as a number (JSON) or a string (`"@name"`, or any form value).
fn chat_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// An integer parameter, sent as a JSON number or as a string (forms).
fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The `chat` object Telegram returns for a chat id, in the shapes teloxide's `Chat` parses.
fn chat_json(chat: &str) -> Value {
    match chat.parse::<i64>() {
        Ok(id) if id > 0 => json!({"id": id, "type": "private", "first_name": "Test"}),
        Ok(id) if id > SUPERGROUP_BELOW => {
            json!({"id": id, "type": "group", "title": "Test group"})
        }
        Ok(id) => json!({"id": id, "type": "supergroup", "title": "Test supergroup"}),
        Err(_) => {
            let name = chat.trim_start_matches('@');
            // A stable made-up id in the channel range, so one name always maps to one id.
            let hash = name
                .bytes()
                .fold(0_i64, |h, b| (h * 31 + i64::from(b)) % 1_000_000_000);
            json!({"id": SUPERGROUP_BELOW - 1_000_000_000 - hash, "type": "channel",
                   "title": "Test channel", "username": name})
        }
    }
}

fn ok(result: Value) -> Response {
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

fn api_error(status: StatusCode, description: &str) -> Response {
    let body = json!({"ok": false, "error_code": status.as_u16(), "description": description});
    (status, axum::Json(body)).into_response()
}

fn retry_after(secs: u32) -> Response {
    let body = json!({
        "ok": false,
        "error_code": 429,
        "description": format!("Too Many Requests: retry after {secs}"),
        "parameters": {"retry_after": secs},
    });
    (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
}

fn unix_secs() -> i64 {
    unix_millis() / 1000
}

fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An axum server on a free loopback port that, when dropped, stops accepting and shuts down
/// every connection it accepted. Aborting `axum::serve` alone would leave keep-alive connections
/// served by their own tasks, so a pooled client would still reach a "stopped" server.
pub struct HttpServer {
    addr: SocketAddr,
    task: AbortHandle,
    /// A duplicate of the listening socket, to stop listening at once on drop: the abort only
    /// takes effect when the runtime next gets to the task, and meanwhile the kernel would still
    /// complete connections. (Held as a `TcpStream` only because that type has `shutdown`; on
    /// Linux, shutting down a listening socket closes it for new connections.)
    listening: std::net::TcpStream,
    /// A duplicate of each accepted socket: shutting it down cuts the connection whatever the
    /// task serving it is doing (even waiting in a handler that never answers). Kept until drop;
    /// tests open few connections.
    connections: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl HttpServer {
    /// Serve `router`; `what` names the server in panics. Must be called inside a tokio runtime.
    pub async fn start(router: Router, what: &str) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind the {what}: {e}"));
        let addr = listener.local_addr().unwrap();
        let listening = std::net::TcpStream::from(
            listener
                .as_fd()
                .try_clone_to_owned()
                .unwrap_or_else(|e| panic!("duplicate the {what}'s socket: {e}")),
        );
        let connections = Arc::new(Mutex::new(Vec::new()));
        let listener = TrackingListener {
            listener,
            connections: connections.clone(),
        };
        let what = what.to_owned();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        })
        .abort_handle();
        HttpServer {
            addr,
            task,
            listening,
            connections,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.listening.shutdown(std::net::Shutdown::Both);
        for connection in self.connections.lock().drain(..) {
            let _ = connection.shutdown(std::net::Shutdown::Both);
        }
    }
}

struct TrackingListener {
    listener: TcpListener,
    connections: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl axum::serve::Listener for TrackingListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    // Small requests and answers: do not let Nagle delay them.
                    let _ = stream.set_nodelay(true);
                    if let Ok(fd) = stream.as_fd().try_clone_to_owned() {
                        self.connections.lock().push(std::net::TcpStream::from(fd));
                    }
                    return (stream, addr);
                }
                // Out of file descriptors or similar: back off rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}
