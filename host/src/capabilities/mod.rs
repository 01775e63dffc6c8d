//! Host interfaces plugins import, one module per WIT interface, and WASI.
//!
//! Each module adds its interface to a linker. There is one linker per kind of plugin,
//! built once ([`linker_for`]) and used both to ask a component who it is and to load it,
//! so the two can never disagree about what links. The import policy below decides, from
//! a component's import list, its kind and its grants, whether it may load at all. A
//! refusal names the plugin, the interface (and its version) and the rule or config key.

use anyhow::Result;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use crate::runtime::kind::Kind;
use crate::runtime::state::StoreState;

pub mod budget;
pub mod call;
pub mod config;
pub mod docs;
pub mod effects;
pub mod error;
pub mod http;
pub mod kv;
pub mod log;
pub mod notify;
pub mod prices;
pub mod rag;
pub mod services;
pub mod settings;
pub mod tokens;
pub mod wasi;

pub use services::{Granted, Services};
pub use settings::CapabilitiesConfig;

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.0";
/// Versions of the WIT package this host accepts (one today; an adapter module per older
/// version joins this list when the contract next changes).
pub const ACCEPTED_WIT_VERSIONS: &[&str] = &[WIT_VERSION];

/// The linker for plugins of `kind`: WASI (the same for every kind, see [`wasi`]) and
/// `log`; doc-chunkers also get `tokens` (the embedder's token count); tasks and event
/// handlers also get `config` and the capabilities an operator may grant them (each
/// checked per plugin at load and at every call), `wasi:http` among them.
pub fn linker_for(engine: &Engine, kind: Kind) -> Result<Linker<StoreState>> {
    let mut linker = Linker::new(engine);
    wasi::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
    crate::bindings::log::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |s| s)
        .map_err(anyhow::Error::from)?;
    if kind == Kind::DocChunker {
        crate::bindings::tokens::add_to_linker::<StoreState, HasSelf<StoreState>>(
            &mut linker,
            |s| s,
        )
        .map_err(anyhow::Error::from)?;
    }
    if !kind.is_pure() {
        let l = &mut linker;
        crate::bindings::config::add_to_linker::<StoreState, HasSelf<StoreState>>(l, |s| s)
            .map_err(anyhow::Error::from)?;
        kv::host::add_to_linker(l)?;
        docs::host::add_to_linker(l)?;
        notify::host::add_to_linker(l)?;
        prices::host::add_to_linker(l)?;
        rag::host::add_to_linker(l)?;
        http::host::add_to_linker(l).map_err(anyhow::Error::from)?;
    }
    Ok(linker)
}

/// Whether an import may be linked, decided from the import's name alone.
#[derive(Debug, PartialEq, Eq)]
pub enum ImportPolicy {
    /// Always linked (log, WASI without resources).
    Always,
    /// Linked for tasks and event handlers only (their own settings).
    NonPure,
    /// Linked for doc-chunkers only (`tokens`: the embedder's token count).
    Chunker,
    /// Needs `[plugins.grants.<name>] <key>`; `implemented` says whether this host has it yet.
    Grant {
        key: &'static str,
        implemented: bool,
    },
    /// `impressox:plugin/*` at a version this host does not speak.
    UnsupportedVersion(String),
    /// `wasi:*` at a version this host cannot serve; the text says why.
    UnsupportedWasi(String),
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
            "tokens" => ImportPolicy::Chunker,
            "kv" => ImportPolicy::Grant {
                key: "kv",
                implemented: true,
            },
            "docs" => ImportPolicy::Grant {
                key: "docs",
                implemented: true,
            },
            "notify" => ImportPolicy::Grant {
                key: "notify",
                implemented: true,
            },
            "prices" => ImportPolicy::Grant {
                key: "prices",
                implemented: true,
            },
            "rag" => ImportPolicy::Grant {
                key: "rag",
                implemented: true,
            },
            _ => ImportPolicy::Unknown,
        };
    }
    match wasi::classify(import) {
        wasi::WasiImport::Linked => ImportPolicy::Always,
        wasi::WasiImport::Http => ImportPolicy::Grant {
            key: "http",
            implemented: true,
        },
        wasi::WasiImport::Version(why) => ImportPolicy::UnsupportedWasi(why),
        wasi::WasiImport::Unknown => ImportPolicy::Unknown,
    }
}

