//! `[[listeners]]` and `[events]`: which streams the events worker consumes, with which
//! handler plugin, and how it retries, reclaims and bounds them.
//!
//! Durations are written as people write them (`"500ms"`, `"30s"`, `"5m"`).

use std::time::Duration;

use anyhow::{Result, bail};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `[events]`: settings of the events worker as a whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// This host's consumer name in every listener's group; empty = the host name. Two
    /// processes on one machine need different names.
    pub consumer: String,
    /// On shutdown, how long calls in flight may take to finish and commit; what is not
    /// done by then stays pending for another host (never acknowledged unprocessed).
    #[serde(with = "duration_text")]
    pub shutdown_grace: Duration,
    /// Event dead letters are deleted this long after they were made.
    #[serde(with = "duration_text")]
    pub dead_letter_retention: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            consumer: String::new(),
            shutdown_grace: Duration::from_secs(10),
            dead_letter_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl EventsConfig {
    /// The consumer name: configured, or the host name.
    pub fn consumer_name(&self) -> String {
        if !self.consumer.is_empty() {
            return self.consumer.clone();
        }
        crate::util::host_name()
    }
}

/// Where a new consumer group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Start {
    /// Before the oldest entry: everything already in the stream is handled (`"0"`).
    #[serde(rename = "0")]
    Beginning,
    /// After the newest entry: only what arrives from now on (`"$"`).
    #[serde(rename = "$")]
    End,
}

/// One `[[listeners]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// The listener's name in logs, metrics and the API; default: the group's name.
    #[serde(default)]
    pub name: String,
    /// The stream to consume.
    pub stream: String,
    /// The consumer group; hosts in one group share its events.
    pub group: String,
    /// The event-handler plugin.
    pub plugin: String,
    /// Where the group starts when it does not exist yet: `"0"` or `"$"`.
    #[serde(default = "default_start")]
    pub start: Start,
    /// Handler calls in flight at once on this host.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Entries read per batch.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Attempts before an event becomes a dead letter (a trap or a timeout counts).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one, up to `backoff_max`.
    #[serde(default = "default_backoff", with = "duration_text")]
    pub backoff: Duration,
    #[serde(default = "default_backoff_max", with = "duration_text")]
    pub backoff_max: Duration,
    /// An entry pending this long without word from its consumer (a crashed host) is
    /// taken over by another.
    #[serde(default = "default_claim_idle", with = "duration_text")]
    pub claim_idle: Duration,
    /// Most entries the stream holds that some group still needs; producers through the
    /// host (`POST /api/v1/streams/{stream}/events`) are refused beyond it.
    #[serde(default = "default_maxlen")]
    pub maxlen: u64,
}

fn default_start() -> Start {
    Start::Beginning
}
fn default_concurrency() -> usize {
    4
}
fn default_batch() -> usize {
    64
}
fn default_max_attempts() -> u32 {
    5
}
fn default_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(300)
}
fn default_claim_idle() -> Duration {
    Duration::from_secs(30)
}
fn default_maxlen() -> u64 {
    100_000
}

impl ListenerConfig {
    /// The wait before attempt `next` (2 or later).
    pub fn backoff_before(&self, next: u32) -> Duration {
        let doublings = next.saturating_sub(2).min(30);
        self.backoff
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }
}

