//! Account signals, rate limits, unreadable responses and when parsing fails as a whole.

mod common;

use common::*;
use impressox_plugin_sdk::types::CapturedResponse;

#[test]
fn error_88_with_the_budget_spent_is_a_rate_limit() {
    let r = parse(&capture(
        "https://x.com/coinledger_ana",
        vec![gql_limited(
            "UserTweets",
            429,
            ERROR_RATE_LIMIT,
            500,
            0,
            1_763_462_700,
        )],
    ));
    assert_eq!(signal(&r), "rate-limited");
    assert_eq!(rate_limits(&r), [("UserTweets", 500, 0, 1_763_462_700)]);
    assert!(r.tweets.is_empty() && r.profiles.is_empty() && r.skipped.is_empty());
}

#[test]
fn error_88_while_budget_remains_means_locked() {
    let r = parse(&capture(
        "https://x.com/coinledger_ana",
        vec![gql_limited(
            "UserTweets",
            200,
            ERROR_RATE_LIMIT,
            500,
            37,
            1_763_462_700,
        )],
    ));
    assert_eq!(signal(&r), "locked");
}

#[test]
fn error_326_is_locked_even_on_a_403() {
    let r = parse(&capture(
        "https://x.com/coinledger_ana",
        vec![gql("UserTweets", 403, ERROR_LOCKED)],
    ));
    assert_eq!(signal(&r), "locked");
    assert!(r.skipped.is_empty());
}

#[test]
fn bare_403_is_banned_and_the_empty_body_is_listed() {
    let r = parse(&capture(
        "https://x.com/coinledger_ana",
        vec![gql("UserTweets", 403, "")],
    ));
    assert_eq!(signal(&r), "banned");
    assert_eq!(
        skipped(&r),
        [("response:UserTweets", "HTTP 403: empty body")]
    );
}

#[test]
fn error_codes_32_and_64() {
    let r = parse(&capture(
        "https://x.com/home",
        vec![gql(
            "UserByScreenName",
            401,
            r#"{"errors":[{"message":"Could not authenticate you","code":32}]}"#,
        )],
    ));
    assert_eq!(signal(&r), "bad-auth");
    let r = parse(&capture(
        "https://x.com/home",
        vec![gql(
            "UserByScreenName",
            403,
            r#"{"errors":[{"message":"Your account is suspended","code":64}]}"#,
        )],
    ));
    assert_eq!(signal(&r), "banned");
}

#[test]
fn plain_429_with_a_text_body() {
    let r = parse(&capture(
        "https://x.com/search?q=%24ETH",
        vec![gql_limited(
            "SearchTimeline",
            429,
            "Rate limit exceeded\n",
            50,
            0,
            1_763_462_800,
        )],
    ));
    assert_eq!(signal(&r), "rate-limited");
    assert_eq!(rate_limits(&r), [("SearchTimeline", 50, 0, 1_763_462_800)]);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].entry_id, "response:SearchTimeline");
    assert!(
        r.skipped[0]
            .reason
            .starts_with("HTTP 429: body is not JSON"),
        "{}",
        r.skipped[0].reason
    );
}

#[test]
fn page_redirects() {
    let r = parse(&capture("https://x.com/account/access", vec![]));
    assert_eq!(signal(&r), "locked");
    let r = parse(&capture(
        "https://x.com/i/flow/login?redirect_after_login=%2Fcoinledger_ana",
        vec![],
    ));
    assert_eq!(signal(&r), "bad-auth");
    let r = parse(&capture("https://x.com/login", vec![]));
    assert_eq!(signal(&r), "bad-auth");
}

#[test]
fn other_graphql_operations_count_for_limits_and_signals_only() {
    let r = parse(&capture(
        "https://x.com/coinledger_ana/media",
        vec![
            gql_limited("UserMedia", 429, ERROR_RATE_LIMIT, 500, 0, 1_763_463_000),
            gql_limited(
                "UserByScreenName",
                200,
                USER_BY_SCREEN_NAME,
                95,
                94,
                1_763_463_100,
            ),
        ],
    ));
    assert_eq!(signal(&r), "rate-limited");
    assert_eq!(
        rate_limits(&r),
        [
            ("UserMedia", 500, 0, 1_763_463_000),
            ("UserByScreenName", 95, 94, 1_763_463_100)
        ]
    );
    assert_eq!(r.profiles.len(), 1);
    assert!(r.tweets.is_empty() && r.skipped.is_empty());
}

#[test]
fn the_most_severe_signal_wins_and_non_api_failures_do_not_count() {
    let image = CapturedResponse {
        url: "https://pbs.twimg.com/media/G6xkQ2pWgAAj3Lr.jpg".into(),
        status: 403,
        headers: vec![],
        body: String::new(),
    };
    let r = parse(&capture(
        "https://x.com/coinledger_ana",
        vec![image.clone(), gql("UserTweets", 200, USER_TWEETS)],
    ));
    assert_eq!(signal(&r), "ok");
    let r = parse(&capture(
        "https://x.com/coinledger_ana",
        vec![
            gql("UserTweets", 429, ERROR_RATE_LIMIT),
            gql("UserByScreenName", 403, ERROR_LOCKED),
            image,
            gql("UserTweets", 200, USER_TWEETS),
        ],
    ));
    assert_eq!(signal(&r), "locked");
    assert_eq!(r.tweets.len(), 8);
}

