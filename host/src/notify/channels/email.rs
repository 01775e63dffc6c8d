//! The email channel: lettre over SMTP, one message per rendered part with a plain-text
//! and an HTML alternative, and a `Message-ID` derived from the delivery id, so a message
//! sent again after a replay is recognisably the same one.
//!
//! SMTP answers sort cleanly: a 5xx reply is permanent (no such mailbox), a 4xx reply is
//! transient (greylisting, a full queue), a refused connection is transient (nothing was
//! sent); anything else after the conversation started (a timeout, a dropped connection)
//! is of unknown fate.
//!
//! Two lettre facts shape the send (seen against aiosmtpd): its `timeout` bounds only
//! the TCP connect under tokio, so the whole send is wrapped in our own timeout; and a
//! send cancelled mid-transaction returns its connection to the pool in a state where the
//! next message fails ("503 nested MAIL command"), so after a timeout the transport and
//! its pool are rebuilt.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Channel, Secrets};
use crate::notify::config::{EmailConfig, SmtpTls};
use crate::notify::limiter::Limit;
use crate::notify::record::{Delivery, Part, SendOutcome};

type Transport = AsyncSmtpTransport<Tokio1Executor>;

pub struct Email {
    /// The transport (sharing one connection pool); replaced after a timed-out send.
    mailer: Option<parking_lot::Mutex<Transport>>,
    credentials: Option<(String, String)>,
    from: Option<Mailbox>,
    why_not: Option<String>,
    cfg: EmailConfig,
}

impl Email {
    pub fn new(cfg: &EmailConfig, secrets: &Secrets) -> anyhow::Result<Email> {
        let mut email = Email {
            mailer: None,
            credentials: None,
            from: None,
            why_not: None,
            cfg: cfg.clone(),
        };
        if cfg.smtp_host.is_empty() {
            email.why_not = Some("no SMTP server: set [notify.email] smtp_host".into());
            return Ok(email);
        }
        let from = Mailbox::from_str(&cfg.from)
            .map_err(|e| anyhow::anyhow!("[notify.email] from: {e}"))?;
        match (
            secrets.get(&cfg.username_env),
            secrets.get(&cfg.password_env),
        ) {
            (Some(user), Some(pass)) => email.credentials = Some((user, pass)),
            (None, None) => {}
            _ => {
                email.why_not = Some(format!(
                    "SMTP login incomplete: set both {} and {} ([notify.email] username_env/password_env)",
                    cfg.username_env, cfg.password_env
                ));
                return Ok(email);
            }
        }
        let transport = email.transport()?;
        email.mailer = Some(parking_lot::Mutex::new(transport));
        email.from = Some(from);
        Ok(email)
    }
}

impl Email {
    /// A new transport with its own connection pool.
    fn transport(&self) -> anyhow::Result<Transport> {
        let cfg = &self.cfg;
        let mut builder = match cfg.tls {
            SmtpTls::None => Transport::builder_dangerous(&cfg.smtp_host),
            SmtpTls::Starttls => Transport::starttls_relay(&cfg.smtp_host)?,
            SmtpTls::Tls => Transport::relay(&cfg.smtp_host)?,
        }
        .port(cfg.smtp_port)
        .timeout(Some(Duration::from_secs(cfg.timeout_secs)))
        .pool_config(PoolConfig::new().max_size(8));
        if let Some((user, pass)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        Ok(builder.build())
    }
}

/// The part's HTML, or its text escaped inside `<pre>`.
fn html_of(part: &Part) -> String {
    part.html.clone().unwrap_or_else(|| {
        let escaped = part
            .text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        format!("<pre>{escaped}</pre>")
    })
}

fn subject_of(d: &Delivery, part: &Part) -> String {
    part.subject.clone().unwrap_or_else(|| {
        serde_json::from_str::<serde_json::Value>(&d.request_json)
            .ok()
            .and_then(|v| v["title"].as_str().map(str::to_string))
            .unwrap_or_else(|| d.kind.clone())
    })
}

/// Was the connection refused (nothing sent)?
fn connection_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cur = e.source();
    }
    false
}

#[async_trait]
impl Channel for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    fn unconfigured(&self) -> Option<String> {
        self.why_not.clone()
    }

    fn limits(&self, target: &str) -> Vec<Limit> {
        vec![
            Limit::shared("mail:all".into(), self.cfg.global_per_sec, 1000.0),
            Limit::recipient(
                format!("mail:{target}"),
                self.cfg.per_address_per_min,
                60_000.0,
            ),
        ]
    }

    async fn send(&self, d: &Delivery, part: &Part, index: usize) -> SendOutcome {
        let (Some(slot), Some(from)) = (&self.mailer, &self.from) else {
            return SendOutcome::Permanent(self.why_not.clone().unwrap_or_default());
        };
        let to = match Mailbox::from_str(&d.target) {
            Ok(m) => m,
            Err(e) => return SendOutcome::Permanent(format!("bad address {:?}: {e}", d.target)),
        };
        let suffix = if index > 0 {
            format!(".{index}")
        } else {
            String::new()
        };
        let message = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(subject_of(d, part))
            .message_id(Some(format!("<{}{suffix}@impressox>", d.id)))
            .multipart(MultiPart::alternative_plain_html(
                part.text.clone(),
                html_of(part),
            ));
        let message = match message {
            Ok(m) => m,
            Err(e) => return SendOutcome::Permanent(format!("cannot build the message: {e}")),
        };
        let mailer = slot.lock().clone();
        let limit = Duration::from_secs(self.cfg.timeout_secs);
        let Ok(sent) = tokio::time::timeout(limit, mailer.send(message)).await else {
            if let Ok(fresh) = self.transport() {
                *slot.lock() = fresh;
            }
            return SendOutcome::Ambiguous(format!(
                "the SMTP server did not finish within {limit:?}"
            ));
        };
        match sent {
            Ok(_) => SendOutcome::Sent,
            Err(e) if e.is_permanent() => SendOutcome::Permanent(e.to_string()),
            Err(e) if e.is_transient() || connection_refused(&e) => {
                SendOutcome::Transient(e.to_string())
            }
            Err(e) => SendOutcome::Ambiguous(e.to_string()),
        }
    }
}
