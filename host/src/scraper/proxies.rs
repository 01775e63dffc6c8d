//! `proxies_file` and the sticky proxy assignment of accounts (design §3.2).
//!
//! File: one `scheme://[user:pass@]host:port` per line (`http`, `https`, `socks5`), blank
//! lines and `#` comments skipped; credentials are percent-decoded. Chromium cannot answer
//! a SOCKS proxy's password prompt, so `socks5` with credentials is refused rather than
//! failing at the first page. Errors name the file and line, never the line's text.
//!
//! [`ProxyUrl`] prints as `scheme://host:port`: what Chromium's per-context
//! `proxy_server` gets, what logs and the API show. The credentials are reached only
//! through [`ProxyUrl::credentials`], for answering the proxy's 407.
//!
//! [`ProxyBook`] is the pure bookkeeping: which account uses which proxy (chosen once: the
//! healthy proxy with the fewest accounts, ties by file order; kept across runs, restarts
//! and file reloads), consecutive failures per proxy, and rotation: at
//! `proxy_failures_before_rotation` failures in a row a proxy is `failed` for
//! `proxy_retry_after_secs` and its accounts are released to be assigned elsewhere.
//! Times are passed in (`now_ms`), never read here.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use anyhow::{Result, bail};
use serde::Serialize;

use super::accounts::Secret;

/// Proxy protocols Chromium speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyScheme {
    /// Plain HTTP proxy (CONNECT for https sites).
    Http,
    /// HTTP proxy reached over TLS.
    Https,
    /// SOCKS5, without credentials.
    Socks5,
}

impl ProxyScheme {
    /// The URL scheme.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyScheme::Http => "http",
            ProxyScheme::Https => "https",
            ProxyScheme::Socks5 => "socks5",
        }
    }
}

/// One proxy of `proxies_file`. `Display` and `Debug` show `scheme://host:port` only.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    scheme: ProxyScheme,
    /// Host name or IP; an IPv6 address is kept with its brackets.
    host: String,
    port: u16,
    credentials: Option<(String, Secret)>,
}

impl ProxyUrl {
    /// Parse one proxy URL; the error never quotes the input.
    pub fn parse(text: &str) -> Result<ProxyUrl, String> {
        const SHAPE: &str =
            "expected scheme://[user:pass@]host:port with scheme http, https or socks5";
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(format!("{SHAPE} (no `://`)"));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => ProxyScheme::Http,
            "https" => ProxyScheme::Https,
            "socks5" => ProxyScheme::Socks5,
            _ => return Err(format!("{SHAPE} (unsupported scheme)")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        if hostport.contains(['/', '?', '#']) {
            return Err(format!("{SHAPE} (a proxy URL has no path)"));
        }
        let (host, port) = split_host_port(hostport).ok_or_else(|| {
            format!("{SHAPE} (host and port missing or malformed; the port is required)")
        })?;
        let credentials = match userinfo {
            None => None,
            Some(info) => {
                let Some((user, pass)) = info.split_once(':') else {
                    return Err(format!("{SHAPE} (credentials need both user and password)"));
                };
                let user = percent_decode(user)
                    .ok_or_else(|| format!("{SHAPE} (bad percent-encoding in the user)"))?;
                let pass = percent_decode(pass)
                    .ok_or_else(|| format!("{SHAPE} (bad percent-encoding in the password)"))?;
                if user.is_empty() {
                    return Err(format!("{SHAPE} (the user is empty)"));
                }
                Some((user, Secret::new(pass)))
            }
        };
        if scheme == ProxyScheme::Socks5 && credentials.is_some() {
            return Err(
                "socks5 proxies with credentials are not supported: Chromium cannot \
                        authenticate to SOCKS proxies; use an http(s) proxy, or a socks5 one \
                        that allows this host's IP without a password"
                    .into(),
            );
        }
        Ok(ProxyUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            credentials,
        })
    }

    /// The protocol.
    pub fn scheme(&self) -> ProxyScheme {
        self.scheme
    }

    /// `scheme://host:port`: Chromium's `proxy_server` value and the proxy's name in logs,
    /// the API and account records.
    pub fn server(&self) -> String {
        format!("{}://{}:{}", self.scheme.as_str(), self.host, self.port)
    }

