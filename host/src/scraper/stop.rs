//! When a run stops scrolling (design §4.4). Pure: one call per parsed step.
//!
//! Only the target's own timeline entries decide: for a user, tweets whose author is the
//! target; for a search, every tweet. Left out:
//! - the profile's pinned tweets (old, but on top of page 1: they would stop a tail run
//!   before it read anything new);
//! - tweets another tweet of the same page quotes, retweets or replies to (X embeds them,
//!   and conversation modules show a thread's older tweets: they are context, not the
//!   timeline's position). Ignoring one costs at most an extra page; counting one could
//!   end a tail run early and miss tweets.
//!
//! **tail**: stop when the page's own entries reach the newest stored id, or at the end
//! of the timeline (below), or at `max_pages`. A first run (nothing stored) reads
//! `max_pages` pages.
//!
//! **backfill**: stop at the end of the timeline or after `max_pages` pages that went
//! deeper than earlier runs. Every run starts at the top (X's app always does), so pages
//! whose own tweets are all at or above the stored `oldest_id` are known ground: they are
//! scrolled through without counting, up to the depth earlier runs reached.
//!
//! End of the timeline, both modes: no bottom cursor, the same bottom cursor as the step
//! before, a page with nothing but cursors (X's last page), or the browser finding no more
//! to scroll.

use std::collections::HashSet;

use super::config::RunMode;
use crate::bindings::types::{CursorKind, ScrapeResult, Tweet};

/// What a run knows before its first step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRules {
    /// Tail or backfill.
    pub mode: RunMode,
    /// Page limit of this run (the target's `max_pages`, or the mode's default).
    pub max_pages: u32,
    /// A user target's handle; `None` for a search (then every tweet is its own).
    pub handle: Option<String>,
    /// A user target's id, when an earlier run learned it.
    pub user_id: Option<String>,
    /// Newest tweet id stored for the target (`newest_id`); `None` before the first run.
    pub newest_id: Option<i64>,
    /// Backfill progress of earlier runs: the oldest own id reached.
    pub backfill_oldest_id: Option<i64>,
    /// Backfill progress of earlier runs: how many pages deep they went.
    pub backfill_pages: u32,
}

/// What a run has seen so far; updated by [`decide`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunProgress {
    /// Pages (steps) parsed in this run.
    pub pages: u32,
    /// Backfill: pages that went below the stored `oldest_id` (or all, on a first run).
    pub new_pages: u32,
    /// The deepest bottom cursor seen.
    pub bottom_cursor: Option<String>,
    /// The target's user id (from the rules, or the first page's profile).
    pub user_id: Option<String>,
    /// The target's pinned tweet ids (from its profile).
    pub pinned: HashSet<String>,
    /// Newest own tweet id seen (the target's next `newest_id`).
    pub newest_own_id: Option<i64>,
    /// Oldest own tweet id seen (backfill progress).
    pub oldest_own_id: Option<i64>,
}

impl RunProgress {
    /// A run's starting point.
    pub fn new(rules: &StopRules) -> RunProgress {
        RunProgress {
            user_id: rules.user_id.clone(),
            ..RunProgress::default()
        }
    }
}

/// Scroll on, or stop and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Scroll for another page.
    More,
    /// The run ends.
    Stop(StopReason),
}

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Tail: the page reached tweets already stored.
    ReachedStored,
    /// The run's page limit.
    MaxPages,
    /// The page had no bottom cursor.
    NoBottomCursor,
    /// The page's bottom cursor equals the previous page's.
    RepeatedCursor,
    /// The page held nothing but cursors.
    OnlyCursors,
    /// Scrolling brought no new request.
    EndOfTimeline,
}

impl StopReason {
    /// Whether the timeline has no more pages (a backfill is then `done`).
    pub fn timeline_ended(self) -> bool {
        !matches!(self, StopReason::ReachedStored | StopReason::MaxPages)
    }

    /// A short name for logs and the run's outcome.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::ReachedStored => "reached_stored",
            StopReason::MaxPages => "max_pages",
            StopReason::NoBottomCursor => "no_bottom_cursor",
            StopReason::RepeatedCursor => "repeated_cursor",
            StopReason::OnlyCursors => "only_cursors",
            StopReason::EndOfTimeline => "end_of_timeline",
        }
    }
}

