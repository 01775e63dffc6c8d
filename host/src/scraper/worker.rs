//! The worker: start-up (files, indexes, targets, browser, accounts), the scheduler loop
//! that hands due targets to free accounts, and shutdown.
//!
//! The scheduler ticks every second and whenever a target is added or asked to run now.
//! A target runs on one host at a time (store lease `scraper:target:<id>`, renewed while
//! the run goes: `lease`), and on one account at a time in this process. A target that
//! finds no able account stays due and is looked at again on the next tick.
//!
//! Shutdown (issue 12, item 4): no new runs; every run is told to finish at its next step
//! boundary (`stopping`); at three quarters of `shutdown_grace_secs` (at most 5 s before its
//! end) a run still inside a step gives that step up. Each run's progress is saved as a
//! normal end would save it and its target lease released, so the next run, here or on
//! another host, continues from there. Only a run stuck past the whole grace is aborted
//! (its lease is still released). Then sessions are saved and Chromium is closed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use impressox_browser::{BrowserPool, PoolConfig, Sandbox};
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::config::{RunMode, ScraperConfig};
use super::lease::{LeaseKeeper, target_lease};
use super::metrics::{Gauges, Metrics};
use super::pool::{AccountLease, AccountPool};
use super::runner::{self, Outcome, RunEnv, RunReport};
use super::stopping::Stopper;
use super::targets::{LastRun, TargetDefaults, TargetRecord};
use super::{accounts, proxies, store, targets};
use crate::config::Config;
use crate::documents::Documents;
use crate::runtime::Runtime;
use crate::storage::Store;

const TICK: Duration = Duration::from_secs(1);
/// Due targets looked at per tick.
const DUE_BATCH: usize = 32;
/// The most of the shutdown grace kept for saving after steps are given up.
const SAVE_RESERVE: Duration = Duration::from_secs(5);
/// A run ended by a browser, proxy or store error is tried again after this.
const RETRY_AFTER_ERROR_MS: i64 = 15_000;

/// What the API and the CLI see of a running worker.
#[derive(Clone)]
pub struct ScraperHandle {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) env: RunEnv,
    pub(crate) pool: AccountPool,
    pub(crate) store: Arc<dyn Store>,
    owner: String,
    running: Mutex<HashSet<String>>,
    wake: Notify,
    stopper: Stopper,
}

