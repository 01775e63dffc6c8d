//! The Telegram bot's commands by long polling (docs/design/notify.md §6.2): one
//! `getUpdates` loop across every host sharing the store, and what each command does.
//!
//! - **One poller.** Telegram answers a second concurrent `getUpdates` on a token with 409,
//!   so hosts take turns through the store lease `notify:telegram-poller` (30 s, renewed
//!   every 10 s, also while a long poll is waiting); a host without it sleeps and tries
//!   again, and takes over within seconds of a graceful stop (the lease is released) or
//!   30 s of a crash.
//! - **Each command once.** The next update offset is checkpointed after each update is
//!   handled and read whenever the lease is taken, so a restarted or failed-over poller
//!   starts after the last handled update. A crash between handling and checkpointing
//!   replays one update; the commands are written so that a replay is harmless (`/watch`
//!   names its rule after the update id, `/start` and `/mute off` are idempotent).
//! - **Not teloxide's Dispatcher**: it panics when `getMe` fails and calls
//!   `getWebhookInfo`/`deleteWebhook`; this loop keeps the lease, the checkpoint and the
//!   worker's shutdown in plain sight.
//! - **Same code path as the API.** Rules are created, listed and deleted through
//!   [`crate::market::rule_ops`] under the same `[market]` limits (a `/watch` past them
//!   gets a reply saying which limit and what to do), and preferences are changed by compare-and-set on their
//!   `_rev`, so a concurrent `PUT /preferences` is never overwritten.
//!
//! Replies are plain text sent straight to the chat (not through the delivery log: a
//! reply belongs to its command, and a lost one is answered by asking again), each taking
//! a slot of the chat's Telegram rate limit like any notification.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::Value;
use teloxide::prelude::*;
use teloxide::types::{AllowedUpdate, Update, UpdateKind};
use teloxide::{ApiError, RequestError};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Shared;
use super::channels::telegram::{make_bot, redact};
use super::commands::{self, Command, HELP, MuteFor, USAGE_WATCH, Watch};
use super::limiter::Limit;
use super::log::PREFERENCES;
use super::prefs::{Mute, Preferences, TelegramAddress};
use crate::documents::{Doc, Documents, Write, WriteOutcome};
use crate::market::MarketHandle;
use crate::market::rule_limits::RulePolicy;
use crate::market::rule_ops::{self, RuleOpError};
use crate::market::rules::{Condition, Mode, RuleRecord, RuleSpec};
use crate::util::{now_ms, rfc3339_ms};

/// The store lease only the polling host holds.
pub const LEASE: &str = "notify:telegram-poller";
/// The checkpoint holding the next update offset.
pub const OFFSET_CHECKPOINT: &str = "telegram:update-offset";
pub const LEASE_TTL_MS: u64 = 30_000;
/// A third of the lease, so two renewals may fail before it lapses.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How often a host without the lease tries to take it.
const STANDBY_RETRY: Duration = Duration::from_secs(5);
/// After a 409: someone outside our lease polls the token (another deployment, a stray
/// script); back off so the two do not keep cutting each other off.
const CONFLICT_PAUSE: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A reply whose rate-limit slot is further away than this is dropped (a chat flooding
/// the bot with commands), rather than queued for minutes.
const MAX_REPLY_WAIT_MS: i64 = 60_000;

/// Link codes: `_id` = code, `user_id`, `created_ms`, `expires_ms`.
pub const TELEGRAM_LINKS: &str = "telegram_links";
/// Linked chats: `_id` = chat id, `user_id`, `linked_ms`, `code` (the link code used).
pub const TELEGRAM_CHATS: &str = "telegram_chats";
/// How long a link code is valid.
pub const LINK_TTL_MS: i64 = 15 * 60_000;
/// `/alerts` lists at most this many rules (a Telegram message holds 4,096 characters).
const MAX_LISTED: usize = 20;
/// Compare-and-set attempts on a preferences document before giving up.
const PREFS_ATTEMPTS: usize = 16;

const UNLINKED: &str = "Send /start first";
const FAILED: &str = "Something went wrong on our side; please try again in a minute.";

/// A code that links a chat to an existing user (`POST .../telegram-link`).
#[derive(Debug, Clone, PartialEq)]
pub struct LinkCode {
    pub code: String,
    pub expires_ms: i64,
}

/// Store a new single-use link code for `user_id`, valid for [`LINK_TTL_MS`]. Expired
/// codes are purged on the way.
pub async fn create_link_code(docs: &dyn Documents, user_id: &str) -> Result<LinkCode> {
    let now = now_ms();
    docs.delete_where(
        TELEGRAM_LINKS,
        &crate::documents::Filter::all().lt("expires_ms", now),
    )
    .await?;
    // 80 random bits: a guess among live codes is hopeless within 15 minutes.
    for _ in 0..4 {
        let code = random_code()?;
        let mut doc = Doc::new();
        doc.insert("_id".into(), code.clone().into());
        doc.insert("user_id".into(), user_id.into());
        doc.insert("created_ms".into(), now.into());
        doc.insert("expires_ms".into(), (now + LINK_TTL_MS).into());
        if crate::documents::insert_one(docs, TELEGRAM_LINKS, doc).await? {
            return Ok(LinkCode {
                code,
                expires_ms: now + LINK_TTL_MS,
            });
        }
    }
    bail!("could not store a unique link code")
}

/// 16 characters of RFC 4648 base32 from the operating system's CSPRNG (the code is a
/// credential: whoever presents it gets the user's alerts in their chat).
fn random_code() -> Result<String> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bytes = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system's random number generator failed"))?;
    // 256 is a multiple of 32, so `b % 32` is uniform.
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect())
}

