//! Timelines, search, tweet detail and profiles read from the fixtures, field by field.

mod common;

use common::*;
use impressox_plugin_sdk::ScrapeParser;
use serde_json::Value;
use x_timeline::XTimeline;

fn user_tweets() -> impressox_plugin_sdk::types::ScrapeResult {
    parse(&capture(
        "https://x.com/coinledger_ana",
        vec![gql_limited(
            "UserTweets",
            200,
            USER_TWEETS,
            500,
            499,
            1_763_461_800,
        )],
    ))
}

#[test]
fn user_tweets_page_lists_tweets_in_order_without_promoted_tombstoned_or_malformed() {
    let r = user_tweets();
    // Pinned first, then the entries; retweeted tweets follow their retweet; the module's
    // two tweets in thread order.
    assert_eq!(tweet_ids(&r), [C, A, B, F, M1, G, P1, H]);
    assert!(!tweet_ids(&r).contains(&D), "promoted tweet kept");
    assert!(!tweet_ids(&r).contains(&Q_ABSENT));
    assert!(!usernames(&r).contains(&"yieldvault_io"), "advertiser kept");
    assert_eq!(
        skipped(&r),
        [
            (
                format!("tweet-{E}").as_str(),
                "TweetTombstone: This Post was deleted by the Post author. Learn more"
            ),
            (
                format!("tweet-{I}").as_str(),
                "legacy.favorite_count is \"n/a\", expected a count"
            ),
        ]
    );
    assert_eq!(
        cursors(&r),
        [
            ("top", "DAABCgABG6dxr4R__-sKAAIbogKUFlqxgggAAwAAAAEAAA"),
            ("bottom", "DAABCgABG6dxr4R__-YKAAIbn9BOpBaRFggAAwAAAAIAAA"),
        ]
    );
    assert_eq!(rate_limits(&r), [("UserTweets", 500, 499, 1_763_461_800)]);
    assert_eq!(signal(&r), "ok");
    // One profile per author, all three shapes.
    assert_eq!(
        usernames(&r),
        ["coinledger_ana", "defi_maria", "old_guard_dev"]
    );
}

#[test]
fn plain_tweet_with_cashtags_every_field() {
    let r = user_tweets();
    let t = tweet(&r, A);
    assert_eq!(t.id, A);
    assert_eq!(t.url, format!("https://x.com/coinledger_ana/status/{A}"));
    assert_eq!(t.date, "2025-11-18T09:30:12Z");
    assert_eq!(t.user_id, ANA);
    assert_eq!(t.username, "coinledger_ana");
    assert_eq!(t.lang, "en");
    assert_eq!(
        t.raw_content,
        "Weekly levels: $BTC holding 97k support & $ETH reclaiming 3.4k. Thanks @defi_maria for the funding data \
         #crypto #onchain https://t.co/Lv3xQ9aZ1b https://t.co/Pq7rT2sW8m"
    );
    assert_eq!(
        (
            t.reply_count,
            t.retweet_count,
            t.like_count,
            t.quote_count,
            t.bookmarked_count
        ),
        (41, 88, 532, 7, 12)
    );
    assert_eq!(t.view_count, Some(48213));
    assert_eq!(t.conversation_id, A);
    assert_eq!(t.hashtags, ["crypto", "onchain"]);
    assert_eq!(t.cashtags, ["BTC", "ETH"]);
    assert_eq!(t.mentioned_users.len(), 1);
    let m = &t.mentioned_users[0];
    assert_eq!(
        (m.id.as_str(), m.username.as_str(), m.display_name.as_str()),
        (MARIA, "defi_maria", "Maria Okafor")
    );
    assert_eq!(t.links, ["https://coinledger.example/research/levels-w47"]);
    assert_eq!(t.media.len(), 1);
    assert_eq!(t.media[0].kind, "photo");
    assert_eq!(
        t.media[0].url,
        "https://pbs.twimg.com/media/G6xkQ2pWgAAj3Lr.jpg"
    );
    assert_eq!(t.media[0].preview_url, None);
    assert_eq!(t.retweeted_tweet_id, None);
    assert_eq!(t.quoted_tweet_id, None);
    assert_eq!(t.in_reply_to_tweet_id, None);
    let raw: Value = serde_json::from_str(&t.raw_json).expect("raw json");
    assert_eq!(raw["__typename"], "Tweet");
    assert_eq!(raw["rest_id"], A);
    assert_eq!(
        raw["legacy"]["full_text"]
            .as_str()
            .map(|s| s.contains("&amp;")),
        Some(true),
        "raw keeps X's text"
    );
}

