//! Planning: which (channel, target) pairs a request goes to, and how each starts — now,
//! later (quiet hours), skipped (muted, disabled) or dead before any send (no address) —
//! plus rendering through the channel's notify-formatter plugin.
//!
//! A channel has one target per user, except `webpush`: one per subscription (browser).
//!
//! Channel choice (SPEC §9): `channels` absent → the user's enabled channels; present →
//! those, where a channel the user has not enabled is skipped (visible as `skipped
//! channel_disabled`); no preferences and no channels → `console`. Quiet hours hold
//! `normal` deliveries on the channels they apply to until they end; `critical` ones pass.
//! Mutes apply to every priority (SPEC gives critical its bypass of quiet hours only).

use super::config::NotifyConfig;
use super::prefs::Preferences;
use super::record::{NO_TARGET, ParseMode, Part};
use super::request::{NotificationRequest, Priority};
use crate::bindings::types;
use crate::runtime::CallError;
use crate::runtime::Runtime;

/// How one delivery starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    Now,
    Wait {
        due_at_ms: i64,
        reason: &'static str,
    },
    Skip {
        reason: &'static str,
    },
    Dead {
        reason: &'static str,
        error: String,
    },
}

/// One planned delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub channel: String,
    pub target: String,
    pub start: Start,
}

/// Plan a request against the user's preferences (if any).
pub fn plan(
    req: &NotificationRequest,
    prefs: Option<&Preferences>,
    cfg: &NotifyConfig,
    now_ms: i64,
) -> Vec<Planned> {
    let Some(prefs) = prefs else {
        let channels = req
            .channels
            .clone()
            .unwrap_or_else(|| vec!["console".into()]);
        return channels
            .into_iter()
            .map(|ch| {
                if ch == "console" {
                    Planned {
                        channel: ch,
                        target: "stdout".into(),
                        start: Start::Now,
                    }
                } else {
                    Planned {
                        start: Start::Dead {
                            reason: "no_address",
                            error: format!(
                                "user {} has no preferences, so no {ch} address",
                                req.user_id
                            ),
                        },
                        channel: ch,
                        target: NO_TARGET.into(),
                    }
                }
            })
            .collect();
    };
    let requested = req.channels.as_ref();
    let channels = requested.cloned().unwrap_or_else(|| prefs.enabled.clone());
    let mut out = Vec::new();
    for ch in channels {
        let targets = prefs.targets(&ch);
        if targets.is_empty() {
            out.push(Planned {
                start: Start::Dead {
                    reason: "no_address",
                    error: format!("user {} has no {ch} address", req.user_id),
                },
                channel: ch,
                target: NO_TARGET.into(),
            });
            continue;
        }
        let start = if requested.is_some() && !prefs.enabled.contains(&ch) {
            Start::Skip {
                reason: "channel_disabled",
            }
        } else if prefs.muted(&req.kind, now_ms).is_some() {
            Start::Skip { reason: "muted" }
        } else if let Some(end) = prefs.quiet_until(now_ms)
            && req.priority == Priority::Normal
            && cfg.quiet_hours_channels.contains(&ch)
        {
            Start::Wait {
                due_at_ms: end,
                reason: "quiet_hours",
            }
        } else {
            Start::Now
        };
        // One delivery per target: each browser of a user's web push subscriptions gets
        // its own record, its own attempts and its own outcome.
        for target in targets {
            out.push(Planned {
                channel: ch.clone(),
                target,
                start: start.clone(),
            });
        }
    }
    out
}

/// Why rendering did not give parts.
#[derive(Debug, Clone, PartialEq)]
pub enum RenderError {
    /// The plugin is not loaded or quarantined: wait for it.
    Unavailable(String),
    /// The plugin refused this notification: no retry helps.
    Rejected(String),
    /// The call failed (trap, timeout): may work next time.
    Failed(String),
}

