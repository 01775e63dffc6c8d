//! Rate-limit facts and account signals read off captured responses and the page URL.
//!
//! How signals are chosen (REFERENCE.md "Limits and bans", plus the choices it leaves):
//!
//! | seen | signal | why |
//! |---|---|---|
//! | error code 88, `x-rate-limit-remaining` absent or 0 | `rate-limited` | a plain budget limit |
//! | error code 88 while `remaining` > 0 | `locked` | X hides a locked account behind 88 |
//! | error code 326 | `locked` | "this account is temporarily locked" |
//! | error code 64 | `banned` | "your account is suspended" |
//! | error codes 32, 89, 353 | `bad-auth` | could not authenticate / expired token / csrf mismatch |
//! | HTTP 429 | `rate-limited` | |
//! | HTTP 401 | `bad-auth` | the session is not accepted |
//! | HTTP 403 without a known error code | `banned` | X answers 403 to suspended accounts; a locked one says 326 in the body, which wins over the status |
//! | page URL path `/account/access` | `locked` | X's unlock (captcha / confirm) flow |
//! | page URL path `/login` or `/i/flow/login` | `bad-auth` | the session was rejected; logging in again may fix it, so it is not a ban |
//!
//! Only X API responses count (`/i/api/...`, `api.x.com`); a failing image request says
//! nothing about the account. When several signals are seen, the most severe wins:
//! banned > locked > bad-auth > rate-limited > ok. A successful response whose
//! `remaining` is 0 is not a signal: its `rate-limit` record already tells the host.

use impressox_plugin_sdk::types::{AccountSignal, Header, RateLimit};
use serde_json::Value;

use crate::json;

/// A header's value by case-insensitive name (Chromium reports them lower-case, but a
/// stand-in or a proxy may not).
fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.trim())
}

/// The budget facts of one response, when all three `x-rate-limit-*` headers are there
/// and readable; a partial set is useless to the host, so it is ignored.
pub(crate) fn rate_limit(endpoint: &str, headers: &[Header]) -> Option<RateLimit> {
    Some(RateLimit {
        endpoint: endpoint.to_string(),
        limit: header(headers, "x-rate-limit-limit")?.parse().ok()?,
        remaining: header(headers, "x-rate-limit-remaining")?.parse().ok()?,
        reset_epoch_secs: header(headers, "x-rate-limit-reset")?.parse().ok()?,
    })
}

/// What an HTTP status alone says about the account.
pub(crate) fn from_status(status: u16) -> Option<AccountSignal> {
    match status {
        429 => Some(AccountSignal::RateLimited),
        401 => Some(AccountSignal::BadAuth),
        403 => Some(AccountSignal::Banned),
        _ => None,
    }
}

/// What X's `errors[].code` say, given the `remaining` budget of the same response.
pub(crate) fn from_errors(body: &Value, remaining: Option<u32>) -> Option<AccountSignal> {
    let errors = json::array_at(body, &["errors"]).ok()?;
    errors
        .iter()
        .filter_map(|e| json::u64_at(e, &["code"]).ok().flatten())
        .filter_map(|code| from_code(code, remaining))
        .reduce(worse)
}

fn from_code(code: u64, remaining: Option<u32>) -> Option<AccountSignal> {
    match code {
        88 if remaining.is_some_and(|r| r > 0) => Some(AccountSignal::Locked),
        88 => Some(AccountSignal::RateLimited),
        326 => Some(AccountSignal::Locked),
        64 => Some(AccountSignal::Banned),
        32 | 89 | 353 => Some(AccountSignal::BadAuth),
        _ => None,
    }
}

/// What the final page URL says: X redirects a rejected session to its login flow and a
/// locked account to `/account/access`.
pub(crate) fn from_page_url(url: &str) -> Option<AccountSignal> {
    let path = url_path(url);
    match path.trim_end_matches('/') {
        "/account/access" => Some(AccountSignal::Locked),
        "/login" | "/i/flow/login" => Some(AccountSignal::BadAuth),
        _ => None,
    }
}

/// The path of an absolute or path-only URL, without query or fragment.
fn url_path(url: &str) -> &str {
    let after_scheme = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("/"),
        None => url,
    };
    after_scheme.split(['?', '#']).next().unwrap_or("")
}

