//! What the channels that POST to a URL a user gave share (webhook, webpush, Discord,
//! Slack): the guarded client, and the sorting of HTTP failures into outcomes.
//!
//! Requests go through [`crate::net::Outbound`], the SSRF guard: unless the channel's
//! `allow_private_addresses`, a URL whose host is or resolves to a non-public address
//! (loopback, private, link-local, CGNAT, NAT64 or 6to4 of one, ...) is refused as a
//! permanent failure, the connection goes to exactly the addresses that were checked, and
//! proxies from the environment are ignored (only the channel's `proxy` is used).
//! Redirects are not followed (a 3xx is permanent). Error texts never carry the URL: its
//! path is often the credential.

use std::time::Duration;

use crate::net::guard::guard_error;
use crate::net::{GuardError, Outbound, OutboundPolicy};
use crate::notify::record::SendOutcome;

/// The longest `Retry-After` waited for; beyond it the answer counts as a plain failure.
pub const MAX_RETRY_AFTER_SECS: u64 = 3600;

/// A guarded client for one channel; `section` (`webhook`, `webpush`, ...) names its
/// config section in refusals.
pub struct HookClient {
    pub outbound: Outbound,
    section: &'static str,
}

impl HookClient {
    pub fn new(
        section: &'static str,
        allow_private_addresses: bool,
        proxy: &str,
        timeout_secs: u64,
    ) -> anyhow::Result<HookClient> {
        let outbound = Outbound::new(&OutboundPolicy {
            allow_private_addresses,
            proxy: Some(proxy.to_string()).filter(|p| !p.is_empty()),
            timeout: Duration::from_secs(timeout_secs),
            connect_timeout: Duration::from_secs(5),
            max_redirects: 0,
            ..Default::default()
        })?;
        Ok(HookClient { outbound, section })
    }

    /// A POST to `url`, once the guard passed it; otherwise the outcome to record.
    pub async fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, SendOutcome> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| SendOutcome::Permanent(format!("not a URL: {e}")))?;
        self.outbound
            .request(reqwest::Method::POST, url)
            .await
            .map_err(|e| self.guard_outcome(&e))
    }

    /// What the guard's verdict means for a delivery: a refused destination stays refused
    /// (permanent), a name that did not resolve may resolve later (transient).
    pub fn guard_outcome(&self, e: &GuardError) -> SendOutcome {
        match e {
            GuardError::Refused(r) => SendOutcome::Permanent(format!(
                "{r}; refused (set [notify.{}] allow_private_addresses to allow it)",
                self.section
            )),
            GuardError::Lookup { .. } => SendOutcome::Transient(e.to_string()),
        }
    }

    /// What a request that got no answer comes to.
    pub fn send_failure(&self, e: reqwest::Error) -> SendOutcome {
        // The resolver refused the name, or could not resolve it: nothing was sent.
        if let Some(g) = guard_error(&e) {
            return self.guard_outcome(g);
        }
        let (connect, builder) = (e.is_connect(), e.is_builder());
        // Without the URL: its path is often the receiver's credential.
        let text = e.without_url().to_string();
        if connect {
            SendOutcome::Transient(text)
        } else if builder {
            SendOutcome::Permanent(text)
        } else {
            SendOutcome::Ambiguous(text)
        }
    }
}

/// Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date.
pub fn retry_after_secs(value: &str, now_ms: i64) -> Option<u64> {
    let v = value.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(s);
    }
    let at = jiff::fmt::rfc2822::parse(v)
        .ok()?
        .timestamp()
        .as_millisecond();
    Some(((at - now_ms).max(0) as u64).div_ceil(1000))
}

/// The `Retry-After` of an answer, in seconds, if present and readable.
pub fn retry_after_header(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after_secs(v, crate::util::now_ms()))
}

/// The outcome of an answer by its status: 2xx sent; 429 waits `retry_after` seconds when
/// given (and not absurd), else retried with backoff; 5xx retried; anything else permanent.
pub fn status_outcome(
    status: reqwest::StatusCode,
    retry_after: Option<u64>,
    error: String,
) -> SendOutcome {
    if status.is_success() {
        SendOutcome::Sent
    } else if status.as_u16() == 429 {
        match retry_after.filter(|s| *s <= MAX_RETRY_AFTER_SECS) {
            Some(s) => SendOutcome::RateLimited {
                retry_after_secs: s,
                error,
            },
            None => SendOutcome::Transient(error),
        }
    } else if status.is_server_error() {
        SendOutcome::Transient(error)
    } else {
        SendOutcome::Permanent(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(retry_after_secs("2", 0), Some(2));
        let now = crate::util::parse_rfc3339_ms("2026-11-29T10:00:00Z").unwrap();
        assert_eq!(
            retry_after_secs("Sun, 29 Nov 2026 10:00:05 GMT", now),
            Some(5)
        );
        assert_eq!(retry_after_secs("soon", now), None);
    }

    #[test]
    fn statuses_sort_into_outcomes() {
        use reqwest::StatusCode as S;
        assert_eq!(
            status_outcome(S::CREATED, None, "e".into()),
            SendOutcome::Sent
        );
        assert!(matches!(
            status_outcome(S::TOO_MANY_REQUESTS, Some(3), "e".into()),
            SendOutcome::RateLimited {
                retry_after_secs: 3,
                ..
            }
        ));
        assert!(matches!(
            status_outcome(S::TOO_MANY_REQUESTS, Some(86_400), "e".into()),
            SendOutcome::Transient(_)
        ));
        assert!(matches!(
            status_outcome(S::BAD_GATEWAY, None, "e".into()),
            SendOutcome::Transient(_)
        ));
        assert!(matches!(
            status_outcome(S::BAD_REQUEST, None, "e".into()),
            SendOutcome::Permanent(_)
        ));
    }
}
