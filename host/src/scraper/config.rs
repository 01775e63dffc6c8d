//! `[scraper]`: the x-scraper worker's configuration (docs/design/x-scraper.md §1.1).
//!
//! Sections: `[scraper]` (where X is, which files hold accounts, proxies and handles, run
//! pacing), `[scraper.browser]` (Chromium), `[scraper.capture]` (when a step is done),
//! `[scraper.limits]` (budgets, account-state timers, proxy rotation), `[scraper.login]`
//! (selectors of X's login form) and `[[scraper.searches]]` (search targets).
//!
//! The config holds file names, never credentials: accounts and proxy passwords live in
//! the files `accounts_file` and `proxies_file` name (parsed by `accounts` and `proxies`).
//! Relative paths resolve against the config file's folder, like `data_dir`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// The worker's name in `[workers] enabled`.
pub const WORKER: &str = "x-scraper";

/// `network::ResourceType` names Chromium reports; `block_resources` must use these.
const RESOURCE_TYPES: &[&str] = &[
    "Document",
    "Stylesheet",
    "Image",
    "Media",
    "Font",
    "Script",
    "TextTrack",
    "XHR",
    "Fetch",
    "Prefetch",
    "EventSource",
    "WebSocket",
    "Manifest",
    "SignedExchange",
    "Ping",
    "CSPViolationReport",
    "Preflight",
    "Other",
];

/// Resource types the capture depends on: the page itself, X's app and its GraphQL calls.
const NEEDED_RESOURCE_TYPES: &[&str] = &["Document", "Script", "XHR", "Fetch"];

/// `[scraper]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScraperConfig {
    /// The scrape-parser plugin (by the name it gives itself in `info`).
    pub parser: String,
    /// Where X is: `scheme://host[:port]`, no path. Tests point it at a stand-in.
    pub base_url: String,
    /// A user's timeline page; `{handle}` is replaced by the handle.
    pub user_path: String,
    /// The search page; `{query}` is replaced by the percent-encoded query and `{product}`
    /// by `live` ("Latest") or `top`.
    pub search_path: String,
    /// X's login flow.
    pub login_path: String,
    /// `username:password:email[:totp_secret]` per line; required when the worker is
    /// enabled. Keep it readable by the host's user only (a warning says otherwise).
    pub accounts_file: PathBuf,
    /// `scheme://[user:pass@]host:port` per line (http, https, socks5); empty: no proxies.
    pub proxies_file: PathBuf,
    /// With proxies configured and none healthy: `true` runs the account without a
    /// proxy, `false` makes it wait until one is healthy again.
    pub allow_direct: bool,
    /// One handle per line, `#` comments; each becomes a `user:<handle>` target. Empty:
    /// no file (targets come from `[[scraper.searches]]` and the API).
    pub user_list: PathBuf,
    /// Seconds between runs of a target that sets no `interval_secs`.
    pub default_interval_secs: u64,
    /// Most pages a tail run reads (and all a first run reads).
    pub tail_max_pages: u32,
    /// Pages per run of a `mode = "backfill"` target that sets no `max_pages`.
    pub backfill_max_pages: u32,
    /// Least time between two steps of one account (plus up to 50 % jitter), in ms.
    pub min_step_interval_ms: u64,
    /// On shutdown, how long running runs have to end: each ends at its next step boundary
    /// and saves its progress; one still inside a step when most of this is spent gives the
    /// step up (the page is read again next time), so saving fits in the grace.
    pub shutdown_grace_secs: u64,
    /// How long a host's claim on a target (a store lease) lasts without renewal. A running
    /// target's lease is renewed every third of this, so another host never starts a live
    /// run; a host that dies holds its targets at most this long.
    pub target_lease_secs: u64,
    /// `[scraper.browser]`
    pub browser: BrowserConfig,
    /// `[scraper.capture]`
    pub capture: CaptureConfig,
    /// `[scraper.limits]`
    pub limits: LimitsConfig,
    /// `[scraper.login]`
    pub login: LoginConfig,
    /// `[[scraper.searches]]`: search targets, upserted at start-up.
    pub searches: Vec<SearchConfig>,
}

