//! A browser capture → the scrape-parser plugin → a [`ScrapeResult`].
//!
//! The plugin call is synchronous (wasmtime, under the runtime's deadline and memory cap),
//! so it runs on the blocking pool. Each call takes the version serving at that moment: a
//! parser swapped mid-run parses the early pages with the old version and the later ones
//! with the new, and every page is parsed by one of them. A failed parse never loses the
//! page: the caller spools the capture (`store::spool_capture`) and `scraper reparse` or the
//! next run of the target parses it again.

use impressox_browser::Capture;

use crate::bindings::types::{CapturedResponse, Header, PageCapture, ScrapeResult};
use crate::runtime::Runtime;

/// The plugin's view of a capture.
pub fn to_page_capture(capture: &Capture) -> PageCapture {
    PageCapture {
        url: capture.url.clone(),
        html: capture.html.clone().unwrap_or_default(),
        responses: capture
            .responses
            .iter()
            .map(|r| CapturedResponse {
                url: r.url.clone(),
                status: r.status,
                headers: r
                    .headers
                    .iter()
                    .map(|(name, value)| Header {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                body: r.body.clone(),
            })
            .collect(),
        captured_at_ms: capture.captured_at_ms,
    }
}

/// A parsed page and the parser version that read it (`name@version`).
#[derive(Debug)]
pub struct Parsed {
    pub result: ScrapeResult,
    pub parser: String,
}

/// Run the parser over one capture. `Err` carries a message for logs and the spool: the
/// plugin refused the page (none of its responses could be read), or the call failed
/// (not loaded, trapped, timed out, quarantined).
pub async fn parse(
    runtime: &Runtime,
    parser: &str,
    capture: PageCapture,
) -> Result<Parsed, String> {
    let handle = runtime.plugin(parser);
    tokio::task::spawn_blocking(move || {
        let version = handle
            .current()
            .map(|l| format!("{}@{}", l.name, l.version))
            .unwrap_or_else(|| handle.name().to_string());
        match handle.parse_page(&capture) {
            Ok(Ok(result)) => Ok(Parsed {
                result,
                parser: version,
            }),
            Ok(Err(message)) => Err(format!("parser {version} refused the page: {message}")),
            Err(err) => Err(err.to_string()),
        }
    })
    .await
    .unwrap_or_else(|join| Err(format!("parser task failed: {join}")))
}
