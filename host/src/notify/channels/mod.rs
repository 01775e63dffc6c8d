//! Channels: how a rendered message reaches a user. Each channel knows its rate limits
//! (recipient and channel-wide keys), sends one part, and sorts every failure into what
//! the delivery record must do next: retry after a given time, retry with backoff, give
//! up (dead letter), or treat the send as of unknown fate.
//!
//! Error texts pass through the channel's redaction before they are logged or stored, so
//! a bot token that a client library puts into an error message never leaves the host.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;

use super::config::NotifyConfig;
use super::limiter::Limit;
use super::record::{Delivery, Part, SendOutcome};

pub mod console;
pub mod discord;
pub mod email;
pub mod http;
pub mod slack;
pub mod telegram;
pub mod webhook;
pub mod webpush;

/// One delivery channel.
#[async_trait]
pub trait Channel: Send + Sync {
    fn name(&self) -> &'static str;
    /// Why the channel cannot send at all (a missing secret), if so.
    fn unconfigured(&self) -> Option<String>;
    /// The rate limits a message to `target` falls under.
    fn limits(&self, target: &str) -> Vec<Limit>;
    /// The earliest time (ms) a send to `target` may start, from what the receiver said
    /// about its own limits (Discord's `X-RateLimit-*` headers); 0 when it said nothing.
    /// The sender waits for it as for a rate-limit slot.
    fn not_before(&self, _target: &str) -> i64 {
        0
    }
    /// Send part `index` of `delivery`.
    async fn send(&self, delivery: &Delivery, part: &Part, index: usize) -> SendOutcome;
}

/// The channels by name, built from the configuration.
pub type Channels = HashMap<&'static str, Arc<dyn Channel>>;

/// Where channel secrets come from: the environment, unless given here by name (tests
/// and embedders that hold secrets in memory, so they need not touch the process env).
#[derive(Clone, Default)]
pub struct Secrets(pub BTreeMap<String, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values never reach a log.
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    /// The value of the secret variable `var`, if set and not empty.
    pub fn get(&self, var: &str) -> Option<String> {
        if var.is_empty() {
            return None;
        }
        self.0
            .get(var)
            .cloned()
            .or_else(|| std::env::var(var).ok())
            .filter(|v| !v.is_empty())
    }
}

/// Build every channel. Secrets are read here, once.
pub fn build(
    cfg: &NotifyConfig,
    console: console::Sink,
    secrets: &Secrets,
) -> anyhow::Result<Channels> {
    let list: Vec<Arc<dyn Channel>> = vec![
        Arc::new(console::Console::new(console)),
        Arc::new(telegram::Telegram::new(&cfg.telegram, secrets)?),
        Arc::new(email::Email::new(&cfg.email, secrets)?),
        Arc::new(webhook::Webhook::new(&cfg.webhook, secrets)?),
        Arc::new(webpush::WebPush::new(&cfg.webpush, secrets)?),
        Arc::new(discord::Discord::new(&cfg.discord)?),
        Arc::new(slack::Slack::new(&cfg.slack)?),
    ];
    Ok(list.into_iter().map(|c| (c.name(), c)).collect())
}
