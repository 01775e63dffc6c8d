//! The scraper's collections in the document store (docs/design/x-scraper.md §4.6, §4.7):
//! `tweets` and `profiles` (the parser's records plus `raw_json` and when they were seen),
//! `scrape_targets` (owned by [`super::targets`]) and `scrape_spool` (captures the parser
//! could not read), their indexes, and the synthetic bodies `scraper reparse` feeds the
//! current parser.
//!
//! Writes are insert-or-compare-and-set rather than upserts: a stored document keeps its
//! `first_seen_ms` (an upsert would reset it) and the `_id` (the tweet or user id) makes a
//! re-run, or another host racing us, land on the same document instead of a duplicate.
//! Field names are the WIT records' in snake_case, as in the other collections.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use futures_util::future::try_join_all;
use serde::Serialize;
use serde_json::Value;

use crate::bindings::types::{PageCapture, Profile, ScrapeResult, Tweet};
use crate::documents::{
    Doc, Documents, Filter, IndexSpec, Order, Query, Write, WriteOutcome, rev_of,
};
use crate::util::{parse_rfc3339_ms, truncate};

pub const TWEETS: &str = "tweets";
pub const PROFILES: &str = "profiles";
pub const TARGETS: &str = "scrape_targets";
pub const SPOOL: &str = "scrape_spool";

/// Indexes the scraper's queries need; [`ensure_indexes`] creates them at start-up.
pub const INDEXES: &[IndexSpec<'static>] = &[
    // A user's tweets, newest first (stop rules, the API).
    IndexSpec {
        collection: TWEETS,
        name: "by_user",
        fields: &[("user_id", Order::Asc), ("id_num", Order::Desc)],
        unique: false,
    },
    IndexSpec {
        collection: TWEETS,
        name: "by_conversation",
        fields: &[("conversation_id", Order::Asc)],
        unique: false,
    },
    IndexSpec {
        collection: TWEETS,
        name: "by_date",
        fields: &[("date_ms", Order::Asc)],
        unique: false,
    },
    // Not unique: X re-issues a handle after a rename, and the newer account's write
    // must not fail on the older one's record.
    IndexSpec {
        collection: PROFILES,
        name: "by_username",
        fields: &[("username_lower", Order::Asc)],
        unique: false,
    },
    IndexSpec {
        collection: TARGETS,
        name: "due",
        fields: &[("enabled", Order::Asc), ("next_run_ms", Order::Asc)],
        unique: false,
    },
    IndexSpec {
        collection: SPOOL,
        name: "by_age",
        fields: &[("at_ms", Order::Asc)],
        unique: false,
    },
];

/// Create the scraper's indexes (idempotent); the worker calls it before its first run.
pub async fn ensure_indexes(docs: &dyn Documents) -> Result<()> {
    docs.ensure_indexes(INDEXES).await.with_context(|| {
        format!(
            "failed to create the scraper's indexes on `{TWEETS}`, `{PROFILES}`, `{TARGETS}` and `{SPOOL}` ({} documents)",
            docs.backend()
        )
    })
}

// ---------------------------------------------------------------- tweets and profiles

/// Where the documents of a write come from; decides the time fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sighting<'a> {
    /// A run of `target` captured them at `at_ms`: a new document gets
    /// `first_seen_ms = last_seen_ms = at_ms` and `seen_by = target`; a stored one keeps
    /// the earlier `first_seen_ms` and its `seen_by`, and `last_seen_ms` advances (a
    /// spooled capture parsed late may be older than what is stored: min / max).
    Run { target: &'a str, at_ms: i64 },
    /// `scraper reparse` over stored raw JSON: a stored document keeps `first_seen_ms`,
    /// `last_seen_ms` and `seen_by`; one not stored yet (a tweet known only as the retweet
    /// inside another) gets `now_ms` and `seen_by = "reparse"`.
    Reparse { now_ms: i64 },
}

/// What a write says about its documents besides the parser's records.
#[derive(Debug, Clone, Copy)]
pub struct WriteMeta<'a> {
    /// `name@version` of the parser that produced the records.
    pub parser: &'a str,
    pub sighting: Sighting<'a>,
    /// Count what would change and write nothing (`scraper reparse --dry-run`).
    pub dry_run: bool,
}

/// How the documents of one write fared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteCounts {
    /// Inserted: not stored before.
    pub new: u64,
    /// Stored before and replaced (a run always advances `last_seen_ms`).
    pub updated: u64,
    /// Stored before with exactly these fields: nothing written.
    pub unchanged: u64,
}

/// Counts of one [`write_result`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Written {
    pub tweets: WriteCounts,
    pub profiles: WriteCounts,
}

