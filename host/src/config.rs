//! Configuration: one struct per section, every field documented, unknown keys refused.
//!
//! Layers, lowest first: built-in defaults (the `Default` impls below) < the `--config`
//! file < environment variables `IMPRESSOX__SECTION__KEY=value` (a `.env` file in the
//! working directory is read into the environment first). An unknown key in the file is
//! an error naming the key and the file; an unknown key in the environment names the
//! variable. Relative paths resolve against the config file's folder.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Prefix of environment overrides: `IMPRESSOX__API__LISTEN` sets `[api] listen`.
pub const ENV_PREFIX: &str = "IMPRESSOX__";

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the host keeps its state (embedded stores, compiled-code cache).
    pub data_dir: PathBuf,
    /// The admin HTTP API.
    pub api: ApiConfig,
    /// The plugin runtime.
    pub plugins: PluginsConfig,
    /// Key-value, streams, rules and prices.
    pub storage: StorageConfig,
    /// Tweets, profiles, delivery logs.
    pub documents: DocumentsConfig,
    /// Which workers this process runs.
    pub workers: WorkersConfig,
    /// The market monitor: sources, seeded rules, tuning.
    pub market: crate::market::config::MarketConfig,
    /// The notify worker: intake, delivery, formatters, channels.
    pub notify: crate::notify::config::NotifyConfig,
    /// The x-scraper worker: X's URLs, accounts and proxies files, browser, limits.
    pub scraper: crate::scraper::config::ScraperConfig,
    /// Caps and per-call budgets of the capabilities lent to plugins (`kv`, `docs`, ...).
    pub capabilities: crate::capabilities::settings::CapabilitiesConfig,
    /// The events worker as a whole.
    pub events: crate::events::config::EventsConfig,
    /// `[[listeners]]`: streams the events worker consumes, each with its handler.
    pub listeners: Vec<crate::events::config::ListenerConfig>,
    /// The scheduler worker's tuning: leases, refresh, grace, history retention.
    pub scheduler: crate::scheduler::config::SchedulerConfig,
    /// `[[schedules]]`: tasks to run on a cron pattern or an interval (read-only through
    /// the API; API-made schedules live in the document store).
    pub schedules: Vec<crate::scheduler::config::ScheduleSpec>,
    /// Retrieval: the embedder whose tokenizer sizes document chunks.
    pub rag: crate::rag::RagConfig,
    /// Log output.
    pub log: LogConfig,
    /// The folder relative paths resolve against (the config file's). Not a config key.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            api: ApiConfig::default(),
            plugins: PluginsConfig::default(),
            storage: StorageConfig::default(),
            documents: DocumentsConfig::default(),
            workers: WorkersConfig::default(),
            market: Default::default(),
            notify: Default::default(),
            scraper: Default::default(),
            capabilities: Default::default(),
            events: Default::default(),
            listeners: Vec::new(),
            scheduler: Default::default(),
            schedules: Vec::new(),
            rag: Default::default(),
            log: LogConfig::default(),
            base_dir: PathBuf::from("."),
        }
    }
}

/// `[api]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to serve on. Without `IMPRESSOX_API_TOKEN` only loopback addresses are allowed.
    pub listen: SocketAddr,
    /// Serve the API at all.
    pub enabled: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            enabled: true,
        }
    }
}