impl Default for ScraperConfig {
    fn default() -> Self {
        ScraperConfig {
            parser: "x-timeline".into(),
            base_url: "https://x.com".into(),
            user_path: "/{handle}".into(),
            search_path: "/search?q={query}&src=typed_query&f={product}".into(),
            login_path: "/i/flow/login".into(),
            accounts_file: PathBuf::from("secrets/x-accounts.txt"),
            proxies_file: PathBuf::new(),
            allow_direct: true,
            user_list: PathBuf::new(),
            default_interval_secs: 900,
            tail_max_pages: 10,
            backfill_max_pages: 50,
            min_step_interval_ms: 1500,
            shutdown_grace_secs: 20,
            target_lease_secs: 60,
            browser: BrowserConfig::default(),
            capture: CaptureConfig::default(),
            limits: LimitsConfig::default(),
            login: LoginConfig::default(),
            searches: Vec::new(),
        }
    }
}

/// `[scraper.browser]`: the Chromium processes and what runs in them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrowserConfig {
    /// The Chromium binary (Debian: `apt-get install -y chromium`).
    pub executable: PathBuf,
    /// Chromium's sandbox: `auto` turns it off only when running as root (Chromium
    /// refuses to start as root with it), `on`, or `off`.
    pub sandbox: Sandbox,
    /// Chromium processes.
    pub browsers: u32,
    /// Browser contexts (one per account) each process hosts.
    pub contexts_per_browser: u32,
    /// Pages open at once per account: 1 or 2 (X bans accounts that do more).
    pub pages_per_account: u32,
    /// Navigations before a page is closed and replaced (renderer memory only grows).
    pub page_max_uses: u32,
    /// How long Chromium may take to start.
    pub launch_timeout_secs: u64,
    /// How long one DevTools command may take.
    pub request_timeout_secs: u64,
    /// How often each browser is probed for liveness (a dead one is relaunched).
    pub probe_interval_secs: u64,
    /// The user agent; empty: the browser's own with `HeadlessChrome` → `Chrome`.
    pub user_agent: String,
    /// Resource types failed before they load (`network::ResourceType` names), to save
    /// bandwidth; the page, scripts and XHR/fetch calls cannot be blocked.
    pub block_resources: Vec<String>,
    /// Chromium's proxy bypass rules per context; tests use `<-loopback>` so a stand-in
    /// site on 127.0.0.1 still goes through the proxy.
    pub proxy_bypass_list: String,
    /// Extra Chromium switches without leading dashes (`disable-gpu`,
    /// `window-size=1280,1800`): the browser layer adds `--` itself.
    pub extra_args: Vec<String>,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        BrowserConfig {
            executable: PathBuf::from("/usr/bin/chromium"),
            sandbox: Sandbox::Auto,
            browsers: 1,
            contexts_per_browser: 8,
            pages_per_account: 2,
            page_max_uses: 50,
            launch_timeout_secs: 30,
            request_timeout_secs: 15,
            probe_interval_secs: 5,
            user_agent: String::new(),
            block_resources: vec!["Image".into(), "Media".into(), "Font".into()],
            proxy_bypass_list: String::new(),
            extra_args: Vec::new(),
        }
    }
}

/// `[scraper.browser] sandbox`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sandbox {
    /// Off when the process runs as root, on otherwise.
    #[default]
    Auto,
    /// Always on (fails as root).
    On,
    /// Always off.
    Off,
}

