//! `whale-alert`: an event handler for transfer events. A transfer worth at least the
//! threshold is stored in the `docs` collection `whales` under its transaction hash and
//! notified to the configured users; a smaller one is acked and forgotten.
//!
//! Event fields: `tx` (transaction hash, required), `amount_usd` (required, a number),
//! and optionally `asset`, `amount`, `from`, `to`, `chain`, which are kept in the
//! document and shown in the notification.
//!
//! Exactly once per transaction: the document's id is the hash and each notification's
//! id is `whale-<tx>-<user>`, so the same transfer delivered twice (a redelivery, a
//! retry after a failure, the same hash on two streams) is one document and one
//! notification per user. A malformed event is dead-lettered (retrying cannot fix it); a
//! failing store is retried.
//!
//! Capabilities: `docs = ["whales"]`, `notify = true`. Settings
//! (`[plugins.settings.whale-alert]`): `threshold_usd` (default 1000000), `users`
//! (required), `channels` (default: each user's enabled channels).

use impressox_plugin_sdk::types::{Event, Outcome};
use impressox_plugin_sdk::{EventHandler, config, docs, export_event_handler, notify};
use serde_json::{Map, Value, json};

/// The plugin.
pub struct WhaleAlert;

/// The collection transfers are kept in.
pub const COLLECTION: &str = "whales";

/// A transfer read off an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    pub tx: String,
    pub amount_usd: f64,
    /// The other fields the document and the message show.
    pub details: Map<String, Value>,
}

/// Read a transfer from an event's fields; an error says which field is wrong.
pub fn transfer(event: &Event) -> Result<Transfer, String> {
    let field = |name: &str| {
        event
            .fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.trim())
    };
    let tx = field("tx")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("event {}: no `tx` field (the transaction hash)", event.id))?;
    if tx.len() > 200 {
        return Err(format!(
            "event {}: `tx` is longer than 200 characters",
            event.id
        ));
    }
    let amount_usd = field("amount_usd")
        .ok_or_else(|| format!("event {}: no `amount_usd` field", event.id))?
        .parse::<f64>()
        .ok()
        .filter(|a| a.is_finite() && *a >= 0.0)
        .ok_or_else(|| {
            format!(
                "event {}: `amount_usd` is not a non-negative number",
                event.id
            )
        })?;
    let mut details = Map::new();
    for name in ["asset", "amount", "from", "to", "chain"] {
        if let Some(v) = field(name) {
            details.insert(name.into(), Value::String(v.to_string()));
        }
    }
    Ok(Transfer {
        tx: tx.to_string(),
        amount_usd,
        details,
    })
}

/// The message for a transfer (pure).
pub fn message(t: &Transfer) -> (String, String) {
    let get = |k: &str| t.details.get(k).and_then(Value::as_str).unwrap_or("?");
    let title = format!("Whale transfer: ${:.0} in {}", t.amount_usd, get("asset"));
    let body = format!(
        "{} {} from {} to {} on {} (tx {})",
        get("amount"),
        get("asset"),
        get("from"),
        get("to"),
        get("chain"),
        t.tx
    );
    (title, body)
}

fn setting_list(key: &str) -> Result<Vec<String>, String> {
    match config::get(key) {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|_| format!("setting `{key}` must be a list of strings")),
    }
}

fn handle(event: &Event) -> Result<Outcome, Outcome> {
    let t = transfer(event).map_err(Outcome::DeadLetter)?;
    let threshold = match config::get("threshold_usd") {
        Some(text) => text.parse::<f64>().map_err(|_| {
            Outcome::Retry("setting `threshold_usd` is not a number; fix the config".into())
        })?,
        None => 1_000_000.0,
    };
    if t.amount_usd < threshold {
        return Ok(Outcome::Ack);
    }
    let users = setting_list("users").map_err(Outcome::Retry)?;
    let channels = setting_list("channels").map_err(Outcome::Retry)?;
    let mut doc = t.details.clone();
    doc.insert("tx".into(), json!(t.tx));
    doc.insert("amount_usd".into(), json!(t.amount_usd));
    doc.insert("stream".into(), json!(event.stream));
    doc.insert("event_id".into(), json!(event.id));
    doc.insert("seen_at_ms".into(), json!(event.received_at_ms));
    // Kept once per hash: a second delivery finds it and keeps the first sighting.
    if docs::get(COLLECTION, &t.tx)
        .map_err(Outcome::Retry)?
        .is_none()
    {
        docs::upsert(COLLECTION, &t.tx, &Value::Object(doc).to_string()).map_err(Outcome::Retry)?;
    }
    let (title, body) = message(&t);
    let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
    for user in &users {
        let mut n = notify::notification(
            &format!("whale-{}-{user}", t.tx),
            user,
            "whale_alert",
            &title,
        );
        n.body = body.clone();
        n.data_json = json!({"tx": t.tx, "amount_usd": t.amount_usd}).to_string();
        notify::enqueue(&n, &channels).map_err(Outcome::Retry)?;
    }
    Ok(Outcome::Ack)
}

impl EventHandler for WhaleAlert {
    const NAME: &'static str = "whale-alert";
    const DESCRIPTION: &'static str = "stores and notifies transfers above a threshold";

    fn handle(event: Event) -> Outcome {
        let outcome = handle(&event).unwrap_or_else(|o| o);
        if let Outcome::Retry(why) | Outcome::DeadLetter(why) = &outcome {
            impressox_plugin_sdk::log::warn(why);
        }
        outcome
    }
}

export_event_handler!(WhaleAlert);

#[cfg(test)]
mod tests {
    use super::*;
    use impressox_plugin_sdk::types::Field;

    fn event(fields: &[(&str, &str)]) -> Event {
        Event {
            stream: "chain:transfers".into(),
            id: "1-0".into(),
            fields: fields
                .iter()
                .map(|(n, v)| Field {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            attempt: 1,
            received_at_ms: 0,
        }
    }

    #[test]
    fn reads_a_transfer_and_names_bad_fields() {
        let t = transfer(&event(&[
            ("tx", "0xabc"),
            ("amount_usd", "2500000"),
            ("asset", "USDT"),
        ]))
        .unwrap();
        assert_eq!(t.tx, "0xabc");
        assert_eq!(t.amount_usd, 2_500_000.0);
        assert_eq!(message(&t).0, "Whale transfer: $2500000 in USDT");
        assert!(
            transfer(&event(&[("amount_usd", "1")]))
                .unwrap_err()
                .contains("`tx`")
        );
        assert!(
            transfer(&event(&[("tx", "a"), ("amount_usd", "lots")]))
                .unwrap_err()
                .contains("`amount_usd`")
        );
        assert!(transfer(&event(&[("tx", "a"), ("amount_usd", "-5")])).is_err());
    }
}
