//! The rag worker as a process: a file dropped into the folder is searchable through the
//! API within seconds; kill -9 in the middle of an ingest, restart, and the index holds
//! exactly what a clean ingest stores (no duplicate, no missing chunk).

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::{pages_source, write_host_dir};
use crate::harness::{free_port, impressox, wait_until};

fn write_config(dir: &Path, port: u16) -> std::path::PathBuf {
    write_host_dir(
        dir,
        &format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n[workers]\nenabled = [\"rag\"]\n{}",
            pages_source("interval = \"300ms\"\n")
        ),
    )
}

/// A host process, killed when dropped (a failed assertion must not leave it running:
/// it would hold the test binary's inherited descriptors, and its port).
struct HostProcess(Child);

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path) -> HostProcess {
    HostProcess(
        impressox()
            .args(["--config", config.to_str().unwrap(), "run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Runs one request on the process's plugin I/O runtime (the test itself is synchronous:
/// it drives processes; a runtime per poll would be built and torn down at every poll).
fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    impressox_host::runtime::deadline::io_runtime().block_on(f)
}

fn get(port: u16, path: &str) -> Option<Value> {
    block(async {
        reqwest::get(format!("http://127.0.0.1:{port}/api/v1/{path}"))
            .await
            .ok()?
            .json()
            .await
            .ok()
    })
}

fn query(port: u16, text: &str) -> Option<Value> {
    block(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/api/v1/rag/query"))
            .json(&json!({"collection": "docs", "query": text, "k": 3}))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    })
}

fn chunks(port: u16) -> u64 {
    get(port, "rag/collections")
        .and_then(|c| c["collections"][0]["chunks"].as_u64())
        .unwrap_or(0)
}

/// Enough pages that the ingest is still running when the test kills the host, with the
/// faster kernels of the local embedder (300 were done before the first poll).
const PAGES: usize = 1200;

fn page(i: usize) -> String {
    format!(
        "# Page {i}\n\nSection one of page {i} talks about block {i} and miner {i}.\n\n\
         ## More\n\nSection two of page {i}: fees, hashrate and difficulty number {i}.\n"
    )
}

#[test]
fn a_dropped_file_is_searchable_within_seconds_and_kill_9_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("pages");
    std::fs::create_dir_all(&pages).unwrap();
    for i in 0..PAGES {
        std::fs::write(pages.join(format!("p{i:03}.md")), page(i)).unwrap();
    }
    let port = free_port();
    let config = write_config(dir.path(), port);

    // Kill -9 as soon as some chunks are stored, mid-ingest.
    let host = start(&config);
    assert!(
        wait_until(Duration::from_secs(60), || chunks(port) > 0),
        "nothing ingested"
    );
    let partial = chunks(port);
    // Drop kills with SIGKILL.
    drop(host);

    let mut host = start(&config);
    let settled = wait_until(Duration::from_secs(120), || {
        get(port, "rag/collections").is_some_and(|c| {
            c["sources"]["pages"]["passes"].as_u64().unwrap_or(0) >= 2
                && c["sources"]["pages"]["last_error"].is_null()
        })
    });
    assert!(settled, "the restarted host did not finish its ingest");
    let after_restart = chunks(port);

    // A clean ingest of the same folder into another data dir: the same count.
    let clean_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(clean_dir.path().join("pages")).unwrap();
    for i in 0..PAGES {
        std::fs::write(clean_dir.path().join(format!("pages/p{i:03}.md")), page(i)).unwrap();
    }
    let clean_config = write_config(clean_dir.path(), free_port());
    let out = impressox()
        .args(["--config", clean_config.to_str().unwrap(), "rag", "ingest"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // The pass's line (stage times follow it on their own lines).
    let line = line
        .lines()
        .find(|l| l.starts_with("pages: "))
        .unwrap_or_default();
    assert!(line.contains(&format!("pages: {PAGES} changed")), "{line}");
    let clean: u64 = line
        .split(", ")
        .find(|p| p.ends_with("chunks embedded"))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        partial < clean,
        "the kill came after the ingest ({partial} of {clean})"
    );
    assert_eq!(
        after_restart, clean,
        "chunks after kill -9 and restart vs a clean ingest"
    );

    // A new file: searchable within seconds.
    std::fs::write(
        pages.join("new.md"),
        "# Stablecoins\n\nTether and USDC keep a dollar peg with reserves.",
    )
    .unwrap();
    let found = wait_until(Duration::from_secs(10), || {
        query(port, "dollar peg reserves")
            .is_some_and(|a| a["results"][0]["document_id"] == "pages/new.md")
    });
    assert!(found, "the new file was not found");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(host.0.id() as i32, libc::SIGTERM) };
    assert!(host.0.wait().unwrap().success());
}
