//! Who may use the console, and the guard on its forms.
//!
//! - With `IMPRESSOX_API_TOKEN` set, `/ui` asks for the token once (`/ui/login`) and then
//!   keeps a session cookie. The cookie is not the token: it is an expiry (12 h) signed
//!   with HMAC-SHA-256 under a key derived from the token, so it is useless elsewhere,
//!   dies with a token change, and a stolen one expires. `HttpOnly` (no script reads
//!   it), `SameSite=Strict` (no other site's request carries it), `Path=/ui`.
//! - Every POST carries a CSRF token, an HMAC of the session under the same key, checked
//!   in constant time; a POST whose `Origin` (or `Sec-Fetch-Site`) says another site is
//!   refused before that. Without a token (loopback only) the key is random per process:
//!   the forms are still guarded, a page elsewhere in the browser cannot post to them.

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use maud::html;
use sha2::{Digest, Sha256};

use super::super::{ApiState, constant_time_eq};
use super::html_response;
use crate::util::now_ms;

const COOKIE: &str = "impressox_console";
/// How long a sign-in lasts.
pub const SESSION_MS: i64 = 12 * 3600 * 1000;
/// The largest form the console posts (a token, a CSRF token, a flag).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The signing key: from the token, or random for this process without one.
fn key(state: &ApiState) -> [u8; 32] {
    match &state.token {
        Some(token) => {
            let mut h = Sha256::new();
            h.update(b"impressox console session key\0");
            h.update(token.as_bytes());
            h.finalize().into()
        }
        None => *process_key(),
    }
}

fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        use std::io::Read;
        // The kernel's generator; without it the host could not run TLS either.
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut k))
            .expect("/dev/urandom is readable");
        k
    })
}

fn sign(key: &[u8; 32], what: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(what);
    hex::encode(mac.finalize().into_bytes())
}

/// A new session cookie's value: `<expiry ms>.<signature>`.
fn new_session(state: &ApiState) -> String {
    let expiry = now_ms() + SESSION_MS;
    format!(
        "{expiry}.{}",
        sign(&key(state), format!("session:{expiry}").as_bytes())
    )
}

/// The caller's valid session: the cookie's value when it is ours and unexpired. Without
/// a token every caller has the one open session.
pub fn session_of(state: &ApiState, headers: &HeaderMap) -> Option<String> {
    if state.token.is_none() {
        return Some("open".into());
    }
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, v)| v.to_string())?;
    let (expiry, signature) = value.split_once('.')?;
    let expected = sign(&key(state), format!("session:{expiry}").as_bytes());
    let fresh = expiry.parse::<i64>().is_ok_and(|e| e > now_ms());
    (fresh && constant_time_eq(signature.as_bytes(), expected.as_bytes())).then_some(value)
}

/// The CSRF token of a session (of no session: the sign-in form's).
pub fn csrf_for(state: &ApiState, session: Option<&str>) -> String {
    sign(
        &key(state),
        format!("csrf:{}", session.unwrap_or("")).as_bytes(),
    )
}

/// Paths anyone may fetch: the sign-in form and the static assets.
fn open_path(path: &str) -> bool {
    path == "/ui/login" || path.starts_with("/ui/assets/")
}

/// Whether a POST comes from another site: its `Origin` is not this host, or the
/// browser says so (`Sec-Fetch-Site: cross-site`).
fn cross_site(headers: &HeaderMap) -> bool {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if h("sec-fetch-site").is_some_and(|s| s == "cross-site" || s == "same-site") {
        return true;
    }
    match (h("origin"), h("host")) {
        (Some(origin), Some(host)) => {
            let bare = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            bare != Some(host)
        }
        // `Origin: null` without a host to compare, or a host-less request: refuse.
        (Some(_), None) => true,
        // Browsers send `Origin` on every POST; its absence is a script or curl, which
        // still needs the session and the CSRF token.
        (None, _) => false,
    }
}

fn refused(status: StatusCode, why: &str) -> Response {
    html_response(
        status,
        html! {
            (maud::DOCTYPE)
            html lang="en" { head { meta charset="utf-8"; title { "Refused" } link rel="stylesheet" href="/ui/assets/console.css"; }
              body { main { h1 { "Refused" } p.error role="alert" { (why) } p { a href="/ui/login" { "Sign in" } } } } }
        },
    )
}