#[test]
fn visibility_wrapper_is_unwrapped_and_video_takes_best_bitrate() {
    let r = user_tweets();
    let t = tweet(&r, B);
    assert_eq!(t.username, "coinledger_ana");
    assert_eq!(t.date, "2025-11-17T21:11:40Z");
    assert_eq!(
        t.raw_content,
        "Quick walkthrough of my on-chain dashboard <3 https://t.co/Vd9kLm2Qx1"
    );
    assert_eq!(
        (
            t.reply_count,
            t.retweet_count,
            t.like_count,
            t.quote_count,
            t.bookmarked_count
        ),
        (3, 9, 120, 1, 40)
    );
    assert_eq!(t.view_count, Some(9120));
    assert_eq!(t.media.len(), 1);
    let v = &t.media[0];
    assert_eq!(v.kind, "video");
    assert_eq!(
        v.url,
        "https://video.twimg.com/amplify_video/1990211122233344455/vid/avc1/1280x720/k2JfX0aZ-hd.mp4?tag=16"
    );
    assert_eq!(
        v.preview_url.as_deref(),
        Some("https://pbs.twimg.com/amplify_video_thumb/1990211122233344455/img/k2JfX0aZ.jpg")
    );
    // raw-json is the result as X sent it, wrapper included, so a re-parse sees the same.
    let raw: Value = serde_json::from_str(&t.raw_json).expect("raw json");
    assert_eq!(raw["__typename"], "TweetWithVisibilityResults");
    assert_eq!(raw["tweet"]["rest_id"], B);
}

#[test]
fn note_tweet_has_full_text_and_cashtags_beyond_280_characters() {
    let r = user_tweets();
    let t = tweet(&r, C);
    assert_eq!(t.raw_content.chars().count(), 503);
    assert!(
        t.raw_content
            .starts_with("Thread-in-one on where I think we are in the cycle. $BTC dominance")
    );
    assert!(
        t.raw_content
            .ends_with("through the front door. Sizing small, stops honest.")
    );
    let sol = t.raw_content.find("$SOL").expect("$SOL in the text");
    assert!(sol > 280, "the fixture must put $SOL past the truncation");
    assert_eq!(t.cashtags, ["BTC", "SOL", "LINK", "DOGE"]);
    // The truncated legacy part's link is kept; the note's own entities have none.
    assert_eq!(t.links, [format!("https://x.com/i/web/status/{C}")]);
    assert_eq!(t.date, "2025-11-02T18:04:51Z");
    assert_eq!(
        (
            t.reply_count,
            t.retweet_count,
            t.like_count,
            t.quote_count,
            t.bookmarked_count
        ),
        (77, 210, 1893, 31, 402)
    );
    assert_eq!(t.view_count, Some(154_002));
    assert!(t.media.is_empty());
}

#[test]
fn retweet_names_and_emits_the_retweeted_tweet() {
    let r = user_tweets();
    let rt = tweet(&r, F);
    assert_eq!(rt.retweeted_tweet_id.as_deref(), Some(M1));
    assert_eq!(rt.username, "coinledger_ana");
    assert_eq!(
        rt.raw_content,
        "RT @defi_maria: Funding rates flat across majors, OI rebuilding. $ETH basis at 6% annualised > T-bills. Not advice."
    );
    // X sends the retweet's views without a count: the original's stands in (twscrape's
    // viewCount of a retweet).
    assert_eq!(rt.view_count, Some(61230));
    assert_eq!((rt.like_count, rt.retweet_count), (0, 64));
    assert_eq!(rt.conversation_id, M1);
    assert_eq!(rt.cashtags, ["ETH"]);
    assert_eq!(
        rt.mentioned_users
            .iter()
            .map(|m| m.username.as_str())
            .collect::<Vec<_>>(),
        ["defi_maria"]
    );

    let orig = tweet(&r, M1);
    assert_eq!(orig.url, format!("https://x.com/defi_maria/status/{M1}"));
    assert_eq!(orig.user_id, MARIA);
    assert_eq!(orig.date, "2025-11-16T15:45:09Z");
    assert_eq!(
        orig.raw_content,
        "Funding rates flat across majors, OI rebuilding. $ETH basis at 6% annualised > T-bills. Not advice."
    );
    assert_eq!(
        (
            orig.reply_count,
            orig.retweet_count,
            orig.like_count,
            orig.quote_count,
            orig.bookmarked_count
        ),
        (18, 64, 401, 5, 77)
    );
    assert_eq!(orig.view_count, Some(61230));
    assert_eq!(orig.retweeted_tweet_id, None);
}

