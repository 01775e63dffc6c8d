//! `PoolConfig`: everything the pool needs, as plain values the host fills from
//! `[scraper.browser]` and `[scraper.capture]` (docs/design/x-scraper.md §1.1).
//!
//! Validation lives here so a bad value fails at `BrowserPool::start`, naming the field, instead
//! of surfacing later as a confusing Chromium behaviour (an argument with leading dashes is
//! silently ignored by Chromium, for one).

use std::path::PathBuf;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::network::ResourceType;

use crate::error::BrowserError;

/// Whether Chromium runs with its sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sandbox {
    /// Sandbox on, except when running as root (euid 0), where Chromium refuses to start with it.
    #[default]
    Auto,
    /// Always sandboxed (fails as root).
    On,
    /// Never sandboxed (`--no-sandbox`).
    Off,
}

impl Sandbox {
    /// Whether `--no-sandbox` must be passed.
    pub(crate) fn disabled(self) -> bool {
        match self {
            Sandbox::Auto => {
                // SAFETY: geteuid has no preconditions and cannot fail (POSIX).
                unsafe { libc::geteuid() == 0 }
            }
            Sandbox::On => false,
            Sandbox::Off => true,
        }
    }
}

/// How the pool launches browsers and captures pages.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The Chromium binary (Debian: `/usr/bin/chromium`).
    pub executable: PathBuf,
    /// Sandbox policy; `Auto` disables it only as root.
    pub sandbox: Sandbox,
    /// Chromium processes in the pool (each hosts several account contexts).
    pub browsers: usize,
    /// Account contexts one browser may host.
    pub contexts_per_browser: usize,
    /// Pages an account may have at once (1 or 2; issue 5 caps it at 2).
    pub pages_per_account: usize,
    /// Navigations after which a page is closed and replaced by a fresh one.
    pub page_max_uses: u32,
    /// How long Chromium may take to print its DevTools address.
    pub launch_timeout: Duration,
    /// How long one DevTools command may take.
    pub request_timeout: Duration,
    /// How often each browser is checked for liveness (exit status and a version probe).
    pub probe_interval: Duration,
    /// The user agent; `None`: the browser's own with `HeadlessChrome` replaced by `Chrome`.
    pub user_agent: Option<String>,
    /// Network resource types failed with `BlockedByClient` (`"Image"`, `"Media"`, `"Font"`,
    /// ... as CDP names them).
    pub block_resources: Vec<String>,
    /// Chromium's proxy bypass list for every proxied context (tests: `"<-loopback>"`, so that
    /// pages on 127.0.0.1 still go through the proxy).
    pub proxy_bypass_list: String,
    /// Extra Chromium switches without leading dashes (`"disable-gpu"`, `"lang=de"`).
    pub extra_args: Vec<String>,
    /// Parent of the per-browser profile directories `<root>/<pid>-<slot>-<generation>`.
    pub profile_root: PathBuf,
    /// A step ends only after no matching response arrived for this long.
    pub settle: Duration,
    /// A step that has not ended after this long returns what arrived, with `timed_out`.
    pub step_timeout: Duration,
    /// Scroll attempts without a new request before `scroll_more` reports the end.
    pub scroll_nudges: u32,
    /// How long each scroll attempt waits for a request to start.
    pub nudge_wait: Duration,
    /// Bodies larger than this are replaced by an empty string (and logged).
    pub max_body_bytes: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            executable: PathBuf::from("/usr/bin/chromium"),
            sandbox: Sandbox::Auto,
            browsers: 1,
            contexts_per_browser: 8,
            pages_per_account: 2,
            page_max_uses: 50,
            launch_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(15),
            probe_interval: Duration::from_secs(5),
            user_agent: None,
            block_resources: vec!["Image".into(), "Media".into(), "Font".into()],
            proxy_bypass_list: String::new(),
            extra_args: Vec::new(),
            profile_root: std::env::temp_dir().join("impressox-browser"),
            settle: Duration::from_millis(300),
            step_timeout: Duration::from_secs(20),
            scroll_nudges: 3,
            nudge_wait: Duration::from_millis(1500),
            max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

impl PoolConfig {
    /// Checks every value the pool relies on; the error names the field.
    pub(crate) fn validate(&self) -> Result<(), BrowserError> {
        let bad = |m: String| Err(BrowserError::Launch(m));
        if self.browsers == 0 {
            return bad("browsers must be at least 1".into());
        }
        if self.contexts_per_browser == 0 {
            return bad("contexts_per_browser must be at least 1".into());
        }
        if !(1..=2).contains(&self.pages_per_account) {
            return bad(format!(
                "pages_per_account must be 1 or 2, not {}",
                self.pages_per_account
            ));
        }
        if self.page_max_uses == 0 {
            return bad("page_max_uses must be at least 1".into());
        }
        for a in &self.extra_args {
            if a.starts_with('-') || a.is_empty() {
                return bad(format!(
                    "extra_args entry {a:?} must be a switch name without leading dashes \
                     (chromiumoxide adds them; \"--x\" would be passed as \"----x\" and ignored)"
                ));
            }
        }
        self.blocked_types()?;
        if self.profile_root.as_os_str().is_empty() {
            return bad("profile_root must not be empty".into());
        }
        Ok(())
    }

    /// `block_resources` as CDP resource types.
    pub(crate) fn blocked_types(&self) -> Result<Vec<ResourceType>, BrowserError> {
        self.block_resources
            .iter()
            .map(|name| {
                name.parse::<ResourceType>().map_err(|_| {
                    BrowserError::Launch(format!(
                        "block_resources entry {name:?} is not a network resource type \
                         (Image, Media, Font, Stylesheet, Script, ...)"
                    ))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        PoolConfig::default().validate().unwrap();
    }

    #[test]
    fn dashed_extra_args_and_unknown_resource_types_are_refused_by_name() {
        let cfg = PoolConfig {
            extra_args: vec!["--disable-gpu".into()],
            ..PoolConfig::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("extra_args") && e.contains("--disable-gpu"),
            "{e}"
        );

        let cfg = PoolConfig {
            block_resources: vec!["Picture".into()],
            ..PoolConfig::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("block_resources") && e.contains("Picture"),
            "{e}"
        );

        let cfg = PoolConfig {
            pages_per_account: 3,
            ..PoolConfig::default()
        };
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("pages_per_account")
        );
    }

    #[test]
    fn sandbox_on_and_off_do_not_depend_on_the_user() {
        assert!(!Sandbox::On.disabled());
        assert!(Sandbox::Off.disabled());
        // SAFETY: as above.
        let root = unsafe { libc::geteuid() == 0 };
        assert_eq!(Sandbox::Auto.disabled(), root);
    }
}