/// The `tweets` document of `t` without the time fields (see [`Sighting`]): the
/// record's fields in snake_case with `_id` = the tweet id, plus `id_num` (the id as i64,
/// null if X ever sends a non-numeric one), `date_ms` (null if `date` is not RFC 3339)
/// and `parser`. `raw_json` stays a string.
pub fn tweet_doc(t: &Tweet, parser: &str) -> Result<Doc> {
    let mut d = record_fields(t, "tweet", &t.id)?;
    d.remove("id");
    d.insert("_id".into(), t.id.clone().into());
    d.insert("id_num".into(), t.id.parse::<i64>().ok().into());
    d.insert("date_ms".into(), parse_rfc3339_ms(&t.date).into());
    d.insert("parser".into(), parser.into());
    Ok(d)
}

/// The `profiles` document of `p` without the time fields: the record's fields with
/// `_id` = the user id, `username_lower` (handles are case-insensitive) and `parser`.
pub fn profile_doc(p: &Profile, parser: &str) -> Result<Doc> {
    let mut d = record_fields(p, "profile", &p.id)?;
    d.remove("id");
    d.insert("_id".into(), p.id.clone().into());
    d.insert("username_lower".into(), p.username.to_lowercase().into());
    d.insert("parser".into(), parser.into());
    Ok(d)
}

fn record_fields<T: Serialize>(record: &T, what: &str, id: &str) -> Result<Doc> {
    match serde_json::to_value(record) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => bail!("{what} {id} serialized to {other}, not an object"),
        Err(e) => Err(e).with_context(|| format!("failed to serialize {what} {id}")),
    }
}

/// Write the tweets and profiles of one parsed capture (see [`write_docs`]).
pub async fn write_result(
    docs: &dyn Documents,
    result: &ScrapeResult,
    meta: &WriteMeta<'_>,
) -> Result<Written> {
    let profiles = write_profiles(docs, &result.profiles, meta).await?;
    let tweets = write_tweets(docs, &result.tweets, meta).await?;
    Ok(Written { tweets, profiles })
}

pub async fn write_tweets(
    docs: &dyn Documents,
    tweets: &[Tweet],
    meta: &WriteMeta<'_>,
) -> Result<WriteCounts> {
    let items = tweets
        .iter()
        .map(|t| tweet_doc(t, meta.parser))
        .collect::<Result<Vec<_>>>()?;
    write_docs(docs, TWEETS, items, meta, true).await
}

pub async fn write_profiles(
    docs: &dyn Documents,
    profiles: &[Profile],
    meta: &WriteMeta<'_>,
) -> Result<WriteCounts> {
    let items = profiles
        .iter()
        .map(|p| profile_doc(p, meta.parser))
        .collect::<Result<Vec<_>>>()?;
    write_docs(docs, PROFILES, items, meta, false).await
}

/// Insert the documents not stored yet and compare-and-set the others from the `_rev`
/// just read; writes that lost a race to another writer (`Duplicate` on insert,
/// `Conflict` on replace) are re-read and tried once more. A second loss is an error
/// naming the ids (the next run writes them again; nothing is duplicated meanwhile).
async fn write_docs(
    docs: &dyn Documents,
    coll: &str,
    items: Vec<Doc>,
    meta: &WriteMeta<'_>,
    with_seen_by: bool,
) -> Result<WriteCounts> {
    // One write per `_id` per batch (the Documents contract); a later record of the same
    // id is the fresher one.
    let mut pending: Vec<Doc> = Vec::with_capacity(items.len());
    let mut at: HashMap<String, usize> = HashMap::new();
    for d in items {
        let id = crate::documents::id_of(coll, &d)?.to_string();
        match at.get(&id) {
            Some(&i) => pending[i] = d,
            None => {
                at.insert(id, pending.len());
                pending.push(d);
            }
        }
    }
    let mut counts = WriteCounts::default();
    for _attempt in 0..2 {
        if pending.is_empty() {
            break;
        }
        // Concurrent point reads: an `_id IN (...)` query would scan the whole collection
        // on the embedded backend, whose planner only uses secondary indexes.
        let stored = try_join_all(pending.iter().map(|d| docs.get(coll, id_str(d))))
            .await
            .with_context(|| format!("failed to read `{coll}` before writing"))?;
        let mut writes = Vec::new();
        let mut sent: Vec<Doc> = Vec::new();
        for (new, old) in pending.into_iter().zip(stored) {
            let doc = with_times(new.clone(), old.as_ref(), meta.sighting, with_seen_by);
            match old {
                None => writes.push(Write::Insert {
                    coll: coll.into(),
                    doc,
                }),
                Some(old) if same_fields(&doc, &old) => {
                    counts.unchanged += 1;
                    continue;
                }
                Some(old) => writes.push(Write::ReplaceIf {
                    coll: coll.into(),
                    doc,
                    rev: rev_of(&old),
                }),
            }
            sent.push(new);
        }
        if meta.dry_run {
            for w in &writes {
                match w {
                    Write::Insert { .. } => counts.new += 1,
                    _ => counts.updated += 1,
                }
            }
            return Ok(counts);
        }
        let outcomes = docs
            .write(writes)
            .await
            .with_context(|| format!("failed to write {} documents to `{coll}`", sent.len()))?;
        let mut retry = Vec::new();
        for (new, outcome) in sent.into_iter().zip(outcomes) {
            match outcome {
                WriteOutcome::Inserted => counts.new += 1,
                WriteOutcome::Replaced { .. } => counts.updated += 1,
                WriteOutcome::Duplicate | WriteOutcome::Conflict => retry.push(new),
                other => bail!(
                    "`{coll}` answered {other:?} to an insert or replace of `{}`",
                    id_str(&new)
                ),
            }
        }
        pending = retry;
    }
    if !pending.is_empty() {
        let ids: Vec<&str> = pending.iter().map(id_str).collect();
        bail!(
            "`{coll}`: {} documents changed under us twice while being written ({}); another host writes them too, the next run retries",
            ids.len(),
            ids.join(", ")
        );
    }
    Ok(counts)
}

