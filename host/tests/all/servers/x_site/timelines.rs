//! The pages the stand-in X serves to `UserTweets` and `SearchTimeline`, chosen by cursor.
//!
//! A timeline is a list of fixture pages. The page for a request follows from the cursor in its
//! `variables`: none is the first page; a cursor equal to page *i*'s bottom cursor is page
//! *i + 1*. Pages are read for their cursors once, when set, so no cursor table is kept by hand
//! and a test can hand in any pages. A cursor past the last page (or unknown) gets a page of
//! cursors only whose bottom cursor is the one asked with: how X ends a timeline
//! (`user_tweets_end.json`).
//!
//! The endless timeline (benchmarks, design §5.2) is `user_tweets.json` again and again: page
//! *k* has every tweet id shifted down by *k* × 10⁶ and cursors `bench-top-<k>` /
//! `bench-<k + 1>`, made by rewriting the fixture's text (ids are replaced as whole digit runs,
//! so a user id or a media id that happens to share digits is left alone).

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

/// The fixtures of the x-timeline plugin, read at run time so a regenerated fixture needs no
/// rebuild of the tests.
pub const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../plugins/x-timeline/tests/fixtures"
);

/// The text of one fixture file, e.g. `fixture("user_tweets.json")`.
pub fn fixture(name: &str) -> String {
    let path = format!("{FIXTURES}/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read the fixture {path}: {e}"))
}

/// A fixture file as JSON.
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The profile timeline served for every handle without one of its own: page 1, the two
/// scrolled pages and X's end page.
pub fn default_user_pages() -> Vec<Value> {
    [
        "user_tweets.json",
        "user_tweets_page2.json",
        "user_tweets_page3.json",
        "user_tweets_end.json",
    ]
    .into_iter()
    .map(fixture_json)
    .collect()
}

/// The search timeline served for every query: the first page and one scrolled page.
pub fn default_search_pages() -> Vec<Value> {
    ["search_timeline.json", "search_timeline_page2.json"]
        .into_iter()
        .map(fixture_json)
        .collect()
}

/// One page as served: its text (sent verbatim) and its bottom cursor.
#[derive(Clone, Debug)]
pub struct Page {
    pub body: Arc<String>,
    pub bottom: Option<String>,
}

impl Page {
    pub fn new(json: &Value) -> Page {
        Page {
            body: Arc::new(json.to_string()),
            bottom: bottom_cursor(json),
        }
    }

    /// A fixture's own bytes, unchanged.
    fn from_text(text: String) -> Page {
        let json: Value = serde_json::from_str(&text).expect("a page is JSON");
        Page {
            bottom: bottom_cursor(&json),
            body: Arc::new(text),
        }
    }
}

/// The pages of one timeline.
#[derive(Clone, Debug)]
pub enum Timeline {
    Pages(Vec<Page>),
    /// `user_tweets.json` shifted page after page, never ending.
    Endless,
}

impl Timeline {
    pub fn from_json(pages: &[Value]) -> Timeline {
        Timeline::Pages(pages.iter().map(Page::new).collect())
    }

    /// The default profile timeline with each fixture's bytes as they are on disk.
    pub fn default_user() -> Timeline {
        Timeline::Pages(
            [
                "user_tweets.json",
                "user_tweets_page2.json",
                "user_tweets_page3.json",
                "user_tweets_end.json",
            ]
            .into_iter()
            .map(|name| Page::from_text(fixture(name)))
            .collect(),
        )
    }

    pub fn default_search() -> Timeline {
        Timeline::Pages(
            ["search_timeline.json", "search_timeline_page2.json"]
                .into_iter()
                .map(|name| Page::from_text(fixture(name)))
                .collect(),
        )
    }

    /// The body answering `cursor` (`None`: the first page). `op` shapes the end page.
    pub fn page_for(&self, op: &str, cursor: Option<&str>) -> Arc<String> {
        match self {
            Timeline::Pages(pages) => {
                let index = match cursor {
                    None => Some(0),
                    Some(c) => pages
                        .iter()
                        .position(|p| p.bottom.as_deref() == Some(c))
                        .map(|i| i + 1),
                };
                match index.and_then(|i| pages.get(i)) {
                    Some(page) => page.body.clone(),
                    None => Arc::new(end_page(op, cursor.unwrap_or("")).to_string()),
                }
            }
            Timeline::Endless => {
                let k = match cursor {
                    None => Some(0),
                    Some(c) => c.strip_prefix("bench-").and_then(|k| k.parse::<u64>().ok()),
                };
                match k {
                    Some(k) => Arc::new(endless_page(k)),
                    None => Arc::new(end_page(op, cursor.unwrap_or("")).to_string()),
                }
            }
        }
    }

    /// Put a copy of page 1's first tweet, renamed to `id`, at the top of page 1's entries:
    /// a tweet posted since the last run. An endless timeline is left as it is.
    pub fn prepend_tweet(&mut self, id: &str) {
        let Timeline::Pages(pages) = self else {
            return;
        };
        let first = pages.first_mut().expect("a timeline has a first page");
        let mut json: Value = serde_json::from_str(&first.body).expect("a page is JSON");
        let entries = add_entries_mut(&mut json).expect("page 1 has a TimelineAddEntries");
        let template = entries
            .iter()
            .find(|e| {
                e["content"]["itemContent"]["tweet_results"]["result"]["__typename"] == "Tweet"
                    && !e["entryId"].as_str().unwrap_or("").starts_with("promoted-")
            })
            .expect("page 1 has a plain tweet entry")
            .clone();
        let old_id = template["content"]["itemContent"]["tweet_results"]["result"]["rest_id"]
            .as_str()
            .expect("a tweet has a rest_id")
            .to_owned();
        // Every place the old id appears (entryId, sortIndex, rest_id, id_str, conversation,
        // edit ids, media links) names the new tweet now.
        let renamed = replace_digit_runs(&template.to_string(), |run| {
            (run == old_id).then(|| id.to_owned())
        });
        entries.insert(
            0,
            serde_json::from_str(&renamed).expect("renamed entry is JSON"),
        );
        *first = Page::new(&json);
    }
}

