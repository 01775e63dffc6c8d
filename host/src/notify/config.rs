//! `[notify]`: the notify worker's intake, delivery tuning, formatters and channels.
//!
//! Secrets (the bot token, SMTP credentials, the webhook signing secret, the VAPID key) are never config
//! values: the config names the environment variable that holds them (`*_env`), so they
//! stay out of files, logs and `GET` answers. A channel whose secret is unset is
//! "unconfigured": its deliveries become dead letters `channel_unconfigured`, which can be
//! replayed once it is fixed.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::market::rules::CHANNELS;

/// `[notify]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Consumer group on `notify:requests`; hosts in one group share the work.
    pub group: String,
    /// This host's consumer name in the group; empty = the host name. Two processes on
    /// one machine need different names.
    pub consumer: String,
    /// Stream entries read per batch (and records per write batch).
    pub batch_size: usize,
    /// How long one read waits for new entries.
    pub block_ms: u64,
    /// Entries pending this long with another consumer (a crashed host) are taken over.
    pub claim_idle_secs: u64,
    /// How long a claimed delivery belongs to this host before another host's sweeper
    /// declares it interrupted. Must exceed the slowest send (Telegram pauses 10 s after a 5xx).
    pub lease_secs: u64,
    /// How often deliveries that wait (rate limits, quiet hours, retries) are checked.
    pub poll_interval_ms: u64,
    /// Most sends in flight at once.
    pub max_in_flight: usize,
    /// Per-channel rate limits (Telegram: 1/s per chat, 20/min per group, 30/s overall).
    /// Off only for benchmarks against a stand-in.
    pub rate_limits: bool,
    /// Finished delivery records are deleted after this many days (dead letters: 3x).
    pub retention_days: u64,
    /// Channels quiet hours apply to (`console` is an operator's log, so not by default).
    pub quiet_hours_channels: Vec<String>,
    /// Per channel: what happens to a send that may or may not have arrived (a timeout
    /// after the request left, or a host that died mid-send): `dead-letter` (the default:
    /// a person decides, so nothing is sent twice) or `retry` (for receivers that
    /// deduplicate; the console's default, where a repeated line is harmless).
    pub on_ambiguous: BTreeMap<String, OnAmbiguous>,
    /// `[notify.retry]`
    pub retry: RetryConfig,
    /// `[notify.formatters]`: the notify-formatter plugin per channel. A channel the table
    /// leaves out keeps its default (so a config written before a channel existed stays valid).
    #[serde(deserialize_with = "formatters_over_defaults")]
    pub formatters: BTreeMap<String, String>,
    /// `[notify.telegram]`
    pub telegram: TelegramConfig,
    /// `[notify.email]`
    pub email: EmailConfig,
    /// `[notify.webhook]`
    pub webhook: WebhookConfig,
    /// `[notify.webpush]`
    pub webpush: WebPushConfig,
    /// `[notify.discord]`
    pub discord: DiscordConfig,
    /// `[notify.slack]`
    pub slack: SlackConfig,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            group: "notify".into(),
            consumer: String::new(),
            batch_size: 256,
            block_ms: 500,
            claim_idle_secs: 60,
            lease_secs: 120,
            poll_interval_ms: 50,
            max_in_flight: 256,
            rate_limits: true,
            retention_days: 30,
            quiet_hours_channels: [
                "telegram", "email", "webhook", "webpush", "discord", "slack",
            ]
            .map(String::from)
            .to_vec(),
            on_ambiguous: BTreeMap::from([("console".to_string(), OnAmbiguous::Retry)]),
            retry: RetryConfig::default(),
            formatters: default_formatters(),
            telegram: TelegramConfig::default(),
            email: EmailConfig::default(),
            webhook: WebhookConfig::default(),
            webpush: WebPushConfig::default(),
            discord: DiscordConfig::default(),
            slack: SlackConfig::default(),
        }
    }
}

/// The bundled formatter of every channel.
fn default_formatters() -> BTreeMap<String, String> {
    [
        ("telegram", "telegram-markdown"),
        ("email", "plain-formatter"),
        ("webhook", "plain-formatter"),
        ("console", "plain-formatter"),
        ("webpush", "webpush-payload"),
        ("discord", "discord-message"),
        ("slack", "slack-mrkdwn"),
    ]
    .into_iter()
    .map(|(c, f)| (c.to_string(), f.to_string()))
    .collect()
}

/// `[notify.formatters]` as given, over the defaults.
fn formatters_over_defaults<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let given = BTreeMap::<String, String>::deserialize(d)?;
    let mut all = default_formatters();
    all.extend(given);
    Ok(all)
}

