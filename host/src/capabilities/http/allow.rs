//! The `http` grant: which scheme, host and port a plugin's request may go to.
//!
//! One entry is `[scheme://]host[:port]`:
//! - **scheme**: omitted means `https` only; plain `http://` must be written out (a
//!   plain-text request is the operator's decision, not the plugin's).
//! - **host**: a name (`api.example.com`, matched without regard to case or a trailing
//!   dot), an IP literal (`127.0.0.1`, `[::1]`), or `*.example.com`, which matches every
//!   name below `example.com` at any depth but not `example.com` itself.
//! - **port**: omitted means the scheme's default (443, 80); `:*` allows any port.
//!
//! The list decides only where a request may be addressed. Where it may connect is the SSRF
//! guard's business (`crate::net`): a granted name that resolves to a private address is
//! still refused unless `[plugins.http] allow_private_addresses` is set.

use reqwest::Url;

/// One parsed grant entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    scheme: &'static str,
    host: HostRule,
    /// `None`: any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    /// Exactly this name or IP literal (lower case, no trailing dot, IPv6 in brackets).
    Exact(String),
    /// Any name ending in `.suffix`.
    Below(String),
}

/// A plugin's `http` grant, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<Entry>,
}

impl AllowList {
    /// Parse the entries of `[plugins.grants.<name>] http`; an error names the bad entry
    /// and what is wrong with it.
    pub fn parse(entries: &[String]) -> Result<AllowList, String> {
        let entries = entries
            .iter()
            .map(|e| parse_entry(e).map_err(|why| format!("`{e}`: {why}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllowList { entries })
    }

    /// Whether no host is granted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a request to `url` is granted.
    pub fn allows(&self, url: &Url) -> bool {
        let scheme = url.scheme();
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = normalize_host(host);
        let Some(port) = url.port_or_known_default() else {
            return false;
        };
        self.entries.iter().any(|e| {
            e.scheme == scheme
                && e.port.is_none_or(|p| p == port)
                && match &e.host {
                    HostRule::Exact(h) => *h == host,
                    HostRule::Below(suffix) => host
                        .strip_suffix(suffix.as_str())
                        .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
                }
        })
    }
}

fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn parse_entry(entry: &str) -> Result<Entry, String> {
    let entry = entry.trim();
    let (scheme, rest) = match entry.split_once("://") {
        Some(("https", rest)) => ("https", rest),
        Some(("http", rest)) => ("http", rest),
        Some((other, _)) => {
            return Err(format!(
                "scheme `{other}` is not allowed; use `https://` (the default) or `http://`"
            ));
        }
        None => ("https", entry),
    };
    if rest.contains(['/', '?', '#', '@']) {
        return Err("give a host with an optional port, not a URL with a path or user".into());
    }
    let wildcard = rest.strip_prefix("*.");
    let (host_part, any_port) = match rest.strip_suffix(":*") {
        Some(h) => (h, true),
        None => (rest, false),
    };
    // Parse through the URL parser so names, IPv4 spellings and IPv6 literals come out
    // the way request URLs will be compared; a wildcard's suffix is parsed as a name.
    let probe = match wildcard {
        Some(_) => format!("{scheme}://{}", &host_part[2..]),
        None => format!("{scheme}://{host_part}"),
    };
    let url = Url::parse(&probe).map_err(|e| format!("not a host name or address: {e}"))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("no host given")?;
    let host = normalize_host(host);
    if wildcard.is_some() && (host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok()) {
        return Err("`*.` goes only before a domain name, not an IP address".into());
    }
    if host.contains('*') {
        return Err("`*` may only open the entry, as in `*.example.com`".into());
    }
    let port = if any_port {
        None
    } else {
        Some(
            url.port_or_known_default()
                .ok_or("the scheme has no default port")?,
        )
    };
    Ok(Entry {
        scheme,
        host: match wildcard {
            Some(_) => HostRule::Below(host),
            None => HostRule::Exact(host),
        },
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn allows(l: &AllowList, url: &str) -> bool {
        l.allows(&Url::parse(url).unwrap())
    }

    #[test]
    fn a_bare_name_is_https_on_its_default_port() {
        let l = list(&["api.example.com"]);
        assert!(allows(&l, "https://api.example.com/v1?x=1"));
        assert!(allows(&l, "https://API.Example.com./v1"));
        assert!(allows(&l, "https://api.example.com:443/"));
        assert!(!allows(&l, "http://api.example.com/"));
        assert!(!allows(&l, "https://api.example.com:8443/"));
        assert!(!allows(&l, "https://example.com/"));
        assert!(!allows(&l, "https://api.example.com.evil.net/"));
        assert!(!allows(&l, "https://evilapi.example.com/"));
    }

    #[test]
    fn a_wildcard_covers_subdomains_but_not_the_domain() {
        let l = list(&["*.coingecko.com"]);
        assert!(allows(&l, "https://api.coingecko.com/"));
        assert!(allows(&l, "https://pro.api.coingecko.com/"));
        assert!(!allows(&l, "https://coingecko.com/"));
        assert!(!allows(&l, "https://evilcoingecko.com/"));
        assert!(!allows(&l, "https://coingecko.com.evil.net/"));
    }

    #[test]
    fn plain_http_and_ports_must_be_written_out() {
        let l = list(&[
            "http://127.0.0.1:*",
            "http://[::1]:8080",
            "https://h.test:8443",
        ]);
        assert!(allows(&l, "http://127.0.0.1:1234/x"));
        assert!(allows(&l, "http://127.0.0.1/x"));
        assert!(!allows(&l, "https://127.0.0.1/x"));
        assert!(allows(&l, "http://[::1]:8080/"));
        assert!(!allows(&l, "http://[::1]:8081/"));
        assert!(allows(&l, "https://h.test:8443/"));
        assert!(!allows(&l, "https://h.test/"));
        // Another spelling of the same IPv4 address is the same address.
        assert!(allows(&l, "http://2130706433:80/"));
    }

    #[test]
    fn bad_entries_are_named() {
        for (entry, why) in [
            ("ftp://x.test", "scheme `ftp`"),
            ("https://x.test/path", "not a URL with a path"),
            ("user@x.test", "not a URL with a path or user"),
            ("*.127.0.0.1", "not an IP address"),
            ("a.*.test", "`*` may only open"),
            ("", "empty host"),
            ("x.test:99999", "not a host name"),
        ] {
            let err = AllowList::parse(&[entry.to_string()]).unwrap_err();
            assert!(err.contains(why), "{entry}: {err}");
        }
    }
}