/// The running worker.
pub struct ScraperWorker {
    pub handle: ScraperHandle,
    stop_tx: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ScraperHandle {
    /// The scraper's configuration.
    pub fn config(&self) -> &ScraperConfig {
        &self.shared.env.cfg
    }

    /// The document store the worker writes to.
    pub fn docs(&self) -> &Arc<dyn Documents> {
        &self.shared.env.docs
    }

    /// The account pool (the accounts API, metrics, tests).
    pub fn pool(&self) -> &AccountPool {
        &self.shared.pool
    }

    /// Look at due targets now (after a target was added or asked to run).
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Prometheus text of the scraper.
    pub async fn render_metrics(&self, out: &mut String) {
        // Counted, not read: a scrape must not load every spooled capture.
        let spooled = self
            .shared
            .env
            .docs
            .count(store::SPOOL, &crate::documents::Filter::all())
            .await
            .unwrap_or(0);
        let gauges = Gauges {
            accounts: self.shared.pool.states(),
            browser_restarts: self.shared.pool.browser().restarts(),
            spooled,
        };
        self.shared.env.metrics.render(out, &gauges);
    }

    /// Targets running now, by id.
    pub fn running(&self) -> Vec<String> {
        self.shared.running.lock().iter().cloned().collect()
    }
}

/// `[scraper.browser]` + `[scraper.capture]` → the browser crate's settings.
pub fn pool_config(config: &Config) -> PoolConfig {
    let cfg = &config.scraper;
    let b = &cfg.browser;
    let c = &cfg.capture;
    PoolConfig {
        executable: b.executable.clone(),
        sandbox: match b.sandbox {
            super::config::Sandbox::Auto => Sandbox::Auto,
            super::config::Sandbox::On => Sandbox::On,
            super::config::Sandbox::Off => Sandbox::Off,
        },
        browsers: b.browsers as usize,
        contexts_per_browser: b.contexts_per_browser as usize,
        pages_per_account: b.pages_per_account as usize,
        page_max_uses: b.page_max_uses,
        launch_timeout: Duration::from_secs(b.launch_timeout_secs),
        request_timeout: Duration::from_secs(b.request_timeout_secs),
        probe_interval: Duration::from_secs(b.probe_interval_secs),
        user_agent: (!b.user_agent.is_empty()).then(|| b.user_agent.clone()),
        block_resources: b.block_resources.clone(),
        proxy_bypass_list: b.proxy_bypass_list.clone(),
        extra_args: b.extra_args.clone(),
        profile_root: config.data_dir().join("browser"),
        settle: Duration::from_millis(c.settle_ms),
        step_timeout: Duration::from_secs(c.step_timeout_secs),
        scroll_nudges: c.scroll_nudges,
        nudge_wait: Duration::from_millis(c.nudge_wait_ms),
        max_body_bytes: c.max_body_bytes as usize,
    }
}

/// `[scraper]`'s defaults for targets.
pub fn target_defaults(cfg: &ScraperConfig) -> TargetDefaults {
    TargetDefaults {
        interval_secs: cfg.default_interval_secs,
        tail_max_pages: cfg.tail_max_pages,
        backfill_max_pages: cfg.backfill_max_pages,
    }
}

/// A target after a run: when it runs next, how far it got (design §4.1, §4.2).
pub fn apply_report(target: &TargetRecord, report: &RunReport, now_ms: i64) -> TargetRecord {
    let mut t = target.clone();
    if report.user_id.is_some() {
        t.user_id.clone_from(&report.user_id);
    }
    t.next_run_ms = match report.outcome {
        // The account's budget ran out before the target's stop rule was met: the target
        // is not done, so it stays due for another account (or this one after its reset;
        // `pick` skips an account whose budget is spent). Fix, found by
        // `limits::spent_budget_moves_the_target_to_another_account`: it used to wait a
        // whole interval although another account had budget.
        Outcome::Budget => now_ms,
        // The interval starts again, with ±10 % jitter so targets added together spread.
        o if o.counts_as_run() => {
            let interval = i64::try_from(t.interval_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            let jitter = interval / 10;
            now_ms
                + interval
                + if jitter > 0 {
                    fastrand::i64(-jitter..=jitter)
                } else {
                    0
                }
        }
        // The account, not the target, is the problem: another account may run it now.
        Outcome::RateLimited | Outcome::Locked | Outcome::Banned | Outcome::LoginFailed => now_ms,
        // Ended by a shutdown or a lost lease, not by its rules: due at once, so the next
        // run (here after a restart, or on another host) continues where this one stopped.
        Outcome::Stopped => now_ms,
        // Infrastructure: try again shortly rather than in a hot loop.
        _ => now_ms + RETRY_AFTER_ERROR_MS,
    };
    // A tail run that ended before its stop rule (budget, limits, errors) has not read down
    // to the stored tweets: moving `newest_id` up to what it saw would make the next run
    // stop above the gap, and the tweets in between would never be read. Only a run that
    // stopped by its rules advances it. Fix, found by
    // `limits::spent_budget_moves_the_target_to_another_account` (page 3 was never read).
    if t.mode != RunMode::Tail || report.outcome == Outcome::Ok {
        t.newest_id = t.newest_id.max(report.newest_id);
    }
    if t.mode == RunMode::Backfill && report.pages > 0 {
        if report.bottom_cursor.is_some() {
            t.backfill.cursor.clone_from(&report.bottom_cursor);
        }
        t.backfill.oldest_id = match (t.backfill.oldest_id, report.oldest_id) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        t.backfill.pages = t.backfill.pages.max(report.pages);
        t.backfill.done = t.backfill.done || report.reached_end;
    }
    t.last_run = Some(LastRun {
        at_ms: now_ms,
        account: report.account.clone(),
        pages: report.pages,
        new: report.new,
        updated: report.updated,
        skipped: report.skipped,
        outcome: report.outcome.as_str().to_string(),
        error: report.error.clone(),
    });
    t
}

fn owner_name() -> String {
    let host = crate::util::host_name();
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..))
}

