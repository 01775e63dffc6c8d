//! A plugin project on disk: its language, and for Python and JavaScript the manifest
//! `plugin.toml` that `impressox plugin build` reads (a Rust project is its `Cargo.toml`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::runtime::{Kind, valid_plugin_name};

/// The manifest of a Python or JavaScript plugin project.
pub const MANIFEST: &str = "plugin.toml";

/// The languages `impressox plugin new` scaffolds and `impressox plugin build` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// A cargo crate on the SDK, built for wasm32-wasip2.
    Rust,
    /// An `app.py`, built with componentize-py.
    Python,
    /// An `app.js` (an ES module), built with componentize-js.
    #[value(alias = "javascript")]
    #[serde(alias = "javascript")]
    Js,
}

impl Lang {
    /// The source file a new project starts from.
    pub fn default_source(self) -> &'static str {
        match self {
            Lang::Rust => "src/lib.rs",
            Lang::Python => "app.py",
            Lang::Js => "app.js",
        }
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        })
    }
}

/// `plugin.toml`: what to build and against which world.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name, as its `info()` says it; the built file is `<name>.wasm`.
    pub name: String,
    /// The plugin kind (a world of `wit/worlds.wit`).
    pub kind: String,
    /// `python` or `js`.
    pub language: Lang,
    /// The source file, relative to the project; `app.py` or `app.js` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The WIT folder, relative to the project; `wit` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wit: Option<String>,
    /// The world to build against; the kind's own world by default. Task and event-handler
    /// projects name their own (`wit/world.wit`) so they import only what they use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world: Option<String>,
}

/// A project found in a folder.
#[derive(Debug)]
pub enum Project {
    Rust {
        manifest: PathBuf,
    },
    Guest {
        dir: PathBuf,
        manifest: Manifest,
        kind: Kind,
    },
}

impl Project {
    /// The project in `dir`: a `plugin.toml` (Python, JavaScript) or a `Cargo.toml` (Rust).
    pub fn find(dir: &Path) -> Result<Project> {
        let toml_path = dir.join(MANIFEST);
        if toml_path.is_file() {
            let text = std::fs::read_to_string(&toml_path)
                .with_context(|| format!("failed to read {}", toml_path.display()))?;
            let manifest: Manifest = toml::from_str(&text)
                .map_err(|e| anyhow!("{}: {}", toml_path.display(), e.message()))?;
            let kind = manifest.validate(&toml_path)?;
            return Ok(Project::Guest {
                dir: dir.to_path_buf(),
                manifest,
                kind,
            });
        }
        let cargo = dir.join("Cargo.toml");
        if cargo.is_file() {
            return Ok(Project::Rust { manifest: cargo });
        }
        bail!(
            "no plugin project in {}: expected {MANIFEST} (Python, JavaScript) or Cargo.toml \
             (Rust); `impressox plugin new <kind> <name> --lang python|js|rust` makes one",
            dir.display()
        )
    }
}

impl Manifest {
    /// Check the fields a build relies on; returns the kind.
    fn validate(&self, path: &Path) -> Result<Kind> {
        let at = path.display();
        if !valid_plugin_name(&self.name) {
            bail!(
                "{at}: name `{}` is not valid: use 1-64 characters of a-z, 0-9, `-` and `_`",
                self.name
            );
        }
        let kind = parse_kind(&self.kind).map_err(|e| anyhow!("{at}: kind: {e}"))?;
        if self.language == Lang::Rust {
            bail!("{at}: a Rust plugin is a cargo crate (Cargo.toml), not a {MANIFEST} project");
        }
        Ok(kind)
    }

    /// The source file.
    pub fn source(&self) -> &str {
        self.source
            .as_deref()
            .unwrap_or(self.language.default_source())
    }

    /// The WIT folder, relative to the project.
    pub fn wit(&self) -> &str {
        self.wit.as_deref().unwrap_or("wit")
    }

    /// The world to build against.
    pub fn world(&self, kind: Kind) -> &str {
        self.world.as_deref().unwrap_or(kind.world())
    }
}

/// A kind by its world name, or an error listing them.
pub fn parse_kind(name: &str) -> Result<Kind> {
    Kind::from_world(name).ok_or_else(|| {
        anyhow!(
            "unknown plugin kind `{name}`; one of: {}",
            Kind::ALL
                .iter()
                .map(|k| k.world())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_names_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| std::fs::write(dir.path().join(MANIFEST), text).unwrap();
        write("name = \"rsi\"\nkind = \"rule-processor\"\nlanguage = \"python\"\n");
        match Project::find(dir.path()).unwrap() {
            Project::Guest { manifest, kind, .. } => {
                assert_eq!(kind, Kind::RuleProcessor);
                assert_eq!(manifest.source(), "app.py");
                assert_eq!(manifest.world(kind), "rule-processor");
            }
            other => panic!("{other:?}"),
        }
        write("name = \"Bad Name\"\nkind = \"task\"\nlanguage = \"js\"\n");
        let err = Project::find(dir.path()).unwrap_err().to_string();
        assert!(err.contains("name `Bad Name`"), "{err}");
        write("name = \"x\"\nkind = \"parser\"\nlanguage = \"js\"\n");
        let err = Project::find(dir.path()).unwrap_err().to_string();
        assert!(err.contains("unknown plugin kind `parser`"), "{err}");
        write("name = \"x\"\nkind = \"task\"\nlanguage = \"cobol\"\n");
        let err = Project::find(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("plugin.toml") && err.contains("cobol"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join(MANIFEST)).unwrap();
        let err = Project::find(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no plugin project"), "{err}");
    }
}