/// The `entries` of the first `TimelineAddEntries` instruction, wherever the timeline sits.
fn add_entries_mut(json: &mut Value) -> Option<&mut Vec<Value>> {
    fn instructions(json: &mut Value) -> Option<&mut Vec<Value>> {
        match json {
            Value::Object(map) => {
                if map.contains_key("instructions") {
                    return map.get_mut("instructions")?.as_array_mut();
                }
                map.values_mut().find_map(instructions)
            }
            _ => None,
        }
    }
    instructions(json)?
        .iter_mut()
        .find(|i| i["type"] == "TimelineAddEntries")?
        .get_mut("entries")?
        .as_array_mut()
}

/// The last bottom cursor anywhere in a page (in `TimelineAddEntries` or a
/// `TimelineReplaceEntry`, as search's second page sends it).
pub fn bottom_cursor(json: &Value) -> Option<String> {
    fn walk(v: &Value, found: &mut Option<String>) {
        match v {
            Value::Object(map) => {
                let is_bottom = map
                    .get("entryId")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.starts_with("cursor-bottom"));
                if is_bottom && let Some(value) = map["content"]["value"].as_str() {
                    *found = Some(value.to_owned());
                }
                map.values().for_each(|v| walk(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut found = None;
    walk(json, &mut found);
    found
}

fn cursor(kind: &str, value: &str, sort: &str) -> Value {
    json!({"entryId": format!("cursor-{}-{sort}", kind.to_lowercase()), "sortIndex": sort,
           "content": {"entryType": "TimelineTimelineCursor", "__typename": "TimelineTimelineCursor",
                       "value": value, "cursorType": kind}})
}

/// X's end of a timeline for `op`: top and bottom cursors only, the bottom one repeating the
/// cursor asked with.
pub fn end_page(op: &str, asked: &str) -> Value {
    let instructions = json!([{"type": "TimelineAddEntries", "entries": [
        cursor("Top", &format!("{asked}-top"), "1"),
        cursor("Bottom", asked, "0"),
    ]}]);
    if op == "SearchTimeline" {
        json!({"data": {"search_by_raw_query": {"search_timeline": {"timeline": {
            "instructions": instructions}}}}})
    } else {
        json!({"data": {"user": {"result": {"__typename": "User", "timeline": {"timeline": {
            "instructions": instructions}}}}}})
    }
}

/// Page `k` of the endless timeline.
fn endless_page(k: u64) -> String {
    struct Base {
        text: String,
        ids: HashSet<String>,
        top: String,
        bottom: String,
    }
    static BASE: OnceLock<Base> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        let text = fixture("user_tweets.json");
        let json: Value = serde_json::from_str(&text).expect("user_tweets.json is JSON");
        let mut ids = HashSet::new();
        tweet_ids(&json, &mut ids);
        let top = top_cursor(&json).expect("user_tweets.json has a top cursor");
        let bottom = bottom_cursor(&json).expect("user_tweets.json has a bottom cursor");
        Base {
            text,
            ids,
            top,
            bottom,
        }
    });
    let shift = k * 1_000_000;
    let shifted = replace_digit_runs(&base.text, |run| {
        base.ids.contains(run).then(|| {
            let id: u64 = run.parse().expect("tweet ids are numbers");
            (id - shift).to_string()
        })
    });
    shifted
        .replace(&base.top, &format!("bench-top-{k}"))
        .replace(&base.bottom, &format!("bench-{}", k + 1))
}

fn top_cursor(json: &Value) -> Option<String> {
    match json {
        Value::Object(map) => {
            let is_top = map
                .get("entryId")
                .and_then(Value::as_str)
                .is_some_and(|id| id.starts_with("cursor-top"));
            if is_top {
                return map["content"]["value"].as_str().map(str::to_owned);
            }
            map.values().find_map(top_cursor)
        }
        Value::Array(items) => items.iter().find_map(top_cursor),
        _ => None,
    }
}

/// Every tweet id of a page: the `rest_id` of each tweet object (one with `legacy.full_text`;
/// users have no `full_text`) and the id in each `tweet-<id>` entry (tombstones have no
/// `rest_id`).
fn tweet_ids(v: &Value, ids: &mut HashSet<String>) {
    match v {
        Value::Object(map) => {
            if let (Some(id), true) = (
                map.get("rest_id").and_then(Value::as_str),
                map.get("legacy")
                    .is_some_and(|l| l.get("full_text").is_some()),
            ) {
                ids.insert(id.to_owned());
            }
            if let Some(id) = map
                .get("entryId")
                .and_then(Value::as_str)
                .and_then(|e| e.strip_prefix("tweet-"))
            {
                ids.insert(id.to_owned());
            }
            map.values().for_each(|v| tweet_ids(v, ids));
        }
        Value::Array(items) => items.iter().for_each(|v| tweet_ids(v, ids)),
        _ => {}
    }
}

/// `text` with each maximal run of ASCII digits replaced where `replace` says so.
fn replace_digit_runs(text: &str, replace: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        out.push_str(&rest[..start]);
        let run_len = rest[start..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - start);
        let run = &rest[start..start + run_len];
        match replace(run) {
            Some(new) => out.push_str(&new),
            None => out.push_str(run),
        }
        rest = &rest[start + run_len..];
    }
    out.push_str(rest);
    out
}
