//! A throwaway `redis-server` for the benchmarks (no persistence, a free loopback port),
//! shared by the benches through `#[path]`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A redis-server child; the folder lives as long as it does.
pub struct Redis(pub Child, pub u16, #[allow(dead_code)] tempfile::TempDir);

impl Redis {
    pub fn start() -> Option<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = tempfile::tempdir().ok()?;
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Redis(child, port, dir));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A plain connection to the bench Redis.
#[allow(dead_code)]
pub fn client(port: u16) -> ::redis::Connection {
    ::redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Announce market host `name` (a heartbeat in `market:cluster:hosts`, Redis' clock), as
/// the host itself does every third of a lease.
#[allow(dead_code)]
pub fn heartbeat(c: &mut ::redis::Connection, name: &str) {
    let (secs, micros): (i64, i64) = ::redis::cmd("TIME").query(c).unwrap();
    let now = secs * 1000 + micros / 1000;
    let _: i64 = ::redis::cmd("ZADD")
        .arg(impressox_host::market::cluster::HOSTS_KEY)
        .arg(now)
        .arg(name)
        .query(c)
        .unwrap();
}
