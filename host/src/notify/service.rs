//! What the HTTP API asks of the notify side, independent of whether this process runs
//! the worker (another host may deliver): accept a request idempotently, show a
//! notification's deliveries, list and replay dead letters. Views never show secrets: a
//! webhook URL (whose path often is the credential) is shown as its origin only.

use std::sync::Arc;

use anyhow::Result;
use serde_json::{Value, json};

use super::log::{DeliveryLog, NOTIFICATIONS, notification_doc};
use super::record::{DELIVERIES, Delivery, State};
use super::request::NotificationRequest;
use crate::documents::{Doc, Documents, Filter, Order, Query, Write, WriteOutcome};
use crate::storage::{NOTIFY_REQUESTS, Store, StreamFull};
use crate::util::rfc3339_ms;

/// What became of a submitted request.
#[derive(Debug, PartialEq)]
pub enum Submitted {
    /// New: queued for delivery.
    Queued,
    /// Seen before with the same body.
    Duplicate,
    /// The id was used before for a different body.
    IdReused,
    /// `notify:requests` is at its bound: nothing was stored (not even the id), so the
    /// same request may simply be sent again later.
    Full(StreamFull),
}

/// Record and enqueue a request from the API; the same id and body twice is one
/// notification.
pub async fn submit(
    store: &Arc<dyn Store>,
    docs: &Arc<dyn Documents>,
    req: &NotificationRequest,
) -> Result<Submitted> {
    submit_from(store, docs, req, "api").await
}

/// [`submit`] for another producer, recorded as the notification's `source` (the
/// `notify` capability gives `plugin:<name>`).
pub async fn submit_from(
    store: &Arc<dyn Store>,
    docs: &Arc<dyn Documents>,
    req: &NotificationRequest,
    source: &str,
) -> Result<Submitted> {
    let hash = req.body_hash();
    let now = crate::util::now_ms();
    let doc = notification_doc(req, source, now);
    let inserted = docs
        .write(vec![Write::Insert {
            coll: NOTIFICATIONS.into(),
            doc,
        }])
        .await?;
    if inserted.first() != Some(&WriteOutcome::Inserted)
        && let Some(existing) = docs.get(NOTIFICATIONS, &req.id).await?
        && existing.get("body_hash").and_then(Value::as_str) != Some(hash.as_str())
    {
        return Ok(Submitted::IdReused);
    }
    // Also for a known record: a crash may have come between the two writes, and
    // enqueueing a key that was enqueued before does nothing.
    let body = serde_json::to_string(req)?;
    match store.enqueue_once(NOTIFY_REQUESTS, &req.id, &body).await {
        Ok(Some(_)) => Ok(Submitted::Queued),
        Ok(None) => Ok(Submitted::Duplicate),
        Err(e) => {
            let Some(full) = StreamFull::find(&e).cloned() else {
                return Err(e);
            };
            // Refused: take back the record this call wrote, so a refused request leaves
            // nothing behind (an id recorded here would make its retry look like a
            // duplicate of something that was never queued).
            if inserted.first() == Some(&WriteOutcome::Inserted) {
                docs.write(vec![Write::Delete {
                    coll: NOTIFICATIONS.into(),
                    id: req.id.clone(),
                }])
                .await?;
            }
            Ok(Submitted::Full(full))
        }
    }
}

/// A target as shown to people: a URL whose path is the credential (webhook, Discord,
/// Slack, a push endpoint) as its scheme and host only.
pub fn shown_target(channel: &str, target: &str) -> String {
    match channel {
        "webhook" | "discord" | "slack" => super::webpush::shown_origin(target),
        // A target that is not a subscription is never shown: it could hold its keys.
        "webpush" => match super::webpush::Subscription::from_target(target) {
            Some(s) => s.shown(),
            None => "(not a push subscription)".to_string(),
        },
        _ => target.to_string(),
    }
}

fn time(ms: i64) -> Value {
    if ms > 0 {
        json!(rfc3339_ms(ms))
    } else {
        Value::Null
    }
}

