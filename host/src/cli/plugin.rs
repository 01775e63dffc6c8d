//! `impressox plugin new|build|check|run` and `impressox plugins`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;

use crate::config::Config;
use crate::runtime::Runtime;

mod build;
mod new;
mod project;
mod templates;
mod toolchain;

use project::Lang;

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Scaffold a plugin project that builds as-is: a Rust crate, or a Python or
    /// JavaScript project with the host's WIT and a pinned toolchain.
    New {
        /// feed-parser, rule-processor, scrape-parser, notify-formatter, task, event-handler
        /// or doc-chunker.
        kind: String,
        /// The plugin's name (a-z, 0-9, `-`, `_`).
        name: String,
        /// Where to create it; defaults to ./<name>.
        #[arg(long)]
        path: Option<PathBuf>,
        /// The impressox-plugin-sdk crate a Rust plugin depends on; defaults to this
        /// host's source tree.
        #[arg(long, env = "IMPRESSOX_SDK_PATH")]
        sdk: Option<PathBuf>,
        /// The language: rust (cargo), python (componentize-py) or js (componentize-js).
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
    },
    /// Build a plugin project (Rust for wasm32-wasip2, Python with componentize-py,
    /// JavaScript with componentize-js) and copy the .wasm into `[plugins] dir`.
    Build {
        /// The project folder; defaults to the current directory.
        dir: Option<PathBuf>,
        /// Copy into this folder instead of `[plugins] dir`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print what a component is and whether this host would load it.
    Check {
        /// The .wasm file.
        file: PathBuf,
    },
    /// Call a plugin once on a JSON input and print its output as JSON.
    Run {
        /// The .wasm file.
        file: PathBuf,
        /// JSON input file; `-` reads stdin. Shapes per kind: README "plugin run".
        #[arg(long)]
        input: String,
    },
}

/// `config_given`: whether `--config` named a file. Without one, `check` and `run` work in
/// a temporary data dir (see [`Scratch`]) instead of writing into the current folder.
pub fn dispatch(config: &Config, cmd: PluginCommand, config_given: bool) -> Result<ExitCode> {
    match cmd {
        PluginCommand::New {
            kind,
            name,
            path,
            sdk,
            lang,
        } => new::new(&kind, &name, path, sdk, lang),
        PluginCommand::Build { dir, out } => build::build(config, dir, out),
        PluginCommand::Check { file } => check(&Scratch::new(config, config_given)?.config, &file),
        PluginCommand::Run { file, input } => {
            run_once(&Scratch::new(config, config_given)?.config, &file, &input)
        }
    }
}

/// Copy beside the destination under a hidden name and rename, so a watching host never
/// loads half a file.
pub fn copy_atomically(from: &Path, to: &Path) -> Result<()> {
    let dir = to
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent folder", to.display()))?;
    let name = to
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", to.display()))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::copy(from, &tmp).with_context(|| format!("failed to copy {}", from.display()))?;
    std::fs::rename(&tmp, to).with_context(|| format!("failed to move into {}", to.display()))?;
    Ok(())
}

/// The config a one-off command runs with. With `--config`, that config: its `data_dir`
/// (compiled-code cache, key) is the operator's. Without, a one-off check must not leave a
/// 30 MB compiled cache and a `plugins.d` in whatever folder it ran in, so `data_dir` and the
/// plugin dir move to a temporary folder, removed when this drops.
struct Scratch {
    config: Config,
    _dir: Option<tempfile::TempDir>,
}

impl Scratch {
    fn new(config: &Config, config_given: bool) -> Result<Scratch> {
        let mut config = config.clone();
        if config_given {
            return Ok(Scratch { config, _dir: None });
        }
        let dir = tempfile::Builder::new()
            .prefix("impressox-plugin-")
            .tempdir()
            .context("failed to create a temporary data dir")?;
        config.data_dir = dir.path().join("data");
        config.plugins.dir = dir.path().join("plugins.d");
        Ok(Scratch {
            config,
            _dir: Some(dir),
        })
    }
}

