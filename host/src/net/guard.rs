//! The SSRF guard: an HTTP client that only ever connects to public addresses.
//!
//! Three ways a "check the host, then send" guard is usually bypassed, and what closes each:
//! - **DNS rebinding**: the name is resolved once for the check and again for the connect,
//!   and the second answer is `127.0.0.1`. Here the check *is* the resolver: reqwest asks
//!   [`VettingResolver`] for the addresses, which resolves once, refuses the name if any
//!   answer is non-public, and hands reqwest exactly the addresses it vetted.
//! - **IP literals**: reqwest never calls a resolver for `http://127.0.0.1/` or
//!   `http://[::1]/` (nor for `http://2130706433/`, which URL parsing turns into
//!   `127.0.0.1`), so [`Outbound::request`] checks a literal host before building the request.
//! - **Environment proxies**: a client that honours `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`
//!   sends the request to the proxy, which resolves and connects on its own. The client is
//!   built with `.no_proxy()`; only a proxy named in the configuration is used (and then
//!   the destination is checked before the request, and the proxy must enforce its own
//!   egress policy, since it resolves the name again).
//!
//! Redirects are not followed unless asked for; each followed hop is re-checked (a literal
//! here, a name by the resolver when it connects).
//!
//! What counts as public is [`super::addr::non_public`]. `allow_private_addresses` turns
//! the check off (tests with local receivers, trusted internal deployments).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::addr::non_public;

/// How an [`Outbound`] client may reach the network.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    /// Connect to loopback, private, link-local and other non-public addresses too.
    pub allow_private_addresses: bool,
    /// Non-public addresses let through anyway, one by one (a single trusted internal
    /// host rather than every private address; tests: a site on a loopback address).
    pub trusted_addresses: Vec<IpAddr>,
    /// An explicit `http://` or `https://` proxy for every request; `None` connects
    /// directly. Proxies from the environment are never used.
    pub proxy: Option<String>,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Timeout of one connection attempt.
    pub connect_timeout: Duration,
    /// Redirects followed (each hop re-checked); 0 follows none (a 3xx is the answer).
    pub max_redirects: usize,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        OutboundPolicy {
            allow_private_addresses: false,
            trusted_addresses: Vec::new(),
            proxy: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_redirects: 0,
            user_agent: concat!("impressox/", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

/// A destination the guard will not connect to. The text names the host and the range,
/// never the URL (whose path or query may be a credential).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error("{host} resolves to the internal address {ip} ({range})")]
    NonPublic {
        host: String,
        ip: IpAddr,
        range: &'static str,
    },
    #[error("only http and https URLs are allowed, not `{0}`")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
}

/// Why the guard did not let a request go out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuardError {
    /// The destination is not allowed (permanent: asking again gives the same answer).
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The name did not resolve (often transient: a resolver hiccup).
    #[error("cannot resolve {host}: {message}")]
    Lookup { host: String, message: String },
}

/// Name resolution the guard relies on; [`SystemLookup`] unless a test supplies its own.
pub trait Lookup: Send + Sync + 'static {
    /// Every address `host` resolves to.
    fn lookup(
        &self,
        host: &str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
}

/// The operating system's resolver (`getaddrinfo`: `/etc/hosts`, then DNS).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        host: &str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        let host = host.to_string();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// The address check, shared by the resolver, the literal check and the redirect policy.
pub struct Guard {
    allow_private: bool,
    /// `OutboundPolicy::trusted_addresses`.
    trusted: Vec<IpAddr>,
    lookup: Arc<dyn Lookup>,
    /// The configured proxy's host: the one name resolved without the check (it is the
    /// operator's own, typically on a private network).
    proxy_host: Option<String>,
}

