//! The on-disk cache of compiled code.
//!
//! Compiling a plugin with Cranelift takes tens of milliseconds; loading its compiled code
//! takes a fraction of one. Entries are keyed by the `.wasm`'s SHA-256 and a fingerprint
//! of the engine (wasmtime version and every setting that changes the code), so a new
//! host version or new settings never read an old entry.
//!
//! An entry is native code that runs outside the sandbox, so it must be one this host
//! wrote: each carries an HMAC-SHA256 over its key and payload under a secret of the host
//! (`data_dir/compile-cache.key`, 0600, outside the cache directory, made on first use),
//! checked before wasmtime ever reads the payload. Whoever can write the cache directory
//! (0700) but not read the key cannot plant code. A truncated, corrupt, foreign or forged
//! entry is a miss (logged, deleted, recompiled), never an error; without a usable key
//! the cache is off.

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Marks our entry format; bump when the layout below changes.
const MAGIC: &[u8; 8] = b"IMPXCWA2";
/// Length of the host secret that signs entries.
const KEY_LEN: usize = 32;
/// Length of an entry's MAC.
const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Compiled-code cache rooted at a directory.
pub struct CompileCache {
    dir: PathBuf,
    fingerprint: String,
    key: [u8; KEY_LEN],
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
    /// A cache in `dir` for components compiled by `engine`, its entries signed with the
    /// secret in `key_file` (created when missing). Fails when the key can be neither read
    /// nor made, or is readable by others: the caller runs without a cache then.
    pub fn open(dir: PathBuf, key_file: &Path, engine: &Engine) -> Result<CompileCache, String> {
        let key = load_or_create_key(key_file)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // An older host made the folder with the default mode.
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        Ok(CompileCache {
            dir,
            fingerprint: engine_fingerprint(engine),
            key,
        })
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
        match self.read_entry(&path, sha256) {
            Ok(Some(payload)) => {
                // SAFETY: the payload's MAC under this host's secret matched, over this
                // `.wasm`'s hash and this engine's fingerprint: these are bytes this host
                // serialized from this very component with these settings, not a
                // corrupted, foreign or planted file. wasmtime still checks its own
                // header and refuses artifacts of another version or configuration.
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
        if let Err(err) = self.store(&path, sha256, &component) {
            tracing::warn!(path = %path.display(), error = %err, "could not write compiled-code cache entry");
        }
        Ok((component, Origin::Compiled))
    }

    fn store(&self, path: &Path, sha256: &str, component: &Component) -> anyhow::Result<()> {
        let payload = component.serialize().map_err(anyhow::Error::from)?;
        let mut mac = self.mac(sha256);
        mac.update(&payload);
        let mac = mac.finalize().into_bytes();
        // Write beside the entry and rename, so a reader never sees half an entry.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&mac)?;
            f.write_all(&payload)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// An entry's MAC, fed its key (engine fingerprint and the `.wasm`'s hash) and then
    /// the payload: an entry can be neither forged nor moved under another key.
    fn mac(&self, sha256: &str) -> HmacSha256 {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(self.fingerprint.as_bytes());
        mac.update(&[0]);
        mac.update(sha256.as_bytes());
        mac.update(&[0]);
        mac
    }

    /// The payload of a valid entry, `None` when there is none, `Err` when it is damaged
    /// or not signed by this host.
    fn read_entry(&self, path: &Path, sha256: &str) -> Result<Option<Vec<u8>>, String> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("unreadable: {e}")),
        };
        if bytes.len() < MAGIC.len() + MAC_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return Err("not a cache entry of this host".into());
        }
        let (mac, payload) = bytes[MAGIC.len()..].split_at(MAC_LEN);
        let mut expected = self.mac(sha256);
        expected.update(payload);
        expected
            .verify_slice(mac)
            .map_err(|_| "signature mismatch (damaged, or not written by this host)".to_string())?;
        Ok(Some(payload.to_vec()))
    }
}

/// The host's cache secret: read from `path`, or made there (0600) on first use. A key
/// that others may read or write is refused: with it they could sign entries.
fn load_or_create_key(path: &Path) -> Result<[u8; KEY_LEN], String> {
    let show = path.display();
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(mut f) => {
            let meta = f
                .metadata()
                .map_err(|e| format!("cannot read {show}: {e}"))?;
            if !meta.is_file() || meta.mode() & 0o077 != 0 {
                return Err(format!(
                    "{show} is not a regular file readable by this user only (mode 0600);                      fix its mode or delete it"
                ));
            }
            // SAFETY: a plain syscall without arguments.
            if meta.uid() != unsafe { libc::geteuid() } {
                return Err(format!("{show} belongs to another user"));
            }
            let mut key = [0u8; KEY_LEN];
            f.read_exact(&mut key)
                .map_err(|e| format!("cannot read the key in {show}: {e}"))?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            let mut key = [0u8; KEY_LEN];
            for chunk in key.chunks_mut(8) {
                chunk.copy_from_slice(&random_u64().to_le_bytes());
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path);
            match &mut f {
                Ok(f) => {
                    f.write_all(&key)
                        .and_then(|()| f.sync_all())
                        .map_err(|e| format!("cannot write {show}: {e}"))?;
                    Ok(key)
                }
                // Another process made it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(path),
                Err(e) => Err(format!("cannot create {show}: {e}")),
            }
        }
        Err(e) => Err(format!("cannot open {show}: {e}")),
    }
}

/// 64 bits from the kernel's random source.
fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is valid for 8 bytes of writes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert_eq!(n, 8, "the kernel's random source failed");
    u64::from_le_bytes(buf)
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
