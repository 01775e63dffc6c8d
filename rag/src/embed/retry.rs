//! When to try a remote embedding request again, and how long to wait first.
//!
//! Exponential backoff with full jitter (a random wait between zero and `base × 2^attempt`,
//! capped), so clients that failed together do not return together. A server's
//! `Retry-After` (seconds or an HTTP date) wins over the computed wait: it knows when its
//! rate limit resets. Either wait is capped at [`Backoff::max`], so a hostile or broken
//! header cannot park a worker for hours.

use std::time::{Duration, SystemTime};

/// The backoff of one client.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The ceiling of the first retry's jittered wait; doubles per attempt.
    pub base: Duration,
    /// No wait is longer than this, `Retry-After` included.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max);
        }
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// Whether an HTTP status is worth another try: rate limits, timeouts and server errors.
/// Every other 4xx is the request's fault (a bad key, an unknown model) and would fail
/// again the same way.
pub fn retryable_status(status: u16) -> bool {
    status == 429 || status == 408 || (500..=599).contains(&status)
}

/// A `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3). `None` for
/// anything else, which then falls back to the computed backoff.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jittered_waits_stay_under_a_doubling_ceiling_and_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for attempt in 0..8 {
            let ceiling = Duration::from_millis(100 * (1 << attempt)).min(b.max);
            for _ in 0..50 {
                assert!(b.delay(attempt, None) <= ceiling);
            }
        }
        // Large attempt numbers do not overflow.
        assert!(b.delay(u32::MAX, None) <= b.max);
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let b = Backoff::default();
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(b.delay(0, Some(Duration::from_secs(3600))), b.max);
    }

    #[test]
    fn retry_after_as_seconds_or_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn which_statuses_are_retried() {
        for s in [429, 408, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert!(!retryable_status(s), "{s}");
        }
    }
}
