//! The Telegram channel through teloxide's Bot API client, against `api_url` (Telegram,
//! or a local stand-in in tests).
//!
//! Rate limits (Telegram's published ones): 1 message a second to a private chat, 20 a
//! minute to a group or channel, 30 a second overall. A 429 carries `retry_after`, which
//! is honoured exactly. Errors are sorted by what Telegram said: "Bad Request",
//! "Forbidden", "Unauthorized" and "Not Found" are permanent (a blocked bot, a wrong chat,
//! a bad token: no retry fixes them); server errors and connection failures are retried;
//! a timeout after the request left is of unknown fate.
//!
//! teloxide puts the token into request URLs, and reqwest's error text includes the URL,
//! so every error text is redacted before it is logged or stored.

use std::time::Duration;

use async_trait::async_trait;
use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::{ParseMode as TgParseMode, Recipient};

use super::{Channel, Secrets};
use crate::notify::config::TelegramConfig;
use crate::notify::limiter::Limit;
use crate::notify::record::{Delivery, ParseMode, Part, SendOutcome};

pub struct Telegram {
    bot: Option<Bot>,
    token: Option<String>,
    cfg: TelegramConfig,
}

impl Telegram {
    pub fn new(cfg: &TelegramConfig, secrets: &Secrets) -> anyhow::Result<Telegram> {
        let token = secrets.get(&cfg.token_env);
        let bot = match &token {
            Some(token) => Some(make_bot(cfg, token, Duration::from_secs(cfg.timeout_secs))?),
            None => None,
        };
        Ok(Telegram {
            bot,
            token,
            cfg: cfg.clone(),
        })
    }

    /// The bot the channel sends with (the command poller sends its replies with it).
    pub fn bot(&self) -> Option<&Bot> {
        self.bot.as_ref()
    }

    /// Replace the token in an error text.
    pub fn redact(&self, text: &str) -> String {
        redact(text, self.token.as_deref())
    }
}

/// A bot on `api_url` whose HTTP client gives up after `timeout`.
pub fn make_bot(cfg: &TelegramConfig, token: &str, timeout: Duration) -> anyhow::Result<Bot> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(timeout)
        .tcp_nodelay(true)
        // Keep every connection the senders opened (up to `max_in_flight` at once): a
        // smaller idle pool closes and reopens connections under load.
        .pool_max_idle_per_host(usize::MAX)
        .build()?;
    // A trailing slash would make teloxide request `//bot<token>/...`.
    let url = reqwest::Url::parse(cfg.api_url.trim_end_matches('/'))
        .map_err(|e| anyhow::anyhow!("[notify.telegram] api_url: {e}"))?;
    Ok(Bot::with_client(token, client).set_api_url(url))
}

/// `text` with every occurrence of the token replaced by `***`.
pub fn redact(text: &str, token: Option<&str>) -> String {
    match token {
        Some(t) if !t.is_empty() => text.replace(t, "***"),
        _ => text.to_string(),
    }
}

/// The recipient for a stored target: a numeric chat id or a channel's `@name`.
pub fn recipient(target: &str) -> Option<Recipient> {
    if target.starts_with('@') {
        return Some(Recipient::ChannelUsername(target.to_string()));
    }
    target
        .parse::<i64>()
        .ok()
        .map(|id| Recipient::Id(ChatId(id)))
}

/// Sort a teloxide error into what the record does next.
pub fn classify(err: &RequestError) -> SendOutcome {
    let text = err.to_string();
    match err {
        RequestError::RetryAfter(s) => SendOutcome::RateLimited {
            retry_after_secs: u64::from(s.seconds()),
            error: text,
        },
        RequestError::MigrateToChatId(id) => SendOutcome::Permanent(format!(
            "the group became a supergroup with chat id {id}; update the user's chat_id"
        )),
        RequestError::Api(teloxide::ApiError::Unknown(desc)) => {
            let client_side = ["Bad Request", "Forbidden", "Unauthorized", "Not Found"]
                .iter()
                .any(|p| desc.starts_with(p));
            if client_side {
                SendOutcome::Permanent(desc.clone())
            } else {
                SendOutcome::Transient(desc.clone())
            }
        }
        // Every error teloxide knows by name is the client's fault (a blocked bot, a
        // missing chat, a bad token, bad markup): retrying sends the same thing again.
        // (The description alone, as Telegram wrote it.)
        RequestError::Api(e) => SendOutcome::Permanent(e.to_string()),
        RequestError::Network(e) if e.is_connect() => SendOutcome::Transient(text),
        // The request may have been written: a timeout, a dropped response, a body that
        // is not the Bot API's JSON.
        RequestError::Network(_) | RequestError::InvalidJson { .. } | RequestError::Io(_) => {
            SendOutcome::Ambiguous(text)
        }
    }
}