/// Check every listener; errors name the listener and the key.
pub fn validate(listeners: &mut [ListenerConfig], call_timeout_ms: u64) -> Result<()> {
    let mut names = std::collections::BTreeSet::new();
    let mut pairs = std::collections::BTreeSet::new();
    for (i, l) in listeners.iter_mut().enumerate() {
        if l.name.is_empty() {
            l.name = l.group.clone();
        }
        let at = format!("[[listeners]] #{} (`{}`)", i + 1, l.name);
        for (key, value) in [
            ("stream", &l.stream),
            ("group", &l.group),
            ("plugin", &l.plugin),
        ] {
            if value.trim().is_empty() {
                bail!("{at}: `{key}` is required");
            }
            if value.len() > 200 || value.chars().any(char::is_control) {
                bail!("{at}: `{key}` must be 1 to 200 printable characters");
            }
        }
        if !crate::input::valid_key(&l.name, 100) {
            bail!("{at}: `name` must be 1 to 100 letters, digits, `-`, `_`, `.` or `:`");
        }
        if !names.insert(l.name.clone()) {
            bail!("{at}: another listener is named `{}`", l.name);
        }
        if !pairs.insert((l.stream.clone(), l.group.clone())) {
            bail!(
                "{at}: another listener reads stream `{}` as group `{}`; one group per listener",
                l.stream,
                l.group
            );
        }
        if !(1..=256).contains(&l.concurrency) {
            bail!("{at}: `concurrency` must be between 1 and 256");
        }
        if !(1..=10_000).contains(&l.batch) {
            bail!("{at}: `batch` must be between 1 and 10000");
        }
        if !(1..=1000).contains(&l.max_attempts) {
            bail!("{at}: `max_attempts` must be between 1 and 1000");
        }
        if l.backoff.is_zero() || l.backoff > l.backoff_max {
            bail!("{at}: `backoff` must be more than 0 and at most `backoff_max`");
        }
        // A live host renews what it holds every third of `claim_idle`; anything shorter
        // than a few of its calls would let another host take events it is handling.
        let min_idle =
            Duration::from_millis(call_timeout_ms.saturating_mul(3)).max(Duration::from_secs(1));
        if l.claim_idle < min_idle {
            bail!(
                "{at}: `claim_idle` must be at least {} (three plugin call timeouts, and 1s)",
                crate::util::show_ms(min_idle.as_millis() as i64)
            );
        }
        if l.maxlen < l.batch as u64 {
            bail!("{at}: `maxlen` must be at least `batch`");
        }
    }
    Ok(())
}

/// A `Duration` written as text (`"30s"`, `"1m 30s"`, `"500ms"`).
pub mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::util::show_ms(d.as_millis() as i64))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::util::parse_duration_ms(&text)
            .map(|ms| Duration::from_millis(ms as u64))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration; write it like \"500ms\", \"30s\" or \"1h30m\""
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(toml_text: &str) -> Result<Vec<ListenerConfig>> {
        #[derive(Deserialize)]
        struct Wrap {
            listeners: Vec<ListenerConfig>,
        }
        let mut w: Wrap = toml::from_str(toml_text)?;
        validate(&mut w.listeners, 1000)?;
        Ok(w.listeners)
    }

    #[test]
    fn defaults_fill_in_and_the_name_is_the_group() {
        let l = listener(
            "[[listeners]]\nstream = \"s\"\ngroup = \"g\"\nplugin = \"p\"\nbackoff = \"200ms\"\n",
        )
        .unwrap();
        assert_eq!(l[0].name, "g");
        assert_eq!(l[0].backoff, Duration::from_millis(200));
        assert_eq!(l[0].start, Start::Beginning);
        assert_eq!(l[0].backoff_before(2), Duration::from_millis(200));
        assert_eq!(l[0].backoff_before(4), Duration::from_millis(800));
    }

    #[test]
    fn bad_values_are_named() {
        let base = "[[listeners]]\nstream = \"s\"\ngroup = \"g\"\nplugin = \"p\"\n";
        let e = listener(&format!("{base}claim_idle = \"10x\"\n")).unwrap_err();
        assert!(format!("{e:#}").contains("not a duration"), "{e:#}");
        let e = listener(&format!("{base}claim_idle = \"1s\"\n")).unwrap_err();
        assert!(e.to_string().contains("claim_idle"), "{e}");
        let e = listener(&format!("{base}concurrency = 0\n")).unwrap_err();
        assert!(e.to_string().contains("concurrency"), "{e}");
        let e = listener(&format!("{base}start = \"1\"\n")).unwrap_err();
        assert!(
            format!("{e:#}").contains("start") || format!("{e:#}").contains("variant"),
            "{e:#}"
        );
        let e = listener(&format!("{base}{base}")).unwrap_err();
        assert!(e.to_string().contains("another listener"), "{e}");
    }
}
