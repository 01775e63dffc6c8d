//! `BrowserPool`: browser slots, context placement, the supervisor that relaunches a dead
//! browser, and shutdown (docs/design/x-scraper.md §2.3).
//!
//! A slot holds at most one running browser (`Live`) at a time. Browsers launch lazily, on
//! the first context placed in the slot. When a browser dies (the handler task saw the
//! connection fail, the process exited, or a version probe timed out) the slot's `Live` is
//! marked gone: pages of it answer `Gone` at once, and the supervisor relaunches the slot (with
//! backoff 1 s → 30 s, ±20 %) when contexts live there. Contexts re-create themselves in the new
//! browser on their next call (`context.rs`). The slots and the supervisor are `slots.rs`;
//! this file is the public face.

use std::sync::Arc;

use chromiumoxide::cdp::browser_protocol::network::ResourceType;

use crate::config::PoolConfig;
use crate::context::{AccountContext, ContextSpec};
use crate::error::BrowserError;
use crate::filter::RequestFilter;
use crate::launch;
use crate::slots::PoolInner;

/// A pool of headless Chromium processes hosting one browser context per account.
/// Cheap to clone; every clone is the same pool.
#[derive(Clone)]
pub struct BrowserPool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for BrowserPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserPool")
            .field("browsers", &self.inner.cfg.browsers)
            .field("pids", &self.browser_pids())
            .field("restarts", &self.restarts())
            .finish()
    }
}

impl BrowserPool {
    /// Validates the configuration, sweeps profile directories of dead processes and starts the
    /// supervisor. Browsers are launched on demand by [`BrowserPool::context`].
    pub async fn start(cfg: PoolConfig) -> Result<BrowserPool, BrowserError> {
        cfg.validate()?;
        let blocked: Arc<[ResourceType]> = cfg.blocked_types()?.into();
        if let Err(e) = tokio::fs::metadata(&cfg.executable).await {
            return Err(BrowserError::Launch(format!(
                "{} is not usable ({e}): install Chromium (apt-get install -y chromium) or set \
                 [scraper.browser] executable",
                cfg.executable.display()
            )));
        }
        tokio::fs::create_dir_all(&cfg.profile_root)
            .await
            .map_err(|e| {
                BrowserError::Launch(format!(
                    "cannot create the profile root {}: {e}",
                    cfg.profile_root.display()
                ))
            })?;
        let root = cfg.profile_root.clone();
        let _ = tokio::task::spawn_blocking(move || launch::sweep_stale_profiles(&root)).await;

        Ok(BrowserPool {
            inner: PoolInner::start(cfg, blocked),
        })
    }

    /// Creates a browser context for one account in the least loaded browser (launching it if
    /// needed), with the account's proxy and cookies.
    pub async fn context(&self, spec: ContextSpec) -> Result<AccountContext, BrowserError> {
        if self.inner.is_shut() {
            return Err(BrowserError::Gone);
        }
        let slot = self.inner.place()?;
        AccountContext::create(self.inner.clone(), slot, spec, None).await
    }

    /// As [`BrowserPool::context`], with every request of the context's pages held until
    /// `filter` allows it (a refused one fails with `AccessDenied`). Needs interception
    /// (`block_resources` not empty); a page of such a context is refused otherwise.
    pub async fn filtered_context(
        &self,
        spec: ContextSpec,
        filter: RequestFilter,
    ) -> Result<AccountContext, BrowserError> {
        if self.inner.is_shut() {
            return Err(BrowserError::Gone);
        }
        let slot = self.inner.place()?;
        AccountContext::create(self.inner.clone(), slot, spec, Some(filter)).await
    }

    /// Process ids of the running browsers (for metrics, memory figures and tests).
    pub fn browser_pids(&self) -> Vec<u32> {
        self.inner.pids()
    }

    /// How many times a browser was relaunched after it died.
    pub fn restarts(&self) -> u64 {
        self.inner.restarts()
    }

    /// Closes every browser (politely, then by kill), reaps the processes and removes their
    /// profile directories. Contexts and pages answer `Gone` afterwards.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await
    }
}
