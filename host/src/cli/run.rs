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
    let runtime = Runtime::new(&config)?;
    tracing::info!(dir = %runtime.dir().display(), "watching plugin directory");
    let watcher = Watcher::start(
        runtime.clone(),
        Duration::from_millis(config.plugins.debounce_ms),
    )?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("impressox")
        .build()
        .context("failed to start the async runtime")?;
    tokio.block_on(async {
        let shutdown = shutdown_signal();
        if config.api.enabled {
            let router = crate::api::router(runtime.clone(), Some(watcher.trigger()), token);
            crate::api::serve(config.api.listen, router, shutdown).await?;
        } else {
            shutdown.await;
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
