//! The toolchains `impressox plugin build` drives for Python and JavaScript, the versions
//! this host is tested with, and where an author's install of them is found.
//!
//! A tool is looked for where its ecosystem puts it for one project first (a `.venv` or
//! `node_modules` in the project), then in an active virtualenv, then on `PATH`. A missing
//! tool is an error naming it and the command that installs the pinned version; another
//! version is used with a warning, since a newer toolchain may import a WASI release this
//! host does not serve (the load then says which).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

/// A tool at the version this host was tested with.
#[derive(Debug, Clone, Copy)]
pub struct Pinned {
    /// The command.
    pub tool: &'static str,
    /// The package that provides it (PyPI or npm).
    pub package: &'static str,
    pub version: &'static str,
}

/// Python: componentize-py from PyPI (CPython 3.12 inside; imports WASI 0.2.9).
pub const COMPONENTIZE_PY: Pinned = Pinned {
    tool: "componentize-py",
    package: "componentize-py",
    version: "0.25.1",
};

/// JavaScript: componentize-js from npm (SpiderMonkey inside; imports WASI 0.2.12).
pub const COMPONENTIZE_JS: Pinned = Pinned {
    tool: "componentize-js",
    package: "@bytecodealliance/componentize-js",
    version: "0.23.0",
};

/// What componentize-js 0.23.0 imports without declaring it: `npm install` places it by
/// accident of hoisting, `npm ci` from a lock file not at all, so projects name it.
pub const PREVIEW2_SHIM: Pinned = Pinned {
    tool: "",
    package: "@bytecodealliance/preview2-shim",
    version: "0.25.0",
};

/// componentize-py for the project in `dir`.
pub fn componentize_py(dir: &Path) -> Result<PathBuf> {
    let t = COMPONENTIZE_PY;
    let mut places = vec![dir.join(".venv/bin")];
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        places.push(PathBuf::from(venv).join("bin"));
    }
    if let Some(found) = find(t.tool, &places) {
        return Ok(found);
    }
    let venv = dir.join(".venv");
    bail!(
        "{tool} is not installed (looked in {venv}/bin, $VIRTUAL_ENV/bin and PATH). Install \
         the pinned version into the project's virtualenv: `python3 -m venv {venv} && \
         {venv}/bin/pip install {package}=={version}` (its requirements.txt pins it too)",
        tool = t.tool,
        venv = venv.display(),
        package = t.package,
        version = t.version,
    )
}

/// componentize-js for the project in `dir` (and Node.js, which runs it).
pub fn componentize_js(dir: &Path) -> Result<PathBuf> {
    let t = COMPONENTIZE_JS;
    if find("node", &[]).is_none() {
        bail!(
            "node is not installed: {tool} runs on Node.js 18 or newer; install it (Debian: \
             `apt-get install nodejs npm`, or https://nodejs.org), then `npm install` in {dir}",
            tool = t.tool,
            dir = dir.display(),
        );
    }
    if let Some(found) = find(t.tool, &[dir.join("node_modules/.bin")]) {
        return Ok(found);
    }
    bail!(
        "{tool} is not installed (looked in {dir}/node_modules/.bin and PATH). Install the \
         pinned version into the project: `npm install --prefix {dir}` (its package.json pins \
         {package} {version})",
        tool = t.tool,
        dir = dir.display(),
        package = t.package,
        version = t.version,
    )
}

/// Warn (on stderr) when the tool at `path` is not the pinned version.
pub fn warn_unless_pinned(path: &Path, pinned: Pinned) {
    let found = Command::new(path)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            // `componentize-py 0.25.1` or `0.23.0`: the version is the last word.
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .last()
                .map(str::to_string)
        });
    match found {
        Some(v) if v == pinned.version => {}
        Some(v) => eprintln!(
            "warning: {} is {v}; this host is tested with {} (`{}`)",
            pinned.tool,
            pinned.version,
            install_hint(pinned)
        ),
        None => eprintln!(
            "warning: could not tell the version of {}; this host is tested with {}",
            path.display(),
            pinned.version
        ),
    }
}

/// The command that installs the pinned version.
pub fn install_hint(pinned: Pinned) -> String {
    if pinned.package.starts_with('@') {
        format!(
            "npm install {}@{} {}@{}",
            pinned.package, pinned.version, PREVIEW2_SHIM.package, PREVIEW2_SHIM.version
        )
    } else {
        format!("pip install {}=={}", pinned.package, pinned.version)
    }
}

/// `bin` in the first of `places` that has it, else on `PATH`.
fn find(bin: &str, places: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    places
        .iter()
        .cloned()
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(bin))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pins here are the ones the test command installs (the virtualenv's
    /// requirements and xtask's npm install), so the tests build with what authors are
    /// told to use.
    #[test]
    fn the_test_command_installs_the_pinned_versions() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let requirements =
            std::fs::read_to_string(root.join("host/tests/all/servers/python/requirements.txt"))
                .unwrap();
        let py = format!("{}=={}", COMPONENTIZE_PY.package, COMPONENTIZE_PY.version);
        assert!(requirements.lines().any(|l| l.trim() == py), "{py}");
        let npm =
            std::fs::read_to_string(root.join("host/tests/all/componentize/npm/package.json"))
                .unwrap();
        for pinned in [COMPONENTIZE_JS, PREVIEW2_SHIM] {
            let js = format!("\"{}\": \"{}\"", pinned.package, pinned.version);
            assert!(npm.contains(&js), "{js}");
        }
    }

    #[test]
    fn install_hints_name_the_pinned_packages() {
        assert_eq!(
            install_hint(COMPONENTIZE_PY),
            "pip install componentize-py==0.25.1"
        );
        assert_eq!(
            install_hint(COMPONENTIZE_JS),
            "npm install @bytecodealliance/componentize-js@0.23.0 \
             @bytecodealliance/preview2-shim@0.25.0"
        );
    }
}
