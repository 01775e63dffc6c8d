//! Servers the integration tests talk to instead of the outside world (SPEC.md §12).
//!
//! - [`redis::RedisServer`]: a real `redis-server` (Debian package) on a free loopback port.
//! - [`binance_ws::BinanceStandIn`]: a local WebSocket server speaking Binance's spot stream
//!   format, with knobs for the failures a feed client must survive (abrupt drops, silence).
//! - [`mongo::MongoServer`]: SecantusDB's `secantusd-py` (MongoDB's wire protocol) from the
//!   test virtualenv.
//! - [`coingecko_http::CoinGeckoStandIn`]: CoinGecko's `/api/v3/simple/price`, with 429s and
//!   malformed bodies on demand.
//! - [`telegram::TelegramStandIn`]: the Telegram Bot API as teloxide calls it (`sendMessage`,
//!   `getUpdates` long polling, `getMe`), with scripted errors, rate limits and MarkdownV2 checks
//!   on demand.
//! - [`webhook_receiver::WebhookReceiver`]: an endpoint that verifies the notify worker's webhook
//!   signatures and answers as scripted.
//! - [`push_service::PushService`]: a Web Push service and its browsers: verifies VAPID,
//!   decrypts the payload with the subscriber's keys, answers 201, 404/410 or 429 as scripted.
//! - [`chat_hooks::ChatHooks`]: Discord and Slack incoming webhooks with their limits, 429
//!   bodies and headers.
//! - [`smtp::SmtpServer`]: PyPI's aiosmtpd from the test virtualenv, storing mail in a Maildir and
//!   refusing or stalling recipients on demand.
//! - [`x_site::XSite`]: X as the scraper's browser meets it: profile and search pages whose
//!   script calls X's GraphQL API, the fixture pages along their cursors, X's login flow (email
//!   challenge, TOTP), per-account budgets, bans, locks and their redirects.
//! - [`http_proxy::HttpProxy`]: a forward HTTP proxy to the loopback stand-ins that counts what
//!   it forwards, can demand credentials and can go down.
//! - [`json_origin::JsonOrigin`]: a small JSON API for plugins' outbound HTTP, with redirects,
//!   large and chunked bodies and a route that never answers.
//! - [`chroma::ChromaServer`]: `chroma run` from the test virtualenv (the rag crate's own
//!   test server, shared so the host's Chroma tests start it the same way).
//! - [`chromium`]: the Debian Chromium binary, a process-wide limit of two browser tests at a
//!   time, and `--dump-dom`.
//!
//! Each test starts its own instance, so tests can run in parallel and never share state.

// Each test uses only part of these helpers.
#![allow(dead_code)]

pub mod binance_ws;
pub mod chat_hooks;
#[path = "../../../../rag/tests/common/chroma.rs"]
pub mod chroma;
pub mod chromium;
pub mod coingecko_http;
pub mod http_proxy;
pub mod json_origin;
pub mod mongo;
pub mod push_service;
pub mod redis;
pub mod smtp;
pub mod telegram;
pub mod webhook_receiver;
pub mod x_site;

mod selftest;
