//! `[plugins.http]`: the limits of plugins' outbound HTTP (every plugin alike; which hosts
//! each may reach is its own grant, `[plugins.grants.<name>] http`).

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// `[plugins.http]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Timeout of one connection attempt, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Whole-request timeout (connect, send, response and body), in milliseconds. A request
    /// also never outlives the plugin call that made it (`call_timeout_ms`).
    pub timeout_ms: u64,
    /// Largest response body one request may return, in bytes; a longer body is cut with
    /// an error (`http-response-body-size`) instead of being read.
    pub max_response_bytes: u64,
    /// Bytes one plugin call may move over HTTP, request and response bodies of all its
    /// requests together.
    pub max_bytes_per_call: u64,
    /// Requests one plugin call may make.
    pub max_requests_per_call: u32,
    /// Redirects followed per request (each hop re-checked against the plugin's grant and
    /// the address guard); 0 follows none, and the plugin sees the 3xx itself.
    pub max_redirects: usize,
    /// Let plugins connect to loopback, private, link-local and other non-public
    /// addresses (tests against local servers, trusted internal deployments). Off, a
    /// request to such an address is refused even when its host is granted.
    pub allow_private_addresses: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout_ms: 5_000,
            timeout_ms: 10_000,
            max_response_bytes: 4 * 1024 * 1024,
            max_bytes_per_call: 16 * 1024 * 1024,
            max_requests_per_call: 32,
            max_redirects: 0,
            allow_private_addresses: false,
        }
    }
}

impl HttpConfig {
    /// Refuse limits that would make every request fail.
    pub fn validate(&self) -> Result<()> {
        for (key, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("timeout_ms", self.timeout_ms),
            ("max_response_bytes", self.max_response_bytes),
            ("max_bytes_per_call", self.max_bytes_per_call),
            (
                "max_requests_per_call",
                u64::from(self.max_requests_per_call),
            ),
        ] {
            if value == 0 {
                bail!("[plugins.http] {key} must be at least 1");
            }
        }
        Ok(())
    }
}