fn id_str(d: &Doc) -> &str {
    d.get("_id").and_then(Value::as_str).unwrap_or_default()
}

fn stored_i64(old: Option<&Doc>, field: &str) -> Option<i64> {
    old.and_then(|o| o.get(field)).and_then(Value::as_i64)
}

/// `doc` with `first_seen_ms`, `last_seen_ms` (and, for tweets, `seen_by`) from the
/// stored document `old` and the sighting.
fn with_times(mut doc: Doc, old: Option<&Doc>, s: Sighting<'_>, with_seen_by: bool) -> Doc {
    let first = stored_i64(old, "first_seen_ms");
    let last = stored_i64(old, "last_seen_ms");
    let old_seen_by = old
        .and_then(|o| o.get("seen_by"))
        .filter(|v| !v.is_null())
        .cloned();
    let (first, last, seen_by) = match s {
        Sighting::Run { target, at_ms } => (
            first.map_or(at_ms, |f| f.min(at_ms)),
            last.map_or(at_ms, |l| l.max(at_ms)),
            old_seen_by.unwrap_or_else(|| target.into()),
        ),
        Sighting::Reparse { now_ms } => (
            first.unwrap_or(now_ms),
            last.unwrap_or(now_ms),
            old_seen_by.unwrap_or_else(|| "reparse".into()),
        ),
    };
    doc.insert("first_seen_ms".into(), first.into());
    doc.insert("last_seen_ms".into(), last.into());
    if with_seen_by {
        doc.insert("seen_by".into(), seen_by);
    }
    doc
}

/// Whether `new` holds exactly the stored fields (the backend's `_rev` aside).
fn same_fields(new: &Doc, old: &Doc) -> bool {
    let stored = old.iter().filter(|(k, _)| k.as_str() != "_rev").count();
    stored == new.len() && new.iter().all(|(k, v)| old.get(k) == Some(v))
}

// ---------------------------------------------------------------- the spool

/// A capture the parser could not read, kept until a parser can.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolEntry {
    /// `<target>:<run start ms>:<step>`.
    pub id: String,
    pub target: String,
    pub capture: PageCapture,
    /// What the parser (or the runtime) said.
    pub error: String,
    /// When it was spooled.
    pub at_ms: i64,
}

/// The spool id of step `step` of the run of `target` that started at `run_started_ms`.
pub fn spool_id(target: &str, run_started_ms: i64, step: u32) -> String {
    format!("{target}:{run_started_ms}:{step}")
}

/// Keep `capture` that failed with `error`; returns its id. Spooling the same step
/// again replaces the entry.
pub async fn spool(
    docs: &dyn Documents,
    target: &str,
    run_started_ms: i64,
    step: u32,
    capture: &PageCapture,
    error: &str,
    now_ms: i64,
) -> Result<String> {
    let id = spool_id(target, run_started_ms, step);
    let capture_json = serde_json::to_string(capture)
        .with_context(|| format!("failed to serialize the capture of {id}"))?;
    let mut d = Doc::new();
    d.insert("_id".into(), id.clone().into());
    d.insert("target".into(), target.into());
    d.insert("capture_json".into(), capture_json.into());
    // A guest's error text is bounded by its output cap, which may be large.
    d.insert("error".into(), truncate(error, 4096).into());
    d.insert("at_ms".into(), now_ms.into());
    crate::documents::upsert(docs, SPOOL, d)
        .await
        .with_context(|| format!("failed to spool the capture {id} into `{SPOOL}`"))?;
    Ok(id)
}

