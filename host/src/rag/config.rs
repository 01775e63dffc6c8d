//! `[rag]`: retrieval settings. Only what the host reads today is a key; an unknown key is
//! refused like in every other table.
//!
//! ```toml
//! [rag.embedder]
//! model_dir = "~/.cache/impressox/models/all-MiniLM-L6-v2"   # the default
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The folder name of the default model under the cache (`cargo xtask models` fills it).
pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";

/// `[rag]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RagConfig {
    /// `[rag.embedder]`: the embedding model (its tokenizer sizes chunks).
    pub embedder: EmbedderConfig,
}

/// `[rag.embedder]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedderConfig {
    /// The model folder (sentence-transformers layout: `tokenizer.json`, `config.json`,
    /// `model.safetensors`, ...). Unset: [`default_model_dir`]. A relative path resolves
    /// against the config file's folder; a leading `~/` against `$HOME`. Never fetched:
    /// `cargo xtask models` puts the default model there once.
    pub model_dir: Option<PathBuf>,
}

impl EmbedderConfig {
    /// The model folder, resolved (`base_dir`: the config file's folder).
    pub fn model_dir(&self, base_dir: &Path) -> PathBuf {
        match &self.model_dir {
            None => default_model_dir(),
            Some(dir) => match dir.strip_prefix("~") {
                Ok(rest) => home().join(rest),
                Err(_) if dir.is_absolute() => dir.clone(),
                Err(_) => base_dir.join(dir),
            },
        }
    }
}

/// `~/.cache/impressox/models/all-MiniLM-L6-v2`: where `cargo xtask models` (and the test
/// set-up, `cargo xtask test`) unpacks the default model.
pub fn default_model_dir() -> PathBuf {
    home().join(".cache/impressox/models").join(DEFAULT_MODEL)
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_dir_resolves_relative_home_and_default() {
        let base = Path::new("/etc/impressox");
        let mut e = EmbedderConfig::default();
        assert!(
            e.model_dir(base)
                .ends_with(".cache/impressox/models/all-MiniLM-L6-v2")
        );
        e.model_dir = Some("models/m".into());
        assert_eq!(e.model_dir(base), Path::new("/etc/impressox/models/m"));
        e.model_dir = Some("/opt/m".into());
        assert_eq!(e.model_dir(base), Path::new("/opt/m"));
        e.model_dir = Some("~/m".into());
        assert_eq!(e.model_dir(base), home().join("m"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<RagConfig>("[embedder]\nmodel = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `model`"), "{err}");
    }
}
