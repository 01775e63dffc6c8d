//! Launching one Chromium: `PoolConfig` → chromiumoxide `BrowserConfig` (flags, sandbox,
//! profile directory), the handler task, and the profile directories' life cycle
//! (docs/design/x-scraper.md §2.2, §2.3, pitfall 1 of §2.9).
//!
//! A [`Live`] is one running browser process of one generation. It is shared (`Arc`) by the
//! contexts and pages created in it; once it is marked gone, every call through it answers
//! `BrowserError::Gone` and the owners move to the slot's next generation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::target::EventTargetCrashed;
use chromiumoxide::error::CdpError;
use chromiumoxide::{Browser, BrowserConfig};
use futures_util::StreamExt;
use tokio::sync::{Notify, RwLock, watch};
use tokio::task::JoinHandle;

use crate::config::PoolConfig;
use crate::error::{BrowserError, launch_error};

/// Generations are unique in the process (not only per slot), so two pools in one process that
/// share a `profile_root` never pick the same profile directory.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Features that make a context talk to Google by itself (measured through a proxy stand-in,
/// design §2.2); `disable-features` values are merged with chromiumoxide's default
/// `TranslateUI` by its argument builder.
const DISABLED_FEATURES: &str =
    "NetworkTimeServiceQuerying,PreconnectToSearch,AutofillServerCommunication";

/// One running browser process.
pub(crate) struct Live {
    /// Read for commands (`new_page`, `execute`, ...), write for `try_wait` and shutdown, which
    /// need `&mut Browser`.
    pub(crate) browser: RwLock<Browser>,
    pub(crate) slot: usize,
    pub(crate) generation: u64,
    pub(crate) pid: Option<u32>,
    /// The user agent every page of this browser gets.
    pub(crate) user_agent: String,
    /// Whether pages have the Fetch domain on (set at launch: `block_resources` non-empty).
    pub(crate) intercepting: bool,
    /// Flipped by the handler task when the DevTools connection failed.
    handler_dead: watch::Receiver<bool>,
    /// Set once the browser is known dead or being shut down.
    gone: AtomicBool,
    handler: JoinHandle<()>,
    /// Pages to tell when their renderer crashes, by target id.
    crash_watch: CrashWatch,
    crash_task: JoinHandle<()>,
    profile: PathBuf,
}

/// A page's crash flag and the notifier its step waits on.
type CrashWatch = Arc<Mutex<HashMap<String, (Arc<AtomicBool>, Arc<Notify>)>>>;

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("slot", &self.slot)
            .field("generation", &self.generation)
            .field("pid", &self.pid)
            .field("gone", &self.is_gone())
            .finish()
    }
}