/// One delivery as the API shows it.
pub fn delivery_view(d: &Delivery) -> Value {
    json!({
        "delivery_id": d.id,
        "notification_id": d.notification_id,
        "user_id": d.user_id,
        "channel": d.channel,
        "target": shown_target(&d.channel, &d.target),
        "state": d.state.as_str(),
        "reason": d.reason,
        "next_attempt_at": if d.state == State::Queued { time(d.due_at_ms) } else { Value::Null },
        "attempts": d.attempt,
        "replays": d.generation,
        "parts": d.parts.len(),
        "parts_sent": d.parts_sent,
        "formatter": d.formatter,
        "last_error": d.last_error,
        "history": d.history.iter().map(|h| json!({
            "attempt": h.n,
            "host": h.host,
            "started_at": time(h.started_ms),
            "ended_at": time(h.ended_ms),
            "outcome": h.outcome,
            "error": h.error,
            "retry_after_secs": h.retry_after_secs,
        })).collect::<Vec<_>>(),
        "created_at": time(d.created_ms),
        "finished_at": time(d.final_ms),
        "dead_letter_id": if d.state == State::Dead { json!(d.id) } else { Value::Null },
    })
}

/// The overall status of a notification from its deliveries.
pub fn overall(deliveries: &[Delivery]) -> &'static str {
    let count = |s: State| deliveries.iter().filter(|d| d.state == s).count();
    let (sent, dead, open) = (
        count(State::Sent),
        count(State::Dead),
        count(State::Queued) + count(State::Sending),
    );
    if deliveries.is_empty() {
        "queued"
    } else if open > 0 {
        if sent > 0 || deliveries.iter().any(|d| d.attempt > 0) {
            "in_progress"
        } else {
            "queued"
        }
    } else if dead == 0 {
        if sent > 0 { "delivered" } else { "skipped" }
    } else if sent > 0 {
        "partially_delivered"
    } else {
        "failed"
    }
}

/// A notification with all its deliveries; `None` when the id is unknown.
pub async fn status(docs: &Arc<dyn Documents>, id: &str) -> Result<Option<Value>> {
    let log = DeliveryLog::new(docs.clone());
    let Some(n) = log.notification(id).await? else {
        return Ok(None);
    };
    let deliveries = log.deliveries_of(id).await?;
    Ok(Some(notification_view(&n, &deliveries)))
}

/// The `kind` the market engine gives the notification request of a fired rule.
pub const PRICE_ALERT: &str = "price_alert";

/// The most alerts one [`recent_alerts`] call returns.
pub const MAX_RECENT_ALERTS: usize = 100;

/// Price alerts as recorded when the notify worker took them from `notify:requests` (or
/// the API accepted them), newest first: of `user_id` and/or on `symbol` (case-insensitive),
/// at most `limit` (1 to [`MAX_RECENT_ALERTS`]). Each with the rule, price and reason the
/// engine gave it and the delivery status so far.
///
/// The notify worker's record is the alert history the product keeps: the stream entry
/// itself is trimmed once every consumer group has taken it. An alert still waiting in the
/// stream (no notify worker runs, or it is behind) is not listed yet.
pub async fn recent_alerts(
    docs: &Arc<dyn Documents>,
    user_id: Option<&str>,
    symbol: Option<&str>,
    limit: usize,
) -> Result<Vec<Value>> {
    let mut filter = Filter::all().eq("kind", PRICE_ALERT);
    if let Some(u) = user_id {
        filter = filter.eq("user_id", u);
    }
    if let Some(s) = symbol {
        filter = filter.eq("symbol", s.to_ascii_uppercase());
    }
    let query = Query::new(filter)
        .sort("received_ms", Order::Desc)
        .limit(limit.clamp(1, MAX_RECENT_ALERTS));
    let log = DeliveryLog::new(docs.clone());
    let mut out = Vec::new();
    for n in docs.find(NOTIFICATIONS, &query).await? {
        let id = n.get("_id").and_then(Value::as_str).unwrap_or_default();
        let deliveries = log.deliveries_of(id).await?;
        out.push(alert_view(&n, &deliveries));
    }
    Ok(out)
}

/// One alert as the agent reads it: the engine's facts lifted out of the request.
fn alert_view(n: &Doc, deliveries: &[Delivery]) -> Value {
    let request: Value = n
        .get("request_json")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let data = &request["data"];
    json!({
        "notification_id": n.get("_id"),
        "user_id": n.get("user_id"),
        "rule_id": data["rule_id"],
        "symbol": data["symbol"],
        "title": request["title"],
        "body": request["body"],
        "price": data["price"],
        "reference_price": data["reference_price"],
        "reason": data["reason"],
        "fired_at": data["fired_at"],
        "feed": data["source"],
        "note": data["note"],
        "received_at": time(n.get("received_ms").and_then(Value::as_i64).unwrap_or(0)),
        "status": overall(deliveries),
    })
}

