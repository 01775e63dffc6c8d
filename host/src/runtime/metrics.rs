//! Per-plugin call counters and a lock-free latency histogram.
//!
//! Recording a call is a handful of relaxed atomic adds, so it can sit on the hot path of
//! every plugin call; quantiles are computed when someone asks (API, `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Log-linear buckets: 8 sub-buckets per power of two, from 1 ns to about 68 s.
const SUB_BUCKETS: usize = 8;
const OCTAVES: usize = 36;
const BUCKETS: usize = OCTAVES * SUB_BUCKETS;

/// A histogram of durations in nanoseconds, precise to about 9%.
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }
}

fn bucket_of(ns: u64) -> usize {
    let ns = ns.max(1);
    let octave = 63 - ns.leading_zeros() as usize;
    let sub = if octave >= 3 {
        ((ns >> (octave - 3)) & 0b111) as usize
    } else {
        ((ns << (3 - octave)) & 0b111) as usize
    };
    (octave * SUB_BUCKETS + sub).min(BUCKETS - 1)
}

/// The upper edge of a bucket, in nanoseconds.
fn bucket_upper(index: usize) -> u64 {
    let octave = index / SUB_BUCKETS;
    let sub = (index % SUB_BUCKETS) as u64;
    let base = 1u64 << octave;
    base + ((sub + 1) * base) / SUB_BUCKETS as u64
}

impl LatencyHistogram {
    /// Count one observation.
    pub fn record(&self, ns: u64) {
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of all observations, in nanoseconds.
    pub fn sum_ns(&self) -> u64 {
        self.sum_ns.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0..=1) in nanoseconds, or `None` before any observation.
    pub fn quantile_ns(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bucket_upper(i));
            }
        }
        Some(bucket_upper(BUCKETS - 1))
    }

    /// Cumulative counts at the given upper bounds (seconds), for Prometheus buckets.
    pub fn cumulative_at(&self, bounds_secs: &[f64]) -> Vec<u64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        bounds_secs
            .iter()
            .map(|b| {
                let limit_ns = (b * 1e9) as u64;
                counts
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| bucket_upper(*i) <= limit_ns)
                    .map(|(_, c)| c)
                    .sum()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_bucket_precision() {
        let h = LatencyHistogram::default();
        for ns in 1..=1000u64 {
            h.record(ns * 1000);
        }
        let p50 = h.quantile_ns(0.5).unwrap() as f64;
        let p99 = h.quantile_ns(0.99).unwrap() as f64;
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.15, "{p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.15, "{p99}");
        assert_eq!(h.count(), 1000);
    }

    #[test]
    fn empty_histogram_has_no_quantile() {
        assert_eq!(LatencyHistogram::default().quantile_ns(0.5), None);
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut last = 0;
        for ns in [
            1u64,
            2,
            3,
            7,
            8,
            9,
            100,
            1_000,
            123_456,
            9_999_999,
            u64::MAX / 4,
        ] {
            let b = bucket_of(ns);
            assert!(b >= last);
            assert!(bucket_upper(b) >= ns.min(bucket_upper(BUCKETS - 1)));
            last = b;
        }
    }
}
