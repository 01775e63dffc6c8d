//! X tweet results → the `tweet` record (twscrape's field set), plus the authors,
//! retweeted and quoted tweets they carry.
//!
//! A tweet result is `__typename` `Tweet`, `TweetWithVisibilityResults` (the tweet under
//! `.tweet`), `TweetTombstone` or `TweetUnavailable`; the last two have no content and
//! are reported as skipped. Long posts keep their full text and full entities under
//! `note_tweet.note_tweet_results.result`; `legacy` has only the first 280 characters.

use impressox_plugin_sdk::types::{MediaItem, MentionedUser, Tweet};
use serde_json::Value;

use crate::collect::Collector;
use crate::json;
use crate::text;
use crate::user;

/// How deep retweeted/quoted tweets are followed (a retweet of a quote is depth 2). X
/// nests no deeper; the bound keeps hostile input from recursing without end.
const MAX_DEPTH: u8 = 3;

/// Where a tweet result sits, so a skip reason says which tweet of an entry failed.
#[derive(Clone, Copy)]
enum Role {
    Entry,
    Retweeted,
    Quoted,
}

impl Role {
    fn prefix(self) -> &'static str {
        match self {
            Role::Entry => "",
            Role::Retweeted => "retweeted tweet: ",
            Role::Quoted => "quoted tweet: ",
        }
    }
}

/// Normalize the tweet result of entry `entry_id` into `out`, with its author and the
/// tweets it retweets or quotes. Failures are recorded as skipped under `entry_id`.
pub(crate) fn collect(result: &Value, entry_id: &str, out: &mut Collector) {
    collect_at(result, entry_id, Role::Entry, 0, out);
}

fn collect_at(result: &Value, entry_id: &str, role: Role, depth: u8, out: &mut Collector) {
    let tweet = match tweet_in(result) {
        Ok(tweet) => tweet,
        Err(reason) => return out.skip(entry_id, format!("{}{reason}", role.prefix())),
    };
    let id = match json::str_at(tweet, &["rest_id"]) {
        Ok(Some(id)) => id,
        Ok(None) => return out.skip(entry_id, format!("{}tweet has no rest_id", role.prefix())),
        Err(e) => return out.skip(entry_id, format!("{}{e}", role.prefix())),
    };
    // Already seen (and its nested tweets with it): skip all the work.
    if out.has_tweet(id) {
        return;
    }

    let author = json::at(tweet, &["core", "user_results", "result"]);
    if let Some(author) = author
        && let Err(e) = user::collect(author, out)
    {
        out.skip(entry_id, format!("{}author: {e}", role.prefix()));
    }

    match normalize(tweet, id, author, result) {
        Ok(t) => out.push_tweet(t),
        Err(e) => out.skip(entry_id, format!("{}{e}", role.prefix())),
    }

    if depth < MAX_DEPTH {
        if let Some(rt) = retweeted(tweet) {
            collect_at(rt, entry_id, Role::Retweeted, depth + 1, out);
        }
        if let Some(q) = quoted(tweet) {
            collect_at(q, entry_id, Role::Quoted, depth + 1, out);
        }
    }
}

/// The tweet object inside a result, or why there is none.
fn tweet_in(result: &Value) -> Result<&Value, String> {
    match json::str_at(result, &["__typename"])? {
        // Some older responses omit `__typename` on plain tweets.
        None | Some("Tweet") => Ok(result),
        Some("TweetWithVisibilityResults") => json::at(result, &["tweet"])
            .ok_or_else(|| "TweetWithVisibilityResults without .tweet".to_string()),
        Some("TweetTombstone") => {
            let why = json::str_at(result, &["tombstone", "text", "text"])
                .ok()
                .flatten()
                .unwrap_or("no text");
            Err(format!("TweetTombstone: {why}"))
        }
        Some("TweetUnavailable") => {
            let why = json::str_at(result, &["reason"])
                .ok()
                .flatten()
                .unwrap_or("no reason given");
            Err(format!("TweetUnavailable: {why}"))
        }
        Some(other) => Err(format!("unknown tweet __typename {other}")),
    }
}

/// The retweeted tweet's result; X puts it under `legacy`, but tolerate the top level.
fn retweeted(tweet: &Value) -> Option<&Value> {
    json::at(tweet, &["legacy", "retweeted_status_result", "result"])
        .or_else(|| json::at(tweet, &["retweeted_status_result", "result"]))
}

