//! Builds every bundled plugin (`plugins/*`) and every test guest (`tests/guests/*`) for
//! wasm32-wasip2 with a nested cargo, in a target directory of its own, and writes a
//! path constant per component into `$OUT_DIR/artifacts.rs` (wasmtime's test-programs
//! do the same). Nothing built here is committed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // OUT_DIR is <target>/<profile>/build/<pkg>/out: keep wasm builds beside the profile.
    let target_root = out_dir.ancestors().nth(4).unwrap().join("wasm-artifacts");

    for dir in ["plugins", "plugin-sdk", "wit", "tests/guests"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    let plugins = crate_dirs(&root.join("plugins"));
    let guests = crate_dirs(&root.join("tests/guests"));

    let mut consts = String::new();
    build(
        &root.join("Cargo.toml"),
        &plugins,
        &target_root.join("plugins"),
        &mut consts,
        "",
    );
    build(
        &root.join("tests/guests/Cargo.toml"),
        &guests,
        &target_root.join("guests"),
        &mut consts,
        "GUEST_",
    );
    std::fs::write(out_dir.join("artifacts.rs"), consts).unwrap();
}

/// Crate folders (with a Cargo.toml) directly under `dir`, by package name.
fn crate_dirs(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let manifest = entry.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let name = text.lines().find_map(|l| {
            l.trim()
                .strip_prefix("name = ")
                .map(|v| v.trim_matches('"').to_string())
        });
        if let Some(name) = name {
            names.push(name);
        }
    }
    names.sort();
    names
}

fn build(
    manifest: &Path,
    packages: &[String],
    target_dir: &Path,
    consts: &mut String,
    prefix: &str,
) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--profile=wasm-release")
        .arg("--target=wasm32-wasip2")
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);
    for p in packages {
        cmd.arg("-p").arg(p);
    }
    // The outer build's flags are for the host target, not for wasm.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("failed to run cargo for the wasm artifacts");
    assert!(
        status.success(),
        "building wasm components failed; is the target installed? `rustup target add wasm32-wasip2`"
    );
    for p in packages {
        let file = p.replace('-', "_");
        let path = target_dir
            .join("wasm32-wasip2/wasm-release")
            .join(format!("{file}.wasm"));
        assert!(path.exists(), "expected {} after the build", path.display());
        let const_name = format!("{prefix}{}", file.to_uppercase());
        consts.push_str(&format!(
            "/// `{p}` built for wasm32-wasip2.\npub const {const_name}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
}
