//! A plugin's stdout and stderr: into the host's log, one line per event, tagged with the
//! plugin's name and the stream (`print!` in Rust, `print()` in Python and `console.log`
//! in JavaScript all land here).
//!
//! A line is logged when its newline arrives, not at each write or flush: CPython writes
//! `print("a", "b")` as four writes, each flushed, and SpiderMonkey flushes before the
//! newline. A line still open when a later call writes is logged first (so calls never
//! share a line), and one still open when the stream is dropped is logged then.
//!
//! Writes never block and are always accepted; what a call writes past its byte budget is
//! dropped, with one warning per call, so a chatty or hostile guest cannot flood the log.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of stdout and stderr together that one call may log.
pub const OUTPUT_BUDGET_PER_CALL: usize = 64 * 1024;
/// Longest line kept; a longer one is cut (and what follows it up to the newline dropped).
const MAX_LINE: usize = 8 * 1024;
/// Most bytes one `write` may be handed (what `check-write` grants).
const WRITE_PERMIT: usize = 64 * 1024;

/// What a call may still log; shared by a store's stdout and stderr, reset per call.
#[derive(Debug, Default)]
pub struct OutputBudget {
    remaining: AtomicUsize,
    warned: AtomicBool,
    /// Counts calls, so a stream knows an open line belongs to an earlier one.
    call: AtomicUsize,
}

impl OutputBudget {
    /// A full budget.
    pub fn new() -> OutputBudget {
        let budget = OutputBudget::default();
        budget.reset();
        budget
    }

    /// Refill for a new call.
    pub fn reset(&self) {
        self.remaining
            .store(OUTPUT_BUDGET_PER_CALL, Ordering::Relaxed);
        self.warned.store(false, Ordering::Relaxed);
        self.call.fetch_add(1, Ordering::Relaxed);
    }

    /// Take up to `n` bytes; returns how many may be logged.
    fn take(&self, n: usize) -> usize {
        let mut left = self.remaining.load(Ordering::Relaxed);
        loop {
            let granted = left.min(n);
            match self.remaining.compare_exchange_weak(
                left,
                left - granted,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return granted,
                Err(now) => left = now,
            }
        }
    }
}

/// Which of the two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The `StdoutStream` a store's WASI context is built with.
#[derive(Clone)]
pub struct PluginOutput {
    plugin: Arc<str>,
    stream: Stream,
    budget: Arc<OutputBudget>,
}

impl PluginOutput {
    pub fn new(plugin: Arc<str>, stream: Stream, budget: Arc<OutputBudget>) -> PluginOutput {
        PluginOutput {
            plugin,
            stream,
            budget,
        }
    }

    fn writer(&self) -> LineLogger {
        LineLogger {
            out: self.clone(),
            line: Vec::new(),
            cut: false,
            line_call: 0,
        }
    }
}

impl IsTerminal for PluginOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for PluginOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }
}

/// Collects bytes into lines and logs each complete one.
struct LineLogger {
    out: PluginOutput,
    line: Vec<u8>,
    /// The current line passed `MAX_LINE`; the rest of it is dropped.
    cut: bool,
    /// The call the open line was written in.
    line_call: usize,
}

impl LineLogger {
    fn push(&mut self, mut bytes: &[u8]) {
        let call = self.out.budget.call.load(Ordering::Relaxed);
        if call != self.line_call {
            // What an earlier call left open is its own line.
            self.flush_partial();
            self.line_call = call;
        }
        while !bytes.is_empty() {
            let (chunk, newline) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            if !self.cut {
                let room = MAX_LINE - self.line.len();
                if chunk.len() > room {
                    self.line.extend_from_slice(&chunk[..room]);
                    self.cut = true;
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            bytes = &bytes[chunk.len() + usize::from(newline)..];
            if newline {
                self.emit();
            }
        }
    }

    fn emit(&mut self) {
        let line = std::mem::take(&mut self.line);
        let cut = std::mem::replace(&mut self.cut, false);
        let budget = &self.out.budget;
        let granted = budget.take(line.len() + 1);
        if granted < line.len() + 1 {
            if !budget.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(target: "plugin", plugin = %self.out.plugin,
                    stream = self.out.stream.name(),
                    "plugin output over {OUTPUT_BUDGET_PER_CALL} bytes in one call; the rest of this call's output is dropped");
            }
            return;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches('\r');
        let marker = if cut { " [line cut]" } else { "" };
        let plugin = &*self.out.plugin;
        match self.out.stream {
            Stream::Stdout => {
                tracing::info!(target: "plugin", plugin, stream = "stdout", "{text}{marker}")
            }
            Stream::Stderr => {
                tracing::warn!(target: "plugin", plugin, stream = "stderr", "{text}{marker}")
            }
        }
    }

    fn flush_partial(&mut self) {
        if !self.line.is_empty() || self.cut {
            self.emit();
        }
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        self.flush_partial();
    }
}

#[async_trait::async_trait]
impl Pollable for LineLogger {
    async fn ready(&mut self) {}
}

impl OutputStream for LineLogger {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Lines end at their newline; flushes come between the pieces of one.
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for LineLogger {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().flush_partial();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logger(budget: Arc<OutputBudget>) -> LineLogger {
        PluginOutput::new("p".into(), Stream::Stdout, budget).writer()
    }

    #[test]
    fn lines_are_split_and_long_lines_cut() {
        let budget = Arc::new(OutputBudget::new());
        let mut l = logger(budget.clone());
        l.push(b"one\ntw");
        assert_eq!(l.line, b"tw");
        l.push(b"o\n");
        assert!(l.line.is_empty());
        l.push(&vec![b'x'; MAX_LINE + 100]);
        assert!(l.cut);
        assert_eq!(l.line.len(), MAX_LINE);
        l.push(b"\n");
        assert!(!l.cut && l.line.is_empty());
    }

    #[test]
    fn a_line_written_in_pieces_and_flushed_between_is_one_line() {
        let budget = Arc::new(OutputBudget::new());
        let mut l = logger(budget.clone());
        // CPython's `print("formatted", "n-1")`: each piece written and flushed.
        for piece in [&b"formatted"[..], b" ", b"n-1"] {
            l.push(piece);
            OutputStream::flush(&mut l).unwrap();
        }
        assert_eq!(l.line, b"formatted n-1");
        l.push(b"\n");
        assert!(l.line.is_empty());
        // A line left open is logged before the next call's first write.
        l.push(b"progress");
        budget.reset();
        l.push(b"next");
        assert_eq!(l.line, b"next");
    }

    #[test]
    fn the_budget_bounds_what_one_call_logs() {
        let budget = Arc::new(OutputBudget::new());
        let mut l = logger(budget.clone());
        for _ in 0..100 {
            l.push(&vec![b'y'; 1000]);
            l.push(b"\n");
        }
        assert_eq!(budget.remaining.load(Ordering::Relaxed), 0);
        assert!(budget.warned.load(Ordering::Relaxed));
        budget.reset();
        assert_eq!(
            budget.remaining.load(Ordering::Relaxed),
            OUTPUT_BUDGET_PER_CALL
        );
    }
}
