//! Shared helpers for the integration tests: build captures around the fixtures and
//! look results up by id.

#![allow(dead_code)] // each test binary uses its own subset

use impressox_plugin_sdk::types::{
    CapturedResponse, Header, PageCapture, Profile, ScrapeResult, Tweet,
};

pub const USER_TWEETS: &str = include_str!("../fixtures/user_tweets.json");
pub const USER_TWEETS_AND_REPLIES: &str = include_str!("../fixtures/user_tweets_and_replies.json");
pub const USER_BY_SCREEN_NAME: &str = include_str!("../fixtures/user_by_screen_name.json");
pub const SEARCH_TIMELINE: &str = include_str!("../fixtures/search_timeline.json");
pub const SEARCH_TIMELINE_PAGE2: &str = include_str!("../fixtures/search_timeline_page2.json");
pub const TWEET_DETAIL: &str = include_str!("../fixtures/tweet_detail.json");
pub const USER_TWEETS_PAGE2: &str = include_str!("../fixtures/user_tweets_page2.json");
pub const USER_TWEETS_PAGE3: &str = include_str!("../fixtures/user_tweets_page3.json");
pub const USER_TWEETS_END: &str = include_str!("../fixtures/user_tweets_end.json");
pub const USER_TWEETS_RETWEETS: &str = include_str!("../fixtures/user_tweets_retweets.json");
pub const ERROR_RATE_LIMIT: &str = include_str!("../fixtures/error_rate_limit.json");
pub const ERROR_LOCKED: &str = include_str!("../fixtures/error_locked.json");

// Users.
pub const ANA: &str = "1453287640927653889";
pub const MARIA: &str = "1187766013250084864";
pub const PETE: &str = "14567890";
pub const SATS: &str = "1320011223344556677";
pub const BOT: &str = "1601122334455667788";

// user_tweets.json
pub const A: &str = "1990714142880702470"; // plain tweet, $BTC $ETH, photo
pub const B: &str = "1990528284881858569"; // TweetWithVisibilityResults, video
pub const C: &str = "1985045452944314371"; // pinned note tweet
pub const D: &str = "1987852738360262668"; // promoted
pub const E: &str = "1989966667576266767"; // tombstone
pub const F: &str = "1990088105259986965"; // retweet of M1
pub const M1: &str = "1990083726406606866"; // Maria's retweeted tweet
pub const G: &str = "1989654611358683163"; // quote of an absent tweet
pub const Q_ABSENT: &str = "1764954002027479064";
pub const P1: &str = "1989241388528607262"; // Pete, in a conversation module
pub const H: &str = "1989249630335971361"; // Ana's reply to P1
pub const I: &str = "1989045598417895460"; // malformed
// user_tweets_page2.json (scrolled once)
pub const J: &str = "1988664336184348747"; // plain, $BTC $ETH
pub const K: &str = "1988337180472352846"; // TweetWithVisibilityResults, $SOL
pub const N: &str = "1987810459776036945"; // note tweet, $ARB $OP $TIA past 280 characters
pub const D2: &str = "1987490350494761044"; // promoted
pub const E2: &str = "1987429952517165143"; // tombstone
pub const L: &str = "1987195910353969242"; // plain, $LINK
// user_tweets_page3.json (scrolled twice)
pub const O: &str = "1986493783864373341";
pub const U: &str = "1985969076433977440";
// The bottom cursors of user_tweets.json, _page2 and _page3 (_end repeats page 3's).
pub const BOTTOM1: &str = "DAABCgABG6dxr4R__-YKAAIbn9BOpBaRFggAAwAAAAIAAA";
pub const BOTTOM2: &str = "DAABCgABG6dxr4R__-YKAAIbnVvJkFqRYQgAAwAAAAIAAA";
pub const BOTTOM3: &str = "DAABCgABG6dxr4R__-YKAAIbmu7wYBqRhAgAAwAAAAIAAA";
// user_tweets_retweets.json
pub const W1: &str = "1991026148766781539"; // Pete's long note tweet, names @DeFi_Maria and @defi_maria
pub const RT1: &str = "1991038731678785638"; // Ana retweets W1 (X's text cut to 140 characters)
pub const W2: &str = "1990912902558789737"; // Maria's long note tweet behind a visibility wrapper
pub const RT2: &str = "1991031181931593836"; // Ana retweets W2
pub const W3: &str = "1990887736734797935"; // a short tweet by satsandcharts
pub const RT3: &str = "1991008532690002034"; // Ana retweets W3 (whole already)
// user_tweets_and_replies.json
pub const P2: &str = "1983785941201899559";
pub const A2: &str = "1983792282989551658";
pub const P3: &str = "1983796137554931757";
// search_timeline*.json
pub const S1: &str = "1990722158195703856";
pub const S2: &str = "1990722061726715955";
pub const S3: &str = "1990721180922880054"; // quotes A (present)
pub const S4: &str = "1990719125713924153"; // TweetUnavailable
pub const S5: &str = "1990718874055688252"; // promoted
pub const S6: &str = "1990716609131532351"; // page 2
// tweet_detail.json
pub const R1: &str = "1990716860789776450";
pub const R2: &str = "1990717741593620549";
pub const R3: &str = "1990725417169944648";

