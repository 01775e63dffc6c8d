//! A scraper under test: a [`TestHost`] with the x-timeline parser loaded, the stand-in X,
//! an accounts file and a user list, real stores (embedded by default), and the worker
//! in-process with a real Chromium.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use impressox_browser::StoredCookie;
use impressox_host::documents::{Documents, Filter};
use impressox_host::scraper::ScraperWorker;
use impressox_host::scraper::session::{Session, Sessions};
use impressox_host::scraper::targets::{self, TargetRecord};
use impressox_host::storage::{Store, StoreLimits};
use serde_json::Value;
use tokio::sync::SemaphorePermit;

use crate::harness::{TestHost, host_with};
use crate::servers::chromium::{browser_permits, chromium_path};
use crate::servers::mongo::MongoServer;
use crate::servers::x_site::{self, XSite};

pub const PASSWORD: &str = "correct horse battery staple";

/// What a test changes in the rig's config and files.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Lines of the accounts file.
    pub accounts: Vec<String>,
    /// Handles of the user list.
    pub handles: Vec<String>,
    /// Extra keys for `[scraper]` (after the rig's own).
    pub scraper: String,
    /// Extra TOML appended after the rig's sections (e.g. `[[scraper.searches]]`).
    pub extra: String,
    /// Extra keys for `[scraper.browser]` (after the rig's own).
    pub browser: String,
    /// Lines of a `proxies_file`; when any, loopback goes through them too
    /// (`proxy_bypass_list = "<-loopback>"`, design §5.5).
    pub proxies: Vec<String>,
    /// `[scraper] parser`: the scrape-parser plugin's name.
    pub parser: String,
    /// Documents in MongoDB (a SecantusDB server of the rig's own) instead of embedded.
    pub mongo: bool,
    /// Browsers the test runs at once (2 for a second host), all reserved up front.
    pub browsers: u32,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            accounts: vec![format!("alice:{PASSWORD}:alice@example.com")],
            handles: vec![super::ids::HANDLE.into()],
            scraper: String::new(),
            extra: String::new(),
            browser: String::new(),
            proxies: Vec::new(),
            parser: "x-timeline".into(),
            mongo: false,
            browsers: 1,
        }
    }
}

pub struct ScraperRig {
    pub host: TestHost,
    pub site: XSite,
    pub store: Arc<dyn Store>,
    pub docs: Arc<dyn Documents>,
    pub worker: Option<ScraperWorker>,
    _mongo: Option<MongoServer>,
    _files: tempfile::TempDir,
    _permit: SemaphorePermit<'static>,
}

impl ScraperRig {
    /// The stand-in knows `alice` (password [`PASSWORD`]); the worker starts at once, so
    /// tests that need the stand-in prepared first use [`ScraperRig::prepare`] and
    /// [`ScraperRig::start_worker`].
    pub async fn start(opts: Opts) -> ScraperRig {
        let rig = Self::prepare(opts).await;
        rig.start_worker().await
    }

