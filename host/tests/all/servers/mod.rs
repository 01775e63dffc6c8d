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
//! - [`smtp::SmtpServer`]: PyPI's aiosmtpd from the test virtualenv, storing mail in a Maildir and
//!   refusing or stalling recipients on demand.
//!
//! Each test starts its own instance, so tests can run in parallel and never share state.

// Each test uses only part of these helpers.
#![allow(dead_code)]

pub mod binance_ws;
pub mod coingecko_http;
pub mod mongo;
pub mod redis;
pub mod smtp;
pub mod telegram;
pub mod webhook_receiver;

mod selftest;
