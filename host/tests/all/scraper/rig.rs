//! A scraper under test: a [`TestHost`] with the x-timeline parser loaded, the stand-in X,
//! an accounts file and a user list, real stores (embedded by default), and the worker
//! in-process with a real Chromium.

use std::sync::Arc;
use std::time::{Duration, Instant};

use impressox_host::documents::{Documents, Filter};
use impressox_host::scraper::ScraperWorker;
use impressox_host::scraper::targets::{self, TargetRecord};
use impressox_host::storage::{Store, StoreLimits};
use serde_json::Value;
use tokio::sync::SemaphorePermit;

use crate::harness::{TestHost, host_with};
use crate::servers::chromium::{browser_permit, chromium_path};
use crate::servers::x_site::XSite;

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
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            accounts: vec![format!("alice:{PASSWORD}:alice@example.com")],
            handles: vec![super::ids::HANDLE.into()],
            scraper: String::new(),
            extra: String::new(),
        }
    }
}

pub struct ScraperRig {
    pub host: TestHost,
    pub site: XSite,
    pub store: Arc<dyn Store>,
    pub docs: Arc<dyn Documents>,
    pub worker: Option<ScraperWorker>,
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
        let permit = browser_permit().await;
        let site = XSite::start().await;
        site.add_account("alice", PASSWORD, "alice@example.com", None);
        let files = tempfile::tempdir().unwrap();
        let accounts = files.path().join("accounts.txt");
        std::fs::write(&accounts, opts.accounts.join("\n") + "\n").unwrap();
        set_private(&accounts);
        let users = files.path().join("users.txt");
        std::fs::write(&users, opts.handles.join("\n") + "\n").unwrap();
        let toml = format!(
            "[documents]\nbackend = \"embedded\"\n\
             [scraper]\nparser = \"x-timeline\"\nbase_url = {base:?}\naccounts_file = {accounts:?}\n\
             user_list = {users:?}\nmin_step_interval_ms = 0\ndefault_interval_secs = 3600\n\
             shutdown_grace_secs = 5\n{scraper}\n\
             [scraper.browser]\nexecutable = {exe:?}\nlaunch_timeout_secs = 60\n\
             [scraper.capture]\nsettle_ms = 150\nstep_timeout_secs = 20\nnudge_wait_ms = 700\nscroll_nudges = 2\n\
             [scraper.login]\nstep_timeout_secs = 15\n{extra}\n",
            base = site.url(),
            accounts = accounts.display().to_string(),
            users = users.display().to_string(),
            scraper = opts.scraper,
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

fn set_private(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
