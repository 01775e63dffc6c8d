//! A local stand-in for X (docs/design/x-scraper.md §5.1–§5.3), for the scraper and a real
//! Chromium to talk to on `http://127.0.0.1:<port>`.
//!
//! It serves what the scraper's browser meets on x.com: profile and search pages whose script
//! fetches `/i/api/graphql/<query id>/<Operation>?variables=<json>` and renders
//! `article[data-testid="tweet"]` (`x_site/profile.html`, `search.html`, `timeline.js`); the
//! GraphQL answers themselves, from the x-timeline plugin's fixtures, page by page along the
//! cursors (`x_site/timelines.rs`); and X's login flow (`x_site/login.html` posting to
//! `/i/api/1.1/onboarding/task.json`, `x_site/login.rs`), with the email challenge, TOTP and
//! wrong-password paths.
//!
//! Accounts are known by the `auth_token` cookie a login (or [`XSite::issue_session`]) hands
//! out. What X does to accounts is played as X plays it: a page without a known session
//! redirects to `/i/flow/login`, a banned account's to `/login`, a locked one's to
//! `/account/access`; GraphQL answers carry `x-rate-limit-limit/remaining/reset`, count down a
//! budget per account and operation, and answer 429 + code 88 when it is spent, 403 + 326 when
//! locked, 403 + 64 when banned, 401 + 32 without a session.
//!
//! Every request is recorded ([`XSite::requests`]) with the account its cookie names, the
//! operation and cursor of GraphQL calls, and the proxy it came through (the proxy stand-in's
//! `x-standin-proxy` header). The benchmarks include this file on its own
//! (`#[path = "../tests/all/servers/x_site.rs"]`), so it uses nothing else from the tests.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::task::AbortHandle;

#[path = "x_site/login.rs"]
pub mod login;
#[path = "x_site/timelines.rs"]
pub mod timelines;

use login::{Flow, Step};
use timelines::{Timeline, fixture};

const PROFILE_HTML: &str = include_str!("x_site/profile.html");
const SEARCH_HTML: &str = include_str!("x_site/search.html");
const LOGIN_HTML: &str = include_str!("x_site/login.html");
const TIMELINE_JS: &str = include_str!("x_site/timeline.js");
const HOME_HTML: &str = "<!DOCTYPE html><html><head><title>Home / X</title></head>\
    <body><div data-testid=\"primaryColumn\"><h1>Home</h1></div></body></html>";
const ACCESS_HTML: &str = "<!DOCTYPE html><html><head><title>Account locked / X</title></head>\
    <body><h1>Your account has been locked.</h1><p>To unlock it, confirm your identity.</p>\
    </body></html>";

/// Budgets per 15 minutes where nothing was set (REFERENCE.md "Limits and bans";
/// `UserByScreenName` is not named there: timelines' 500, as the design assumes).
const DEFAULT_LIMITS: &[(&str, u32)] = &[
    ("UserByScreenName", 500),
    ("UserTweets", 500),
    ("UserTweetsAndReplies", 500),
    ("SearchTimeline", 50),
    ("TweetDetail", 150),
];
/// X's budget window: after a reset the budget refills and the next window is this long.
const WINDOW_MS: u64 = 15 * 60 * 1000;

/// What X does with an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountState {
    /// Logs in with username and password (and a code, with a TOTP secret); pages and API work.
    Normal,
    /// Suspended: pages redirect to `/login`, the API answers 403 + code 64. Logging in still
    /// works, as it does on X, so a scraper sees `/login` right after a fresh login.
    Banned,
    /// Temporarily locked: pages redirect to `/account/access`, the API answers 403 + code 326.
    Locked,
    /// Normal, but the login asks for the account's email before the password ("unusual
    /// activity").
    Challenge,
}

