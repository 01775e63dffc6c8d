//! Python and JavaScript components built from source the way an author builds them:
//! `impressox plugin build` running the pinned componentize-py (from the test virtualenv)
//! and componentize-js (from `~/.cache/impressox/npm`), both installed by `cargo test-all`
//! (`IMPRESSOX_TEST_VENV`, `IMPRESSOX_TEST_NPM`). A missing toolchain is a panic naming the
//! command that installs it.
//!
//! A build is kept under `<target>/release/componentize/`, keyed by a hash of the project's
//! files (its WIT inside) and the pinned toolchain files: the tools' output differs from
//! build to build, so reusing one also keeps the compiled-code cache's key (the `.wasm`'s
//! SHA-256) stable. A file no run used for 14 days is deleted. Shared by the tests
//! (`super`) and the `guests` benchmark.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use impressox_host::runtime::cache::sha256_hex;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// The `impressox` binary of this build.
fn impressox() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_impressox"));
    cmd.env_remove("RUST_LOG");
    cmd
}

/// `<target>/release/componentize`: builds and compiled code kept between runs.
pub fn cache_dir() -> PathBuf {
    static SWEPT: OnceLock<()> = OnceLock::new();
    let dir = Path::new(env!("CARGO_BIN_EXE_impressox"))
        .parent()
        .unwrap()
        .join("componentize");
    std::fs::create_dir_all(&dir).unwrap();
    SWEPT.get_or_init(|| sweep(&dir));
    dir
}

/// Files of the cache unused for this long are deleted (each is 12-37 MB; every edit of a
/// guest's sources makes new ones).
const UNUSED_FOR: std::time::Duration = std::time::Duration::from_secs(14 * 86_400);

