//! One run of one target (design §4.3): open the target's page with an account's browser
//! context, then step — parse the capture, take in the budgets and the account signal,
//! store tweets and profiles, decide whether to go on — and scroll for the next page.
//!
//! What a run may meet and what it does:
//! - a session X rejects (`bad-auth`): one login through the form, then the step again;
//!   rejected again right after that fresh login, the account is `banned`;
//! - a rate limit, a lock or a ban: the run ends and the account's state says why (the
//!   target stays due and goes to another account, or waits);
//! - a browser that died (`BrowserError::Gone`): the run starts over once on the
//!   relaunched browser — what is stored makes that a resume;
//! - a proxy failure: counted against the proxy (three in a row rotate it out), the target
//!   stays due;
//! - a parser failure: the capture is spooled, nothing captured is lost;
//! - a stop (the worker shutting down, or the target's lease lost; `stopping`): the run ends
//!   at the next step boundary with outcome `stopped`, or gives up the step under way when
//!   the shutdown grace is nearly spent. Only completed steps count in the report, so what
//!   the worker saves never claims a page that was not stored.

use std::sync::Arc;
use std::time::Duration;

use impressox_browser::{BrowserError, Capture, Expect};

use super::config::{HtmlCapture, ScraperConfig};
use super::metrics::Metrics;
pub use super::outcome::Outcome;
use super::parse;
use super::pool::{AccountLease, Verdict};
use super::stop::{self, Decision, RunProgress, StopRules};
use super::stopping::RunStop;
use super::store;
use super::targets::{TargetKind, TargetRecord};
use crate::documents::Documents;
use crate::runtime::Runtime;

/// What a run needs from the worker.
#[derive(Clone)]
pub struct RunEnv {
    pub cfg: Arc<ScraperConfig>,
    pub runtime: Runtime,
    pub docs: Arc<dyn Documents>,
    pub metrics: Arc<Metrics>,
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub account: String,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub pages: u32,
    pub new: u64,
    pub updated: u64,
    pub skipped: u64,
    /// The newest and oldest ids of the target's own tweets seen in this run.
    pub newest_id: Option<i64>,
    pub oldest_id: Option<i64>,
    /// The deepest bottom cursor seen, and whether the timeline's end was reached.
    pub bottom_cursor: Option<String>,
    pub reached_end: bool,
    /// The target user's id, from the first profile of a user target.
    pub user_id: Option<String>,
}

impl RunReport {
    fn new(account: &str) -> Self {
        RunReport {
            account: account.to_string(),
            outcome: Outcome::Ok,
            error: None,
            pages: 0,
            new: 0,
            updated: 0,
            skipped: 0,
            newest_id: None,
            oldest_id: None,
            bottom_cursor: None,
            reached_end: false,
            user_id: None,
        }
    }

    fn end(&mut self, outcome: Outcome, error: Option<String>) {
        self.outcome = outcome;
        self.error = error;
    }
}

/// The GraphQL operations the first step of a target triggers, and those of a scroll.
pub fn operations(kind: TargetKind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        TargetKind::User => (&["UserByScreenName", "UserTweets"], &["UserTweets"]),
        TargetKind::Search => (&["SearchTimeline"], &["SearchTimeline"]),
    }
}

/// The page a target's run opens (`[scraper]`'s URL templates).
pub fn target_url(cfg: &ScraperConfig, target: &TargetRecord) -> String {
    match target.kind {
        TargetKind::User => cfg.user_url(target.handle.as_deref().unwrap_or_default()),
        TargetKind::Search => cfg.search_url(
            target.query.as_deref().unwrap_or_default(),
            target.product.unwrap_or_default(),
        ),
    }
}