/// A one-shot failure of the next GraphQL call of an operation ([`XSite::fail_next`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fail {
    /// `200` with `{"errors":[{"code":88}]}` while the headers say budget is left: how X hides
    /// a locked account.
    Code88,
    /// This status. `429` comes with X's rate-limit body and `x-rate-limit-remaining: 0`
    /// whatever the budget said before (an unforeseeable limit); others with X's internal
    /// error body (code 131).
    Status(u16),
    /// This status with `{"errors":[{"code": code}]}`: one of X's account errors (403 + 326
    /// locked, 403 + 64 suspended) on an account whose pages still load.
    Error { status: u16, code: u32 },
}

/// A cookie the stand-in sets; a test stores it where the product keeps sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    /// Always `/`.
    pub path: String,
    pub http_only: bool,
}

/// `name=value; name=value`, as a `Cookie` request header.
pub fn cookie_header(cookies: &[Cookie]) -> String {
    cookies
        .iter()
        .map(|c| format!("{}={}", c.name, c.value))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One request as the stand-in saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The GraphQL operation (`UserTweets`, ...).
    pub op: Option<String>,
    /// `variables.cursor` of a GraphQL call.
    pub cursor: Option<String>,
    /// The profile a page or a `UserByScreenName`/`UserTweets` call is for (as requested; a
    /// `UserTweets` call is attributed by its page's `Referer` or by the user id).
    pub handle: Option<String>,
    /// `variables.rawQuery` of a `SearchTimeline` call, or `q` of a search page.
    pub search: Option<String>,
    /// The account the `auth_token` cookie belongs to; for login steps, the account being
    /// logged in.
    pub account: Option<String>,
    /// The `x-standin-proxy` header: the name of the proxy stand-in the request came through.
    pub via_proxy: Option<String>,
    /// For `POST /i/api/1.1/onboarding/task.json`: the step posted (never its value).
    pub login_step: Option<String>,
    /// The status answered; 0 while unanswered.
    pub status: u16,
}

pub struct XSite {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: AbortHandle,
}

struct Shared {
    state: Mutex<SiteState>,
    profile_html: String,
    search_html: String,
}

struct SiteState {
    /// By lower-cased username.
    accounts: HashMap<String, Account>,
    /// `auth_token` → lower-cased username.
    sessions: HashMap<String, String>,
    /// Logins in progress, by flow token.
    flows: HashMap<String, Flow>,
    /// Budgets set for every account ([`XSite::set_budget`]); copied into an account's own
    /// budgets when it first calls the operation.
    budget_defaults: HashMap<String, Budget>,
    /// Profile timelines by lower-cased handle; others get `default_timeline`.
    timelines: HashMap<String, Timeline>,
    default_timeline: Timeline,
    search_timeline: Timeline,
    /// `UserByScreenName` bodies by lower-cased handle; others get `default_user`.
    users: HashMap<String, Arc<String>>,
    default_user: Arc<String>,
    /// User id → handle, from the `UserByScreenName` answers served, to attribute `UserTweets`
    /// calls that carry no `Referer`.
    handles_by_user_id: HashMap<String, String>,
    fail_next: HashMap<String, VecDeque<Fail>>,
    open_profiles: bool,
    latency: Duration,
    requests: Vec<Seen>,
    in_flight: HashMap<String, usize>,
    max_in_flight: HashMap<String, usize>,
}

struct Account {
    username: String,
    password: String,
    email: String,
    totp: Option<String>,
    state: AccountState,
    budgets: HashMap<String, Budget>,
}

#[derive(Clone, Copy, Debug)]
struct Budget {
    limit: u32,
    remaining: u32,
    reset_at_ms: u64,
}

impl Budget {
    fn fresh(limit: u32, now_ms: u64) -> Budget {
        Budget {
            limit,
            remaining: limit,
            reset_at_ms: now_ms + WINDOW_MS,
        }
    }

    fn refill_if_due(&mut self, now_ms: u64) {
        if now_ms >= self.reset_at_ms {
            self.remaining = self.limit;
            self.reset_at_ms = now_ms + WINDOW_MS;
        }
    }

    /// `x-rate-limit-reset` is whole epoch seconds; rounded up, so a client that waits for it
    /// never comes back before the refill.
    fn headers(&self) -> (u32, u32, u64) {
        (self.limit, self.remaining, self.reset_at_ms.div_ceil(1000))
    }
}