/// Spooled captures, oldest first, of `target` or of every target. An entry this
/// version cannot read is logged and left where it is.
pub async fn spooled(
    docs: &dyn Documents,
    target: Option<&str>,
    limit: usize,
) -> Result<Vec<SpoolEntry>> {
    let filter = match target {
        Some(t) => Filter::all().eq("target", t),
        None => Filter::all(),
    };
    let q = Query::new(filter).sort("at_ms", Order::Asc).limit(limit);
    let found = docs
        .find(SPOOL, &q)
        .await
        .with_context(|| format!("failed to read `{SPOOL}`"))?;
    Ok(found
        .into_iter()
        .filter_map(|d| {
            spool_entry(&d)
                .inspect_err(|e| {
                    tracing::error!(entry = id_str(&d), error = %e, "scraper: unreadable spool entry skipped");
                })
                .ok()
        })
        .collect())
}

fn spool_entry(d: &Doc) -> Result<SpoolEntry> {
    let text = |f: &str| d.get(f).and_then(Value::as_str).unwrap_or_default();
    let capture = serde_json::from_str(text("capture_json"))
        .with_context(|| format!("`capture_json` of spool entry {}", id_str(d)))?;
    Ok(SpoolEntry {
        id: id_str(d).to_string(),
        target: text("target").to_string(),
        capture,
        error: text("error").to_string(),
        at_ms: d.get("at_ms").and_then(Value::as_i64).unwrap_or(0),
    })
}

/// Forget a spooled capture once it was parsed and written; false if it was gone.
pub async fn unspool(docs: &dyn Documents, id: &str) -> Result<bool> {
    let out = docs
        .write(vec![Write::Delete {
            coll: SPOOL.into(),
            id: id.into(),
        }])
        .await
        .with_context(|| format!("failed to delete spool entry {id}"))?;
    Ok(out.first() == Some(&WriteOutcome::Deleted))
}

// ---------------------------------------------------------------- reparse bodies

/// Where the synthetic timeline body claims to come from: the parser picks responses by
/// operation name (the path segment after the query id).
pub const REPARSE_TWEETS_URL: &str = "https://x.com/i/api/graphql/reparse/UserTweets";
pub const REPARSE_PROFILE_URL: &str = "https://x.com/i/api/graphql/reparse/UserByScreenName";

/// A `UserTweets` body with one timeline entry per `(id, raw_json)`: the stored tweet
/// result object (wrapper included) back where X had it. A `raw_json` that is not a JSON
/// object goes in as a string, so the parser reports that entry (`tweet-<id>`) as
/// skipped instead of the whole body failing.
pub fn reparse_tweets_body<'a>(tweets: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut entries = Vec::new();
    for (id, raw) in tweets {
        let entry_id = format!("tweet-{id}");
        entries.push(format!(
            r#"{{"entryId":{},"sortIndex":{},"content":{{"entryType":"TimelineTimelineItem","itemContent":{{"itemType":"TimelineTweet","tweet_results":{{"result":{}}}}}}}}}"#,
            json_string(&entry_id),
            json_string(id),
            embeddable(raw)
        ));
    }
    format!(
        r#"{{"data":{{"user":{{"result":{{"timeline":{{"timeline":{{"instructions":[{{"type":"TimelineAddEntries","entries":[{}]}}]}}}}}}}}}}}}"#,
        entries.join(",")
    )
}

/// A `UserByScreenName` body around a stored profile's `raw_json` (the user result).
pub fn reparse_profile_body(raw_json: &str) -> String {
    format!(
        r#"{{"data":{{"user":{{"result":{}}}}}}}"#,
        embeddable(raw_json)
    )
}

/// A capture holding one synthetic response, for the parser plugin.
pub fn reparse_capture(url: &str, body: String, at_ms: i64) -> PageCapture {
    PageCapture {
        url: url.to_string(),
        html: String::new(),
        responses: vec![crate::bindings::types::CapturedResponse {
            url: url.to_string(),
            status: 200,
            headers: Vec::new(),
            body,
        }],
        captured_at_ms: at_ms,
    }
}

