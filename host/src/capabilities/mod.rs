//! Host interfaces plugins import, one module per WIT interface.
//!
//! Each module adds its interface to the linker; the import policy below decides, from a
//! component's import list, its kind and its grants, whether it may load at all. A refusal
//! names the plugin, the interface and the config key that would grant it.

use anyhow::Result;
use wasmtime::component::{HasSelf, Linker};

use crate::runtime::Kind;
use crate::runtime::state::StoreState;

pub mod config;
pub mod log;

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.0";
/// Versions of the WIT package this host accepts (one today; an adapter module per older
/// version joins this list when the contract next changes).
pub const ACCEPTED_WIT_VERSIONS: &[&str] = &[WIT_VERSION];

/// Add every implemented host interface (and WASI) to `linker`.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker).map_err(anyhow::Error::from)?;
    crate::bindings::log::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        .map_err(anyhow::Error::from)?;
    crate::bindings::config::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        .map_err(anyhow::Error::from)?;
    Ok(())
}

/// Whether an import may be linked, decided from the import's name alone.
#[derive(Debug, PartialEq, Eq)]
pub enum ImportPolicy {
    /// Always linked (log, WASI without resources).
    Always,
    /// Linked for tasks and event handlers only (their own settings).
    NonPure,
    /// Needs `[plugins.grants.<name>] <key>`; `implemented` says whether this host has it yet.
    Grant {
        key: &'static str,
        implemented: bool,
    },
    /// `impressox:plugin/*` at a version this host does not speak.
    UnsupportedVersion(String),
    /// Nothing this host provides.
    Unknown,
}

/// Classify one import name (`impressox:plugin/log@0.1.0`, `wasi:io/streams@0.2.6`, ...).
pub fn policy_for(import: &str) -> ImportPolicy {
    if let Some(rest) = import.strip_prefix("impressox:plugin/") {
        let (iface, version) = rest.split_once('@').unwrap_or((rest, ""));
        if !ACCEPTED_WIT_VERSIONS.contains(&version) {
            return ImportPolicy::UnsupportedVersion(version.to_string());
        }
        return match iface {
            "log" | "types" => ImportPolicy::Always,
            "config" => ImportPolicy::NonPure,
            "kv" => ImportPolicy::Grant {
                key: "kv",
                implemented: false,
            },
            "docs" => ImportPolicy::Grant {
                key: "docs",
                implemented: false,
            },
            "notify" => ImportPolicy::Grant {
                key: "notify",
                implemented: false,
            },
            "prices" => ImportPolicy::Grant {
                key: "prices",
                implemented: false,
            },
            _ => ImportPolicy::Unknown,
        };
    }
    if import.starts_with("wasi:http/") {
        return ImportPolicy::Grant {
            key: "http",
            implemented: false,
        };
    }
    if import.starts_with("wasi:") {
        return ImportPolicy::Always;
    }
    ImportPolicy::Unknown
}

/// Why an import list is refused; `None` when every import may be linked.
pub fn check_imports(
    plugin: &str,
    kind: Kind,
    imports: &[String],
    grants: &crate::config::Grants,
) -> Option<String> {
    for import in imports {
        match policy_for(import) {
            ImportPolicy::Always => {}
            ImportPolicy::NonPure if !kind.is_pure() => {}
            ImportPolicy::NonPure => {
                return Some(format!(
                    "plugin `{plugin}` imports `{import}`, but {kind} plugins may import only \
                     `impressox:plugin/log`: they receive everything as arguments"
                ));
            }
            ImportPolicy::Grant { key, implemented } => {
                if kind.is_pure() {
                    return Some(format!(
                        "plugin `{plugin}` imports `{import}`, but {kind} plugins may import \
                         only `impressox:plugin/log`"
                    ));
                }
                let granted = match key {
                    "kv" => grants.kv,
                    "docs" => !grants.docs.is_empty(),
                    "http" => !grants.http.is_empty(),
                    "notify" => grants.notify,
                    "prices" => grants.prices,
                    _ => false,
                };
                if !granted {
                    let example = match key {
                        "docs" => "docs = [\"collection\"]",
                        "http" => "http = [\"api.example.com\"]",
                        _ => "= true",
                    };
                    let example = if example.starts_with('=') {
                        format!("{key} {example}")
                    } else {
                        example.to_string()
                    };
                    return Some(format!(
                        "plugin `{plugin}` imports `{import}`, which is not granted; grant it \
                         with `[plugins.grants.{plugin}] {example}`"
                    ));
                }
                if !implemented {
                    return Some(format!(
                        "plugin `{plugin}` imports `{import}`: granted, but this host version \
                         does not provide the `{key}` capability yet"
                    ));
                }
            }
            ImportPolicy::UnsupportedVersion(v) => {
                return Some(format!(
                    "plugin `{plugin}` imports `{import}`: unsupported WIT version `{v}` (this \
                     host accepts {})",
                    ACCEPTED_WIT_VERSIONS.join(", ")
                ));
            }
            ImportPolicy::Unknown => {
                return Some(format!(
                    "plugin `{plugin}` imports `{import}`, which this host does not provide"
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Grants;

    #[test]
    fn pure_kinds_get_log_and_wasi_only() {
        let imports = vec![
            "impressox:plugin/log@0.1.0".into(),
            "wasi:io/streams@0.2.6".into(),
        ];
        assert_eq!(
            check_imports("p", Kind::FeedParser, &imports, &Grants::default()),
            None
        );
        let imports = vec!["impressox:plugin/kv@0.1.0".into()];
        let err = check_imports("p", Kind::FeedParser, &imports, &Grants::default()).unwrap();
        assert!(err.contains("only `impressox:plugin/log`"), "{err}");
    }

    #[test]
    fn ungranted_capability_names_the_config_key() {
        let imports = vec!["impressox:plugin/kv@0.1.0".into()];
        let err = check_imports("whale", Kind::Task, &imports, &Grants::default()).unwrap();
        assert!(err.contains("[plugins.grants.whale] kv = true"), "{err}");
        let imports = vec!["impressox:plugin/docs@0.1.0".into()];
        let err = check_imports("whale", Kind::Task, &imports, &Grants::default()).unwrap();
        assert!(err.contains("docs = [\"collection\"]"), "{err}");
    }

    #[test]
    fn other_wit_versions_are_refused() {
        assert_eq!(
            policy_for("impressox:plugin/log@0.2.0"),
            ImportPolicy::UnsupportedVersion("0.2.0".into())
        );
    }
}