/// `[scraper.capture]`: when a step (a navigation or a scroll) counts as done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Quiet time after the last matching response before a step ends, in ms.
    pub settle_ms: u64,
    /// A step ends after this long whatever arrived (and the page is recycled).
    pub step_timeout_secs: u64,
    /// Scroll attempts without a new request before the timeline counts as ended.
    pub scroll_nudges: u32,
    /// How long each scroll attempt waits for a request, in ms.
    pub nudge_wait_ms: u64,
    /// Larger response bodies are replaced by "" (and counted).
    pub max_body_bytes: u64,
    /// Which steps carry the page's HTML to the parser.
    pub html: HtmlCapture,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            settle_ms: 300,
            step_timeout_secs: 20,
            scroll_nudges: 3,
            nudge_wait_ms: 1500,
            max_body_bytes: 8 * 1024 * 1024,
            html: HtmlCapture::First,
        }
    }
}

/// `[scraper.capture] html`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HtmlCapture {
    /// The navigation step only.
    #[default]
    First,
    /// Every step, scrolls included.
    Every,
    /// None (the parser reads the GraphQL JSON alone).
    Never,
}

/// `[scraper.limits]`: request budgets, account-state timers, proxy rotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests per (account, operation) kept back from X's budget.
    pub budget_reserve: u32,
    /// X's budget window, used until `x-rate-limit-reset` headers tell the real one.
    pub window_secs: u64,
    /// Requests per window per GraphQL operation until headers tell the real limit. A
    /// configured table replaces the built-in one as a whole.
    pub default_budgets: BTreeMap<String, u32>,
    /// The budget of an operation `default_budgets` does not name.
    pub unknown_operation_budget: u32,
    /// How long a rate-limited account rests when X gave no `x-rate-limit-reset`.
    pub rate_limited_fallback_secs: u64,
    /// How long a locked account waits before one light run checks it again.
    pub locked_recheck_secs: u64,
    /// How long after a rejected login it is tried again (at once when the account's
    /// line in `accounts_file` changes).
    pub login_retry_secs: u64,
    /// Consecutive failures after which a proxy is taken out and its accounts moved.
    pub proxy_failures_before_rotation: u32,
    /// How long a failed proxy stays out.
    pub proxy_retry_after_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        // REFERENCE.md: search 50, tweet detail 150, timelines 500 per 15 minutes;
        // UserByScreenName is not named there, so it gets a timeline's until headers speak.
        let default_budgets = [
            ("UserTweets", 500),
            ("UserTweetsAndReplies", 500),
            ("UserByScreenName", 500),
            ("SearchTimeline", 50),
            ("TweetDetail", 150),
        ]
        .into_iter()
        .map(|(op, n)| (op.to_string(), n))
        .collect();
        LimitsConfig {
            budget_reserve: 1,
            window_secs: 900,
            default_budgets,
            unknown_operation_budget: 50,
            rate_limited_fallback_secs: 900,
            locked_recheck_secs: 6 * 3600,
            login_retry_secs: 24 * 3600,
            proxy_failures_before_rotation: 3,
            proxy_retry_after_secs: 1800,
        }
    }
}

/// `[scraper.login]`: CSS selectors of X's login flow (X changes its DOM; these are
/// settings so a change needs no new build).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// The username field.
    pub username: String,
    /// The password field.
    pub password: String,
    /// The text field X shows for a challenge before the password (the email is typed)
    /// and for the 2FA code after it (the TOTP code is typed).
    pub code: String,
    /// X's error message (a wrong password).
    pub error: String,
    /// The cookie whose presence means the login succeeded.
    pub success_cookie: String,
    /// How long each login step may take.
    pub step_timeout_secs: u64,
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            username: r#"input[autocomplete="username"]"#.into(),
            password: r#"input[name="password"]"#.into(),
            code: r#"input[data-testid="ocfEnterTextTextInput"]"#.into(),
            error: r#"[role="alert"]"#.into(),
            success_cookie: "auth_token".into(),
            step_timeout_secs: 15,
        }
    }
}

/// How a target's runs read its timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// Read from the top until the newest tweet already stored.
    #[default]
    Tail,
    /// Follow bottom cursors into the past, up to a page limit per run.
    Backfill,
}

