//! The CLI for capability plugins: `plugin check` prints the grants to paste, `plugin run`
//! runs a task or event handler against real stores under the config's data dir, and
//! `plugin new task|event-handler` scaffolds that use a capability build and run as-is.

use std::path::{Path, PathBuf};

use crate::harness::{impressox_in, plugin_check, stdout_of};
use impressox_host::storage::{NOTIFY_REQUESTS, Store};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn plugin_check_prints_the_grants_to_paste() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "data_dir = \"d\"\n").unwrap();
    let out = plugin_check(&cfg, test_artifacts::GUEST_CAPS_PROBE);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stdout.contains(
            "[plugins.grants.caps-probe]\ndocs = [\"collection\"]          # the collections it uses\n\
             kv = true\nnotify = true\nprices = true\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("loadable by this host: no"), "{stdout}");
    assert!(stderr.contains("not granted"), "{stderr}");

    // Pasting the table (with a real collection) makes it loadable.
    std::fs::write(
        &cfg,
        "data_dir = \"d\"\n[plugins.grants.caps-probe]\ndocs = [\"things\"]\nkv = true\nnotify = true\nprices = true\n",
    )
    .unwrap();
    let out = plugin_check(&cfg, test_artifacts::GUEST_CAPS_PROBE);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("loadable by this host: yes"), "{stdout}");
}

fn run(cfg: &Path, wasm: &str, input: &Path) -> serde_json::Value {
    let stdout = stdout_of(
        &mut impressox_in(
            cfg,
            &["plugin", "run", wasm, "--input", input.to_str().unwrap()],
        ),
        "plugin run",
    );
    serde_json::from_slice(&stdout).unwrap()
}

#[test]
fn plugin_run_gives_tasks_and_event_handlers_their_capabilities_on_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "data_dir = \"d\"\n\
         [plugins.grants.price-digest]\nprices = true\nkv = true\nnotify = true\n\
         [plugins.grants.whale-alert]\ndocs = [\"whales\"]\nnotify = true\n\
         [plugins.settings.whale-alert]\nusers = [\"demo\"]\n",
    )
    .unwrap();
    let digest_input = root().join("plugins/price-digest/examples/input.json");
    let first = run(&cfg, test_artifacts::PRICE_DIGEST, &digest_input);
    assert!(
        first["ok"]["summary"]
            .as_str()
            .unwrap()
            .contains("sent to 1 users"),
        "{first}"
    );
    // The same occurrence again (a retry, in another process): no second notification.
    let again = run(&cfg, test_artifacts::PRICE_DIGEST, &digest_input);
    assert_eq!(again["ok"]["data_json"], first["ok"]["data_json"]);
    let whale_input = root().join("plugins/whale-alert/examples/input.json");
    assert_eq!(
        run(&cfg, test_artifacts::WHALE_ALERT, &whale_input),
        serde_json::json!("Ack")
    );

    let data = dir.path().join("d");
    let store = impressox_host::storage::embedded::EmbeddedStore::open(
        &data.join("impressox.redb"),
        Default::default(),
    )
    .unwrap();
    let rt = impressox_host::runtime::deadline::io_runtime();
    assert_eq!(
        rt.block_on(store.stream_len(NOTIFY_REQUESTS)).unwrap(),
        2,
        "one digest, one whale"
    );
    assert!(
        rt.block_on(store.plugin_kv_get("price-digest", "digest:1764300000000"))
            .unwrap()
            .is_some()
    );
    let docs =
        impressox_host::documents::embedded::EmbeddedDocuments::open(&data.join("documents.redb"))
            .unwrap();
    use impressox_host::documents::Documents;
    let whale = rt
        .block_on(docs.get("plugin.whale-alert.whales", "0x9f2c4e"))
        .unwrap()
        .unwrap();
    assert_eq!(whale["asset"], "USDT");
}

#[test]
fn scaffolded_task_and_event_handler_use_a_capability_and_build_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\n\
         [plugins.grants.my-task]\nkv = true\n[plugins.grants.my-handler]\ndocs = [\"events\"]\n",
    )
    .unwrap();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"))
        .join("scaffold-test");
    for (kind, name) in [("task", "my-task"), ("event-handler", "my-handler")] {
        let crate_dir = dir.path().join(name);
        stdout_of(
            &mut impressox_in(
                &cfg,
                &[
                    "plugin",
                    "new",
                    kind,
                    name,
                    "--path",
                    crate_dir.to_str().unwrap(),
                ],
            ),
            "plugin new",
        );
        stdout_of(
            impressox_in(&cfg, &["plugin", "build", crate_dir.to_str().unwrap()])
                .env("CARGO_TARGET_DIR", &target),
            "plugin build",
        );
    }
    let plugins = dir.path().join("plugins.d");
    let task_input = dir.path().join("run.json");
    std::fs::write(
        &task_input,
        r#"{"schedule": "hourly", "scheduled_at_ms": 0, "attempt": 1, "args_json": "{}"}"#,
    )
    .unwrap();
    let wasm = plugins.join("my_task.wasm");
    let first = run(&cfg, wasm.to_str().unwrap(), &task_input);
    assert_eq!(first["ok"]["summary"], "run 1 of `hourly`", "{first}");
    let second = run(&cfg, wasm.to_str().unwrap(), &task_input);
    assert_eq!(second["ok"]["summary"], "run 2 of `hourly`", "{second}");
    let event_input = dir.path().join("event.json");
    std::fs::write(
        &event_input,
        r#"{"stream": "s", "id": "1-0", "fields": [{"name": "symbol", "value": "BTCUSDT"}], "attempt": 1, "received_at_ms": 0}"#,
    )
    .unwrap();
    let wasm = plugins.join("my_handler.wasm");
    assert_eq!(
        run(&cfg, wasm.to_str().unwrap(), &event_input),
        serde_json::json!("Ack")
    );
}
