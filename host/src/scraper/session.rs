//! Sessions: each account's cookie jar in the key-value store (namespace
//! `scraper:sessions`, key = username), so a restart — or another host — reuses the login
//! instead of logging in again (SPEC §8: "login happens only when a session is missing or
//! rejected"). Cookies are secrets: this module never logs them, and the API shows only
//! whether a session exists and when it was saved.

use std::sync::Arc;

use anyhow::{Context, Result};
use impressox_browser::StoredCookie;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::Store;

const NAMESPACE: &str = "scraper:sessions";

/// What is stored per account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub cookies: Vec<StoredCookie>,
    pub saved_at_ms: i64,
    /// The site the cookies belong to: a session of another `base_url` is not reused.
    pub base_url: String,
}

impl Session {
    /// A digest of the jar's names and values, to save only when X rotated something.
    pub fn digest(cookies: &[StoredCookie]) -> String {
        let mut pairs: Vec<(&str, &str, &str)> = cookies
            .iter()
            .map(|c| (c.name.as_str(), c.domain.as_str(), c.value.as_str()))
            .collect();
        pairs.sort_unstable();
        let mut h = Sha256::new();
        for (name, domain, value) in pairs {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(domain.as_bytes());
            h.update([0]);
            h.update(value.as_bytes());
            h.update([1]);
        }
        hex::encode(&h.finalize()[..16])
    }

    /// Whether the jar holds the cookie that marks a logged-in session.
    pub fn has_cookie(cookies: &[StoredCookie], name: &str) -> bool {
        cookies
            .iter()
            .any(|c| c.name == name && !c.value.is_empty())
    }
}

/// The session store over the key-value seam.
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn Store>,
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The stored session of `username`, if any and readable. An unreadable one (written by
    /// another version) counts as missing: the account logs in again.
    pub async fn load(&self, username: &str) -> Result<Option<Session>> {
        let Some(text) = self
            .store
            .kv_get(NAMESPACE, username)
            .await
            .with_context(|| format!("reading the session of account {username}"))?
        else {
            return Ok(None);
        };
        match serde_json::from_str(&text) {
            Ok(s) => Ok(Some(s)),
            Err(err) => {
                tracing::warn!(account = username, error = %err, "stored session is unreadable; the account will log in again");
                Ok(None)
            }
        }
    }

    pub async fn save(&self, username: &str, session: &Session) -> Result<()> {
        let text = serde_json::to_string(session).context("encoding a session")?;
        self.store
            .kv_put(NAMESPACE, username, &text)
            .await
            .with_context(|| format!("saving the session of account {username}"))
    }

    pub async fn delete(&self, username: &str) -> Result<()> {
        self.store
            .kv_delete(NAMESPACE, username)
            .await
            .with_context(|| format!("deleting the session of account {username}"))?;
        Ok(())
    }
}