/// Parse the target's spooled captures (oldest first) with the parser serving now, before
/// its next run: a page spooled because the parser failed is stored as soon as a parser can
/// read it. One that still fails stays spooled; the first failure ends the drain (the parser
/// is likely still the broken one).
pub async fn drain_spool(env: &RunEnv, target: &TargetRecord, stop: &RunStop) {
    let entries = match store::spooled(&*env.docs, Some(&target.id), 32).await {
        Ok(e) => e,
        Err(err) => {
            tracing::warn!(target = %target.id, error = %format!("{err:#}"), "reading the spool failed");
            return;
        }
    };
    for entry in entries {
        if stop.cause().is_some() {
            return;
        }
        let parsed = match parse::parse(&env.runtime, &env.cfg.parser, entry.capture.clone()).await
        {
            Ok(p) => p,
            Err(message) => {
                tracing::debug!(target = %target.id, entry = %entry.id, error = %message, "spooled capture still fails");
                return;
            }
        };
        let meta = store::WriteMeta {
            parser: &parsed.parser,
            sighting: store::Sighting::Run {
                target: &target.id,
                at_ms: entry.capture.captured_at_ms,
            },
            dry_run: false,
        };
        match store::write_result(&*env.docs, &parsed.result, &meta).await {
            Ok(written) => {
                env.metrics.tweets_new.add(written.tweets.new);
                env.metrics.tweets_updated.add(written.tweets.updated);
                if let Err(err) = store::unspool(&*env.docs, &entry.id).await {
                    tracing::warn!(entry = %entry.id, error = %format!("{err:#}"), "removing a parsed capture from the spool failed");
                }
                tracing::info!(target = %target.id, entry = %entry.id, new = written.tweets.new, "spooled capture parsed and stored");
            }
            Err(err) => {
                tracing::warn!(entry = %entry.id, error = %format!("{err:#}"), "storing a spooled capture failed; it stays spooled");
                return;
            }
        }
    }
}

/// Run `target` with `account`; a browser that died mid-run is waited for and the run
/// starts over once (design §4.3). The caller saves the report's progress, then calls
/// [`AccountLease::finish`].
pub async fn run(
    env: &RunEnv,
    target: &TargetRecord,
    account: &AccountLease,
    stop: &RunStop,
) -> RunReport {
    let mut report = RunReport::new(account.username());
    match attempt(env, target, account, stop, &mut report).await {
        Err(BrowserError::Gone) if stop.cause().is_none() => {
            tracing::warn!(
                target = %target.id, account = account.username(),
                "the browser went away mid-run; starting the run again on the relaunched browser"
            );
            let mut again = RunReport::new(account.username());
            let result = attempt(env, target, account, stop, &mut again).await;
            merge(&mut again, &report);
            report = again;
            if let Err(err) = result {
                end_with_browser_error(env, account, &mut report, err).await;
            }
        }
        Err(err) => end_with_browser_error(env, account, &mut report, err).await,
        Ok(()) => {}
    }
    report
}

/// One attempt, unless the shutdown abandons the step under way first: then the report
/// holds the steps completed before it (each is updated only once its page is stored).
async fn attempt(
    env: &RunEnv,
    target: &TargetRecord,
    account: &AccountLease,
    stop: &RunStop,
    report: &mut RunReport,
) -> Result<(), BrowserError> {
    let finished = {
        let steps = run_once(env, target, account, stop, report);
        tokio::pin!(steps);
        tokio::select! {
            r = &mut steps => Some(r),
            () = stop.abandoned() => None,
        }
    };
    if finished.is_none() {
        tracing::warn!(
            target = %target.id, account = account.username(), pages = report.pages,
            "shutdown grace nearly spent; the step under way is given up (read again next run)"
        );
        report.end(
            Outcome::Stopped,
            Some(format!(
                "stopped during page {}: the worker's shutdown grace ran out; the pages before \
                 it are stored and the next run continues from them",
                report.pages + 1
            )),
        );
    }
    finished.unwrap_or(Ok(()))
}

/// Whether the run is to end at this step boundary; if so the report says why.
fn stopping_here(stop: &RunStop, report: &mut RunReport) -> bool {
    match stop.cause() {
        Some(cause) => {
            let why = cause.describe(report.pages);
            report.end(Outcome::Stopped, Some(why));
            true
        }
        None => false,
    }
}

/// Counts of an interrupted first attempt stay in the report (they were stored).
fn merge(into: &mut RunReport, first: &RunReport) {
    into.pages += first.pages;
    into.new += first.new;
    into.updated += first.updated;
    into.skipped += first.skipped;
    into.newest_id = into.newest_id.max(first.newest_id);
    into.oldest_id = match (into.oldest_id, first.oldest_id) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if into.user_id.is_none() {
        into.user_id.clone_from(&first.user_id);
    }
}

