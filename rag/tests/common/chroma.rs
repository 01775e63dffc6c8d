//! A real Chroma server for one test: `chroma run` from the test virtualenv (the PyPI
//! package `chromadb`, pinned in host/tests/all/servers/python/requirements.txt;
//! `IMPRESSOX_TEST_VENV` names the venv), on a free loopback port, with its data in a
//! temporary dir so it can be killed and started again on the same data.

// Each test binary (and the bench) uses a part of it.
#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The test virtualenv's `chroma`, or a panic saying how to get it. Never a skip: a
/// missing server would make the Chroma half of the suite pass without running.
pub fn chroma_bin() -> PathBuf {
    let venv = std::env::var_os("IMPRESSOX_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(".cache/impressox/venv")
        });
    let bin = venv.join("bin/chroma");
    assert!(
        bin.is_file(),
        "chroma is missing from the test virtualenv {}: run `cargo test-all` once (it \
         installs host/tests/all/servers/python/requirements.txt, chromadb included), or: \
         {0}/bin/pip install -r host/tests/all/servers/python/requirements.txt",
        venv.display()
    );
    bin
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

pub struct ChromaServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The token a server with authentication requires (see [`ChromaServer::start_with_token`]).
    token: Option<String>,
}

impl ChromaServer {
    pub fn start() -> ChromaServer {
        Self::start_inner(None)
    }

    /// A server that refuses every request without `token` (`Authorization: Bearer`).
    ///
    /// `chroma run` cannot be this server: the Rust server of chromadb 1.x has no
    /// authentication (it ignores `CHROMA_SERVER_AUTHN_PROVIDER` and answers every request;
    /// checked on 1.5.9). The same package's Python server (`chromadb.app`, under uvicorn)
    /// still implements Chroma's token authentication and the same v2 API, so the token
    /// tests run against it (its extra modules, fastapi and the OpenTelemetry FastAPI
    /// instrumentation, are pinned in requirements.txt).
    pub fn start_with_token(token: &str) -> ChromaServer {
        Self::start_inner(Some(token.to_string()))
    }

    fn start_inner(token: Option<String>) -> ChromaServer {
        let dir = tempfile::Builder::new()
            .prefix("impressox-chroma-")
            .tempdir()
            .expect("temporary dir for chroma");
        let mut server = ChromaServer {
            port: 0,
            dir,
            child: None,
            token,
        };
        let mut last = String::new();
        for _ in 0..3 {
            server.port = free_port();
            match server.launch() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("chroma did not start: {last}");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.path().join("chroma.log")).unwrap();
        let mut command = match &self.token {
            None => {
                let mut c = Command::new(chroma_bin());
                c.arg("run")
                    .arg("--path")
                    .arg(self.dir.path().join("data"))
                    .args(["--host", "127.0.0.1", "--port", &self.port.to_string()]);
                c
            }
            Some(token) => {
                let python = chroma_bin().with_file_name("python");
                let mut c = Command::new(python);
                c.args(["-m", "uvicorn", "chromadb.app:app", "--host", "127.0.0.1"])
                    .args(["--port", &self.port.to_string()])
                    .env("IS_PERSISTENT", "TRUE")
                    .env("PERSIST_DIRECTORY", self.dir.path().join("data"))
                    .env(
                        "CHROMA_SERVER_AUTHN_PROVIDER",
                        "chromadb.auth.token_authn.TokenAuthenticationServerProvider",
                    )
                    .env("CHROMA_SERVER_AUTHN_CREDENTIALS", token);
                c
            }
        };
        let child = command
            .env("ANONYMIZED_TELEMETRY", "False")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawning chroma: {e}"))?;
        self.child = Some(child);
        let t0 = Instant::now();
        while t0.elapsed() < READY_TIMEOUT {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                let log =
                    std::fs::read_to_string(self.dir.path().join("chroma.log")).unwrap_or_default();
                return Err(format!("chroma exited with {status}: {log}"));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() && self.heartbeat() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        Err("chroma did not answer its heartbeat in 60 s".into())
    }

    fn heartbeat(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = "GET /api/v2/heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.starts_with("HTTP/1.1 200")
    }

    /// What the server printed (its log file).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chroma.log")).unwrap_or_default()
    }

    /// SIGKILL: the server dies mid-request, with whatever it had not written.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.kill();
        self.launch().expect("chroma restarts");
    }
}

impl Drop for ChromaServer {
    fn drop(&mut self) {
        self.kill();
    }
}
