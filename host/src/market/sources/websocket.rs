//! `websocket`: a live feed such as Binance's spot streams or Coinbase's ticker channel.
//!
//! One connection at a time, to `url`. After connecting (and after every reconnect) the
//! parser's subscribe message is sent when `symbols` are configured. Pings are answered
//! (tungstenite queues the pong; we flush it at once). The connection is dropped and
//! re-opened when it is silent past `stale_after` (the source is marked stale meanwhile),
//! when the server closes or the TCP connection breaks (exponential backoff with jitter),
//! and before `max_connection_secs` (Binance closes connections at 24 h).

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::backoff::Backoff;
use super::{Parsed, SourceCtx, received_now};
use crate::bindings::types::SubscribeRequest;
use crate::market::health::SourceState;

/// Why a connection ended.
enum End {
    Shutdown,
    Rotate,
    Stale,
    Closed(String),
}

pub async fn run(mut ctx: SourceCtx) {
    let Some(url) = ctx.config.url.clone() else {
        return;
    };
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    let mut request_id = 0u32;
    loop {
        if *ctx.shutdown.borrow() {
            return;
        }
        if ctx.health.state() != SourceState::Stale {
            ctx.health.set_state(SourceState::Connecting);
        }
        let connect = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(url.as_str()),
        );
        let end = tokio::select! {
            r = connect => match r {
                Ok(Ok((ws, _))) => {
                    tracing::info!(source = %ctx.config.name, %url, "connected");
                    request_id = request_id.wrapping_add(1);
                    session(&mut ctx, ws, &mut backoff, request_id).await
                }
                Ok(Err(e)) => End::Closed(format!("connect failed: {e}")),
                Err(_) => End::Closed("connect timed out after 10 s".into()),
            },
            _ = ctx.shutdown.changed() => End::Shutdown,
        };
        match end {
            End::Shutdown => return,
            End::Rotate => {
                tracing::info!(source = %ctx.config.name, "rotating the connection before its maximum age");
                ctx.health.reconnects.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            End::Stale => {
                tracing::warn!(
                    source = %ctx.config.name,
                    silent_for_ms = ctx.health.stale_after_ms,
                    "source is silent: marked stale, reconnecting"
                );
                ctx.health.error("silent past stale_after".into());
            }
            End::Closed(reason) => {
                tracing::warn!(source = %ctx.config.name, %reason, "connection lost");
                ctx.health.error(reason);
                if ctx.health.state() != SourceState::Stale {
                    ctx.health.set_state(SourceState::Down);
                }
            }
        }
        ctx.health.reconnects.fetch_add(1, Ordering::Relaxed);
        let delay = backoff.next_delay();
        tracing::info!(source = %ctx.config.name, delay_ms = delay.as_millis() as u64, "reconnecting after backoff");
        if ctx.sleep(delay).await {
            return;
        }
    }
}

async fn session<S>(
    ctx: &mut SourceCtx,
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    backoff: &mut Backoff,
    request_id: u32,
) -> End
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if !ctx.config.symbols.is_empty() {
        let request = SubscribeRequest {
            symbols: ctx.config.symbols.clone(),
            channels: ctx.config.channels.clone(),
            request_id,
        };
        match ctx.parser.subscribe_message(&request) {
            Ok(Some(text)) => {
                if let Err(e) = ws.send(Message::text(text)).await {
                    return End::Closed(format!("subscribe failed: {e}"));
                }
            }
            Ok(None) => {}
            Err(e) => {
                return End::Closed(format!("parser could not build the subscribe message: {e}"));
            }
        }
    }
    let rotate_at =
        tokio::time::Instant::now() + Duration::from_secs(ctx.config.max_connection_secs.max(1));
    let stale_after = ctx.stale_after();
    loop {
        let next = tokio::select! {
            _ = ctx.shutdown.changed() => {
                let _ = ws.close(None).await;
                return End::Shutdown;
            }
            _ = tokio::time::sleep_until(rotate_at) => {
                let _ = ws.close(None).await;
                return End::Rotate;
            }
            r = tokio::time::timeout(stale_after, ws.next()) => r,
        };
        let msg = match next {
            Err(_) => {
                ctx.health.set_state(SourceState::Stale);
                return End::Stale;
            }
            Ok(None) => return End::Closed("connection ended".into()),
            Ok(Some(Err(e))) => return End::Closed(e.to_string()),
            Ok(Some(Ok(m))) => m,
        };
        let payload: &[u8] = match &msg {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            Message::Ping(_) => {
                ctx.health.seen();
                // tungstenite has queued the pong; send it now rather than on the next read.
                if let Err(e) = ws.flush().await {
                    return End::Closed(format!("pong failed: {e}"));
                }
                continue;
            }
            Message::Pong(_) | Message::Frame(_) => {
                ctx.health.seen();
                continue;
            }
            Message::Close(frame) => {
                return End::Closed(match frame {
                    Some(f) => format!("server closed: {} {}", f.code, f.reason),
                    None => "server closed".into(),
                });
            }
        };
        ctx.health.seen();
        backoff.reset();
        let (received_ms, received) = received_now();
        match ctx.parse(payload, received_ms).await {
            Parsed::Ticks(ticks) => {
                if !ctx.send(ticks, received, None).await {
                    return End::Shutdown;
                }
            }
            Parsed::Rejected => {}
            Parsed::Shutdown => return End::Shutdown,
        }
    }
}
