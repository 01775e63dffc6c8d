//! The command line: `run`, `plugin new|build|check|run`, `plugins`, `scraper reparse`,
//! `rag ingest|query|stats|reindex`.
//!
//! `--config FILE` and `--log-format` are global: every subcommand accepts them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};

pub mod logging;
mod plugin;
mod rag;
mod run;
mod scraper;
mod webpush;

/// ImpressoX Workers: the host for the background workers of an AI agent for crypto markets.
#[derive(Parser, Debug)]
#[command(name = "impressox", version, about)]
pub struct Cli {
    /// Configuration file (TOML); defaults apply without one.
    #[arg(long, global = true, env = "IMPRESSOX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format; overrides `[log] format`.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start the host: plugin runtime, watcher, admin API and the enabled workers.
    Run {
        /// Comma-separated workers to run; overrides `[workers] enabled`.
        #[arg(long, value_delimiter = ',')]
        workers: Option<Vec<String>>,
    },
    /// Author plugins: scaffold, build, check, run once.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// List the plugins of a running host (through its admin API).
    Plugins {
        /// The host's API base URL; defaults to `http://<[api] listen>`.
        #[arg(long)]
        url: Option<String>,
    },
    /// The x-scraper's offline tools (no running host needed).
    #[command(subcommand)]
    Scraper(scraper::ScraperCommand),
    /// Retrieval: ingest the sources, query, stats, re-embed after an embedder change.
    #[command(subcommand)]
    Rag(rag::RagCommand),
    /// Web Push tools: `keygen` prints a new VAPID key pair.
    #[command(subcommand)]
    Webpush(webpush::WebpushCommand),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    let format = cli.log_format.unwrap_or(config.log.format);
    logging::init(format, &config.log.level);
    match cli.command {
        Command::Run { workers } => run::run(config, workers),
        Command::Plugin(cmd) => plugin::dispatch(&config, cmd, cli.config.is_some()),
        Command::Plugins { url } => plugin::list_remote(&config, url),
        Command::Scraper(cmd) => scraper::dispatch(&config, cmd),
        Command::Rag(cmd) => rag::dispatch(&config, cmd),
        Command::Webpush(cmd) => webpush::dispatch(&config, cmd),
    }
}
