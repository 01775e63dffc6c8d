//! `impressox plugin new --lang python|js` and `impressox plugin build` (issue 18, item 3):
//! a new project builds with the pinned toolchain and runs its example input; without a
//! toolchain the build says which tool is missing and how to install it.

use std::path::Path;

use serde_json::Value;

use crate::componentize;
use crate::harness::{config_in, impressox};

fn new_project(dir: &Path, kind: &str, name: &str, lang: &str) -> std::path::PathBuf {
    let project = dir.join(name);
    let out = impressox()
        .args(["plugin", "new", kind, name, "--lang", lang, "--path"])
        .arg(&project)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    project
}

/// `plugin run` of `wasm` on the project's example, in a host config with `extra` keys.
fn run_example(project: &Path, wasm: &Path, extra: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path(), extra);
    componentize::link_compiled(&config, wasm);
    let out = impressox()
        .arg("--config")
        .arg(dir.path().join("impressox.toml"))
        .args(["plugin", "run"])
        .arg(wasm)
        .arg("--input")
        .arg(project.join("examples/input.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_new_python_feed_parser_builds_and_parses_its_example() {
    let dir = tempfile::tempdir().unwrap();
    let project = new_project(dir.path(), "feed-parser", "py-lines", "python");
    for file in [
        "plugin.toml",
        "app.py",
        "requirements.txt",
        "build.sh",
        "README.md",
        "wit/types.wit",
        "wit/worlds.wit",
        "examples/input.json",
    ] {
        assert!(project.join(file).is_file(), "{file} missing");
    }
    let requirements = std::fs::read_to_string(project.join("requirements.txt")).unwrap();
    assert!(
        requirements.contains("componentize-py==0.25.1"),
        "{requirements}"
    );
    // The WIT copied in is the host's own.
    assert_eq!(
        std::fs::read_to_string(project.join("wit/types.wit")).unwrap(),
        std::fs::read_to_string(componentize::repo().join("wit/types.wit")).unwrap()
    );
    let wasm = componentize::build_project(&project);
    let got = run_example(&project, &wasm, "");
    let ticks = &got["parse"]["ok"]["ticks"];
    assert_eq!(ticks[0]["symbol"], "BTCUSDT");
    assert_eq!(ticks[0]["price"], 70123.4);
    assert_eq!(ticks[1]["symbol"], "ETHUSDT");
}

/// A task reaches a capability from JavaScript: the project's own world imports only `kv`,
/// so the host asks for that grant alone.
#[test]
fn a_new_js_task_builds_and_counts_its_runs_in_kv() {
    let dir = tempfile::tempdir().unwrap();
    let project = new_project(dir.path(), "task", "js-counter", "js");
    let package: Value =
        serde_json::from_str(&std::fs::read_to_string(project.join("package.json")).unwrap())
            .unwrap();
    assert_eq!(
        package["devDependencies"]["@bytecodealliance/componentize-js"],
        "0.23.0"
    );
    let world = std::fs::read_to_string(project.join("wit/world.wit")).unwrap();
    assert!(
        world.contains("import kv;") && !world.contains("import docs;"),
        "{world}"
    );
    let wasm = componentize::build_project(&project);
    let got = run_example(&project, &wasm, "[plugins.grants.js-counter]\nkv = true\n");
    assert_eq!(got["ok"]["summary"], "run 1 of `nightly-report`", "{got}");
    let data: Value = serde_json::from_str(got["ok"]["data_json"].as_str().unwrap()).unwrap();
    assert_eq!(data["runs"], 1);
    assert_eq!(data["args"]["symbols"][0], "BTCUSDT");
}

#[test]
fn plugin_build_without_a_toolchain_names_the_tool_and_its_install_command() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let build = |project: &Path, path: &Path| {
        let out = impressox()
            .args(["plugin", "build"])
            .arg(project)
            .arg("--out")
            .arg(dir.path().join("out"))
            .env("PATH", path)
            .env_remove("VIRTUAL_ENV")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let py = new_project(dir.path(), "notify-formatter", "py-fmt", "python");
    let err = build(&py, &empty);
    assert!(err.contains("componentize-py is not installed"), "{err}");
    assert!(err.contains("pip install componentize-py==0.25.1"), "{err}");

    let js = new_project(dir.path(), "notify-formatter", "js-fmt", "js");
    let err = build(&js, &empty);
    assert!(err.contains("node is not installed"), "{err}");
    // Node.js alone: the tool is what is missing.
    let node_only = dir.path().join("node-bin");
    std::fs::create_dir_all(&node_only).unwrap();
    let node = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("node"))
        .find(|p| p.is_file())
        .expect("node on PATH");
    std::os::unix::fs::symlink(node, node_only.join("node")).unwrap();
    let err = build(&js, &node_only);
    assert!(err.contains("componentize-js is not installed"), "{err}");
    assert!(
        err.contains("package.json pins @bytecodealliance/componentize-js 0.23.0"),
        "{err}"
    );
    // Nothing was built or copied.
    assert!(!dir.path().join("out").exists());
}

#[test]
fn plugin_build_names_what_is_not_a_project() {
    let dir = tempfile::tempdir().unwrap();
    let out = impressox()
        .args(["plugin", "build"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no plugin project") && err.contains("plugin.toml"),
        "{err}"
    );
    std::fs::write(
        dir.path().join("plugin.toml"),
        "name = \"x\"\nkind = \"notify-formatter\"\nlanguage = \"python\"\n",
    )
    .unwrap();
    let out = impressox()
        .args(["plugin", "build"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("app.py is missing"), "{err}");
}

/// Every kind in both languages, scaffolded, built and run on its example input. Fourteen
/// large builds (about seven minutes cold on two cores), so on demand:
/// `cargo test --release --workspace --test all every_kind -- --ignored`.
#[test]
#[ignore]
fn every_kind_scaffolds_builds_and_runs_in_python_and_js() {
    let dir = tempfile::tempdir().unwrap();
    for lang in ["python", "js"] {
        for kind in [
            "feed-parser",
            "rule-processor",
            "scrape-parser",
            "notify-formatter",
            "task",
            "event-handler",
            "doc-chunker",
        ] {
            let name = format!("{lang}-{kind}");
            let project = new_project(dir.path(), kind, &name, lang);
            let wasm = componentize::build_project(&project);
            let grants = format!(
                "[plugins.grants.{name}]\n{}",
                match kind {
                    "task" => "kv = true\n",
                    "event-handler" => "docs = [\"events\"]\n",
                    _ => "",
                }
            );
            let got = run_example(&project, &wasm, &grants);
            assert!(
                got.get("error").is_none() && got["parse"].get("error").is_none(),
                "{name}: {got}"
            );
        }
    }
}
