//! The accumulator one capture is parsed into, deduplicating tweets and profiles by id.
//!
//! The same tweet shows up more than once in one capture (a pinned tweet also in the
//! timeline, a quoted tweet also on its own, a page captured twice while scrolling), and
//! one author is attached to every tweet of a user timeline. The first copy wins; later
//! ones are dropped before they are normalized, which is also the main saving on a user
//! timeline. `BTreeSet` rather than `HashSet`: no random seed, so the plugin stays
//! deterministic and needs no `wasi:random`.

use std::collections::BTreeSet;

use impressox_plugin_sdk::types::{Cursor, CursorKind, Profile, SkippedEntry, Tweet};

#[derive(Default)]
pub(crate) struct Collector {
    pub(crate) tweets: Vec<Tweet>,
    pub(crate) profiles: Vec<Profile>,
    pub(crate) cursors: Vec<Cursor>,
    pub(crate) skipped: Vec<SkippedEntry>,
    tweet_ids: BTreeSet<String>,
    profile_ids: BTreeSet<String>,
}

impl Collector {
    pub(crate) fn has_tweet(&self, id: &str) -> bool {
        self.tweet_ids.contains(id)
    }

    pub(crate) fn push_tweet(&mut self, tweet: Tweet) {
        if self.tweet_ids.insert(tweet.id.clone()) {
            self.tweets.push(tweet);
        }
    }

    pub(crate) fn has_profile(&self, id: &str) -> bool {
        self.profile_ids.contains(id)
    }

    pub(crate) fn push_profile(&mut self, profile: Profile) {
        if self.profile_ids.insert(profile.id.clone()) {
            self.profiles.push(profile);
        }
    }

    /// Cursors keep their order of appearance (the last bottom cursor is the deepest
    /// page), without repeating a value already seen.
    pub(crate) fn push_cursor(&mut self, kind: CursorKind, value: &str) {
        if !self.cursors.iter().any(|c| c.value == value) {
            self.cursors.push(Cursor {
                kind,
                value: value.to_string(),
            });
        }
    }

    pub(crate) fn skip(&mut self, entry_id: &str, reason: impl Into<String>) {
        self.skipped.push(SkippedEntry {
            entry_id: entry_id.to_string(),
            reason: reason.into(),
        });
    }
}
