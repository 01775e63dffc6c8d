//! `tweet-chunker`: one tweet, one chunk, for retrieval over what the scraper collects.
//!
//! The document is a tweet's JSON as the scraper stores it in the `tweets` collection (the
//! `tweet` record's fields in snake_case with `_id`, `date_ms`, ...; the record itself with
//! `id` reads too). The chunk is the tweet's text (`raw_content`): the answer's
//! `normalised` text, so offsets are chars of it. Its metadata adds to the document's:
//!
//! | key | value |
//! |---|---|
//! | `tweet_id` | the tweet's id |
//! | `author` | the author's handle, without `@` |
//! | `author_id` | the author's user id |
//! | `time` | the tweet's time, RFC 3339 as stored |
//! | `time_ms` | the same in ms since the Unix epoch, when stored (`date_ms`) |
//! | `url` | the tweet's URL |
//! | `cashtags` | `$BTC,$IREN`: upper case, deduplicated, sorted; from the `cashtags` field and the text |
//! | `lang` | X's language code |
//! | `reply_to`, `quote_of`, `retweet_of` | the other tweet's id, when there is one |
//!
//! A tweet over `max-tokens` (X's long posts) is cut by size like any text, each part with
//! the same metadata and `part` = 1, 2, ...; a tweet with no text makes no chunk.

use std::collections::BTreeSet;

use impressox_plugin_sdk::chunking::{self, CharOffsets};
use impressox_plugin_sdk::types::{Chunk, ChunkOptions, Chunked, Document};
use impressox_plugin_sdk::{DocChunker, export_doc_chunker, tokens};
use serde_json::{Map, Value};

/// The plugin.
pub struct TweetChunker;

impl DocChunker for TweetChunker {
    const NAME: &'static str = "tweet-chunker";
    const DESCRIPTION: &'static str =
        "one stored tweet, one chunk, with author, time, cashtags and URL as metadata";

    fn chunk(document: Document, options: ChunkOptions) -> Result<Chunked, String> {
        chunk_tweet(&document, &options, &mut |texts| tokens::count_many(texts))
    }
}

export_doc_chunker!(TweetChunker);

/// Cut one stored tweet; `count` answers the token count of each text.
pub fn chunk_tweet(
    doc: &Document,
    options: &ChunkOptions,
    count: &mut dyn FnMut(&[String]) -> Vec<u32>,
) -> Result<Chunked, String> {
    let id = &doc.id;
    chunking::check_options(options).map_err(|e| format!("document `{id}`: {e}"))?;
    let essence = doc.media_type.split(';').next().unwrap_or("").trim();
    if !(essence.is_empty() || essence.eq_ignore_ascii_case("application/json")) {
        return Err(format!(
            "document `{id}`: media type `{}` is not a tweet's JSON (application/json)",
            doc.media_type
        ));
    }
    let value: Value = serde_json::from_str(&doc.text)
        .map_err(|e| format!("document `{id}` is not valid JSON: {e}"))?;
    let Value::Object(tweet) = value else {
        return Err(format!(
            "document `{id}` is not a JSON object (a stored tweet)"
        ));
    };
    let text = match tweet.get("raw_content") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("document `{id}`: `raw_content` is not a string")),
        None => {
            return Err(format!(
                "document `{id}` has no `raw_content`: not a tweet as the scraper stores it"
            ));
        }
    };
    let metadata = metadata(doc, &tweet, &text);
    let pieces = match count(std::slice::from_ref(&text)).first() {
        _ if text.trim().is_empty() => Vec::new(),
        Some(&n) if n <= options.max_tokens => {
            // One tweet, one chunk: all of it, as stored.
            std::iter::once(0..text.len()).collect()
        }
        _ => chunking::split(&text, 0..text.len(), options, count),
    };
    let parts = pieces.len();
    let mut offsets = CharOffsets::new(&text);
    let chunks = pieces
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let mut metadata = metadata.clone();
            if parts > 1 {
                metadata.push(("part".into(), (i + 1).to_string()));
            }
            Chunk {
                text: text[r.clone()].to_string(),
                start: offsets.at(r.start),
                end: offsets.at(r.end),
                metadata,
            }
        })
        .collect();
    Ok(Chunked {
        normalised: Some(text),
        chunks,
    })
}

/// The document's metadata, then the tweet's (replacing a source key of the same name).
fn metadata(doc: &Document, tweet: &Map<String, Value>, text: &str) -> Vec<(String, String)> {
    let string = |key: &str| match tweet.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let mut ours: Vec<(String, String)> = Vec::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            ours.push((key.to_string(), v));
        }
    };
    put("tweet_id", string("_id").or_else(|| string("id")));
    put(
        "author",
        string("username").map(|u| u.trim_start_matches('@').to_string()),
    );
    put("author_id", string("user_id"));
    put("time", string("date"));
    put("time_ms", string("date_ms"));
    put("url", string("url"));
    let tags = cashtags(tweet.get("cashtags"), text);
    put(
        "cashtags",
        (!tags.is_empty()).then(|| tags.into_iter().collect::<Vec<_>>().join(",")),
    );
    put("lang", string("lang"));
    put("reply_to", string("in_reply_to_tweet_id"));
    put("quote_of", string("quoted_tweet_id"));
    put("retweet_of", string("retweeted_tweet_id"));
    let mut out: Vec<(String, String)> = doc
        .metadata
        .iter()
        .filter(|(k, _)| !ours.iter().any(|(o, _)| o == k))
        .cloned()
        .collect();
    out.extend(ours);
    out
}

