//! Retweets as X sends them (`user_tweets_retweets.json`, issue 12 item 14): X cuts a
//! retweet's own `legacy.full_text` to 140 characters with "…"; the record is built from the
//! original carried along, as twscrape's users know it. And mentions are one entry per user
//! whatever the case of the spelling.

mod common;

use common::*;
use impressox_plugin_sdk::types::ScrapeResult;
use serde_json::Value;

const W1_TEXT: &str = "Node operators, a PSA after this week's mempool mess, with thanks to \
    @DeFi_Maria for the overlay that made it obvious: fee estimation is not a solved problem. \
    $BTC blocks were full for nine hours while half the wallets I tested still suggested 2 \
    sat/vB. Run your own mempool policy & watch the backlog yourself. Short list until the \
    write-up: bump with CPFP, keep a spare UTXO for it, and ask @defi_maria how the perps desks \
    hedged through it. $STX stackers: payouts will be late.";

const W2_TEXT: &str = "Basis desk notes for the week & what changed. Perp funding normalised \
    after the liquidation cascade, $ETH quarterly basis is back to 7% annualised, and the curve \
    is upward sloping again, which is what you want to see before adding size. Two things on my \
    screen that nobody is talking about yet: $AAVE borrow demand for stables is at a yearly \
    high, and $GMX open interest doubled while price went nowhere.";

fn retweets_page() -> ScrapeResult {
    parse(&capture(
        "https://x.com/coinledger_ana",
        vec![gql("UserTweets", 200, USER_TWEETS_RETWEETS)],
    ))
}

/// The text X itself sent for a tweet (its `raw_json`).
fn x_full_text(raw_json: &str) -> String {
    let raw: Value = serde_json::from_str(raw_json).expect("raw json");
    let tweet = raw.get("tweet").unwrap_or(&raw);
    tweet["legacy"]["full_text"]
        .as_str()
        .expect("legacy.full_text")
        .to_string()
}

fn mentioned(t: &impressox_plugin_sdk::types::Tweet) -> Vec<(&str, &str)> {
    t.mentioned_users
        .iter()
        .map(|m| (m.username.as_str(), m.id.as_str()))
        .collect()
}

#[test]
fn page_lists_each_retweet_followed_by_its_original() {
    let r = retweets_page();
    assert_eq!(tweet_ids(&r), [RT1, W1, RT2, W2, RT3, W3]);
    assert!(r.skipped.is_empty(), "{:?}", skipped(&r));
    for (rt, original) in [(RT1, W1), (RT2, W2), (RT3, W3)] {
        assert_eq!(tweet(&r, rt).retweeted_tweet_id.as_deref(), Some(original));
        assert_eq!(tweet(&r, rt).username, "coinledger_ana");
    }
}

#[test]
fn retweet_of_a_long_note_tweet_carries_the_original_whole_text() {
    let r = retweets_page();
    let rt = tweet(&r, RT1);
    // What X sent: cut near 140 characters.
    let cut = x_full_text(&rt.raw_json);
    assert!(cut.ends_with('…') && cut.chars().count() == 140, "{cut}");
    assert_eq!(rt.raw_content, format!("RT @old_guard_dev: {W1_TEXT}"));
    assert_eq!(tweet(&r, W1).raw_content, W1_TEXT);
    // The record's entities follow its text: `$STX` is only past the cut.
    assert_eq!(rt.cashtags, ["BTC", "STX"]);
}

#[test]
fn retweet_of_a_wrapped_note_tweet_is_whole_and_decoded() {
    let r = retweets_page();
    let rt = tweet(&r, RT2);
    assert!(x_full_text(&rt.raw_json).ends_with('…'));
    assert_eq!(rt.raw_content, format!("RT @defi_maria: {W2_TEXT}"));
    assert!(!rt.raw_content.contains("&amp;"), "entities decoded");
    assert_eq!(rt.cashtags, ["ETH", "AAVE", "GMX"]);
    assert_eq!(mentioned(rt), [("defi_maria", MARIA)]);
}

#[test]
fn retweet_without_views_takes_the_original_count() {
    let r = retweets_page();
    for (rt, views) in [(RT1, 88_120), (RT2, 40_500), (RT3, 5_230)] {
        let raw: Value = serde_json::from_str(&tweet(&r, rt).raw_json).unwrap();
        assert!(raw["views"].get("count").is_none(), "X sent no count");
        assert_eq!(tweet(&r, rt).view_count, Some(views), "{rt}");
    }
    assert_eq!(tweet(&r, W1).view_count, Some(88_120));
}

#[test]
fn retweet_of_a_short_tweet_keeps_x_text() {
    let r = retweets_page();
    let rt = tweet(&r, RT3);
    let sent = x_full_text(&rt.raw_json);
    assert_eq!(
        sent,
        "RT @satsandcharts: Daily close above the 50-day for the first time since August. $BTC"
    );
    assert_eq!(rt.raw_content, sent);
    assert_eq!(rt.cashtags, ["BTC"]);
}

#[test]
fn mentions_differing_in_case_are_one_user() {
    let r = retweets_page();
    // W1's note names Maria as @DeFi_Maria and later as @defi_maria: one user, the first
    // spelling.
    assert_eq!(mentioned(tweet(&r, W1)), [("DeFi_Maria", MARIA)]);
    // Its retweet: the retweeted author, then Maria once across the retweet's own
    // entities and the original's.
    assert_eq!(
        mentioned(tweet(&r, RT1)),
        [("old_guard_dev", PETE), ("DeFi_Maria", MARIA)]
    );
}
