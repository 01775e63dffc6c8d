//! `http-poll`: an HTTP endpoint polled on an interval (CoinGecko's `/simple/price`).
//!
//! A 429 is honoured: the next request waits for `Retry-After` seconds (at least one
//! interval); without a number there (absent, or an HTTP date) it waits for the backoff. Other failures back
//! off exponentially with jitter. No good answer within `stale_after` marks the source
//! stale. The API key comes from the environment variable named by `api_key_env` and is
//! never logged.

use std::time::Duration;

use super::backoff::Backoff;
use super::{Parsed, SourceCtx, received_now};
use crate::market::health::SourceState;

pub async fn run(mut ctx: SourceCtx) {
    let Some(url) = ctx.config.url.clone() else {
        return;
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("impressox/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            ctx.health
                .error(format!("cannot build an HTTP client: {e}"));
            ctx.health.set_state(SourceState::Down);
            return;
        }
    };
    let api_key = ctx
        .config
        .api_key_env
        .as_deref()
        .and_then(|v| std::env::var(v).ok())
        .filter(|k| !k.is_empty());
    let interval = Duration::from_secs_f64(ctx.config.interval_secs);
    let mut backoff = Backoff::new(
        interval.max(Duration::from_millis(500)),
        Duration::from_secs(300),
    );
    loop {
        let mut req = client.get(&url);
        for (k, v) in &ctx.config.headers {
            req = req.header(k, v);
        }
        if let Some(key) = &api_key {
            req = req.header(ctx.config.api_key_header.as_str(), key);
        }
        let wait = match req.send().await {
            Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                Ok(body) => {
                    ctx.health.seen();
                    backoff.reset();
                    let (received_ms, received) = received_now();
                    match ctx.parse(&body, received_ms).await {
                        Parsed::Ticks(ticks) => {
                            if !ctx.send(ticks, received, None).await {
                                return;
                            }
                        }
                        Parsed::Rejected => {}
                        Parsed::Shutdown => return,
                    }
                    interval
                }
                Err(e) => failed(&ctx, format!("reading the body failed: {e}"), &mut backoff),
            },
            Ok(resp) if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let wait = retry_after
                    .unwrap_or_else(|| backoff.next_delay())
                    .max(interval);
                tracing::warn!(
                    source = %ctx.config.name,
                    wait_ms = wait.as_millis() as u64,
                    "rate limited (429); waiting as told"
                );
                ctx.health.error("rate limited (429)".into());
                wait
            }
            Ok(resp) => failed(&ctx, format!("HTTP {}", resp.status()), &mut backoff),
            Err(e) => failed(
                &ctx,
                format!("request failed: {}", without_url(&e)),
                &mut backoff,
            ),
        };
        if ctx
            .health
            .age_ms()
            .is_some_and(|age| age > ctx.health.stale_after_ms)
            && ctx.health.state() != SourceState::Stale
        {
            tracing::warn!(source = %ctx.config.name, "no good answer within stale_after: marked stale");
            ctx.health.set_state(SourceState::Stale);
        }
        if ctx.sleep(wait).await {
            return;
        }
    }
}

fn failed(ctx: &SourceCtx, reason: String, backoff: &mut Backoff) -> Duration {
    let wait = backoff.next_delay();
    tracing::warn!(source = %ctx.config.name, %reason, retry_in_ms = wait.as_millis() as u64, "poll failed");
    ctx.health.error(reason);
    if ctx.health.state() != SourceState::Stale {
        ctx.health.set_state(SourceState::Down);
    }
    wait
}

/// reqwest errors print the URL, which may carry a key in its query: drop it.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<url>");
    }
    s
}
