//! Exponential backoff with full jitter (AWS's "full jitter": a uniform wait between 0
//! and the capped exponential), so many clients reconnecting at once spread out.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // At least a tenth of the step, so a burst of failures never spins.
        let floor = exp / 10;
        floor + exp.saturating_sub(floor).mul_f64(fastrand::f64())
    }

    /// After a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_capped_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut maxes = Vec::new();
        for _ in 0..10 {
            maxes.push(b.next_delay());
        }
        assert!(maxes.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(maxes[0] <= Duration::from_millis(100));
        assert!(maxes.iter().all(|d| *d >= Duration::from_millis(10)));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
