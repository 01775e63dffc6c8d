//! X tweet results → the `tweet` record (twscrape's field set), plus the authors,
//! retweeted and quoted tweets they carry.
//!
//! A tweet result is `__typename` `Tweet`, `TweetWithVisibilityResults` (the tweet under
//! `.tweet`), `TweetTombstone` or `TweetUnavailable`; the last two have no content and
//! are reported as skipped. Long posts keep their full text and full entities under
//! `note_tweet.note_tweet_results.result`; `legacy` has only the first 280 characters.
//!
//! A retweet's own `legacy.full_text` is `RT @author: ` and the original's text cut to 140
//! characters with "…", its entities only for that part, and its `views` usually without a
//! count. Its record is built from the original instead, as twscrape's users know it:
//! `RT @author: <the original's whole text>`, the original's entities added to its own, and
//! the original's view count when it has none. Mentions are one entry per user whatever the
//! spelling's case (X handles are case-insensitive).

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
    // Dates, counts and the text live there; without it there is no record to make.
    json::at(tweet, &["legacy"]).ok_or("tweet has no legacy")?;
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

    // The original of a retweet, when the response carries it whole enough to use.
    let original = retweeted(tweet).and_then(|r| tweet_in(r).ok());
    let raw_text = match original.and_then(retweet_text) {
        Some(t) => t,
        None => whole_text(tweet)?
            .ok_or("legacy.full_text is missing")?
            .to_string(),
    };

    // The note's entity set covers the whole long text; legacy's only the truncated part.
    // Read the note's first and add anything legacy has on top, so a shape change in
    // either never loses a cashtag. A retweet's own are cut with its text: the original's
    // follow (leniently: a malformed original is reported when it is read itself).
    let mut sources = vec![
        EntitySource::strict(tweet, &NOTE_ENTITIES),
        EntitySource::strict(tweet, &LEGACY_ENTITIES),
    ];
    if let Some(o) = original {
        sources.push(EntitySource::lenient(o, &NOTE_ENTITIES));
        sources.push(EntitySource::lenient(o, &LEGACY_ENTITIES));
    }
    let count = |key: &str| json::u64_at(tweet, &["legacy", key]).map(|n| n.unwrap_or(0));
    let view_count = match json::u64_at(tweet, &VIEWS)? {
        Some(n) => Some(n),
        None => original.and_then(|o| json::u64_at(o, &VIEWS).ok().flatten()),
    };

    Ok(Tweet {
        id: id.to_string(),
        url: format!("https://x.com/{username}/status/{id}"),
        date,
        user_id: user_id.to_string(),
        username: username.to_string(),
        lang: json::str_at(tweet, &["legacy", "lang"])?
            .unwrap_or("")
            .to_string(),
        raw_content: text::decode_entities(&raw_text).into_owned(),
        reply_count: count("reply_count")?,
        retweet_count: count("retweet_count")?,
        like_count: count("favorite_count")?,
        quote_count: count("quote_count")?,
        bookmarked_count: count("bookmark_count")?,
        view_count,
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

const NOTE_TEXT: [&str; 4] = ["note_tweet", "note_tweet_results", "result", "text"];
const NOTE_ENTITIES: [&str; 4] = ["note_tweet", "note_tweet_results", "result", "entity_set"];
const LEGACY_ENTITIES: [&str; 2] = ["legacy", "entities"];
const VIEWS: [&str; 2] = ["views", "count"];

/// A tweet's whole text: its note's for a long post, else `legacy.full_text`.
fn whole_text(tweet: &Value) -> Result<Option<&str>, String> {
    match json::str_at(tweet, &NOTE_TEXT)? {
        Some(t) => Ok(Some(t)),
        None => json::str_at(tweet, &["legacy", "full_text"]),
    }
}

/// `RT @author: <the whole text>` of a retweet's `original`; `None` when the original lacks
/// its text or its author's handle (the retweet's own text is kept then).
fn retweet_text(original: &Value) -> Option<String> {
    let text = whole_text(original).ok().flatten()?;
    let author = json::at(original, &["core", "user_results", "result"])?;
    let (_, handle) = user::handle(author);
    Some(format!("RT @{}: {text}", handle?))
}

/// An entity set (`{hashtags, symbols, urls, user_mentions}`) and where it was found, for
/// error messages.
struct EntitySource<'a> {
    at: Option<&'a Value>,
    path: &'static [&'static str],
    /// A wrong type is an error (the tweet's own sets), or reads as empty (a retweeted
    /// original's, which its own record reports).
    strict: bool,
}

