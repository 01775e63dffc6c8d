//! WASI for plugins: which interfaces a component may import, at which versions, and what
//! stands behind each.
//!
//! Stock guest toolchains import WASI whether or not the plugin uses it: Rust's std
//! (cli, io, clocks, filesystem), CPython through componentize-py (all of the above plus
//! every `wasi:sockets` interface), QuickJS/StarlingMonkey through componentize-js (plus
//! `wasi:http` unless built without it). Refusing those imports would refuse those
//! toolchains, so every kind links the same WASI set, each interface either harmless or
//! inert:
//!
//! | interface | what a plugin gets |
//! |---|---|
//! | `wasi:cli/environment` | no variables, no arguments, no working directory |
//! | `wasi:cli/exit` | ends the call as a failure |
//! | `wasi:cli/stdin` | an empty stream |
//! | `wasi:cli/stdout`, `stderr` | the host's log, per line, tagged with the plugin ([`stdio`]) |
//! | `wasi:cli/terminal-*` | not a terminal |
//! | `wasi:clocks/*` | the real clocks; a subscription's wait ends at the call's deadline |
//! | `wasi:random/*` | the host's random sources |
//! | `wasi:io/*` | streams and `poll`, every wait bounded by the call's deadline ([`io`]) |
//! | `wasi:filesystem/*` | linked with no preopened directory: nothing to open |
//! | `wasi:sockets/*` | linked, every socket refused (`access-denied`), no name lookup |
//! | `wasi:http/types`, `outgoing-handler` | tasks and event handlers with an `http` grant only: requests to the granted hosts, through the SSRF guard, within the call's deadline and `[plugins.http]` limits (`capabilities::http`); refused for pure kinds |
//!
//! Versions: this host implements WASI 0.2.12 and serves every 0.2.x import up to it
//! (wasmtime's semver matching: a 0.2.9 import is served by 0.2.12). An import of a newer
//! 0.2 release, or of another minor or major version, is refused at load with the version
//! named — the host cannot promise functions it does not have.

use wasmtime::component::Linker;

use crate::runtime::state::StoreState;

pub mod io;
pub mod stdio;

/// The WASI 0.2 release this host implements.
pub const WASI_PATCH: u64 = 12;
/// `WASI_PATCH` as a version string.
pub const WASI_VERSION: &str = "0.2.12";