/// Render `req` for `channel` with the plugin `formatter`; returns the parts and
/// `name@version` of the formatter that made them.
pub fn render(
    runtime: &Runtime,
    formatter: &str,
    req: &NotificationRequest,
    channel: &str,
    created_ms: i64,
) -> Result<(Vec<Part>, String), RenderError> {
    let handle = runtime.plugin(formatter);
    let version = handle
        .current()
        .map(|l| format!("{}@{}", l.name, l.version))
        .unwrap_or_else(|| formatter.to_string());
    let n = types::Notification {
        id: req.id.clone(),
        user_id: req.user_id.clone(),
        kind: req.kind.clone(),
        priority: match req.priority {
            Priority::Normal => types::Priority::Normal,
            Priority::Critical => types::Priority::Critical,
        },
        title: req.title.clone(),
        body: req.body.clone(),
        data_json: req.data.to_string(),
        created_at_ms: created_ms,
    };
    match handle.format(&n, channel) {
        Ok(Ok(msgs)) if msgs.is_empty() => Err(RenderError::Rejected(format!(
            "formatter {version} returned no message"
        ))),
        Ok(Ok(msgs)) => Ok((
            msgs.into_iter()
                .map(|m| Part {
                    text: m.text,
                    subject: m.subject,
                    html: m.html,
                    parse_mode: match m.parse_mode {
                        types::ParseMode::Plain => ParseMode::Plain,
                        types::ParseMode::MarkdownV2 => ParseMode::MarkdownV2,
                        types::ParseMode::Html => ParseMode::Html,
                    },
                })
                .collect(),
            version,
        )),
        Ok(Err(msg)) => Err(RenderError::Rejected(format!(
            "formatter {version} refused: {msg}"
        ))),
        Err(e @ (CallError::NotLoaded(_) | CallError::Quarantined { .. })) => {
            Err(RenderError::Unavailable(e.to_string()))
        }
        Err(e @ CallError::WrongKind { .. }) => Err(RenderError::Unavailable(e.to_string())),
        Err(e) => Err(RenderError::Failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_300_000_000;

    fn req(channels: Option<&[&str]>) -> NotificationRequest {
        NotificationRequest {
            id: "n1".into(),
            user_id: "u1".into(),
            kind: "price_alert".into(),
            priority: Priority::Normal,
            title: "t".into(),
            body: String::new(),
            data: serde_json::json!({}),
            channels: channels.map(|c| c.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn prefs(json: &str) -> Preferences {
        Preferences::parse(json.as_bytes(), NOW).unwrap()
    }

    fn starts(p: &[Planned]) -> Vec<(&str, &str, &Start)> {
        p.iter()
            .map(|p| (p.channel.as_str(), p.target.as_str(), &p.start))
            .collect()
    }

    #[test]
    fn no_preferences_means_console_or_as_requested() {
        let cfg = NotifyConfig::default();
        let p = plan(&req(None), None, &cfg, NOW);
        assert_eq!(starts(&p), vec![("console", "stdout", &Start::Now)]);
        let p = plan(&req(Some(&["telegram"])), None, &cfg, NOW);
        assert!(matches!(
            p[0].start,
            Start::Dead {
                reason: "no_address",
                ..
            }
        ));
    }

    #[test]
    fn channel_resolution_follows_the_spec() {
        let cfg = NotifyConfig::default();
        let u = prefs(
            r#"{"channels":{"telegram":{"chat_id":"7"},"email":{"address":"A@Example.com"}},
                "enabled":["telegram"]}"#,
        );
        let p = plan(&req(None), Some(&u), &cfg, NOW);
        assert_eq!(starts(&p), vec![("telegram", "7", &Start::Now)]);
        let p = plan(&req(Some(&["telegram", "email"])), Some(&u), &cfg, NOW);
        assert_eq!(
            starts(&p),
            vec![
                ("telegram", "7", &Start::Now),
                (
                    "email",
                    "a@example.com",
                    &Start::Skip {
                        reason: "channel_disabled"
                    }
                )
            ]
        );
        let p = plan(&req(Some(&["webhook"])), Some(&u), &cfg, NOW);
        assert!(matches!(
            p[0].start,
            Start::Dead {
                reason: "no_address",
                ..
            }
        ));
    }

    #[test]
    fn each_push_subscription_is_its_own_target() {
        let cfg = NotifyConfig::default();
        let key = "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY";
        let u = prefs(&format!(
            r#"{{"channels":{{"webpush":{{"subscriptions":[
                {{"endpoint":"https://push.example/a","keys":{{"p256dh":"{key}","auth":"_ordMnz7uTCmrpBTeUV4Bw"}}}},
                {{"endpoint":"https://push.example/b","expirationTime":null,"keys":{{"p256dh":"{key}","auth":"_ordMnz7uTCmrpBTeUV4Bw"}}}}]}}}},
                "enabled":["webpush"]}}"#
        ));
        let p = plan(&req(None), Some(&u), &cfg, NOW);
        assert_eq!(p.len(), 2);
        assert!(p[0].target.contains("push.example/a") && p[1].target.contains("push.example/b"));
        assert!(
            p.iter()
                .all(|p| p.channel == "webpush" && p.start == Start::Now)
        );
        // None left: a dead letter naming the missing address.
        let none = prefs(r#"{"channels":{"webpush":{"subscriptions":[]}}}"#);
        let p = plan(&req(Some(&["webpush"])), Some(&none), &cfg, NOW);
        assert!(matches!(
            p[0].start,
            Start::Dead {
                reason: "no_address",
                ..
            }
        ));
    }

    #[test]
    fn quiet_hours_defer_normal_and_pass_critical_but_mutes_hold_both() {
        let cfg = NotifyConfig::default();
        // NOW is 03:20 UTC.
        let u = prefs(
            r#"{"channels":{"telegram":{"chat_id":"7"}},"enabled":["telegram","console"],
                "quiet_hours":{"start":"22:00","end":"07:00","tz":"UTC"}}"#,
        );
        let p = plan(&req(None), Some(&u), &cfg, NOW);
        assert_eq!(
            p[0].start,
            Start::Wait {
                due_at_ms: crate::util::parse_rfc3339_ms("2025-11-28T07:00:00Z").unwrap(),
                reason: "quiet_hours"
            }
        );
        assert_eq!(p[1].start, Start::Now, "console is not held by quiet hours");
        let mut critical = req(None);
        critical.priority = Priority::Critical;
        assert_eq!(plan(&critical, Some(&u), &cfg, NOW)[0].start, Start::Now);
        let muted = prefs(
            r#"{"channels":{"telegram":{"chat_id":"7"}},"enabled":["telegram"],
                "mutes":[{"until":"2030-01-01T00:00:00Z"}]}"#,
        );
        assert_eq!(
            plan(&critical, Some(&muted), &cfg, NOW)[0].start,
            Start::Skip { reason: "muted" }
        );
    }
}