#[test]
fn quote_of_an_absent_tweet_keeps_the_quoted_id() {
    let r = user_tweets();
    let t = tweet(&r, G);
    assert_eq!(t.quoted_tweet_id.as_deref(), Some(Q_ABSENT));
    assert_eq!(
        t.raw_content,
        "This aged well. $SOL https://t.co/qT0aBs3ntX"
    );
    assert_eq!(t.cashtags, ["SOL"]);
    assert_eq!(
        t.links,
        [format!("https://x.com/solwhale/status/{Q_ABSENT}")]
    );
}

#[test]
fn conversation_module_tweets_and_reply_fields() {
    let r = user_tweets();
    let p = tweet(&r, P1);
    assert_eq!(p.username, "old_guard_dev");
    assert_eq!(p.user_id, PETE);
    assert_eq!(p.cashtags, ["BTC"]);
    let h = tweet(&r, H);
    assert_eq!(h.in_reply_to_tweet_id.as_deref(), Some(P1));
    assert_eq!(h.conversation_id, P1);
    assert_eq!(
        h.raw_content,
        "@old_guard_dev Fully agree. Self-custody checklist in the pinned post."
    );
    let m = &h.mentioned_users;
    assert_eq!(m.len(), 1);
    assert_eq!(
        (
            m[0].id.as_str(),
            m[0].username.as_str(),
            m[0].display_name.as_str()
        ),
        (PETE, "old_guard_dev", "Pete Lindqvist")
    );
}

#[test]
fn author_in_the_2026_shape() {
    let r = user_tweets();
    let p = profile(&r, ANA);
    assert_eq!(p.username, "coinledger_ana");
    assert_eq!(p.display_name, "Ana Ribeiro");
    assert_eq!(p.created, "2021-10-27T14:02:11Z");
    assert_eq!(
        p.description,
        "On-chain analyst. $BTC & $ETH flows, funding, OI. Charts are not advice."
    );
    assert_eq!(p.location, "Lisbon, Portugal");
    assert_eq!(
        (
            p.followers_count,
            p.following_count,
            p.statuses_count,
            p.favourites_count,
            p.media_count
        ),
        (48211, 612, 15873, 30457, 2104)
    );
    assert_eq!(
        p.profile_image_url,
        "https://pbs.twimg.com/profile_images/1731002912345678912/Qm3kR8vZ_normal.jpg"
    );
    assert_eq!(
        p.profile_banner_url.as_deref(),
        Some("https://pbs.twimg.com/profile_banners/1453287640927653889/1731003011")
    );
    assert_eq!(
        p.website.as_deref(),
        Some("https://coinledger.example/research")
    );
    assert_eq!((p.verified, p.blue, p.protected), (false, true, false));
    assert_eq!(p.pinned_tweet_ids, [C]);
}

#[test]
fn author_in_the_2025_shape() {
    let r = user_tweets();
    let p = profile(&r, MARIA);
    assert_eq!(p.username, "defi_maria");
    assert_eq!(p.display_name, "Maria Okafor");
    assert_eq!(p.created, "2019-10-25T16:40:03Z");
    assert_eq!(
        p.description,
        "DeFi rates desk. Funding, basis & perps. Opinions mine."
    );
    assert_eq!(p.location, "Lagos, Nigeria");
    assert_eq!(
        (
            p.followers_count,
            p.following_count,
            p.statuses_count,
            p.favourites_count,
            p.media_count
        ),
        (129_044, 1873, 40211, 88120, 3320)
    );
    assert_eq!(
        p.profile_image_url,
        "https://pbs.twimg.com/profile_images/1650011223344556677/mOk4fa1X_normal.jpg"
    );
    assert_eq!(
        p.profile_banner_url.as_deref(),
        Some("https://pbs.twimg.com/profile_banners/1187766013250084864/1699880011")
    );
    assert_eq!(p.website.as_deref(), Some("https://rates.example.org"));
    assert_eq!((p.verified, p.blue, p.protected), (false, true, false));
    assert!(p.pinned_tweet_ids.is_empty());
}