fn default_limit(op: &str) -> u32 {
    DEFAULT_LIMITS
        .iter()
        .find(|(name, _)| *name == op)
        .map_or(500, |(_, limit)| *limit)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

impl XSite {
    /// Serve on `127.0.0.1` on a port the kernel picks. Must be called inside a tokio runtime.
    pub async fn start() -> XSite {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the X stand-in");
        let addr = listener.local_addr().unwrap();
        let default_user = Arc::new(fixture("user_by_screen_name.json"));
        let shared = Arc::new(Shared {
            state: Mutex::new(SiteState {
                accounts: HashMap::new(),
                sessions: HashMap::new(),
                flows: HashMap::new(),
                budget_defaults: HashMap::new(),
                timelines: HashMap::new(),
                default_timeline: Timeline::default_user(),
                search_timeline: Timeline::default_search(),
                users: HashMap::new(),
                default_user,
                handles_by_user_id: HashMap::new(),
                fail_next: HashMap::new(),
                open_profiles: false,
                latency: Duration::ZERO,
                requests: Vec::new(),
                in_flight: HashMap::new(),
                max_in_flight: HashMap::new(),
            }),
            profile_html: PROFILE_HTML.replace("/* timeline.js */", TIMELINE_JS),
            search_html: SEARCH_HTML.replace("/* timeline.js */", TIMELINE_JS),
        });
        // One handler for every path, so that whatever the browser asks for is recorded.
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("X stand-in");
        })
        .abort_handle();
        XSite {
            addr,
            shared,
            server,
        }
    }

    /// The `base_url` to configure: `http://127.0.0.1:P`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A profile page's URL, e.g. `http://127.0.0.1:P/coinledger_ana`.
    pub fn profile_url(&self, handle: &str) -> String {
        format!("{}/{handle}", self.url())
    }

    /// Register an account that can log in (state [`AccountState::Normal`]). `totp` is the
    /// base32 secret of its authenticator; with one, the login asks for a code after the
    /// password.
    pub fn add_account(&self, username: &str, password: &str, email: &str, totp: Option<&str>) {
        self.shared.state.lock().accounts.insert(
            username.to_lowercase(),
            Account {
                username: username.to_owned(),
                password: password.to_owned(),
                email: email.to_owned(),
                totp: totp.map(str::to_owned),
                state: AccountState::Normal,
                budgets: HashMap::new(),
            },
        );
    }

    pub fn set_account_state(&self, username: &str, state: AccountState) {
        self.account_mut(username, |a| a.state = state);
    }

    /// Every account's budget for `op`, now and for accounts added later: `remaining` calls
    /// are answered, the next ones get 429 until `reset_in_secs` from now; then the budget
    /// refills to `limit` for X's 15-minute windows. An account's budget is its own once set:
    /// one account running out does not touch another.
    pub fn set_budget(&self, op: &str, limit: u32, remaining: u32, reset_in_secs: u64) {
        let budget = Budget {
            limit,
            remaining,
            reset_at_ms: now_ms() + reset_in_secs * 1000,
        };
        let mut state = self.shared.state.lock();
        state.budget_defaults.insert(op.to_owned(), budget);
        for account in state.accounts.values_mut() {
            account.budgets.insert(op.to_owned(), budget);
        }
    }

    /// One account's budget for `op`, as [`XSite::set_budget`].
    pub fn set_account_budget(
        &self,
        username: &str,
        op: &str,
        limit: u32,
        remaining: u32,
        reset_in_secs: u64,
    ) {
        let budget = Budget {
            limit,
            remaining,
            reset_at_ms: now_ms() + reset_in_secs * 1000,
        };
        self.account_mut(username, |a| {
            a.budgets.insert(op.to_owned(), budget);
        });
    }

    /// What is left of an account's budget for `op` (refilled if its reset passed), as the
    /// next answer's headers would say before counting it: `(limit, remaining, reset)`.
    pub fn budget(&self, username: &str, op: &str) -> (u32, u32, u64) {
        let mut state = self.shared.state.lock();
        let now = now_ms();
        let template = state.budget_defaults.get(op).copied();
        let account = state
            .accounts
            .get_mut(&username.to_lowercase())
            .unwrap_or_else(|| panic!("no account {username} in the X stand-in"));
        let budget = account
            .budgets
            .entry(op.to_owned())
            .or_insert_with(|| template.unwrap_or_else(|| Budget::fresh(default_limit(op), now)));
        budget.refill_if_due(now);
        budget.headers()
    }

    /// The `UserTweets` pages of a profile, first page first (`None` cursor → page 1, page
    /// *i*'s bottom cursor → page *i + 1*). Without this, every handle gets
    /// [`timelines::default_user_pages`].
    pub fn set_timeline(&self, handle: &str, pages: Vec<Value>) {
        self.shared
            .state
            .lock()
            .timelines
            .insert(handle.to_lowercase(), Timeline::from_json(&pages));
    }

    /// The endless timeline for a profile (benchmarks): page *k* is `user_tweets.json` with
    /// tweet ids shifted down by *k* × 10⁶ and cursors `bench-<k + 1>`, never ending.
    pub fn set_endless_timeline(&self, handle: &str) {
        self.shared
            .state
            .lock()
            .timelines
            .insert(handle.to_lowercase(), Timeline::Endless);
    }

    /// The `SearchTimeline` pages for every query (default: [`timelines::default_search_pages`]).
    pub fn set_search_timeline(&self, pages: Vec<Value>) {
        self.shared.state.lock().search_timeline = Timeline::from_json(&pages);
    }

    /// The `UserByScreenName` body for a handle (default: `user_by_screen_name.json`, whose
    /// user is `coinledger_ana`, for every handle).
    pub fn set_user(&self, handle: &str, body: Value) {
        self.shared
            .state
            .lock()
            .users
            .insert(handle.to_lowercase(), Arc::new(body.to_string()));
    }

    /// X knows no such handle: `UserByScreenName` answers `{"data":{"user":{}}}` and the
    /// profile page shows "This account doesn't exist" without asking for tweets.
    pub fn set_unknown_handle(&self, handle: &str) {
        self.set_user(handle, json!({"data": {"user": {}}}));
    }

    /// A tweet posted since: a copy of the first plain tweet of the profile's page 1 with id
    /// `id` (entry id, sort index and every other mention of the old id renamed) goes on top
    /// of page 1. Give an id above page 1's newest for a realistic timeline.
    pub fn prepend_tweet(&self, handle: &str, id: &str) {
        let mut state = self.shared.state.lock();
        let default = state.default_timeline.clone();
        state
            .timelines
            .entry(handle.to_lowercase())
            .or_insert(default)
            .prepend_tweet(id);
    }

    /// The next GraphQL call of `op` (after its budget is counted) fails as given; calls
    /// queue up, one failure each.
    pub fn fail_next(&self, op: &str, fail: Fail) {
        self.shared
            .state
            .lock()
            .fail_next
            .entry(op.to_owned())
            .or_default()
            .push_back(fail);
    }

    /// A logged-in session for an account, as a login would leave it: `auth_token` (HttpOnly)
    /// and `ct0`, both for path `/`.
    pub fn issue_session(&self, username: &str) -> Vec<Cookie> {
        let mut state = self.shared.state.lock();
        let key = username.to_lowercase();
        assert!(
            state.accounts.contains_key(&key),
            "no account {username} in the X stand-in"
        );
        new_session(&mut state, &key)
    }

    /// Serve profile and search pages even without a session (the API still wants one for
    /// accounts, but answers anonymous calls from the default budget). For tests that drive a
    /// browser that cannot be handed cookies, such as `chromium --dump-dom`.
    pub fn open_profiles(&self, open: bool) {
        self.shared.state.lock().open_profiles = open;
    }

    /// Answer every GraphQL call this much later (0 by default), to make overlapping calls
    /// observable.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.state.lock().latency = latency;
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.state.lock().requests.clone()
    }

    /// The GraphQL calls of `op`, in arrival order.
    pub fn graphql_requests(&self, op: &str) -> Vec<Seen> {
        self.shared
            .state
            .lock()
            .requests
            .iter()
            .filter(|s| s.op.as_deref() == Some(op))
            .cloned()
            .collect()
    }

    /// The most requests of one account the stand-in was ever answering at the same time.
    pub fn max_in_flight(&self, username: &str) -> usize {
        self.shared
            .state
            .lock()
            .max_in_flight
            .get(&username.to_lowercase())
            .copied()
            .unwrap_or(0)
    }

    fn account_mut(&self, username: &str, change: impl FnOnce(&mut Account)) {
        let mut state = self.shared.state.lock();
        let account = state
            .accounts
            .get_mut(&username.to_lowercase())
            .unwrap_or_else(|| panic!("no account {username} in the X stand-in"));
        change(account);
    }
}

