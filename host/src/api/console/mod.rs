//! The web console at `/ui` (SPEC §11): server-rendered HTML on the API's own listener.
//!
//! - Pages are [maud] templates compiled into the binary; the stylesheet and the one small
//!   script (the overview's polling) are embedded with `include_str!`. No CDN, no Node build.
//! - Every page reads, and every button acts, through the JSON API's own handler functions
//!   (`crate::api::rules::list`, `crate::api::notifications::replay`, ...), called with
//!   the same extractor values axum would build: there is no second code path to drift.
//! - No page loads a whole collection: rules come a page at a time through the stores'
//!   rule indexes, dead letters and lists are bounded by the handlers' `limit`, and the
//!   overview reads sizes (XLEN, ZCARD) and a short-lived cache of the document counts.
//! - [`auth`]: with `IMPRESSOX_API_TOKEN` set, a sign-in form and a signed session cookie;
//!   every POST carries a CSRF token and a cross-site `Origin` is refused.
//!
//! One file per page; [`NAV`] is the list the layout's menu is drawn from (RAG pages join
//! it when the RAG worker lands).

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use super::{ApiError, ApiState};

pub(super) mod auth;
mod chart;
mod counts;
mod dead_letters;
mod notifications;
mod overview;
mod plugins;
mod prices;
mod rules;
mod schedules;
mod scraper;

pub use counts::CountsCache;

/// The menu: path and title of every page, in order. A new page is one line here and a
/// file with its `page` function.
pub const NAV: &[(&str, &str)] = &[
    ("/ui", "Overview"),
    ("/ui/plugins", "Plugins"),
    ("/ui/rules", "Rules"),
    ("/ui/prices", "Prices"),
    ("/ui/notifications", "Notifications"),
    ("/ui/dead-letters", "Dead letters"),
    ("/ui/schedules", "Schedules & listeners"),
    ("/ui/scraper", "Scraper"),
];

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The console's routes, nested at `/ui` by the API's router.
pub fn router(state: ApiState) -> Router<ApiState> {
    use axum::routing::{get, post};
    Router::new()
        .route("/", get(overview::page))
        .route("/overview/live", get(overview::fragment))
        .route("/plugins", get(plugins::page))
        .route("/plugins/reload", post(plugins::reload))
        .route("/rules", get(rules::page))
        .route("/rules/{id}/enabled", post(rules::set_enabled))
        .route("/prices", get(prices::page))
        .route("/notifications", get(notifications::page))
        .route("/dead-letters", get(dead_letters::page))
        .route("/dead-letters/{id}/replay", post(dead_letters::replay))
        .route("/dead-letters/{id}/purge", post(dead_letters::purge))
        .route("/schedules", get(schedules::page))
        .route("/schedules/{name}/{action}", post(schedules::act))
        .route("/scraper", get(scraper::page))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route_layer(axum::middleware::from_fn_with_state(state, auth::guard))
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        JS,
    )
        .into_response()
}

/// What every page needs besides its own data: the CSRF token for its forms, and a
/// message from the action that led here.
pub struct Ctx {
    pub csrf: String,
    pub signed_in: bool,
    pub flash: Option<String>,
}

impl Ctx {
    fn from(state: &ApiState, headers: &HeaderMap, flash: Option<String>) -> Ctx {
        let session = auth::session_of(state, headers);
        Ctx {
            csrf: auth::csrf_for(state, session.as_deref()),
            signed_in: state.token.is_some() && session.is_some(),
            flash,
        }
    }
}

/// `?msg=` after an action (shown once, escaped like all text).
#[derive(serde::Deserialize, Default)]
pub struct Flash {
    pub msg: Option<String>,
}

/// The page around `body`: head, menu (with `current` marked), flash message.
pub fn layout(title: &str, current: &str, ctx: &Ctx, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ImpressoX console" }
                link rel="stylesheet" href="/ui/assets/console.css";
                script src="/ui/assets/console.js" defer {}
            }
            body {
                header {
                    span.brand { "ImpressoX" }
                    nav {
                        @for (path, name) in NAV {
                            a href=(path) class=[(*path == current).then_some("current")] { (name) }
                        }
                    }
                    @if ctx.signed_in {
                        form.inline method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(ctx.csrf);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(msg) = &ctx.flash {
                        p.flash role="status" { (msg) }
                    }
                    (body)
                }
            }
        }
    }
}

/// A full page as a response.
pub fn page_response(title: &str, current: &str, ctx: &Ctx, body: Markup) -> Response {
    html_response(StatusCode::OK, layout(title, current, ctx, body))
}

pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // Only our own script and stylesheet run; no page can be framed.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// A POST form with the CSRF token and one button.
pub fn button_form(action: &str, ctx: &Ctx, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            input type="hidden" name="csrf" value=(ctx.csrf);
            button type="submit" class=(class) { (label) }
        }
    }
}

/// An API error as the console shows it: the handler's own code and message.
pub fn error_box(e: &ApiError) -> Markup {
    html! {
        p.error role="alert" { strong { (e.code) } ": " (e.message) }
    }
}

/// A list the API answered under `key`, the shape most pages share: the handler's error,
/// `empty` when the list has no items (or is missing), else `table` of its items.
pub fn listing(
    result: &Result<Value, ApiError>,
    key: &str,
    empty: &str,
    table: impl FnOnce(&[Value]) -> Markup,
) -> Markup {
    match result {
        Err(e) => error_box(e),
        Ok(v) => match v[key].as_array() {
            Some(items) if !items.is_empty() => table(items),
            _ => html! { p.muted { (empty) } },
        },
    }
}

/// Back to `to` (a console path) with a message about what the action did.
pub fn after_action(to: &str, outcome: Result<String, ApiError>) -> Response {
    let msg = match outcome {
        Ok(m) => m,
        Err(e) => format!("{}: {}", e.code, e.message),
    };
    let to = if to.starts_with("/ui") { to } else { "/ui" };
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}msg={}", urlencode(&msg))).into_response()
}

/// Percent-encoding for a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A JSON value in a table cell: text as text, `null` as a dash, the rest as compact JSON.
pub fn cell(v: &Value) -> Markup {
    match v {
        Value::Null => html! { span.muted { "–" } },
        Value::String(s) => html! { (s) },
        Value::Bool(b) => html! { (if *b { "yes" } else { "no" }) },
        Value::Number(n) => html! { (n.to_string()) },
        other => html! { code { (other.to_string()) } },
    }
}

/// Milliseconds as a short age: `850 ms`, `12 s`, `3 min`, `5 h`.
pub fn age(ms: i64) -> String {
    match ms {
        ..0 => "–".into(),
        0..1000 => format!("{ms} ms"),
        1000..120_000 => format!("{} s", ms / 1000),
        120_000..7_200_000 => format!("{} min", ms / 60_000),
        _ => format!("{} h", ms / 3_600_000),
    }
}

/// The handlers' query types have private fields (and refuse unknown ones): the console
/// builds them as axum would, from key-value pairs.
pub fn query<T: serde::de::DeserializeOwned>(v: Value) -> Result<Query<T>, ApiError> {
    serde_json::from_value(v)
        .map(Query)
        .map_err(|e| ApiError::invalid("invalid_field", e.to_string()))
}

/// `State` for a handler call.
pub fn st(state: &ApiState) -> State<ApiState> {
    State(state.clone())
}
