//! Chromium for the tests that drive a browser (docs/design/x-scraper.md §5.6).
//!
//! - [`chromium_path`]: `IMPRESSOX_CHROMIUM`, else Debian's `/usr/bin/chromium`; missing, the
//!   test fails with the command that installs it (`cargo test-all` installs it when run as
//!   root), as every server of the harness does.
//! - [`browser_permit`]: at most two browsers at a time in this process ([`browser_permits`]
//!   for a test that runs two). On two cores,
//!   more Chromiums at once starve each other into timeouts; tests hold the permit for as long
//!   as their browser runs.
//! - [`dump_dom`]: Chromium's own `--dump-dom`, for checking a page renders without any Rust
//!   browser library.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

/// Browser tests allowed at once (all test threads of the process share it).
static BROWSERS: Semaphore = Semaphore::const_new(2);

/// The Chromium binary the tests use.
pub fn chromium_path() -> PathBuf {
    let path = std::env::var_os("IMPRESSOX_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !path.is_file() {
        panic!(
            "Chromium is needed at {} (or set IMPRESSOX_CHROMIUM): apt-get install -y chromium \
             (cargo test-all installs it when run as root)",
            path.display()
        );
    }
    path
}

/// Wait for a turn to run a browser; the turn lasts as long as the permit is held.
pub async fn browser_permit() -> SemaphorePermit<'static> {
    browser_permits(1).await
}

/// Wait for a turn to run `n` browsers at once (a test of two hosts). All `n` are taken
/// together: two tests that each held one and waited for a second would wait for ever.
pub async fn browser_permits(n: u32) -> SemaphorePermit<'static> {
    BROWSERS
        .acquire_many(n)
        .await
        .expect("the browser semaphore is never closed")
}

/// The DOM of `url` after Chromium ran its scripts for `budget` of virtual time (network
/// waits do not count against it). Headless, without a sandbox (tests run as root), with a
/// fresh profile directory. Panics if Chromium fails or takes over a minute.
pub async fn dump_dom(url: &str, budget: Duration) -> String {
    let profile = tempfile::Builder::new()
        .prefix("impressox-chromium-")
        .tempdir()
        .expect("a profile dir for Chromium");
    let mut command = tokio::process::Command::new(chromium_path());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-features=NetworkTimeServiceQuerying",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={}", budget.as_millis()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("chromium --dump-dom {url} took over a minute"))
        .unwrap_or_else(|e| panic!("run chromium: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && !stdout.is_empty(),
        "chromium --dump-dom {url} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