impl ScraperWorker {
    /// Read the accounts, proxies and user list, declare the indexes, seed the targets,
    /// start the browser pool and the scheduler.
    pub async fn start(
        config: &Config,
        runtime: Runtime,
        store: Arc<dyn Store>,
        docs: Arc<dyn Documents>,
    ) -> Result<ScraperWorker> {
        let cfg = Arc::new(config.scraper.clone());
        // Both loaders warn about a world-readable file themselves.
        let accounts = accounts::load_accounts(&config.scraper_accounts_file())?;
        let proxies = match config.scraper_proxies_file() {
            Some(path) => proxies::load_proxies(&path)?,
            None => Vec::new(),
        };
        let handles = match config.scraper_user_list() {
            Some(path) => targets::load_user_list(&path)?,
            None => Vec::new(),
        };
        store::ensure_indexes(&*docs).await?;
        let now = crate::util::now_ms();
        targets::seed(&*docs, &handles, &cfg.searches, &target_defaults(&cfg), now)
            .await
            .context("seeding scrape targets from user_list and [[scraper.searches]]")?;
        let browser = BrowserPool::start(pool_config(config))
            .await
            .map_err(|e| anyhow::anyhow!("[scraper.browser]: {e}"))?;
        let metrics = Arc::new(Metrics::default());
        let owner = owner_name();
        let pool = AccountPool::new(
            cfg.clone(),
            browser,
            store.clone(),
            metrics.clone(),
            owner.clone(),
            accounts,
            proxies,
        )
        .await?;
        tracing::info!(
            worker = "x-scraper",
            accounts = pool.states().values().sum::<u64>(),
            user_targets = handles.len(),
            searches = cfg.searches.len(),
            "x-scraper started"
        );
        let shared = Arc::new(Shared {
            env: RunEnv {
                cfg,
                runtime,
                docs,
                metrics,
            },
            pool,
            store,
            owner,
            running: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            stopper: Stopper::default(),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(schedule(shared.clone(), stop_rx));
        Ok(ScraperWorker {
            handle: ScraperHandle { shared },
            stop_tx,
            task,
        })
    }

    /// Stop: no new runs; running ones end at their next step boundary within
    /// `shutdown_grace_secs`, saving their progress and releasing their targets; sessions
    /// are saved and Chromium is closed.
    pub async fn stop(self) {
        let _ = self.stop_tx.send(true);
        let _ = self.task.await;
        let shared = &self.handle.shared;
        shared.pool.save_sessions().await;
        // Fix: the accounts' leases were left to expire, so a restart ran nothing for two
        // minutes (found by proxies::each_account_keeps_its_proxy).
        shared.pool.release_leases().await;
        shared.pool.browser().shutdown().await;
    }
}

/// The scheduler loop; on stop it ends the running runs (see the module docs).
async fn schedule(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut runs: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
        while runs.try_join_next().is_some() {}
        if let Err(err) = tick(&shared, &mut runs).await {
            tracing::warn!(worker = "x-scraper", error = %format!("{err:#}"), "scheduling failed; retrying");
        }
    }
    end_runs(&shared, &mut runs).await;
}

/// Shutdown of the runs: finish at step boundaries, give up steps late in the grace,
/// abort only what is still going when the grace is over.
async fn end_runs(shared: &Shared, runs: &mut JoinSet<()>) {
    let started = Instant::now();
    let grace = Duration::from_secs(shared.env.cfg.shutdown_grace_secs);
    let give_up_steps_at = grace - (grace / 4).min(SAVE_RESERVE);
    shared.stopper.finish_runs();
    if drain(runs, give_up_steps_at).await {
        return;
    }
    tracing::warn!(
        worker = "x-scraper",
        running = ?shared.running.lock().iter().collect::<Vec<_>>(),
        "runs still inside a step late in shutdown_grace_secs; giving those steps up"
    );
    shared.stopper.abandon_steps();
    if drain(runs, grace.saturating_sub(started.elapsed())).await {
        return;
    }
    tracing::warn!(
        worker = "x-scraper",
        "runs still going after shutdown_grace_secs; aborting them (stored pages are kept)"
    );
    runs.shutdown().await;
    // Their progress since the last save is lost, but their targets need not wait for the
    // leases to lapse.
    let stuck: Vec<String> = shared.running.lock().drain().collect();
    for id in stuck {
        let _ = shared
            .store
            .release_lease(&target_lease(&id), &shared.owner)
            .await;
    }
}

/// Wait up to `limit` for every run to end; true if they did.
async fn drain(runs: &mut JoinSet<()>, limit: Duration) -> bool {
    tokio::time::timeout(limit, async { while runs.join_next().await.is_some() {} })
        .await
        .is_ok()
}

async fn tick(shared: &Arc<Shared>, runs: &mut JoinSet<()>) -> Result<()> {
    let now = crate::util::now_ms();
    let due = targets::due(&*shared.env.docs, now, DUE_BATCH).await?;
    for target in due {
        if shared.running.lock().contains(&target.id) {
            continue;
        }
        let (first_ops, _) = runner::operations(target.kind);
        let Some(account) = shared.pool.pick(first_ops).await else {
            continue;
        };
        let lease = target_lease(&target.id);
        let ttl = Duration::from_secs(shared.env.cfg.target_lease_secs);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if !shared
            .store
            .acquire_lease(&lease, &shared.owner, ttl_ms)
            .await?
        {
            continue;
        }
        shared.running.lock().insert(target.id.clone());
        runs.spawn(run_target(shared.clone(), target, account, lease, ttl));
    }
    Ok(())
}

/// One run of a target whose lease this host holds: the lease is renewed while it goes;
/// afterwards its progress is saved, then the lease released.
async fn run_target(
    shared: Arc<Shared>,
    target: TargetRecord,
    account: AccountLease,
    lease: String,
    ttl: Duration,
) {
    let stop = shared.stopper.run_signal();
    let keeper = LeaseKeeper::start(
        shared.store.clone(),
        lease.clone(),
        shared.owner.clone(),
        ttl,
        stop.clone(),
    );
    runner::drain_spool(&shared.env, &target, &stop).await;
    let report = runner::run(&shared.env, &target, &account, &stop).await;
    // No renewal may land after the release below.
    keeper.stop().await;
    shared.env.metrics.run_ended(report.outcome.as_str());
    let level_ok = report.outcome.counts_as_run();
    if level_ok {
        tracing::info!(
            worker = "x-scraper", target = %target.id, account = %report.account,
            outcome = report.outcome.as_str(), pages = report.pages, new = report.new,
            updated = report.updated, skipped = report.skipped, "run finished"
        );
    } else {
        tracing::warn!(
            worker = "x-scraper", target = %target.id, account = %report.account,
            outcome = report.outcome.as_str(), pages = report.pages, new = report.new,
            error = report.error.as_deref().unwrap_or(""), "run ended early"
        );
    }
    let after = apply_report(&target, &report, crate::util::now_ms());
    if let Err(err) = targets::save_after_run(&*shared.env.docs, &after).await {
        tracing::error!(target = %target.id, error = %format!("{err:#}"), "saving the target's progress failed");
    }
    if let Err(err) = shared.store.release_lease(&lease, &shared.owner).await {
        tracing::warn!(target = %target.id, error = %format!("{err:#}"), "releasing the target's lease failed; it lapses by itself");
    }
    // The target is saved and free; the session's save (a browser round trip) comes last.
    account.finish(report.pages).await;
    drop(account);
    shared.running.lock().remove(&target.id);
    // A target that could not run on this account may find another now.
    shared.wake.notify_one();
}
