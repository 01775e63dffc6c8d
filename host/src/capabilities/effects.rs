//! Effects held back until the host commits them: the `kv` writes and `notify` enqueues
//! of an event handler's call, which the events worker applies in the same store
//! transaction as the event's acknowledgement (`Store::commit_events`).
//!
//! While a call collects effects, a `kv` read sees the call's own writes first (an
//! overlay of what it set, deleted or incremented), then the store. `incr` answers the
//! stored value plus the call's increments, and is committed as an increment, so the
//! total stays exact when several hosts count the same key at once. A call that traps,
//! times out or returns `retry` is dropped with its effects: none of them is applied.
//!
//! The calls of one batch share a [`BatchReads`]: the first read of a key from the store
//! is kept and answers the batch's later reads of it. A call never sees another call's
//! uncommitted writes either way (they are committed together, after every call), so the
//! value a call reads is the store's as of the batch — one round trip per key and batch
//! instead of one per call and key.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

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
    /// The store's values as this call's batch first read them.
    reads: Option<Arc<BatchReads>>,
}

/// Store values read during one batch of calls, by key (`None`: no live value).
#[derive(Debug, Default)]
pub struct BatchReads(Mutex<HashMap<String, Option<Vec<u8>>>>);

impl BatchReads {
    /// The value the batch read for `key`, if it read it.
    pub fn get(&self, key: &str) -> Option<Option<Vec<u8>>> {
        self.0.lock().get(key).cloned()
    }

    /// Keep what the store answered for `key` (the first answer stays).
    pub fn keep(&self, key: &str, value: Option<&[u8]>) {
        self.0
            .lock()
            .entry(key.to_string())
            .or_insert_with(|| value.map(<[u8]>::to_vec));
    }
}

impl Effects {
    /// Effects of a call in a batch whose store reads are shared.
    pub fn in_batch(reads: Arc<BatchReads>) -> Effects {
        Effects {
            reads: Some(reads),
            ..Default::default()
        }
    }

    /// The batch's reads, when the call is part of one.
    pub fn batch_reads(&self) -> Option<Arc<BatchReads>> {
        self.reads.clone()
    }

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

    #[test]
    fn a_batch_keeps_the_first_value_read_of_each_key() {
        let reads = Arc::new(BatchReads::default());
        assert_eq!(reads.get("a"), None);
        reads.keep("a", Some(b"1"));
        reads.keep("a", Some(b"2"));
        reads.keep("b", None);
        assert_eq!(reads.get("a"), Some(Some(b"1".to_vec())));
        assert_eq!(reads.get("b"), Some(None));
        let fx = Effects::in_batch(reads.clone());
        assert!(Arc::ptr_eq(&fx.batch_reads().unwrap(), &reads));
    }
}
