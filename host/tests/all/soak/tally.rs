//! The end of a soak run: the counts side by side, every difference by id, and the
//! verdict.
//!
//! Four counts that come from four places:
//! - **raised**: the rules' `fired_count` in Redis (the host's own record, committed with
//!   the requests and the replay checkpoint), and for the crossing rules what the replay
//!   file says they must have fired by that checkpoint;
//! - **enqueued**: the ids the soak's own consumer group took from `notify:requests`, and
//!   the idempotency keys the store keeps;
//! - **delivered**: the notification ids the webhook receiver got (signature checked);
//! - **dead letters**: what the notify worker gave up on.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::servers::webhook_receiver::HookRequest;

/// Everything counted at the end.
pub struct Inputs {
    /// Rule id → `fired_count` from the stored rule states.
    pub fired: BTreeMap<String, u64>,
    /// The crossing rules (a subset of `fired`'s keys).
    pub crossing: BTreeSet<String>,
    /// Crossing alerts the replayed ticks must have fired.
    pub expected_crossings: u64,
    /// Idempotency key per stream entry the audit group read.
    pub enqueued: Vec<String>,
    /// Suffixes of `notify:requests:idem:*` in Redis.
    pub idem_keys: BTreeSet<String>,
    pub deliveries: Vec<HookRequest>,
    /// (notification id, reason) of each dead letter.
    pub dead_letters: Vec<(String, String)>,
}

pub struct Verdict {
    /// A Markdown table of the counts.
    pub table: String,
    /// Every check that failed, with the ids that differ.
    pub failures: Vec<String>,
}

/// Show at most this many ids per difference.
const SHOW: usize = 20;