/// The quoted tweet's result; X puts it at the top level, but tolerate `legacy`.
fn quoted(tweet: &Value) -> Option<&Value> {
    json::at(tweet, &["quoted_status_result", "result"])
        .or_else(|| json::at(tweet, &["legacy", "quoted_status_result", "result"]))
}

/// The id of a nested tweet result, through the visibility wrapper.
fn nested_id(result: &Value) -> Option<&str> {
    tweet_in(result)
        .ok()
        .and_then(|t| json::str_at(t, &["rest_id"]).ok().flatten())
}

fn normalize(
    tweet: &Value,
    id: &str,
    author: Option<&Value>,
    raw: &Value,
) -> Result<Tweet, String> {
    // Paths are read from the tweet's root so that an error names the full path.
    let legacy = json::at(tweet, &["legacy"]).ok_or("tweet has no legacy")?;
    let created =
        json::str_at(tweet, &["legacy", "created_at"])?.ok_or("legacy.created_at is missing")?;
    let date = text::x_date_to_rfc3339(created)
        .ok_or_else(|| format!("legacy.created_at {created:?} is not X's date format"))?;

    let (author_id, username) = author.map(user::handle).unwrap_or((None, None));
    let username = username.ok_or("the author has no screen_name")?;
    let user_id = match author_id {
        Some(id) => id,
        None => json::str_at(tweet, &["legacy", "user_id_str"])?.ok_or("the author has no id")?,
    };

    let note_text = json::str_at(
        tweet,
        &["note_tweet", "note_tweet_results", "result", "text"],
    )?;
    let raw_text = match note_text {
        Some(t) => t,
        None => {
            json::str_at(tweet, &["legacy", "full_text"])?.ok_or("legacy.full_text is missing")?
        }
    };

    // The note's entity set covers the whole long text; legacy's only the truncated part.
    // Read the note's first and add anything legacy has on top, so a shape change in
    // either never loses a cashtag.
    let sources = [
        EntitySource {
            at: json::at(tweet, &NOTE_ENTITIES),
            path: &NOTE_ENTITIES,
        },
        EntitySource {
            at: json::at(legacy, &["entities"]),
            path: &["legacy", "entities"],
        },
    ];
    let count = |key: &str| json::u64_at(tweet, &["legacy", key]).map(|n| n.unwrap_or(0));

    Ok(Tweet {
        id: id.to_string(),
        url: format!("https://x.com/{username}/status/{id}"),
        date,
        user_id: user_id.to_string(),
        username: username.to_string(),
        lang: json::str_at(tweet, &["legacy", "lang"])?
            .unwrap_or("")
            .to_string(),
        raw_content: text::decode_entities(raw_text).into_owned(),
        reply_count: count("reply_count")?,
        retweet_count: count("retweet_count")?,
        like_count: count("favorite_count")?,
        quote_count: count("quote_count")?,
        bookmarked_count: count("bookmark_count")?,
        view_count: json::u64_at(tweet, &["views", "count"])?,
        conversation_id: json::str_at(tweet, &["legacy", "conversation_id_str"])?
            .unwrap_or(id)
            .to_string(),
        hashtags: entity_texts(&sources, "hashtags", &["text"])?,
        cashtags: entity_texts(&sources, "symbols", &["text"])?,
        mentioned_users: mentions(&sources)?,
        links: entity_texts(&sources, "urls", &["expanded_url", "url"])?,
        media: media(tweet)?,
        retweeted_tweet_id: retweeted(tweet).and_then(nested_id).map(str::to_string),
        quoted_tweet_id: match quoted(tweet).and_then(nested_id) {
            Some(q) => Some(q.to_string()),
            // The quoted tweet may be absent from the response while its id is still known.
            None => json::str_at(tweet, &["legacy", "quoted_status_id_str"])?.map(str::to_string),
        },
        in_reply_to_tweet_id: json::str_at(tweet, &["legacy", "in_reply_to_status_id_str"])?
            .map(str::to_string),
        raw_json: serde_json::to_string(raw)
            .map_err(|e| format!("tweet does not serialize: {e}"))?,
    })
}

const NOTE_ENTITIES: [&str; 4] = ["note_tweet", "note_tweet_results", "result", "entity_set"];