/// Delete what no run used for [`UNUSED_FOR`] (a use marks a file, see [`mark_used`]).
fn sweep(dir: &Path) {
    let Some(cutoff) = std::time::SystemTime::now().checked_sub(UNUSED_FOR) else {
        return;
    };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "wasm" || e == "cwasm")
                && meta.modified().is_ok_and(|m| m < cutoff)
            {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// Note that a cached file was used now, so [`sweep`] keeps it.
pub fn mark_used(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

fn cache_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cache/impressox")
}

/// The test virtualenv's `bin` with componentize-py, or a panic saying how to make it.
pub fn python_bin() -> PathBuf {
    let venv = std::env::var_os("IMPRESSOX_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_home().join("venv"));
    assert!(
        venv.join("bin/componentize-py").is_file(),
        "componentize-py is missing from {0}: run `cargo test-all` once (it installs the \
         pinned toolchains), or: python3 -m venv {0} && {0}/bin/pip install -r \
         host/tests/all/servers/python/requirements.txt",
        venv.display()
    );
    venv.join("bin")
}

/// componentize-js's `node_modules/.bin`, or a panic saying how to install it.
pub fn js_bin() -> PathBuf {
    let dir = std::env::var_os("IMPRESSOX_TEST_NPM")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_home().join("npm"));
    let bin = dir.join("node_modules/.bin");
    assert!(
        bin.join("componentize-js").is_file(),
        "componentize-js is missing from {0}: run `cargo test-all` once (it installs the \
         pinned toolchains), or: mkdir -p {0} && cp host/tests/all/componentize/npm/package*.json \
         {0} && npm ci --prefix {0}",
        dir.display()
    );
    bin
}

/// `PATH` with both toolchains first: what an author's shell has after installing them.
pub fn toolchain_path() -> std::ffi::OsString {
    let mut dirs = vec![python_bin(), js_bin()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

/// A project copied out of the source tree (builds write into the project), with its WIT
/// inside it, ready to edit and build.
pub struct Staged {
    pub dir: tempfile::TempDir,
}

impl Staged {
    /// Copy the project at `src` (relative to the repository or absolute).
    pub fn new(src: &Path) -> Staged {
        let src = repo().join(src);
        let dir = tempfile::Builder::new()
            .prefix("impressox-guest-")
            .tempdir()
            .unwrap();
        copy_tree(&src, dir.path());
        let manifest_path = dir.path().join("plugin.toml");
        let manifest = std::fs::read_to_string(&manifest_path).unwrap();
        // A bundled plugin points at the repository's WIT; the copy carries its own.
        let mut kept = String::new();
        for line in manifest.lines() {
            match line.strip_prefix("wit = ") {
                Some(wit) => copy_tree(&src.join(wit.trim_matches('"')), &dir.path().join("wit")),
                None => {
                    kept.push_str(line);
                    kept.push('\n');
                }
            }
        }
        std::fs::write(&manifest_path, kept).unwrap();
        Staged { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Replace `from` by `to` in one of the project's files (it must occur).
    pub fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }

    /// The built component (cached by content), as `impressox plugin build` makes it.
    pub fn build(&self) -> PathBuf {
        build_project(self.path())
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if ["build", "node_modules", ".venv", "__pycache__"]
            .iter()
            .any(|skip| name == *skip)
        {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// Every file of a project (relative path and bytes), in a stable order.
fn project_files(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = format!("{prefix}{}", path.file_name().unwrap().to_string_lossy());
        if ["build", "out"].contains(&name.as_str()) {
            continue;
        }
        if path.is_dir() {
            project_files(&path, &format!("{name}/"), out);
        } else {
            out.push((name, std::fs::read(&path).unwrap()));
        }
    }
}

/// One lock per key: two tests wanting the same build (or compiled code) make it once,
/// while different ones go on side by side.
pub fn lock_for(key: &Path) -> Arc<Mutex<()>> {
    static LOCKS: Mutex<BTreeMap<PathBuf, Arc<Mutex<()>>>> = Mutex::new(BTreeMap::new());
    LOCKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key.to_path_buf())
        .or_default()
        .clone()
}

/// Build the project at `dir` with `impressox plugin build`, or take the build of the same
/// sources made earlier.
pub fn build_project(dir: &Path) -> PathBuf {
    let manifest = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    let name = manifest
        .lines()
        .find_map(|l| l.strip_prefix("name = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let out = dir.join("out");
    build_with(dir, &name, || {
        let mut cmd = impressox();
        cmd.args(["plugin", "build"])
            .arg(dir)
            .arg("--out")
            .arg(&out);
        (cmd, out.join(format!("{name}.wasm")))
    })
}

/// Run the build `command` makes (it returns the command and the file it writes) in the
/// toolchains' `PATH`, or take the build of the same sources made earlier; cached as
/// `<label>-<hash>.wasm`.
pub fn build_with(
    dir: &Path,
    label: &str,
    command: impl FnOnce() -> (std::process::Command, PathBuf),
) -> PathBuf {
    let root = repo();
    let mut files = Vec::new();
    project_files(dir, "", &mut files);
    for pinned in [
        "host/tests/all/servers/python/requirements.txt",
        "host/tests/all/componentize/npm/package-lock.json",
    ] {
        files.push((
            pinned.to_string(),
            std::fs::read(root.join(pinned)).unwrap(),
        ));
    }
    let mut key = label.as_bytes().to_vec();
    for (name, bytes) in &files {
        key.push(0);
        key.extend_from_slice(name.as_bytes());
        key.push(0);
        key.extend_from_slice(sha256_hex(bytes).as_bytes());
    }
    let cached = cache_dir().join(format!("{label}-{}.wasm", &sha256_hex(&key)[..16]));
    let lock = lock_for(&cached);
    let _once = lock.lock().unwrap_or_else(|e| e.into_inner());
    if cached.is_file() {
        mark_used(&cached);
        return cached;
    }
    let (mut cmd, built) = command();
    let started = std::time::Instant::now();
    let result = cmd.env("PATH", toolchain_path()).output().unwrap();
    assert!(
        result.status.success() && built.is_file(),
        "building {label} in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    eprintln!(
        "componentize: built {label} in {:.1} s (kept for later runs)",
        started.elapsed().as_secs_f64()
    );
    let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
    std::fs::copy(&built, &tmp).unwrap();
    std::fs::rename(&tmp, &cached).unwrap();
    cached
}

/// The bundled Python rule processor `rsi` (plugins/rsi), built.
pub fn rsi() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| Staged::new(Path::new("plugins/rsi")).build())
}

/// The bundled JavaScript formatter `discord-embeds` (plugins/discord-embeds), built.
pub fn discord_embeds() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| Staged::new(Path::new("plugins/discord-embeds")).build())
}

/// The Python guest that misbehaves on request (tests/guests/py-sandbox), built.
pub fn py_sandbox() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| Staged::new(Path::new("tests/guests/py-sandbox")).build())
}