fn severity(s: AccountSignal) -> u8 {
    match s {
        AccountSignal::Ok => 0,
        AccountSignal::RateLimited => 1,
        AccountSignal::BadAuth => 2,
        AccountSignal::Locked => 3,
        AccountSignal::Banned => 4,
    }
}

/// The more severe of two signals.
pub(crate) fn worse(a: AccountSignal, b: AccountSignal) -> AccountSignal {
    if severity(b) > severity(a) { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(name: &str, value: &str) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn rate_limit_headers_are_case_insensitive_and_complete() {
        let headers = [
            h("X-Rate-Limit-Limit", "50"),
            h("x-rate-limit-remaining", " 49 "),
            h("X-RATE-LIMIT-RESET", "1764300900"),
        ];
        let rl = rate_limit("SearchTimeline", &headers);
        assert!(rl.is_some());
        if let Some(rl) = rl {
            assert_eq!(
                (
                    rl.endpoint.as_str(),
                    rl.limit,
                    rl.remaining,
                    rl.reset_epoch_secs
                ),
                ("SearchTimeline", 50, 49, 1_764_300_900)
            );
        }
        assert!(rate_limit("X", &headers[..2]).is_none());
        assert!(
            rate_limit(
                "X",
                &[
                    h("x-rate-limit-limit", "a"),
                    h("x-rate-limit-remaining", "1"),
                    h("x-rate-limit-reset", "1")
                ]
            )
            .is_none()
        );
    }

    #[test]
    fn error_codes() {
        let body = |code: u64| json!({"errors": [{"message": "m", "code": code}]});
        assert_eq!(
            from_errors(&body(88), None),
            Some(AccountSignal::RateLimited)
        );
        assert_eq!(
            from_errors(&body(88), Some(0)),
            Some(AccountSignal::RateLimited)
        );
        assert_eq!(
            from_errors(&body(88), Some(12)),
            Some(AccountSignal::Locked)
        );
        assert_eq!(from_errors(&body(326), None), Some(AccountSignal::Locked));
        assert_eq!(from_errors(&body(64), None), Some(AccountSignal::Banned));
        assert_eq!(from_errors(&body(32), None), Some(AccountSignal::BadAuth));
        assert_eq!(from_errors(&body(214), None), None);
        assert_eq!(from_errors(&json!({"errors": "nope"}), None), None);
        assert_eq!(
            from_errors(
                &json!({"errors": [{"code": 88}, {"code": 326}, {"code": "x"}]}),
                None
            ),
            Some(AccountSignal::Locked)
        );
    }

    #[test]
    fn statuses_and_page_urls() {
        assert_eq!(from_status(200), None);
        assert_eq!(from_status(429), Some(AccountSignal::RateLimited));
        assert_eq!(from_status(403), Some(AccountSignal::Banned));
        assert_eq!(from_status(401), Some(AccountSignal::BadAuth));
        assert_eq!(
            from_page_url("https://x.com/account/access"),
            Some(AccountSignal::Locked)
        );
        assert_eq!(
            from_page_url("https://x.com/i/flow/login?redirect_after_login=%2Fsomeone"),
            Some(AccountSignal::BadAuth)
        );
        assert_eq!(
            from_page_url("https://x.com/login/"),
            Some(AccountSignal::BadAuth)
        );
        assert_eq!(from_page_url("/login"), Some(AccountSignal::BadAuth));
        assert_eq!(from_page_url("https://x.com/someone"), None);
        assert_eq!(from_page_url("https://x.com"), None);
        assert_eq!(from_page_url("https://x.com/search?q=%2Flogin"), None);
    }

    #[test]
    fn most_severe_wins() {
        assert_eq!(
            worse(AccountSignal::Ok, AccountSignal::RateLimited),
            AccountSignal::RateLimited
        );
        assert_eq!(
            worse(AccountSignal::Banned, AccountSignal::Locked),
            AccountSignal::Banned
        );
        assert_eq!(
            worse(AccountSignal::BadAuth, AccountSignal::Locked),
            AccountSignal::Locked
        );
    }
}