#[test]
fn author_in_the_older_legacy_shape() {
    let r = user_tweets();
    let p = profile(&r, PETE);
    assert_eq!(p.username, "old_guard_dev");
    assert_eq!(p.display_name, "Pete Lindqvist");
    assert_eq!(p.created, "2008-04-12T08:15:40Z");
    assert_eq!(
        p.description,
        "Bitcoin since 2011. Runs a node, writes C. </rant>"
    );
    assert_eq!(p.location, "Stockholm");
    assert_eq!(
        (
            p.followers_count,
            p.following_count,
            p.statuses_count,
            p.favourites_count,
            p.media_count
        ),
        (9120, 301, 22987, 5120, 415)
    );
    assert_eq!(
        p.profile_image_url,
        "https://pbs.twimg.com/profile_images/1188776655443322110/PeteL_normal.png"
    );
    assert_eq!(
        p.profile_banner_url.as_deref(),
        Some("https://pbs.twimg.com/profile_banners/14567890/1555001122")
    );
    assert_eq!(p.website.as_deref(), Some("https://node.example.se"));
    assert_eq!((p.verified, p.blue, p.protected), (true, false, false));
    let raw: Value = serde_json::from_str(&p.raw_json).expect("raw json");
    assert_eq!(raw["legacy"]["screen_name"], "old_guard_dev");
}

#[test]
fn user_by_screen_name_in_the_2026_shape() {
    let r = parse(&capture(
        "https://x.com/coinledger_ana",
        vec![gql("UserByScreenName", 200, USER_BY_SCREEN_NAME)],
    ));
    assert!(r.tweets.is_empty() && r.cursors.is_empty() && r.skipped.is_empty());
    assert_eq!(r.profiles.len(), 1);
    let p = profile(&r, ANA);
    assert_eq!(p.username, "coinledger_ana");
    assert_eq!(p.display_name, "Ana Ribeiro");
    assert_eq!(p.created, "2021-10-27T14:02:11Z");
    assert_eq!(
        p.description,
        "On-chain analyst. $BTC & $ETH flows, funding, OI. Charts are not advice."
    );
    assert_eq!(p.location, "Lisbon, Portugal");
    assert_eq!(p.followers_count, 48211);
    assert_eq!(p.following_count, 612);
    assert_eq!(p.statuses_count, 15873);
    assert_eq!(p.favourites_count, 30457);
    assert_eq!(p.media_count, 2104);
    assert_eq!(
        p.profile_image_url,
        "https://pbs.twimg.com/profile_images/1731002912345678912/Qm3kR8vZ_normal.jpg"
    );
    assert_eq!(
        p.profile_banner_url.as_deref(),
        Some("https://pbs.twimg.com/profile_banners/1453287640927653889/1731003011")
    );
    assert_eq!(
        p.website.as_deref(),
        Some("https://coinledger.example/research")
    );
    assert!(!p.verified);
    assert!(p.blue);
    assert!(!p.protected);
    assert_eq!(p.pinned_tweet_ids, [C]);
    // raw-json is the user object itself.
    let raw: Value = serde_json::from_str(&p.raw_json).expect("raw json");
    let fixture: Value = serde_json::from_str(USER_BY_SCREEN_NAME).expect("fixture");
    assert_eq!(raw, fixture["data"]["user"]["result"]);
    assert!(
        raw.get("legacy").is_none(),
        "the 2026 fixture has no legacy"
    );
}