/// What to do with a send whose fate is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnAmbiguous {
    DeadLetter,
    Retry,
}

/// `[notify.retry]`: exponential backoff with jitter for transient failures.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per delivery before it becomes a dead letter `exhausted` (429s with
    /// `retry_after` are not counted, up to 50 of them).
    pub max_attempts: u32,
    /// The first retry's delay; each further one doubles it.
    pub base_ms: u64,
    /// The longest delay.
    pub max_ms: u64,
    /// 0..1: a delay d becomes d * (1 - jitter * random), spreading a burst of failures.
    pub jitter: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 8,
            base_ms: 1000,
            max_ms: 300_000,
            jitter: 0.5,
        }
    }
}

/// `[notify.telegram]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    /// The Bot API base URL (a local stand-in in tests), without a trailing slash.
    pub api_url: String,
    /// The environment variable holding the bot token.
    pub token_env: String,
    /// One send's time limit.
    pub timeout_secs: u64,
    /// Messages per second to one private chat.
    pub per_chat_per_sec: f64,
    /// Messages per minute to one group or channel.
    pub per_group_per_min: f64,
    /// Messages per second overall.
    pub global_per_sec: f64,
    /// Answer bot commands (`/start`, `/watch`, ...) by long polling.
    pub commands: bool,
    /// Long-poll timeout of `getUpdates`.
    pub poll_timeout_secs: u64,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            api_url: "https://api.telegram.org".into(),
            token_env: "IMPRESSOX_TELEGRAM_TOKEN".into(),
            timeout_secs: 20,
            per_chat_per_sec: 1.0,
            per_group_per_min: 20.0,
            global_per_sec: 30.0,
            commands: true,
            poll_timeout_secs: 25,
        }
    }
}

/// TLS on the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (a local relay).
    None,
    /// STARTTLS, required.
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
}

/// `[notify.email]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// Empty = the channel is unconfigured.
    pub smtp_host: String,
    pub smtp_port: u16,
    pub tls: SmtpTls,
    /// Environment variables with the SMTP login (both empty: no authentication).
    pub username_env: String,
    pub password_env: String,
    /// The From address, e.g. `ImpressoX <alerts@example.com>`.
    pub from: String,
    pub timeout_secs: u64,
    /// Messages per second overall.
    pub global_per_sec: f64,
    /// Messages per minute to one address.
    pub per_address_per_min: f64,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            smtp_host: String::new(),
            smtp_port: 25,
            tls: SmtpTls::None,
            username_env: String::new(),
            password_env: String::new(),
            from: "ImpressoX <alerts@example.com>".into(),
            timeout_secs: 30,
            global_per_sec: 5.0,
            per_address_per_min: 30.0,
        }
    }
}

/// `[notify.webhook]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// The environment variable holding the HMAC-SHA256 signing secret.
    pub secret_env: String,
    pub timeout_secs: u64,
    /// Requests per second to one URL.
    pub per_url_per_sec: f64,
    /// Requests per second overall.
    pub global_per_sec: f64,
    /// Allow URLs that are or resolve to non-public addresses: loopback, private,
    /// link-local, CGNAT, NAT64/6to4 forms of those, ... (off: a user's webhook URL cannot
    /// make the host call into its own network). For tests and trusted internal receivers.
    pub allow_private_addresses: bool,
    /// An `http://` or `https://` proxy every webhook request goes through; empty: direct.
    /// Proxies from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`) are never
    /// used. The proxy resolves names itself, so it should refuse internal destinations too.
    pub proxy: String,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            secret_env: "IMPRESSOX_WEBHOOK_SECRET".into(),
            timeout_secs: 10,
            per_url_per_sec: 10.0,
            global_per_sec: 100.0,
            allow_private_addresses: false,
            proxy: String::new(),
        }
    }
}

/// `[notify.webpush]`: Web Push (RFC 8030) with payload encryption (RFC 8291) and VAPID
/// (RFC 8292).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebPushConfig {
    /// The environment variable holding the VAPID private key (base64url of the raw
    /// 32-byte P-256 key; `impressox webpush keygen` makes one).
    pub private_key_env: String,
    /// The VAPID `sub` claim: a `mailto:` or `https:` contact for the push services.
    pub subject: String,
    /// How long a push service keeps a message for a browser that is offline (`TTL`).
    pub ttl_secs: u64,
    pub timeout_secs: u64,
    /// Messages per second to one subscription.
    pub per_subscription_per_sec: f64,
    /// Messages per second overall.
    pub global_per_sec: f64,
    /// As for `[notify.webhook]`: allow endpoints on non-public addresses (tests only).
    pub allow_private_addresses: bool,
    /// An `http://` or `https://` proxy every push goes through; empty: direct.
    pub proxy: String,
}

