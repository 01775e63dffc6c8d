//! `x-timeline`: a scrape-parser plugin that reads X (Twitter) pages captured by the
//! host's browser.
//!
//! The browser lets X's own web app make its GraphQL calls; the host captures the
//! responses and hands them over as a [`PageCapture`]. This plugin:
//! - picks the responses of the GraphQL operations it knows (module `graphql`): `UserTweets`,
//!   `UserTweetsAndReplies`, `SearchTimeline`, `TweetDetail` (timelines, module `timeline`) and
//!   `UserByScreenName` (a profile, module `user`);
//! - normalizes tweets to twscrape's field set (module `tweet`) and users of all three shapes X
//!   has used to the `profile` record, each deduplicated by id within the capture;
//! - reads pagination cursors, `x-rate-limit-*` budgets of every GraphQL response, and
//!   what the responses and the final page URL say about the account (module `signals`).
//!
//! An entry that cannot be read lands in `skipped` with its entryId and the reason; the
//! rest of the page is still returned. [`parse_capture`] fails only when the capture held
//! GraphQL responses of known operations, none of them could be read, and there is no
//! rate limit or account signal to report either. A capture without any such response
//! (e.g. a login redirect) is a success with empty lists.
//!
//! Signals: error code 88 → `rate-limited` (but `locked` while `x-rate-limit-remaining`
//! is above 0), 326 → `locked`, 64 → `banned`, 32/89/353 → `bad-auth`; HTTP 429 →
//! `rate-limited`, 401 → `bad-auth`, a 403 without a known code → `banned`; a final page
//! URL of `/account/access` → `locked`, `/login` or `/i/flow/login` → `bad-auth` (the
//! session was rejected; logging in again may fix it). The most severe signal wins.
//!
//! The parsing is plain Rust over `serde_json::Value` (one parse per response), callable
//! natively through [`parse_capture`]; the [`ScrapeParser`] implementation is a thin
//! wrapper, exported as a component only when built for wasm. Every list keeps the order
//! of the capture; `raw-json` is the object as X sent it (keys re-ordered by serde_json).
//! Hashtags and cashtags come without `#`/`$`, as X's entities (and twscrape) give them.

mod collect;
mod graphql;
mod json;
mod signals;
mod text;
mod timeline;
mod tweet;
mod user;

use impressox_plugin_sdk::ScrapeParser;
use impressox_plugin_sdk::types::{AccountSignal, CapturedResponse, PageCapture, ScrapeResult};
use serde_json::Value;

use collect::Collector;
use graphql::Operation;

pub use text::{decode_entities, x_date_to_rfc3339};

/// The plugin.
pub struct XTimeline;

impl ScrapeParser for XTimeline {
    const NAME: &'static str = "x-timeline";
    const DESCRIPTION: &'static str = "X GraphQL pages (UserTweets, UserTweetsAndReplies, SearchTimeline, TweetDetail, UserByScreenName)";

    fn parse(capture: PageCapture) -> Result<ScrapeResult, String> {
        parse_capture(&capture)
    }
}

// Exported only in the .wasm: a native build links this crate as an rlib (tests, the
// wasm-vs-native benchmark), where the component's export symbols would serve no purpose
// and could clash with another plugin's.
#[cfg(target_arch = "wasm32")]
impressox_plugin_sdk::export_scrape_parser!(XTimeline);

