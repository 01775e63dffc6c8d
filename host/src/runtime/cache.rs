//! The on-disk cache of compiled code.
//!
//! Compiling a plugin with Cranelift takes tens of milliseconds; loading its compiled code
//! takes a fraction of one. Entries are keyed by the `.wasm`'s SHA-256 and a fingerprint
//! of the engine (wasmtime version and every setting that changes the code), so a new
//! host version or new settings never read an old entry. Each entry carries a checksum of
//! its payload: a truncated, corrupt or foreign entry is a miss (logged, deleted,
//! recompiled), never an error.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Marks our entry format; bump when the layout below changes.
const MAGIC: &[u8; 8] = b"IMPXCWA1";

/// Compiled-code cache rooted at a directory.
pub struct CompileCache {
    dir: PathBuf,
    fingerprint: String,
}

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled now.
    Compiled,
    /// Read from the cache.
    Cache,
}

impl CompileCache {
    /// A cache in `dir` for components compiled by `engine`.
    pub fn new(dir: PathBuf, engine: &Engine) -> CompileCache {
        CompileCache {
            dir,
            fingerprint: engine_fingerprint(engine),
        }
    }

    /// The engine fingerprint this cache keys by.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The entry path for a `.wasm` with this SHA-256.
    pub fn entry_path(&self, sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{sha256}-{}.cwasm", self.fingerprint))
    }

    /// The compiled component for `wasm`, from the cache when a valid entry exists.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        sha256: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, Origin)> {
        let path = self.entry_path(sha256);
        match read_entry(&path) {
            Ok(Some(payload)) => {
                // SAFETY: the payload is bytes this host serialized with this engine's
                // settings (the key says so) and its checksum matched, so it is not a
                // corrupted or foreign file; wasmtime still checks its own header and
                // refuses artifacts of another version or configuration.
                match unsafe { Component::deserialize(engine, &payload) } {
                    Ok(component) => return Ok((component, Origin::Cache)),
                    Err(err) => {
                        tracing::warn!(path = %path.display(), error = %err.root_cause(),
                            "compiled-code cache entry is not usable here; recompiling");
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason,
                    "compiled-code cache entry is damaged; recompiling");
                let _ = std::fs::remove_file(&path);
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(err) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %err, "could not write compiled-code cache entry");
        }
        Ok((component, Origin::Compiled))
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let payload = component.serialize().map_err(anyhow::Error::from)?;
        std::fs::create_dir_all(&self.dir)?;
        // Write beside the entry and rename, so a reader never sees half an entry.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&Sha256::digest(&payload))?;
            f.write_all(&payload)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// The payload of a valid entry, `None` when there is no entry, `Err` when it is damaged.
fn read_entry(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("unreadable: {e}")),
    };
    if bytes.len() < MAGIC.len() + 32 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a cache entry of this host".into());
    }
    let (sum, payload) = bytes[MAGIC.len()..].split_at(32);
    if Sha256::digest(payload).as_slice() != sum {
        return Err("checksum mismatch".into());
    }
    Ok(Some(payload.to_vec()))
}

/// wasmtime's version plus its hash of every setting that affects compiled code.
fn engine_fingerprint(engine: &Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("wasmtime{}-{:016x}", wasmtime_version(), hasher.finish())
}

/// The wasmtime version this host was built with.
pub fn wasmtime_version() -> &'static str {
    // Pinned in the workspace manifest; kept here so cache keys and status name it.
    "48.0.8"
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