    /// `(user, password)` for answering the proxy's authentication challenge.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.expose()))
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme.as_str(), self.host, self.port)
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = if self.credentials.is_some() {
            " (with credentials)"
        } else {
            ""
        };
        write!(f, "ProxyUrl({self}{auth})")
    }
}

/// `host:port` with an IPv6 host in brackets; the port must be 1..=65535.
fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let host = s.get(..=end)?;
        let port = s.get(end + 1..)?.strip_prefix(':')?;
        (host, port)
    } else {
        s.rsplit_once(':')?
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host_ok = if host.starts_with('[') {
        host.len() > 2
            && host[1..host.len() - 1]
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    };
    host_ok.then_some((host, port))
}

/// `%XX` decoding; `None` on a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Read and parse `proxies_file`; a file readable by others is a logged warning.
pub fn load_proxies(path: &Path) -> Result<Vec<ProxyUrl>> {
    let text = super::accounts::read_secret_file("proxies_file", path)?;
    parse_proxies(&text, &path.display().to_string())
}

/// Parse the text of `proxies_file`; `origin` (the file's path) goes into errors.
pub fn parse_proxies(text: &str, origin: &str) -> Result<Vec<ProxyUrl>> {
    let mut proxies: Vec<ProxyUrl> = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let proxy = ProxyUrl::parse(trimmed)
            .map_err(|reason| anyhow::anyhow!("proxies_file {origin} line {line}: {reason}"))?;
        if let Some(first) = first_line.insert(proxy.server(), line) {
            bail!(
                "proxies_file {origin} line {line}: duplicate proxy {proxy} (first on line {first})"
            );
        }
        proxies.push(proxy);
    }
    Ok(proxies)
}

/// A proxy's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyState {
    /// Usable.
    Healthy,
    /// Out until its retry time.
    Failed,
}

/// One proxy in `GET /api/v1/scraper/accounts`'s `proxies[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProxyReport {
    /// `scheme://host:port`.
    pub server: String,
    /// `healthy` or `failed`.
    pub state: ProxyState,
    /// Consecutive failures.
    pub failures: u32,
    /// When a failed proxy is tried again (ms since the epoch).
    pub retry_at_ms: Option<i64>,
    /// Usernames of the accounts assigned to it.
    pub accounts: Vec<String>,
}

/// What an account should run through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// This proxy (the account's sticky one, or a new one when that failed).
    Proxy(ProxyUrl),
    /// No proxies are configured: run direct.
    NoneConfigured,
    /// Proxies are configured but none is healthy: run direct only if `allow_direct`.
    NoneHealthy,
}

/// A proxy taken out after too many failures in a row, and the accounts it had (now
/// unassigned: their contexts must be re-created through [`ProxyBook::assign`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// `scheme://host:port` of the failed proxy.
    pub server: String,
    /// Consecutive failures that triggered it.
    pub failures: u32,
    /// Usernames that were on it.
    pub accounts: Vec<String>,
}

impl fmt::Display for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "proxy {} failed {} times in a row; moving {} account{} to other proxies",
            self.server,
            self.failures,
            self.accounts.len(),
            if self.accounts.len() == 1 { "" } else { "s" }
        )
    }
}

#[derive(Debug, Clone)]
struct Entry {
    url: ProxyUrl,
    failures: u32,
    failed_until_ms: Option<i64>,
}

/// Sticky proxy assignment, failure counting and rotation (pure).
#[derive(Debug, Clone)]
pub struct ProxyBook {
    /// In file order: the tie-breaker of [`ProxyBook::assign`].
    entries: Vec<Entry>,
    /// username → server.
    assigned: BTreeMap<String, String>,
    failures_before_rotation: u32,
    retry_after_ms: i64,
}

