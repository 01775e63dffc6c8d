//! How a run learns it must end early (issue 12, item 4).
//!
//! Two signals, both level-triggered, so a run that looks late still sees them:
//! - **finish**: end at the next step boundary (between two pages, or before the first),
//!   keeping everything read so far. The worker raises it for every run when it stops; the
//!   lease keeper (`lease`) raises it for one run whose target lease could not be renewed,
//!   since another host may be running the target by then.
//! - **abandon**: stop waiting for the step under way (a navigation, a scroll, a parse). The
//!   worker raises it when most of `shutdown_grace_secs` is spent and a run is still inside
//!   a step, so that saving progress and releasing the lease still fit in the grace. Only
//!   steps that completed count as progress, so an abandoned page is read again next time.
//!
//! Either way the run returns a report with outcome `stopped`, which the worker saves as a
//! normal end would (cursor, oldest id, last run) before it releases the target's lease.

use std::sync::Arc;

use tokio::sync::watch;

/// Why a run stops early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// The worker is stopping.
    Shutdown,
    /// The target's lease could not be renewed: another host may hold it now.
    LeaseLost,
}

impl StopCause {
    /// The run's error text: why it ended where it did.
    pub fn describe(self, pages: u32) -> String {
        let why = match self {
            StopCause::Shutdown => "the worker is shutting down",
            StopCause::LeaseLost => {
                "the target's lease could not be renewed (another host may run it now)"
            }
        };
        format!("stopped after {pages} page(s): {why}; the next run continues from here")
    }
}

/// The worker's side: raises the signals for every run it started.
pub struct Stopper {
    finish: watch::Sender<bool>,
    abandon: watch::Sender<bool>,
}

impl Default for Stopper {
    fn default() -> Self {
        Stopper {
            finish: watch::channel(false).0,
            abandon: watch::channel(false).0,
        }
    }
}

impl Stopper {
    /// Every run ends at its next step boundary.
    pub fn finish_runs(&self) {
        self.finish.send_replace(true);
    }

    /// Every run stops waiting for its current step.
    pub fn abandon_steps(&self) {
        self.abandon.send_replace(true);
    }

    /// The signal for one new run.
    pub fn run_signal(&self) -> RunStop {
        RunStop {
            shutdown: self.finish.subscribe(),
            abandon: self.abandon.subscribe(),
            lease_lost: Arc::new(watch::channel(false).0),
        }
    }
}

/// A run's side; cheap to clone.
#[derive(Clone)]
pub struct RunStop {
    shutdown: watch::Receiver<bool>,
    abandon: watch::Receiver<bool>,
    lease_lost: Arc<watch::Sender<bool>>,
}

impl RunStop {
    /// Whether the run should end at this step boundary, and why.
    pub fn cause(&self) -> Option<StopCause> {
        if *self.shutdown.borrow() {
            Some(StopCause::Shutdown)
        } else if *self.lease_lost.borrow() {
            Some(StopCause::LeaseLost)
        } else {
            None
        }
    }

    /// This run's target lease is gone (raised by the lease keeper).
    pub fn lease_lost(&self) {
        self.lease_lost.send_replace(true);
    }

    /// Resolves once [`RunStop::cause`] has one (for waits between steps).
    pub async fn finishing(&self) {
        tokio::select! {
            () = raised(self.shutdown.clone()) => {}
            () = raised(self.lease_lost.subscribe()) => {}
        }
    }

    /// Resolves once the step under way is to be abandoned.
    pub async fn abandoned(&self) {
        raised(self.abandon.clone()).await;
    }
}

/// Resolves when the flag is up; never, if its sender is gone without raising it (nothing
/// can raise it any more).
async fn raised(mut flag: watch::Receiver<bool>) {
    if flag.wait_for(|on| *on).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn signals_reach_runs_started_before_and_after() {
        let stopper = Stopper::default();
        let early = stopper.run_signal();
        assert_eq!(early.cause(), None);

        let other = stopper.run_signal();
        other.lease_lost();
        assert_eq!(other.cause(), Some(StopCause::LeaseLost));
        assert_eq!(early.cause(), None, "a lost lease stops its own run only");
        tokio::time::timeout(Duration::from_secs(1), other.finishing())
            .await
            .expect("a raised signal is seen at once");

        let waiting = tokio::spawn({
            let early = early.clone();
            async move { early.finishing().await }
        });
        stopper.finish_runs();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("a waiting run wakes")
            .unwrap();
        assert_eq!(early.cause(), Some(StopCause::Shutdown));
        assert_eq!(stopper.run_signal().cause(), Some(StopCause::Shutdown));

        assert!(
            tokio::time::timeout(Duration::from_millis(50), early.abandoned())
                .await
                .is_err(),
            "finishing is not abandoning"
        );
        stopper.abandon_steps();
        tokio::time::timeout(Duration::from_secs(1), early.abandoned())
            .await
            .expect("abandon is seen");
    }
}
