//! `impressox scraper reparse` (docs/design/x-scraper.md §4.7): the current scrape-parser
//! over what is stored, so a parser fix reaches tweets scraped before it, and captures a
//! failed parser left in the spool are not lost.
//!
//! Three passes; running the command again simply repeats them:
//! 1. `tweets` in `_id` order, [`BATCH`] per plugin call: the stored `raw_json`s wrapped into
//!    one synthetic `UserTweets` body ([`store::reparse_tweets_body`]). The records the
//!    parser returns replace the normalized fields by compare-and-set; `first_seen_ms`,
//!    `last_seen_ms` and `seen_by` stay ([`Sighting::Reparse`]).
//! 2. `profiles`, one `UserByScreenName` body each (X sends one user per such response).
//! 3. the spool, oldest first: written as the run would have written it (`Sighting::Run` at
//!    the capture's time) and removed once written.
//!
//! The tweets pass writes tweets only: the profiles a timeline body yields are the authors
//! embedded in each tweet, and pass 2 rewrites every stored profile from its own raw JSON;
//! writing both would write (and count) each author twice.
//!
//! A batch the plugin refuses or fails on is parsed again one tweet per call, so an
//! unreadable tweet costs only itself (counted as skipped, logged with its id). A parser
//! that is not loaded, is of another kind or is quarantined stops the command: every later
//! call would fail the same way. What was written before stays written. `dry_run` parses
//! everything and writes nothing (spooled captures stay spooled).

use std::collections::HashSet;
use std::fmt;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;

use super::store::{self, PROFILES, Sighting, TWEETS, WriteCounts, WriteMeta};
use crate::bindings::types::{PageCapture, Profile, ScrapeResult, Tweet};
use crate::documents::{Doc, Documents, Filter, Order, Query};
use crate::runtime::{CallError, Kind, Runtime};
use crate::util::now_ms;

/// Stored tweets per plugin call: a body of about 200 × 10 KB stays far below the
/// default output cap and deadline while keeping the call count low.
pub const BATCH: usize = 200;
/// Spooled captures read per query; a capture may hold several large bodies.
const SPOOL_PAGE: usize = 16;

/// What `scraper reparse` is asked to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReparseOptions {
    /// Read at most this many stored tweets, this many profiles and this many spooled
    /// captures; `None`: all of them.
    pub limit: Option<usize>,
    /// Parse and count what would change; write nothing.
    pub dry_run: bool,
}

/// What a reparse did (or, with `dry_run`, would have done).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReparseSummary {
    /// Stored tweets read.
    pub tweets: u64,
    /// Tweet documents rewritten (or inserted: a retweeted or quoted tweet known only
    /// inside another one).
    pub tweets_changed: u64,
    /// Stored profiles read.
    pub profiles: u64,
    /// Profile documents rewritten or inserted.
    pub profiles_changed: u64,
    /// Entries the parser could not read, stored documents without `raw_json` and
    /// documents whose call failed even alone.
    pub skipped: u64,
    /// Spooled captures parsed and written (and removed from the spool).
    pub spool_parsed: u64,
    /// Spooled captures the parser still cannot read; they stay spooled.
    pub spool_failed: u64,
    pub dry_run: bool,
}

impl fmt::Display for ReparseSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reparsed {} tweets ({} changed), {} profiles ({} changed), {} skipped, spool: {} parsed, {} still failing",
            self.tweets,
            self.tweets_changed,
            self.profiles,
            self.profiles_changed,
            self.skipped,
            self.spool_parsed,
            self.spool_failed
        )?;
        if self.dry_run {
            write!(f, " (dry run: nothing written)")?;
        }
        Ok(())
    }
}

/// Run the three passes with the scrape-parser plugin `parser`, which must be loaded in
/// `runtime` (the CLI loads the plugin directory first).
pub async fn reparse(
    runtime: &Runtime,
    docs: &dyn Documents,
    parser: &str,
    opts: ReparseOptions,
) -> Result<ReparseSummary> {
    check_parser(runtime, parser)?;
    let env = Env {
        runtime,
        docs,
        parser,
        opts,
    };
    let mut sum = ReparseSummary {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    env.tweets(&mut sum).await?;
    env.profiles(&mut sum).await?;
    env.spool(&mut sum).await?;
    Ok(sum)
}

/// Fail early, naming the plugin and the folder, rather than on every call.
fn check_parser(runtime: &Runtime, parser: &str) -> Result<()> {
    let Some(loaded) = runtime.loaded_plugin(parser).and_then(|h| h.current()) else {
        bail!(
            "the scrape-parser `{parser}` ([scraper] parser) is not loaded from {}: put its .wasm there \
             (`impressox plugin build plugins/x-timeline`) or set [scraper] parser to a loaded plugin",
            runtime.dir().display()
        );
    };
    if loaded.kind != Kind::ScrapeParser {
        bail!(
            "plugin `{parser}` ([scraper] parser, {}) is a {} plugin, not a scrape-parser",
            loaded.file.display(),
            loaded.kind
        );
    }
    Ok(())
}

/// The plugin's answer to one capture.
enum Answer {
    /// Parsed by `parser` (`name@version`).
    Parsed {
        result: ScrapeResult,
        parser: String,
    },
    /// Refused or failed: this capture only; the message is for the log.
    Failed(String),
}

struct Env<'a> {
    runtime: &'a Runtime,
    docs: &'a dyn Documents,
    parser: &'a str,
    opts: ReparseOptions,
}

