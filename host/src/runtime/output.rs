//! How big a plugin's answer is, for the per-call output cap.
//!
//! The guest's memory cap already bounds what it can build; this cap bounds what the host
//! accepts into its own memory and passes on (a formatter returning 50 MB of text is a
//! broken formatter, not a message to send).

use crate::bindings::types::*;

/// Approximate heap size of a value returned by a plugin, in bytes.
pub trait OutputSize {
    /// Bytes of strings and list elements, recursively.
    fn output_bytes(&self) -> usize;
}

impl OutputSize for () {
    fn output_bytes(&self) -> usize {
        0
    }
}
impl OutputSize for String {
    fn output_bytes(&self) -> usize {
        self.len()
    }
}
impl<T: OutputSize> OutputSize for Option<T> {
    fn output_bytes(&self) -> usize {
        self.as_ref().map_or(0, |v| v.output_bytes())
    }
}
impl<T: OutputSize> OutputSize for Vec<T> {
    fn output_bytes(&self) -> usize {
        self.iter().map(|v| v.output_bytes() + 8).sum()
    }
}
impl<T: OutputSize, E: OutputSize> OutputSize for Result<T, E> {
    fn output_bytes(&self) -> usize {
        match self {
            Ok(v) => v.output_bytes(),
            Err(e) => e.output_bytes(),
        }
    }
}

macro_rules! fixed_size {
    ($($t:ty),*) => {$(
        impl OutputSize for $t {
            fn output_bytes(&self) -> usize { std::mem::size_of::<$t>() }
        }
    )*};
}
fixed_size!(
    PluginInfo,
    PriceTick,
    RuleState,
    Rule,
    Tick,
    Cursor,
    RateLimit,
    AccountSignal
);

impl OutputSize for ParsedPayload {
    fn output_bytes(&self) -> usize {
        self.ticks.iter().map(|t| t.symbol.len() + 48).sum()
    }
}
impl OutputSize for Alert {
    fn output_bytes(&self) -> usize {
        self.rule_id.len() + self.reason.len() + 64
    }
}
impl OutputSize for Tweet {
    fn output_bytes(&self) -> usize {
        self.raw_json.len()
            + self.raw_content.len()
            + self.url.len()
            + self.hashtags.output_bytes()
            + self.cashtags.output_bytes()
            + self.links.output_bytes()
            + self.media.iter().map(|m| m.url.len() + 16).sum::<usize>()
            + self
                .mentioned_users
                .iter()
                .map(|u| u.username.len() + u.id.len() + 16)
                .sum::<usize>()
            + 128
    }
}
impl OutputSize for Profile {
    fn output_bytes(&self) -> usize {
        self.raw_json.len() + self.description.len() + self.username.len() + 256
    }
}
impl OutputSize for ScrapeResult {
    fn output_bytes(&self) -> usize {
        self.tweets.output_bytes()
            + self.profiles.output_bytes()
            + self
                .cursors
                .iter()
                .map(|c| c.value.len() + 8)
                .sum::<usize>()
            + self
                .rate_limits
                .iter()
                .map(|r| r.endpoint.len() + 24)
                .sum::<usize>()
            + self
                .skipped
                .iter()
                .map(|s| s.entry_id.len() + s.reason.len())
                .sum::<usize>()
    }
}
impl OutputSize for RenderedMessage {
    fn output_bytes(&self) -> usize {
        self.text.len() + self.subject.output_bytes() + self.html.output_bytes()
    }
}
impl OutputSize for TaskReport {
    fn output_bytes(&self) -> usize {
        self.summary.len() + self.data_json.len()
    }
}
impl OutputSize for Outcome {
    fn output_bytes(&self) -> usize {
        match self {
            Outcome::Ack => 0,
            Outcome::Retry(s) | Outcome::DeadLetter(s) => s.len(),
        }
    }
}
impl OutputSize for crate::runtime::kind::Identity {
    fn output_bytes(&self) -> usize {
        self.name.len() + self.version.len() + self.description.len() + 8
    }
}
impl OutputSize for Chunk {
    fn output_bytes(&self) -> usize {
        self.text.len()
            + self
                .metadata
                .iter()
                .map(|(k, v)| k.len() + v.len() + 16)
                .sum::<usize>()
            + 8
    }
}
impl OutputSize for Chunked {
    fn output_bytes(&self) -> usize {
        self.normalised.output_bytes() + self.chunks.output_bytes()
    }
}
