//! Price sources. Each runs as a tokio task, reads its transport, hands every payload to
//! its feed-parser plugin and sends the ticks to the engine thread.
//!
//! A payload the parser rejects is counted and logged with the source's name and never
//! stops the source. A source whose parser is not loaded waits for it rather than drop
//! data it cannot re-read (replay) or reads nothing yet (live feeds).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::config::{SourceConfig, SourceKind};
use super::health::SourceHealth;
pub use super::input::{Input, SourceBatch};
use crate::bindings::types::PriceTick;
use crate::runtime::{CallError, PluginHandle};
use crate::util::{now_ms, truncate};

pub mod backoff;
pub mod http_poll;
pub mod replay;
pub mod websocket;

/// What every source task gets.
pub struct SourceCtx {
    pub index: usize,
    pub config: SourceConfig,
    pub health: Arc<SourceHealth>,
    pub parser: PluginHandle,
    pub tx: mpsc::Sender<Input>,
    pub shutdown: watch::Receiver<bool>,
    /// The config file's folder, for relative replay paths.
    pub base_dir: std::path::PathBuf,
    /// A checkpoint stored by an earlier run.
    pub checkpoint: Option<String>,
}

/// Outcome of parsing one payload.
pub enum Parsed {
    Ticks(Vec<PriceTick>),
    /// The parser refused the payload (counted and logged).
    Rejected,
    /// Shutting down while waiting for the parser.
    Shutdown,
}

impl SourceCtx {
    /// Parse one payload with the source's parser plugin. Waits while the parser is not
    /// loaded (or quarantined); a rejected payload is counted and logged.
    pub async fn parse(&mut self, payload: &[u8], received_ms: i64) -> Parsed {
        self.parse_reporting(payload, received_ms, true).await
    }

    /// [`SourceCtx::parse`]; with `report` false a rejection is neither counted nor
    /// logged (the caller retries the payload's parts and reports those).
    pub async fn parse_reporting(
        &mut self,
        payload: &[u8],
        received_ms: i64,
        report: bool,
    ) -> Parsed {
        let mut warned = false;
        loop {
            match self.parser.parse_feed(payload, received_ms) {
                Ok(Ok(p)) => {
                    self.health
                        .ticks
                        .fetch_add(p.ticks.len() as u64, Ordering::Relaxed);
                    return Parsed::Ticks(p.ticks);
                }
                Ok(Err(msg)) => {
                    if report {
                        self.reject(payload, &msg);
                    }
                    return Parsed::Rejected;
                }
                Err(CallError::NotLoaded(_) | CallError::Quarantined { .. }) => {
                    if !warned {
                        tracing::warn!(
                            source = %self.config.name,
                            parser = %self.config.parser,
                            "feed parser is not serving; source waits for it"
                        );
                        warned = true;
                    }
                    if self.sleep(Duration::from_millis(250)).await {
                        return Parsed::Shutdown;
                    }
                }
                Err(e) => {
                    // A trap or limit in the parser: this payload only.
                    self.reject(payload, &e.to_string());
                    return Parsed::Rejected;
                }
            }
        }
    }

    fn reject(&self, payload: &[u8], msg: &str) {
        self.health.parse_errors.fetch_add(1, Ordering::Relaxed);
        let text = String::from_utf8_lossy(payload);
        tracing::warn!(
            source = %self.config.name,
            parser = %self.config.parser,
            error = %msg,
            payload = %truncate(&text, 200),
            "malformed feed message skipped"
        );
        self.health.error(format!("malformed message: {msg}"));
    }

    /// Send ticks to the engine; false if the engine is gone or the monitor is stopping.
    /// The channel is full while the engine waits for the store; a batch not sent when
    /// stopping is not lost: its checkpoint was not sent either, so it is read again at
    /// the next start.
    pub async fn send(
        &self,
        ticks: Vec<PriceTick>,
        received: Instant,
        checkpoint: Option<String>,
    ) -> bool {
        if ticks.is_empty() && checkpoint.is_none() {
            return true;
        }
        let batch = Input::Batch(SourceBatch {
            source: self.index,
            ticks,
            received,
            checkpoint,
        });
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            biased;
            sent = self.tx.send(batch) => sent.is_ok(),
            _ = shutdown.wait_for(|stop| *stop) => false,
        }
    }

    /// Sleep unless shutdown comes first; true on shutdown.
    pub async fn sleep(&mut self, d: Duration) -> bool {
        if *self.shutdown.borrow() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.shutdown.changed() => true,
        }
    }

    pub fn stale_after(&self) -> Duration {
        Duration::from_millis(self.health.stale_after_ms.max(1) as u64)
    }
}

/// Start the task for one source.
pub fn spawn(ctx: SourceCtx) -> tokio::task::JoinHandle<()> {
    let name = ctx.config.name.clone();
    tokio::spawn(async move {
        tracing::info!(source = %name, kind = ?ctx.config.kind, "source starting");
        match ctx.config.kind {
            SourceKind::Websocket => websocket::run(ctx).await,
            SourceKind::HttpPoll => http_poll::run(ctx).await,
            SourceKind::Replay => replay::run(ctx).await,
        }
        tracing::info!(source = %name, "source stopped");
    })
}

/// Wall-clock ms, for parsers that need a receive time.
pub fn received_now() -> (i64, Instant) {
    (now_ms(), Instant::now())
}