impl<'a> EntitySource<'a> {
    fn strict(tweet: &'a Value, path: &'static [&'static str]) -> Self {
        EntitySource {
            at: json::at(tweet, path),
            path,
            strict: true,
        }
    }

    fn lenient(tweet: &'a Value, path: &'static [&'static str]) -> Self {
        EntitySource {
            strict: false,
            ..EntitySource::strict(tweet, path)
        }
    }

    /// The entity list `list` of this set; a wrong type names the full path.
    fn list(&self, list: &str) -> Result<&'a [Value], String> {
        match self.at {
            Some(set) => match json::array_at(set, &[list]) {
                Ok(items) => Ok(items),
                Err(e) if self.strict => Err(format!("{}.{e}", self.path.join("."))),
                Err(_) => Ok(&[]),
            },
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

/// One entry per mentioned user, in order of appearance. Handles are case-insensitive on X
/// (`@Tesla` and `@tesla` are one account, and X's entities spell a mention as it was
/// typed), so the first spelling stands for all; a later one may fill in an id or name the
/// first lacked.
fn mentions(sources: &[EntitySource<'_>]) -> Result<Vec<MentionedUser>, String> {
    let mut out: Vec<MentionedUser> = Vec::new();
    for source in sources {
        for m in source.list("user_mentions")? {
            let Some(username) = json::str_at(m, &["screen_name"]).ok().flatten() else {
                continue;
            };
            let field = |k: &str| {
                json::str_at(m, &[k])
                    .ok()
                    .flatten()
                    .unwrap_or("")
                    .to_string()
            };
            match out
                .iter_mut()
                .find(|u| u.username.eq_ignore_ascii_case(username))
            {
                Some(seen) => {
                    if seen.id.is_empty() {
                        seen.id = field("id_str");
                    }
                    if seen.display_name.is_empty() {
                        seen.display_name = field("name");
                    }
                }
                None => out.push(MentionedUser {
                    id: field("id_str"),
                    username: username.to_string(),
                    display_name: field("name"),
                }),
            }
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

    /// `rt` (by author 1) retweeting `original` (by author 2, `orig`).
    fn retweet_of(rt: &str, original: Value) -> Value {
        let mut v = tweet_json(rt);
        if let Some(legacy) = v.get_mut("legacy").and_then(Value::as_object_mut) {
            legacy.insert("full_text".into(), json!("RT @orig: the whole text is lo…"));
            legacy.insert(
                "entities".into(),
                json!({"user_mentions": [{"screen_name": "orig", "id_str": "2", "name": "O"}]}),
            );
            legacy.insert(
                "retweeted_status_result".into(),
                json!({ "result": original }),
            );
        }
        v
    }

    fn original(id: &str) -> Value {
        let mut o = tweet_json(id);
        o["core"]["user_results"]["result"] = json!({"__typename": "User", "rest_id": "2", "core": {"screen_name": "orig", "name": "O"}});
        o["legacy"]["full_text"] = json!("the whole text is long &amp; ends here $BTC @Orig");
        o["legacy"]["entities"] = json!({"symbols": [{"text": "BTC"}], "user_mentions": [{"screen_name": "Orig", "id_str": "2", "name": "O"}]});
        o["views"] = json!({"count": "77", "state": "EnabledWithCount"});
        o
    }

    #[test]
    fn retweet_is_built_from_its_original() {
        let mut out = Collector::default();
        collect(&retweet_of("20", original("21")), "tweet-20", &mut out);
        let rt = out.tweets.first().expect("the retweet");
        assert_eq!(
            rt.raw_content,
            "RT @orig: the whole text is long & ends here $BTC @Orig"
        );
        assert_eq!(rt.view_count, Some(77));
        assert_eq!(rt.cashtags, ["BTC"]);
        let names: Vec<&str> = rt
            .mentioned_users
            .iter()
            .map(|m| m.username.as_str())
            .collect();
        assert_eq!(names, ["orig"], "one user, whatever the case");
    }

    #[test]
    fn retweet_keeps_its_own_views_and_text_when_the_original_cannot_give_them() {
        // Its own view count wins.
        let mut rt = retweet_of("30", original("31"));
        rt["views"] = json!({"count": "5"});
        let mut out = Collector::default();
        collect(&rt, "tweet-30", &mut out);
        assert_eq!(out.tweets.first().and_then(|t| t.view_count), Some(5));

        // An original without its author's handle: X's own text stays.
        let mut o = original("41");
        o["core"] = json!({});
        let mut out = Collector::default();
        collect(&retweet_of("40", o), "tweet-40", &mut out);
        assert_eq!(
            out.tweets.first().map(|t| t.raw_content.as_str()),
            Some("RT @orig: the whole text is lo…")
        );

        // An original with malformed entities: the retweet keeps its own and is stored; the
        // original is reported on its own.
        let mut o = original("51");
        o["legacy"]["entities"]["symbols"] = json!("BTC");
        let mut out = Collector::default();
        collect(&retweet_of("50", o), "tweet-50", &mut out);
        let rt = out.tweets.first().expect("the retweet is kept");
        assert_eq!(rt.id, "50");
        assert!(rt.cashtags.is_empty());
        assert_eq!(
            out.skipped.first().map(|s| s.reason.as_str()),
            Some("retweeted tweet: legacy.entities.symbols is a string, expected an array")
        );
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