/// An entity set (`{hashtags, symbols, urls, user_mentions}`) and where it was found, for
/// error messages.
struct EntitySource<'a> {
    at: Option<&'a Value>,
    path: &'static [&'static str],
}

impl<'a> EntitySource<'a> {
    /// The entity list `list` of this set; a wrong type names the full path.
    fn list(&self, list: &str) -> Result<&'a [Value], String> {
        match self.at {
            Some(set) => {
                json::array_at(set, &[list]).map_err(|e| format!("{}.{e}", self.path.join(".")))
            }
            None => Ok(&[]),
        }
    }
}

/// One string field (the first of `fields` present) of each element of the entity list
/// `list`, across `sources`, without repeats, in order of appearance.
fn entity_texts(
    sources: &[EntitySource<'_>],
    list: &str,
    fields: &[&str],
) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for source in sources {
        for item in source.list(list)? {
            let text = fields
                .iter()
                .find_map(|f| json::str_at(item, &[f]).ok().flatten());
            if let Some(text) = text
                && !out.iter().any(|t| t == text)
            {
                out.push(text.to_string());
            }
        }
    }
    Ok(out)
}

fn mentions(sources: &[EntitySource<'_>]) -> Result<Vec<MentionedUser>, String> {
    let mut out: Vec<MentionedUser> = Vec::new();
    for source in sources {
        for m in source.list("user_mentions")? {
            let Some(username) = json::str_at(m, &["screen_name"]).ok().flatten() else {
                continue;
            };
            if out.iter().any(|u| u.username == username) {
                continue;
            }
            let field = |k: &str| {
                json::str_at(m, &[k])
                    .ok()
                    .flatten()
                    .unwrap_or("")
                    .to_string()
            };
            out.push(MentionedUser {
                id: field("id_str"),
                username: username.to_string(),
                display_name: field("name"),
            });
        }
    }
    Ok(out)
}

/// Photos, videos and GIFs from `extended_entities` (which lists all of them; plain
/// `entities.media` holds only the first photo and is the fallback).
fn media(tweet: &Value) -> Result<Vec<MediaItem>, String> {
    let items = json::first_array(
        tweet,
        &[
            &["legacy", "extended_entities", "media"],
            &["legacy", "entities", "media"],
        ],
    )?;
    let mut out = Vec::with_capacity(items.len());
    for m in items {
        let Some(image) = json::str_at(m, &["media_url_https"]).ok().flatten() else {
            continue;
        };
        let kind = json::str_at(m, &["type"]).ok().flatten().unwrap_or("photo");
        let item = match best_variant(m) {
            // Videos and GIFs: the playable file, with the still image as preview.
            Some(url) if kind != "photo" => MediaItem {
                kind: kind.to_string(),
                url: url.to_string(),
                preview_url: Some(image.to_string()),
            },
            _ => MediaItem {
                kind: kind.to_string(),
                url: image.to_string(),
                preview_url: None,
            },
        };
        out.push(item);
    }
    Ok(out)
}

fn variant_url(v: &Value) -> Option<&str> {
    json::str_at(v, &["url"]).ok().flatten()
}

/// The highest-bitrate variant of a video (the HLS playlist has no bitrate and is the
/// last resort).
fn best_variant(m: &Value) -> Option<&str> {
    let variants = json::array_at(m, &["video_info", "variants"]).ok()?;
    variants
        .iter()
        .filter_map(|v| {
            Some((
                json::u64_at(v, &["bitrate"]).ok().flatten()?,
                variant_url(v)?,
            ))
        })
        .max_by_key(|(bitrate, _)| *bitrate)
        .map(|(_, u)| u)
        .or_else(|| variants.iter().find_map(variant_url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tweet_json(id: &str) -> Value {
        json!({
            "__typename": "Tweet",
            "rest_id": id,
            "core": {"user_results": {"result": {"__typename": "User", "rest_id": "1", "core": {"screen_name": "a", "name": "A"}}}},
            "legacy": {"created_at": "Wed Oct 10 20:19:24 +0000 2018", "full_text": "hi", "user_id_str": "1"}
        })
    }

    #[test]
    fn minimal_tweet_and_dedup() {
        let mut out = Collector::default();
        collect(&tweet_json("5"), "tweet-5", &mut out);
        collect(&tweet_json("5"), "tweet-5", &mut out);
        assert_eq!(out.tweets.len(), 1);
        assert_eq!(out.profiles.len(), 1);
        assert!(out.skipped.is_empty());
        let t = out.tweets.first();
        assert_eq!(
            t.map(|t| (t.url.as_str(), t.conversation_id.as_str(), t.view_count)),
            Some(("https://x.com/a/status/5", "5", None))
        );
    }

    #[test]
    fn author_falls_back_to_user_id_str_but_needs_a_screen_name() {
        let mut v = tweet_json("6");
        if let Some(core) = v.get_mut("core") {
            *core = json!({"user_results": {"result": {"legacy": {"screen_name": "b"}}}});
        }
        let mut out = Collector::default();
        collect(&v, "tweet-6", &mut out);
        assert_eq!(out.tweets.first().map(|t| t.user_id.as_str()), Some("1"));
        // The author itself had no rest_id: reported, but the tweet was kept.
        assert_eq!(
            out.skipped.first().map(|s| s.reason.as_str()),
            Some("author: user has no rest_id")
        );

        let mut v = tweet_json("7");
        if let Some(core) = v.get_mut("core") {
            *core = json!({});
        }
        let mut out = Collector::default();
        collect(&v, "tweet-7", &mut out);
        assert!(out.tweets.is_empty());
        assert_eq!(
            out.skipped.first().map(|s| s.reason.as_str()),
            Some("the author has no screen_name")
        );
    }

    #[test]
    fn wrong_types_name_the_full_path() {
        let cases = [
            (
                json!({"entities": {"symbols": "BTC"}}),
                "legacy.entities.symbols is a string, expected an array",
            ),
            (
                json!({"extended_entities": {"media": {}}}),
                "legacy.extended_entities.media is an object, expected an array",
            ),
            (
                json!({"reply_count": -3}),
                "legacy.reply_count is a number, expected a count",
            ),
            (
                json!({"created_at": "Wed Oct 10 20:19:24 2018"}),
                "legacy.created_at \"Wed Oct 10 20:19:24 2018\" is not X's date format",
            ),
        ];
        for (patch, reason) in cases {
            let mut v = tweet_json("8");
            if let (Some(legacy), Some(patch)) = (
                v.get_mut("legacy").and_then(Value::as_object_mut),
                patch.as_object(),
            ) {
                legacy.extend(patch.clone());
            }
            let mut out = Collector::default();
            collect(&v, "tweet-8", &mut out);
            assert!(out.tweets.is_empty());
            assert_eq!(out.skipped.first().map(|s| s.reason.as_str()), Some(reason));
        }
        let mut v = tweet_json("9");
        if let Some(obj) = v.as_object_mut() {
            obj.insert("note_tweet".into(), json!({"note_tweet_results": {"result": {"text": "long", "entity_set": {"symbols": 1}}}}));
        }
        let mut out = Collector::default();
        collect(&v, "tweet-9", &mut out);
        assert_eq!(
            out.skipped.first().map(|s| s.reason.as_str()),
            Some(
                "note_tweet.note_tweet_results.result.entity_set.symbols is a number, expected an array"
            )
        );
    }

    #[test]
    fn self_nesting_is_bounded() {
        // A hostile chain of quotes deeper than X ever sends stops at MAX_DEPTH.
        let mut v = tweet_json("100");
        for i in 101..110 {
            let mut outer = tweet_json(&i.to_string());
            if let Some(obj) = outer.as_object_mut() {
                obj.insert("quoted_status_result".into(), json!({"result": v}));
            }
            v = outer;
        }
        let mut out = Collector::default();
        collect(&v, "tweet-109", &mut out);
        assert_eq!(out.tweets.len(), usize::from(MAX_DEPTH) + 1);
    }

    #[test]
    fn video_variants() {
        let m = json!({"video_info": {"variants": [
            {"content_type": "application/x-mpegURL", "url": "hls"},
            {"bitrate": 832000, "content_type": "video/mp4", "url": "mid"},
            {"bitrate": 2176000, "content_type": "video/mp4", "url": "high"}
        ]}});
        assert_eq!(best_variant(&m), Some("high"));
        assert_eq!(
            best_variant(&json!({"video_info": {"variants": [{"url": "hls"}]}})),
            Some("hls")
        );
        assert_eq!(best_variant(&json!({})), None);
    }
}