/// Take in one parsed step and decide. `end_of_timeline` is the browser's verdict that
/// scrolling started no request (the capture is then empty).
pub fn decide(
    rules: &StopRules,
    progress: &mut RunProgress,
    result: &ScrapeResult,
    end_of_timeline: bool,
) -> Decision {
    progress.pages = progress.pages.saturating_add(1);
    learn_profile(rules, progress, result);

    let own = own_entry_ids(rules, progress, result);
    if let Some(&max) = own.iter().max() {
        progress.newest_own_id = Some(progress.newest_own_id.map_or(max, |n| n.max(max)));
    }
    let page_oldest = own.iter().min().copied();
    if let Some(min) = page_oldest {
        progress.oldest_own_id = Some(progress.oldest_own_id.map_or(min, |o| o.min(min)));
    }
    let deeper = match (rules.backfill_oldest_id, page_oldest) {
        (None, _) => true,
        (Some(stored), Some(min)) => min < stored,
        (Some(_), None) => false,
    };
    if deeper {
        progress.new_pages = progress.new_pages.saturating_add(1);
    }

    let bottom = result
        .cursors
        .iter()
        .rev()
        .find(|c| matches!(c.kind, CursorKind::Bottom))
        .map(|c| c.value.clone());
    let previous = std::mem::replace(&mut progress.bottom_cursor, bottom.clone());

    if end_of_timeline {
        return Decision::Stop(StopReason::EndOfTimeline);
    }
    if rules.mode == RunMode::Tail
        && let (Some(stored), Some(min)) = (rules.newest_id, page_oldest)
        && min <= stored
    {
        return Decision::Stop(StopReason::ReachedStored);
    }
    if result.tweets.is_empty() && result.skipped.is_empty() {
        return Decision::Stop(StopReason::OnlyCursors);
    }
    match &bottom {
        None => return Decision::Stop(StopReason::NoBottomCursor),
        Some(b) if previous.as_ref() == Some(b) => {
            return Decision::Stop(StopReason::RepeatedCursor);
        }
        Some(_) => {}
    }
    let at_limit = match rules.mode {
        RunMode::Tail => progress.pages >= rules.max_pages,
        RunMode::Backfill => {
            progress.new_pages >= rules.max_pages
                || progress.pages >= rules.max_pages.saturating_add(rules.backfill_pages)
        }
    };
    if at_limit {
        return Decision::Stop(StopReason::MaxPages);
    }
    Decision::More
}

/// The target's id and pinned tweets from its profile, when this page carries it
/// (the navigation step's `UserByScreenName`).
fn learn_profile(rules: &StopRules, progress: &mut RunProgress, result: &ScrapeResult) {
    let Some(handle) = &rules.handle else {
        return;
    };
    let profile = result.profiles.iter().find(|p| match &progress.user_id {
        Some(id) => &p.id == id,
        None => p.username.eq_ignore_ascii_case(handle),
    });
    if let Some(p) = profile {
        progress.user_id = Some(p.id.clone());
        progress.pinned = p.pinned_tweet_ids.iter().cloned().collect();
    }
}

/// Ids of the page's own timeline entries (see the module docs).
fn own_entry_ids(rules: &StopRules, progress: &RunProgress, result: &ScrapeResult) -> Vec<i64> {
    let referenced: HashSet<&str> = result
        .tweets
        .iter()
        .flat_map(|t| {
            [
                t.quoted_tweet_id.as_deref(),
                t.retweeted_tweet_id.as_deref(),
                t.in_reply_to_tweet_id.as_deref(),
            ]
        })
        .flatten()
        .collect();
    result
        .tweets
        .iter()
        .filter(|t| is_own(rules, progress, t))
        .filter(|t| !progress.pinned.contains(&t.id))
        .filter(|t| !referenced.contains(t.id.as_str()))
        .filter_map(|t| t.id.parse::<i64>().ok())
        .collect()
}