/// X's search tabs: `live` is "Latest", `top` is "Top".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchProduct {
    /// "Latest": newest first, what tailing needs.
    #[default]
    Live,
    /// "Top": X's ranking.
    Top,
}

impl SearchProduct {
    /// The value of the search page's `f` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            SearchProduct::Live => "live",
            SearchProduct::Top => "top",
        }
    }
}

/// One `[[scraper.searches]]` entry; its target id is `search:<name>`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Short name, unique among searches: letters, digits, '-' and '_'.
    pub name: String,
    /// The query as typed into X's search box (`$BTC`, `from:alice bitcoin`).
    pub query: String,
    /// Which tab: `live` (Latest) or `top`.
    #[serde(default)]
    pub product: SearchProduct,
    /// Seconds between runs; `default_interval_secs` when absent.
    pub interval_secs: Option<u64>,
    /// `tail` or `backfill`.
    #[serde(default)]
    pub mode: RunMode,
    /// Pages per run; `tail_max_pages` / `backfill_max_pages` when absent.
    pub max_pages: Option<u32>,
}

impl ScraperConfig {
    /// Check what deserializing cannot; errors name the key. File checks (the accounts
    /// file exists, ...) apply only when `x-scraper` is in `enabled_workers`; relative
    /// paths resolve against `base_dir`, the config file's folder.
    pub fn validate(&self, enabled_workers: &[String], base_dir: &Path) -> Result<()> {
        if self.parser.trim().is_empty() {
            bail!("[scraper] parser: must name a scrape-parser plugin");
        }
        check_base_url(&self.base_url)?;
        check_path("user_path", &self.user_path, &["{handle}"])?;
        check_path("search_path", &self.search_path, &["{query}"])?;
        check_path("login_path", &self.login_path, &[])?;
        for (key, value) in [
            ("default_interval_secs", self.default_interval_secs),
            ("tail_max_pages", u64::from(self.tail_max_pages)),
            ("backfill_max_pages", u64::from(self.backfill_max_pages)),
            ("target_lease_secs", self.target_lease_secs),
        ] {
            if value == 0 {
                bail!("[scraper] {key} must be at least 1");
            }
        }
        self.browser.validate()?;
        self.capture.validate()?;
        self.limits.validate()?;
        self.login.validate()?;
        validate_searches(&self.searches)?;

        if enabled_workers.iter().any(|w| w == WORKER) {
            if self.accounts_file.as_os_str().is_empty() {
                bail!("[scraper] accounts_file: required when `{WORKER}` is enabled");
            }
            let accounts = self.accounts_path(base_dir);
            if !accounts.is_file() {
                bail!(
                    "[scraper] accounts_file: {} does not exist (one \
                     username:password:email[:totp_secret] per line; required when `{WORKER}` \
                     is enabled)",
                    accounts.display()
                );
            }
            for (key, path) in [
                ("proxies_file", self.proxies_path(base_dir)),
                ("user_list", self.user_list_path(base_dir)),
            ] {
                if let Some(path) = path
                    && !path.is_file()
                {
                    bail!(
                        "[scraper] {key}: {} does not exist (set it to \"\" for none)",
                        path.display()
                    );
                }
            }
        }
        Ok(())
    }

    /// `accounts_file`, resolved against the config file's folder.
    pub fn accounts_path(&self, base_dir: &Path) -> PathBuf {
        resolve(base_dir, &self.accounts_file)
    }

    /// `proxies_file`, resolved; `None` when empty (no proxies).
    pub fn proxies_path(&self, base_dir: &Path) -> Option<PathBuf> {
        (!self.proxies_file.as_os_str().is_empty()).then(|| resolve(base_dir, &self.proxies_file))
    }

    /// `user_list`, resolved; `None` when empty (no file).
    pub fn user_list_path(&self, base_dir: &Path) -> Option<PathBuf> {
        (!self.user_list.as_os_str().is_empty()).then(|| resolve(base_dir, &self.user_list))
    }

