//! Timeline instructions → entries → tweets, users and cursors.
//!
//! Shapes handled (REFERENCE.md, plus what TweetDetail and scrolling add):
//! - instructions `TimelineAddEntries` (`entries[]`), `TimelinePinEntry` and
//!   `TimelineReplaceEntry` (`entry`), `TimelineAddToModule` (`moduleItems[]`); all other
//!   instruction types (`TimelineClearCache`, `TimelineTerminateTimeline`, ...) carry no data;
//! - entries: a single item (`content.itemContent`), a module (`content.items[].item.itemContent`,
//!   e.g. conversation threads), or a cursor (`entryId` `cursor-...`, or `TimelineTimelineCursor`
//!   as the entry or as an item, as in TweetDetail);
//! - items: `TimelineTweet` (`tweet_results.result`), `TimelineUser` (`user_results.result`),
//!   `TimelineTimelineCursor`; anything else (prompts, labels, topics) is ignored.
//!
//! Promoted content (entryId `promoted-...` or an item with `promotedMetadata`) is dropped
//! silently: it is not a failure, and ads are not wanted in the data.

use impressox_plugin_sdk::types::CursorKind;
use serde_json::Value;

use crate::collect::Collector;
use crate::json;
use crate::tweet;
use crate::user;

/// Where each operation keeps its instructions; the first present wins. User timelines
/// moved from `timeline_v2` to `timeline`; both are still seen.
const INSTRUCTION_PATHS: &[&[&str]] = &[
    &[
        "data",
        "user",
        "result",
        "timeline",
        "timeline",
        "instructions",
    ],
    &[
        "data",
        "user",
        "result",
        "timeline_v2",
        "timeline",
        "instructions",
    ],
    &[
        "data",
        "search_by_raw_query",
        "search_timeline",
        "timeline",
        "instructions",
    ],
    &[
        "data",
        "threaded_conversation_with_injections_v2",
        "instructions",
    ],
    &[
        "data",
        "threaded_conversation_with_injections",
        "instructions",
    ],
];

/// The instruction list of a timeline response, `None` when it has none.
pub(crate) fn instructions(body: &Value) -> Option<Result<&[Value], String>> {
    INSTRUCTION_PATHS
        .iter()
        .find(|p| json::at(body, p).is_some())
        .map(|p| json::array_at(body, p))
}

/// Collect every entry of `instructions` into `out`.
pub(crate) fn collect_instructions(instructions: &[Value], out: &mut Collector) {
    for (i, instruction) in instructions.iter().enumerate() {
        let kind = json::first_str(instruction, &[&["type"], &["__typename"]])
            .ok()
            .flatten()
            .unwrap_or("");
        match kind {
            "TimelineAddEntries" => match json::array_at(instruction, &["entries"]) {
                Ok(entries) => entries.iter().for_each(|e| collect_entry(e, out)),
                Err(e) => out.skip(&format!("instructions[{i}]"), e),
            },
            "TimelinePinEntry" | "TimelineReplaceEntry" => {
                match json::at(instruction, &["entry"]) {
                    Some(entry) => collect_entry(entry, out),
                    None => out.skip(
                        &format!("instructions[{i}]"),
                        format!("{kind} without entry"),
                    ),
                }
            }
            "TimelineAddToModule" => match json::array_at(instruction, &["moduleItems"]) {
                Ok(items) => {
                    let module = json::str_at(instruction, &["moduleEntryId"])
                        .ok()
                        .flatten()
                        .unwrap_or("");
                    items
                        .iter()
                        .for_each(|item| collect_module_item(item, module, out));
                }
                Err(e) => out.skip(&format!("instructions[{i}]"), e),
            },
            _ => {}
        }
    }
}

fn collect_entry(entry: &Value, out: &mut Collector) {
    let entry_id = match json::str_at(entry, &["entryId"]) {
        Ok(Some(id)) => id,
        Ok(None) => return out.skip("", "entry has no entryId"),
        Err(e) => return out.skip("", e),
    };
    if entry_id.starts_with("promoted-") {
        return;
    }
    let Some(content) = json::at(entry, &["content"]) else {
        return out.skip(entry_id, "entry has no content");
    };
    let entry_type = json::first_str(content, &[&["entryType"], &["__typename"]])
        .ok()
        .flatten()
        .unwrap_or("");

    if entry_id.starts_with("cursor-") || entry_type == "TimelineTimelineCursor" {
        // A TweetDetail cursor is an item entry whose itemContent is the cursor.
        let cursor = json::at(content, &["itemContent"]).unwrap_or(content);
        return collect_cursor(cursor, entry_id, out);
    }
    if let Some(item) = json::at(content, &["itemContent"]) {
        return collect_item(item, entry_id, out);
    }
    match json::array_at(content, &["items"]) {
        Ok(items) => items
            .iter()
            .for_each(|item| collect_module_item(item, entry_id, out)),
        Err(e) => out.skip(entry_id, format!("content.{e}")),
    }
}

/// One item of a module (`{entryId, item: {itemContent}}`); `module_id` names it when the
/// item has no id of its own.
fn collect_module_item(item: &Value, module_id: &str, out: &mut Collector) {
    let item_id = json::str_at(item, &["entryId"])
        .ok()
        .flatten()
        .unwrap_or(module_id);
    if item_id.starts_with("promoted-") {
        return;
    }
    match json::at(item, &["item", "itemContent"]) {
        Some(content) => collect_item(content, item_id, out),
        None => out.skip(item_id, "module item has no item.itemContent"),
    }
}