    pub async fn prepare(opts: Opts) -> ScraperRig {
        let permit = browser_permits(opts.browsers).await;
        let site = XSite::start().await;
        site.add_account("alice", PASSWORD, "alice@example.com", None);
        let files = tempfile::tempdir().unwrap();
        let accounts = files.path().join("accounts.txt");
        std::fs::write(&accounts, opts.accounts.join("\n") + "\n").unwrap();
        set_private(&accounts);
        let users = files.path().join("users.txt");
        std::fs::write(&users, opts.handles.join("\n") + "\n").unwrap();
        let mut scraper = opts.scraper.clone();
        let mut browser = opts.browser.clone();
        if !opts.proxies.is_empty() {
            let proxies = files.path().join("proxies.txt");
            std::fs::write(&proxies, opts.proxies.join("\n") + "\n").unwrap();
            set_private(&proxies);
            scraper.push_str(&format!(
                "\nproxies_file = {:?}\n",
                proxies.display().to_string()
            ));
            browser.push_str("\nproxy_bypass_list = \"<-loopback>\"\n");
        }
        let (documents, mongo) = if opts.mongo {
            let m = MongoServer::start();
            (
                format!(
                    "[documents]\nbackend = \"mongodb\"\nmongodb_url = \"{}\"\ndatabase = \"scraper_test\"\n",
                    m.url()
                ),
                Some(m),
            )
        } else {
            ("[documents]\nbackend = \"embedded\"\n".to_string(), None)
        };
        let toml = format!(
            "{documents}\
             [scraper]\nparser = {parser:?}\nbase_url = {base:?}\naccounts_file = {accounts:?}\n\
             user_list = {users:?}\nmin_step_interval_ms = 0\ndefault_interval_secs = 3600\n\
             shutdown_grace_secs = 5\n{scraper}\n\
             [scraper.browser]\nexecutable = {exe:?}\nlaunch_timeout_secs = 60\n{browser}\n\
             [scraper.capture]\nsettle_ms = 150\nstep_timeout_secs = 20\nnudge_wait_ms = 700\nscroll_nudges = 2\n\
             [scraper.login]\nstep_timeout_secs = 15\n{extra}\n",
            base = site.url(),
            accounts = accounts.display().to_string(),
            users = users.display().to_string(),
            parser = opts.parser,
            scraper = scraper,
            browser = browser,
            exe = chromium_path().display().to_string(),
            extra = opts.extra,
        );
        let host = host_with(&toml);
        host.load(test_artifacts::X_TIMELINE, "x-timeline.wasm");
        std::fs::create_dir_all(host.config.data_dir()).unwrap();
        let store = impressox_host::storage::open(&host.config, StoreLimits::default())
            .await
            .unwrap();
        let docs = impressox_host::documents::open(&host.config).await.unwrap();
        ScraperRig {
            host,
            site,
            store,
            docs,
            worker: None,
            _mongo: mongo,
            _files: files,
            _permit: permit,
        }
    }

    pub async fn start_worker(mut self) -> ScraperRig {
        let worker = ScraperWorker::start(
            &self.host.config,
            self.host.runtime.clone(),
            self.store.clone(),
            self.docs.clone(),
        )
        .await
        .expect("the scraper starts");
        self.worker = Some(worker);
        self
    }

    pub fn worker(&self) -> &ScraperWorker {
        self.worker.as_ref().expect("the worker is running")
    }

