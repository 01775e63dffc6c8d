//! The engine's side of the cluster: which partitions it may evaluate and commit (with
//! their fencing tokens), the recent ticks of every partition kept for a takeover, each
//! symbol's floor (ticks at or before it were evaluated by the previous owner), and rule
//! changes that arrived for partitions not held (the host may be taking them over that
//! moment).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{lease_key, partition_of};
use crate::market::rules::RuleRecord;

/// Most ticks kept per partition. A takeover needs the ticks since the previous owner's
/// last commit (about a lease); a feed faster than this loses the oldest.
pub const BUFFER_PER_PARTITION: usize = 20_000;

/// A tick as it arrived, kept for a takeover.
#[derive(Debug, Clone, Copy)]
pub struct Buffered {
    seq: u64,
    at: Instant,
    pub source: usize,
    pub sid: u32,
    pub price: f64,
    pub ts_ms: i64,
}

/// A rule change for a partition not held.
pub enum Deferred {
    Upsert(Box<RuleRecord>, bool),
    Remove(String),
}

pub struct Owned {
    pub partitions: u32,
    tokens: Vec<Option<String>>,
    /// Partition of each symbol id (by the engine's dense ids).
    part_of: Vec<u32>,
    buffer: Vec<VecDeque<Buffered>>,
    seq: u64,
    /// Per symbol id: the committed tick time when its partition was taken.
    floor: Vec<i64>,
    deferred: Vec<(Instant, Deferred)>,
    /// How long buffered ticks and deferred changes are kept.
    window: Duration,
}

impl Owned {
    pub fn new(partitions: u32, lease_ms: u64) -> Owned {
        let n = partitions.max(1) as usize;
        Owned {
            partitions: partitions.max(1),
            tokens: vec![None; n],
            part_of: Vec::new(),
            buffer: vec![VecDeque::new(); n],
            seq: 0,
            floor: Vec::new(),
            deferred: Vec::new(),
            window: Duration::from_millis(lease_ms.saturating_mul(2)) + Duration::from_secs(5),
        }
    }

    /// The partition of symbol `sid` named `name`.
    pub fn partition(&mut self, sid: u32, name: &str) -> u32 {
        let i = sid as usize;
        if self.part_of.len() <= i {
            self.part_of.resize(i + 1, u32::MAX);
            self.floor.resize(i + 1, i64::MIN);
        }
        if self.part_of[i] == u32::MAX {
            self.part_of[i] = partition_of(name, self.partitions);
        }
        self.part_of[i]
    }

    pub fn owns(&self, p: u32) -> bool {
        self.tokens.get(p as usize).is_some_and(Option::is_some)
    }

    /// Partitions held now.
    pub fn owned(&self) -> Vec<u32> {
        (0..self.partitions).filter(|p| self.owns(*p)).collect()
    }

    /// Keep a tick (for a takeover of its partition).
    pub fn buffer(&mut self, p: u32, source: usize, sid: u32, price: f64, ts_ms: i64) {
        let now = Instant::now();
        self.seq += 1;
        let q = &mut self.buffer[p as usize];
        while q
            .front()
            .is_some_and(|b| now.duration_since(b.at) > self.window)
            || q.len() >= BUFFER_PER_PARTITION
        {
            q.pop_front();
        }
        q.push_back(Buffered {
            seq: self.seq,
            at: now,
            source,
            sid,
            price,
            ts_ms,
        });
    }

    /// Whether the tick of `sid` at `ts_ms` was evaluated by the partition's previous
    /// owner (at or before its committed tick time).
    pub fn evaluated_before(&self, sid: u32, ts_ms: i64) -> bool {
        self.floor.get(sid as usize).is_some_and(|f| ts_ms <= *f)
    }

    pub fn set_floor(&mut self, sid: u32, name: &str, ts_ms: i64) {
        self.partition(sid, name);
        self.floor[sid as usize] = ts_ms;
    }

    /// Hold `parts` with their tokens.
    pub fn take(&mut self, parts: &[(u32, String)]) {
        for (p, token) in parts {
            if let Some(slot) = self.tokens.get_mut(*p as usize) {
                *slot = Some(token.clone());
            }
        }
    }

    /// Stop holding `parts`.
    pub fn drop_parts(&mut self, parts: &[u32]) {
        for p in parts {
            if let Some(slot) = self.tokens.get_mut(*p as usize) {
                *slot = None;
            }
        }
    }

    /// The buffered ticks of `parts`, in arrival order (taken out of the buffer).
    pub fn drain(&mut self, parts: &[u32]) -> Vec<Buffered> {
        let mut out: Vec<Buffered> = Vec::new();
        for p in parts {
            if let Some(q) = self.buffer.get_mut(*p as usize) {
                out.extend(std::mem::take(q));
            }
        }
        out.sort_by_key(|b| b.seq);
        out
    }

    /// The (lease key, token) of every partition held: what a commit is fenced with.
    pub fn fence(&self) -> Vec<(String, String)> {
        self.tokens
            .iter()
            .enumerate()
            .filter_map(|(p, t)| Some((lease_key(p as u32), t.clone()?)))
            .collect()
    }

    /// The partition of a lease key.
    pub fn partition_of_key(key: &str) -> Option<u32> {
        key.rsplit_once(':')?.1.parse().ok()
    }

    /// Remember a change for a partition not held (dropping ones past the window).
    pub fn defer(&mut self, change: Deferred) {
        let now = Instant::now();
        self.deferred
            .retain(|(at, _)| now.duration_since(*at) <= self.window);
        self.deferred.push((now, change));
    }

    /// The remembered changes, oldest first (taken out).
    pub fn take_deferred(&mut self) -> Vec<Deferred> {
        std::mem::take(&mut self.deferred)
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffered_ticks_come_back_in_arrival_order_per_partition() {
        let mut o = Owned::new(4, 1000);
        let (a, b) = (o.partition(0, "AAA"), o.partition(1, "BBB"));
        o.buffer(a, 0, 0, 1.0, 10);
        o.buffer(b, 0, 1, 2.0, 11);
        o.buffer(a, 0, 0, 3.0, 12);
        let got: Vec<i64> = o.drain(&[a, b]).iter().map(|t| t.ts_ms).collect();
        assert_eq!(got, vec![10, 11, 12]);
        assert!(o.drain(&[a]).is_empty(), "drained once");
    }

    #[test]
    fn fences_name_the_held_leases_and_floors_skip_evaluated_ticks() {
        let mut o = Owned::new(8, 1000);
        o.take(&[(3, "h/1".into()), (5, "h/2".into())]);
        assert_eq!(
            o.fence(),
            vec![
                ("market:cluster:lease:3".to_string(), "h/1".to_string()),
                ("market:cluster:lease:5".to_string(), "h/2".to_string())
            ]
        );
        assert_eq!(Owned::partition_of_key("market:cluster:lease:5"), Some(5));
        o.drop_parts(&[3]);
        assert_eq!(o.owned(), vec![5]);
        o.set_floor(2, "XYZ", 100);
        assert!(o.evaluated_before(2, 100));
        assert!(!o.evaluated_before(2, 101));
        assert!(!o.evaluated_before(7, 0), "no floor: nothing was evaluated");
    }
}