/// `$TICKER`s from X's `cashtags` field and from the text: upper case, deduplicated,
/// sorted.
pub fn cashtags(field: Option<&Value>, text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(Value::Array(tags)) = field {
        for tag in tags.iter().filter_map(Value::as_str) {
            let tag = tag.trim().trim_start_matches('$');
            if !tag.is_empty() {
                out.insert(format!("${}", tag.to_uppercase()));
            }
        }
    }
    out.extend(cashtags_in(text));
    out
}

/// `$` + a letter + up to 9 letters, digits or `_`, not inside a word (`a$b`) and not
/// running on (`$ABCDEFGHIJKL`): `$IREN`, `$btc` → `$BTC`; `$100` is money, not a ticker.
pub fn cashtags_in(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let after_word = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if chars[i] != '$'
            || after_word
            || !chars.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic())
        {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        let runs_on = chars.get(j).is_some_and(|c| c.is_alphanumeric());
        if j - i - 1 <= 10 && !runs_on {
            let tag: String = chars[i + 1..j].iter().collect();
            out.push(format!("${}", tag.to_uppercase()));
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(texts: &[String]) -> Vec<u32> {
        texts
            .iter()
            .map(|t| t.split_whitespace().count() as u32)
            .collect()
    }

    fn opts(max: u32) -> ChunkOptions {
        ChunkOptions {
            max_tokens: max,
            overlap_tokens: 0,
        }
    }

    fn stored(text: &str) -> Document {
        let tweet = serde_json::json!({
            "_id": "1990714142880702470", "id_num": 1990714142880702470i64,
            "url": "https://x.com/miner/status/1990714142880702470",
            "date": "2025-11-18T10:15:30Z", "date_ms": 1763460930000i64,
            "user_id": "44196397", "username": "miner", "lang": "en",
            "raw_content": text, "cashtags": ["iren", "BTC"], "hashtags": [],
            "in_reply_to_tweet_id": null, "quoted_tweet_id": "17", "retweeted_tweet_id": null,
            "raw_json": "{}", "first_seen_ms": 1, "last_seen_ms": 2
        });
        Document {
            id: "1990714142880702470".into(),
            text: tweet.to_string(),
            media_type: "application/json".into(),
            metadata: vec![
                ("collection".into(), "tweets".into()),
                ("author".into(), "x".into()),
            ],
        }
    }

    fn meta<'a>(c: &'a Chunk, key: &str) -> Option<&'a str> {
        c.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn one_tweet_one_chunk_with_its_metadata() {
        let text = "$IREN and $btc up, $100 gain; also $iren again. a$b no.";
        let out = chunk_tweet(&stored(text), &opts(100), &mut words).unwrap();
        assert_eq!(out.normalised.as_deref(), Some(text));
        assert_eq!(out.chunks.len(), 1);
        let c = &out.chunks[0];
        assert_eq!(
            (c.text.as_str(), c.start, c.end),
            (text, 0, text.chars().count() as u32)
        );
        assert_eq!(meta(c, "cashtags"), Some("$BTC,$IREN"));
        assert_eq!(
            meta(c, "author"),
            Some("miner"),
            "the tweet's author replaces the source's"
        );
        assert_eq!(meta(c, "author_id"), Some("44196397"));
        assert_eq!(meta(c, "time"), Some("2025-11-18T10:15:30Z"));
        assert_eq!(meta(c, "time_ms"), Some("1763460930000"));
        assert_eq!(
            meta(c, "url"),
            Some("https://x.com/miner/status/1990714142880702470")
        );
        assert_eq!(meta(c, "tweet_id"), Some("1990714142880702470"));
        assert_eq!(meta(c, "quote_of"), Some("17"));
        assert_eq!(meta(c, "reply_to"), None);
        assert_eq!(meta(c, "collection"), Some("tweets"));
        assert!(meta(c, "part").is_none());
    }

    #[test]
    fn a_long_post_is_cut_into_parts() {
        let text = (0..25)
            .map(|i| format!("w{i}."))
            .collect::<Vec<_>>()
            .join(" ");
        let out = chunk_tweet(&stored(&text), &opts(10), &mut words).unwrap();
        assert_eq!(out.chunks.len(), 3);
        assert_eq!(meta(&out.chunks[2], "part"), Some("3"));
        for c in &out.chunks {
            assert_eq!(chunking::char_slice(&text, c.start, c.end), c.text);
        }
    }

    #[test]
    fn cashtag_rules() {
        assert_eq!(
            cashtags_in("$IREN, ($btc) $ETH_X"),
            ["$IREN", "$BTC", "$ETH_X"]
        );
        assert!(cashtags_in("$100 US$5 $ $TOOLONGTICKERX $Xé").is_empty());
    }

    #[test]
    fn bad_input_is_named() {
        let mut d = stored("x");
        d.text = "{\"raw_content\": 3}".into();
        let err = chunk_tweet(&d, &opts(10), &mut words).unwrap_err();
        assert!(err.contains("`raw_content` is not a string"), "{err}");
        d.text = "[1]".into();
        assert!(
            chunk_tweet(&d, &opts(10), &mut words)
                .unwrap_err()
                .contains("not a JSON object")
        );
        d.text = "{oops".into();
        let err = chunk_tweet(&d, &opts(10), &mut words).unwrap_err();
        assert!(
            err.contains("is not valid JSON: key must be a string at line 1 column 2"),
            "{err}"
        );
        d.text = "{}".into();
        assert!(
            chunk_tweet(&d, &opts(10), &mut words)
                .unwrap_err()
                .contains("no `raw_content`")
        );
        let mut d = stored("x");
        d.media_type = "text/html".into();
        assert!(
            chunk_tweet(&d, &opts(10), &mut words)
                .unwrap_err()
                .contains("`text/html`")
        );
        assert!(
            chunk_tweet(&stored("  "), &opts(10), &mut words)
                .unwrap()
                .chunks
                .is_empty()
        );
    }
}