/// `raw` itself when it is a JSON object (spliced as text: no re-encoding of what X
/// sent), otherwise `raw` as a JSON string.
fn embeddable(raw: &str) -> String {
    let object = raw.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(raw).is_ok();
    if object {
        raw.to_string()
    } else {
        json_string(raw)
    }
}

fn json_string(s: &str) -> String {
    Value::from(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{MediaItem, MentionedUser};
    use crate::documents::embedded::EmbeddedDocuments;
    use impressox_plugin_sdk::types as sdk;

    fn tweet(id: &str, likes: u64) -> Tweet {
        Tweet {
            id: id.into(),
            url: format!("https://x.com/ana/status/{id}"),
            date: "2025-11-18T10:15:30Z".into(),
            user_id: "1453287640927653889".into(),
            username: "coinledger_ana".into(),
            lang: "en".into(),
            raw_content: "$BTC up".into(),
            reply_count: 1,
            retweet_count: 2,
            like_count: likes,
            quote_count: 0,
            bookmarked_count: 0,
            view_count: Some(1234),
            conversation_id: id.into(),
            hashtags: vec![],
            cashtags: vec!["BTC".into()],
            mentioned_users: vec![MentionedUser {
                id: "14567890".into(),
                username: "pete".into(),
                display_name: "Pete".into(),
            }],
            links: vec![],
            media: vec![MediaItem {
                kind: "photo".into(),
                url: "https://pbs.twimg.com/media/x.jpg".into(),
                preview_url: None,
            }],
            retweeted_tweet_id: None,
            quoted_tweet_id: None,
            in_reply_to_tweet_id: None,
            raw_json: r#"{"__typename":"Tweet","rest_id":"1"}"#.into(),
        }
    }

    fn profile(id: &str, username: &str) -> Profile {
        Profile {
            id: id.into(),
            username: username.into(),
            display_name: "Ana".into(),
            created: "2021-10-27T14:02:11Z".into(),
            description: String::new(),
            location: String::new(),
            followers_count: 10,
            following_count: 2,
            statuses_count: 100,
            favourites_count: 5,
            media_count: 1,
            profile_image_url: String::new(),
            profile_banner_url: None,
            website: None,
            verified: false,
            blue: true,
            protected: false,
            pinned_tweet_ids: vec![],
            raw_json: "{}".into(),
        }
    }

    fn docs_in(dir: &tempfile::TempDir) -> EmbeddedDocuments {
        EmbeddedDocuments::open(&dir.path().join("documents.redb")).unwrap()
    }

    fn run(target: &str, at_ms: i64) -> WriteMeta<'_> {
        WriteMeta {
            parser: "x-timeline@0.1.0",
            sighting: Sighting::Run { target, at_ms },
            dry_run: false,
        }
    }

    #[test]
    fn tweet_doc_has_id_num_and_date_ms() {
        let d = tweet_doc(&tweet("1990714142880702470", 7), "x-timeline@0.1.0").unwrap();
        assert_eq!(d["_id"], "1990714142880702470");
        assert!(!d.contains_key("id"), "the id is `_id`, not a second field");
        assert_eq!(d["id_num"].as_i64(), Some(1_990_714_142_880_702_470));
        assert_eq!(d["date_ms"].as_i64(), Some(1_763_460_930_000));
        assert_eq!(d["raw_content"], "$BTC up");
        assert_eq!(d["like_count"], 7);
        assert_eq!(d["view_count"], 1234);
        assert_eq!(d["cashtags"], serde_json::json!(["BTC"]));
        assert_eq!(d["mentioned_users"][0]["display_name"], "Pete");
        assert_eq!(d["media"][0]["preview_url"], Value::Null);
        assert_eq!(d["retweeted_tweet_id"], Value::Null);
        assert!(d["raw_json"].is_string(), "raw JSON stays a string");
        assert_eq!(d["parser"], "x-timeline@0.1.0");

        let mut odd = tweet("not-a-number", 0);
        odd.date = "Tue Nov 18 10:15:30 +0000 2025".into();
        let d = tweet_doc(&odd, "p").unwrap();
        assert_eq!(d["id_num"], Value::Null);
        assert_eq!(d["date_ms"], Value::Null);

        let p = profile_doc(&profile("1453287640927653889", "CoinLedger_Ana"), "p").unwrap();
        assert_eq!(p["_id"], "1453287640927653889");
        assert_eq!(p["username_lower"], "coinledger_ana");
        assert_eq!(p["username"], "CoinLedger_Ana");
    }

    #[tokio::test]
    async fn rewrite_keeps_first_seen_and_advances_last_seen() {
        let dir = tempfile::tempdir().unwrap();
        let docs = docs_in(&dir);
        ensure_indexes(&docs).await.unwrap();
        let (a, b) = ("1990714142880702470", "1990528284881858569");
        let first = ScrapeResult {
            tweets: vec![tweet(a, 1), tweet(b, 1)],
            profiles: vec![profile("1453287640927653889", "coinledger_ana")],
            cursors: vec![],
            rate_limits: vec![],
            account_signal: crate::bindings::types::AccountSignal::Ok,
            skipped: vec![],
        };
        let w = write_result(&docs, &first, &run("user:coinledger_ana", 1_000))
            .await
            .unwrap();
        assert_eq!(
            w.tweets,
            WriteCounts {
                new: 2,
                updated: 0,
                unchanged: 0
            }
        );
        assert_eq!(w.profiles.new, 1);

        // A re-run later, seen through a search, with fresher counts: same documents.
        let mut again = first.clone();
        again.tweets[0].like_count = 50;
        let w = write_result(&docs, &again, &run("search:btc", 5_000))
            .await
            .unwrap();
        assert_eq!(
            w.tweets,
            WriteCounts {
                new: 0,
                updated: 2,
                unchanged: 0
            }
        );
        assert_eq!(w.profiles.updated, 1);
        assert_eq!(docs.count(TWEETS, &Filter::all()).await.unwrap(), 2);
        let d = docs.get(TWEETS, a).await.unwrap().unwrap();
        assert_eq!(d["first_seen_ms"], 1_000);
        assert_eq!(d["last_seen_ms"], 5_000);
        assert_eq!(d["like_count"], 50);
        assert_eq!(
            d["seen_by"], "user:coinledger_ana",
            "the first sighting's target"
        );
        assert_eq!(rev_of(&d), 2);
        let p = docs
            .get(PROFILES, "1453287640927653889")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (p["first_seen_ms"].as_i64(), p["last_seen_ms"].as_i64()),
            (Some(1_000), Some(5_000))
        );

        // A spooled capture parsed late is older than what is stored: first_seen moves
        // back, last_seen stays.
        let w = write_tweets(&docs, &first.tweets[..1], &run("user:coinledger_ana", 500))
            .await
            .unwrap();
        assert_eq!(w.updated, 1);
        let d = docs.get(TWEETS, a).await.unwrap().unwrap();
        assert_eq!(
            (d["first_seen_ms"].as_i64(), d["last_seen_ms"].as_i64()),
            (Some(500), Some(5_000))
        );

        // Reparse: times kept; identical fields write nothing; a dry run writes nothing.
        let reparse = |dry_run| WriteMeta {
            parser: "x-timeline@0.1.0",
            sighting: Sighting::Reparse { now_ms: 9_000 },
            dry_run,
        };
        let w = write_tweets(&docs, &first.tweets[..1], &reparse(false))
            .await
            .unwrap();
        assert_eq!(
            w,
            WriteCounts {
                new: 0,
                updated: 0,
                unchanged: 1
            }
        );
        let mut fixed = first.tweets[0].clone();
        fixed.lang = "pt".into();
        let dry = write_tweets(&docs, std::slice::from_ref(&fixed), &reparse(true))
            .await
            .unwrap();
        assert_eq!(dry.updated, 1);
        assert_eq!(docs.get(TWEETS, a).await.unwrap().unwrap()["lang"], "en");
        let w = write_tweets(&docs, std::slice::from_ref(&fixed), &reparse(false))
            .await
            .unwrap();
        assert_eq!(w.updated, 1);
        let d = docs.get(TWEETS, a).await.unwrap().unwrap();
        assert_eq!(d["lang"], "pt");
        assert_eq!(
            (d["first_seen_ms"].as_i64(), d["last_seen_ms"].as_i64()),
            (Some(500), Some(5_000))
        );
    }

    /// Documents whose first `races` write batches are preceded by another writer
    /// touching every id of the batch: between our read and our write, as on a second
    /// host.
    struct Racing {
        inner: EmbeddedDocuments,
        races: std::sync::atomic::AtomicU32,
    }

    #[async_trait::async_trait]
    impl Documents for Racing {
        fn backend(&self) -> &'static str {
            "racing"
        }
        async fn ping(&self) -> Result<()> {
            self.inner.ping().await
        }
        async fn ensure_indexes(&self, specs: &[IndexSpec<'_>]) -> Result<()> {
            self.inner.ensure_indexes(specs).await
        }
        async fn get(&self, coll: &str, id: &str) -> Result<Option<Doc>> {
            self.inner.get(coll, id).await
        }
        async fn find(&self, coll: &str, query: &Query) -> Result<Vec<Doc>> {
            self.inner.find(coll, query).await
        }
        async fn count(&self, coll: &str, filter: &Filter) -> Result<u64> {
            self.inner.count(coll, filter).await
        }
        async fn write(&self, writes: Vec<Write>) -> Result<Vec<WriteOutcome>> {
            use std::sync::atomic::Ordering::SeqCst;
            let race = self
                .races
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if race {
                for w in &writes {
                    let (Write::Insert { doc, .. } | Write::ReplaceIf { doc, .. }) = w else {
                        continue;
                    };
                    let mut theirs = doc.clone();
                    theirs.insert("first_seen_ms".into(), 10.into());
                    theirs.insert("last_seen_ms".into(), 10.into());
                    theirs.insert("seen_by".into(), "user:other_host".into());
                    let out = self
                        .inner
                        .write(vec![Write::Upsert {
                            coll: TWEETS.into(),
                            doc: theirs,
                        }])
                        .await?;
                    assert!(matches!(out[0], WriteOutcome::Upserted { .. }));
                }
            }
            self.inner.write(writes).await
        }
        async fn delete_where(&self, coll: &str, filter: &Filter) -> Result<u64> {
            self.inner.delete_where(coll, filter).await
        }
    }

    #[tokio::test]
    async fn a_lost_race_is_re_read_and_retried_once() {
        let dir = tempfile::tempdir().unwrap();
        let docs = Racing {
            inner: docs_in(&dir),
            races: 1.into(),
        };
        let (a, b) = ("1990714142880702470", "1990528284881858569");
        // Nothing stored: our inserts meet the other host's documents (Duplicate), are
        // re-read and replaced, keeping their first_seen_ms and seen_by.
        let w = write_tweets(
            &docs,
            &[tweet(a, 1), tweet(b, 1)],
            &run("user:coinledger_ana", 6_000),
        )
        .await
        .unwrap();
        assert_eq!(
            w,
            WriteCounts {
                new: 0,
                updated: 2,
                unchanged: 0
            }
        );
        for id in [a, b] {
            let d = docs.get(TWEETS, id).await.unwrap().unwrap();
            assert_eq!(
                (d["first_seen_ms"].as_i64(), d["last_seen_ms"].as_i64()),
                (Some(10), Some(6_000))
            );
            assert_eq!(d["seen_by"], "user:other_host");
            assert_eq!(rev_of(&d), 2);
        }
        assert_eq!(docs.count(TWEETS, &Filter::all()).await.unwrap(), 2);

        // Stored, and the other writer wins twice: an error naming the id.
        docs.races.store(2, std::sync::atomic::Ordering::SeqCst);
        let err = write_tweets(&docs, &[tweet(a, 9)], &run("user:coinledger_ana", 7_000))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains(a), "{err:#}");
        assert_eq!(docs.count(TWEETS, &Filter::all()).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn spool_keeps_captures_oldest_first_until_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let docs = docs_in(&dir);
        ensure_indexes(&docs).await.unwrap();
        let capture = reparse_capture(REPARSE_TWEETS_URL, reparse_tweets_body([]), 77);
        let late = spool(&docs, "user:a", 2_000, 1, &capture, "trap", 2_100)
            .await
            .unwrap();
        let early = spool(&docs, "user:b", 1_000, 3, &capture, "timeout", 1_100)
            .await
            .unwrap();
        assert_eq!(early, "user:b:1000:3");
        let all = spooled(&docs, None, 10).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            [early.as_str(), late.as_str()]
        );
        assert_eq!(all[0].capture, capture);
        assert_eq!(
            (all[0].target.as_str(), all[0].error.as_str(), all[0].at_ms),
            ("user:b", "timeout", 1_100)
        );
        let of_a = spooled(&docs, Some("user:a"), 10).await.unwrap();
        assert_eq!(of_a.len(), 1);
        assert!(unspool(&docs, &late).await.unwrap());
        assert!(!unspool(&docs, &late).await.unwrap());
        assert_eq!(spooled(&docs, None, 10).await.unwrap().len(), 1);
    }

    // ------------------------------------------------------------ reparse round trip

    const USER_TWEETS: &str =
        include_str!("../../../plugins/x-timeline/tests/fixtures/user_tweets.json");
    const USER_TWEETS_RETWEETS: &str =
        include_str!("../../../plugins/x-timeline/tests/fixtures/user_tweets_retweets.json");
    const USER_BY_SCREEN_NAME: &str =
        include_str!("../../../plugins/x-timeline/tests/fixtures/user_by_screen_name.json");

    fn native_parse(url: &str, body: &str) -> sdk::ScrapeResult {
        let capture = sdk::PageCapture {
            url: "https://x.com/coinledger_ana".into(),
            html: String::new(),
            responses: vec![sdk::CapturedResponse {
                url: url.into(),
                status: 200,
                headers: vec![],
                body: body.into(),
            }],
            captured_at_ms: 1,
        };
        x_timeline::parse_capture(&capture).unwrap_or_else(|e| panic!("parse failed: {e}"))
    }

    const RECORDED: &str =
        "https://x.com/i/api/graphql/V7H0Ap3_Hh2FyS75OCDO3Q/UserTweets?variables=%7B%7D";

    #[test]
    fn reparse_body_round_trips_every_fixture_tweet() {
        let original = native_parse(RECORDED, USER_TWEETS);
        assert!(
            original.tweets.len() >= 8,
            "the fixture holds at least 8 readable tweets"
        );
        // Retweets too: their raw JSON carries the original, so a reparse rebuilds their
        // whole text (issue 12, item 14) from what an earlier version stored.
        let retweets = native_parse(RECORDED, USER_TWEETS_RETWEETS);
        assert!(
            retweets
                .tweets
                .iter()
                .any(|t| t.retweeted_tweet_id.is_some())
        );
        // The SDK's generated records have Debug but not PartialEq: compare Debug output,
        // which prints every field.
        for t in original.tweets.iter().chain(&retweets.tweets) {
            let body = reparse_tweets_body([(t.id.as_str(), t.raw_json.as_str())]);
            let again = native_parse(REPARSE_TWEETS_URL, &body);
            assert!(again.skipped.is_empty(), "{}: {:?}", t.id, again.skipped);
            let back = again
                .tweets
                .iter()
                .find(|x| x.id == t.id)
                .unwrap_or_else(|| panic!("tweet {} lost in the round trip", t.id));
            assert_eq!(format!("{back:?}"), format!("{t:?}"), "tweet {}", t.id);
        }
        // All of them in one body: the same set of tweets.
        let all = reparse_tweets_body(
            original
                .tweets
                .iter()
                .map(|t| (t.id.as_str(), t.raw_json.as_str())),
        );
        let again = native_parse(REPARSE_TWEETS_URL, &all);
        let mut ids: Vec<&str> = again.tweets.iter().map(|t| t.id.as_str()).collect();
        let mut want: Vec<&str> = original.tweets.iter().map(|t| t.id.as_str()).collect();
        ids.sort_unstable();
        want.sort_unstable();
        assert_eq!(ids, want);

        // Profiles: the fixture's, and the authors the timeline carried.
        let mut profiles = native_parse(
            "https://x.com/i/api/graphql/xc8f1g7BYqr6VTzTbvNlGw/UserByScreenName?variables=%7B%7D",
            USER_BY_SCREEN_NAME,
        )
        .profiles;
        profiles.extend(original.profiles.iter().cloned());
        assert!(profiles.len() >= 2);
        for p in &profiles {
            let again = native_parse(REPARSE_PROFILE_URL, &reparse_profile_body(&p.raw_json));
            assert!(again.skipped.is_empty(), "{}: {:?}", p.id, again.skipped);
            assert_eq!(again.profiles.len(), 1, "profile {}", p.id);
            assert_eq!(
                format!("{:?}", again.profiles[0]),
                format!("{p:?}"),
                "profile {}",
                p.id
            );
        }
    }

    #[test]
    fn unreadable_raw_json_is_one_skipped_entry_not_a_broken_body() {
        let body = reparse_tweets_body([("1", "{not json"), ("2", "[1]")]);
        let parsed: Value = serde_json::from_str(&body).unwrap();
        let entries =
            &parsed["data"]["user"]["result"]["timeline"]["timeline"]["instructions"][0]["entries"];
        assert_eq!(entries[0]["entryId"], "tweet-1");
        assert_eq!(
            entries[0]["content"]["itemContent"]["tweet_results"]["result"],
            "{not json"
        );
        assert_eq!(
            entries[1]["content"]["itemContent"]["tweet_results"]["result"],
            "[1]"
        );
        let again = native_parse(REPARSE_TWEETS_URL, &body);
        assert!(again.tweets.is_empty());
        let skipped: Vec<&str> = again.skipped.iter().map(|s| s.entry_id.as_str()).collect();
        assert_eq!(skipped, ["tweet-1", "tweet-2"]);
        let p: Value = serde_json::from_str(&reparse_profile_body("nope")).unwrap();
        assert_eq!(p["data"]["user"]["result"], "nope");
    }
}