/// The WASI interfaces linked for every kind, by package.
const LINKED: &[(&str, &[&str])] = &[
    (
        "cli",
        &[
            "environment",
            "exit",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
    ),
    ("clocks", &["wall-clock", "monotonic-clock"]),
    ("io", &["error", "poll", "streams"]),
    ("random", &["random", "insecure", "insecure-seed"]),
    ("filesystem", &["types", "preopens"]),
    (
        "sockets",
        &[
            "network",
            "instance-network",
            "tcp",
            "tcp-create-socket",
            "udp",
            "udp-create-socket",
            "ip-name-lookup",
        ],
    ),
];

/// The `wasi:http` interfaces a granted plugin may import (a plugin makes requests; it
/// does not serve them, so `incoming-handler` is not among them).
const HTTP_INTERFACES: &[&str] = &["types", "outgoing-handler"];

/// How this host answers one `wasi:*` import.
#[derive(Debug, PartialEq, Eq)]
pub enum WasiImport {
    /// Linked for every kind (the table above).
    Linked,
    /// `wasi:http/*`: outbound HTTP, granted per plugin.
    Http,
    /// A version this host cannot serve; the text says why.
    Version(String),
    /// An interface this host does not have.
    Unknown,
}

/// Classify `wasi:<package>/<interface>@<version>`.
pub fn classify(import: &str) -> WasiImport {
    let Some(rest) = import.strip_prefix("wasi:") else {
        return WasiImport::Unknown;
    };
    let (path, version) = rest.split_once('@').unwrap_or((rest, ""));
    let Some((package, interface)) = path.split_once('/') else {
        return WasiImport::Unknown;
    };
    if package == "http" {
        if !HTTP_INTERFACES.contains(&interface) {
            return WasiImport::Unknown;
        }
        return match served(version) {
            Ok(()) => WasiImport::Http,
            Err(why) => WasiImport::Version(why),
        };
    }
    let Some((_, interfaces)) = LINKED.iter().find(|(p, _)| *p == package) else {
        return WasiImport::Unknown;
    };
    if !interfaces.contains(&interface) {
        return WasiImport::Unknown;
    }
    match served(version) {
        Ok(()) => WasiImport::Linked,
        Err(why) => WasiImport::Version(why),
    }
}

/// Whether an import at `version` is served by WASI 0.2.`WASI_PATCH`.
fn served(version: &str) -> Result<(), String> {
    let mut parts = version.splitn(3, '.');
    let (major, minor, patch) = (parts.next(), parts.next(), parts.next());
    let patch_number = patch.and_then(|p| p.parse::<u64>().ok());
    match (major, minor, patch_number) {
        (Some("0"), Some("2"), Some(p)) if p <= WASI_PATCH => Ok(()),
        (Some("0"), Some("2"), Some(_)) => Err(format!(
            "WASI {version} is newer than this host's WASI {WASI_VERSION}; build the plugin \
             against WASI {WASI_VERSION} or older, or upgrade the host"
        )),
        _ if version.is_empty() => Err(format!(
            "an unversioned WASI import; this host serves WASI 0.2.0 to {WASI_VERSION}"
        )),
        _ => Err(format!(
            "WASI {version} is not supported; this host serves WASI 0.2.0 to {WASI_VERSION}"
        )),
    }
}

/// Add every linked WASI interface to `linker`.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
    use wasmtime_wasi::p2::bindings::sync as wasi_sync;
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets};
    use wasmtime_wasi::random::WasiRandom;
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView as _};

    type T = StoreState;
    let l = linker;
    io::add_to_linker(l)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    random::random::add_to_linker::<T, WasiRandom>(l, random_ctx)?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, random_ctx)?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, random_ctx)?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    // No directory is preopened, so no descriptor ever exists to operate on.
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    wasi_sync::filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    // The store's WASI context allows neither TCP, UDP nor name lookup: creating a socket
    // fails with `access-denied` and a lookup with a resolver failure, before any I/O.
    let network_options = sockets::network::LinkOptions::default();
    sockets::network::add_to_linker::<T, WasiSockets>(l, &network_options, T::sockets)?;
    sockets::instance_network::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    wasi_sync::sockets::tcp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    wasi_sync::sockets::udp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    wasi_sync::sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    Ok(())
}

fn random_ctx(state: &mut StoreState) -> &mut wasmtime_wasi::random::WasiRandomCtx {
    use wasmtime_wasi::random::WasiRandomView as _;
    state.random()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_0_2_release_up_to_ours_is_served() {
        assert_eq!(classify("wasi:cli/environment@0.2.0"), WasiImport::Linked);
        assert_eq!(classify("wasi:io/poll@0.2.9"), WasiImport::Linked);
        assert_eq!(classify("wasi:io/streams@0.2.12"), WasiImport::Linked);
        assert_eq!(classify("wasi:sockets/tcp@0.2.9"), WasiImport::Linked);
    }

    #[test]
    fn newer_and_other_versions_are_named() {
        let WasiImport::Version(why) = classify("wasi:cli/environment@0.2.99") else {
            panic!()
        };
        assert!(
            why.contains("0.2.99 is newer than this host's WASI 0.2.12"),
            "{why}"
        );
        let WasiImport::Version(why) = classify("wasi:cli/environment@0.3.0") else {
            panic!()
        };
        assert!(why.contains("0.3.0 is not supported"), "{why}");
        assert!(matches!(
            classify("wasi:io/poll@0.2.0-rc-2023-11-10"),
            WasiImport::Version(_)
        ));
    }

    #[test]
    fn http_and_unknown_interfaces_are_told_apart() {
        assert_eq!(
            classify("wasi:http/outgoing-handler@0.2.10"),
            WasiImport::Http
        );
        assert_eq!(
            classify("wasi:http/incoming-handler@0.2.10"),
            WasiImport::Unknown
        );
        assert!(matches!(
            classify("wasi:http/types@0.3.0"),
            WasiImport::Version(_)
        ));
        assert_eq!(classify("wasi:keyvalue/store@0.2.0"), WasiImport::Unknown);
        assert_eq!(classify("wasi:clocks/timezone@0.2.12"), WasiImport::Unknown);
    }
}