    pub async fn target(&self, id: &str) -> TargetRecord {
        targets::get(&*self.docs, id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no target {id}"))
    }

    /// Wait until `id` has finished a run after `since_ms` (its `last_run.at_ms`); the record.
    pub async fn wait_for_run(&self, id: &str, since_ms: i64, timeout: Duration) -> TargetRecord {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.target(id).await;
            if let Some(run) = &t.last_run
                && run.at_ms >= since_ms
            {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "target {id} finished no run within {timeout:?}; stand-in saw {:?}",
                self.site
                    .requests()
                    .iter()
                    .map(|s| format!("{} {}", s.method, s.path))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Make `id` due now and wake the scheduler.
    pub async fn run_now(&self, id: &str) -> i64 {
        let now = impressox_host::util::now_ms();
        let mut t = self.target(id).await;
        t.next_run_ms = now;
        targets::save_after_run(&*self.docs, &t).await.unwrap();
        self.worker().handle.wake();
        now
    }

    pub async fn tweet(&self, id: &str) -> Option<serde_json::Map<String, Value>> {
        self.docs.get("tweets", id).await.unwrap()
    }

    pub async fn tweet_count(&self) -> u64 {
        self.docs.count("tweets", &Filter::default()).await.unwrap()
    }

    pub async fn stop(&mut self) {
        if let Some(w) = self.worker.take() {
            w.stop().await;
        }
    }
}

impl ScraperRig {
    /// Store `cookies` (from [`XSite::issue_session`], or made up) as `user`'s session, the
    /// way the product stores one after a login (`scraper:sessions`, see `session.rs`).
    pub async fn store_session(&self, user: &str, cookies: &[x_site::Cookie]) {
        let cookies = cookies
            .iter()
            .map(|c| StoredCookie {
                name: c.name.clone(),
                value: c.value.clone(),
                domain: "127.0.0.1".into(),
                path: c.path.clone(),
                expires: None,
                http_only: c.http_only,
                secure: false,
                same_site: Some("Lax".into()),
            })
            .collect();
        let session = Session {
            cookies,
            saved_at_ms: impressox_host::util::now_ms(),
            base_url: self.site.url(),
        };
        Sessions::new(self.store.clone())
            .save(user, &session)
            .await
            .unwrap();
    }

    /// The steps posted to the login flow, in order, with the status answered.
    pub fn login_steps(&self) -> Vec<(String, u16)> {
        self.site
            .requests()
            .iter()
            .filter(|s| s.path == "/i/api/1.1/onboarding/task.json")
            .map(|s| (s.login_step.clone().unwrap_or_default(), s.status))
            .collect()
    }

    /// Requests for the login pages or the login API.
    pub fn login_requests(&self) -> Vec<String> {
        self.site
            .requests()
            .iter()
            .filter(|s| {
                s.path == "/login"
                    || s.path.starts_with("/i/flow/login")
                    || s.path.starts_with("/i/api/1.1/onboarding")
            })
            .map(|s| format!("{} {}", s.method, s.path))
            .collect()
    }

    /// The accounts view (what `GET /api/v1/scraper/accounts` serves).
    pub async fn accounts_view(&self) -> Value {
        self.worker().handle.pool().view().await
    }

    /// One account's entry of [`ScraperRig::accounts_view`].
    pub async fn account_view(&self, user: &str) -> Value {
        let view = self.accounts_view().await;
        view["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["username"] == user)
            .unwrap_or_else(|| panic!("no account {user} in {view}"))
            .clone()
    }

    /// Seed the user-list targets before the worker starts, due only in an hour, so a test
    /// can prepare the stand-in after the browser is up and then [`ScraperRig::run_now`].
    pub async fn hold_targets(&self, handles: &[&str]) {
        let handles: Vec<String> = handles.iter().map(|h| h.to_string()).collect();
        let defaults = impressox_host::scraper::worker::target_defaults(&self.host.config.scraper);
        let now = impressox_host::util::now_ms();
        targets::seed(&*self.docs, &handles, &[], &defaults, now)
            .await
            .unwrap();
        for h in &handles {
            let mut t = self.target(&format!("user:{}", h.to_lowercase())).await;
            t.next_run_ms = now + 3_600_000;
            targets::save_after_run(&*self.docs, &t).await.unwrap();
        }
    }
}

/// Everything logged at `debug` and above (Chromium's and the compilers' chatter aside)
/// while a [`LogCapture`] is alive.
///
/// The worker logs from tasks on the runtime's worker threads and from the blocking pool,
/// which a thread-local `tracing::subscriber::set_default` does not reach (and
/// `#[tokio::test]` builds the runtime before the test's body could wrap it), so this installs
/// a process-wide subscriber once. No other test in `tests/all` installs one (the CLI's
/// `try_init` runs only in the spawned binary). Its filter lets events through only while a
/// capture is on, so other tests pay one atomic load per event; during a capture, lines of
/// tests running at the same time land in the buffer too, which only makes a "never logged"
/// assertion stricter.
pub struct LogCapture(());

static LOG_BUFFER: parking_lot::Mutex<Vec<u8>> = parking_lot::Mutex::new(Vec::new());
static LOG_ON: AtomicBool = AtomicBool::new(false);

struct BufferWriter;

impl std::io::Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if LOG_ON.load(Ordering::Acquire) {
            LOG_BUFFER.lock().extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    pub fn start() -> LogCapture {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            use tracing_subscriber::Layer;
            use tracing_subscriber::layer::SubscriberExt;
            let filter = tracing_subscriber::filter::dynamic_filter_fn(|meta, _| {
                const QUIET: &[&str] = &["cranelift", "regalloc2", "wasmtime", "chromiumoxide"];
                LOG_ON.load(Ordering::Acquire)
                    && *meta.level() <= tracing::Level::DEBUG
                    && !QUIET.iter().any(|q| meta.target().starts_with(q))
            });
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(|| BufferWriter)
                .with_filter(filter);
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other test installs a global tracing subscriber");
        });
        // One capture at a time: a second test waits until the first drops its capture
        // (rather than failing when two run together). Tests take the capture before their
        // browser permit, so this wait cannot deadlock with the permits.
        while LOG_ON
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        LOG_BUFFER.lock().clear();
        LogCapture(())
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&LOG_BUFFER.lock()).into_owned()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        LOG_ON.store(false, Ordering::Release);
        LOG_BUFFER.lock().clear();
    }
}

fn set_private(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
