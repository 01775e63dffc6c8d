//! `BrowserError`: the one error type of the crate, shaped for what the scraper decides.
//!
//! The scraper matches on the variant, not the text: `Gone` means "retry the step once" (the
//! browser was relaunched and the context is re-created on the next call), `Proxy` counts against
//! the account's proxy, `Timeout` and `Navigation` against the target. Messages say what failed
//! and where; they never carry cookie values or proxy credentials (chromiumoxide's messages do
//! not contain them either: we never put credentials into a URL or a launch argument).

use std::path::Path;

use chromiumoxide::error::CdpError;

/// What went wrong in the browser layer.
#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    /// Chromium could not be started (missing binary, sandbox as root, launch timeout) or the
    /// pool's configuration is unusable.
    #[error("cannot start Chromium: {0}")]
    Launch(String),
    /// The browser this context or page lived in crashed, was relaunched or shut down. The next
    /// `AccountContext::lease`/`cookies` call re-creates the context in the new browser.
    #[error("the browser process was lost (crashed, relaunched or shut down); retry the step")]
    Gone,
    /// A step, a navigation or a DevTools command did not finish in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The page could not be loaded (`net::ERR_*` other than proxy errors).
    #[error("navigation failed: {0}")]
    Navigation(String),
    /// The context's proxy refused, failed or could not be reached; Chromium never falls back
    /// to a direct connection.
    #[error("proxy failed: {0}")]
    Proxy(String),
    /// A DevTools command failed for another reason.
    #[error("DevTools command failed: {0}")]
    Cdp(String),
    /// Every browser already holds `contexts_per_browser` contexts.
    #[error("no room for another account context: {0}")]
    Full(String),
}

impl BrowserError {
    /// Whether the failure is the proxy's (the scraper counts these per proxy and rotates).
    pub fn is_proxy(&self) -> bool {
        matches!(self, BrowserError::Proxy(_))
    }

    /// Whether the failure means the browser went away (retry once on the new one).
    pub fn is_gone(&self) -> bool {
        matches!(self, BrowserError::Gone)
    }
}

/// A DevTools failure of `what` (e.g. "creating a page"). Timeouts keep their own variant.
pub(crate) fn cdp(what: &str, e: CdpError) -> BrowserError {
    match e {
        CdpError::Timeout => BrowserError::Timeout(format!("{what}: no answer from Chromium")),
        other => BrowserError::Cdp(format!("{what}: {other}")),
    }
}

/// Whether a chromiumoxide error says the connection to the browser is gone (rather than a
/// command being refused). Such errors make the caller check the browser before answering.
pub(crate) fn is_connection_error(e: &CdpError) -> bool {
    matches!(
        e,
        CdpError::Ws(_)
            | CdpError::Io(_)
            | CdpError::ChannelSendError(_)
            | CdpError::NoResponse
            | CdpError::Timeout
    )
}

/// Turns a failed `Browser::launch` into a message that says how to fix it.
pub(crate) fn launch_error(executable: &Path, e: CdpError) -> BrowserError {
    let exe = executable.display();
    let msg = match e {
        CdpError::LaunchExit(status, stderr) => {
            let last = last_line(stderr.as_slice());
            let mut msg = format!("{exe} exited ({status}) before DevTools was up: {last}");
            if last.contains("no-sandbox") {
                msg.push_str(
                    "; set [scraper.browser] sandbox = \"off\" or run the host as a non-root user",
                );
            }
            msg
        }
        CdpError::LaunchTimeout(stderr) => format!(
            "{exe} did not report its DevTools address within the launch timeout \
             ([scraper.browser] launch_timeout_secs); last stderr line: {}",
            last_line(stderr.as_slice())
        ),
        CdpError::LaunchIo(io, stderr) => format!(
            "reading {exe}'s output failed ({io}); last stderr line: {}",
            last_line(stderr.as_slice())
        ),
        CdpError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => format!(
            "{exe} was not found ({io}): install it (apt-get install -y chromium) or set \
             [scraper.browser] executable"
        ),
        other => format!("{exe}: {other}"),
    };
    BrowserError::Launch(msg)
}

/// The last non-empty line of Chromium's stderr (the first lines are noise from Debian's
/// wrapper script; the reason for an exit is at the end).
fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(nothing on stderr)")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_exit_quotes_the_last_stderr_line_and_says_how_to_fix_root() {
        use std::os::unix::process::ExitStatusExt;
        let stderr = b"/usr/bin/chromium: 9: [: unexpected operator\n\
            [123:123:ERROR:zygote_host_impl_linux.cc(101)] Running as root without --no-sandbox is not supported.\n\n"
            .to_vec();
        let e = launch_error(
            Path::new("/usr/bin/chromium"),
            CdpError::LaunchExit(
                std::process::ExitStatus::from_raw(256),
                chromiumoxide::error::BrowserStderr::new(stderr),
            ),
        );
        let msg = e.to_string();
        assert!(
            msg.contains("Running as root without --no-sandbox"),
            "{msg}"
        );
        assert!(msg.contains("sandbox = \"off\""), "{msg}");
        assert!(!msg.contains("unexpected operator"), "{msg}");
    }

    #[test]
    fn only_proxy_errors_are_proxy_errors() {
        assert!(BrowserError::Proxy("x".into()).is_proxy());
        assert!(!BrowserError::Navigation("net::ERR_FAILED".into()).is_proxy());
        assert!(!BrowserError::Gone.is_proxy());
    }
}
