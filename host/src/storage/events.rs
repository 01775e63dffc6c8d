//! What the store offers the events worker (`crate::events`) beyond plain streams: one
//! commit that acknowledges handled events together with the effects their handlers
//! asked for, on either backend in one atomic step.
//!
//! A handler's `kv` writes and `notify` enqueues are not applied while it runs; they are
//! collected ([`KvEffect`], notification requests) and applied by
//! [`Store::commit_events`](super::Store::commit_events) in the same transaction as the
//! acknowledgement (one redb write transaction; one Lua script on Redis). So a crash
//! before the commit applies none of them and the events are delivered again; a crash
//! after it applied all of them and the events are gone. Nothing is applied twice, and
//! nothing is acknowledged without its effects. A commit is applied only while every
//! event it acknowledges is still pending with the committing consumer ([`StaleAcks`]),
//! which makes sending it again after a lost answer harmless, and keeps a host that was
//! too slow from applying effects for events another host has taken over.

use serde::{Deserialize, Serialize};

/// One `kv` write of a handler, in the plugin's namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvEffect {
    /// The plugin's namespace (its name, given by the host).
    pub ns: String,
    pub key: String,
    pub op: KvOp,
}

/// What a [`KvEffect`] does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KvOp {
    /// Set the value, expiring after `ttl_ms` (none: never).
    Set { value: Vec<u8>, ttl_ms: Option<u64> },
    /// Remove the key.
    Delete,
    /// Add to the decimal integer at the key (missing: 0), keeping its expiry.
    Incr(i64),
}

/// Handled events of one stream and consumer group, committed at once.
#[derive(Debug, Clone, Default)]
pub struct EventCommit {
    pub stream: String,
    pub group: String,
    /// The consumer committing: every acked entry must still be pending with it, or
    /// nothing is written ([`StaleAcks`]).
    pub consumer: String,
    /// Entry ids to acknowledge.
    pub acks: Vec<String>,
    /// `kv` writes, applied in order.
    pub kv: Vec<KvEffect>,
    /// Notification requests for `notify:requests` as (idempotency key, JSON body); a key
    /// enqueued before is skipped.
    pub notify: Vec<(String, String)>,
    /// Records of the general key-value space to remove, as (namespace, key): the host's
    /// attempt records of the acknowledged events.
    pub forget: Vec<(String, String)>,
    /// The cap on live `kv` keys per plugin (`[capabilities.kv] max_keys`).
    pub kv_max_keys: u64,
}

impl EventCommit {
    /// Whether the commit writes anything at all.
    pub fn is_empty(&self) -> bool {
        self.acks.is_empty()
            && self.kv.is_empty()
            && self.notify.is_empty()
            && self.forget.is_empty()
    }
}

/// A commit refused because some of its entries are no longer pending with its consumer:
/// acknowledged already (a commit whose answer was lost, then sent again), or taken over
/// by another host. Nothing was written; commit the others without them (their effects
/// belong to whoever holds them now).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} event(s) are no longer pending with this consumer", ids.len())]
pub struct StaleAcks {
    pub ids: Vec<String>,
}

impl StaleAcks {
    /// The refusal inside an error from a store call, if that is what it is.
    pub fn find(e: &anyhow::Error) -> Option<&StaleAcks> {
        e.downcast_ref::<StaleAcks>()
    }
}

/// Turn an entry's raw fields into text. A name or value that is not UTF-8 makes the
/// entry malformed (its handler gets no event; it becomes a dead letter), and its fields
/// are kept in a lossy rendering so the dead letter still shows what arrived.
pub fn text_fields(raw: Vec<(Vec<u8>, Vec<u8>)>) -> (Vec<(String, String)>, Option<String>) {
    let mut malformed = None;
    let fields = raw
        .into_iter()
        .map(|(name, value)| {
            let name = match String::from_utf8(name) {
                Ok(n) => n,
                Err(e) => {
                    let n = String::from_utf8_lossy(e.as_bytes()).into_owned();
                    malformed.get_or_insert_with(|| format!("a field name ({n:?}) is not UTF-8"));
                    n
                }
            };
            let value = match String::from_utf8(value) {
                Ok(v) => v,
                Err(e) => {
                    malformed
                        .get_or_insert_with(|| format!("the value of field `{name}` is not UTF-8"));
                    String::from_utf8_lossy(e.as_bytes()).into_owned()
                }
            };
            (name, value)
        })
        .collect();
    (fields, malformed)
}

/// The value of field `name`, or "".
pub fn field_value(fields: &[(String, String)], name: &str) -> String {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_utf8_make_the_entry_malformed_but_keep_its_fields() {
        let (fields, why) = text_fields(vec![
            (b"ok".to_vec(), b"fine".to_vec()),
            (b"bad".to_vec(), vec![0xff, 0xfe]),
        ]);
        assert_eq!(fields[0], ("ok".into(), "fine".into()));
        assert_eq!(fields[1].0, "bad");
        assert!(why.unwrap().contains("`bad`"));
        let (_, why) = text_fields(vec![(b"a".to_vec(), b"b".to_vec())]);
        assert!(why.is_none());
    }
}