async fn end_with_browser_error(
    env: &RunEnv,
    account: &AccountLease,
    report: &mut RunReport,
    err: BrowserError,
) {
    if err.is_proxy() {
        account.proxy_failed(&err).await;
        report.end(Outcome::ProxyFailed, Some(err.to_string()));
    } else {
        report.end(Outcome::BrowserError, Some(err.to_string()));
    }
    env.metrics.browser_errors.inc();
}

/// One attempt. Browser errors come back to [`run`]; everything else ends in `report`.
async fn run_once(
    env: &RunEnv,
    target: &TargetRecord,
    account: &AccountLease,
    stop: &RunStop,
    report: &mut RunReport,
) -> Result<(), BrowserError> {
    let cfg = &env.cfg;
    let started_ms = crate::util::now_ms();
    if stopping_here(stop, report) {
        return Ok(());
    }
    let context = account.context().await?;
    let mut page = context.lease().await?;
    if !account.ensure_session(&context, &mut page).await? {
        report.end(Outcome::LoginFailed, account.reason());
        return Ok(());
    }
    if stopping_here(stop, report) {
        return Ok(());
    }
    let (first_ops, scroll_ops) = operations(target.kind);
    let url = target_url(cfg, target);
    let with_html = cfg.capture.html != HtmlCapture::Never;
    // The session the page is opened with, to tell a rejected session from one another run
    // of the account has replaced meanwhile.
    let mut generation = account.session_generation();
    let mut capture = open_target(&mut page, &url, first_ops, with_html).await?;
    account.proxy_ok().await;

    let rules = StopRules {
        mode: target.mode,
        max_pages: target.max_pages,
        handle: target.handle.clone(),
        user_id: target.user_id.clone(),
        newest_id: target.newest_id,
        backfill_oldest_id: target.backfill.oldest_id,
        backfill_pages: target.backfill.pages,
    };
    let mut progress = RunProgress::new(&rules);
    let mut relogged = false;
    let mut step: u32 = 0;
    loop {
        step += 1;
        let page_capture = parse::to_page_capture(&capture);
        let parsed = match parse::parse(&env.runtime, &cfg.parser, page_capture.clone()).await {
            Ok(p) => p,
            Err(message) => {
                env.metrics.parse_failures.inc();
                tracing::warn!(target = %target.id, error = %message, "parser failed; the capture is spooled");
                spool(env, target, started_ms, step, &page_capture, &message).await;
                report.end(Outcome::ParserFailed, Some(message));
                return Ok(());
            }
        };
        let result = &parsed.result;
        match account.observe(&capture, result).await {
            Verdict::Continue => {}
            Verdict::SessionRejected if !relogged => {
                // X no longer accepts the stored session: log in once and read the page
                // again. (Rejected right after a fresh login, the account's state machine
                // says `banned` instead, and the run stops below.)
                relogged = true;
                if !account.relogin(&context, &mut page, generation).await? {
                    report.end(Outcome::LoginFailed, account.reason());
                    return Ok(());
                }
                generation = account.session_generation();
                if stopping_here(stop, report) {
                    return Ok(());
                }
                capture = open_target(&mut page, &url, first_ops, with_html).await?;
                continue;
            }
            Verdict::SessionRejected => {
                report.end(Outcome::Banned, account.reason());
                return Ok(());
            }
            Verdict::Stop(outcome) => {
                // Whatever the page held before the limit is still worth storing.
                store_page(env, target, &parsed, &capture, report, started_ms, step).await;
                report.end(outcome, account.reason());
                return Ok(());
            }
        }
        if !store_page(env, target, &parsed, &capture, report, started_ms, step).await {
            return Ok(());
        }
        report.pages += 1;
        env.metrics.pages.inc();
        let decision = stop::decide(&rules, &mut progress, result, capture.end_of_timeline);
        report.newest_id = progress.newest_own_id;
        report.oldest_id = progress.oldest_own_id;
        report.bottom_cursor.clone_from(&progress.bottom_cursor);
        report.user_id.clone_from(&progress.user_id);
        if capture.timed_out {
            report.end(Outcome::Timeout, Some(format!("step {step} timed out")));
            return Ok(());
        }
        if let Decision::Stop(reason) = decision {
            tracing::debug!(target = %target.id, reason = reason.as_str(), pages = report.pages, "run stops");
            report.reached_end = reason.timeline_ended();
            return Ok(());
        }
        // A step boundary: the page is stored and the report holds it.
        if stopping_here(stop, report) {
            return Ok(());
        }
        pace(cfg, stop).await;
        if stopping_here(stop, report) {
            return Ok(());
        }
        if !account.can_spend(scroll_ops) {
            report.end(Outcome::Budget, Some(account.budget_note(scroll_ops)));
            return Ok(());
        }
        let with_html = cfg.capture.html == HtmlCapture::Every;
        capture = page.scroll_more(expect(scroll_ops), with_html).await?;
        if capture.end_of_timeline && capture.responses.is_empty() {
            // Scrolling started no request: X's app has nothing more to load.
            report.reached_end = true;
            return Ok(());
        }
    }
}

