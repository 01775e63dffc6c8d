//! `[rag]`: retrieval settings (SPEC §10.3). Unknown keys are refused as in every table;
//! [`RagConfig::validate`] names the key of any value that cannot work.
//!
//! ```toml
//! [rag]
//! max_tokens = 254          # chunk size in the embedder's tokens (the local model reads 256)
//! overlap_tokens = 32
//! [rag.embedder]
//! kind = "local"            # "static" | "openai"
//! model_dir = "~/.cache/impressox/models/all-MiniLM-L6-v2"   # local/static: the model folder
//! [rag.store]
//! kind = "embedded"         # or "chroma" with url, tenant, database, token_env
//! [[rag.sources]]
//! name = "docs"
//! kind = "files"            # "urls" | "documents"
//! path = "docs"
//! collection = "docs"
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::util::parse_duration_ms;

/// The folder name of the default model under the cache (`cargo xtask models` fills it).
pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";

/// `[rag]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RagConfig {
    /// `[rag.embedder]`: the embedding model (its tokenizer sizes chunks).
    pub embedder: EmbedderConfig,
    /// `[rag.store]`: where chunks and vectors live.
    pub store: StoreConfig,
    /// `[[rag.sources]]`: what is ingested, into which collection.
    pub sources: Vec<SourceConfig>,
    /// A chunk's largest size in the embedder's tokens (the local model reads 256, two of
    /// them its own `[CLS]` and `[SEP]`).
    pub max_tokens: u32,
    /// Tokens repeated between neighbouring chunks of one section.
    pub overlap_tokens: u32,
    /// Texts embedded per call (the local model's batch).
    pub embed_batch: usize,
}

impl Default for RagConfig {
    fn default() -> Self {
        RagConfig {
            embedder: EmbedderConfig::default(),
            store: StoreConfig::default(),
            sources: Vec::new(),
            max_tokens: 254,
            overlap_tokens: 32,
            embed_batch: 32,
        }
    }
}

impl RagConfig {
    /// Refuse values that cannot work, naming the key.
    pub fn validate(&self) -> Result<()> {
        if self.max_tokens < 16 || self.max_tokens > 8192 {
            bail!("[rag] max_tokens must be between 16 and 8192");
        }
        if self.overlap_tokens >= self.max_tokens / 2 {
            bail!("[rag] overlap_tokens must be under half of max_tokens");
        }
        if self.embed_batch == 0 || self.embed_batch > 1024 {
            bail!("[rag] embed_batch must be between 1 and 1024");
        }
        self.embedder.validate()?;
        self.store.validate()?;
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            s.validate(i)?;
            if !names.insert(s.name.as_str()) {
                bail!(
                    "[[rag.sources]] #{}: name `{}` is used twice",
                    i + 1,
                    s.name
                );
            }
        }
        Ok(())
    }

    /// The source called `name`.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// Which embedder turns chunks into vectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderKind {
    /// all-MiniLM-L6-v2 on candle, from `model_dir`.
    #[default]
    Local,
    /// A Model2Vec static model from `model_dir`.
    Static,
    /// An OpenAI-compatible `/v1/embeddings` endpoint.
    Openai,
}

/// `[rag.embedder]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedderConfig {
    pub kind: EmbedderKind,
    /// The model folder (sentence-transformers layout: `tokenizer.json`, `config.json`,
    /// `model.safetensors`, ...). Unset: [`default_model_dir`]. A relative path resolves
    /// against the config file's folder; a leading `~/` against `$HOME`. Never fetched:
    /// `cargo xtask models` puts the default model there once.
    pub model_dir: Option<PathBuf>,
    /// `openai`: the server's base URL (`https://api.openai.com`, `http://localhost:11434`).
    pub url: Option<String>,
    /// `openai`: the model name the endpoint serves.
    pub model: Option<String>,
    /// `openai`: the environment variable holding the API key (never the key itself).
    pub api_key_env: Option<String>,
    /// `openai`: the vector length, when known ahead (checked on every answer).
    pub dimension: Option<usize>,
    /// `openai`: texts per request.
    pub batch_size: usize,
    /// The folder whose `tokenizer.json` counts chunk sizes. Unset: the embedder's own
    /// model folder (`local`, `static`), or for `openai` the `local` model's (all-MiniLM-L6-v2
    /// WordPiece, an approximation: point this at the served model's tokenizer folder for
    /// exact sizes).
    pub tokenizer_dir: Option<PathBuf>,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        EmbedderConfig {
            kind: EmbedderKind::Local,
            model_dir: None,
            url: None,
            model: None,
            api_key_env: None,
            dimension: None,
            batch_size: 64,
            tokenizer_dir: None,
        }
    }
}