/// `[plugins]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// The watched plugin directory.
    pub dir: PathBuf,
    /// Wall-clock deadline of one plugin call, in milliseconds.
    pub call_timeout_ms: u64,
    /// Linear-memory cap of one plugin instance, in MiB.
    pub memory_limit_mib: u64,
    /// Cap on the size of what one call may return, in bytes (strings and lists summed).
    pub max_output_bytes: u64,
    /// Cap on the size of a `.wasm` file, in MiB.
    pub max_file_mib: u64,
    /// Consecutive failed calls (traps, timeouts, limits) that quarantine a plugin.
    pub quarantine_after: u32,
    /// Quiet time after the last change to a file before it is loaded, in milliseconds.
    pub debounce_ms: u64,
    /// Keep compiled code on disk under `data_dir/cache/compiled`.
    pub compile_cache: bool,
    /// Idle instances kept per plugin for reuse, at most.
    pub idle_instances: usize,
    /// Linear memory the idle instances of one plugin may hold together, in MiB: a large
    /// guest (CPython, SpiderMonkey: tens of MiB each) keeps fewer than `idle_instances`.
    /// One idle instance is always kept (when `idle_instances` > 0).
    pub idle_memory_mib: u64,
    /// Recycle an instance after this many calls (guest memory only grows).
    pub recycle_after_calls: u64,
    /// Capabilities granted per plugin name.
    pub grants: BTreeMap<String, Grants>,
    /// Free-form settings per plugin name, readable through the `config` interface.
    pub settings: BTreeMap<String, toml::Table>,
    /// Outbound HTTP of tasks and event handlers (`wasi:http`): timeouts and limits.
    pub http: crate::capabilities::http::config::HttpConfig,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: PathBuf::from("plugins.d"),
            call_timeout_ms: 1_000,
            memory_limit_mib: 64,
            max_output_bytes: 16 * 1024 * 1024,
            max_file_mib: 64,
            quarantine_after: 5,
            debounce_ms: 50,
            compile_cache: true,
            idle_instances: 8,
            idle_memory_mib: 32,
            recycle_after_calls: 100_000,
            grants: BTreeMap::new(),
            settings: BTreeMap::new(),
            http: Default::default(),
        }
    }
}

/// `[plugins.grants.<name>]`: what an operator lets one plugin reach.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Grants {
    /// The `kv` interface (keys namespaced per plugin).
    pub kv: bool,
    /// Document collections the `docs` interface may touch.
    pub docs: Vec<String>,
    /// Hosts outbound HTTP may reach: `[scheme://]host[:port]`, `https` and its default
    /// port unless written out, `*.example.com` for subdomains, `:*` for any port
    /// (`capabilities::http::allow`).
    pub http: Vec<String>,
    /// The `notify` interface.
    pub notify: bool,
    /// The `prices` interface.
    pub prices: bool,
    /// RAG collections the `rag` interface may query and write (its documents are stored
    /// as `plugin:<name>/<id>`; the rag worker must run in the same process).
    pub rag: Vec<String>,
    /// Environment variables exposed as named secrets through `config.secret`.
    pub secrets: BTreeMap<String, String>,
    /// Pin the plugin to these builds (hex SHA-256 of the `.wasm`): only a listed build
    /// may load under this name, and so receive these grants and the plugin's settings.
    /// Empty: any build in a file named after the plugin.
    pub sha256: Vec<String>,
}

/// `[storage]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `embedded` or `redis`.
    pub backend: StorageBackend,
    /// Used when `backend = "redis"`.
    pub redis_url: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::Embedded,
            redis_url: "redis://127.0.0.1:6379".into(),
        }
    }
}

/// Key-value backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// On-disk embedded database under `data_dir`.
    Embedded,
    /// Redis 7.
    Redis,
}

/// `[documents]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocumentsConfig {
    /// `embedded` or `mongodb`.
    pub backend: DocumentsBackend,
    /// Used when `backend = "mongodb"`.
    pub mongodb_url: String,
    /// Database name.
    pub database: String,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        DocumentsConfig {
            backend: DocumentsBackend::Embedded,
            mongodb_url: "mongodb://127.0.0.1:27017".into(),
            database: "impressox".into(),
        }
    }
}

/// Document-store backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentsBackend {
    /// On-disk embedded store under `data_dir`.
    Embedded,
    /// MongoDB.
    Mongodb,
}

/// `[workers]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// Workers this process runs; `[]` runs only the plugin runtime and the API.
    pub enabled: Vec<String>,
}

