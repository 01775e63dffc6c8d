//! The memory cap of a plugin, counted over everything its store holds.
//!
//! wasmtime's `StoreLimits` caps each linear memory on its own, and a component may hold
//! several (one per core instance that defines one): eight memories each under the cap
//! are eight times the cap. This limiter keeps one running total of every memory of the
//! store, so `memory_limit_mib` is what the plugin may use in all, and it bounds how many
//! instances, memories and tables a store may create and how large a table may grow.

use wasmtime::ResourceLimiter;

/// Most core and component instances one store may create.
const MAX_INSTANCES: usize = 64;
/// Most linear memories one store may create.
const MAX_MEMORIES: usize = 8;
/// Most tables one store may create.
const MAX_TABLES: usize = 64;
/// Most elements of one table.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// A memory growth would take a plugin past its cap (or the growth itself failed).
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "memory cap of {cap} bytes reached: the plugin holds {used} bytes and asked for {asked} more"
)]
pub struct MemoryCapExceeded {
    pub cap: usize,
    pub used: usize,
    pub asked: usize,
}

/// Counts a store's memory against its plugin's cap.
#[derive(Debug)]
pub struct PluginLimiter {
    cap: usize,
    used: usize,
    /// The growth approved last, given back if the growth itself then fails.
    last_grant: usize,
}

impl PluginLimiter {
    /// A limiter for a plugin allowed `cap` bytes of memory in all.
    pub fn new(cap: usize) -> PluginLimiter {
        PluginLimiter {
            cap,
            used: 0,
            last_grant: 0,
        }
    }

    /// Bytes of linear memory the store holds now.
    pub fn used(&self) -> usize {
        self.used
    }
}

impl ResourceLimiter for PluginLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let asked = desired.saturating_sub(current);
        if self.used.saturating_add(asked) > self.cap {
            // An error, not `Ok(false)`: a careless guest would carry on after a failed
            // `memory.grow` and trap somewhere unrelated; this names the cause.
            return Err(wasmtime::Error::new(MemoryCapExceeded {
                cap: self.cap,
                used: self.used,
                asked,
            }));
        }
        self.used += asked;
        self.last_grant = asked;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.used -= self.last_grant.min(self.used);
        self.last_grant = 0;
        Err(error.context("memory growth failed"))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_every_memory_together() {
        let mut l = PluginLimiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        // A second memory of 60 fits under a per-memory cap of 100, but not in the total.
        let err = l.memory_growing(0, 60, None).unwrap_err();
        assert!(err.downcast_ref::<MemoryCapExceeded>().is_some());
        assert!(l.memory_growing(60, 100, None).unwrap());
        assert_eq!(l.used(), 100);
    }

    #[test]
    fn a_failed_growth_is_given_back() {
        let mut l = PluginLimiter::new(100);
        assert!(l.memory_growing(0, 40, None).unwrap());
        assert!(l.memory_grow_failed(wasmtime::format_err!("no")).is_err());
        assert_eq!(l.used(), 0);
    }
}
