//! Instances: a store plus the typed exports of one instantiation.
//!
//! A store is not `Sync`, so one instance serves one call at a time; each loaded version
//! keeps a few idle instances for reuse. Instantiating from the pre-instantiated component
//! with the pooling allocator takes microseconds, so a trap simply drops the instance and
//! the next call gets a fresh one.

use std::sync::Arc;

use wasmtime::{Engine, Store};

use super::kind::{KindBindings, KindPre};
use super::limiter::PluginLimiter;
use super::state::{PluginContext, StoreState};

/// Limits applied to every store.
#[derive(Debug, Clone)]
pub struct CallLimits {
    /// Wall-clock deadline of one call, in epoch ticks (milliseconds).
    pub deadline_ticks: u64,
    /// Memory cap of one instance, all its linear memories together, in bytes.
    pub memory_bytes: usize,
    /// Cap on the size of one call's output, in bytes.
    pub max_output_bytes: usize,
    /// Consecutive failures that quarantine a plugin.
    pub quarantine_after: u32,
    /// Idle instances kept per version, at most.
    pub idle_instances: usize,
    /// Linear memory the idle instances of one version may hold together, in bytes (one
    /// is kept whatever its size).
    pub idle_memory_bytes: usize,
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

    /// Bytes of linear memory this instance holds (all its memories; they never shrink).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.store.data().limits.used()
    }
}

/// Whether an idle pool holding `idle` takes `instance` back: at most `idle_instances`,
/// and within `idle_memory_bytes` together, except that an empty pool always takes one (a
/// plugin called one call at a time then never instantiates per call, however large).
pub(crate) fn keep_idle(idle: &[Box<Instance>], instance: &Instance, limits: &CallLimits) -> bool {
    if idle.len() >= limits.idle_instances {
        return false;
    }
    if idle.is_empty() {
        return true;
    }
    let held: usize = idle.iter().map(|i| i.memory_bytes()).sum();
    held.saturating_add(instance.memory_bytes()) <= limits.idle_memory_bytes
}

/// A store with the memory cap and a deadline armed.
pub(crate) fn new_store(
    engine: &Engine,
    ctx: Arc<PluginContext>,
    limits: &CallLimits,
) -> Store<StoreState> {
    let limiter = PluginLimiter::new(limits.memory_bytes);
    let mut store = Store::new(engine, StoreState::new(ctx, limiter));
    store.limiter(|s| &mut s.limits);
    arm(&mut store, limits);
    store
}

/// Arm the deadline for one call (or an instantiation): the epoch deadline stops guest
/// code, the wall-clock one ends waits in host calls, both at the same moment.
pub(crate) fn arm(store: &mut Store<StoreState>, limits: &CallLimits) {
    arm_for(store, limits.deadline_ticks);
}

/// [`arm`] with a deadline of the caller's (a scheduled task's `timeout`), in ms.
pub(crate) fn arm_for(store: &mut Store<StoreState>, deadline_ms: u64) {
    let ticks = deadline_ms.max(1);
    store.set_epoch_deadline(ticks);
    store.data_mut().begin_call(ticks);
}
