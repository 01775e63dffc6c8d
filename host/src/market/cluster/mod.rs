//! Several hosts on one Redis, each market rule evaluated by exactly one of them.
//!
//! Symbols hash to `[market] partitions` partitions ([`partition_of`]: FNV-1a, the same on
//! every host and every build, unlike Rust's seeded hasher). Each host registers in
//! `market:cluster:hosts` with a heartbeat and holds leases `market:cluster:lease:<p>` on
//! its fair share of the partitions ([`fair_share`]: ceil(partitions / live hosts)),
//! renewed every third of `lease_secs`. Every host ingests every feed (ingest is cheap;
//! evaluation is the cost) and the engine evaluates only the ticks of partitions it
//! holds; the others go into a short buffer per partition, so a host taking a partition
//! over evaluates the ticks since the previous owner's last commit.
//!
//! - `leases`: the Redis side, each step one Lua script: heartbeat and compare-and-renew,
//!   take free leases (`SET NX PX`), compare-and-delete, the status for the API;
//! - `coordinator`: the task that renews, takes its share and gives up what is over it
//!   (after the engine committed those partitions), and tells the engine;
//! - `changes`: rule changes made through any host reach the owner through the
//!   `market:rules:changes` stream.
//!
//! Why nothing is lost or doubled: a lease value is a fencing token unique to one
//! acquisition, and the engine's commit script writes nothing unless every lease it
//! commits for still holds its token (`storage::Fenced`). A new owner loads the last
//! committed rule states and prices of its partitions after taking the leases, and skips
//! ticks at or before a symbol's committed tick time (the previous owner evaluated them).
//! See `docs/design/scale-out.md`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

pub mod changes;
pub mod coordinator;
pub mod leases;
pub mod owned;

/// The hosts' heartbeats: a sorted set of host name → Redis time (ms) of the last one.
pub const HOSTS_KEY: &str = "market:cluster:hosts";

/// The lease key of partition `p`.
pub fn lease_key(p: u32) -> String {
    format!("market:cluster:lease:{p}")
}

/// The partition of `symbol` among `partitions`: 64-bit FNV-1a of its bytes, modulo.
/// Stable across hosts, builds and restarts (a seeded hasher would not be).
pub fn partition_of(symbol: &str, partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in symbol.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(partitions.max(1))) as u32
}

/// How many partitions one host should hold: ceil(partitions / live hosts), so the shares
/// of all live hosts cover every partition.
pub fn fair_share(partitions: u32, live_hosts: u32) -> u32 {
    partitions.div_ceil(live_hosts.max(1))
}

/// A fencing token for a new lease of `host`: unique to this acquisition, so a commit made
/// under an older lease of the same host is refused too.
pub fn new_token(host: &str) -> String {
    format!("{host}/{:016x}", fastrand::u64(..))
}

/// The host a lease token belongs to.
pub fn token_host(token: &str) -> &str {
    token.rsplit_once('/').map_or(token, |(h, _)| h)
}

/// What this host knows of the cluster, for the API and `/metrics`.
pub struct ClusterView {
    pub host: String,
    pub partitions: u32,
    pub lease_ms: u64,
    /// Partitions held now, with their tokens (never shown outside this host).
    held: Mutex<BTreeMap<u32, String>>,
    /// Leases taken, given up (rebalance, shutdown) and lost (expired, fenced).
    pub acquired: AtomicU64,
    pub released: AtomicU64,
    pub lost: AtomicU64,
    /// Live hosts at the last heartbeat.
    pub live_hosts: AtomicU64,
    pub leases: leases::Leases,
}

impl ClusterView {
    pub fn new(
        host: String,
        partitions: u32,
        lease_ms: u64,
        leases: leases::Leases,
    ) -> ClusterView {
        ClusterView {
            host,
            partitions,
            lease_ms,
            held: Mutex::new(BTreeMap::new()),
            acquired: AtomicU64::new(0),
            released: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            live_hosts: AtomicU64::new(0),
            leases,
        }
    }

    /// Partitions held now.
    pub fn owned(&self) -> Vec<u32> {
        self.held.lock().keys().copied().collect()
    }

    pub fn held(&self) -> BTreeMap<u32, String> {
        self.held.lock().clone()
    }

    fn set_held(&self, held: &BTreeMap<u32, String>) {
        *self.held.lock() = held.clone();
    }

    /// Lease changes so far (taken + given up + lost).
    pub fn lease_changes(&self) -> u64 {
        self.acquired.load(Ordering::Relaxed)
            + self.released.load(Ordering::Relaxed)
            + self.lost.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a_and_stable() {
        // Known FNV-1a 64 values: the empty string and "a".
        assert_eq!(
            partition_of("", u32::MAX),
            (0xcbf2_9ce4_8422_2325u64 % u64::from(u32::MAX)) as u32
        );
        assert_eq!(
            partition_of("a", u32::MAX),
            (0xaf63_dc4c_8601_ec8cu64 % u64::from(u32::MAX)) as u32
        );
        // Pinned: a change here moves every symbol to another partition on upgrade.
        assert_eq!(partition_of("BTCUSDT", 64), partition_of("BTCUSDT", 64));
        let pinned: Vec<u32> = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
            .iter()
            .map(|s| partition_of(s, 64))
            .collect();
        assert_eq!(pinned, PINNED);
        assert_eq!(partition_of("BTCUSDT", 1), 0);
        assert_eq!(partition_of("BTCUSDT", 0), 0, "0 partitions act as one");
    }

    const PINNED: [u32; 3] = [44, 48, 61];

    #[test]
    fn symbols_spread_over_the_partitions() {
        let mut counts = [0u32; 64];
        for i in 0..6400 {
            counts[partition_of(&format!("S{i}USDT"), 64) as usize] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 60 && *max < 150, "uneven spread: {min}..{max}");
    }

    #[test]
    fn fair_shares_cover_every_partition() {
        assert_eq!(fair_share(64, 1), 64);
        assert_eq!(fair_share(64, 2), 32);
        assert_eq!(fair_share(64, 3), 22);
        assert_eq!(fair_share(64, 0), 64, "no live host counts as one");
        assert_eq!(fair_share(1, 3), 1);
        for n in 1..200u32 {
            for h in 1..20u32 {
                let s = fair_share(n, h);
                assert!(
                    s * h >= n,
                    "{n} partitions, {h} hosts: share {s} leaves some out"
                );
                assert!(
                    (s - 1) * h < n,
                    "{n} partitions, {h} hosts: share {s} is not the least"
                );
            }
        }
    }

    #[test]
    fn tokens_name_their_host() {
        let t = new_token("host-a:8080");
        assert_eq!(token_host(&t), "host-a:8080");
        assert_ne!(t, new_token("host-a:8080"));
    }
}