impl Guard {
    /// Whether `ip` may be connected to for `host`.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        if self.allow_private || self.trusted.contains(&ip) {
            return Ok(());
        }
        match non_public(ip) {
            Some(range) => Err(Refused::NonPublic {
                host: host.to_string(),
                ip,
                range,
            }),
            None => Ok(()),
        }
    }

    /// Resolve `host` once and vet every answer: one non-public answer refuses the name
    /// (a name that mixes public and internal answers is a rebinding attempt or a
    /// misconfiguration, and either way not a place to send user data).
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, GuardError> {
        let ips = self
            .lookup
            .lookup(host)
            .await
            .map_err(|e| GuardError::Lookup {
                host: host.to_string(),
                message: e.to_string(),
            })?;
        if ips.is_empty() {
            return Err(GuardError::Lookup {
                host: host.to_string(),
                message: "no addresses".into(),
            });
        }
        if self.proxy_host.as_deref() != Some(host) {
            for ip in &ips {
                self.check_ip(host, *ip)?;
            }
        }
        Ok(ips)
    }

    /// The addresses `host` (a name or an IP literal, with or without brackets) may be
    /// connected to: a literal vetted as it is, a name resolved once and every answer
    /// vetted. A client that connects to exactly these (the rendering proxy,
    /// [`super::proxy`]) cannot be rebound: nothing resolves the name again.
    pub async fn vetted_addrs(&self, host: &str) -> Result<Vec<IpAddr>, GuardError> {
        match literal_ip(host) {
            Some(ip) => {
                self.check_ip(host, ip)?;
                Ok(vec![ip])
            }
            None => self.resolve(host).await,
        }
    }

    /// Check `url` completely: scheme, a literal host, and a name by resolving it once
    /// (for a client that connects on its own, such as Chromium, which resolves again).
    pub async fn check_url(&self, url: &Url) -> Result<(), GuardError> {
        self.check_literal(url)?;
        if let Some(name) = url.host_str()
            && literal_ip(name).is_none()
            && !self.allow_private
        {
            self.resolve(name).await?;
        }
        Ok(())
    }

    /// Check what can be checked of `url` without a lookup: the scheme, and the host when
    /// it is an IP literal (reqwest does not resolve those, so the resolver never sees them).
    pub fn check_literal(&self, url: &Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::Scheme(url.scheme().to_string()));
        }
        let host = url.host_str().ok_or(Refused::NoHost)?;
        match literal_ip(host) {
            Some(ip) => self.check_ip(host, ip),
            None => Ok(()),
        }
    }
}

/// The resolver reqwest connects through: resolve once, vet, return only what was vetted.
struct VettingResolver {
    guard: Arc<Guard>,
}

impl Resolve for VettingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = guard.resolve(&host).await?;
            // Port 0: reqwest puts in the URL's (or the scheme's) port.
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// A `reqwest::Client` behind the guard. Requests are made through [`Outbound::request`],
/// which checks what the resolver cannot see; the client itself is not handed out.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    guard: Arc<Guard>,
    proxied: bool,
}

impl Outbound {
    /// A guarded client resolving through the operating system.
    pub fn new(policy: &OutboundPolicy) -> Result<Outbound> {
        Self::with_lookup(policy, Arc::new(SystemLookup))
    }

    /// A guarded client resolving through `lookup` (tests: a resolver that changes its
    /// answer, as a rebinding DNS server does).
    pub fn with_lookup(policy: &OutboundPolicy, lookup: Arc<dyn Lookup>) -> Result<Outbound> {
        Self::build(policy, lookup, None)
    }

    /// A guarded client whose followed redirects must also pass `hop` (a plugin's
    /// allow-list: a granted host must not redirect it to one that is not).
    pub fn with_hop_check(
        policy: &OutboundPolicy,
        lookup: Arc<dyn Lookup>,
        hop: HopCheck,
    ) -> Result<Outbound> {
        Self::build(policy, lookup, Some(hop))
    }

