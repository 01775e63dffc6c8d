//! Per-channel rate limits as spacing: no two messages under one key closer than its
//! period. Spacing rather than token buckets, because a bucket of 30 refilled at 30/s lets
//! 60 through in some one-second window, and Telegram counts windows; spacing lets at most
//! N through in any window of N periods. Periods carry a 2 % margin so network jitter
//! cannot make arrivals look faster than the limit at the other end.
//!
//! Two kinds of key:
//! - per recipient (a chat, an address, a URL): a "next free time" that moves forward with
//!   every reservation (GCRA with a burst of one), so one chat's messages keep their order;
//! - shared (a channel's overall limit): a calendar of taken slots, where a reservation
//!   takes the earliest free slot at or after the time its recipient allows. A chat with a
//!   long backlog therefore books slots far ahead without blocking other chats now.
//!
//! Slots are a plan: a send can start late (the due-poller's cadence, a busy runtime)
//! and a late send followed by punctual ones would bunch. So every send also passes a
//! gate ([`Limiter::admit`]) that counts the sends really started per key over a sliding
//! window (N per window, the window stretched by the same margin) and holds a send
//! until it fits. The plan keeps order and spreads the load; the gate is the guarantee.
//!
//! The limiter is per host: with several notify hosts on one bot token a chat can get up
//! to one message per host per period, and Telegram's 429 + `retry_after` (honoured
//! exactly, and fed back through [`Limiter::penalize`]) restores order.

use std::collections::{BTreeSet, HashMap};

/// One key and the spacing it enforces.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub key: String,
    pub period_ms: i64,
    /// A channel-wide limit (calendar) rather than a recipient's (next free time).
    pub shared: bool,
    /// For the gate: at most `per` sends started in any `window_ms` (margin included).
    pub per: usize,
    pub window_ms: i64,
}

/// The margin added to every period.
const MARGIN: f64 = 1.02;

impl Limit {
    /// `per` messages per `window_ms` to one recipient.
    pub fn recipient(key: String, per: f64, window_ms: f64) -> Limit {
        Limit {
            key,
            period_ms: period(per, window_ms),
            shared: false,
            per: gate_count(per),
            window_ms: (window_ms * MARGIN).ceil() as i64,
        }
    }

    /// `per` messages per `window_ms` over a whole channel.
    pub fn shared(key: String, per: f64, window_ms: f64) -> Limit {
        Limit {
            key,
            period_ms: period(per, window_ms),
            shared: true,
            per: gate_count(per),
            window_ms: (window_ms * MARGIN).ceil() as i64,
        }
    }
}

/// Whole sends per window (a limit of 0.5/s becomes 1 per 2 s through `window`).
fn gate_count(per: f64) -> usize {
    (per.floor() as usize).max(1)
}

fn period(per: f64, window_ms: f64) -> i64 {
    ((window_ms / per) * MARGIN).ceil() as i64
}

/// The spacing state of every key this host has used.
#[derive(Debug, Default)]
pub struct Limiter {
    next_ms: HashMap<String, i64>,
    calendars: HashMap<String, BTreeSet<i64>>,
    /// Start times of the most recent real sends per key (at most `per` kept).
    started: HashMap<String, std::collections::VecDeque<i64>>,
    enabled: bool,
}