impl Default for WebPushConfig {
    fn default() -> Self {
        WebPushConfig {
            private_key_env: "IMPRESSOX_VAPID_PRIVATE_KEY".into(),
            subject: "mailto:alerts@example.com".into(),
            ttl_secs: 86_400,
            timeout_secs: 10,
            per_subscription_per_sec: 1.0,
            global_per_sec: 1000.0,
            allow_private_addresses: false,
            proxy: String::new(),
        }
    }
}

/// `[notify.discord]`: Discord incoming webhooks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscordConfig {
    pub timeout_secs: u64,
    /// Messages per `window_secs` to one webhook (Discord: 5 per 2 s).
    pub per_webhook: f64,
    pub window_secs: f64,
    /// Messages per second overall (Discord's global limit is 50 per second).
    pub global_per_sec: f64,
    /// As for `[notify.webhook]`: allow webhook URLs on non-public addresses (tests only).
    pub allow_private_addresses: bool,
    /// An `http://` or `https://` proxy every request goes through; empty: direct.
    pub proxy: String,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        DiscordConfig {
            timeout_secs: 10,
            per_webhook: 5.0,
            window_secs: 2.0,
            global_per_sec: 45.0,
            allow_private_addresses: false,
            proxy: String::new(),
        }
    }
}

/// `[notify.slack]`: Slack incoming webhooks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    pub timeout_secs: u64,
    /// Messages per second to one webhook (Slack: 1 per second).
    pub per_webhook_per_sec: f64,
    /// Messages per second overall.
    pub global_per_sec: f64,
    /// As for `[notify.webhook]`: allow webhook URLs on non-public addresses (tests only).
    pub allow_private_addresses: bool,
    /// An `http://` or `https://` proxy every request goes through; empty: direct.
    pub proxy: String,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            timeout_secs: 10,
            per_webhook_per_sec: 1.0,
            global_per_sec: 50.0,
            allow_private_addresses: false,
            proxy: String::new(),
        }
    }
}

/// Longest timeout a channel's send may be given.
const MAX_SEND_TIMEOUT_SECS: u64 = 3600;