impl Live {
    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }

    /// Sets `flag` and wakes `notify` when the renderer of `target` crashes.
    pub(crate) fn watch_crash(&self, target: &str, flag: Arc<AtomicBool>, notify: Arc<Notify>) {
        crate::sync::lock(&self.crash_watch).insert(target.to_string(), (flag, notify));
    }

    pub(crate) fn unwatch_crash(&self, target: &str) {
        crate::sync::lock(&self.crash_watch).remove(target);
    }

    pub(crate) fn mark_gone(&self) {
        self.gone.store(true, Ordering::SeqCst);
    }

    /// Checks the process now: the handler's verdict, the exit status, and (when `probe` is
    /// set) a `Browser.getVersion` round trip. Marks the browser gone when any says dead.
    pub(crate) async fn check(&self, probe: Option<Duration>) -> bool {
        if self.is_gone() {
            return false;
        }
        // Lock-free checks first: `try_wait` would need the write lock, which a probe stuck on
        // a dead browser holds for up to its timeout.
        let mut dead = *self.handler_dead.borrow();
        if !dead
            && let Some(pid) = self.pid
            && child_exited(pid)
        {
            tracing::warn!(
                slot = self.slot,
                generation = self.generation,
                pid,
                "browser process exited"
            );
            dead = true;
        }
        if !dead && let Some(limit) = probe {
            let b = self.browser.read().await;
            match tokio::time::timeout(limit, b.version()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(slot = self.slot, error = %e, "browser liveness probe failed");
                    dead = true;
                }
                Err(_) => {
                    tracing::warn!(slot = self.slot, "browser liveness probe timed out");
                    dead = true;
                }
            }
        }
        if dead {
            self.mark_gone();
        }
        !dead
    }

    /// Ends the process and removes its profile directory. Polite first (`Browser.close`), then
    /// `kill`; always reaps the child so no zombie is left.
    pub(crate) async fn stop(&self, grace: Duration) {
        self.mark_gone();
        let mut b = self.browser.write().await;
        // A crashed or killed browser cannot answer Browser.close: go straight to reaping.
        let exited = matches!(b.try_wait(), Ok(Some(_))) || *self.handler_dead.borrow();
        let closed = !exited
            && match tokio::time::timeout(grace, b.close()).await {
                Ok(Ok(_)) => matches!(tokio::time::timeout(grace, b.wait()).await, Ok(Ok(_))),
                _ => false,
            };
        if !closed {
            if let Some(Err(e)) = b.kill().await {
                tracing::debug!(error = %e, "killing the browser process");
            }
            let _ = tokio::time::timeout(grace, b.wait()).await;
        }
        drop(b);
        self.handler.abort();
        self.crash_task.abort();
        remove_profile(&self.profile).await;
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // The child is killed on drop by chromiumoxide (`kill_on_drop`); the handler and the
        // directory are ours to clean.
        self.handler.abort();
        self.crash_task.abort();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Launches one browser for `slot`, with a fresh generation and profile directory.
pub(crate) async fn launch(cfg: &PoolConfig, slot: usize) -> Result<Live, BrowserError> {
    let generation = NEXT_GENERATION.fetch_add(1, Ordering::SeqCst);
    let profile = cfg
        .profile_root
        .join(format!("{}-{slot}-{generation}", std::process::id()));
    tokio::fs::create_dir_all(&profile).await.map_err(|e| {
        BrowserError::Launch(format!(
            "cannot create the profile directory {}: {e}",
            profile.display()
        ))
    })?;
    let intercepting = !cfg.block_resources.is_empty();
    let config = browser_config(cfg, &profile, intercepting)?;
    let (mut browser, mut handler) = match Browser::launch(config).await {
        Ok(x) => x,
        Err(e) => {
            remove_profile(&profile).await;
            return Err(launch_error(&cfg.executable, e));
        }
    };
    let pid = browser.get_mut_child().and_then(|c| c.as_mut_inner().id());

    let (dead_tx, dead_rx) = watch::channel(false);
    let handler = tokio::spawn(async move {
        // The handler must be polled for anything to happen. It does not end reliably when the
        // browser dies (design §2.3), so the supervisor does not rely on this task alone.
        while let Some(ev) = handler.next().await {
            match ev {
                Ok(()) => {}
                Err(CdpError::Ws(e)) => {
                    tracing::warn!(slot, error = %e, "browser connection lost");
                    break;
                }
                Err(CdpError::Io(e)) => {
                    tracing::warn!(slot, error = %e, "browser connection lost");
                    break;
                }
                Err(e) => tracing::debug!(slot, error = %e, "browser handler"),
            }
        }
        let _ = dead_tx.send(true);
    });

    // Renderer crashes arrive as Target.targetCrashed on the browser session (chromiumoxide
    // enables target discovery); Inspector.targetCrashed on the page session did not arrive
    // on Chromium 148 for a crash during navigation.
    let crash_watch: CrashWatch = Arc::default();
    let crash_task = match browser.event_listener::<EventTargetCrashed>().await {
        Ok(mut crashes) => {
            let watch = crash_watch.clone();
            tokio::spawn(async move {
                while let Some(ev) = crashes.next().await {
                    tracing::warn!(slot, status = %ev.status, code = ev.error_code, "a page's renderer crashed; the page will be replaced");
                    let hit = crate::sync::lock(&watch).get(ev.target_id.inner()).cloned();
                    if let Some((flag, notify)) = hit {
                        flag.store(true, Ordering::SeqCst);
                        notify.notify_waiters();
                    }
                }
            })
        }
        Err(e) => {
            let _ = browser.kill().await;
            handler.abort();
            remove_profile(&profile).await;
            return Err(BrowserError::Launch(format!(
                "{} started but its DevTools session failed: {e}",
                cfg.executable.display()
            )));
        }
    };

    let user_agent = match &cfg.user_agent {
        Some(ua) => ua.clone(),
        None => match tokio::time::timeout(cfg.request_timeout, browser.user_agent()).await {
            Ok(Ok(ua)) => ua.replace("HeadlessChrome", "Chrome"),
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer".to_string(),
                };
                let _ = browser.kill().await;
                handler.abort();
                crash_task.abort();
                remove_profile(&profile).await;
                return Err(BrowserError::Launch(format!(
                    "{} started but did not answer Browser.getVersion: {why}",
                    cfg.executable.display()
                )));
            }
        },
    };
    tracing::info!(slot, generation, pid, "browser launched");
    Ok(Live {
        browser: RwLock::new(browser),
        slot,
        generation,
        pid,
        user_agent,
        intercepting,
        handler_dead: dead_rx,
        gone: AtomicBool::new(false),
        handler,
        crash_watch,
        crash_task,
        profile,
    })
}

