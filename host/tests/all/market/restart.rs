//! Kill the host (SIGKILL, no shutdown) while a replay is firing alerts, start it again,
//! and check `notify:requests` holds every expected request exactly once — on the
//! embedded store and on Redis.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use impressox_host::storage::{NOTIFY_REQUESTS, StoreLimits};

use super::pipeline::seed;
use super::rig::{BOTH, sawtooth, storage_section, write_csv};

const T0: i64 = 1_764_300_000_000;

fn spawn(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_impressox"))
        .env_remove("RUST_LOG")
        .args(["--config", config.to_str().unwrap(), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn metrics(port: u16) -> Option<String> {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_host_neither_loses_nor_repeats_an_alert() {
    for backend in BOTH {
        let dir = tempfile::tempdir().unwrap();
        // 900 s of a sawtooth: 45 crossings each way, replayed over ~4.5 s.
        let rows = sawtooth(T0, 900);
        let csv = write_csv(dir.path(), "saw.csv", &rows);
        let plugins = dir.path().join("plugins.d");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::copy(test_artifacts::THRESHOLD, plugins.join("threshold.wasm")).unwrap();
        std::fs::copy(
            test_artifacts::REPLAY_ROWS,
            plugins.join("replay-rows.wasm"),
        )
        .unwrap();
        let (storage, _redis) = storage_section(backend);
        let port = crate::servers::redis::free_port();
        let rules = seed(
            "up",
            "BTCUSDT",
            "{ op = \"crosses_up\", value = 121 }",
            "{ mode = \"every\" }",
        ) + &seed(
            "down",
            "BTCUSDT",
            "{ op = \"crosses_down\", value = 119 }",
            "{ mode = \"every\" }",
        ) + &seed(
            "once",
            "BTCUSDT",
            "{ op = \"above\", value = 130 }",
            "{ mode = \"once\" }",
        );
        let config = dir.path().join("impressox.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n[plugins]\ndir = \"plugins.d\"\n\
                 {storage}\n[workers]\nenabled = [\"market-monitor\"]\n\
                 [market]\nconsole_alerts = false\ncommit_interval_ms = 100\n\
                 [[market.sources]]\nname = \"file\"\nkind = \"replay\"\nparser = \"replay-rows\"\n\
                 path = \"{}\"\nspeed = 200.0\n{rules}",
                csv.display()
            ),
        )
        .unwrap();

        // Kill twice at different points, then let the third run finish the file.
        for kill_after in [Duration::from_millis(1200), Duration::from_millis(1900)] {
            let mut child = spawn(&config);
            let started = Instant::now();
            while metrics(port).await.is_none() {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "host never served"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(kill_after).await;
            child.kill().unwrap();
            child.wait().unwrap();
        }
        let mut child = spawn(&config);
        let started = Instant::now();
        loop {
            let done = metrics(port).await.is_some_and(|m| {
                m.contains("impressox_source_state{source=\"file\",state=\"finished\"} 1")
            });
            if done {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "replay never finished"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        assert!(child.wait().unwrap().success());

        // Read the stream with a fresh consumer group.
        let cfg = impressox_host::config::Config::load_with_env(Some(&config), &[]).unwrap();
        let store = impressox_host::storage::open(&cfg, StoreLimits::default())
            .await
            .unwrap();
        let mut keys = Vec::new();
        loop {
            let got = store
                .read_new(NOTIFY_REQUESTS, "audit", "a", 1000, 0)
                .await
                .unwrap();
            if got.is_empty() {
                break;
            }
            keys.extend(got.into_iter().map(|e| e.key));
        }
        let mut expected = vec![format!("rule-once-{}", T0 / 1000 + 8)];
        for cycle in 0..45 {
            expected.push(format!("rule-up-{}", T0 / 1000 + 20 * cycle + 6));
            expected.push(format!("rule-down-{}", T0 / 1000 + 20 * cycle + 16));
        }
        expected.sort();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, expected, "{backend:?}: got {} requests", keys.len());
        assert_eq!(store.stream_len(NOTIFY_REQUESTS).await.unwrap(), 91);
    }
}
