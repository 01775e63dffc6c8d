//! The pages X sends while a profile is scrolled (`user_tweets_page2.json`, `_page3`, `_end`):
//! each parses on its own, the cursors chain page to page, and the last page is X's end of the
//! timeline. The host's stand-in X serves these pages by cursor, so these tests pin what the
//! scraper's tests rely on.

mod common;

use common::*;

fn page(body: &str) -> impressox_plugin_sdk::types::ScrapeResult {
    parse(&capture(
        "https://x.com/coinledger_ana",
        vec![gql_limited(
            "UserTweets",
            200,
            body,
            500,
            497,
            1_763_461_800,
        )],
    ))
}

fn num(id: &str) -> u64 {
    id.parse().expect("numeric tweet id")
}

#[test]
fn second_page_holds_older_tweets_without_promoted_or_tombstoned() {
    let r = page(USER_TWEETS_PAGE2);
    assert_eq!(tweet_ids(&r), [J, K, N, L]);
    assert!(!tweet_ids(&r).contains(&D2), "promoted tweet kept");
    assert!(!usernames(&r).contains(&"yieldvault_io"), "advertiser kept");
    assert_eq!(
        skipped(&r),
        [(
            format!("tweet-{E2}").as_str(),
            "TweetTombstone: This Post was deleted by the Post author. Learn more"
        )]
    );
    assert_eq!(cursors(&r), [("top", BOTTOM1), ("bottom", BOTTOM2)]);
    assert_eq!(rate_limits(&r), [("UserTweets", 500, 497, 1_763_461_800)]);
    assert_eq!(signal(&r), "ok");
    assert_eq!(usernames(&r), ["coinledger_ana"]);

    // Every tweet is older than everything the owner has on page 1 but the pinned one.
    let first = page(USER_TWEETS);
    let oldest_on_page1 = first
        .tweets
        .iter()
        .filter(|t| t.user_id == ANA && t.id != C)
        .map(|t| num(&t.id))
        .min()
        .unwrap();
    assert!(r.tweets.iter().all(|t| num(&t.id) < oldest_on_page1));
}

#[test]
fn second_page_unwraps_visibility_results_and_reads_the_note_tweet() {
    let r = page(USER_TWEETS_PAGE2);
    let k = tweet(&r, K);
    assert_eq!(k.cashtags, ["SOL"]);
    assert_eq!(k.date, "2025-11-11T20:05:00Z");

    let n = tweet(&r, N);
    assert_eq!(n.raw_content.chars().count(), 465);
    assert!(n.raw_content.ends_with("Small sizes, long horizon."));
    assert!(n.raw_content.find("$ARB").unwrap() > 280);
    assert_eq!(n.cashtags, ["ARB", "OP", "TIA"]);
    assert_eq!(n.links, [format!("https://x.com/i/web/status/{N}")]);

    assert_eq!(tweet(&r, J).cashtags, ["BTC", "ETH"]);
    assert_eq!(tweet(&r, J).hashtags, ["onchain"]);
    assert_eq!(tweet(&r, L).cashtags, ["LINK"]);
}

#[test]
fn cursors_chain_from_page_one_to_the_end_of_the_timeline() {
    let pages = [
        page(USER_TWEETS),
        page(USER_TWEETS_PAGE2),
        page(USER_TWEETS_PAGE3),
        page(USER_TWEETS_END),
    ];
    let bottom = |r: &impressox_plugin_sdk::types::ScrapeResult| {
        cursors(r)
            .into_iter()
            .rev()
            .find(|(kind, _)| *kind == "bottom")
            .map(|(_, v)| v.to_owned())
            .expect("a bottom cursor")
    };
    let top = |r: &impressox_plugin_sdk::types::ScrapeResult| {
        cursors(r)
            .into_iter()
            .find(|(kind, _)| *kind == "top")
            .map(|(_, v)| v.to_owned())
            .expect("a top cursor")
    };
    assert_eq!(
        pages.iter().map(bottom).collect::<Vec<_>>(),
        [BOTTOM1, BOTTOM2, BOTTOM3, BOTTOM3]
    );
    // A scrolled page's top cursor is the cursor it was asked with.
    assert_eq!(top(&pages[1]), BOTTOM1);
    assert_eq!(top(&pages[2]), BOTTOM2);

    assert_eq!(tweet_ids(&pages[2]), [O, U]);
    assert!(num(O) < num(L) && num(U) < num(O));
    // The end: cursors only, nothing skipped, nothing to store.
    assert!(pages[3].tweets.is_empty());
    assert!(pages[3].profiles.is_empty());
    assert!(pages[3].skipped.is_empty());
    assert_eq!(signal(&pages[3]), "ok");

    // No tweet appears on two pages.
    let mut all: Vec<&str> = pages.iter().flat_map(tweet_ids).collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total);
}
