//! `impressox scraper reparse [--limit N] [--dry-run]`: run the configured `[scraper] parser`
//! over the stored tweets, profiles and spooled captures (docs/design/x-scraper.md §4.7).
//!
//! It needs no running host: it loads the plugin directory and opens the document store
//! itself. With the embedded backend the store's file is locked by a running host, so stop
//! it first; with MongoDB both can run at once (writes are compare-and-set).

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::config::Config;
use crate::runtime::Runtime;
use crate::scraper::reparse::{ReparseOptions, reparse};

#[derive(Subcommand, Debug)]
pub enum ScraperCommand {
    /// Parse the stored raw JSON again with the current parser plugin, then the spool.
    Reparse {
        /// Read at most N stored tweets, N profiles and N spooled captures.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Parse and count what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn dispatch(config: &Config, cmd: ScraperCommand) -> Result<ExitCode> {
    match cmd {
        ScraperCommand::Reparse { limit, dry_run } => run_reparse(
            config,
            ReparseOptions {
                limit: limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                dry_run,
            },
        ),
    }
}

fn run_reparse(config: &Config, opts: ReparseOptions) -> Result<ExitCode> {
    let runtime = Runtime::new(config)?;
    for (file, outcome) in runtime.rescan(false) {
        // Another plugin's broken file does not matter here; the parser's is named by
        // `reparse` when it is missing.
        if let Err(e) = outcome {
            tracing::warn!(file = %file.display(), error = %e, "plugin not loaded");
        }
    }
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let summary = tokio.block_on(async {
        let docs = crate::documents::open(config).await?;
        crate::scraper::store::ensure_indexes(docs.as_ref()).await?;
        reparse(&runtime, docs.as_ref(), &config.scraper.parser, opts).await
    })?;
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}
