//! A throwaway SecantusDB server (the MongoDB-wire server the tests use, from the test
//! virtualenv's `secantusd-py`) on a free loopback port, shared by the benches through
//! `#[path]`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// SecantusDB on a free port, in a folder of its own.
pub struct Mongo(Child, u16, #[allow(dead_code)] tempfile::TempDir);

impl Mongo {
    pub fn start() -> Mongo {
        let venv = std::env::var_os("IMPRESSOX_TEST_VENV")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/impressox/venv")
            });
        let bin = venv.join("bin/secantusd-py");
        assert!(
            bin.is_file(),
            "{} is missing: run `cargo test-all` once (it creates the virtualenv)",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secantusd.toml"), "").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(dir.path().join("secantusd.toml"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--storage-path")
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Mongo(child, port, dir);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("secantusd-py did not start");
    }

    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.1)
    }
}

impl Drop for Mongo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
