//! The host's own attempt count per event, kept in the store (the general key-value
//! space, one namespace per stream and group), not the stream's delivery counter: a
//! claim by another host resets or inflates that one, and it cannot carry the errors.
//!
//! Only failed attempts are written (a trap, a timeout, `retry`), so an event handled at
//! the first try costs no write here; the record is removed in the same commit as the
//! event's ack (`EventCommit::forget`). An attempt cut short by a crash of the host
//! itself is not counted: the event is handled again with the same attempt number.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::storage::Store;

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub attempt: u32,
    pub at_ms: i64,
    pub host: String,
    pub error: String,
}

/// What the host knows about an event's earlier attempts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attempts {
    pub failures: Vec<Failure>,
    /// Not to be tried again before this time (the backoff after the last failure).
    pub due_ms: i64,
}

impl Attempts {
    /// The number of the next attempt (1 for an event never tried).
    pub fn next(&self) -> u32 {
        self.failures.last().map_or(1, |f| f.attempt + 1)
    }
}

/// The namespace of a stream and group's records.
pub fn namespace(stream: &str, group: &str) -> String {
    format!("events:attempts:{group}@{stream}")
}

/// The records of `ids` that have one. Entries read for the first time (delivered once)
/// cannot have one, so callers ask only for redelivered ones.
pub async fn load(
    store: &Arc<dyn Store>,
    ns: &str,
    ids: &[String],
) -> Result<HashMap<String, Attempts>> {
    let mut out = HashMap::new();
    for id in ids {
        if let Some(text) = store.kv_get(ns, id).await? {
            // A record that does not parse is treated as none: the event is retried
            // rather than stuck.
            if let Ok(a) = serde_json::from_str::<Attempts>(&text) {
                out.insert(id.clone(), a);
            }
        }
    }
    Ok(out)
}

/// Write an event's record after a failed attempt.
pub async fn save(store: &Arc<dyn Store>, ns: &str, id: &str, attempts: &Attempts) -> Result<()> {
    store
        .kv_put(ns, id, &serde_json::to_string(attempts)?)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_attempt_follows_the_last_failure() {
        let mut a = Attempts::default();
        assert_eq!(a.next(), 1);
        a.failures.push(Failure {
            attempt: 2,
            at_ms: 0,
            host: "h".into(),
            error: "e".into(),
        });
        assert_eq!(a.next(), 3);
    }
}
