//! The wasmtime engine, configured once: Cranelift, epoch interruption for deadlines, the
//! pooling allocator for microsecond instantiation, and a ticker thread that advances the
//! epoch every millisecond.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// How often the epoch advances; call deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Limits the engine is built for.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    /// Largest linear memory of one instance, in bytes.
    pub memory_bytes: u64,
    /// Most component instances alive at once (idle pools plus calls in flight).
    pub max_instances: u32,
}

/// Build the engine.
pub fn build(limits: &EngineLimits) -> Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);
    config.wasm_component_model(true);
    // Slots are reserved up front; a full pool makes instantiation fail for that call
    // only, reported as an error, never a crash.
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(limits.max_instances);
    pool.total_core_instances(limits.max_instances * 4);
    pool.total_memories(limits.max_instances * 2);
    pool.total_tables(limits.max_instances * 4);
    pool.max_memory_size(limits.memory_bytes as usize);
    pool.max_memories_per_component(8);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(anyhow::Error::from)
}

/// Advances the engine's epoch until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    /// Start ticking `engine`.
    pub fn start(engine: Engine) -> EpochTicker {
        super::deadline::tick();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    super::deadline::tick();
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch ticker thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Lower the calling thread's scheduling priority, so a compile never starves the
/// threads that serve plugin calls on a small machine.
pub fn lower_current_thread_priority() {
    // SAFETY: plain syscalls on the calling thread's own id; failure is harmless.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 15);
    }
}
