//! `replay`: a CSV or JSONL price file played back through its feed parser.
//!
//! `speed` scales time (1 = as recorded, 10 = ten times faster, 0 = as fast as the
//! pipeline takes it); `rebase_time` shifts tick times so the file plays as if it were
//! happening now; `loop` starts again at the end. The position (pass, byte offset, time
//! anchor) is checkpointed with the engine's commits, so a restart resumes where the
//! evaluated ticks end and re-plays the same tick times: any alert it fires again carries
//! the same idempotency key and is not enqueued twice.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Parsed, SourceCtx, received_now};
use crate::bindings::types::PriceTick;
use crate::market::health::SourceState;
use crate::util::now_ms;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Position {
    pass: u64,
    /// Byte offset of the next unread line.
    offset: usize,
    /// Wall-clock ms at which the file's first tick (`t0`) plays in this pass.
    anchor_ms: Option<i64>,
    /// The file's first tick time.
    t0_ms: Option<i64>,
    /// Where the last sent tick plays, in ms after `anchor_ms`.
    #[serde(default)]
    played_ms: Option<i64>,
}

pub async fn run(mut ctx: SourceCtx) {
    let Some(rel) = ctx.config.path.clone() else {
        return;
    };
    let path = if rel.is_absolute() {
        rel
    } else {
        ctx.base_dir.join(rel)
    };
    let data = match tokio::fs::read(&path).await {
        Ok(d) => d,
        Err(e) => {
            let msg = format!("cannot read replay file {}: {e}", path.display());
            tracing::error!(source = %ctx.config.name, "{msg}");
            ctx.health.error(msg);
            ctx.health.set_state(SourceState::Down);
            return;
        }
    };
    let mut pos: Position = match ctx.checkpoint.as_deref().map(serde_json::from_str) {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            tracing::warn!(source = %ctx.config.name, error = %e, "unreadable replay checkpoint; starting over");
            Position::default()
        }
        None => Position::default(),
    };
    if pos.offset > data.len() {
        tracing::warn!(source = %ctx.config.name, "replay file shrank below the checkpoint; starting over");
        pos = Position::default();
    }
    if pos.offset > 0 {
        tracing::info!(source = %ctx.config.name, pass = pos.pass, offset = pos.offset, "replay resumes from checkpoint");
        // Carry on from now rather than race through the time the host was down. Safe
        // for idempotency: a tick after the checkpoint had none of its alerts enqueued
        // (they commit together), so new tick times cannot duplicate one.
        if let (Some(anchor), Some(played)) = (pos.anchor_ms, pos.played_ms)
            && ctx.config.speed > 0.0
            && anchor + played < now_ms()
        {
            pos.anchor_ms = Some(now_ms() - played);
        }
    }
    let speed = ctx.config.speed;
    let chunk_lines = ctx.config.chunk_lines.max(1);
    loop {
        let mut last_ts = None;
        while pos.offset < data.len() {
            // Fast replays parse many lines per call; paced ones go line by line so each
            // line is sent at its time and checkpointed exactly.
            let lines = if speed == 0.0 { chunk_lines } else { 1 };
            let end = end_of_lines(&data, pos.offset, lines);
            let chunk = &data[pos.offset..end];
            let (received_ms, _) = received_now();
            let mut ticks = match ctx.parse_reporting(chunk, received_ms, lines == 1).await {
                Parsed::Ticks(t) => t,
                Parsed::Shutdown => return,
                Parsed::Rejected if lines > 1 => {
                    match salvage(&mut ctx, chunk, received_ms).await {
                        Some(t) => t,
                        None => return,
                    }
                }
                Parsed::Rejected => Vec::new(),
            };
            ctx.health.seen();
            if let Some(first) = ticks.first() {
                pos.t0_ms.get_or_insert(first.ts_ms);
                pos.anchor_ms.get_or_insert_with(now_ms);
            }
            for t in &mut ticks {
                last_ts = Some(t.ts_ms);
                let (Some(t0), Some(anchor)) = (pos.t0_ms, pos.anchor_ms) else {
                    continue;
                };
                let offset = if speed > 0.0 {
                    ((t.ts_ms - t0) as f64 / speed) as i64
                } else {
                    t.ts_ms - t0
                };
                if speed > 0.0 {
                    let wait = anchor + offset - now_ms();
                    if wait > 0 && ctx.sleep(Duration::from_millis(wait as u64)).await {
                        return;
                    }
                }
                if ctx.config.rebase_time {
                    t.ts_ms = anchor + offset;
                }
                pos.played_ms = Some(offset);
            }
            pos.offset = end;
            let checkpoint = serde_json::to_string(&pos).ok();
            // A paced row "arrives" when its time comes, not when it was read.
            let received = std::time::Instant::now();
            if !ctx.send(ticks, received, checkpoint).await {
                return;
            }
            if *ctx.shutdown.borrow() {
                return;
            }
        }
        if !ctx.config.repeat {
            break;
        }
        // Next pass: later tick times when rebasing, so rules see time move on.
        let span = match (last_ts, pos.t0_ms) {
            (Some(l), Some(t0)) if speed > 0.0 => ((l - t0) as f64 / speed) as i64,
            (Some(l), Some(t0)) => l - t0,
            _ => 0,
        };
        pos = Position {
            pass: pos.pass + 1,
            offset: 0,
            anchor_ms: pos.anchor_ms.map(|a| a + span + 1000),
            t0_ms: pos.t0_ms,
            played_ms: None,
        };
        if !ctx.config.rebase_time {
            pos.anchor_ms = None;
        }
        if span == 0 && ctx.sleep(Duration::from_millis(100)).await {
            return;
        }
    }
    ctx.health.set_state(SourceState::Finished);
    tracing::info!(source = %ctx.config.name, "replay finished");
    let _ = ctx.shutdown.changed().await;
}

/// Parse a rejected multi-line chunk line by line, keeping the good lines' ticks (each
/// bad line is counted and logged by `parse`). `None` on shutdown.
async fn salvage(ctx: &mut SourceCtx, chunk: &[u8], received_ms: i64) -> Option<Vec<PriceTick>> {
    let mut out = Vec::new();
    for line in chunk.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match ctx.parse(line, received_ms).await {
            Parsed::Ticks(t) => out.extend(t),
            Parsed::Rejected => {}
            Parsed::Shutdown => return None,
        }
    }
    Some(out)
}

/// The offset just past `n` lines starting at `from` (or the end of the data).
fn end_of_lines(data: &[u8], from: usize, n: usize) -> usize {
    let mut seen = 0;
    for (i, b) in data[from..].iter().enumerate() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return from + i + 1;
            }
        }
    }
    data.len()
}

#[cfg(test)]
mod tests {
    use super::end_of_lines;

    #[test]
    fn splits_on_line_ends() {
        let d = b"a\nb\nc";
        assert_eq!(end_of_lines(d, 0, 1), 2);
        assert_eq!(end_of_lines(d, 0, 2), 4);
        assert_eq!(end_of_lines(d, 4, 5), 5);
    }
}