/// Parse one captured page into tweets, profiles, cursors, rate limits, the account
/// signal and the entries that could not be read. See the crate docs for when it fails.
pub fn parse_capture(capture: &PageCapture) -> Result<ScrapeResult, String> {
    let mut out = Collector::default();
    let mut rate_limits = Vec::new();
    let mut signal = signals::from_page_url(&capture.url).unwrap_or(AccountSignal::Ok);
    let mut wanted = 0_usize;
    let mut readable = 0_usize;
    let mut failures: Vec<(&'static str, String)> = Vec::new();

    for response in &capture.responses {
        let name = graphql::operation(&response.url);
        let limit = name.and_then(|n| signals::rate_limit(n, &response.headers));
        let remaining = limit.as_ref().map(|l| l.remaining);
        rate_limits.extend(limit);
        if name.is_none() && !graphql::is_api_url(&response.url) {
            continue;
        }

        let mut response_signal = signals::from_status(response.status);
        match name.and_then(Operation::from_name) {
            Some(op) => {
                wanted += 1;
                match read_body(response) {
                    Ok(body) => {
                        readable += 1;
                        // A known error code is more specific than the status (a 403 that
                        // says 326 is a lock, not a ban).
                        if let Some(s) = signals::from_errors(&body, remaining) {
                            response_signal = Some(s);
                        }
                        collect_operation(op, &body, &mut out);
                    }
                    Err(e) => failures.push((op.name(), e)),
                }
            }
            // Other API calls are parsed only when they look like an error body: their
            // data is not ours to read, but their error codes speak about the account.
            None if response.body.contains("\"errors\"") => {
                if let Ok(body) = serde_json::from_str::<Value>(&response.body)
                    && let Some(s) = signals::from_errors(&body, remaining)
                {
                    response_signal = Some(s);
                }
            }
            None => {}
        }
        if let Some(s) = response_signal {
            signal = signals::worse(signal, s);
        }
    }

    let nothing_to_report = rate_limits.is_empty() && matches!(signal, AccountSignal::Ok);
    if wanted > 0 && readable == 0 && nothing_to_report {
        let reasons: Vec<String> = failures
            .iter()
            .map(|(op, e)| format!("{op}: {e}"))
            .collect();
        return Err(format!(
            "no GraphQL response could be read: {}",
            reasons.join("; ")
        ));
    }
    for (op, reason) in failures {
        out.skip(&format!("response:{op}"), reason);
    }

    Ok(ScrapeResult {
        tweets: out.tweets,
        profiles: out.profiles,
        cursors: out.cursors,
        rate_limits,
        account_signal: signal,
        skipped: out.skipped,
    })
}

/// The body of a known operation as JSON, or why it cannot be read. A body must be an
/// object with `data` or `errors` to count as an X GraphQL answer.
fn read_body(response: &CapturedResponse) -> Result<Value, String> {
    if response.body.trim().is_empty() {
        return Err(format!("HTTP {}: empty body", response.status));
    }
    let body: Value = serde_json::from_str(&response.body)
        .map_err(|e| format!("HTTP {}: body is not JSON: {e}", response.status))?;
    if json::at(&body, &["data"]).is_none() && json::at(&body, &["errors"]).is_none() {
        return Err(format!(
            "HTTP {}: JSON without data or errors",
            response.status
        ));
    }
    Ok(body)
}

fn collect_operation(op: Operation, body: &Value, out: &mut Collector) {
    // An error-only body (rate limit, lock) has no data by design; it is reported through
    // the account signal, not as a skipped response.
    let has_errors = json::at(body, &["errors"]).is_some();
    let response_id = || format!("response:{}", op.name());
    match op {
        Operation::UserByScreenName => match json::at(body, &["data", "user", "result"]) {
            Some(user) => {
                if let Err(e) = user::collect(user, out) {
                    out.skip(&response_id(), e);
                }
            }
            None if has_errors => {}
            // `data.user` is `{}` when the handle does not exist.
            None => out.skip(&response_id(), "no data.user.result (no such user?)"),
        },
        Operation::UserTweets
        | Operation::UserTweetsAndReplies
        | Operation::SearchTimeline
        | Operation::TweetDetail => match timeline::instructions(body) {
            Some(Ok(instructions)) => timeline::collect_instructions(instructions, out),
            Some(Err(e)) => out.skip(&response_id(), e),
            None if has_errors => {}
            None => out.skip(&response_id(), "no timeline instructions"),
        },
    }
}
