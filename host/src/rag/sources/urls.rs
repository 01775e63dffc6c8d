//! The `urls` source: web pages fetched on an interval.
//!
//! Each fetch is conditional (`If-None-Match` with the page's last `ETag`,
//! `If-Modified-Since` with its `Last-Modified`), so an unchanged page costs a `304` and
//! no body. Pages go through the SSRF guard the webhook channel uses ([`crate::net`]):
//! a page whose name resolves to a private or loopback address is refused unless the
//! source sets `allow_private_addresses`. Up to 5 redirects are followed, each hop
//! re-checked. A page that fails to fetch keeps its stored chunks (a site's outage is not
//! a deletion); a page removed from the configuration loses them.

use std::time::Duration;

use anyhow::{Result, anyhow};
use reqwest::header;

use super::cursors::Validators;
use crate::net::{Outbound, OutboundPolicy};
use crate::rag::service::SourceDocument;

/// The largest page body read.
pub const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// A page's answer.
#[derive(Debug)]
pub enum Fetched {
    /// `304`: the stored version stands.
    NotModified,
    Page {
        doc: SourceDocument,
        validators: Validators,
    },
}

/// The guarded client of one source.
pub fn client(allow_private_addresses: bool) -> Result<Outbound> {
    Outbound::new(&OutboundPolicy {
        allow_private_addresses,
        timeout: Duration::from_secs(30),
        max_redirects: 5,
        user_agent: format!("impressox-rag/{}", env!("CARGO_PKG_VERSION")),
        ..OutboundPolicy::default()
    })
}

/// Fetches `url`, conditionally on `previous`.
pub async fn fetch(client: &Outbound, url: &str, previous: &Validators) -> Result<Fetched> {
    let parsed = reqwest::Url::parse(url).map_err(|e| anyhow!("{url}: {e}"))?;
    let mut req = client
        .request(reqwest::Method::GET, parsed)
        .await
        .map_err(|e| anyhow!("{url}: {e}"))?;
    if let Some(etag) = &previous.etag {
        req = req.header(header::IF_NONE_MATCH, etag);
    }
    if let Some(lm) = &previous.last_modified {
        req = req.header(header::IF_MODIFIED_SINCE, lm);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| match crate::net::guard::guard_error(&e) {
            Some(g) => anyhow!("{url}: {g}"),
            None => anyhow!("{url}: {e}"),
        })?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        return Err(anyhow!("{url}: HTTP {status}"));
    }
    let header_str = |name: header::HeaderName| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let validators = Validators {
        etag: header_str(header::ETAG),
        last_modified: header_str(header::LAST_MODIFIED),
    };
    let content_type = header_str(header::CONTENT_TYPE).unwrap_or_else(|| "text/html".into());
    if resp
        .content_length()
        .is_some_and(|n| n as usize > MAX_PAGE_BYTES)
    {
        return Err(anyhow!("{url}: larger than {MAX_PAGE_BYTES} bytes"));
    }
    let bytes = resp.bytes().await.map_err(|e| anyhow!("{url}: {e}"))?;
    if bytes.len() > MAX_PAGE_BYTES {
        return Err(anyhow!("{url}: larger than {MAX_PAGE_BYTES} bytes"));
    }
    let time_ms = validators.last_modified.as_deref().and_then(httpdate_ms);
    Ok(Fetched::Page {
        doc: SourceDocument {
            id: url.to_string(),
            text: String::from_utf8_lossy(&bytes).into_owned(),
            media_type: content_type,
            metadata: vec![("url".into(), url.to_string())],
            url: Some(url.to_string()),
            time_ms,
        },
        validators,
    })
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) in ms since the epoch.
fn httpdate_ms(text: &str) -> Option<i64> {
    let t = jiff::fmt::rfc2822::parse(text).ok()?;
    Some(t.timestamp().as_millisecond())
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates_parse() {
        assert_eq!(
            super::httpdate_ms("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(super::httpdate_ms("yesterday"), None);
    }
}
