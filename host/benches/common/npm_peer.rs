//! A Node peer of a benchmark installed from its committed lock into the user's cache
//! (`~/.cache/impressox/<cache>`), once: `npm ci` on first use, reused after. Shared by the
//! benches through `#[path]`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Copy `files` from `source` (a folder of bench/peers) into `~/.cache/impressox/<cache>`
/// and install its lock there unless `node_modules/<module>` is present. The folder, or
/// None (said on stderr) when npm is missing or the install failed.
pub fn install(source: &Path, cache: &str, files: &[&str], module: &str) -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()));
    let dir = home.join(".cache/impressox").join(cache);
    std::fs::create_dir_all(&dir).ok()?;
    for f in files {
        std::fs::copy(source.join(f), dir.join(f)).ok()?;
    }
    if !dir.join("node_modules").join(module).exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("{module} could not be installed; skipping that peer");
            return None;
        }
    }
    Some(dir)
}