/// Why serving as the poller ended.
enum Served {
    Shutdown,
    LeaseLost,
    Failed(anyhow::Error),
}

/// The command bot of one notify worker.
pub struct CommandBot {
    shared: Arc<Shared>,
    market: Option<MarketHandle>,
    /// `[market]`'s limits on new rules, as the API applies them.
    rules: RulePolicy,
    /// Long polls: its client waits longer than `poll_timeout_secs`.
    poll: Bot,
    /// Replies, with the channel's send timeout.
    send: Bot,
    token: String,
}

impl CommandBot {
    pub fn new(
        shared: Arc<Shared>,
        market: Option<MarketHandle>,
        rules: RulePolicy,
        token: String,
    ) -> Result<CommandBot> {
        let cfg = &shared.cfg.telegram;
        // teloxide's own rule: the client's timeout must exceed the long poll's, or every
        // quiet poll ends as a network error.
        let poll = make_bot(cfg, &token, Duration::from_secs(cfg.poll_timeout_secs + 10))?;
        let send = make_bot(cfg, &token, Duration::from_secs(cfg.timeout_secs))?;
        Ok(CommandBot {
            shared,
            market,
            rules,
            poll,
            send,
            token,
        })
    }

    fn redact(&self, text: &str) -> String {
        redact(text, Some(&self.token))
    }