fn collect_item(item: &Value, entry_id: &str, out: &mut Collector) {
    if json::at(item, &["promotedMetadata"]).is_some() {
        return;
    }
    let item_type = json::first_str(item, &[&["itemType"], &["__typename"]])
        .ok()
        .flatten()
        .unwrap_or("");
    if item_type == "TimelineTimelineCursor" {
        return collect_cursor(item, entry_id, out);
    }
    if item_type == "TimelineTweet" || json::at(item, &["tweet_results"]).is_some() {
        return match json::at(item, &["tweet_results", "result"]) {
            Some(result) => tweet::collect(result, entry_id, out),
            // X sends an empty `tweet_results` for a post it will not show at all.
            None => out.skip(entry_id, "tweet_results has no result"),
        };
    }
    if item_type == "TimelineUser" || json::at(item, &["user_results"]).is_some() {
        match json::at(item, &["user_results", "result"]) {
            Some(result) => {
                if let Err(e) = user::collect(result, out) {
                    out.skip(entry_id, e);
                }
            }
            None => out.skip(entry_id, "user_results has no result"),
        }
    }
}

fn collect_cursor(cursor: &Value, entry_id: &str, out: &mut Collector) {
    let value = match json::str_at(cursor, &["value"]) {
        Ok(Some(v)) => v,
        Ok(None) => return out.skip(entry_id, "cursor has no value"),
        Err(e) => return out.skip(entry_id, e),
    };
    let kind = match json::str_at(cursor, &["cursorType"]).ok().flatten() {
        Some("Top") => CursorKind::Top,
        Some("Bottom") => CursorKind::Bottom,
        // ShowMore, ShowMoreThreads, Gap, ...: still a page the host may want to follow.
        _ => CursorKind::Other,
    };
    out.push_cursor(kind, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tweet_item(id: &str) -> Value {
        json!({"itemType": "TimelineTweet", "tweet_results": {"result": {
            "__typename": "Tweet", "rest_id": id,
            "core": {"user_results": {"result": {"rest_id": "1", "core": {"screen_name": "a"}}}},
            "legacy": {"created_at": "Wed Oct 10 20:19:24 +0000 2018", "full_text": "t"}
        }}})
    }

    #[test]
    fn promoted_metadata_in_a_module_is_dropped() {
        let mut promoted = tweet_item("2");
        if let Some(obj) = promoted.as_object_mut() {
            obj.insert("promotedMetadata".into(), json!({"impressionId": "x"}));
        }
        let instructions = json!([{"type": "TimelineAddEntries", "entries": [
            {"entryId": "profile-grid-0", "content": {"entryType": "TimelineTimelineModule", "items": [
                {"entryId": "profile-grid-0-tweet-1", "item": {"itemContent": tweet_item("1")}},
                {"entryId": "profile-grid-0-tweet-2", "item": {"itemContent": promoted}},
                {"entryId": "promoted-tweet-3-abc", "item": {"itemContent": tweet_item("3")}}
            ]}}
        ]}]);
        let mut out = Collector::default();
        collect_instructions(
            instructions.as_array().map_or(&[][..], Vec::as_slice),
            &mut out,
        );
        let ids: Vec<&str> = out.tweets.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["1"]);
        assert!(out.skipped.is_empty());
    }

    #[test]
    fn add_to_module_and_odd_entries() {
        let instructions = json!([
            {"type": "TimelineAddToModule", "moduleEntryId": "conversationthread-9", "moduleItems": [
                {"entryId": "conversationthread-9-tweet-4", "item": {"itemContent": tweet_item("4")}},
                {"entryId": "conversationthread-9-cursor-showmore-1", "item": {"itemContent": {"itemType": "TimelineTimelineCursor", "value": "c1", "cursorType": "ShowMore"}}}
            ]},
            {"type": "TimelineAddEntries", "entries": [
                {"content": {}},
                {"entryId": "tweet-5"},
                {"entryId": "tweet-6", "content": {"itemContent": {"itemType": "TimelineTweet", "tweet_results": {}}}},
                {"entryId": "cursor-bottom-1", "content": {"cursorType": "Bottom"}},
                {"entryId": "messageprompt-1", "content": {"entryType": "TimelineTimelineItem", "itemContent": {"itemType": "TimelineMessagePrompt"}}}
            ]},
            {"type": "TimelineAddEntries", "entries": "nope"},
            {"type": "TimelinePinEntry"}
        ]);
        let mut out = Collector::default();
        collect_instructions(
            instructions.as_array().map_or(&[][..], Vec::as_slice),
            &mut out,
        );
        assert_eq!(out.tweets.len(), 1);
        assert_eq!(out.cursors.len(), 1);
        assert!(matches!(
            out.cursors.first().map(|c| c.kind),
            Some(CursorKind::Other)
        ));
        let skipped: Vec<(&str, &str)> = out
            .skipped
            .iter()
            .map(|s| (s.entry_id.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [
                ("", "entry has no entryId"),
                ("tweet-5", "entry has no content"),
                ("tweet-6", "tweet_results has no result"),
                ("cursor-bottom-1", "cursor has no value"),
                ("instructions[2]", "entries is a string, expected an array"),
                ("instructions[3]", "TimelinePinEntry without entry"),
            ]
        );
    }
}