fn check(config: &Config, file: &Path) -> Result<ExitCode> {
    // The loader's own reading rules and cap, so "loadable: yes" means the loader agrees.
    let max = config.plugins.max_file_mib * 1024 * 1024;
    let bytes = crate::runtime::file::read_plugin_file(file, None, max)
        .map_err(|reason| anyhow!("{}: {reason}", file.display()))?;
    let runtime = Runtime::new(config)?;
    let peak = PeakMemory::start();
    let started = std::time::Instant::now();
    let checked = runtime.check(&bytes, file);
    let took = started.elapsed();
    let peak_mib = peak.mib();
    match checked {
        Ok(c) => {
            println!("name:        {}", c.name);
            println!("version:     {}", c.version);
            println!("kind:        {}", c.kind);
            println!("wit version: {}", c.wit_version);
            println!("sha256:      {}", c.sha256);
            println!(
                "size:        {:.1} MiB",
                bytes.len() as f64 / (1024.0 * 1024.0)
            );
            let how = match c.origin {
                crate::runtime::cache::Origin::Compiled => "compiled",
                crate::runtime::cache::Origin::Cache => "from the compiled-code cache",
            };
            println!(
                "compile:     {:.2} s ({how}, with the info probe)",
                took.as_secs_f64()
            );
            match peak_mib {
                Some(mib) => println!("peak memory: {mib:.0} MiB (this process, while checking)"),
                None => println!("peak memory: unknown (no /proc here)"),
            }
            println!("imports:");
            for i in &c.imports {
                println!("  {i}");
            }
            let grants = grants_toml(&c.name, &c.imports);
            match &grants {
                None => println!("grants needed: none"),
                Some(toml) => {
                    println!("grants needed (paste into the config):");
                    print!("{toml}");
                }
            }
            match c.refused {
                None => {
                    println!("loadable by this host: yes");
                    Ok(ExitCode::SUCCESS)
                }
                Some(reason) => {
                    println!("loadable by this host: no");
                    eprintln!("error: {}: {reason}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Err(reason) => {
            println!("loadable by this host: no");
            eprintln!("error: {}: {reason}", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The process's peak resident memory over a span: Linux resets the high-water mark on a
/// write of `5` to `/proc/self/clear_refs`, and reports it as `VmHWM`.
struct PeakMemory;

impl PeakMemory {
    fn start() -> PeakMemory {
        // Without the reset the figure includes start-up; still an upper bound.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        PeakMemory
    }

    fn mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    }
}

/// The `[plugins.grants.<name>]` table a component's imports need, as TOML to paste;
/// `None` when it needs no grant. Collections and hosts cannot be read off the imports,
/// so those lines name placeholders to replace.
fn grants_toml(name: &str, imports: &[String]) -> Option<String> {
    let mut keys: Vec<&str> = imports
        .iter()
        .filter_map(|i| match crate::capabilities::policy_for(i) {
            crate::capabilities::ImportPolicy::Grant { key, .. } => Some(key),
            _ => None,
        })
        .collect();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return None;
    }
    let mut toml = format!("[plugins.grants.{name}]\n");
    for key in keys {
        toml.push_str(&match key {
            "docs" => "docs = [\"collection\"]          # the collections it uses\n".to_string(),
            "http" => "http = [\"api.example.com\"]     # the hosts it calls\n".to_string(),
            "rag" => "rag = [\"collection\"]           # the RAG collections it uses\n".to_string(),
            other => format!("{other} = true\n"),
        });
    }
    Some(toml)
}

fn run_once(config: &Config, file: &Path, input: &str) -> Result<ExitCode> {
    let text = if input == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else {
        std::fs::read_to_string(input).with_context(|| format!("failed to read input {input}"))?
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("input {input} is not JSON"))?;
    crate::runtime::invoke::require_object(&value)?;
    let runtime = runtime_for_run(config, file)?;
    let name = match runtime.load_file(file) {
        Ok(
            crate::runtime::LoadOutcome::Loaded { name, .. }
            | crate::runtime::LoadOutcome::Unchanged { name },
        ) => name,
        Err(reason) => bail!("{}: {reason}", file.display()),
    };
    let handle = runtime.plugin(&name);
    let output = crate::runtime::invoke::run_json(&handle, value)?;
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(ExitCode::SUCCESS)
}

/// The runtime `plugin run` calls a plugin in: a task or event handler gets its granted
/// capabilities on the stores of the config's data dir (or its Redis and MongoDB), so
/// an author can try `kv`, `docs`, `notify` and `prices` locally; the pure kinds need none.
fn runtime_for_run(config: &Config, file: &Path) -> Result<Runtime> {
    let max = config.plugins.max_file_mib * 1024 * 1024;
    let bytes = crate::runtime::file::read_plugin_file(file, None, max)
        .map_err(|reason| anyhow!("{}: {reason}", file.display()))?;
    let pure = crate::runtime::inspect::check_header(&bytes).is_ok()
        && Runtime::new(config)?
            .check(&bytes, file)
            .is_ok_and(|c| c.kind.is_pure());
    if pure {
        return Runtime::new(config);
    }
    std::fs::create_dir_all(config.data_dir())
        .with_context(|| format!("failed to create data_dir {}", config.data_dir().display()))?;
    let services = crate::capabilities::Services::open(config).context(
        "failed to open the stores for the plugin's capabilities (is a host using the \
         embedded store of this data_dir? stop it, or point --config at another data_dir)",
    )?;
    Runtime::with_services(config, services)
}

/// `impressox plugins`: ask a running host.
pub fn list_remote(config: &Config, url: Option<String>) -> Result<ExitCode> {
    let base = url.unwrap_or_else(|| format!("http://{}", config.api.listen));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body: serde_json::Value = rt.block_on(async {
        let mut req =
            reqwest::Client::new().get(format!("{}/api/v1/plugins", base.trim_end_matches('/')));
        if let Ok(token) = std::env::var("IMPRESSOX_API_TOKEN") {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("no host answering at {base}"))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await?;
        if !status.is_success() {
            bail!("{base} answered {status}: {body}");
        }
        anyhow::Ok(body)
    })?;
    println!(
        "{:<22} {:<10} {:<17} {:<12} {:>9} {:>7} {:>9} {:>9}",
        "NAME", "VERSION", "KIND", "STATE", "CALLS", "ERRORS", "P50 µs", "P99 µs"
    );
    for p in body["plugins"].as_array().into_iter().flatten() {
        let num = |k: &str| {
            p[k].as_f64()
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "{:<22} {:<10} {:<17} {:<12} {:>9} {:>7} {:>9} {:>9}",
            p["name"].as_str().unwrap_or("?"),
            p["version"].as_str().unwrap_or("-"),
            p["kind"].as_str().unwrap_or("-"),
            p["state"].as_str().unwrap_or("?"),
            p["calls"].as_u64().unwrap_or(0),
            p["errors"].as_u64().unwrap_or(0),
            num("p50_us"),
            num("p99_us"),
        );
        if let Some(e) = p["last_load_error"].as_str() {
            println!("    load error: {e}");
        }
        if let Some(e) = p["last_error"].as_str() {
            println!("    last error: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