impl Limiter {
    pub fn new(enabled: bool) -> Limiter {
        Limiter {
            enabled,
            ..Default::default()
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Reserve one slot per part under every limit; part i goes at `slots[i]` (each ≥ now,
    /// in order).
    pub fn reserve(&mut self, limits: &[Limit], parts: u32, now_ms: i64) -> Vec<i64> {
        let parts = parts.max(1) as usize;
        if !self.enabled || limits.is_empty() {
            return vec![now_ms; parts];
        }
        let mut slots = Vec::with_capacity(parts);
        let mut earliest = now_ms;
        for _ in 0..parts {
            let mut t = limits
                .iter()
                .filter(|l| !l.shared)
                .filter_map(|l| self.next_ms.get(&l.key).copied())
                .fold(earliest, i64::max);
            // Moving later never breaks a recipient limit, so fit the shared calendars
            // until all of them agree.
            for _ in 0..16 {
                let before = t;
                for l in limits.iter().filter(|l| l.shared) {
                    let cal = self.calendars.entry(l.key.clone()).or_default();
                    t = earliest_free(cal, t, l.period_ms);
                }
                if t == before {
                    break;
                }
            }
            for l in limits {
                if l.shared {
                    self.calendars.entry(l.key.clone()).or_default().insert(t);
                } else {
                    self.next_ms.insert(l.key.clone(), t + l.period_ms);
                }
            }
            slots.push(t);
            earliest = t;
        }
        slots
    }

    /// May a send under `limits` start at `now_ms`? `Ok(())` records it as started;
    /// `Err(t)` says to come back at `t` (nothing recorded).
    pub fn admit(&mut self, limits: &[Limit], now_ms: i64) -> Result<(), i64> {
        if !self.enabled {
            return Ok(());
        }
        let mut earliest = now_ms;
        for l in limits {
            if let Some(q) = self.started.get(&l.key)
                && q.len() >= l.per
            {
                // The send `per` back must have left the window.
                earliest = earliest.max(q[q.len() - l.per] + l.window_ms);
            }
        }
        if earliest > now_ms {
            return Err(earliest);
        }
        for l in limits {
            let q = self.started.entry(l.key.clone()).or_default();
            q.push_back(now_ms);
            while q.len() > l.per {
                q.pop_front();
            }
        }
        Ok(())
    }

    /// Hold a recipient key until `until_ms` (after a 429 with `retry_after`).
    pub fn penalize(&mut self, key: &str, until_ms: i64) {
        let e = self.next_ms.entry(key.to_string()).or_insert(until_ms);
        *e = (*e).max(until_ms);
    }

    /// Forget what lies before `before_ms` (it cannot delay anything any more).
    pub fn forget_before(&mut self, before_ms: i64) {
        self.next_ms.retain(|_, t| *t > before_ms);
        // Gate entries older than the longest window (a minute, plus margin) are moot.
        self.started
            .retain(|_, q| q.back().is_some_and(|t| *t > before_ms - 120_000));
        for cal in self.calendars.values_mut() {
            *cal = cal.split_off(&before_ms);
        }
    }
}

/// The earliest time ≥ `t` at least `period` away from every taken slot.
fn earliest_free(cal: &BTreeSet<i64>, mut t: i64, period: i64) -> i64 {
    loop {
        if let Some(&p) = cal.range(..=t).next_back()
            && t - p < period
        {
            t = p + period;
            continue;
        }
        if let Some(&s) = cal.range(t..).next()
            && s - t < period
        {
            t = s + period;
            continue;
        }
        return t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tg(chat: i64) -> Vec<Limit> {
        let mut v = vec![Limit::shared("tg:all".into(), 30.0, 1000.0)];
        if chat > 0 {
            v.push(Limit::recipient(format!("tg:chat:{chat}"), 1.0, 1000.0));
        } else {
            v.push(Limit::recipient(format!("tg:group:{chat}"), 20.0, 60_000.0));
        }
        v
    }

    fn max_in_window(times: &[i64], window: i64) -> usize {
        let mut t = times.to_vec();
        t.sort();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..t.len() {
            while t[hi] - t[lo] >= window {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }

    #[test]
    fn ten_thousand_reservations_keep_every_limit() {
        let mut lim = Limiter::new(true);
        let chats: Vec<i64> = (1..=90).chain((1..=10).map(|g| -g)).collect();
        let mut per_chat: HashMap<i64, Vec<i64>> = HashMap::new();
        let mut all = Vec::new();
        for i in 0..10_000 {
            let chat = chats[i % chats.len()];
            let now = (i as i64) * 6; // 10,000 requests over 60 s
            let slot = lim.reserve(&tg(chat), 1, now)[0];
            assert!(slot >= now);
            per_chat.entry(chat).or_default().push(slot);
            all.push(slot);
        }
        for (chat, times) in &per_chat {
            if *chat > 0 {
                assert_eq!(max_in_window(times, 1000), 1, "chat {chat}");
            } else {
                assert!(max_in_window(times, 60_000) <= 20, "group {chat}");
            }
        }
        assert!(max_in_window(&all, 1000) <= 30);
        // No head-of-line blocking: ~29 messages a second go out overall.
        let last = *all.iter().max().unwrap();
        assert!(last < 10_000 * 35, "drained by {last} ms");
    }

    #[test]
    fn a_backlogged_chat_does_not_block_others() {
        let mut lim = Limiter::new(true);
        for _ in 0..100 {
            lim.reserve(&tg(7), 1, 0);
        }
        assert!(lim.reserve(&tg(8), 1, 0)[0] < 100);
    }

    #[test]
    fn parts_are_spaced_and_the_next_delivery_waits_for_the_last_part() {
        let mut lim = Limiter::new(true);
        let limits = tg(7);
        assert_eq!(lim.reserve(&limits, 3, 0), vec![0, 1020, 2040]);
        assert_eq!(lim.reserve(&limits, 1, 0), vec![3060]);
    }

    #[test]
    fn penalize_holds_a_key_until() {
        let mut lim = Limiter::new(true);
        lim.penalize("tg:chat:7", 5000);
        assert_eq!(lim.reserve(&tg(7), 1, 100), vec![5000]);
        assert_eq!(lim.reserve(&tg(8), 1, 100), vec![100]);
    }

    #[test]
    fn the_gate_holds_late_sends_to_the_window() {
        let mut lim = Limiter::new(true);
        let all = vec![Limit::shared("tg:all".into(), 30.0, 1000.0)];
        // 30 sends at once fit; the 31st waits until the first is a (stretched) second old.
        for _ in 0..30 {
            assert_eq!(lim.admit(&all, 0), Ok(()));
        }
        assert_eq!(lim.admit(&all, 5), Err(1020));
        assert_eq!(lim.admit(&all, 1020), Ok(()));
        let chat = vec![Limit::recipient("tg:chat:1".into(), 1.0, 1000.0)];
        assert_eq!(lim.admit(&chat, 0), Ok(()));
        assert_eq!(lim.admit(&chat, 900), Err(1020));
    }

    #[test]
    fn disabled_is_always_now() {
        let mut lim = Limiter::new(false);
        for _ in 0..100 {
            assert_eq!(lim.reserve(&tg(7), 2, 42), vec![42, 42]);
        }
    }
}