#[test]
fn an_error_from_a_rest_endpoint_counts() {
    let rest = CapturedResponse {
        url: "https://x.com/i/api/1.1/account/settings.json".into(),
        status: 200,
        headers: vec![],
        body: ERROR_LOCKED.into(),
    };
    let r = parse(&capture("https://x.com/home", vec![rest]));
    assert_eq!(signal(&r), "locked");
}

#[test]
fn empty_capture_is_ok_and_empty() {
    let r = parse(&capture("https://x.com/coinledger_ana", vec![]));
    assert!(r.tweets.is_empty() && r.profiles.is_empty() && r.cursors.is_empty());
    assert!(r.rate_limits.is_empty() && r.skipped.is_empty());
    assert_eq!(signal(&r), "ok");
    let other = CapturedResponse {
        url: "https://abs.twimg.com/responsive-web/client-web/main.js".into(),
        status: 200,
        headers: vec![],
        body: "not json".into(),
    };
    assert!(x_timeline::parse_capture(&capture("https://x.com/", vec![other])).is_ok());
}

#[test]
fn nothing_readable_and_nothing_to_report_is_an_error() {
    let err = x_timeline::parse_capture(&capture(
        "https://x.com/coinledger_ana",
        vec![gql("UserTweets", 200, "<html>oops</html>")],
    ));
    let msg = err.expect_err("an error");
    assert!(
        msg.starts_with(
            "no GraphQL response could be read: UserTweets: HTTP 200: body is not JSON"
        ),
        "{msg}"
    );

    let err = x_timeline::parse_capture(&capture(
        "https://x.com/coinledger_ana",
        vec![gql("TweetDetail", 200, "[1,2]")],
    ));
    assert_eq!(
        err.err().as_deref(),
        Some(
            "no GraphQL response could be read: TweetDetail: HTTP 200: JSON without data or errors"
        )
    );
}

#[test]
fn a_broken_response_never_loses_a_good_one() {
    let r = parse(&capture(
        "https://x.com/coinledger_ana",
        vec![
            gql("UserTweets", 200, "{\"data\": {\"user\""),
            gql("UserTweets", 200, USER_TWEETS),
        ],
    ));
    assert_eq!(r.tweets.len(), 8);
    assert_eq!(r.skipped.len(), 3, "{:?}", skipped(&r));
    let last = &r.skipped[2];
    assert_eq!(last.entry_id, "response:UserTweets");
    assert!(
        last.reason.starts_with("HTTP 200: body is not JSON"),
        "{}",
        last.reason
    );
}

#[test]
fn wrong_shapes_inside_a_response_are_skipped_not_fatal() {
    let r = parse(&capture(
        "https://x.com/coinledger_ana",
        vec![gql(
            "UserTweets",
            200,
            r#"{"data":{"user":{"result":{"timeline":{"timeline":{"instructions":"x"}}}}}}"#,
        )],
    ));
    assert_eq!(
        skipped(&r),
        [(
            "response:UserTweets",
            "data.user.result.timeline.timeline.instructions is a string, expected an array"
        )]
    );
    let r = parse(&capture(
        "https://x.com/coinledger_ana",
        vec![gql("UserTweets", 200, r#"{"data":{"user":{}}}"#)],
    ));
    assert_eq!(
        skipped(&r),
        [("response:UserTweets", "no timeline instructions")]
    );
    // Garbage of every type in entries never panics.
    let body = r#"{"data":{"user":{"result":{"timeline":{"timeline":{"instructions":[
        {"type":"TimelineAddEntries","entries":[1,"x",null,[],{"entryId":5},
          {"entryId":"tweet-1","content":{"itemContent":{"tweet_results":{"result":{"__typename":"Tweet","rest_id":1}}}}},
          {"entryId":"tweet-2","content":{"itemContent":{"tweet_results":{"result":{"__typename":"Tweet","rest_id":"2","legacy":[]}}}}},
          {"entryId":"tweet-3","content":{"itemContent":{"tweet_results":{"result":{"__typename":"Weird"}}}}},
          {"entryId":"tweet-4","content":{"items":{}}},
          {"entryId":"cursor-top-1","content":{"value":7}}
        ]},
        {"type":"TimelineAddEntries"},7,null]}}}}}}"#;
    let r = parse(&capture(
        "https://x.com/coinledger_ana",
        vec![gql("UserTweets", 200, body)],
    ));
    assert!(r.tweets.is_empty());
    assert_eq!(
        skipped(&r),
        [
            ("", "entry has no entryId"),
            ("", "entry has no entryId"),
            ("", "entry has no entryId"),
            ("", "entry has no entryId"),
            ("", "entryId is a number, expected a string"),
            ("tweet-1", "rest_id is a number, expected a string"),
            ("tweet-2", "legacy.created_at is missing"),
            ("tweet-3", "unknown tweet __typename Weird"),
            ("tweet-4", "content.items is an object, expected an array"),
            ("cursor-top-1", "value is a number, expected a string"),
        ]
    );
}