pub fn tally(i: &Inputs) -> Verdict {
    let mut failures = Vec::new();
    let raised: u64 = i.fired.values().sum();
    let raised_crossing: u64 = i
        .fired
        .iter()
        .filter(|(id, _)| i.crossing.contains(*id))
        .map(|(_, n)| n)
        .sum();

    let enqueued_per_key = counts(i.enqueued.iter().map(String::as_str));
    let enqueued: BTreeSet<&str> = enqueued_per_key.keys().copied().collect();
    let duplicate_enqueues = over_one(&enqueued_per_key);

    let ok_deliveries: Vec<&HookRequest> = i
        .deliveries
        .iter()
        .filter(|d| (200..300).contains(&d.status))
        .collect();
    let delivered_per_id = counts(ok_deliveries.iter().filter_map(|d| d.body["id"].as_str()));
    let delivered: BTreeSet<&str> = delivered_per_id.keys().copied().collect();
    let duplicate_deliveries = over_one(&delivered_per_id);
    let bad_signatures: Vec<&str> = i
        .deliveries
        .iter()
        .filter(|d| !d.signature_ok)
        .map(|d| d.body["id"].as_str().unwrap_or("?"))
        .collect();
    let refused: Vec<&str> = i
        .deliveries
        .iter()
        .filter(|d| !(200..300).contains(&d.status))
        .map(|d| d.body["id"].as_str().unwrap_or("?"))
        .collect();

    if raised != enqueued.len() as u64 || enqueued.len() != delivered.len() {
        failures.push(format!(
            "counts differ: raised {raised}, enqueued {}, delivered {}",
            enqueued.len(),
            delivered.len()
        ));
    }
    if raised_crossing != i.expected_crossings {
        failures.push(format!(
            "the crossing rules fired {raised_crossing} times; the replayed ticks call for {}",
            i.expected_crossings
        ));
    }
    differ(
        &mut failures,
        "enqueued but never delivered",
        enqueued.difference(&delivered),
    );
    differ(
        &mut failures,
        "delivered but never enqueued",
        delivered.difference(&enqueued),
    );
    let idem: BTreeSet<&str> = i.idem_keys.iter().map(String::as_str).collect();
    differ(
        &mut failures,
        "enqueued without an idempotency key in Redis",
        enqueued.difference(&idem),
    );
    differ(
        &mut failures,
        "idempotency key in Redis without an entry seen in the stream",
        idem.difference(&enqueued),
    );
    differ(
        &mut failures,
        "enqueued more than once",
        duplicate_enqueues.iter(),
    );
    differ(
        &mut failures,
        "delivered more than once",
        duplicate_deliveries.iter(),
    );
    differ(
        &mut failures,
        "bad webhook signature",
        bad_signatures.iter(),
    );
    differ(&mut failures, "answered with an error", refused.iter());
    differ(
        &mut failures,
        "dead letters",
        i.dead_letters
            .iter()
            .map(|(id, why)| format!("{id} ({why})")),
    );
    // Per rule: its fired_count against the requests and deliveries carrying its id.
    let per_rule = |ids: &BTreeSet<&str>| {
        let mut n: HashMap<String, u64> = HashMap::new();
        for id in ids {
            *n.entry(rule_of(id).to_string()).or_default() += 1;
        }
        n
    };
    let (enqueued_by_rule, delivered_by_rule) = (per_rule(&enqueued), per_rule(&delivered));
    let rules_off: Vec<String> = i
        .fired
        .iter()
        .filter_map(|(rule, fired)| {
            let q = enqueued_by_rule.get(rule).copied().unwrap_or(0);
            let d = delivered_by_rule.get(rule).copied().unwrap_or(0);
            (q != *fired || d != *fired)
                .then(|| format!("{rule}: fired {fired}, enqueued {q}, delivered {d}"))
        })
        .collect();
    differ(&mut failures, "rules whose counts differ", rules_off.iter());

    let n = thousands;
    let table = format!(
        "| count | value |\n|---|---|\n\
         | alerts raised (Σ `fired_count` over the {rules} rules in Redis) | **{raised}** |\n\
         | of which crossings / expected from the replay checkpoint | {crossing} / {expected} |\n\
         | requests enqueued (unique ids read by the `soak-audit` group) | **{enq}** |\n\
         | duplicate enqueues (one id under two stream entries) | {dup_enq} |\n\
         | idempotency keys in Redis | {idem} |\n\
         | deliveries (unique notification ids at the webhook receiver) | **{del}** |\n\
         | duplicate deliveries | {dup_del} |\n\
         | bad signatures / error answers | {bad} / {err} |\n\
         | dead letters | {dead} |\n",
        rules = i.fired.len(),
        raised = n(raised),
        crossing = n(raised_crossing),
        expected = n(i.expected_crossings),
        enq = n(enqueued.len() as u64),
        dup_enq = duplicate_enqueues.len(),
        idem = n(idem.len() as u64),
        del = n(delivered.len() as u64),
        dup_del = duplicate_deliveries.len(),
        bad = bad_signatures.len(),
        err = refused.len(),
        dead = i.dead_letters.len(),
    );
    Verdict { table, failures }
}

/// The rule id in a request id `rule-<rule id>-<second>`.
fn rule_of(id: &str) -> &str {
    id.strip_prefix("rule-")
        .and_then(|rest| rest.rsplit_once('-'))
        .map_or(id, |(rule, _)| rule)
}

fn counts<'a>(ids: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, usize> {
    let mut out = BTreeMap::new();
    for id in ids {
        *out.entry(id).or_default() += 1;
    }
    out
}

fn over_one<'a>(counts: &BTreeMap<&'a str, usize>) -> Vec<&'a str> {
    counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect()
}

/// Add a failure listing (some of) `ids` when there are any.
fn differ<T: std::fmt::Display>(
    failures: &mut Vec<String>,
    what: &str,
    ids: impl Iterator<Item = T>,
) {
    let all: Vec<String> = ids.map(|id| id.to_string()).collect();
    if all.is_empty() {
        return;
    }
    let shown = all
        .iter()
        .take(SHOW)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let more = all.len().saturating_sub(SHOW);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    failures.push(format!("{what} ({}): {shown}{more}", all.len()));
}

/// 12345 → "12,345".
pub fn thousands(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