impl WorkersConfig {
    /// Whether this process runs the worker `name`.
    pub fn runs(&self, name: &str) -> bool {
        self.enabled.iter().any(|w| w == name)
    }
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`; `--log-format` overrides it.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `impressox_host=debug`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people.
    Human,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Load the layered configuration: defaults, then `file` (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        // A missing .env is normal; a malformed one is worth knowing about.
        if let Err(err) = dotenvy::dotenv()
            && !err.not_found()
        {
            bail!("failed to read .env: {err}");
        }
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(file, &env)
    }

    /// [`Config::load`] with an explicit environment, for tests.
    pub fn load_with_env(file: Option<&Path>, env: &[(String, String)]) -> Result<Config> {
        let (mut table, origin, base_dir) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("failed to read config file {}", path.display()))?;
                let table: toml::Table = toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let base = path
                    .parent()
                    .map(|p| {
                        if p.as_os_str().is_empty() {
                            Path::new(".")
                        } else {
                            p
                        }
                    })
                    .unwrap_or(Path::new("."))
                    .to_path_buf();
                (table, path.display().to_string(), base)
            }
            None => (
                toml::Table::new(),
                "built-in defaults".to_string(),
                PathBuf::from("."),
            ),
        };
        // Check the file alone first, so its errors name the file, not the environment.
        Config::deserialize(toml::Value::Table(table.clone()))
            .map_err(|e| anyhow::anyhow!("{origin}: {}", describe_toml_error(&e.to_string())))?;
        let mut overridden = Vec::new();
        for (name, value) in env {
            let Some(path) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
            if keys.iter().any(|k| k.is_empty()) {
                bail!("environment variable {name}: empty key segment");
            }
            set_path(&mut table, &keys, parse_env_value(value));
            overridden.push(name.clone());
        }
        let mut config = Config::deserialize(toml::Value::Table(table)).map_err(|e| {
            anyhow::anyhow!(
                "{origin} with environment overrides ({}): {}",
                overridden.join(", "),
                describe_toml_error(&e.to_string())
            )
        })?;
        config.base_dir = base_dir;
        crate::events::config::validate(&mut config.listeners, config.plugins.call_timeout_ms)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let p = &self.plugins;
        if p.call_timeout_ms == 0 {
            bail!("[plugins] call_timeout_ms must be at least 1");
        }
        if p.memory_limit_mib == 0 || p.memory_limit_mib > 4096 {
            bail!("[plugins] memory_limit_mib must be between 1 and 4096");
        }
        if p.quarantine_after == 0 {
            bail!("[plugins] quarantine_after must be at least 1");
        }
        p.http.validate()?;
        // A grant that does not parse is refused at start-up, not at the plugin's load.
        for (name, grant) in &p.grants {
            if let Err(why) = crate::capabilities::http::allow::AllowList::parse(&grant.http) {
                bail!("[plugins.grants.{name}] http: {why}");
            }
        }
        for worker in &self.workers.enabled {
            if !crate::workers::KNOWN.contains(&worker.as_str()) {
                bail!(
                    "[workers] enabled: unknown worker `{worker}` (known: {})",
                    crate::workers::KNOWN.join(", ")
                );
            }
        }
        self.market.validate()?;
        if self.market.partitions.is_some() && self.storage.backend == StorageBackend::Embedded {
            bail!(
                "[market] partitions is set, but the embedded store serves one host: several \
                 hosts sharing the market rules need `[storage] backend = \"redis\"` (remove \
                 `partitions` to run one host on the embedded store)"
            );
        }
        self.notify.validate()?;
        self.scraper
            .validate(&self.workers.enabled, &self.base_dir)?;
        self.scheduler.validate()?;
        self.rag.validate()?;
        crate::scheduler::config::validate_schedules(&self.schedules)?;
        Ok(())
    }

    /// Resolve a configured path against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// The folder whose `tokenizer.json` counts doc-chunkers' tokens: the embedder's own
    /// (`[rag.embedder] tokenizer_dir`, else its model folder), resolved.
    pub fn tokenizer_dir(&self) -> PathBuf {
        self.rag.embedder.tokenizer_dir(&self.base_dir)
    }

    /// The data directory, resolved.
    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.data_dir)
    }

    /// The plugin directory, resolved.
    pub fn plugin_dir(&self) -> PathBuf {
        self.resolve(&self.plugins.dir)
    }

    /// `[scraper] accounts_file`, resolved.
    pub fn scraper_accounts_file(&self) -> PathBuf {
        self.scraper.accounts_path(&self.base_dir)
    }

    /// `[scraper] proxies_file`, resolved; `None` when not set.
    pub fn scraper_proxies_file(&self) -> Option<PathBuf> {
        self.scraper.proxies_path(&self.base_dir)
    }

    /// `[scraper] user_list`, resolved; `None` when not set.
    pub fn scraper_user_list(&self) -> Option<PathBuf> {
        self.scraper.user_list_path(&self.base_dir)
    }
}