async fn spool(
    env: &RunEnv,
    target: &TargetRecord,
    started_ms: i64,
    step: u32,
    capture: &crate::bindings::types::PageCapture,
    error: &str,
) {
    if let Err(err) = store::spool(
        &*env.docs,
        &target.id,
        started_ms,
        step,
        capture,
        error,
        crate::util::now_ms(),
    )
    .await
    {
        // Logged loudly: this is the one path where a capture can be lost.
        tracing::error!(target = %target.id, error = %format!("{err:#}"), "spooling a capture failed; the page is lost");
    }
}

/// Parse results → documents; false (and the report ended) when the store failed.
async fn store_page(
    env: &RunEnv,
    target: &TargetRecord,
    parsed: &parse::Parsed,
    capture: &Capture,
    report: &mut RunReport,
    started_ms: i64,
    step: u32,
) -> bool {
    let result = &parsed.result;
    report.skipped += result.skipped.len() as u64;
    env.metrics.skipped_entries.add(result.skipped.len() as u64);
    for s in &result.skipped {
        tracing::debug!(target = %target.id, entry = %s.entry_id, reason = %s.reason, "parser skipped an entry");
    }
    let meta = store::WriteMeta {
        parser: &parsed.parser,
        sighting: store::Sighting::Run {
            target: &target.id,
            at_ms: capture.captured_at_ms,
        },
        dry_run: false,
    };
    match store::write_result(&*env.docs, result, &meta).await {
        Ok(written) => {
            report.new += written.tweets.new;
            report.updated += written.tweets.updated;
            env.metrics.tweets_new.add(written.tweets.new);
            env.metrics.tweets_updated.add(written.tweets.updated);
            true
        }
        Err(err) => {
            let msg = format!("storing the page failed: {err:#}");
            tracing::error!(target = %target.id, error = %msg, "the capture is spooled");
            spool(
                env,
                target,
                started_ms,
                step,
                &parse::to_page_capture(capture),
                &msg,
            )
            .await;
            report.end(Outcome::StoreError, Some(msg));
            false
        }
    }
}

/// Open the target's page; a navigation aborted by one the page started itself (X's app
/// moving on, `net::ERR_ABORTED`) is tried once more.
async fn open_target(
    page: &mut impressox_browser::PageLease,
    url: &str,
    ops: &[&str],
    with_html: bool,
) -> Result<Capture, BrowserError> {
    match page.open(url, expect(ops), with_html).await {
        Err(BrowserError::Navigation(msg)) if msg.contains("ERR_ABORTED") => {
            tracing::debug!(%url, "navigation aborted by the page; opening it again");
            page.open(url, expect(ops), with_html).await
        }
        other => other,
    }
}

fn expect(ops: &[&str]) -> Expect {
    Expect {
        operations: ops.iter().map(|s| s.to_string()).collect(),
        min_new: 1,
    }
}

/// Pacing between two steps of one account: `min_step_interval_ms` plus up to 50 % jitter
/// (short-burst limits, REFERENCE); cut short by a stop.
async fn pace(cfg: &ScraperConfig, stop: &RunStop) {
    let base = cfg.min_step_interval_ms;
    if base == 0 {
        return;
    }
    let jitter = fastrand::u64(0..=base / 2);
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(base + jitter)) => {}
        () = stop.finishing() => {}
    }
}