/// The guard in front of every console route.
pub async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let path = request.extensions().get::<OriginalUri>().map_or_else(
        || request.uri().path().to_string(),
        |u| u.path().to_string(),
    );
    let session = session_of(&state, request.headers());
    if request.method() == Method::POST {
        if cross_site(request.headers()) {
            return refused(
                StatusCode::FORBIDDEN,
                "a form of another site cannot act here",
            );
        }
        if session.is_none() && path != "/ui/login" {
            return refused(StatusCode::UNAUTHORIZED, "sign in first");
        }
        // The CSRF token is in the form: read it, check it, hand the body on.
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return refused(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large");
        };
        let presented = form_field(&bytes, "csrf").unwrap_or_default();
        let expected = csrf_for(&state, session.as_deref());
        if !constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
            return refused(
                StatusCode::FORBIDDEN,
                "the form's CSRF token is missing or wrong; reload the page and try again",
            );
        }
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    if session.is_none() && !open_path(&path) {
        return Redirect::to("/ui/login").into_response();
    }
    next.run(request).await
}

/// One field of a urlencoded form.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded_pairs(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn form_urlencoded_pairs(body: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    body.split(|b| *b == b'&').filter_map(|pair| {
        let mut it = pair.splitn(2, |b| *b == b'=');
        let k = decode(it.next()?)?;
        let v = decode(it.next().unwrap_or_default())?;
        Some((k, v))
    })
}

fn decode(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => {
                let hex = std::str::from_utf8(&s[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn login_page(state: &ApiState, status: StatusCode, error: Option<&str>) -> Response {
    let csrf = csrf_for(state, None);
    html_response(
        status,
        html! {
            (maud::DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    title { "Sign in · ImpressoX console" }
                    link rel="stylesheet" href="/ui/assets/console.css";
                }
                body {
                    main.login {
                        h1 { "ImpressoX console" }
                        @if let Some(e) = error { p.error role="alert" { (e) } }
                        @if state.token.is_none() {
                            p { "This host has no API token: the console is open on loopback. " a href="/ui" { "Continue" } }
                        } @else {
                            form method="post" action="/ui/login" {
                                input type="hidden" name="csrf" value=(csrf);
                                label for="token" { "API token (IMPRESSOX_API_TOKEN)" }
                                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                                button type="submit" { "Sign in" }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub async fn login_form(State(state): State<ApiState>) -> Response {
    login_page(&state, StatusCode::OK, None)
}

/// Check the token (constant time); on success set the session cookie.
pub async fn login(State(state): State<ApiState>, body: axum::body::Bytes) -> Response {
    let Some(token) = &state.token else {
        return Redirect::to("/ui").into_response();
    };
    let presented = form_field(&body, "token").unwrap_or_default();
    if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        tracing::warn!("console sign-in with a wrong token");
        return login_page(&state, StatusCode::UNAUTHORIZED, Some("wrong token"));
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={}",
        new_session(&state),
        SESSION_MS / 1000
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/ui".into()),
        ],
    )
        .into_response()
}

pub async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/ui/login".into()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_cross_site_posts_are_told() {
        assert_eq!(
            form_field(b"csrf=ab%2Fc&token=a+b%21", "token").as_deref(),
            Some("a b!")
        );
        assert_eq!(form_field(b"csrf=ab%2Fc", "csrf").as_deref(), Some("ab/c"));
        assert_eq!(form_field(b"csrf=%zz", "csrf"), None);
        let mut h = HeaderMap::new();
        h.insert("host", "127.0.0.1:8080".parse().unwrap());
        assert!(!cross_site(&h));
        h.insert("origin", "http://127.0.0.1:8080".parse().unwrap());
        assert!(!cross_site(&h));
        h.insert("origin", "http://evil.example".parse().unwrap());
        assert!(cross_site(&h));
        h.insert("origin", "http://127.0.0.1:8080".parse().unwrap());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(cross_site(&h));
    }
}