/// Which vector store keeps the chunks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// On disk under `data_dir/rag`.
    #[default]
    Embedded,
    /// A ChromaDB server (v2 HTTP API).
    Chroma,
}

/// `[rag.store]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// `chroma`: the server's URL.
    pub url: Option<String>,
    pub tenant: String,
    pub database: String,
    /// `chroma`: the environment variable holding the server's token.
    pub token_env: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Embedded,
            url: None,
            tenant: "default_tenant".into(),
            database: "default_database".into(),
            token_env: None,
        }
    }
}

impl StoreConfig {
    fn validate(&self) -> Result<()> {
        if self.kind == StoreKind::Chroma {
            match self.url.as_deref() {
                None | Some("") => bail!("[rag.store] kind = \"chroma\" needs `url`"),
                Some(u) if reqwest::Url::parse(u).is_err() => {
                    bail!("[rag.store] url: `{u}` is not a URL")
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Where a source's documents come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A folder of Markdown, text, HTML and JSON files, watched.
    Files,
    /// Web pages fetched on an interval.
    Urls,
    /// A document-store collection (the scraper's `tweets`), followed by a cursor.
    Documents,
}

/// `[[rag.sources]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique; stored on every chunk (`source`) and accepted by filters.
    pub name: String,
    pub kind: SourceKind,
    /// The RAG collection it feeds.
    pub collection: String,
    /// `files`: the folder (relative to the config file's folder).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `urls`: the pages.
    #[serde(default)]
    pub urls: Vec<String>,
    /// `documents`: the document-store collection followed (`tweets`).
    #[serde(default)]
    pub from: Option<String>,
    /// `documents`: the field the cursor follows; it must grow when a record is stored or
    /// updated (the scraper's `last_seen_ms`).
    #[serde(default)]
    pub cursor_field: Option<String>,
    /// How often the source is looked at again: a folder is rescanned, pages refetched, the
    /// collection polled (`"2s"`, `"15m"`). Defaults: files 2s, urls 15m, documents 2s.
    #[serde(default)]
    pub interval: Option<String>,
    /// The doc-chunker plugin (default: `tweet-chunker` for documents, else
    /// `markdown-chunker`).
    #[serde(default)]
    pub chunker: Option<String>,
    /// `urls`: fetch private and loopback addresses too (tests, intranets); off, the SSRF
    /// guard refuses them as for webhooks.
    #[serde(default)]
    pub allow_private_addresses: bool,
    /// `urls`: load each page in headless Chromium (the browser pool, `[scraper.browser]`
    /// settings) and index the rendered DOM, for pages whose text JavaScript writes. The
    /// SSRF guard checks the page's host first and, unless `allow_private_addresses`,
    /// every request the page makes.
    #[serde(default)]
    pub render: bool,
}

impl SourceConfig {
    fn validate(&self, i: usize) -> Result<()> {
        let at = format!("[[rag.sources]] #{} (`{}`)", i + 1, self.name);
        if self.name.is_empty() || self.name.contains(['#', '/']) {
            bail!("{at}: name must be non-empty without `#` or `/`");
        }
        // Plugins' documents are stored under `plugin:<name>/` (the `rag` capability): a
        // source of that name could list them as its own and remove them.
        if self.name.starts_with("plugin:") {
            bail!("{at}: names starting with `plugin:` are kept for plugins' documents");
        }
        if self.collection.is_empty() {
            bail!("{at}: collection must not be empty");
        }
        if let Some(text) = &self.interval {
            match parse_duration_ms(text) {
                Some(ms) if ms >= 100 => {}
                _ => bail!("{at}: interval `{text}` is not a duration of at least 100ms"),
            }
        }
        if self.render && self.kind != SourceKind::Urls {
            bail!("{at}: render = true applies only to kind = \"urls\"");
        }
        match self.kind {
            SourceKind::Files => {
                if self.path.is_none() {
                    bail!("{at}: kind = \"files\" needs `path`");
                }
            }
            SourceKind::Urls => {
                if self.urls.is_empty() {
                    bail!("{at}: kind = \"urls\" needs `urls`");
                }
                for u in &self.urls {
                    match reqwest::Url::parse(u) {
                        Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                        _ => bail!("{at}: urls: `{u}` is not an http(s) URL"),
                    }
                }
            }
            SourceKind::Documents => {
                if self.from.as_deref().is_none_or(str::is_empty) {
                    bail!("{at}: kind = \"documents\" needs `from` (the document collection)");
                }
            }
        }
        Ok(())
    }

    /// How often the source is looked at again.
    pub fn interval_ms(&self) -> i64 {
        self.interval
            .as_deref()
            .and_then(parse_duration_ms)
            .unwrap_or(match self.kind {
                SourceKind::Files | SourceKind::Documents => 2_000,
                SourceKind::Urls => 15 * 60_000,
            })
    }

    /// The doc-chunker plugin's name.
    pub fn chunker(&self) -> &str {
        self.chunker.as_deref().unwrap_or(match self.kind {
            SourceKind::Documents => "tweet-chunker",
            _ => "markdown-chunker",
        })
    }

    /// `documents`: the cursor field.
    pub fn cursor_field(&self) -> &str {
        self.cursor_field.as_deref().unwrap_or("last_seen_ms")
    }
}

impl EmbedderConfig {
    fn validate(&self) -> Result<()> {
        if self.kind == EmbedderKind::Openai {
            match self.url.as_deref() {
                None | Some("") => bail!("[rag.embedder] kind = \"openai\" needs `url`"),
                Some(u) if reqwest::Url::parse(u).is_err() => {
                    bail!("[rag.embedder] url: `{u}` is not a URL")
                }
                _ => {}
            }
            if self.model.as_deref().is_none_or(str::is_empty) {
                bail!("[rag.embedder] kind = \"openai\" needs `model`");
            }
        }
        if self.batch_size == 0 || self.batch_size > 2048 {
            bail!("[rag.embedder] batch_size must be between 1 and 2048");
        }
        Ok(())
    }

    /// The model folder, resolved (`base_dir`: the config file's folder).
    pub fn model_dir(&self, base_dir: &Path) -> PathBuf {
        match &self.model_dir {
            None => default_model_dir(),
            Some(dir) => resolve(dir, base_dir),
        }
    }

    /// The folder the embedder reads its model from: `model_dir`, whose default depends on
    /// the kind (`static`: the Model2Vec test model that `cargo xtask models` unpacks).
    pub fn embedder_dir(&self, base_dir: &Path) -> PathBuf {
        match (self.kind, &self.model_dir) {
            (EmbedderKind::Static, None) => {
                impressox_rag::embed::static_model::default_static_model_dir()
            }
            _ => self.model_dir(base_dir),
        }
    }

    /// The folder whose tokenizer counts chunk sizes, so a chunk's `max_tokens` are the
    /// embedder's own tokens: `tokenizer_dir` if set, else the embedder's model folder
    /// (for `openai`, which has none here, `model_dir`: the local model by default).
    pub fn tokenizer_dir(&self, base_dir: &Path) -> PathBuf {
        match &self.tokenizer_dir {
            Some(dir) => resolve(dir, base_dir),
            None => self.embedder_dir(base_dir),
        }
    }
}

/// A configured path: `~/` against `$HOME`, relative against the config file's folder.
fn resolve(dir: &Path, base_dir: &Path) -> PathBuf {
    match dir.strip_prefix("~") {
        Ok(rest) => home().join(rest),
        Err(_) if dir.is_absolute() => dir.to_path_buf(),
        Err(_) => base_dir.join(dir),
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
    fn chunk_sizes_count_in_the_embedders_own_tokens() {
        let base = Path::new("/etc/impressox");
        let mut e = EmbedderConfig::default();
        assert_eq!(e.tokenizer_dir(base), default_model_dir());
        e.kind = EmbedderKind::Static;
        assert_eq!(
            e.tokenizer_dir(base),
            impressox_rag::embed::static_model::default_static_model_dir()
        );
        e.model_dir = Some("m2v".into());
        assert_eq!(e.tokenizer_dir(base), Path::new("/etc/impressox/m2v"));
        e.kind = EmbedderKind::Openai;
        e.model_dir = None;
        assert_eq!(e.tokenizer_dir(base), default_model_dir());
        e.tokenizer_dir = Some("/opt/nomic".into());
        assert_eq!(e.tokenizer_dir(base), Path::new("/opt/nomic"));
    }

    #[test]
    fn render_is_refused_on_sources_that_are_not_urls() {
        let text = "[[sources]]\nname = \"d\"\nkind = \"files\"\ncollection = \"c\"\npath = \"p\"\nrender = true\n";
        let cfg: RagConfig = toml::from_str(text).unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("render") && err.contains("`d`"), "{err}");
        let text = "[[sources]]\nname = \"w\"\nkind = \"urls\"\ncollection = \"c\"\nurls = [\"https://example.com/\"]\nrender = true\n";
        let cfg: RagConfig = toml::from_str(text).unwrap();
        cfg.validate().unwrap();
        assert!(cfg.sources[0].render);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<RagConfig>("[embedder]\nmodle = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `modle`"), "{err}");
    }
}