impl NotifyConfig {
    /// Checks the types cannot express, naming the key.
    pub fn validate(&self) -> Result<()> {
        if self.group.is_empty() {
            bail!("[notify] group: must not be empty");
        }
        if self.batch_size == 0 || self.max_in_flight == 0 {
            bail!("[notify] batch_size and max_in_flight must be at least 1");
        }
        for (key, secs) in [
            ("[notify.telegram] timeout_secs", self.telegram.timeout_secs),
            ("[notify.webhook] timeout_secs", self.webhook.timeout_secs),
            ("[notify.email] timeout_secs", self.email.timeout_secs),
            ("[notify.webpush] timeout_secs", self.webpush.timeout_secs),
            ("[notify.discord] timeout_secs", self.discord.timeout_secs),
            ("[notify.slack] timeout_secs", self.slack.timeout_secs),
        ] {
            // An hour is far past any real send; the bound also keeps the sums below exact.
            if !(1..=MAX_SEND_TIMEOUT_SECS).contains(&secs) {
                bail!("{key}: must be between 1 and {MAX_SEND_TIMEOUT_SECS} seconds, not {secs}");
            }
        }
        // teloxide pauses 10 s after a 5xx before it answers, inside one send.
        let slowest = (self.telegram.timeout_secs + 10)
            .max(self.webhook.timeout_secs)
            .max(self.email.timeout_secs)
            .max(self.webpush.timeout_secs)
            .max(self.discord.timeout_secs)
            .max(self.slack.timeout_secs);
        if self.lease_secs < 2 * slowest {
            bail!(
                "[notify] lease_secs ({}) must be at least twice the slowest send ({slowest} s: \
                 the longest channel timeout, Telegram's plus its 10 s pause after a 5xx)",
                self.lease_secs
            );
        }
        if !(0.0..=1.0).contains(&self.retry.jitter) {
            bail!("[notify.retry] jitter: must be between 0 and 1");
        }
        if self.retry.max_attempts == 0 || self.retry.base_ms == 0 {
            bail!("[notify.retry] max_attempts and base_ms must be at least 1");
        }
        for ch in self
            .quiet_hours_channels
            .iter()
            .chain(self.on_ambiguous.keys())
            .chain(self.formatters.keys())
        {
            if !CHANNELS.contains(&ch.as_str()) {
                bail!(
                    "[notify]: unknown channel `{ch}`; one of {}",
                    CHANNELS.join(", ")
                );
            }
        }
        for ch in CHANNELS {
            if !self.formatters.contains_key(*ch) {
                bail!("[notify.formatters] {ch}: a formatter plugin is needed for every channel");
            }
        }
        let t = &self.telegram;
        if !t.api_url.starts_with("http://") && !t.api_url.starts_with("https://") {
            bail!("[notify.telegram] api_url: must be an http(s) URL");
        }
        for (section, proxy) in [
            ("webhook", &self.webhook.proxy),
            ("webpush", &self.webpush.proxy),
            ("discord", &self.discord.proxy),
            ("slack", &self.slack.proxy),
        ] {
            if !proxy.is_empty()
                && !reqwest::Url::parse(proxy)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            {
                // The value is not shown: a proxy URL may carry credentials.
                bail!(
                    "[notify.{section}] proxy: not an http:// or https:// proxy URL with a host \
                     (empty for direct connections)"
                );
            }
        }
        let w = &self.webpush;
        if !(w.subject.starts_with("mailto:") || w.subject.starts_with("https://")) {
            bail!("[notify.webpush] subject: a mailto: or https: contact (RFC 8292)");
        }
        // Push services keep a message at most about four weeks.
        if w.ttl_secs > 2_419_200 {
            bail!("[notify.webpush] ttl_secs: at most 2419200 (28 days)");
        }
        for (key, v) in [
            ("telegram.per_chat_per_sec", t.per_chat_per_sec),
            ("telegram.per_group_per_min", t.per_group_per_min),
            ("telegram.global_per_sec", t.global_per_sec),
            ("email.global_per_sec", self.email.global_per_sec),
            ("email.per_address_per_min", self.email.per_address_per_min),
            ("webhook.per_url_per_sec", self.webhook.per_url_per_sec),
            ("webhook.global_per_sec", self.webhook.global_per_sec),
            (
                "webpush.per_subscription_per_sec",
                w.per_subscription_per_sec,
            ),
            ("webpush.global_per_sec", w.global_per_sec),
            ("discord.per_webhook", self.discord.per_webhook),
            ("discord.window_secs", self.discord.window_secs),
            ("discord.global_per_sec", self.discord.global_per_sec),
            ("slack.per_webhook_per_sec", self.slack.per_webhook_per_sec),
            ("slack.global_per_sec", self.slack.global_per_sec),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                bail!("[notify.{key}]: must be a positive number");
            }
        }
        Ok(())
    }

    /// What an unknown-fate send of `channel` turns into.
    pub fn on_ambiguous(&self, channel: &str) -> OnAmbiguous {
        self.on_ambiguous
            .get(channel)
            .copied()
            .unwrap_or(OnAmbiguous::DeadLetter)
    }

    /// The consumer name: configured, or the host name.
    pub fn consumer_name(&self) -> String {
        if !self.consumer.is_empty() {
            return self.consumer.clone();
        }
        crate::util::host_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        NotifyConfig::default().validate().unwrap();
    }

    #[test]
    fn a_formatters_table_keeps_the_defaults_it_leaves_out() {
        let c: NotifyConfig = toml::from_str(
            "[formatters]\ntelegram = \"t\"\nemail = \"p\"\nwebhook = \"p\"\nconsole = \"p\"\n",
        )
        .unwrap();
        assert_eq!(c.formatters["telegram"], "t");
        assert_eq!(c.formatters["webpush"], "webpush-payload");
        c.validate().unwrap();
    }

    #[test]
    fn unknown_channel_is_named() {
        let mut c = NotifyConfig::default();
        c.quiet_hours_channels.push("sms".into());
        assert!(c.validate().unwrap_err().to_string().contains("sms"));
    }

    /// Found by the config fuzz target's review: a huge Telegram timeout overflowed the
    /// lease check (a panic in debug builds, a wrapped sum that passed in release).
    #[test]
    fn a_send_timeout_out_of_range_is_named_not_overflowed() {
        let mut c = NotifyConfig::default();
        c.telegram.timeout_secs = u64::MAX;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("[notify.telegram] timeout_secs"), "{e}");
        c.telegram.timeout_secs = 20;
        c.email.timeout_secs = 0;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("[notify.email] timeout_secs"), "{e}");
    }
}
