//! Effects held back until the host commits them: the `kv` writes and `notify` enqueues
//! of an event handler's call, which the events worker applies in the same store
//! transaction as the event's acknowledgement (`Store::commit_events`).
//!
//! While a call collects effects, a `kv` read sees the call's own writes first (an
//! overlay of what it set, deleted or incremented), then the store. `incr` answers the
//! stored value plus the call's increments, and is committed as an increment, so the
//! total stays exact when several hosts count the same key at once. A call that traps,
//! times out or returns `retry` is dropped with its effects: none of them is applied.

use std::collections::HashMap;

use crate::notify::request::NotificationRequest;
use crate::storage::{KvEffect, KvOp};

/// What one call asked to be written.
#[derive(Debug, Default)]
pub struct Effects {
    /// `kv` writes in the order they were made (in the plugin's namespace).
    pub kv: Vec<KvEffect>,
    /// Validated notification requests, with their `source` (`plugin:<name>`).
    pub notify: Vec<(NotificationRequest, String)>,
    /// The value of each key this call wrote, as a later read in the call sees it
    /// (`None`: deleted).
    overlay: HashMap<String, Option<Vec<u8>>>,
}

impl Effects {
    /// What the call itself last wrote to `key`, if it wrote it: `Some(None)` for a delete.
    pub fn overlay(&self, key: &str) -> Option<Option<&[u8]>> {
        self.overlay.get(key).map(Option::as_deref)
    }

    pub fn set(&mut self, ns: &str, key: &str, value: &[u8], ttl_ms: Option<u64>) {
        self.overlay.insert(key.to_string(), Some(value.to_vec()));
        self.kv.push(KvEffect {
            ns: ns.to_string(),
            key: key.to_string(),
            op: KvOp::Set {
                value: value.to_vec(),
                ttl_ms,
            },
        });
    }

    pub fn delete(&mut self, ns: &str, key: &str) {
        self.overlay.insert(key.to_string(), None);
        self.kv.push(KvEffect {
            ns: ns.to_string(),
            key: key.to_string(),
            op: KvOp::Delete,
        });
    }

    /// Record an increment of `key` whose value is now `new`.
    pub fn incr(&mut self, ns: &str, key: &str, by: i64, new: i64) {
        self.overlay
            .insert(key.to_string(), Some(new.to_string().into_bytes()));
        self.kv.push(KvEffect {
            ns: ns.to_string(),
            key: key.to_string(),
            op: KvOp::Incr(by),
        });
    }

    pub fn notify(&mut self, request: NotificationRequest, source: String) {
        self.notify.push((request, source));
    }

    /// Whether the call asked for nothing.
    pub fn is_empty(&self) -> bool {
        self.kv.is_empty() && self.notify.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlay_shows_the_last_write_of_each_key() {
        let mut fx = Effects::default();
        assert_eq!(fx.overlay("a"), None);
        fx.set("p", "a", b"1", None);
        fx.incr("p", "a", 2, 3);
        assert_eq!(fx.overlay("a"), Some(Some(&b"3"[..])));
        fx.delete("p", "a");
        assert_eq!(fx.overlay("a"), Some(None));
        assert_eq!(fx.kv.len(), 3);
        assert_eq!(fx.kv[1].op, KvOp::Incr(2));
    }
}