/// Why an import list is refused; `None` when every import may be linked.
///
/// Without `grants` (before the component has said its name; `name` is then its file
/// name) only what its kind rules out is checked; with them, also what the operator has
/// not granted.
pub fn check_imports(
    name: &str,
    kind: Kind,
    imports: &[String],
    grants: Option<&crate::config::Grants>,
) -> Option<String> {
    let who = match grants {
        Some(_) => format!("plugin `{name}`"),
        None => format!("component `{name}`"),
    };
    for import in imports {
        match policy_for(import) {
            ImportPolicy::Always => {}
            ImportPolicy::NonPure if !kind.is_pure() => {}
            ImportPolicy::Chunker if kind == Kind::DocChunker => {}
            ImportPolicy::Chunker => {
                return Some(format!(
                    "{who} imports `{import}`, but only doc-chunker plugins may import it \
                     (the embedder's token count, for sizing chunks)"
                ));
            }
            ImportPolicy::NonPure => {
                return Some(format!(
                    "{who} imports `{import}`, but {kind} plugins may import only \
                     `impressox:plugin/log`: they receive everything as arguments"
                ));
            }
            ImportPolicy::Grant { key, implemented } => {
                if kind.is_pure() {
                    let what = if key == "http" {
                        "make HTTP requests (build it without HTTP support, e.g. \
                         componentize-js `-d http fetch-event`)"
                            .to_string()
                    } else {
                        format!("use the `{key}` capability")
                    };
                    return Some(format!(
                        "{who} imports `{import}`, but {kind} plugins are pure: they receive \
                         everything as arguments and may not {what}; only task and \
                         event-handler plugins may, when granted"
                    ));
                }
                let Some(grants) = grants else { continue };
                let granted = match key {
                    "kv" => grants.kv,
                    "docs" => !grants.docs.is_empty(),
                    "http" => !grants.http.is_empty(),
                    "notify" => grants.notify,
                    "prices" => grants.prices,
                    "rag" => !grants.rag.is_empty(),
                    _ => false,
                };
                if !granted {
                    let example = match key {
                        "docs" => "docs = [\"collection\"]".to_string(),
                        "rag" => "rag = [\"collection\"]".to_string(),
                        "http" => "http = [\"api.example.com\"]".to_string(),
                        _ => format!("{key} = true"),
                    };
                    return Some(format!(
                        "{who} imports `{import}`, which is not granted; grant it with \
                         `[plugins.grants.{name}] {example}`"
                    ));
                }
                if !implemented {
                    return Some(format!(
                        "{who} imports `{import}`: granted, but this host version does not \
                         provide the `{key}` capability yet"
                    ));
                }
            }
            ImportPolicy::UnsupportedVersion(v) => {
                return Some(format!(
                    "{who} imports `{import}`: unsupported WIT version `{v}` (this host \
                     accepts {})",
                    ACCEPTED_WIT_VERSIONS.join(", ")
                ));
            }
            ImportPolicy::UnsupportedWasi(why) => {
                return Some(format!("{who} imports `{import}`: {why}"));
            }
            ImportPolicy::Unknown => {
                return Some(format!(
                    "{who} imports `{import}`, which this host does not provide"
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
            check_imports("p", Kind::FeedParser, &imports, Some(&Grants::default())),
            None
        );
        let imports = vec!["impressox:plugin/kv@0.1.0".into()];
        let err = check_imports("p", Kind::FeedParser, &imports, Some(&Grants::default())).unwrap();
        assert!(err.contains("feed-parser plugins are pure"), "{err}");
        let imports = vec!["wasi:http/outgoing-handler@0.2.10".into()];
        let err = check_imports(
            "p",
            Kind::NotifyFormatter,
            &imports,
            Some(&Grants::default()),
        )
        .unwrap();
        assert!(err.contains("may not make HTTP requests"), "{err}");
    }

    #[test]
    fn only_doc_chunkers_import_tokens() {
        let imports = vec![
            "impressox:plugin/log@0.1.0".into(),
            "impressox:plugin/tokens@0.1.0".into(),
        ];
        let grants = Grants::default();
        assert_eq!(
            check_imports("c", Kind::DocChunker, &imports, Some(&grants)),
            None
        );
        for kind in [Kind::FeedParser, Kind::Task] {
            let err = check_imports("c", kind, &imports, Some(&grants)).unwrap();
            assert!(err.contains("only doc-chunker plugins"), "{err}");
        }
        // A chunker is pure like the others: no capability, no config.
        let imports = vec!["impressox:plugin/kv@0.1.0".into()];
        let err = check_imports("c", Kind::DocChunker, &imports, Some(&grants)).unwrap();
        assert!(err.contains("doc-chunker plugins are pure"), "{err}");
    }

    #[test]
    fn ungranted_capability_names_the_config_key() {
        let imports = vec!["impressox:plugin/kv@0.1.0".into()];
        let err = check_imports("whale", Kind::Task, &imports, Some(&Grants::default())).unwrap();
        assert!(err.contains("[plugins.grants.whale] kv = true"), "{err}");
        let imports = vec!["impressox:plugin/docs@0.1.0".into()];
        let err = check_imports("whale", Kind::Task, &imports, Some(&Grants::default())).unwrap();
        assert!(err.contains("docs = [\"collection\"]"), "{err}");
        let imports = vec!["impressox:plugin/rag@0.1.0".into()];
        let err = check_imports("whale", Kind::Task, &imports, Some(&Grants::default())).unwrap();
        assert!(
            err.contains("[plugins.grants.whale] rag = [\"collection\"]"),
            "{err}"
        );
    }

    #[test]
    fn a_newer_wasi_is_refused_with_its_version() {
        let imports = vec!["wasi:cli/environment@0.2.99".into()];
        let err = check_imports("p", Kind::Task, &imports, Some(&Grants::default())).unwrap();
        assert!(err.contains("`wasi:cli/environment@0.2.99`"), "{err}");
        assert!(err.contains("newer than this host's WASI 0.2.12"), "{err}");
    }

    #[test]
    fn other_wit_versions_are_refused() {
        assert_eq!(
            policy_for("impressox:plugin/log@0.2.0"),
            ImportPolicy::UnsupportedVersion("0.2.0".into())
        );
    }
}