#[test]
fn unknown_handle_is_reported_not_failed() {
    let r = parse(&capture(
        "https://x.com/nobody",
        vec![gql("UserByScreenName", 200, r#"{"data":{"user":{}}}"#)],
    ));
    assert!(r.profiles.is_empty());
    assert_eq!(
        skipped(&r),
        [(
            "response:UserByScreenName",
            "no data.user.result (no such user?)"
        )]
    );
    let r = parse(&capture(
        "https://x.com/gone",
        vec![gql(
            "UserByScreenName",
            200,
            r#"{"data":{"user":{"result":{"__typename":"UserUnavailable","reason":"Suspended"}}}}"#,
        )],
    ));
    assert_eq!(
        skipped(&r),
        [("response:UserByScreenName", "UserUnavailable: Suspended")]
    );
}

#[test]
fn older_timeline_v2_with_replies() {
    let r = parse(&capture(
        "https://x.com/old_guard_dev/with_replies",
        vec![gql("UserTweetsAndReplies", 200, USER_TWEETS_AND_REPLIES)],
    ));
    assert_eq!(tweet_ids(&r), [P2, A2, P3]);
    assert_eq!(usernames(&r), ["old_guard_dev", "coinledger_ana"]);
    assert!(r.skipped.is_empty(), "{:?}", skipped(&r));
    let p2 = tweet(&r, P2);
    assert_eq!(
        p2.raw_content,
        "Lightning channel rebalancing fees are silly this week. 2,100 sats to move 1M & it still failed twice."
    );
    assert!(
        p2.cashtags.is_empty()
            && p2.hashtags.is_empty()
            && p2.links.is_empty()
            && p2.media.is_empty()
    );
    let p3 = tweet(&r, P3);
    assert_eq!(p3.in_reply_to_tweet_id.as_deref(), Some(A2));
    assert_eq!(p3.conversation_id, P2);
    assert_eq!(p3.hashtags, ["lightning"]);
    assert_eq!(p3.date, "2025-10-30T07:20:31Z");
    assert_eq!(
        cursors(&r).iter().map(|c| c.0).collect::<Vec<_>>(),
        ["top", "bottom"]
    );
}

#[test]
fn search_timeline_page() {
    let r = parse(&capture(
        "https://x.com/search?q=%24BTC&src=typed_query&f=live",
        vec![gql_limited(
            "SearchTimeline",
            200,
            SEARCH_TIMELINE,
            50,
            49,
            1_763_461_900,
        )],
    ));
    // S3 quotes A, which is present in the response: emitted after its quote.
    assert_eq!(tweet_ids(&r), [S1, S2, S3, A]);
    assert!(!tweet_ids(&r).contains(&S5), "promoted kept");
    assert_eq!(
        skipped(&r),
        [(
            format!("tweet-{S4}").as_str(),
            "TweetUnavailable: Suspended"
        )]
    );
    assert_eq!(
        usernames(&r),
        [
            "satsandcharts",
            "chainwatch_bot",
            "defi_maria",
            "coinledger_ana"
        ]
    );
    assert_eq!(
        cursors(&r).iter().map(|c| c.0).collect::<Vec<_>>(),
        ["top", "bottom"]
    );
    assert_eq!(rate_limits(&r), [("SearchTimeline", 50, 49, 1_763_461_900)]);

    let s1 = tweet(&r, S1);
    assert_eq!(s1.username, "satsandcharts");
    assert_eq!(s1.cashtags, ["BTC"]);
    assert_eq!(s1.media.len(), 1);
    assert_eq!(
        s1.media[0].url,
        "https://pbs.twimg.com/media/G6xmC4rtAAAbTc1.jpg"
    );

    let s2 = tweet(&r, S2);
    assert_eq!(
        s2.raw_content,
        "\u{1F6A8} 1,250 #BTC ($121,003,120) transferred from unknown wallet to Coinbase Institutional. $BTC https://t.co/Wh4l3Tx1dd"
    );
    assert_eq!(s2.hashtags, ["BTC"]);
    assert_eq!(s2.cashtags, ["BTC"]);
    assert_eq!(s2.links, ["https://chainwatch.example/tx/9f3a51c0"]);
    assert_eq!(
        profile(&r, BOT).website.as_deref(),
        Some("https://chainwatch.example")
    );
    assert_eq!(profile(&r, SATS).website, None);
    assert_eq!(profile(&r, SATS).display_name, "Sats & Charts");

    let s3 = tweet(&r, S3);
    assert_eq!(s3.quoted_tweet_id.as_deref(), Some(A));
    assert_eq!(
        s3.raw_content,
        "Good framing on $BTC vs $ETH here \u{2014} worth a read. https://t.co/QuoT3dAnaX"
    );
    assert_eq!(s3.cashtags, ["BTC", "ETH"]);
    assert_eq!(tweet(&r, A).cashtags, ["BTC", "ETH"]);
}

#[test]
fn search_second_page_replaces_cursors_and_overlap_is_deduplicated() {
    let r = parse(&capture(
        "https://x.com/search?q=%24BTC&src=typed_query&f=live",
        vec![
            gql_limited(
                "SearchTimeline",
                200,
                SEARCH_TIMELINE,
                50,
                49,
                1_763_461_900,
            ),
            gql_limited(
                "SearchTimeline",
                200,
                SEARCH_TIMELINE_PAGE2,
                50,
                48,
                1_763_461_900,
            ),
        ],
    ));
    assert_eq!(tweet_ids(&r), [S1, S2, S3, A, S6]);
    let kinds: Vec<&str> = cursors(&r).iter().map(|c| c.0).collect();
    assert_eq!(kinds, ["top", "bottom", "top", "bottom"]);
    // The last bottom cursor is the deepest page.
    assert_eq!(
        cursors(&r).last().map(|c| c.1),
        Some(
            "DAADDAABCgABG6eAm1uW0BAKAAIbp3pGFpqgXAAIAAIAAAACCAADAAAAAAgABAAAAAAKAAUbp4CbW5bQEAoABhunCJtblsIQAAA"
        )
    );
    assert_eq!(
        rate_limits(&r),
        [
            ("SearchTimeline", 50, 49, 1_763_461_900),
            ("SearchTimeline", 50, 48, 1_763_461_900)
        ]
    );
    assert_eq!(r.profiles.len(), 4);
}

#[test]
fn tweet_detail_with_conversation_threads() {
    let r = parse(&capture(
        &format!("https://x.com/coinledger_ana/status/{A}"),
        vec![gql_limited(
            "TweetDetail",
            200,
            TWEET_DETAIL,
            150,
            140,
            1_763_462_000,
        )],
    ));
    assert_eq!(tweet_ids(&r), [A, R1, R2, R3]);
    assert!(r.skipped.is_empty(), "{:?}", skipped(&r));
    assert_eq!(
        cursors(&r),
        [
            ("other", "PAAAAPAtPDwhGBgBGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBg"),
            ("bottom", "QAAAAPAtPDwhGBgBGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBh"),
        ]
    );
    let r1 = tweet(&r, R1);
    assert_eq!(
        (
            r1.in_reply_to_tweet_id.as_deref(),
            r1.conversation_id.as_str()
        ),
        (Some(A), A)
    );
    let r2 = tweet(&r, R2);
    assert_eq!(r2.in_reply_to_tweet_id.as_deref(), Some(R1));
    assert_eq!(
        r2.links,
        ["https://coinledger.example/research/methodology"]
    );
    assert_eq!(tweet(&r, R3).username, "old_guard_dev");
    assert_eq!(
        usernames(&r),
        ["coinledger_ana", "defi_maria", "old_guard_dev"]
    );
}

#[test]
fn same_page_captured_twice_is_deduplicated() {
    let once = user_tweets();
    let twice = parse(&capture(
        "https://x.com/coinledger_ana",
        vec![
            gql("UserTweets", 200, USER_TWEETS),
            gql("UserTweets", 200, USER_TWEETS),
        ],
    ));
    assert_eq!(tweet_ids(&twice), tweet_ids(&once));
    assert_eq!(usernames(&twice), usernames(&once));
    assert_eq!(twice.cursors.len(), 2);
}

#[test]
fn every_raw_json_is_the_json_of_its_own_tweet() {
    let r = parse(&capture(
        "https://x.com/coinledger_ana",
        vec![
            gql("UserTweets", 200, USER_TWEETS),
            gql("SearchTimeline", 200, SEARCH_TIMELINE),
            gql("TweetDetail", 200, TWEET_DETAIL),
            gql("UserTweetsAndReplies", 200, USER_TWEETS_AND_REPLIES),
        ],
    ));
    assert_eq!(r.tweets.len(), 8 + 3 + 3 + 3);
    for t in &r.tweets {
        let raw: Value = serde_json::from_str(&t.raw_json).expect("raw json");
        let id = raw.get("rest_id").or_else(|| raw["tweet"].get("rest_id"));
        assert_eq!(id.and_then(Value::as_str), Some(t.id.as_str()));
    }
    for p in &r.profiles {
        let raw: Value = serde_json::from_str(&p.raw_json).expect("raw json");
        assert_eq!(raw["rest_id"].as_str(), Some(p.id.as_str()));
    }
}

#[test]
fn the_plugin_trait_is_a_thin_wrapper() {
    let cap = capture(
        "https://x.com/coinledger_ana",
        vec![gql("UserTweets", 200, USER_TWEETS)],
    );
    let via_trait = XTimeline::parse(cap.clone()).expect("parse");
    let direct = parse(&cap);
    assert_eq!(tweet_ids(&via_trait), tweet_ids(&direct));
    assert_eq!(skipped(&via_trait), skipped(&direct));
    assert_eq!(XTimeline::NAME, "x-timeline");
}
