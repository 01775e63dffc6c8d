//! Instances: a store plus the typed exports of one instantiation.
//!
//! A store is not `Sync`, so one instance serves one call at a time; each loaded version
//! keeps a few idle instances for reuse. Instantiating from the pre-instantiated component
//! with the pooling allocator takes microseconds, so a trap simply drops the instance and
//! the next call gets a fresh one.

use std::sync::Arc;

use wasmtime::{Engine, Store, StoreLimitsBuilder};

use super::kind::{KindBindings, KindPre};
use super::state::{PluginContext, StoreState};

/// Limits applied to every store.
#[derive(Debug, Clone)]
pub struct CallLimits {
    /// Wall-clock deadline of one call, in epoch ticks (milliseconds).
    pub deadline_ticks: u64,
    /// Linear-memory cap, in bytes.
    pub memory_bytes: usize,
    /// Cap on the size of one call's output, in bytes.
    pub max_output_bytes: usize,
    /// Consecutive failures that quarantine a plugin.
    pub quarantine_after: u32,
    /// Idle instances kept per version.
    pub idle_instances: usize,
    /// Calls after which an instance is replaced by a fresh one.
    pub recycle_after_calls: u64,
}

/// One instantiation of a plugin.
pub(crate) struct Instance {
    pub(crate) store: Store<StoreState>,
    pub(crate) bindings: KindBindings,
    pub(crate) calls: u64,
}

impl Instance {
    /// Instantiate `pre` in a fresh store. Instantiation runs guest code (constructors), so
    /// it runs under the call deadline too.
    pub(crate) fn new(
        engine: &Engine,
        pre: &KindPre,
        ctx: Arc<PluginContext>,
        limits: &CallLimits,
    ) -> wasmtime::Result<Instance> {
        let mut store = new_store(engine, ctx, limits);
        let bindings = pre.instantiate(&mut store)?;
        Ok(Instance {
            store,
            bindings,
            calls: 0,
        })
    }
}

/// A store with the memory cap and a deadline armed.
pub(crate) fn new_store(
    engine: &Engine,
    ctx: Arc<PluginContext>,
    limits: &CallLimits,
) -> Store<StoreState> {
    let store_limits = StoreLimitsBuilder::new()
        .memory_size(limits.memory_bytes)
        .table_elements(1 << 20)
        .instances(64)
        .tables(64)
        .memories(16)
        .trap_on_grow_failure(true)
        .build();
    let mut store = Store::new(engine, StoreState::new(ctx, store_limits));
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(limits.deadline_ticks);
    store
}