/// toml's messages already name the key (`unknown field `x`, expected one of ...`); make
/// them read as config errors rather than serde jargon.
fn describe_toml_error(message: &str) -> String {
    message
        .replace("unknown field", "unknown key")
        .trim()
        .to_string()
}

/// An environment value is a TOML literal when it parses as one (numbers, booleans,
/// arrays), otherwise a string, so `IMPRESSOX__API__LISTEN=127.0.0.1:9000` needs no quotes.
fn parse_env_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) {
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut current = table;
    for key in parents {
        let entry = current
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        current = next;
    }
    current.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn unknown_key_in_file_names_key_and_file() {
        let f = write("[api]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n");
        let err = Config::load_with_env(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("listne"), "{err}");
        assert!(err.contains(&f.path().display().to_string()), "{err}");
    }

    #[test]
    fn unknown_section_is_refused() {
        let f = write("[nope]\nx = 1\n");
        let err = Config::load_with_env(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn env_overrides_file_and_parses_unquoted_values() {
        let f = write("[api]\nlisten = \"127.0.0.1:1\"\n[plugins]\ncall_timeout_ms = 5\n");
        let env = vec![
            (
                "IMPRESSOX__API__LISTEN".to_string(),
                "127.0.0.1:9000".to_string(),
            ),
            (
                "IMPRESSOX__PLUGINS__CALL_TIMEOUT_MS".to_string(),
                "250".to_string(),
            ),
            ("IMPRESSOX_API_TOKEN".to_string(), "not-config".to_string()),
        ];
        let c = Config::load_with_env(Some(f.path()), &env).unwrap();
        assert_eq!(c.api.listen.port(), 9000);
        assert_eq!(c.plugins.call_timeout_ms, 250);
    }

    #[test]
    fn unknown_env_key_names_the_variable() {
        let env = vec![("IMPRESSOX__API__LISTNE".to_string(), "x".to_string())];
        let err = Config::load_with_env(None, &env).unwrap_err().to_string();
        assert!(err.contains("IMPRESSOX__API__LISTNE"), "{err}");
        assert!(err.contains("listne"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "data_dir = \"d\"\n[plugins]\ndir = \"p\"\n").unwrap();
        let c = Config::load_with_env(Some(&path), &[]).unwrap();
        assert_eq!(c.data_dir(), dir.path().join("d"));
        assert_eq!(c.plugin_dir(), dir.path().join("p"));
    }

    #[test]
    fn scraper_files_resolve_against_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[scraper]\naccounts_file = \"a.txt\"\nproxies_file = \"/etc/p.txt\"\nuser_list = \"u.txt\"\n",
        )
        .unwrap();
        let c = Config::load_with_env(Some(&path), &[]).unwrap();
        assert_eq!(c.scraper_accounts_file(), dir.path().join("a.txt"));
        assert_eq!(c.scraper_proxies_file(), Some(PathBuf::from("/etc/p.txt")));
        assert_eq!(c.scraper_user_list(), Some(dir.path().join("u.txt")));
    }

    #[test]
    fn scraper_errors_name_the_key_from_file_and_environment() {
        let f = write("[scraper.browser]\npages_per_account = 3\n");
        let err = Config::load_with_env(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("[scraper.browser] pages_per_account"), "{err}");
        let env = vec![(
            "IMPRESSOX__SCRAPER__BROWSER__SANDBOX".to_string(),
            "sometimes".to_string(),
        )];
        let err = Config::load_with_env(None, &env).unwrap_err().to_string();
        assert!(
            err.contains("IMPRESSOX__SCRAPER__BROWSER__SANDBOX"),
            "{err}"
        );
    }

    #[test]
    fn unknown_worker_is_refused() {
        let f = write("[workers]\nenabled = [\"market-monitr\"]\n");
        let err = Config::load_with_env(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("market-monitr"), "{err}");
    }

    #[test]
    fn shipped_configs_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        Config::load_with_env(Some(&root.join("default.toml")), &[]).unwrap();
        Config::load_with_env(Some(&root.join("production.example.toml")), &[]).unwrap();
    }
}
