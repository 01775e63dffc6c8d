//! `impressox plugin build [dir]`: build a project into a component and copy it into the
//! plugin directory (atomically, so a watching host never reads half a file).
//!
//! - Rust: `cargo build --release --target wasm32-wasip2`; the component is the crate's
//!   cdylib artifact.
//! - Python: `componentize-py -d <wit> -w <world> componentize <module> -p <dir>`.
//! - JavaScript: `componentize-js <source> --wit <wit> --world-name <world> -d http -d
//!   fetch-event` (without those two it imports `wasi:http`, which pure kinds refuse).
//!
//! The toolchains are found as [`super::toolchain`] describes; a missing one is an error
//! naming it and its install command.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, anyhow, bail};

use super::copy_atomically;
use super::project::{Lang, Manifest, Project};
use super::toolchain;
use crate::config::Config;
use crate::runtime::Kind;

pub fn build(config: &Config, dir: Option<PathBuf>, out: Option<PathBuf>) -> Result<ExitCode> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    let (artifact, file_name) = match Project::find(&dir)? {
        Project::Rust { manifest } => {
            let artifact = build_rust(&manifest)?;
            let file_name = artifact
                .file_name()
                .ok_or_else(|| anyhow!("artifact without a file name"))?
                .to_string_lossy()
                .into_owned();
            (artifact, file_name)
        }
        Project::Guest {
            dir,
            manifest,
            kind,
        } => {
            let artifact = build_guest(&dir, &manifest, kind)?;
            (artifact, format!("{}.wasm", manifest.name))
        }
    };
    let dest_dir = out.unwrap_or_else(|| config.plugin_dir());
    std::fs::create_dir_all(&dest_dir)
        .with_context(|| format!("failed to create {}", dest_dir.display()))?;
    let dest = dest_dir.join(file_name);
    copy_atomically(&artifact, &dest)?;
    println!("{}", dest.display());
    Ok(ExitCode::SUCCESS)
}

/// Build with cargo and find the component among cargo's artifacts.
fn build_rust(manifest: &Path) -> Result<PathBuf> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(manifest)
        .stderr(Stdio::inherit())
        .output()
        .context("failed to run cargo (is Rust installed? https://rustup.rs)")?;
    if !output.status.success() {
        bail!("cargo build failed (is the target installed? `rustup target add wasm32-wasip2`)");
    }
    let mut wasm = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let is_cdylib = msg["target"]["crate_types"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        if !is_cdylib
            || !msg["manifest_path"]
                .as_str()
                .is_some_and(|p| same_file(Path::new(p), manifest))
        {
            continue;
        }
        for f in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = f.as_str().filter(|f| f.ends_with(".wasm")) {
                wasm.push(PathBuf::from(f));
            }
        }
    }
    wasm.pop().ok_or_else(|| {
        anyhow!(
            "cargo built no .wasm component for {}; is it a cdylib crate?",
            manifest.display()
        )
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Build a Python or JavaScript project into `<dir>/build/<name>.wasm`.
fn build_guest(dir: &Path, manifest: &Manifest, kind: Kind) -> Result<PathBuf> {
    // The tools run in the project folder, so every path handed to them is absolute.
    let dir = &std::path::absolute(dir)
        .with_context(|| format!("failed to resolve {}", dir.display()))?;
    let source = dir.join(manifest.source());
    if !source.is_file() {
        bail!(
            "{}: the source file {} is missing",
            dir.join(super::project::MANIFEST).display(),
            source.display()
        );
    }
    let wit = dir.join(manifest.wit());
    if !wit.is_dir() {
        bail!(
            "{}: the WIT folder {} is missing (`impressox plugin new` copies the host's WIT \
             into ./wit)",
            dir.join(super::project::MANIFEST).display(),
            wit.display()
        );
    }
    let world = manifest.world(kind);
    let build_dir = dir.join("build");
    std::fs::create_dir_all(&build_dir)
        .with_context(|| format!("failed to create {}", build_dir.display()))?;
    let out = build_dir.join(format!("{}.wasm", manifest.name));
    // The tool writes beside the result; a failed build leaves the last good one.
    let partial = build_dir.join(format!(".{}.partial.wasm", manifest.name));
    let _ = std::fs::remove_file(&partial);
    let mut cmd = match manifest.language {
        Lang::Python => {
            let tool = toolchain::componentize_py(dir)?;
            toolchain::warn_unless_pinned(&tool, toolchain::COMPONENTIZE_PY);
            let module = Path::new(manifest.source())
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut cmd = Command::new(&tool);
            cmd.arg("-d")
                .arg(&wit)
                .args(["-w", world, "componentize", &module, "-p"])
                .arg(dir)
                .arg("-o")
                .arg(&partial);
            cmd
        }
        Lang::Js => {
            let tool = toolchain::componentize_js(dir)?;
            toolchain::warn_unless_pinned(&tool, toolchain::COMPONENTIZE_JS);
            let mut cmd = Command::new(&tool);
            cmd.arg(&source)
                .arg("--wit")
                .arg(&wit)
                .args(["--world-name", world])
                // Without these the component imports wasi:http, which pure kinds refuse
                // and tasks need a grant for; fetch() from JavaScript is not offered yet.
                .args(["-d", "http", "-d", "fetch-event"])
                .arg("-o")
                .arg(&partial);
            cmd
        }
        Lang::Rust => unreachable!("a Rust project is a cargo crate"),
    };
    cmd.current_dir(dir);
    // The tools' chatter goes to stderr: stdout carries only the built file's path.
    let stderr = std::io::stderr();
    let to_stderr = std::os::fd::AsFd::as_fd(&stderr)
        .try_clone_to_owned()
        .context("failed to duplicate stderr")?;
    cmd.stdout(Stdio::from(to_stderr)).stderr(Stdio::inherit());
    let program = cmd.get_program().to_string_lossy().into_owned();
    let status = cmd
        .status()
        .with_context(|| format!("failed to run {program}"))?;
    if !status.success() || !partial.is_file() {
        let _ = std::fs::remove_file(&partial);
        bail!(
            "{program} failed ({status}) building {}; its messages are above",
            source.display()
        );
    }
    std::fs::rename(&partial, &out)
        .with_context(|| format!("failed to move the build into {}", out.display()))?;
    Ok(out)
}