fn notification_view(n: &Doc, deliveries: &[Delivery]) -> Value {
    let request: Value = n
        .get("request_json")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    json!({
        "id": n.get("_id"),
        "status": overall(deliveries),
        "received_at": time(n.get("received_ms").and_then(Value::as_i64).unwrap_or(0)),
        "source": n.get("source"),
        "request": request,
        "deliveries": deliveries.iter().map(delivery_view).collect::<Vec<_>>(),
    })
}

/// Why a replay was refused.
#[derive(Debug, PartialEq)]
pub enum ReplayError {
    NotFound,
    NotDead(&'static str),
    NotReplayable(String),
    /// Someone else changed it at the same moment.
    Raced,
}

/// Put a dead letter back in the queue, due now, with a fresh attempt budget.
pub async fn replay(docs: &Arc<dyn Documents>, id: &str) -> Result<Result<Delivery, ReplayError>> {
    let log = DeliveryLog::new(docs.clone());
    let Some(mut d) = log.delivery(id).await? else {
        return Ok(Err(ReplayError::NotFound));
    };
    if d.state != State::Dead {
        return Ok(Err(ReplayError::NotDead(d.state.as_str())));
    }
    if d.reason.as_deref() == Some("invalid_request") {
        return Ok(Err(ReplayError::NotReplayable(
            "the request itself was invalid; fix it and POST it to /api/v1/notifications".into(),
        )));
    }
    if d.target == super::record::NO_TARGET {
        return Ok(Err(ReplayError::NotReplayable(format!(
            "the user had no {} address; set it in the preferences and send the notification again with a new id",
            d.channel
        ))));
    }
    d.replay(crate::util::now_ms());
    let rev = log.replace_all(std::slice::from_ref(&d)).await?;
    match rev.first().copied().flatten() {
        Some(rev) => {
            d.rev = rev;
            Ok(Ok(d))
        }
        None => Ok(Err(ReplayError::Raced)),
    }
}

/// Dead letters, newest first.
pub async fn dead_letters(
    docs: &Arc<dyn Documents>,
    channel: Option<&str>,
    user_id: Option<&str>,
    reason: Option<&str>,
    limit: usize,
) -> Result<Vec<Value>> {
    let mut f = Filter::all();
    if let Some(c) = channel {
        f = f.eq("channel", c);
    }
    if let Some(u) = user_id {
        f = f.eq("user_id", u);
    }
    if let Some(r) = reason {
        f = f.eq("reason", r);
    }
    let list = DeliveryLog::new(docs.clone())
        .dead_letters(f, limit)
        .await?;
    Ok(list
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "kind": "notification",
                "notification_id": d.notification_id,
                "user_id": d.user_id,
                "channel": d.channel,
                "target": shown_target(&d.channel, &d.target),
                "reason": d.reason,
                "last_error": d.last_error,
                "attempts": d.attempt,
                "replays": d.generation,
                "dead_at": time(d.final_ms),
            })
        })
        .collect())
}

/// How many dead letters there are (for `/metrics`).
pub async fn dead_count(docs: &Arc<dyn Documents>) -> Result<u64> {
    docs.count(DELIVERIES, &Filter::all().eq("state", State::Dead.as_str()))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::record::tests::sample;

    #[test]
    fn webhook_urls_are_shown_without_their_path() {
        assert_eq!(
            shown_target("webhook", "https://hooks.example.com/T000/secret"),
            "https://hooks.example.com/…"
        );
        assert_eq!(shown_target("telegram", "123"), "123");
        assert_eq!(
            shown_target("discord", "https://discord.com/api/webhooks/1/tok"),
            "https://discord.com/…"
        );
        let sub = r#"{"endpoint":"https://fcm.googleapis.com/fcm/send/x","keys":{"p256dh":"k","auth":"a"}}"#;
        assert_eq!(shown_target("webpush", sub), "https://fcm.googleapis.com/…");
    }

    #[test]
    fn overall_status_from_deliveries() {
        let mut a = sample(0);
        let mut b = sample(0);
        assert_eq!(overall(&[a.clone()]), "queued");
        a.state = State::Sent;
        b.state = State::Dead;
        assert_eq!(overall(&[a.clone(), b.clone()]), "partially_delivered");
        assert_eq!(overall(&[b.clone()]), "failed");
        assert_eq!(overall(&[a.clone()]), "delivered");
        b.state = State::Sending;
        b.attempt = 1;
        assert_eq!(overall(&[a, b]), "in_progress");
    }
}