impl Env<'_> {
    fn meta<'m>(&self, parser: &'m str, sighting: Sighting<'m>) -> WriteMeta<'m> {
        WriteMeta {
            parser,
            sighting,
            dry_run: self.opts.dry_run,
        }
    }

    /// One plugin call on the blocking pool (it is synchronous, under the runtime's limits).
    async fn call(&self, capture: PageCapture) -> Result<Answer> {
        let handle = self.runtime.plugin(self.parser);
        let (version, answer) = tokio::task::spawn_blocking(move || {
            let version = handle
                .current()
                .map(|l| format!("{}@{}", l.name, l.version))
                .unwrap_or_else(|| handle.name().to_string());
            (version, handle.parse_page(&capture))
        })
        .await
        .context("the parser call's thread failed")?;
        match answer {
            Ok(Ok(result)) => Ok(Answer::Parsed {
                result,
                parser: version,
            }),
            Ok(Err(message)) => Ok(Answer::Failed(format!(
                "parser {version} refused it: {message}"
            ))),
            Err(
                e @ (CallError::NotLoaded(_)
                | CallError::Quarantined { .. }
                | CallError::WrongKind { .. }),
            ) => bail!("{e}; reparse stopped (what was written so far stays)"),
            Err(e) => Ok(Answer::Failed(e.to_string())),
        }
    }

    /// Up to `limit` documents of `coll` after `_id` `after`, in `_id` order.
    async fn page(&self, coll: &str, after: Option<&str>, limit: usize) -> Result<Vec<Doc>> {
        let filter = match after {
            Some(id) => Filter::all().gt("_id", id),
            None => Filter::all(),
        };
        self.docs
            .find(
                coll,
                &Query::new(filter).sort("_id", Order::Asc).limit(limit),
            )
            .await
            .with_context(|| format!("failed to read `{coll}` after `_id` {after:?}"))
    }

    async fn tweets(&self, sum: &mut ReparseSummary) -> Result<()> {
        let mut left = self.opts.limit.unwrap_or(usize::MAX);
        let mut after: Option<String> = None;
        let now = now_ms();
        while left > 0 {
            let page = self.page(TWEETS, after.as_deref(), left.min(BATCH)).await?;
            let Some(last) = page.last() else { break };
            after = Some(id_of(last).to_string());
            left = left.saturating_sub(page.len());
            sum.tweets += page.len() as u64;
            let raws = raw_jsons(TWEETS, &page, sum);
            let mut parsed = ByParser::<Tweet>::default();
            self.parse_tweets(&raws, now, &mut parsed, sum).await?;
            for (parser, tweets) in &parsed.0 {
                let meta = self.meta(parser, Sighting::Reparse { now_ms: now });
                let w = store::write_tweets(self.docs, tweets, &meta).await?;
                sum.tweets_changed += changed(&w);
            }
        }
        Ok(())
    }

    /// Parse `raws` in one body; when the plugin refuses or fails on it, one tweet per
    /// body.
    async fn parse_tweets(
        &self,
        raws: &[(&str, &str)],
        now: i64,
        out: &mut ByParser<Tweet>,
        sum: &mut ReparseSummary,
    ) -> Result<()> {
        if raws.is_empty() {
            return Ok(());
        }
        let capture = |raws: &[(&str, &str)]| {
            store::reparse_capture(
                store::REPARSE_TWEETS_URL,
                store::reparse_tweets_body(raws.iter().copied()),
                now,
            )
        };
        match self.call(capture(raws)).await? {
            Answer::Parsed { result, parser } => {
                count_skipped(&result, sum);
                out.add(parser, result.tweets);
                return Ok(());
            }
            Answer::Failed(why) if raws.len() > 1 => tracing::warn!(
                from = raws[0].0,
                tweets = raws.len(),
                error = %why,
                "scraper reparse: a batch failed; parsing its tweets one by one"
            ),
            Answer::Failed(_) => {}
        }
        for one in raws {
            match self.call(capture(std::slice::from_ref(one))).await? {
                Answer::Parsed { result, parser } => {
                    count_skipped(&result, sum);
                    out.add(parser, result.tweets);
                }
                Answer::Failed(why) => {
                    tracing::warn!(tweet = one.0, error = %why, "scraper reparse: tweet skipped");
                    sum.skipped += 1;
                }
            }
        }
        Ok(())
    }

    async fn profiles(&self, sum: &mut ReparseSummary) -> Result<()> {
        let mut left = self.opts.limit.unwrap_or(usize::MAX);
        let mut after: Option<String> = None;
        let now = now_ms();
        while left > 0 {
            let page = self
                .page(PROFILES, after.as_deref(), left.min(BATCH))
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(id_of(last).to_string());
            left = left.saturating_sub(page.len());
            sum.profiles += page.len() as u64;
            let mut parsed = ByParser::<Profile>::default();
            for (id, raw) in raw_jsons(PROFILES, &page, sum) {
                let capture = store::reparse_capture(
                    store::REPARSE_PROFILE_URL,
                    store::reparse_profile_body(raw),
                    now,
                );
                match self.call(capture).await? {
                    Answer::Parsed { result, parser } => {
                        count_skipped(&result, sum);
                        parsed.add(parser, result.profiles);
                    }
                    Answer::Failed(why) => {
                        tracing::warn!(profile = id, error = %why, "scraper reparse: profile skipped");
                        sum.skipped += 1;
                    }
                }
            }
            for (parser, profiles) in &parsed.0 {
                let meta = self.meta(parser, Sighting::Reparse { now_ms: now });
                let w = store::write_profiles(self.docs, profiles, &meta).await?;
                sum.profiles_changed += changed(&w);
            }
        }
        Ok(())
    }

    /// Parse spooled captures oldest first. Entries that still fail stay spooled; they
    /// are remembered by id so the next query moves past them.
    async fn spool(&self, sum: &mut ReparseSummary) -> Result<()> {
        let mut left = self.opts.limit.unwrap_or(usize::MAX);
        let mut kept: HashSet<String> = HashSet::new();
        while left > 0 {
            let entries = store::spooled(self.docs, None, kept.len() + SPOOL_PAGE).await?;
            let fresh: Vec<_> = entries
                .into_iter()
                .filter(|e| !kept.contains(&e.id))
                .take(left)
                .collect();
            if fresh.is_empty() {
                break;
            }
            left = left.saturating_sub(fresh.len());
            for entry in fresh {
                // Whatever happens, this entry is not read again by this reparse.
                kept.insert(entry.id.clone());
                let at_ms = entry.capture.captured_at_ms;
                match self.call(entry.capture).await? {
                    Answer::Parsed { result, parser } => {
                        count_skipped(&result, sum);
                        let meta = self.meta(
                            &parser,
                            Sighting::Run {
                                target: &entry.target,
                                at_ms,
                            },
                        );
                        store::write_result(self.docs, &result, &meta)
                            .await
                            .with_context(|| {
                                format!("failed to write spooled capture {}", entry.id)
                            })?;
                        if !self.opts.dry_run {
                            store::unspool(self.docs, &entry.id).await?;
                        }
                        sum.spool_parsed += 1;
                    }
                    Answer::Failed(why) => {
                        tracing::warn!(entry = %entry.id, error = %why, "scraper reparse: spooled capture still fails");
                        sum.spool_failed += 1;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Records grouped by the parser version that produced them (a plugin swapped during a
/// long reparse gives two groups), so each document names its parser.
struct ByParser<T>(Vec<(String, Vec<T>)>);

impl<T> Default for ByParser<T> {
    fn default() -> Self {
        ByParser(Vec::new())
    }
}

impl<T> ByParser<T> {
    fn add(&mut self, parser: String, records: Vec<T>) {
        match self.0.iter_mut().find(|(p, _)| *p == parser) {
            Some((_, all)) => all.extend(records),
            None => self.0.push((parser, records)),
        }
    }
}

fn id_of(d: &Doc) -> &str {
    d.get("_id").and_then(Value::as_str).unwrap_or_default()
}

/// `(_id, raw_json)` of each document; one without a `raw_json` string cannot be
/// reparsed and is counted as skipped.
fn raw_jsons<'d>(coll: &str, page: &'d [Doc], sum: &mut ReparseSummary) -> Vec<(&'d str, &'d str)> {
    let mut out = Vec::with_capacity(page.len());
    for d in page {
        match d.get("raw_json").and_then(Value::as_str) {
            Some(raw) => out.push((id_of(d), raw)),
            None => {
                tracing::warn!(
                    collection = coll,
                    id = id_of(d),
                    "scraper reparse: no raw_json stored; skipped"
                );
                sum.skipped += 1;
            }
        }
    }
    out
}

fn count_skipped(result: &ScrapeResult, sum: &mut ReparseSummary) {
    for s in &result.skipped {
        tracing::debug!(entry = %s.entry_id, reason = %s.reason, "scraper reparse: entry skipped by the parser");
    }
    sum.skipped += result.skipped.len() as u64;
}

fn changed(w: &WriteCounts) -> u64 {
    w.new + w.updated
}