    /// The timeline page of `handle` (a validated X handle: nothing to escape).
    pub fn user_url(&self, handle: &str) -> String {
        format!(
            "{}{}",
            self.base(),
            self.user_path.replace("{handle}", handle)
        )
    }

    /// The search page for `query` on the `product` tab.
    pub fn search_url(&self, query: &str, product: SearchProduct) -> String {
        format!(
            "{}{}",
            self.base(),
            self.search_path
                .replace("{product}", product.as_str())
                .replace("{query}", &percent_encode(query))
        )
    }

    /// X's login page.
    pub fn login_url(&self) -> String {
        format!("{}{}", self.base(), self.login_path)
    }

    /// Pages of one run of a target in `mode` that sets `max_pages` or not.
    pub fn max_pages(&self, mode: RunMode, configured: Option<u32>) -> u32 {
        configured.unwrap_or(match mode {
            RunMode::Tail => self.tail_max_pages,
            RunMode::Backfill => self.backfill_max_pages,
        })
    }

    fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }
}

impl BrowserConfig {
    fn validate(&self) -> Result<()> {
        if !(1..=2).contains(&self.pages_per_account) {
            bail!(
                "[scraper.browser] pages_per_account must be 1 or 2 (X bans accounts that \
                 load more pages at once)"
            );
        }
        for (key, value) in [
            ("browsers", u64::from(self.browsers)),
            ("contexts_per_browser", u64::from(self.contexts_per_browser)),
            ("page_max_uses", u64::from(self.page_max_uses)),
            ("launch_timeout_secs", self.launch_timeout_secs),
            ("request_timeout_secs", self.request_timeout_secs),
            ("probe_interval_secs", self.probe_interval_secs),
        ] {
            if value == 0 {
                bail!("[scraper.browser] {key} must be at least 1");
            }
        }
        if self.executable.as_os_str().is_empty() {
            bail!("[scraper.browser] executable: must name the Chromium binary");
        }
        for arg in &self.extra_args {
            if arg.starts_with('-') {
                bail!(
                    "[scraper.browser] extra_args: `{arg}` must not start with '-': the \
                     browser layer adds the dashes itself, so `--disable-gpu` would reach \
                     Chromium as `----disable-gpu` and be ignored; write `disable-gpu`"
                );
            }
            if arg.trim().is_empty() {
                bail!("[scraper.browser] extra_args: empty entry");
            }
        }
        for kind in &self.block_resources {
            if NEEDED_RESOURCE_TYPES.contains(&kind.as_str()) {
                bail!(
                    "[scraper.browser] block_resources: `{kind}` cannot be blocked: the \
                     capture needs the page, its scripts and its XHR/fetch calls"
                );
            }
            if !RESOURCE_TYPES.contains(&kind.as_str()) {
                bail!(
                    "[scraper.browser] block_resources: unknown resource type `{kind}` (one of {})",
                    RESOURCE_TYPES.join(", ")
                );
            }
        }
        Ok(())
    }
}

impl CaptureConfig {
    fn validate(&self) -> Result<()> {
        for (key, value) in [
            ("step_timeout_secs", self.step_timeout_secs),
            ("nudge_wait_ms", self.nudge_wait_ms),
            ("max_body_bytes", self.max_body_bytes),
        ] {
            if value == 0 {
                bail!("[scraper.capture] {key} must be at least 1");
            }
        }
        if self.settle_ms >= self.step_timeout_secs.saturating_mul(1000) {
            bail!(
                "[scraper.capture] settle_ms ({}) must be shorter than step_timeout_secs ({} s), \
                 or every step would time out",
                self.settle_ms,
                self.step_timeout_secs
            );
        }
        Ok(())
    }
}