impl ProxyBook {
    /// A book over `proxies` (file order), rotating after `failures_before_rotation`
    /// consecutive failures for `retry_after_secs`.
    pub fn new(
        proxies: Vec<ProxyUrl>,
        failures_before_rotation: u32,
        retry_after_secs: u64,
    ) -> Self {
        ProxyBook {
            entries: proxies.into_iter().map(Entry::new).collect(),
            assigned: BTreeMap::new(),
            failures_before_rotation: failures_before_rotation.max(1),
            retry_after_ms: i64::try_from(retry_after_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
        }
    }

    /// True when no proxy is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Take a new proxy list (the file changed): proxies still listed keep their health
    /// and accounts; accounts of removed proxies become unassigned.
    pub fn reload(&mut self, proxies: Vec<ProxyUrl>) {
        let mut old: HashMap<String, Entry> = self
            .entries
            .drain(..)
            .map(|e| (e.url.server(), e))
            .collect();
        self.entries = proxies
            .into_iter()
            .map(|url| match old.remove(&url.server()) {
                // The new line may carry new credentials; the health stays.
                Some(e) => Entry { url, ..e },
                None => Entry::new(url),
            })
            .collect();
        let entries = &self.entries;
        self.assigned
            .retain(|_, server| entries.iter().any(|e| &e.url.server() == server));
    }

    /// Put back an account's stored assignment (`server` from its record) after a
    /// restart. False when that proxy is no longer listed (the account is then assigned
    /// afresh by [`ProxyBook::assign`]).
    pub fn restore(&mut self, username: &str, server: &str) -> bool {
        if self.entries.iter().any(|e| e.url.server() == server) {
            self.assigned
                .insert(username.to_string(), server.to_string());
            true
        } else {
            false
        }
    }

    /// The proxy `username` runs through: its sticky one while healthy; otherwise the
    /// healthy proxy with the fewest accounts (ties: file order), which becomes sticky.
    pub fn assign(&mut self, username: &str, now_ms: i64) -> Assignment {
        if self.entries.is_empty() {
            return Assignment::NoneConfigured;
        }
        self.expire(now_ms);
        if let Some(server) = self.assigned.get(username)
            && let Some(e) = self.entries.iter().find(|e| &e.url.server() == server)
            && e.healthy()
        {
            return Assignment::Proxy(e.url.clone());
        }
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (user, server) in &self.assigned {
            if user != username {
                *counts.entry(server.as_str()).or_default() += 1;
            }
        }
        let best = self
            .entries
            .iter()
            .filter(|e| e.healthy())
            .map(|e| {
                let server = e.url.server();
                let n = counts.get(server.as_str()).copied().unwrap_or(0);
                (n, e)
            })
            // min_by_key keeps the first of equal keys: file order breaks ties.
            .min_by_key(|(n, _)| *n)
            .map(|(_, e)| e.url.clone());
        match best {
            Some(url) => {
                self.assigned.insert(username.to_string(), url.server());
                Assignment::Proxy(url)
            }
            None => {
                // Keep no stale assignment: when a proxy recovers, the next call balances.
                self.assigned.remove(username);
                Assignment::NoneHealthy
            }
        }
    }

    /// The account's current assignment (`scheme://host:port`), for its record.
    pub fn assigned(&self, username: &str) -> Option<&str> {
        self.assigned.get(username).map(String::as_str)
    }

    /// Forget a retired account (removed from `accounts_file`).
    pub fn release(&mut self, username: &str) {
        self.assigned.remove(username);
    }

    /// A step through `server` failed because of the proxy. At the configured count of
    /// consecutive failures the proxy is taken out and its accounts released; the
    /// returned [`Rotation`] names them (its `Display` is the warning to log).
    pub fn record_failure(&mut self, server: &str, now_ms: i64) -> Option<Rotation> {
        self.expire(now_ms);
        let threshold = self.failures_before_rotation;
        let retry_after = self.retry_after_ms;
        let entry = self.entries.iter_mut().find(|e| e.url.server() == server)?;
        if !entry.healthy() {
            // Steps already under way when it failed: nothing more to decide.
            return None;
        }
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures < threshold {
            return None;
        }
        entry.failed_until_ms = Some(now_ms.saturating_add(retry_after));
        let failures = entry.failures;
        let accounts: Vec<String> = self
            .assigned
            .iter()
            .filter(|(_, s)| s.as_str() == server)
            .map(|(u, _)| u.clone())
            .collect();
        self.assigned.retain(|_, s| s != server);
        Some(Rotation {
            server: server.to_string(),
            failures,
            accounts,
        })
    }

    /// A step through `server` succeeded: its failure count starts over.
    pub fn record_success(&mut self, server: &str) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.url.server() == server) {
            e.failures = 0;
        }
    }

    /// Every proxy with its state, failures and accounts, in file order.
    pub fn report(&self, now_ms: i64) -> Vec<ProxyReport> {
        self.entries
            .iter()
            .map(|e| {
                let server = e.url.server();
                let failed = e.failed_until_ms.filter(|until| *until > now_ms);
                ProxyReport {
                    accounts: self
                        .assigned
                        .iter()
                        .filter(|(_, s)| **s == server)
                        .map(|(u, _)| u.clone())
                        .collect(),
                    server,
                    state: if failed.is_some() {
                        ProxyState::Failed
                    } else {
                        ProxyState::Healthy
                    },
                    failures: e.failures,
                    retry_at_ms: failed,
                }
            })
            .collect()
    }

    /// Failed proxies whose time is up come back on probation: one more failure takes
    /// them out again at once (a dead proxy costs one step per retry period, not
    /// `failures_before_rotation`), a success clears the count.
    fn expire(&mut self, now_ms: i64) {
        let probation = self.failures_before_rotation.saturating_sub(1);
        for e in &mut self.entries {
            if e.failed_until_ms.is_some_and(|until| until <= now_ms) {
                e.failed_until_ms = None;
                e.failures = probation;
            }
        }
    }
}

