//! `impressox plugin new <kind> <name> [--lang rust|python|js]`: a project that builds as-is.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::project::{Lang, MANIFEST, parse_kind};
use super::templates;
use crate::runtime::valid_plugin_name;

pub fn new(
    kind: &str,
    name: &str,
    path: Option<PathBuf>,
    sdk: Option<PathBuf>,
    lang: Lang,
) -> Result<ExitCode> {
    let kind = parse_kind(kind)?;
    if !valid_plugin_name(name) {
        bail!("plugin name `{name}` is not valid: use 1-64 characters of a-z, 0-9, `-` and `_`");
    }
    let dir = path.unwrap_or_else(|| PathBuf::from(name));
    // Never write over an existing project.
    for existing in ["Cargo.toml", MANIFEST, "app.py", "app.js"] {
        if dir.join(existing).exists() {
            bail!(
                "{} already holds {existing}; choose another --path",
                dir.display()
            );
        }
    }
    // Only a Rust crate depends on the SDK; the others carry their WIT.
    let sdk = match lang {
        Lang::Rust => sdk_path(sdk)?,
        Lang::Python | Lang::Js => PathBuf::new(),
    };
    for (file, text) in templates::files(kind, name, lang, &sdk) {
        let path = dir.join(&file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create {}", parent.display()))?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("failed to write {}", path.display()))?;
        if file.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    let shown = dir.display();
    println!("created {kind} plugin `{name}` ({lang}) in {shown}");
    println!("next:");
    match lang {
        Lang::Rust => {}
        Lang::Python => println!(
            "  python3 -m venv {shown}/.venv && {shown}/.venv/bin/pip install -r {shown}/requirements.txt"
        ),
        Lang::Js => println!("  npm install --prefix {shown}"),
    }
    println!("  impressox plugin build {shown}");
    println!("  impressox plugin run <the built .wasm> --input {shown}/examples/input.json");
    Ok(ExitCode::SUCCESS)
}

/// The SDK crate a Rust plugin depends on: `--sdk`, or this host's source tree.
fn sdk_path(sdk: Option<PathBuf>) -> Result<PathBuf> {
    let sdk = match sdk {
        Some(p) => p,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk"),
    };
    sdk.canonicalize().with_context(|| {
        format!(
            "the plugin SDK is not at {}; pass --sdk PATH to impressox-plugin-sdk",
            sdk.display()
        )
    })
}
