//! The wall-clock side of a call's deadline: waiting in host code.
//!
//! The epoch deadline stops guest code, but it cannot interrupt the host while a guest is
//! inside a host call (`wasi:io/poll`, a blocking stream write, later a `kv` read from a
//! slow Redis). So every call also carries the same deadline as an [`Instant`] in its
//! store, and every host call that may wait goes through [`wait`]: the wait ends at the
//! deadline with [`DeadlineExceeded`], which the call path reports as the call's timeout.
//!
//! Arming a call must stay cheap (a trivial call costs a fifth of a microsecond, a clock
//! read here a tenth of that), so the deadline is kept in milliseconds of a coarse clock
//! that the epoch ticker advances ([`coarse_now_ms`]), and turned into an `Instant` only
//! when a host call actually has to wait.
//!
//! Host futures (WASI's clock and stream readiness, HTTP) need a tokio runtime. A plugin
//! call can run on any thread — the market engine's own thread, the loader's, or a tokio
//! worker of the notify worker — and blocking a tokio worker on another runtime panics.
//! So waits run on a runtime of their own ([`io_runtime`]): directly on the calling thread
//! when it is outside any runtime, on a short-lived scoped thread otherwise. A future that
//! is ready at once (the common case: a log line, a clock already past) is polled once in
//! place and never leaves the thread.

use std::future::Future;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The coarse clock's zero.
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);
/// Milliseconds since [`ORIGIN`], as of the last epoch tick.
static NOW_MS: AtomicU64 = AtomicU64::new(0);

/// Advance the coarse clock (the epoch ticker does, every tick).
pub fn tick() {
    NOW_MS.store(ORIGIN.elapsed().as_millis() as u64, Ordering::Relaxed);
}

/// The coarse clock: milliseconds, as fresh as the last epoch tick (one load).
pub fn coarse_now_ms() -> u64 {
    NOW_MS.load(Ordering::Relaxed)
}

/// The instant a coarse-clock reading stands for.
pub fn instant_at(ms: u64) -> Instant {
    *ORIGIN + Duration::from_millis(ms)
}

/// A wait in host code reached the call's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the call's deadline passed while the plugin was waiting in `{during}`")]
pub struct DeadlineExceeded {
    /// The host call that was waiting (`wasi:io/poll`, `wasi:io/streams`, ...).
    pub during: &'static str,
}

/// The runtime host waits run on: two workers for tasks that host calls spawn (WASI
/// streams, outbound HTTP), time and I/O drivers enabled.
pub fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("plugin-io")
            .enable_all()
            .build()
            .expect("building the plugin I/O runtime")
    });
    &RUNTIME
}

/// Drive `fut` to completion, but not past `deadline`.
pub fn wait<F>(
    deadline: Instant,
    during: &'static str,
    fut: F,
) -> Result<F::Output, DeadlineExceeded>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = io_runtime();
    let mut fut = std::pin::pin!(fut);
    // Ready at once? Then no thread and no timer: poll in place, inside our runtime's
    // context so a future that creates a timer or spawns a task finds one.
    {
        let _context = rt.enter();
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Ok(out);
        }
    }
    if Instant::now() >= deadline {
        return Err(DeadlineExceeded { during });
    }
    // The timer is made inside `block_on`, so it belongs to the runtime that drives it.
    let bounded = async { tokio::time::timeout_at(deadline.into(), fut).await };
    let outcome = if tokio::runtime::Handle::try_current().is_err() {
        rt.block_on(bounded)
    } else {
        // This thread belongs to (or has entered) another runtime, where `block_on`
        // would panic: wait on a scoped thread instead (it may borrow the future).
        std::thread::scope(|scope| {
            scope
                .spawn(|| rt.block_on(bounded))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    };
    outcome.map_err(|_elapsed| DeadlineExceeded { during })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_future_is_answered_in_place() {
        let deadline = Instant::now();
        assert_eq!(wait(deadline, "test", async { 7 }), Ok(7));
    }

    #[test]
    fn a_long_wait_ends_at_the_deadline() {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(50);
        let r = wait(deadline, "test", async {
            tokio::time::sleep(Duration::from_secs(30)).await
        });
        assert_eq!(r, Err(DeadlineExceeded { during: "test" }));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn waits_work_from_inside_another_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(5);
            let r = wait(deadline, "test", async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                3
            });
            assert_eq!(r, Ok(3));
        });
    }
}