impl Drop for XSite {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn random_hex(len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(fastrand::u32(0..16), 16).expect("a hex digit"))
        .collect()
}

/// A new session for `key` (a lower-cased username): X's shapes, 40 hex digits of
/// `auth_token` and 160 of `ct0`.
fn new_session(state: &mut SiteState, key: &str) -> Vec<Cookie> {
    let auth_token = random_hex(40);
    state.sessions.insert(auth_token.clone(), key.to_owned());
    vec![
        Cookie {
            name: "auth_token".into(),
            value: auth_token,
            path: "/".into(),
            http_only: true,
        },
        Cookie {
            name: "ct0".into(),
            value: random_hex(160),
            path: "/".into(),
            http_only: false,
        },
    ]
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// X's handles: 1–15 letters, digits and underscores.
fn is_handle(s: &str) -> bool {
    (1..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Paths that are X's own pages, never profiles.
const RESERVED: &[&str] = &[
    "home", "login", "search", "i", "account", "explore", "settings",
];

/// Decrements the account's count of requests in progress however the request ends.
struct InFlight {
    shared: Arc<Shared>,
    account: String,
}

impl InFlight {
    fn enter(shared: &Arc<Shared>, account: &str) -> InFlight {
        let mut state = shared.state.lock();
        let now = {
            let n = state.in_flight.entry(account.to_owned()).or_default();
            *n += 1;
            *n
        };
        let max = state.max_in_flight.entry(account.to_owned()).or_default();
        *max = (*max).max(now);
        InFlight {
            shared: shared.clone(),
            account: account.to_owned(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(n) = self.shared.state.lock().in_flight.get_mut(&self.account) {
            *n = n.saturating_sub(1);
        }
    }
}

/// What a route learned about the request, for its [`Seen`] record.
#[derive(Default)]
struct Noted {
    op: Option<String>,
    cursor: Option<String>,
    handle: Option<String>,
    search: Option<String>,
    account: Option<String>,
    login_step: Option<String>,
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let account = cookie_value(&parts.headers, "auth_token")
        .and_then(|token| shared.state.lock().sessions.get(&token).cloned());
    let index = {
        let mut state = shared.state.lock();
        state.requests.push(Seen {
            at: Instant::now(),
            method: parts.method.to_string(),
            path: path.clone(),
            op: None,
            cursor: None,
            handle: None,
            search: None,
            account: account.clone(),
            via_proxy: header_text(&parts.headers, "x-standin-proxy"),
            login_step: None,
            status: 0,
        });
        state.requests.len() - 1
    };
    // Chromium's own favicon fetch (once per browser, right after the first page loads)
    // carries the cookie too, but is neither a page nor an API call: not counted, so
    // `max_in_flight` measures what the scraper's pages send.
    let _in_flight = account
        .as_deref()
        .filter(|_| path != "/favicon.ico")
        .map(|a| InFlight::enter(&shared, a));
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();

    let mut noted = Noted {
        account: account.clone(),
        ..Noted::default()
    };
    let response = route(
        &shared,
        &parts.method,
        &path,
        &query,
        &parts.headers,
        &body,
        &mut noted,
    )
    .await;

    let mut state = shared.state.lock();
    let seen = &mut state.requests[index];
    seen.status = response.status().as_u16();
    seen.op = noted.op;
    seen.cursor = noted.cursor;
    seen.handle = noted.handle;
    seen.search = noted.search;
    seen.account = noted.account;
    seen.login_step = noted.login_step;
    response
}

async fn route(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: &Bytes,
    noted: &mut Noted,
) -> Response {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["home"]) => html(HOME_HTML.to_owned()),
        (&Method::GET, ["i", "flow", "login"] | ["login"]) => html(LOGIN_HTML.to_owned()),
        (&Method::GET, ["account", "access"]) => html(ACCESS_HTML.to_owned()),
        (&Method::POST, ["i", "api", "1.1", "onboarding", "task.json"]) => {
            login_step(shared, body, noted)
        }
        (&Method::GET, ["i", "api", "graphql", _query_id, op]) => {
            noted.op = Some((*op).to_owned());
            let latency = shared.state.lock().latency;
            let response = graphql(shared, op, query, headers, noted);
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            response
        }
        (&Method::GET, ["search"]) => {
            noted.search = query_param(query, "q");
            page(shared, noted, shared.search_html.clone())
        }
        (&Method::GET, [name]) if is_handle(name) && !RESERVED.contains(name) => {
            noted.handle = Some((*name).to_owned());
            page(shared, noted, shared.profile_html.clone())
        }
        _ => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// A logged-in page: the redirects X sends for a missing session, a banned and a locked
/// account, else the page.
fn page(shared: &Arc<Shared>, noted: &Noted, html_body: String) -> Response {
    let state = shared.state.lock();
    if state.open_profiles {
        return html(html_body);
    }
    let account = noted
        .account
        .as_ref()
        .and_then(|key| state.accounts.get(key));
    match account.map(|a| a.state) {
        None => redirect("/i/flow/login"),
        Some(AccountState::Banned) => redirect("/login"),
        Some(AccountState::Locked) => redirect("/account/access"),
        Some(AccountState::Normal | AccountState::Challenge) => html(html_body),
    }
}

fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

fn query_param(query: &str, name: &str) -> Option<String> {
    axum::extract::Query::<HashMap<String, String>>::try_from_uri(
        &format!("/?{query}").parse().ok()?,
    )
    .ok()?
    .0
    .remove(name)
}

/// A JSON answer with X's rate-limit headers.
fn api_json(status: StatusCode, body: impl Into<Body>, limits: (u32, u32, u64)) -> Response {
    let (limit, remaining, reset) = limits;
    let mut response = (status, body.into()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert("x-rate-limit-limit", HeaderValue::from(limit));
    headers.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
    headers.insert("x-rate-limit-reset", HeaderValue::from(reset));
    response
}

fn graphql(
    shared: &Arc<Shared>,
    op: &str,
    query: &str,
    headers: &HeaderMap,
    noted: &mut Noted,
) -> Response {
    let variables: Value = query_param(query, "variables")
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or(Value::Null);
    noted.cursor = variables["cursor"].as_str().map(str::to_owned);
    let now = now_ms();
    let mut state = shared.state.lock();
    let state = &mut *state;

    // Budget first: a spent budget is a 429 whatever else is wrong, as on X.
    let account = noted
        .account
        .as_ref()
        .and_then(|key| state.accounts.get_mut(key));
    let (limits, account_state) = match account {
        Some(account) => {
            let template = state.budget_defaults.get(op).copied();
            let budget = account.budgets.entry(op.to_owned()).or_insert_with(|| {
                template.unwrap_or_else(|| Budget::fresh(default_limit(op), now))
            });
            budget.refill_if_due(now);
            if budget.remaining == 0 {
                return api_json(
                    StatusCode::TOO_MANY_REQUESTS,
                    fixture("error_rate_limit.json"),
                    budget.headers(),
                );
            }
            budget.remaining -= 1;
            (budget.headers(), Some(account.state))
        }
        None => (Budget::fresh(default_limit(op), now).headers(), None),
    };

    let Some(account_state) = account_state else {
        if !state.open_profiles {
            return api_json(
                StatusCode::UNAUTHORIZED,
                r#"{"errors":[{"code":32,"message":"Could not authenticate you."}]}"#,
                limits,
            );
        }
        // open_profiles: anonymous calls are answered like an account's.
        return answer(state, op, &variables, headers, noted, limits);
    };

    if let Some(fail) = state.fail_next.get_mut(op).and_then(VecDeque::pop_front) {
        return match fail {
            Fail::Code88 => api_json(
                StatusCode::OK,
                r#"{"errors":[{"code":88,"message":"Rate limit exceeded"}]}"#,
                limits,
            ),
            Fail::Status(429) => api_json(
                StatusCode::TOO_MANY_REQUESTS,
                fixture("error_rate_limit.json"),
                (limits.0, 0, limits.2),
            ),
            Fail::Error { status, code } => api_json(
                StatusCode::from_u16(status).expect("a valid HTTP status"),
                json!({"errors": [{"code": code, "message": "An account error."}]}).to_string(),
                limits,
            ),
            Fail::Status(status) => api_json(
                StatusCode::from_u16(status).expect("a valid HTTP status"),
                r#"{"errors":[{"code":131,"message":"Internal error"}]}"#,
                limits,
            ),
        };
    }
    match account_state {
        AccountState::Locked => {
            api_json(StatusCode::FORBIDDEN, fixture("error_locked.json"), limits)
        }
        AccountState::Banned => api_json(
            StatusCode::FORBIDDEN,
            r#"{"errors":[{"code":64,"message":"Your account is suspended and is not permitted to access this feature."}]}"#,
            limits,
        ),
        AccountState::Normal | AccountState::Challenge => {
            answer(state, op, &variables, headers, noted, limits)
        }
    }
}

/// The data a healthy account gets for `op`.
fn answer(
    state: &mut SiteState,
    op: &str,
    variables: &Value,
    headers: &HeaderMap,
    noted: &mut Noted,
    limits: (u32, u32, u64),
) -> Response {
    let cursor = noted.cursor.clone();
    let body: Arc<String> = match op {
        "UserByScreenName" => {
            let handle = variables["screen_name"].as_str().unwrap_or("").to_owned();
            let body = state
                .users
                .get(&handle.to_lowercase())
                .unwrap_or(&state.default_user)
                .clone();
            if let Some(id) = serde_json::from_str::<Value>(&body).ok().and_then(|v| {
                v["data"]["user"]["result"]["rest_id"]
                    .as_str()
                    .map(str::to_owned)
            }) {
                state.handles_by_user_id.insert(id, handle.to_lowercase());
            }
            noted.handle = Some(handle);
            body
        }
        "UserTweets" => {
            // The page the call comes from names the profile (same-origin fetches send the
            // full URL as Referer); without one, the user id does.
            let handle = header_text(headers, "referer")
                .and_then(|r| {
                    let path = r.split("://").nth(1)?.split_once('/')?.1.to_owned();
                    let first = path.split(['/', '?', '#']).next()?.to_owned();
                    (is_handle(&first) && !RESERVED.contains(&first.as_str())).then_some(first)
                })
                .or_else(|| {
                    variables["userId"]
                        .as_str()
                        .and_then(|id| state.handles_by_user_id.get(id).cloned())
                });
            let timeline = handle
                .as_ref()
                .and_then(|h| state.timelines.get(&h.to_lowercase()))
                .unwrap_or(&state.default_timeline);
            let body = timeline.page_for(op, cursor.as_deref());
            noted.handle = handle;
            body
        }
        "SearchTimeline" => {
            noted.search = variables["rawQuery"].as_str().map(str::to_owned);
            state.search_timeline.page_for(op, cursor.as_deref())
        }
        _ => {
            return api_json(
                StatusCode::NOT_FOUND,
                r#"{"errors":[{"message":"Query: Unspecified"}]}"#,
                limits,
            );
        }
    };
    api_json(StatusCode::OK, body.as_str().to_owned(), limits)
}

/// One step of the login flow (see `x_site/login.rs`).
fn login_step(shared: &Arc<Shared>, body: &Bytes, noted: &mut Noted) -> Response {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let step = request["step"].as_str().and_then(Step::parse);
    let value = request["value"].as_str().unwrap_or("").trim().to_owned();
    let token = request["flow_token"].as_str().map(str::to_owned);
    noted.login_step = request["step"].as_str().map(str::to_owned);
    let Some(step) = step else {
        return flow_answer(
            StatusCode::BAD_REQUEST,
            None,
            "error",
            Some("Unknown step."),
        );
    };
    let mut state = shared.state.lock();
    let state = &mut *state;

    if step == Step::Username {
        let found = state
            .accounts
            .iter()
            .find(|(key, a)| **key == value.to_lowercase() || a.email.eq_ignore_ascii_case(&value))
            .map(|(key, a)| (key.clone(), a.state));
        let Some((key, account_state)) = found else {
            return flow_answer(
                StatusCode::BAD_REQUEST,
                None,
                "error",
                Some(step.wrong_value_message()),
            );
        };
        let waiting_for = if account_state == AccountState::Challenge {
            Step::Challenge
        } else {
            Step::Password
        };
        let token = random_hex(32);
        noted.account = Some(key.clone());
        state.flows.insert(
            token.clone(),
            Flow {
                username: key,
                waiting_for,
            },
        );
        return flow_answer(StatusCode::OK, Some(&token), waiting_for.name(), None);
    }

    let Some((token, flow)) = token.and_then(|t| state.flows.get(&t).cloned().map(|f| (t, f)))
    else {
        return flow_answer(
            StatusCode::BAD_REQUEST,
            None,
            "error",
            Some("Something went wrong. Please start again."),
        );
    };
    noted.account = Some(flow.username.clone());
    if flow.waiting_for != step {
        return flow_answer(
            StatusCode::BAD_REQUEST,
            Some(&token),
            "error",
            Some("Something went wrong. Please start again."),
        );
    }
    let account = &state.accounts[&flow.username];
    let (right, next) = match step {
        Step::Username => unreachable!("handled above"),
        Step::Challenge => (
            account.email.eq_ignore_ascii_case(&value),
            Some(Step::Password),
        ),
        Step::Password => (
            account.password == value,
            account.totp.as_ref().map(|_| Step::Code),
        ),
        Step::Code => (
            account
                .totp
                .as_deref()
                .is_some_and(|secret| login::totp_accepts(secret, &value, login::unix_now())),
            None,
        ),
    };
    if !right {
        return flow_answer(
            StatusCode::BAD_REQUEST,
            Some(&token),
            "error",
            Some(step.wrong_value_message()),
        );
    }
    match next {
        Some(next) => {
            state.flows.insert(
                token.clone(),
                Flow {
                    username: flow.username,
                    waiting_for: next,
                },
            );
            flow_answer(StatusCode::OK, Some(&token), next.name(), None)
        }
        None => {
            state.flows.remove(&token);
            let cookies = new_session(state, &flow.username);
            let mut response = flow_answer(StatusCode::OK, Some(&token), "done", None);
            for cookie in cookies {
                let http_only = if cookie.http_only { "; HttpOnly" } else { "" };
                let set = format!(
                    "{}={}; Path={}; SameSite=Lax{http_only}",
                    cookie.name, cookie.value, cookie.path
                );
                response.headers_mut().append(
                    header::SET_COOKIE,
                    HeaderValue::from_str(&set).expect("cookie values are hex"),
                );
            }
            response
        }
    }
}

fn flow_answer(
    status: StatusCode,
    token: Option<&str>,
    next: &str,
    message: Option<&str>,
) -> Response {
    let mut body = json!({"next": next});
    if let Some(token) = token {
        body["flow_token"] = json!(token);
    }
    if let Some(message) = message {
        body["message"] = json!(message);
    }
    (status, axum::Json(body)).into_response()
}