fn is_own(rules: &StopRules, progress: &RunProgress, tweet: &Tweet) -> bool {
    match (&rules.handle, &progress.user_id) {
        (None, _) => true,
        (Some(_), Some(id)) => &tweet.user_id == id,
        (Some(handle), None) => tweet.username.eq_ignore_ascii_case(handle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{AccountSignal, Cursor, Profile, SkippedEntry};

    const ANA: &str = "1453287640927653889";
    const BOB: &str = "42";

    fn tweet(id: i64, user_id: &str) -> Tweet {
        Tweet {
            id: id.to_string(),
            url: format!("https://x.com/u/status/{id}"),
            date: "2025-11-20T10:00:00Z".into(),
            user_id: user_id.into(),
            username: if user_id == ANA {
                "coinledger_ana"
            } else {
                "bob"
            }
            .into(),
            lang: "en".into(),
            raw_content: String::new(),
            reply_count: 0,
            retweet_count: 0,
            like_count: 0,
            quote_count: 0,
            bookmarked_count: 0,
            view_count: None,
            conversation_id: id.to_string(),
            hashtags: vec![],
            cashtags: vec![],
            mentioned_users: vec![],
            links: vec![],
            media: vec![],
            retweeted_tweet_id: None,
            quoted_tweet_id: None,
            in_reply_to_tweet_id: None,
            raw_json: "{}".into(),
        }
    }

    fn profile(pinned: &[i64]) -> Profile {
        Profile {
            id: ANA.into(),
            username: "CoinLedger_Ana".into(),
            display_name: "Ana".into(),
            created: "2021-11-09T10:00:00Z".into(),
            description: String::new(),
            location: String::new(),
            followers_count: 0,
            following_count: 0,
            statuses_count: 0,
            favourites_count: 0,
            media_count: 0,
            profile_image_url: String::new(),
            profile_banner_url: None,
            website: None,
            verified: false,
            blue: false,
            protected: false,
            pinned_tweet_ids: pinned.iter().map(|i| i.to_string()).collect(),
            raw_json: "{}".into(),
        }
    }

    fn page(tweets: Vec<Tweet>, bottom: Option<&str>) -> ScrapeResult {
        let mut cursors = vec![Cursor {
            kind: CursorKind::Top,
            value: "top".into(),
        }];
        cursors.extend(bottom.map(|b| Cursor {
            kind: CursorKind::Bottom,
            value: b.into(),
        }));
        ScrapeResult {
            tweets,
            profiles: vec![],
            cursors,
            rate_limits: vec![],
            account_signal: AccountSignal::Ok,
            skipped: vec![],
        }
    }

    fn rules(mode: RunMode, max_pages: u32, newest_id: Option<i64>) -> StopRules {
        StopRules {
            mode,
            max_pages,
            handle: Some("coinledger_ana".into()),
            user_id: None,
            newest_id,
            backfill_oldest_id: None,
            backfill_pages: 0,
        }
    }

    fn run(rules: &StopRules, pages: &[ScrapeResult]) -> (Vec<Decision>, RunProgress) {
        let mut progress = RunProgress::new(rules);
        let decisions = pages
            .iter()
            .map(|p| decide(rules, &mut progress, p, false))
            .collect();
        (decisions, progress)
    }

    #[test]
    fn tail_stops_at_newest_stored_id() {
        let r = rules(RunMode::Tail, 10, Some(900));
        let mut first = page(vec![tweet(1000, ANA), tweet(990, ANA)], Some("c1"));
        first.profiles.push(profile(&[]));
        let second = page(vec![tweet(950, ANA), tweet(900, ANA)], Some("c2"));
        let (d, p) = run(&r, &[first, second]);
        assert_eq!(
            d,
            [Decision::More, Decision::Stop(StopReason::ReachedStored)]
        );
        assert!(!StopReason::ReachedStored.timeline_ended());
        assert_eq!((p.newest_own_id, p.oldest_own_id), (Some(1000), Some(900)));
        assert_eq!(p.user_id.as_deref(), Some(ANA));
        assert_eq!(p.bottom_cursor.as_deref(), Some("c2"));
    }

    #[test]
    fn first_tail_run_reads_max_pages() {
        let r = rules(RunMode::Tail, 2, None);
        let (d, _) = run(
            &r,
            &[
                page(vec![tweet(10, ANA)], Some("c1")),
                page(vec![tweet(5, ANA)], Some("c2")),
            ],
        );
        assert_eq!(d, [Decision::More, Decision::Stop(StopReason::MaxPages)]);
    }

    #[test]
    fn pinned_tweet_does_not_stop_a_tail_run() {
        let r = rules(RunMode::Tail, 10, Some(900));
        // The pinned tweet (100) is old and sits on top of page 1.
        let mut first = page(vec![tweet(100, ANA), tweet(1000, ANA)], Some("c1"));
        first.profiles.push(profile(&[100]));
        let second = page(vec![tweet(899, ANA)], Some("c2"));
        let (d, p) = run(&r, &[first, second]);
        assert_eq!(
            d,
            [Decision::More, Decision::Stop(StopReason::ReachedStored)]
        );
        // The pin is remembered for later pages and never counts as the oldest.
        assert!(p.pinned.contains("100"));
        assert_eq!(p.oldest_own_id, Some(899));
    }

    #[test]
    fn others_tweets_in_conversations_do_not_stop_a_tail_run() {
        let mut r = rules(RunMode::Tail, 10, Some(900));
        r.user_id = Some(ANA.into());
        // Ana replies (new) in a conversation whose root by Bob is old; Ana also quotes her
        // own old tweet, which X embeds.
        let mut reply = tweet(1000, ANA);
        reply.in_reply_to_tweet_id = Some("50".into());
        let mut quote = tweet(1001, ANA);
        quote.quoted_tweet_id = Some("60".into());
        let first = page(
            vec![tweet(50, BOB), reply, quote, tweet(60, ANA), tweet(40, BOB)],
            Some("c1"),
        );
        let (d, p) = run(&r, &[first]);
        assert_eq!(d, [Decision::More]);
        assert_eq!((p.newest_own_id, p.oldest_own_id), (Some(1001), Some(1000)));
    }

    #[test]
    fn search_targets_count_every_author() {
        let mut r = rules(RunMode::Tail, 10, Some(900));
        r.handle = None;
        let (d, _) = run(
            &r,
            &[page(vec![tweet(1000, BOB), tweet(800, ANA)], Some("c1"))],
        );
        assert_eq!(d, [Decision::Stop(StopReason::ReachedStored)]);
    }

    #[test]
    fn tail_stops_when_the_cursor_does_not_move() {
        let r = rules(RunMode::Tail, 10, None);
        let (d, _) = run(
            &r,
            &[
                page(vec![tweet(10, ANA)], Some("c1")),
                page(vec![tweet(9, ANA)], Some("c1")),
            ],
        );
        assert_eq!(
            d,
            [Decision::More, Decision::Stop(StopReason::RepeatedCursor)]
        );
        let (d, _) = run(&r, &[page(vec![tweet(10, ANA)], None)]);
        assert_eq!(d, [Decision::Stop(StopReason::NoBottomCursor)]);
    }

    #[test]
    fn backfill_stops_at_repeated_cursor() {
        let r = rules(RunMode::Backfill, 50, Some(1000));
        let (d, p) = run(
            &r,
            &[
                // Tail's stored id does not stop a backfill.
                page(vec![tweet(1000, ANA), tweet(990, ANA)], Some("c1")),
                page(vec![tweet(980, ANA)], Some("c2")),
                page(vec![tweet(970, ANA)], Some("c2")),
            ],
        );
        assert_eq!(
            d,
            [
                Decision::More,
                Decision::More,
                Decision::Stop(StopReason::RepeatedCursor)
            ]
        );
        assert!(StopReason::RepeatedCursor.timeline_ended());
        assert_eq!(p.oldest_own_id, Some(970));
    }

    #[test]
    fn backfill_stops_at_max_pages() {
        let r = rules(RunMode::Backfill, 2, None);
        let (d, p) = run(
            &r,
            &[
                page(vec![tweet(10, ANA)], Some("c1")),
                page(vec![tweet(9, ANA)], Some("c2")),
            ],
        );
        assert_eq!(d, [Decision::More, Decision::Stop(StopReason::MaxPages)]);
        assert!(!StopReason::MaxPages.timeline_ended());
        assert_eq!(p.bottom_cursor.as_deref(), Some("c2"));
    }

    #[test]
    fn backfill_scrolls_over_known_pages_without_counting_them() {
        let mut r = rules(RunMode::Backfill, 1, None);
        r.backfill_oldest_id = Some(90);
        r.backfill_pages = 2;
        let pages = [
            page(vec![tweet(100, ANA)], Some("c1")),
            page(vec![tweet(90, ANA)], Some("c2")),
            page(vec![tweet(80, ANA)], Some("c3")),
        ];
        let (d, p) = run(&r, &pages);
        assert_eq!(
            d,
            [
                Decision::More,
                Decision::More,
                Decision::Stop(StopReason::MaxPages)
            ]
        );
        assert_eq!(p.new_pages, 1);
        // Never past the earlier depth plus max_pages, even if nothing new shows up.
        let known = page(vec![tweet(95, ANA)], Some("k"));
        let mut progress = RunProgress::new(&r);
        let mut last = Decision::More;
        for i in 0..5 {
            let mut pg = known.clone();
            pg.cursors[1].value = format!("k{i}");
            last = decide(&r, &mut progress, &pg, false);
            if last != Decision::More {
                break;
            }
        }
        assert_eq!(
            (last, progress.pages),
            (Decision::Stop(StopReason::MaxPages), 3)
        );
    }

    #[test]
    fn page_with_only_cursors_is_the_end() {
        let r = rules(RunMode::Backfill, 50, None);
        let (d, _) = run(
            &r,
            &[
                page(vec![tweet(10, ANA)], Some("c1")),
                page(vec![], Some("c2")),
            ],
        );
        assert_eq!(d, [Decision::More, Decision::Stop(StopReason::OnlyCursors)]);
        assert!(StopReason::OnlyCursors.timeline_ended());
        // A page of unreadable entries is not the end.
        let mut unreadable = page(vec![], Some("c2"));
        unreadable.skipped.push(SkippedEntry {
            entry_id: "tweet-1".into(),
            reason: "TweetTombstone".into(),
        });
        let (d, _) = run(&r, &[unreadable]);
        assert_eq!(d, [Decision::More]);
    }

    #[test]
    fn end_of_timeline_from_the_browser_stops_both_modes() {
        for mode in [RunMode::Tail, RunMode::Backfill] {
            let r = rules(mode, 50, None);
            let mut progress = RunProgress::new(&r);
            let d = decide(&r, &mut progress, &page(vec![], None), true);
            assert_eq!(d, Decision::Stop(StopReason::EndOfTimeline));
        }
    }
}