    fn build(
        policy: &OutboundPolicy,
        lookup: Arc<dyn Lookup>,
        hop: Option<HopCheck>,
    ) -> Result<Outbound> {
        let proxy = match policy.proxy.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => Some(parse_proxy(p)?),
            None => None,
        };
        let guard = Arc::new(Guard {
            allow_private: policy.allow_private_addresses,
            trusted: policy.trusted_addresses.clone(),
            lookup,
            proxy_host: proxy
                .as_ref()
                .and_then(|u| u.host_str())
                .map(|h| h.trim_matches(['[', ']']).to_string()),
        });
        let mut builder = reqwest::Client::builder()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.timeout)
            .user_agent(policy.user_agent.clone())
            .dns_resolver(Arc::new(VettingResolver {
                guard: guard.clone(),
            }))
            .redirect(redirect_policy(guard.clone(), policy.max_redirects, hop));
        builder = match &proxy {
            Some(url) => builder.proxy(
                reqwest::Proxy::all(url.clone()).context("[proxy] is not a usable proxy URL")?,
            ),
            // Never HTTPS_PROXY, HTTP_PROXY or ALL_PROXY from the environment.
            None => builder.no_proxy(),
        };
        Ok(Outbound {
            client: builder
                .build()
                .context("failed to build the outbound HTTP client")?,
            guard,
            proxied: proxy.is_some(),
        })
    }

    /// The address check this client applies.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The same check, shared (for a vetting callback that outlives a borrow).
    pub fn shared_guard(&self) -> Arc<Guard> {
        self.guard.clone()
    }

    /// Check `url` as far as possible before sending: scheme and literal host always; a
    /// name when a proxy is configured (the proxy resolves it, so our resolver would not
    /// see it). Without a proxy a name is checked by the resolver as the connection is made.
    pub async fn check(&self, url: &Url) -> Result<(), GuardError> {
        self.guard.check_literal(url)?;
        if self.proxied
            && let Some(name) = url.host_str()
            && literal_ip(name).is_none()
        {
            self.guard.resolve(name).await?;
        }
        Ok(())
    }

    /// A request to `url`, once [`Outbound::check`] passed.
    pub async fn request(
        &self,
        method: reqwest::Method,
        url: Url,
    ) -> Result<reqwest::RequestBuilder, GuardError> {
        self.check(&url).await?;
        Ok(self.client.request(method, url))
    }
}

/// The guard's verdict inside a failed send, if the guard caused it (the resolver's
/// refusal travels up as the source of reqwest's connect error).
pub fn guard_error(err: &reqwest::Error) -> Option<&GuardError> {
    source_of::<GuardError>(err)
}

/// The first error of type `T` in `err`'s chain of sources (`err` included).
pub fn source_of<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        source = e.source();
    }
    None
}

/// The address a URL's host names literally (`127.0.0.1`, `[::1]`); URL parsing has
/// already turned other IPv4 spellings (`2130706433`, `0x7f.1`) into dotted form.
fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_matches(['[', ']']).parse().ok()
}

fn parse_proxy(p: &str) -> Result<Url> {
    let url = Url::parse(p).with_context(|| "the proxy is not a URL".to_string())?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!("the proxy must be an http:// or https:// URL with a host");
    }
    Ok(url)
}

/// A rule of the caller's that every followed redirect must pass; the error says why not.
pub type HopCheck = Arc<dyn Fn(&Url) -> Result<(), String> + Send + Sync>;

/// No redirects, or up to `max` with each hop's scheme and literal host re-checked
/// (a name is checked by the resolver when the hop connects), and `hop` when given.
fn redirect_policy(
    guard: Arc<Guard>,
    max: usize,
    hop: Option<HopCheck>,
) -> reqwest::redirect::Policy {
    if max == 0 {
        return reqwest::redirect::Policy::none();
    }
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max {
            return attempt.error(format!("more than {max} redirects"));
        }
        if let Err(refused) = guard.check_literal(attempt.url()) {
            return attempt.error(GuardError::Refused(refused));
        }
        if let Some(hop) = &hop
            && let Err(why) = hop(attempt.url())
        {
            return attempt.error(RedirectRefused(why));
        }
        attempt.follow()
    })
}

/// A redirect the caller's [`HopCheck`] refused (found in a send error's sources).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("redirect refused: {0}")]
pub struct RedirectRefused(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allow_private: bool) -> Guard {
        Guard {
            allow_private,
            trusted: Vec::new(),
            lookup: Arc::new(SystemLookup),
            proxy_host: None,
        }
    }

    #[test]
    fn literal_hosts_are_checked_in_every_spelling() {
        let g = guard(false);
        for url in [
            "http://127.0.0.1/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "https://[64:ff9b::a00:1]/x",
            "http://0.0.0.0:8080/",
        ] {
            let url = Url::parse(url).unwrap();
            assert!(
                matches!(g.check_literal(&url), Err(Refused::NonPublic { .. })),
                "{url}"
            );
        }
        assert!(
            g.check_literal(&Url::parse("http://8.8.8.8/").unwrap())
                .is_ok()
        );
        assert!(
            g.check_literal(&Url::parse("http://example.com/").unwrap())
                .is_ok()
        );
        assert_eq!(
            g.check_literal(&Url::parse("file:///etc/passwd").unwrap()),
            Err(Refused::Scheme("file".into()))
        );
        assert!(
            guard(true)
                .check_literal(&Url::parse("http://127.0.0.1/").unwrap())
                .is_ok()
        );
    }
}