impl Entry {
    fn new(url: ProxyUrl) -> Entry {
        Entry {
            url,
            failures: 0,
            failed_until_ms: None,
        }
    }

    /// Call after `expire`: a set `failed_until_ms` is then in the future.
    fn healthy(&self) -> bool {
        self.failed_until_ms.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> ProxyUrl {
        ProxyUrl::parse(s).unwrap()
    }

    fn book(n: usize) -> ProxyBook {
        let proxies = (1..=n)
            .map(|i| url(&format!("http://10.0.0.{i}:8080")))
            .collect();
        ProxyBook::new(proxies, 3, 1800)
    }

    fn server_of(a: Assignment) -> String {
        match a {
            Assignment::Proxy(p) => p.server(),
            other => panic!("expected a proxy, got {other:?}"),
        }
    }

    #[test]
    fn parses_http_https_socks5() {
        let text = "# proxies\n\nhttp://u%40x:p%3Ass@10.0.0.5:8080\nHTTPS://Proxy.Example.com:443/\nsocks5://[::1]:1080\n";
        let proxies = parse_proxies(text, "/etc/p.txt").unwrap();
        assert_eq!(proxies.len(), 3);
        assert_eq!(proxies[0].scheme(), ProxyScheme::Http);
        assert_eq!(proxies[0].server(), "http://10.0.0.5:8080");
        assert_eq!(proxies[0].credentials(), Some(("u@x", "p:ss")));
        assert_eq!(proxies[1].server(), "https://proxy.example.com:443");
        assert_eq!(proxies[1].credentials(), None);
        assert_eq!(proxies[2].server(), "socks5://[::1]:1080");
    }

    #[test]
    fn socks5_with_credentials_is_refused() {
        let e = parse_proxies(
            "http://a:1\nsocks5://user:Sup3rSecret@h:1080\n",
            "/etc/p.txt",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/etc/p.txt line 2"), "{e}");
        assert!(e.contains("Chromium cannot authenticate to SOCKS"), "{e}");
        assert!(!e.contains("Sup3rSecret"), "{e}");
    }

    #[test]
    fn malformed_lines_name_the_line_not_the_text() {
        for bad in [
            "10.0.0.5:8080",
            "ftp://h:1",
            "http://user:Sup3rSecret@h",
            "http://user:Sup3rSecret@h:0",
            "http://user:Sup3rSecret@h:1/path",
            "http://userSup3rSecret@h:1",
            "http://user:Sup3rSecret%zz@h:1",
            "http://:Sup3rSecret@h:1",
        ] {
            let e = parse_proxies(&format!("\n{bad}\n"), "f")
                .unwrap_err()
                .to_string();
            assert!(e.contains("proxies_file f line 2"), "{bad}: {e}");
            assert!(!e.contains("Sup3rSecret"), "{bad}: {e}");
        }
        let e = parse_proxies("http://h:1\nhttp://x:y@H:1\n", "f")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2: duplicate proxy http://h:1 (first on line 1)"),
            "{e}"
        );
    }

    #[test]
    fn display_never_shows_credentials() {
        let p = url("http://user:Sup3rSecret@10.0.0.5:8080");
        for shown in [format!("{p}"), format!("{p:?}"), p.server()] {
            assert!(shown.contains("http://10.0.0.5:8080"), "{shown}");
            assert!(
                !shown.contains("Sup3rSecret") && !shown.contains("user"),
                "{shown}"
            );
        }
        let report = format!("{:?}", ProxyBook::new(vec![p], 3, 60));
        assert!(!report.contains("Sup3rSecret"), "{report}");
    }

    #[test]
    fn sticky_assignment_balances_and_survives_reload() {
        let mut b = book(2);
        let got: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .map(|u| server_of(b.assign(u, 0)))
            .collect();
        // Fewest accounts first, ties by file order: 1, 2, 1, 2.
        assert_eq!(
            got,
            [
                "http://10.0.0.1:8080",
                "http://10.0.0.2:8080",
                "http://10.0.0.1:8080",
                "http://10.0.0.2:8080"
            ]
        );
        // Sticky: asking again changes nothing, even with a new, empty proxy listed first.
        b.reload(vec![
            url("http://10.0.0.9:8080"),
            url("http://10.0.0.1:8080"),
            url("http://10.0.0.2:8080"),
        ]);
        assert_eq!(server_of(b.assign("a", 0)), "http://10.0.0.1:8080");
        // A new account goes to the empty proxy.
        assert_eq!(server_of(b.assign("e", 0)), "http://10.0.0.9:8080");

        // A restart: a fresh book plus the stored assignments gives the same proxies.
        let mut fresh = book(2);
        assert!(fresh.restore("a", "http://10.0.0.2:8080"));
        assert!(!fresh.restore("z", "http://10.9.9.9:1"));
        assert_eq!(server_of(fresh.assign("a", 0)), "http://10.0.0.2:8080");
        assert_eq!(server_of(fresh.assign("b", 0)), "http://10.0.0.1:8080");

        // A proxy removed from the file releases its accounts.
        b.reload(vec![url("http://10.0.0.2:8080")]);
        assert_eq!(b.assigned("a"), None);
        assert_eq!(b.assigned("b"), Some("http://10.0.0.2:8080"));
    }

    #[test]
    fn third_consecutive_failure_rotates_accounts_away() {
        let mut b = book(2);
        let one = "http://10.0.0.1:8080";
        let two = "http://10.0.0.2:8080";
        for u in ["a", "b", "c"] {
            b.assign(u, 0);
        }
        assert_eq!(b.assigned("a"), Some(one));
        assert_eq!(b.assigned("c"), Some(one));
        assert!(b.record_failure(one, 1).is_none());
        assert!(b.record_failure(one, 2).is_none());
        let rotation = b.record_failure(one, 3).unwrap();
        assert_eq!(rotation.accounts, ["a", "c"]);
        assert_eq!(
            rotation.to_string(),
            "proxy http://10.0.0.1:8080 failed 3 times in a row; moving 2 accounts to other proxies"
        );
        assert_eq!(server_of(b.assign("a", 4)), two);
        assert_eq!(server_of(b.assign("c", 4)), two);
        let report = b.report(4);
        assert_eq!(report[0].state, ProxyState::Failed);
        assert_eq!(report[0].failures, 3);
        assert_eq!(report[0].retry_at_ms, Some(3 + 1_800_000));
        assert!(report[0].accounts.is_empty());
        assert_eq!(report[1].accounts, ["a", "b", "c"]);
        assert_eq!(report[1].state, ProxyState::Healthy);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut b = book(1);
        let one = "http://10.0.0.1:8080";
        b.assign("a", 0);
        b.record_failure(one, 0);
        b.record_failure(one, 0);
        b.record_success(one);
        assert!(b.record_failure(one, 0).is_none());
        assert!(b.record_failure(one, 0).is_none());
        assert_eq!(b.report(0)[0].failures, 2);
    }

    #[test]
    fn no_healthy_proxy_and_recovery_after_the_retry_time() {
        let mut b = book(1);
        let one = "http://10.0.0.1:8080";
        b.assign("a", 0);
        for _ in 0..3 {
            b.record_failure(one, 0);
        }
        assert_eq!(b.assign("a", 1000), Assignment::NoneHealthy);
        let back = 1_800_000;
        assert_eq!(server_of(b.assign("a", back)), one);
        assert_eq!(b.report(back)[0].state, ProxyState::Healthy);
        // On probation: one failure takes it out again.
        let r = b.record_failure(one, back + 1).unwrap();
        assert_eq!(r.accounts, ["a"]);
        assert_eq!(
            ProxyBook::new(vec![], 3, 60).assign("a", 0),
            Assignment::NoneConfigured
        );
    }
}
