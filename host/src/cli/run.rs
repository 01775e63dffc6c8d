//! `impressox run`: the runtime, the watcher, the admin API and the workers, until
//! SIGINT or SIGTERM.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::runtime::Runtime;
use crate::runtime::watcher::Watcher;

pub fn run(mut config: Config, workers: Option<Vec<String>>) -> Result<ExitCode> {
    if let Some(w) = workers {
        config.workers.enabled = w;
    }
    crate::workers::check_available(&config.workers.enabled)?;
    let token = std::env::var("IMPRESSOX_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    if config.api.enabled {
        crate::api::check_bind(config.api.listen, token.as_deref())?;
    }
    std::fs::create_dir_all(config.data_dir())
        .with_context(|| format!("failed to create data_dir {}", config.data_dir().display()))?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("impressox")
        .build()
        .context("failed to start the async runtime")?;
    // The stores first: the workers share them, and the plugins' capabilities are lent
    // on them from the first load on.
    let (store, docs) = tokio.block_on(async {
        let limits = crate::storage::StoreLimits {
            history_len: config.market.history_len,
            stream_maxlen: config.market.stream_maxlen,
            ..Default::default()
        };
        let store = crate::storage::open(&config, limits).await?;
        tracing::info!(backend = store.backend(), "store open");
        let docs = crate::documents::open(&config).await?;
        tracing::info!(backend = docs.backend(), "document store open");
        anyhow::Ok((store, docs))
    })?;
    let services = crate::capabilities::Services::new(&config, store.clone(), docs.clone());
    let runtime = Runtime::with_services(&config, services)?;
    tracing::info!(dir = %runtime.dir().display(), "watching plugin directory");
    let watcher = Watcher::start(
        runtime.clone(),
        Duration::from_millis(config.plugins.debounce_ms),
    )?;
    if !config.workers.enabled.is_empty() {
        // Workers start with the plugins that are in the directory already loaded, so
        // the first ticks do not meet a parser or processor that is still compiling.
        watcher.rescan_and_wait(false);
    }
    tokio.block_on(async {
        let market = if config.workers.runs("market-monitor") {
            Some(
                crate::market::MarketMonitor::start(&config, runtime.clone(), store.clone())
                    .await?,
            )
        } else {
            None
        };
        let notify = if config.workers.runs("notify") {
            Some(
                crate::notify::NotifyWorker::start_with(
                    &config,
                    runtime.clone(),
                    store.clone(),
                    docs.clone(),
                    crate::notify::Extras {
                        // The bot's /watch and /unwatch tell the engine, as the API does.
                        market: market.as_ref().map(|m| m.handle.clone()),
                        ..Default::default()
                    },
                )
                .await?,
            )
        } else {
            None
        };
        let scraper = if config.workers.runs(crate::scraper::config::WORKER) {
            Some(
                crate::scraper::ScraperWorker::start(
                    &config,
                    runtime.clone(),
                    store.clone(),
                    docs.clone(),
                )
                .await?,
            )
        } else {
            None
        };
        let events = if config.workers.runs(crate::events::WORKER) {
            Some(
                crate::events::EventsWorker::start(
                    &config,
                    runtime.clone(),
                    store.clone(),
                    docs.clone(),
                )
                .await?,
            )
        } else {
            None
        };
        let scheduler = if config.workers.runs(crate::scheduler::config::WORKER) {
            Some(
                crate::scheduler::SchedulerWorker::start(
                    &config,
                    runtime.clone(),
                    store.clone(),
                    docs.clone(),
                )
                .await?,
            )
        } else {
            None
        };
        let rag = if config.workers.runs(crate::rag::worker::WORKER) {
            Some(crate::rag::RagWorker::start(&config, runtime.clone(), docs.clone()).await?)
        } else {
            None
        };
        let services = crate::api::Services {
            store: Some(store.clone()),
            market: market.as_ref().map(|m| m.handle.clone()),
            docs: Some(docs.clone()),
            notify: notify.as_ref().map(|n| n.handle.clone()),
            scraper: scraper.as_ref().map(|s| s.handle.clone()),
            events: events.as_ref().map(|e| e.handle.clone()),
            rag: rag.as_ref().map(|r| r.handle.clone()),
            listeners: config.listeners.clone(),
            scraper_defaults: Some(crate::scraper::worker::target_defaults(&config.scraper)),
            rules: crate::market::rule_limits::RulePolicy::from_config(&config.market),
            webpush_public_key: crate::notify::webpush::public_key_from_env(
                &config.notify.webpush.private_key_env,
            )?,
            scheduler: scheduler.as_ref().map(|s| s.handle.clone()),
            schedules: crate::scheduler::config_definitions(&config),
            mcp_sessions: Default::default(),
        };
        let mcp_sessions = services.mcp_sessions.clone();
        let shutdown = async move {
            shutdown_signal().await;
            mcp_sessions.cancel();
        };
        if config.api.enabled {
            let router =
                crate::api::router_with(runtime.clone(), Some(watcher.trigger()), token, services);
            crate::api::serve(config.api.listen, router, shutdown).await?;
        } else {
            shutdown.await;
        }
        // scheduler: first, so a try in flight can still use what the others serve.
        if let Some(s) = scheduler {
            tracing::info!(
                "shutting down: stopping the scheduler (tries in flight finish within grace_ms)"
            );
            s.stop().await;
        }
        // Then events: its handlers enqueue notifications the notify worker delivers.
        if let Some(e) = events {
            tracing::info!("shutting down: stopping the events worker");
            e.stop().await;
        }
        // Then rag: tasks and handlers finishing above may still use its `rag` capability.
        if let Some(r) = rag {
            tracing::info!("shutting down: stopping the rag worker (batches in progress finish)");
            r.stop().await;
        }
        if let Some(s) = scraper {
            tracing::info!(
                "shutting down: stopping the x-scraper (sessions saved, Chromium closed)"
            );
            s.stop().await;
        }
        // Notify first: its bot may be handing a /watch to the market engine.
        if let Some(n) = notify {
            tracing::info!("shutting down: stopping the notify worker");
            n.stop().await;
        }
        if let Some(m) = market {
            tracing::info!("shutting down: stopping the market monitor");
            m.stop().await;
        }
        anyhow::Ok(())
    })?;
    tracing::info!("shutting down: stopping the watcher");
    drop(watcher);
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