pub fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.to_string(),
        value: value.to_string(),
    }
}

/// A GraphQL response of `op` as Chromium reports it.
pub fn gql(op: &str, status: u16, body: &str) -> CapturedResponse {
    CapturedResponse {
        url: format!(
            "https://x.com/i/api/graphql/V7H0Ap3_Hh2FyS75OCDO3Q/{op}?variables=%7B%22count%22%3A20%7D&features=%7B%7D"
        ),
        status,
        headers: vec![header("content-type", "application/json;charset=utf-8")],
        body: body.to_string(),
    }
}

/// The same, carrying `x-rate-limit-*` headers (mixed case, as proxies rewrite them).
pub fn gql_limited(
    op: &str,
    status: u16,
    body: &str,
    limit: u32,
    remaining: u32,
    reset: i64,
) -> CapturedResponse {
    let mut r = gql(op, status, body);
    r.headers
        .push(header("X-Rate-Limit-Limit", &limit.to_string()));
    r.headers
        .push(header("x-rate-limit-remaining", &remaining.to_string()));
    r.headers
        .push(header("x-rate-limit-reset", &reset.to_string()));
    r
}

pub fn capture(url: &str, responses: Vec<CapturedResponse>) -> PageCapture {
    PageCapture {
        url: url.to_string(),
        html: "<html><body></body></html>".to_string(),
        responses,
        captured_at_ms: 1_763_461_000_000,
    }
}

pub fn parse(capture: &PageCapture) -> ScrapeResult {
    match x_timeline::parse_capture(capture) {
        Ok(r) => r,
        Err(e) => panic!("parse_capture failed: {e}"),
    }
}

pub fn tweet<'a>(r: &'a ScrapeResult, id: &str) -> &'a Tweet {
    r.tweets
        .iter()
        .find(|t| t.id == id)
        .unwrap_or_else(|| panic!("no tweet {id}"))
}

pub fn profile<'a>(r: &'a ScrapeResult, id: &str) -> &'a Profile {
    r.profiles
        .iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("no profile {id}"))
}

pub fn tweet_ids(r: &ScrapeResult) -> Vec<&str> {
    r.tweets.iter().map(|t| t.id.as_str()).collect()
}

pub fn usernames(r: &ScrapeResult) -> Vec<&str> {
    r.profiles.iter().map(|p| p.username.as_str()).collect()
}

pub fn skipped(r: &ScrapeResult) -> Vec<(&str, &str)> {
    r.skipped
        .iter()
        .map(|s| (s.entry_id.as_str(), s.reason.as_str()))
        .collect()
}

pub fn cursors(r: &ScrapeResult) -> Vec<(&'static str, &str)> {
    use impressox_plugin_sdk::types::CursorKind;
    r.cursors
        .iter()
        .map(|c| {
            let kind = match c.kind {
                CursorKind::Top => "top",
                CursorKind::Bottom => "bottom",
                CursorKind::Other => "other",
            };
            (kind, c.value.as_str())
        })
        .collect()
}

pub fn signal(r: &ScrapeResult) -> &'static str {
    use impressox_plugin_sdk::types::AccountSignal;
    match r.account_signal {
        AccountSignal::Ok => "ok",
        AccountSignal::RateLimited => "rate-limited",
        AccountSignal::Locked => "locked",
        AccountSignal::Banned => "banned",
        AccountSignal::BadAuth => "bad-auth",
    }
}

pub fn rate_limits(r: &ScrapeResult) -> Vec<(&str, u32, u32, i64)> {
    r.rate_limits
        .iter()
        .map(|l| {
            (
                l.endpoint.as_str(),
                l.limit,
                l.remaining,
                l.reset_epoch_secs,
            )
        })
        .collect()
}
