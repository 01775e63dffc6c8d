//! `impressox:plugin/kv`: a key-value store for tasks and event handlers, on the storage
//! backend in use (embedded redb or Redis). Grant: `[plugins.grants.<name>] kv = true`.
//!
//! - **Namespaces**: the host puts every key under the plugin's own name; a plugin names
//!   only the key, so no bytes it passes (`..`, another plugin's name and a separator,
//!   NUL) reach outside its namespace. Keys are 1 to `max_key_bytes` bytes of UTF-8
//!   without control characters.
//! - **Time to live**: `set` with `ttl-ms` expires the key on both backends (Redis `PX`;
//!   the embedded store keeps the expiry with the value and treats an expired key as
//!   absent). `incr` keeps a key's expiry.
//! - **`incr`** is atomic: one Lua script on Redis (so across hosts), one transaction
//!   embedded.
//! - **Caps**: value size and live keys per plugin (`[capabilities.kv]`); going over is a
//!   WIT `error` naming the cap, never a trap.
//!
//! The seam: [`Service`] is built from config and the host's store; [`Service::grant`]
//! gives one plugin its [`Granted`] state at load; [`add_to_linker`] links the interface.
//! The WIT adapter (`host.rs`) checks the grant and the budget and calls [`Granted`].

use std::sync::Arc;

use super::effects::BatchReads;
use super::error::CapError;
use crate::storage::{PluginKvRefused, Store};

pub mod config;
pub(super) mod host;

pub use config::KvConfig;

/// The `kv` capability of a host: the store and the caps.
#[derive(Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    config: KvConfig,
}

impl Service {
    pub fn new(config: KvConfig, store: Arc<dyn Store>) -> Service {
        Service { store, config }
    }

    /// The state of plugin `name`, which has the `kv` grant.
    pub fn grant(&self, name: &str) -> Granted {
        Granted {
            store: self.store.clone(),
            namespace: name.to_string(),
            config: self.config,
        }
    }
}

/// One plugin's key-value store.
pub struct Granted {
    store: Arc<dyn Store>,
    /// The plugin's name: every key it uses lives under it.
    namespace: String,
    config: KvConfig,
}

impl Granted {
    /// Refuse a key the plugin may not use, saying why.
    pub fn check_key(&self, key: &str) -> Result<(), CapError> {
        if key.is_empty() {
            return Err(CapError::refused("a kv key may not be empty"));
        }
        if key.len() > self.config.max_key_bytes {
            return Err(CapError::refused(format!(
                "kv key of {} bytes is over the {}-byte cap (`[capabilities.kv] max_key_bytes`)",
                key.len(),
                self.config.max_key_bytes
            )));
        }
        if let Some(c) = key.chars().find(|c| c.is_control()) {
            return Err(CapError::refused(format!(
                "kv key {key:?} holds the control character {c:?}; use printable text"
            )));
        }
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CapError> {
        self.check_key(key)?;
        self.store
            .plugin_kv_get(&self.namespace, key)
            .await
            .map_err(refusal)
    }

    /// [`get`](Self::get) for a call in a batch (`capabilities::effects`): the batch's
    /// first read of `key` answers, and a store read is kept for the rest of the batch.
    pub async fn get_in_batch(
        &self,
        key: &str,
        reads: Option<&BatchReads>,
    ) -> Result<Option<Vec<u8>>, CapError> {
        if let Some(value) = reads.and_then(|r| r.get(key)) {
            self.check_key(key)?;
            return Ok(value);
        }
        let value = self.get(key).await?;
        if let Some(r) = reads {
            r.keep(key, value.as_deref());
        }
        Ok(value)
    }

    /// The plugin's namespace (its name).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Refuse a `set` the caps do not allow, saying why.
    pub fn check_set(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), CapError> {
        self.check_key(key)?;
        if value.len() > self.config.max_value_bytes {
            return Err(CapError::refused(format!(
                "kv value of {} bytes for {key:?} is over the {}-byte cap \
                 (`[capabilities.kv] max_value_bytes`)",
                value.len(),
                self.config.max_value_bytes
            )));
        }
        if ttl_ms == Some(0) {
            return Err(CapError::refused(format!(
                "kv ttl-ms 0 for {key:?} would expire the key at once; use `delete`, or \
                 leave the ttl out for a key that does not expire"
            )));
        }
        Ok(())
    }

    /// The cap on live keys, which a commit of collected effects applies.
    pub fn max_keys(&self) -> u64 {
        self.config.max_keys
    }

    pub async fn set(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), CapError> {
        self.check_set(key, value, ttl_ms)?;
        self.store
            .plugin_kv_set(&self.namespace, key, value, ttl_ms, self.config.max_keys)
            .await
            .map_err(refusal)
    }

    pub async fn delete(&self, key: &str) -> Result<bool, CapError> {
        self.check_key(key)?;
        self.store
            .plugin_kv_delete(&self.namespace, key)
            .await
            .map_err(refusal)
    }

    /// `incr` on a value the call already read: the new value, or the refusal the store
    /// would give (for collected effects, whose increments are committed later).
    pub fn incr_of(&self, key: &str, current: Option<&[u8]>, by: i64) -> Result<i64, CapError> {
        let value = match current {
            None => 0,
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| {
                    CapError::refused(format!(
                        "kv incr of {key:?}: {}",
                        PluginKvRefused::NotAnInteger
                    ))
                })?,
        };
        value.checked_add(by).ok_or_else(|| {
            CapError::refused(format!(
                "kv incr of {key:?}: {}",
                PluginKvRefused::Overflow { by }
            ))
        })
    }

    pub async fn incr(&self, key: &str, by: i64) -> Result<i64, CapError> {
        self.check_key(key)?;
        self.store
            .plugin_kv_incr(&self.namespace, key, by, self.config.max_keys)
            .await
            .map_err(|e| match PluginKvRefused::find(&e) {
                Some(r) => CapError::refused(format!("kv incr of {key:?}: {r}")),
                None => CapError::Backend(e),
            })
    }
}

/// A refusal by the store's own rules is the plugin's to handle; anything else is the
/// store failing.
fn refusal(e: anyhow::Error) -> CapError {
    match PluginKvRefused::find(&e) {
        Some(r) => CapError::refused(format!("kv: {r}")),
        None => CapError::Backend(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted() -> Granted {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::storage::embedded::EmbeddedStore::open(
            &dir.path().join("s.redb"),
            Default::default(),
        )
        .unwrap();
        std::mem::forget(dir);
        Service::new(
            KvConfig {
                max_key_bytes: 8,
                ..Default::default()
            },
            Arc::new(store),
        )
        .grant("p")
    }

    fn refused(r: Result<(), CapError>) -> String {
        match r {
            Err(CapError::Refused(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_zero_ttl_is_refused_rather_than_expiring_at_once() {
        let g = granted();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let r =
            crate::runtime::deadline::wait(deadline, "test", g.set("k", b"v", Some(0))).unwrap();
        assert!(refused(r).contains("ttl-ms 0"));
    }

    #[test]
    fn keys_are_checked_before_the_store_is_asked() {
        let g = granted();
        assert!(refused(g.check_key("")).contains("empty"));
        assert!(refused(g.check_key("123456789")).contains("max_key_bytes"));
        assert!(refused(g.check_key("a\0b")).contains("control character"));
        g.check_key("../x").unwrap();
    }
}