impl LimitsConfig {
    fn validate(&self) -> Result<()> {
        for (key, value) in [
            ("window_secs", self.window_secs),
            (
                "rate_limited_fallback_secs",
                self.rate_limited_fallback_secs,
            ),
            ("locked_recheck_secs", self.locked_recheck_secs),
            ("login_retry_secs", self.login_retry_secs),
            (
                "proxy_failures_before_rotation",
                u64::from(self.proxy_failures_before_rotation),
            ),
            ("proxy_retry_after_secs", self.proxy_retry_after_secs),
        ] {
            if value == 0 {
                bail!("[scraper.limits] {key} must be at least 1");
            }
        }
        // A budget the reserve swallows whole would never let a request through.
        for (op, budget) in &self.default_budgets {
            if *budget <= self.budget_reserve {
                bail!(
                    "[scraper.limits] default_budgets.{op} ({budget}) must exceed \
                     budget_reserve ({})",
                    self.budget_reserve
                );
            }
        }
        if self.unknown_operation_budget <= self.budget_reserve {
            bail!(
                "[scraper.limits] unknown_operation_budget ({}) must exceed budget_reserve ({})",
                self.unknown_operation_budget,
                self.budget_reserve
            );
        }
        Ok(())
    }
}

impl LoginConfig {
    fn validate(&self) -> Result<()> {
        for (key, value) in [
            ("username", &self.username),
            ("password", &self.password),
            ("code", &self.code),
            ("error", &self.error),
            ("success_cookie", &self.success_cookie),
        ] {
            if value.trim().is_empty() {
                bail!("[scraper.login] {key}: must not be empty");
            }
        }
        if self.step_timeout_secs == 0 {
            bail!("[scraper.login] step_timeout_secs must be at least 1");
        }
        Ok(())
    }
}

fn validate_searches(searches: &[SearchConfig]) -> Result<()> {
    let mut names = BTreeSet::new();
    for (i, s) in searches.iter().enumerate() {
        let n = i + 1;
        let name_ok = !s.name.is_empty()
            && s.name.len() <= 64
            && s.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            bail!(
                "[[scraper.searches]] #{n}: name: 1 to 64 letters, digits, '-' or '_' (it \
                 becomes the target id `search:<name>`)"
            );
        }
        let at = format!("[[scraper.searches]] #{n} (`{}`)", s.name);
        if !names.insert(s.name.as_str()) {
            bail!("{at}: name: another search has the same name");
        }
        if s.query.trim().is_empty() {
            bail!("{at}: query: must not be empty");
        }
        if s.interval_secs == Some(0) {
            bail!("{at}: interval_secs must be at least 1");
        }
        if s.max_pages == Some(0) {
            bail!("{at}: max_pages must be at least 1");
        }
    }
    Ok(())
}

/// `base_url` must be `http(s)://host[:port]`: the path templates are appended to it.
fn check_base_url(raw: &str) -> Result<()> {
    let shape = "expected http(s)://host[:port] without a path, e.g. \"https://x.com\"";
    let url = match reqwest::Url::parse(raw) {
        Ok(url) => url,
        Err(e) => bail!("[scraper] base_url: {raw:?} is not a URL ({e}); {shape}"),
    };
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("[scraper] base_url: {raw:?}: {shape}");
    }
    if !url.username().is_empty() || url.password().is_some() {
        // The URL reaches logs; credentials have no place in it.
        bail!("[scraper] base_url: must not contain credentials; {shape}");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        bail!("[scraper] base_url: {raw:?} has a path or query; {shape}");
    }
    Ok(())
}

fn check_path(key: &str, template: &str, placeholders: &[&str]) -> Result<()> {
    if !template.starts_with('/') {
        bail!("[scraper] {key}: {template:?} must start with '/'");
    }
    for p in placeholders {
        if !template.contains(p) {
            bail!("[scraper] {key}: {template:?} must contain the placeholder {p}");
        }
    }
    Ok(())
}

fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters, so a query like
/// `$BTC from:alice #x` survives as one query-string value.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ScraperConfig {
        toml::from_str(text).unwrap()
    }

    fn err(c: &ScraperConfig) -> String {
        c.validate(&[], Path::new("."))
            .expect_err("validation should fail")
            .to_string()
    }

    #[test]
    fn defaults_are_valid_and_match_the_design() {
        let c = ScraperConfig::default();
        c.validate(&[], Path::new(".")).unwrap();
        assert_eq!(c.browser.pages_per_account, 2);
        assert_eq!(c.limits.default_budgets.get("SearchTimeline"), Some(&50));
        assert_eq!(c.limits.default_budgets.get("UserTweets"), Some(&500));
        assert_eq!(c.capture.max_body_bytes, 8_388_608);
        assert_eq!(c.limits.locked_recheck_secs, 21_600);
    }

    #[test]
    fn sections_and_searches_parse() {
        let c = parse(
            r#"
            base_url = "http://127.0.0.1:4000"
            [browser]
            sandbox = "off"
            pages_per_account = 1
            extra_args = ["disable-gpu"]
            [capture]
            html = "never"
            [limits]
            default_budgets = { UserTweets = 5 }
            [login]
            success_cookie = "sess"
            [[searches]]
            name = "btc"
            query = "$BTC"
            product = "top"
            mode = "backfill"
            max_pages = 5
            "#,
        );
        c.validate(&[], Path::new(".")).unwrap();
        assert_eq!(c.browser.sandbox, Sandbox::Off);
        assert_eq!(c.capture.html, HtmlCapture::Never);
        assert_eq!(c.limits.default_budgets.len(), 1);
        assert_eq!(c.login.success_cookie, "sess");
        let s = &c.searches[0];
        assert_eq!(
            (s.product, s.mode, s.max_pages),
            (SearchProduct::Top, RunMode::Backfill, Some(5))
        );
        assert_eq!(c.max_pages(RunMode::Backfill, None), 50);
        assert_eq!(c.max_pages(RunMode::Tail, None), 10);
        assert_eq!(c.max_pages(RunMode::Tail, Some(3)), 3);
    }

    #[test]
    fn unknown_keys_are_refused_in_every_section() {
        for text in [
            "parsr = 1",
            "[browser]\npages = 1",
            "[capture]\nsettle = 1",
            "[limits]\nreserve = 1",
            "[login]\nuser = \"x\"",
            "[[searches]]\nname = \"a\"\nquery = \"b\"\nproduct_ = \"top\"",
        ] {
            let e = toml::from_str::<ScraperConfig>(text)
                .unwrap_err()
                .to_string();
            assert!(e.contains("unknown field"), "{text}: {e}");
        }
    }

    #[test]
    fn pages_per_account_is_one_or_two() {
        let mut c = ScraperConfig::default();
        c.browser.pages_per_account = 3;
        assert!(err(&c).contains("[scraper.browser] pages_per_account must be 1 or 2"));
        c.browser.pages_per_account = 0;
        assert!(err(&c).contains("pages_per_account"));
    }

    #[test]
    fn extra_args_with_dashes_are_refused_with_the_reason() {
        let mut c = ScraperConfig::default();
        c.browser.extra_args = vec!["--disable-gpu".into()];
        let e = err(&c);
        assert!(e.contains("[scraper.browser] extra_args"), "{e}");
        assert!(e.contains("----disable-gpu"), "{e}");
    }

    #[test]
    fn base_url_must_be_http_without_a_path() {
        let mut c = ScraperConfig::default();
        for bad in [
            "x.com",
            "ftp://x.com",
            "https://x.com/home",
            "https://x.com?a=1",
            "https://u:p@x.com",
        ] {
            c.base_url = bad.into();
            let e = err(&c);
            assert!(e.contains("[scraper] base_url"), "{bad}: {e}");
            assert!(!e.contains("u:p"), "credentials echoed: {e}");
        }
        c.base_url = "http://127.0.0.1:8123/".into();
        c.validate(&[], Path::new(".")).unwrap();
        assert_eq!(c.user_url("alice"), "http://127.0.0.1:8123/alice");
    }

    #[test]
    fn templates_need_their_placeholder() {
        let with = |f: fn(&mut ScraperConfig)| {
            let mut c = ScraperConfig::default();
            f(&mut c);
            err(&c)
        };
        assert!(with(|c| c.user_path = "/profile".into()).contains("[scraper] user_path"));
        assert!(with(|c| c.search_path = "/search?q=x".into()).contains("{query}"));
        assert!(with(|c| c.login_path = "login".into()).contains("[scraper] login_path"));
    }

    #[test]
    fn urls_are_built_from_base_and_templates() {
        let c = ScraperConfig::default();
        assert_eq!(c.user_url("coinledger_ana"), "https://x.com/coinledger_ana");
        assert_eq!(c.login_url(), "https://x.com/i/flow/login");
        assert_eq!(
            c.search_url("$BTC from:alice", SearchProduct::Live),
            "https://x.com/search?q=%24BTC%20from%3Aalice&src=typed_query&f=live"
        );
    }

    #[test]
    fn block_resources_must_be_known_and_blockable() {
        let mut c = ScraperConfig::default();
        c.browser.block_resources = vec!["Images".into()];
        assert!(err(&c).contains("unknown resource type `Images`"));
        c.browser.block_resources = vec!["Fetch".into()];
        assert!(err(&c).contains("`Fetch` cannot be blocked"));
    }

    #[test]
    fn budgets_must_exceed_the_reserve() {
        let mut c = ScraperConfig::default();
        c.limits.budget_reserve = 50;
        assert!(err(&c).contains("default_budgets.SearchTimeline"));
    }

    #[test]
    fn searches_need_unique_valid_names() {
        let mut c = ScraperConfig::default();
        let s = SearchConfig {
            name: "btc".into(),
            query: "$BTC".into(),
            product: SearchProduct::Live,
            interval_secs: None,
            mode: RunMode::Tail,
            max_pages: None,
        };
        c.searches = vec![s.clone(), s.clone()];
        assert!(err(&c).contains("another search has the same name"));
        c.searches = vec![SearchConfig {
            name: "b tc".into(),
            ..s.clone()
        }];
        assert!(err(&c).contains("#1: name"));
        c.searches = vec![SearchConfig {
            query: " ".into(),
            ..s
        }];
        assert!(err(&c).contains("(`btc`): query"));
    }

    #[test]
    fn files_are_checked_only_when_the_worker_is_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = ScraperConfig {
            accounts_file: PathBuf::from("acc.txt"),
            ..ScraperConfig::default()
        };
        c.validate(&["notify".into()], dir.path()).unwrap();
        let enabled = [WORKER.to_string()];
        let e = c.validate(&enabled, dir.path()).unwrap_err().to_string();
        assert!(e.contains("[scraper] accounts_file"), "{e}");
        assert!(
            e.contains(&dir.path().join("acc.txt").display().to_string()),
            "{e}"
        );

        std::fs::write(dir.path().join("acc.txt"), "").unwrap();
        c.validate(&enabled, dir.path()).unwrap();
        c.user_list = PathBuf::from("users.txt");
        let e = c.validate(&enabled, dir.path()).unwrap_err().to_string();
        assert!(e.contains("[scraper] user_list"), "{e}");
        std::fs::write(dir.path().join("users.txt"), "").unwrap();
        c.proxies_file = PathBuf::from("/nonexistent/proxies.txt");
        let e = c.validate(&enabled, dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("[scraper] proxies_file: /nonexistent/proxies.txt"),
            "{e}"
        );
    }

    #[test]
    fn paths_resolve_against_the_base_dir() {
        let c = ScraperConfig {
            proxies_file: PathBuf::from("/etc/p.txt"),
            ..ScraperConfig::default()
        };
        let base = Path::new("/srv/conf");
        assert_eq!(
            c.accounts_path(base),
            PathBuf::from("/srv/conf/secrets/x-accounts.txt")
        );
        assert_eq!(c.proxies_path(base), Some(PathBuf::from("/etc/p.txt")));
        assert_eq!(c.user_list_path(base), None);
    }
}
