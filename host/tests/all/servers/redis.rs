//! A real `redis-server` for one test: its own free loopback port, its own temporary dir, no
//! persistence. It can be stopped and restarted on the same port, so tests can check that a
//! client survives "Redis restarted mid-stream" (and that state is gone afterwards, as with a
//! real Redis without persistence). [`RedisServer::start_persistent`] keeps an append-only
//! file synced on every write instead, so a stop and restart keeps what Redis acknowledged
//! (a production Redis down for a while).
//!
//! Readiness is checked with a raw RESP `PING` over TCP rather than with the `redis` crate, so
//! this helper does not depend on the client library whose behaviour the tests examine.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh server gets to accept connections before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a first start is retried on a new port: the free port is found by binding and
/// releasing it, so another process may grab it in between.
const START_ATTEMPTS: usize = 3;

pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Append-only file, fsynced on every write.
    persistent: bool,
}

impl RedisServer {
    /// Start a server on a free loopback port and wait until it answers `PING`.
    pub fn start() -> RedisServer {
        Self::start_with(false)
    }

    /// [`RedisServer::start`] with an append-only file synced on every write, so that
    /// [`RedisServer::restart`] keeps every acknowledged write.
    pub fn start_persistent() -> RedisServer {
        Self::start_with(true)
    }

    fn start_with(persistent: bool) -> RedisServer {
        let binary = find_on_path("redis-server").unwrap_or_else(|| {
            panic!(
                "redis-server not found: install the Debian package redis-server \
                 (the test command `cargo test-all` does this)"
            )
        });
        let dir = tempfile::Builder::new()
            .prefix("impressox-redis-")
            .tempdir()
            .expect("temporary dir for redis-server");
        let mut server = RedisServer {
            binary,
            port: 0,
            dir,
            child: None,
            persistent,
        };
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            match server.launch() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start after {START_ATTEMPTS} attempts: {last_error}");
    }

    /// `redis://127.0.0.1:P`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kill the server (SIGKILL: no shutdown handshake, as in a crash) and wait for it to exit.
    /// Connected clients see their connections reset. Does nothing if already stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop, then start again on the same port. The data is gone (no persistence), like a real
    /// Redis restarted without a dump file, unless the server is persistent. Panics if the
    /// port cannot be taken again.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(e) = self.launch() {
            panic!("redis-server did not come back on port {}: {e}", self.port);
        }
    }

    /// Whether the process is (still) running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Send one command over a fresh raw TCP connection and return the raw RESP reply, e.g.
    /// `"+PONG\r\n"` or `"$3\r\nbar\r\n"`. Handy for setting up or inspecting state without the
    /// client under test (`FLUSHALL`, `CLIENT KILL TYPE normal`, `XLEN s`, ...).
    pub fn raw_command(&self, args: &[&str]) -> String {
        resp_command(self.port, args, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("redis {args:?} on port {}: {e}", self.port))
    }

    /// Spawn the process on `self.port` and wait until it answers `PING`. On failure the child is
    /// killed and the error carries its output.
    fn launch(&mut self) -> Result<(), String> {
        // redis-server logs to stdout and prints startup errors ("Address already in use") there
        // too; both go to files so a failure message can show them and no pipe can fill up.
        let stdout_path = self.dir.path().join("redis.stdout.log");
        let stderr_path = self.dir.path().join("redis.stderr.log");
        let stdout = File::create(&stdout_path).map_err(|e| e.to_string())?;
        let stderr = File::create(&stderr_path).map_err(|e| e.to_string())?;
        let mut child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly"])
            .args(if self.persistent {
                &["yes", "--appendfsync", "always"][..]
            } else {
                &["no"][..]
            })
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;

        let deadline = Instant::now() + READY_TIMEOUT;
        let failure = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break format!("redis-server exited early ({status})");
            }
            if let Ok(reply) = resp_command(self.port, &["PING"], Duration::from_millis(500))
                && reply == "+PONG\r\n"
            {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break format!(
                    "redis-server did not answer PING on 127.0.0.1:{} within {READY_TIMEOUT:?}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Err(format!(
            "{failure}\n--- stderr ---\n{}\n--- stdout ---\n{}",
            read_lossy(&stderr_path),
            read_lossy(&stdout_path)
        ))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago: bind port 0, read what the kernel picked, release it.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}

/// One command as a RESP array of bulk strings; returns the complete raw reply.
fn resp_command(port: u16, args: &[&str], timeout: Duration) -> Result<String, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut reply = String::new();
    read_reply(&mut reader, &mut reply).map_err(|e| format!("{e} (read so far: {reply:?})"))?;
    Ok(reply)
}

/// Read exactly one RESP2 reply (nested arrays included) and append it verbatim to `out`, so the
/// caller sees the bytes Redis sent and nothing is left half-read.
fn read_reply(reader: &mut impl BufRead, out: &mut String) -> std::io::Result<()> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before a reply",
        ));
    }
    out.push_str(&line);
    let count = || -> std::io::Result<i64> {
        line[1..].trim_end().parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad line {line:?}"),
            )
        })
    };
    match line.as_bytes().first() {
        Some(b'+' | b'-' | b':') => Ok(()),
        Some(b'$') => {
            let len = count()?;
            if len >= 0 {
                let mut body = vec![0; len as usize + 2];
                reader.read_exact(&mut body)?;
                out.push_str(&String::from_utf8_lossy(&body));
            }
            Ok(())
        }
        Some(b'*') => {
            for _ in 0..count()?.max(0) {
                read_reply(reader, out)?;
            }
            Ok(())
        }
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a RESP reply: {line:?}"),
        )),
    }
}
