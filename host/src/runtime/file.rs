//! Reading a plugin file without trusting what sits at its path.
//!
//! The plugin directory is an operator's folder, and operators make mistakes: a FIFO
//! named `a.wasm` (opening it would block the loader, and with it every other plugin and
//! shutdown), a link to a device (reading it never ends), a link to a file elsewhere.
//! So a plugin file is opened without blocking (`O_NONBLOCK`), checked on the opened
//! descriptor to be a regular file, and read under a hard cap — the size on disk is not
//! trusted, the file may grow while it is read.
//!
//! Symbolic links: a link in the plugin directory is followed only when its target is a
//! regular file inside that same directory (after resolving every link on the way), as
//! deployment tools that publish through links do (Kubernetes volumes: `a.wasm ->
//! ..data/a.wasm`). A link out of the directory is refused: what loads is what the
//! operator put there.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Read the plugin file at `path` (at most `max` bytes). With `dir`, the file must be in
/// that directory (links included); without it (`impressox plugin check FILE`), any
/// regular file will do.
pub fn read_plugin_file(path: &Path, dir: Option<&Path>, max: u64) -> Result<Vec<u8>, String> {
    let target = resolve(path, dir)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        // Never block in open (a FIFO without a writer), never follow a link swapped in
        // after `resolve` looked.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&target)
        .map_err(|e| format!("cannot open file: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read file: {e}"))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let what = if ft.is_fifo() {
            "a FIFO (named pipe)"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(format!(
            "is {what}; a plugin must be a regular .wasm file (nothing was read)"
        ));
    }
    if meta.len() > max {
        return Err(over_cap(meta.len(), max));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read file: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(over_cap(bytes.len() as u64, max));
    }
    Ok(bytes)
}

fn over_cap(len: u64, max: u64) -> String {
    format!("file is {len} bytes or more, over the {max}-byte cap ([plugins] max_file_mib)")
}

/// The file to open: `path` itself, or the end of its links when they stay in `dir`.
fn resolve(path: &Path, dir: Option<&Path>) -> Result<PathBuf, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot read file: {e}"))?;
    if !meta.file_type().is_symlink() {
        return Ok(path.to_path_buf());
    }
    let target = path
        .canonicalize()
        .map_err(|e| format!("is a symbolic link that cannot be followed: {e}"))?;
    if let Some(dir) = dir {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        if !target.starts_with(&dir) {
            return Err(format!(
                "is a symbolic link to {}, outside the plugin directory {}; links are \
                 followed only to files inside it (copy the file in instead)",
                target.display(),
                dir.display()
            ));
        }
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.wasm");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(
            read_plugin_file(&f, Some(dir.path()), 10).unwrap().len(),
            10
        );
        let err = read_plugin_file(&f, Some(dir.path()), 9).unwrap_err();
        assert!(err.contains("over the 9-byte cap"), "{err}");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.wasm");
        let c = std::ffi::CString::new(f.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_plugin_file(&f, Some(dir.path()), 1 << 20).unwrap_err();
        assert!(err.contains("FIFO"), "{err}");
    }

    #[test]
    fn links_are_followed_only_inside_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let real = dir.path().join("..data");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("a.wasm"), b"inside").unwrap();
        std::fs::write(outside.path().join("b.wasm"), b"outside").unwrap();
        let inside_link = dir.path().join("a.wasm");
        std::os::unix::fs::symlink(real.join("a.wasm"), &inside_link).unwrap();
        assert_eq!(
            read_plugin_file(&inside_link, Some(dir.path()), 100).unwrap(),
            b"inside"
        );
        let outside_link = dir.path().join("b.wasm");
        std::os::unix::fs::symlink(outside.path().join("b.wasm"), &outside_link).unwrap();
        let err = read_plugin_file(&outside_link, Some(dir.path()), 100).unwrap_err();
        assert!(err.contains("outside the plugin directory"), "{err}");
        // A link to a device is refused as a device (it would otherwise read forever).
        let dev = dir.path().join("zero.wasm");
        std::os::unix::fs::symlink("/dev/zero", &dev).unwrap();
        let err = read_plugin_file(&dev, None, 100).unwrap_err();
        assert!(err.contains("a device"), "{err}");
    }
}