    /// Poll while holding the lease, stand by while another host does, until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut replies = JoinSet::new();
        let mut backoff = BACKOFF_MIN;
        let owner = self.shared.owner.clone();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let wait = match self
                .shared
                .store
                .acquire_lease(LEASE, &owner, LEASE_TTL_MS)
                .await
            {
                Ok(true) => {
                    tracing::info!(%owner, "notify: telegram commands: polling for updates");
                    match self.serve(&mut shutdown, &mut replies).await {
                        Served::Shutdown => break,
                        Served::LeaseLost => {
                            tracing::warn!(
                                "notify: telegram commands: lost the poller lease; standing by"
                            );
                            backoff = BACKOFF_MIN;
                            STANDBY_RETRY
                        }
                        Served::Failed(e) => {
                            tracing::warn!(
                                error = %self.redact(&format!("{e:#}")),
                                "notify: telegram commands: the store failed; retrying"
                            );
                            next_backoff(&mut backoff)
                        }
                    }
                }
                Ok(false) => {
                    backoff = BACKOFF_MIN;
                    STANDBY_RETRY
                }
                Err(e) => {
                    tracing::warn!(
                        error = %self.redact(&format!("{e:#}")),
                        "notify: telegram commands: cannot take the poller lease; retrying"
                    );
                    next_backoff(&mut backoff)
                }
            };
            if crate::util::stopped_during(&mut shutdown, wait).await {
                break;
            }
        }
        if let Err(e) = self.shared.store.release_lease(LEASE, &owner).await {
            tracing::warn!(error = %format!("{e:#}"), "notify: telegram commands: releasing the poller lease failed; it lapses in 30 s");
        }
        // Replies already due go out; a flood's far-off ones are dropped.
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while replies.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            replies.abort_all();
        }
        tracing::info!("notify: telegram commands: stopped");
    }

    /// Hold the lease and poll until shutdown, the lease is lost or the store fails.
    async fn serve(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        replies: &mut JoinSet<()>,
    ) -> Served {
        let store = &self.shared.store;
        // Read on every takeover: another host may have moved it on meanwhile.
        let mut offset: i32 = match store.get_checkpoint(OFFSET_CHECKPOINT).await {
            Ok(v) => v.and_then(|s| s.parse().ok()).unwrap_or(0),
            Err(e) => return Served::Failed(e),
        };
        let mut renewed = Instant::now();
        let mut backoff = BACKOFF_MIN;
        let timeout = u32::try_from(self.shared.cfg.telegram.poll_timeout_secs).unwrap_or(50);
        loop {
            while replies.try_join_next().is_some() {}
            if *shutdown.borrow() {
                return Served::Shutdown;
            }
            let poll = self
                .poll
                .get_updates()
                .offset(offset)
                .timeout(timeout)
                .limit(100)
                .allowed_updates([AllowedUpdate::Message])
                .send();
            let result = match self.holding(poll, shutdown, &mut renewed).await {
                Ok(r) => r,
                Err(end) => return end,
            };
            let updates = match result {
                Ok(updates) => {
                    backoff = BACKOFF_MIN;
                    updates
                }
                Err(RequestError::Api(ApiError::TerminatedByOtherGetUpdates)) => {
                    tracing::warn!(
                        "notify: telegram commands: another process is polling this bot token \
                         (409 from getUpdates); pausing 5 s"
                    );
                    let pause = tokio::time::sleep(CONFLICT_PAUSE);
                    if let Err(end) = self.holding(pause, shutdown, &mut renewed).await {
                        return end;
                    }
                    continue;
                }
                Err(e) => {
                    let wait = next_backoff(&mut backoff);
                    tracing::warn!(
                        error = %self.redact(&e.to_string()),
                        retry_in_secs = wait.as_secs(),
                        "notify: telegram commands: getUpdates failed"
                    );
                    let pause = tokio::time::sleep(wait);
                    if let Err(end) = self.holding(pause, shutdown, &mut renewed).await {
                        return end;
                    }
                    continue;
                }
            };
            for u in &updates {
                // Updates not handled yet stay unconfirmed: the next poller gets them.
                if *shutdown.borrow() {
                    return Served::Shutdown;
                }
                if renewed.elapsed() >= RENEW_EVERY {
                    match self.renew().await {
                        Ok(true) => renewed = Instant::now(),
                        Ok(false) => return Served::LeaseLost,
                        Err(e) => return Served::Failed(e),
                    }
                }
                self.handle_update(u, replies).await;
                offset = i32::try_from(u.id.0).map_or(i32::MAX, |id| id.saturating_add(1));
                if let Err(e) = store
                    .put_checkpoint(OFFSET_CHECKPOINT, &offset.to_string())
                    .await
                {
                    // The next getUpdates confirms the offset to Telegram anyway; only a
                    // crash before it could replay this update.
                    tracing::warn!(error = %format!("{e:#}"), update_id = u.id.0, "notify: telegram commands: checkpointing the update offset failed");
                }
            }
        }
    }

    /// Run `fut` while keeping the lease renewed; ends early on shutdown or a lost lease.
    async fn holding<F: Future>(
        &self,
        fut: F,
        shutdown: &mut watch::Receiver<bool>,
        renewed: &mut Instant,
    ) -> Result<F::Output, Served> {
        tokio::pin!(fut);
        loop {
            let renew_at = tokio::time::Instant::from_std(*renewed + RENEW_EVERY);
            tokio::select! {
                out = &mut fut => return Ok(out),
                _ = tokio::time::sleep_until(renew_at) => match self.renew().await {
                    Ok(true) => *renewed = Instant::now(),
                    Ok(false) => return Err(Served::LeaseLost),
                    Err(e) => return Err(Served::Failed(e)),
                },
                // Dropping `fut` cancels a waiting long poll, so a stop is prompt.
                _ = shutdown.changed() => return Err(Served::Shutdown),
            }
        }
    }

    async fn renew(&self) -> Result<bool> {
        self.shared
            .store
            .acquire_lease(LEASE, &self.shared.owner, LEASE_TTL_MS)
            .await
    }

    /// Handle one update and queue its reply.
    async fn handle_update(&self, u: &Update, replies: &mut JoinSet<()>) {
        let UpdateKind::Message(m) = &u.kind else {
            return;
        };
        let Some(text) = m.text() else {
            return;
        };
        if m.from.as_ref().is_some_and(|f| f.is_bot) {
            return;
        }
        // In a group the bot may see conversation that is not meant for it.
        if !m.chat.is_private() && !text.trim_start().starts_with('/') {
            return;
        }
        let chat = m.chat.id.0;
        let reply = match self.handle(u.id.0, chat, text).await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::warn!(
                    error = %self.redact(&format!("{e:#}")),
                    chat,
                    update_id = u.id.0,
                    "notify: telegram commands: a command failed"
                );
                FAILED.to_string()
            }
        };
        self.reply(chat, reply, replies);
    }

    /// What to answer `text` from `chat`.
    pub async fn handle(&self, update_id: u32, chat: i64, text: &str) -> Result<String> {
        let cmd = match commands::parse(text) {
            Ok(cmd) => cmd,
            Err(usage) => return Ok(usage.to_string()),
        };
        let user = match &cmd {
            Command::Help => return Ok(HELP.to_string()),
            Command::Start { code } => return self.start(chat, code.as_deref()).await,
            _ => match self.chat_user(chat).await? {
                Some(user) => user,
                None => return Ok(UNLINKED.to_string()),
            },
        };
        match cmd {
            Command::Watch(w) => self.watch(update_id, &user, w).await,
            Command::Alerts => self.alerts(&user).await,
            Command::Unwatch { id } => self.unwatch(&user, &id).await,
            Command::Mute(m) => self.mute(&user, m).await,
            Command::Help | Command::Start { .. } => Ok(HELP.to_string()),
        }
    }

    fn docs(&self) -> &dyn Documents {
        self.shared.log.docs.as_ref()
    }

    /// The user a chat is linked to.
    async fn chat_user(&self, chat: i64) -> Result<Option<String>> {
        Ok(self
            .docs()
            .get(TELEGRAM_CHATS, &chat.to_string())
            .await?
            .and_then(|d| d.get("user_id").and_then(Value::as_str).map(str::to_string)))
    }

    async fn start(&self, chat: i64, code: Option<&str>) -> Result<String> {
        let Some(code) = code else {
            // A chat linked already (perhaps by code to another user) stays linked: a bare
            // /start must not move it to `tg-<chat>` behind the user's back.
            if let Some(user) = self.chat_user(chat).await? {
                return Ok(linked(&user));
            }
            let user = format!("tg-{chat}");
            self.link(chat, &user, None).await?;
            return Ok(linked(&user));
        };
        let unknown = "That link code is unknown or has expired; ask for a new one.";
        let docs = self.docs();
        let Some(link) = docs.get(TELEGRAM_LINKS, code).await? else {
            // A replayed update: this chat used the code already.
            let chat_doc = docs.get(TELEGRAM_CHATS, &chat.to_string()).await?;
            if let Some(d) = chat_doc
                && d.get("code").and_then(Value::as_str) == Some(code)
                && let Some(user) = d.get("user_id").and_then(Value::as_str)
            {
                return Ok(linked(user));
            }
            return Ok(unknown.into());
        };
        let user = link.get("user_id").and_then(Value::as_str).unwrap_or("");
        let fresh = link
            .get("expires_ms")
            .and_then(Value::as_i64)
            .is_some_and(|t| t > now_ms());
        // Deleting first makes the code single-use even if two chats present it at once.
        let out = docs
            .write(vec![Write::Delete {
                coll: TELEGRAM_LINKS.into(),
                id: code.into(),
            }])
            .await?;
        if !fresh || user.is_empty() || out.first() != Some(&WriteOutcome::Deleted) {
            return Ok(unknown.into());
        }
        self.link(chat, user, Some(code)).await?;
        Ok(linked(user))
    }

    /// Record the chat's user and make the chat that user's Telegram address.
    async fn link(&self, chat: i64, user: &str, code: Option<&str>) -> Result<()> {
        let mut doc = Doc::new();
        doc.insert("_id".into(), chat.to_string().into());
        doc.insert("user_id".into(), user.into());
        doc.insert("linked_ms".into(), now_ms().into());
        if let Some(code) = code {
            doc.insert("code".into(), code.into());
        }
        crate::documents::upsert(self.docs(), TELEGRAM_CHATS, doc).await?;
        self.update_preferences(user, |p| {
            p.channels.telegram = Some(TelegramAddress {
                chat_id: chat.to_string(),
            });
            if !p.enabled.iter().any(|c| c == "telegram") {
                p.enabled.push("telegram".into());
            }
        })
        .await?;
        tracing::info!(chat, user, "notify: telegram commands: chat linked");
        Ok(())
    }

    /// Change a user's preferences by compare-and-set on `_rev` (insert when missing),
    /// retried on a conflict, so a concurrent `PUT` is never overwritten.
    async fn update_preferences(
        &self,
        user: &str,
        change: impl Fn(&mut Preferences),
    ) -> Result<Preferences> {
        for _ in 0..PREFS_ATTEMPTS {
            let now = now_ms();
            let (mut prefs, rev) = match self.shared.log.preferences(user).await? {
                Some((p, rev)) => (p, Some(rev)),
                None => (Preferences::default(), None),
            };
            change(&mut prefs);
            let doc = prefs.to_doc(user, now);
            let coll = PREFERENCES.to_string();
            let write = match rev {
                Some(rev) => Write::ReplaceIf { coll, doc, rev },
                None => Write::Insert { coll, doc },
            };
            let out = self.docs().write(vec![write]).await?;
            if matches!(
                out.first(),
                Some(WriteOutcome::Inserted | WriteOutcome::Replaced { .. })
            ) {
                self.shared.forget_preferences(user);
                return Ok(prefs);
            }
        }
        bail!("the preferences of {user} kept changing; gave up after {PREFS_ATTEMPTS} attempts")
    }

    async fn watch(&self, update_id: u32, user: &str, w: Watch) -> Result<String> {
        let store = self.shared.store.as_ref();
        let market = self.market.as_ref();
        let mut spec = RuleSpec {
            // Named after the update, so a replayed update finds its rule instead of
            // creating a second one.
            id: Some(format!("tg-{update_id}")),
            user_id: user.to_string(),
            symbol: w.symbol,
            condition: Condition {
                op: w.op,
                value: w.value,
                direction: None,
                window_secs: None,
            },
            trigger: w.trigger,
            expires_at: None,
            channels: Some(vec!["telegram".into()]),
            processor: None,
            note: None,
        };
        let policy = &self.rules;
        match rule_ops::create_rule(store, market, policy, spec.clone()).await {
            Ok(rule) => Ok(watching(&rule)),
            Err(RuleOpError::Exists(id)) => {
                let existing = rule_ops::load_rule(store, &id).await?;
                let same = existing.user_id == spec.user_id
                    && existing.symbol == spec.symbol
                    && existing.condition == spec.condition
                    && existing.trigger == spec.trigger;
                if same {
                    return Ok(watching(&existing));
                }
                // Not a replay: update ids restart with a new bot token.
                spec.id = Some(format!("tg-{update_id}-{:08x}", fastrand::u32(..)));
                match rule_ops::create_rule(store, market, policy, spec).await {
                    Ok(rule) => Ok(watching(&rule)),
                    Err(e) => refusal(e),
                }
            }
            Err(e) => refusal(e),
        }
    }

    async fn alerts(&self, user: &str) -> Result<String> {
        let rules = rule_ops::list_rules(self.shared.store.as_ref(), Some(user), None).await?;
        if rules.is_empty() {
            return Ok("You have no alerts. Create one with /watch BTCUSDT above 70000".into());
        }
        let now = now_ms();
        let mut lines = vec![format!("Your alerts ({}):", rules.len())];
        for r in rules.iter().take(MAX_LISTED) {
            let state = rule_ops::state_of(&self.shared.runtime, self.market.as_ref(), r, now);
            let state = serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            lines.push(format!("{}: {} ({}), {state}", r.id, r.title(), mode(r)));
        }
        if rules.len() > MAX_LISTED {
            lines.push(format!(
                "... and {} more (the admin API lists them all)",
                rules.len() - MAX_LISTED
            ));
        }
        lines.push("/unwatch <id> deletes one.".into());
        Ok(lines.join("\n"))
    }

    async fn unwatch(&self, user: &str, id: &str) -> Result<String> {
        match rule_ops::delete_rule(
            self.shared.store.as_ref(),
            self.market.as_ref(),
            id,
            Some(user),
        )
        .await
        {
            Ok(rule) => Ok(format!("Deleted {id}: {}.", rule.title())),
            Err(RuleOpError::NotFound(_)) => Ok(format!(
                "You have no alert with id {id}; /alerts lists yours."
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn mute(&self, user: &str, m: MuteFor) -> Result<String> {
        let now = now_ms();
        match m {
            MuteFor::Ms(ms) => {
                let until = rfc3339_ms(now + ms);
                self.update_preferences(user, |p| {
                    p.mutes.retain(|m| {
                        crate::util::parse_rfc3339_ms(&m.until).is_some_and(|t| t > now)
                    });
                    p.mutes.push(Mute {
                        until: until.clone(),
                        kinds: Vec::new(),
                    });
                })
                .await?;
                Ok(format!(
                    "Muted until {until} (UTC). /mute off resumes notifications."
                ))
            }
            MuteFor::Off => {
                self.update_preferences(user, |p| p.mutes.clear()).await?;
                Ok("Mutes cleared; notifications resume.".into())
            }
        }
    }

    /// Send `text` to `chat` in the background, in the chat's next rate-limit slot.
    fn reply(&self, chat: i64, text: String, replies: &mut JoinSet<()>) {
        let target = chat.to_string();
        let limits: Vec<Limit> = self
            .shared
            .channels
            .get("telegram")
            .map(|c| c.limits(&target))
            .unwrap_or_default();
        let now = now_ms();
        let slot = self.shared.limiter.lock().reserve(&limits, 1, now)[0];
        if slot - now > MAX_REPLY_WAIT_MS {
            tracing::warn!(
                chat,
                "notify: telegram commands: reply dropped: the chat's rate limit is booked for over a minute"
            );
            return;
        }
        let bot = self.send.clone();
        let token = self.token.clone();
        let shared = self.shared.clone();
        replies.spawn(async move {
            tokio::time::sleep(Duration::from_millis((slot - now).max(0) as u64)).await;
            for attempt in 0..2 {
                match bot.send_message(ChatId(chat), text.clone()).await {
                    Ok(_) => return,
                    // Honour Telegram's wait once, and hold the chat's key for it.
                    Err(RequestError::RetryAfter(s)) if attempt == 0 => {
                        let wait = Duration::from_secs(u64::from(s.seconds()));
                        let until = now_ms() + wait.as_millis() as i64;
                        {
                            let mut limiter = shared.limiter.lock();
                            for l in limits.iter().filter(|l| !l.shared) {
                                limiter.penalize(&l.key, until);
                            }
                        }
                        tokio::time::sleep(wait).await;
                    }
                    Err(e) => {
                        tracing::warn!(
                            chat,
                            error = %redact(&e.to_string(), Some(&token)),
                            "notify: telegram commands: reply not sent"
                        );
                        return;
                    }
                }
            }
        });
    }
}

/// The reply to a `/watch` that created nothing: what is wrong and what to do, or an
/// error for the generic "went wrong" reply (logged).
fn refusal(e: RuleOpError) -> Result<String> {
    match e {
        RuleOpError::Invalid(e) => Ok(format!("Cannot watch that: {e}\n{USAGE_WATCH}")),
        RuleOpError::UserLimit { limit, .. } => Ok(format!(
            "You have {limit} alerts, the most one user may have. Delete one with /unwatch <id> \
             first (/alerts lists them)."
        )),
        RuleOpError::TotalLimit { .. } => Ok(
            "No alert can be created right now: the service holds as many as it allows. \
             Please try again later."
                .into(),
        ),
        RuleOpError::Symbol(r) => {
            let mut reply = format!("Cannot watch {}: {}.", r.symbol, r.why);
            if !r.accepted.is_empty() {
                reply.push_str(&format!(" You can watch {}.", r.accepted.join(", ")));
            }
            Ok(reply)
        }
        e => Err(e.into()),
    }
}

fn linked(user: &str) -> String {
    format!(
        "This chat is linked to user {user}: alerts arrive here.\n\
         Try /watch BTCUSDT above 70000, then /alerts. /help lists every command."
    )
}

fn mode(r: &RuleRecord) -> String {
    match r.trigger.mode {
        Mode::Once => "once".into(),
        Mode::Every => "every time".into(),
        Mode::Cooldown => format!("at most every {}s", r.trigger.cooldown_secs.unwrap_or(0)),
    }
}

fn watching(r: &RuleRecord) -> String {
    format!(
        "Watching {} ({}). Id: {}; /unwatch {} stops it.",
        r.title(),
        mode(r),
        r.id,
        r.id
    )
}

/// The current backoff, doubling the next one up to the cap.
fn next_backoff(backoff: &mut Duration) -> Duration {
    let now = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_codes_are_16_base32_characters() {
        let a = random_code().unwrap();
        let b = random_code().unwrap();
        assert_eq!(a.len(), 16);
        assert!(commands::valid_code(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let mut b = BACKOFF_MIN;
        let waits: Vec<u64> = (0..7).map(|_| next_backoff(&mut b).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
    }
}