fn browser_config(
    cfg: &PoolConfig,
    profile: &Path,
    intercepting: bool,
) -> Result<BrowserConfig, BrowserError> {
    let mut b = BrowserConfig::builder()
        .chrome_executable(&cfg.executable)
        // Always our own directory: the default is shared by every chromiumoxide browser on the
        // machine, and two of them collide on Chromium's profile lock.
        .user_data_dir(profile)
        .launch_timeout(cfg.launch_timeout)
        .request_timeout(cfg.request_timeout)
        // chromiumoxide emulates 800x600 by default; X lays out narrower at that width.
        .viewport(None)
        .window_size(1280, 1800)
        .arg("disable-gpu")
        .arg(("disable-features", DISABLED_FEATURES));
    if intercepting {
        // Every page gets the Fetch domain at creation and chromiumoxide leaves paused requests
        // to us (`intercept.rs` continues or fails each one).
        b = b.enable_request_intercept();
    }
    if cfg.sandbox.disabled() {
        b = b.no_sandbox();
    }
    for a in &cfg.extra_args {
        b = b.arg(a.as_str());
    }
    b.build().map_err(BrowserError::Launch)
}

/// Whether our child `pid` has exited, without reaping it (`WNOWAIT`): tokio's `Child` still
/// collects its status later.
fn child_exited(pid: u32) -> bool {
    let id: libc::id_t = pid;
    // SAFETY: siginfo_t is plain data, valid when zeroed; waitid only writes into it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to the struct above; WNOHANG makes the call non-blocking.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            id,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if r != 0 {
        // ECHILD: already reaped (by tokio), so it exited.
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD);
    }
    // SAFETY: waitid succeeded and filled the struct; si_pid is 0 when no child changed state.
    unsafe { info.si_pid() != 0 }
}

async fn remove_profile(dir: &Path) {
    if let Err(e) = tokio::fs::remove_dir_all(dir).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a browser profile directory");
    }
}

/// Removes profile directories left by processes that no longer run (a crash or `kill -9` of
/// an earlier host). Directories of live processes, including this one, are left alone.
pub(crate) fn sweep_stale_profiles(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => {
                tracing::info!(dir = %entry.path().display(), "removed a stale browser profile")
            }
            Err(e) => {
                tracing::warn!(dir = %entry.path().display(), error = %e, "cannot remove a stale browser profile")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_only_profiles_of_dead_processes() {
        let root =
            std::env::temp_dir().join(format!("impressox-browser-sweep-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // pid_max is at most 2^22 on Linux: this pid cannot be running.
        let dead = root.join("99999999-0-1");
        let mine = root.join(format!("{}-0-2", std::process::id()));
        let other = root.join("notes");
        for d in [&dead, &mine, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        sweep_stale_profiles(&root);
        assert!(!dead.exists());
        assert!(mine.exists());
        assert!(other.exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
