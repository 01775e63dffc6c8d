//! A MongoDB-wire-protocol server for one test: SecantusDB's `secantusd-py` from the
//! test virtualenv (`cargo test-all` creates it; `IMPRESSOX_TEST_VENV` names it), on a free
//! loopback port, with its data in a temporary dir so it can be killed and restarted.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::free_port;

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The test virtualenv, or a panic saying how to make one.
pub fn venv() -> PathBuf {
    let dir = std::env::var_os("IMPRESSOX_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/impressox/venv")
        });
    assert!(
        dir.join("bin/secantusd-py").is_file(),
        "the Python test servers are missing from {}: run `cargo test-all` once (it creates \
         the virtualenv), or: python3 -m venv {0} && {0}/bin/pip install -r \
         host/tests/all/servers/python/requirements.txt",
        dir.display()
    );
    dir
}

pub struct MongoServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl MongoServer {
    pub fn start() -> MongoServer {
        let dir = tempfile::Builder::new()
            .prefix("impressox-mongo-")
            .tempdir()
            .expect("temporary dir for secantusd");
        // An empty config file: otherwise it reads ./secantusd.toml or ~/.secantus/.
        std::fs::write(dir.path().join("secantusd.toml"), "").unwrap();
        let mut server = MongoServer {
            port: 0,
            dir,
            child: None,
        };
        let mut last = String::new();
        for _ in 0..3 {
            server.port = free_port();
            match server.launch() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("secantusd-py did not start: {last}");
    }

    /// A URL the `mongodb` driver connects to directly (no replica-set discovery).
    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    fn launch(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.path().join("secantusd.log")).unwrap();
        let child = Command::new(venv().join("bin/secantusd-py"))
            .arg("--config")
            .arg(self.dir.path().join("secantusd.toml"))
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--storage-path")
            .arg(self.dir.path().join("data"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot run secantusd-py: {e}"))?;
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(self.dir.path().join("secantusd.log"))
                    .unwrap_or_default();
                self.child = None;
                return Err(format!("secantusd-py exited ({status}): {log}"));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        Err(format!(
            "not listening on {} after {READY_TIMEOUT:?}",
            self.port
        ))
    }

    /// SIGKILL, like a crash.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch().expect("secantusd-py restart");
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        self.stop();
    }
}
