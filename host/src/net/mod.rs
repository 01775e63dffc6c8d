//! Outbound networking to destinations users choose: the SSRF guard.
//!
//! A webhook URL, and a plugin's outbound HTTP request (`capabilities::http`), are chosen
//! by a user, so the host must not let them reach the host's own network: loopback
//! services, cloud metadata at `169.254.169.254`, the private LAN, or any of them wrapped
//! in an IPv6 form.
//!
//! ## Organization
//! - [`addr`]: which IP addresses are public (the IANA special-purpose registries, with
//!   IPv4 embedded in IPv6 unwrapped); pure, unit-tested range by range.
//! - [`guard`]: [`Outbound`], a `reqwest::Client` whose resolver resolves once and returns
//!   only vetted addresses, that checks IP literals before sending, ignores proxies from
//!   the environment and follows no unchecked redirect (a caller's own rule for redirect
//!   hops, such as a plugin's grant, joins through [`guard::HopCheck`]).
//! - [`proxy`]: [`proxy::GuardedProxy`], a loopback forward proxy that resolves and vets
//!   each destination once and connects to what it vetted, for a client that would
//!   otherwise resolve on its own (Chromium rendering pages).
//!
//! Using it: build one [`Outbound`] per purpose from an [`OutboundPolicy`], make requests
//! with [`Outbound::request`], and sort failures with [`guard::guard_error`] (a
//! [`guard::Refused`] is permanent, a lookup failure transient).

pub mod addr;
pub mod guard;
pub mod proxy;

pub use guard::{GuardError, Outbound, OutboundPolicy, Refused};