fn redact_outcome(o: SendOutcome, token: Option<&str>) -> SendOutcome {
    match o {
        SendOutcome::Sent => SendOutcome::Sent,
        SendOutcome::RateLimited {
            retry_after_secs,
            error,
        } => SendOutcome::RateLimited {
            retry_after_secs,
            error: redact(&error, token),
        },
        SendOutcome::Transient(e) => SendOutcome::Transient(redact(&e, token)),
        SendOutcome::Permanent(e) => SendOutcome::Permanent(redact(&e, token)),
        SendOutcome::Ambiguous(e) => SendOutcome::Ambiguous(redact(&e, token)),
        SendOutcome::Gone(e) => SendOutcome::Gone(redact(&e, token)),
    }
}

#[async_trait]
impl Channel for Telegram {
    fn name(&self) -> &'static str {
        "telegram"
    }

    fn unconfigured(&self) -> Option<String> {
        self.bot.is_none().then(|| {
            format!(
                "no bot token: set the environment variable {} ([notify.telegram] token_env)",
                self.cfg.token_env
            )
        })
    }

    fn limits(&self, target: &str) -> Vec<Limit> {
        let mut v = vec![Limit::shared(
            "tg:all".into(),
            self.cfg.global_per_sec,
            1000.0,
        )];
        let private = target.parse::<i64>().is_ok_and(|id| ChatId(id).is_user());
        if private {
            v.push(Limit::recipient(
                format!("tg:chat:{target}"),
                self.cfg.per_chat_per_sec,
                1000.0,
            ));
        } else {
            v.push(Limit::recipient(
                format!("tg:group:{target}"),
                self.cfg.per_group_per_min,
                60_000.0,
            ));
        }
        v
    }

    async fn send(&self, d: &Delivery, part: &Part, _index: usize) -> SendOutcome {
        let Some(bot) = &self.bot else {
            return SendOutcome::Permanent(self.unconfigured().unwrap_or_default());
        };
        let Some(to) = recipient(&d.target) else {
            return SendOutcome::Permanent(format!("not a Telegram chat id: {:?}", d.target));
        };
        let mut req = bot.send_message(to, part.text.clone());
        match part.parse_mode {
            ParseMode::MarkdownV2 => req = req.parse_mode(TgParseMode::MarkdownV2),
            ParseMode::Html => req = req.parse_mode(TgParseMode::Html),
            ParseMode::Plain => {}
        }
        match req.await {
            Ok(_) => SendOutcome::Sent,
            Err(e) => redact_outcome(classify(&e), self.token.as_deref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teloxide::ApiError;
    use teloxide::types::Seconds;

    #[test]
    fn classify_errors() {
        assert_eq!(
            classify(&RequestError::RetryAfter(Seconds::from_seconds(2))),
            SendOutcome::RateLimited {
                retry_after_secs: 2,
                error: RequestError::RetryAfter(Seconds::from_seconds(2)).to_string()
            }
        );
        assert!(matches!(
            classify(&RequestError::Api(ApiError::BotBlocked)),
            SendOutcome::Permanent(_)
        ));
        assert!(matches!(
            classify(&RequestError::Api(ApiError::ChatNotFound)),
            SendOutcome::Permanent(_)
        ));
        assert!(matches!(
            classify(&RequestError::Api(ApiError::Unknown(
                "Internal Server Error".into()
            ))),
            SendOutcome::Transient(_)
        ));
        assert!(matches!(
            classify(&RequestError::Api(ApiError::Unknown(
                "Bad Request: something new".into()
            ))),
            SendOutcome::Permanent(_)
        ));
    }

    #[test]
    fn redact_removes_the_token() {
        let t = "123:ABC-secret";
        let text = format!("error sending request for url (http://x/bot{t}/SendMessage)");
        let r = redact(&text, Some(t));
        assert!(!r.contains("ABC-secret"), "{r}");
        assert!(r.contains("bot***"));
    }

    #[test]
    fn targets_become_recipients() {
        assert!(matches!(recipient("123"), Some(Recipient::Id(ChatId(123)))));
        assert!(matches!(
            recipient("@news"),
            Some(Recipient::ChannelUsername(_))
        ));
        assert!(recipient("abc").is_none());
    }
}
