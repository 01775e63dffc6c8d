//! What a file is before we trust it: the wasm header, and a compiled component's
//! exports (which kind, which WIT version) and imports.

use wasmtime::Engine;
use wasmtime::component::Component;

use super::Kind;
use crate::capabilities::ACCEPTED_WIT_VERSIONS;

/// `\0asm`
const WASM_MAGIC: [u8; 4] = [0x00, 0x61, 0x73, 0x6d];

/// Classify the first bytes of a file, so "not wasm" and "a core module" get their own
/// clear errors instead of a parser message.
pub fn check_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 8 {
        return Err(format!(
            "not a WebAssembly file: {} bytes, shorter than a wasm header (truncated?)",
            bytes.len()
        ));
    }
    if bytes[..4] != WASM_MAGIC {
        return Err("not a WebAssembly file (no `\\0asm` magic number)".into());
    }
    // Core modules are version 1 layer 0; components are layer 1.
    match (bytes[4], bytes[5], bytes[6], bytes[7]) {
        (0x01, 0x00, 0x00, 0x00) => Err("a core WebAssembly module, not a component: build with \
             `cargo build --target wasm32-wasip2` (or `impressox plugin build`)"
            .into()),
        (_, _, 0x01, 0x00) => Ok(()),
        (a, b, c, d) => Err(format!(
            "unsupported WebAssembly encoding (version/layer bytes {a:02x} {b:02x} {c:02x} {d:02x})"
        )),
    }
}

/// The kind and WIT version a component implements, from its exports.
pub fn kind_of(engine: &Engine, component: &Component) -> Result<(Kind, String), String> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let mut unsupported = None;
    for name in &exports {
        let Some(rest) = name.strip_prefix("impressox:plugin/") else {
            continue;
        };
        let (iface, version) = rest.split_once('@').unwrap_or((rest, ""));
        let Some(kind) = Kind::from_export_interface(iface) else {
            continue;
        };
        if ACCEPTED_WIT_VERSIONS.contains(&version) {
            return Ok((kind, version.to_string()));
        }
        unsupported = Some((kind, version.to_string()));
    }
    if let Some((kind, version)) = unsupported {
        return Err(format!(
            "unsupported WIT version `{version}` ({kind} plugin built against \
             impressox:plugin@{version}; this host accepts {})",
            ACCEPTED_WIT_VERSIONS.join(", ")
        ));
    }
    let expected: Vec<String> = Kind::ALL
        .iter()
        .map(|k| {
            format!(
                "impressox:plugin/{}@{}",
                k.export_interface(),
                ACCEPTED_WIT_VERSIONS[0]
            )
        })
        .collect();
    Err(format!(
        "wrong world: the component exports [{}], but a plugin must export one of [{}]",
        if exports.is_empty() {
            "nothing".to_string()
        } else {
            exports.join(", ")
        },
        expected.join(", ")
    ))
}

/// Every import name of a component.
pub fn imports_of(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tells_text_core_and_component_apart() {
        assert!(
            check_header(b"hello world")
                .unwrap_err()
                .contains("not a WebAssembly")
        );
        assert!(check_header(b"\0asm").unwrap_err().contains("truncated"));
        assert!(
            check_header(b"\0asm\x01\0\0\0")
                .unwrap_err()
                .contains("core WebAssembly module")
        );
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
