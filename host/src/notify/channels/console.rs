//! The console channel: one line per message on standard output,
//! `ALERT [<user>] <title> — <body>` (the formatter's line breaks shown as ` — `), the line
//! the demo prints. Tests hand in a sink that collects the lines instead.

use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::Channel;
use crate::notify::limiter::Limit;
use crate::notify::record::{Delivery, Part, SendOutcome};

/// Where console lines go.
#[derive(Clone, Default)]
pub enum Sink {
    #[default]
    Stdout,
    /// Collected in memory (tests).
    Lines(Arc<Mutex<Vec<String>>>),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sink::Stdout => "Stdout",
            Sink::Lines(_) => "Lines",
        })
    }
}

pub struct Console {
    sink: Sink,
}

impl Console {
    pub fn new(sink: Sink) -> Console {
        Console { sink }
    }
}

/// The console line for a part.
pub fn line(user_id: &str, text: &str) -> String {
    let text = text
        .split('\n')
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" — ");
    format!("ALERT [{user_id}] {text}")
}

#[async_trait]
impl Channel for Console {
    fn name(&self) -> &'static str {
        "console"
    }

    fn unconfigured(&self) -> Option<String> {
        None
    }

    fn limits(&self, _target: &str) -> Vec<Limit> {
        Vec::new()
    }

    async fn send(&self, d: &Delivery, part: &Part, _index: usize) -> SendOutcome {
        let line = line(&d.user_id, &part.text);
        match &self.sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                match writeln!(out, "{line}").and_then(|_| out.flush()) {
                    Ok(()) => SendOutcome::Sent,
                    Err(e) => SendOutcome::Transient(format!("writing to stdout failed: {e}")),
                }
            }
            Sink::Lines(lines) => {
                lines.lock().push(line);
                SendOutcome::Sent
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_line_matches_the_demo() {
        assert_eq!(
            super::line("demo", "BTCUSDT above 108\nBTCUSDT is 110 (file)"),
            "ALERT [demo] BTCUSDT above 108 — BTCUSDT is 110 (file)"
        );
    }
}
