//! The `files` source: a folder of Markdown, text, HTML and JSON files.
//!
//! Each scan lists the folder (recursively, following no symlinks out of it) and compares
//! every file's size and modification time with the last scan's; only new or touched files
//! are read and handed to the ingest, whose version check then skips a file touched
//! without a change. A file gone from the folder has its chunks removed. The first scan of
//! a process reads every file (the version check keeps it from embedding anything
//! unchanged), so a restart catches up with whatever changed while the host was down.
//!
//! Polling rather than inotify: it sees changes on network and container mounts that
//! send no events, costs one `stat` per file per interval, and the interval (2 s by
//! default) is well inside the "within seconds" the issue asks for.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::rag::service::SourceDocument;

/// The largest file read; bigger ones are skipped with a warning (a stray dump in the
/// folder must not stall ingestion or fill memory).
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// What one scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// New or touched files, read.
    pub changed: Vec<SourceDocument>,
    /// Every file the folder holds now (relative paths), read or not.
    pub present: HashSet<String>,
    /// Files that could not be read this time (kept: not treated as deleted).
    pub unreadable: Vec<(String, String)>,
}

/// A folder and what its last scan saw.
#[derive(Debug)]
pub struct FolderWatch {
    root: PathBuf,
    seen: BTreeMap<String, (u64, Option<SystemTime>)>,
}

/// The media type of a file name, or `None` for a file the source does not take.
pub fn media_type(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "md" | "markdown" => "text/markdown",
        "txt" | "text" => "text/plain",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        _ => return None,
    })
}

impl FolderWatch {
    pub fn new(root: PathBuf) -> FolderWatch {
        FolderWatch {
            root,
            seen: BTreeMap::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Lists the folder; reads what is new or touched since the last scan. A missing
    /// folder is an error (the caller keeps the stored chunks and tries again).
    pub fn scan(&mut self) -> std::io::Result<Scan> {
        let mut files = Vec::new();
        walk(&self.root, &self.root, &mut files)?;
        let mut scan = Scan::default();
        let mut seen = BTreeMap::new();
        for (rel, path, meta) in files {
            scan.present.insert(rel.clone());
            let stamp = (meta.len(), meta.modified().ok());
            let unchanged = self.seen.get(&rel) == Some(&stamp);
            if unchanged {
                seen.insert(rel, stamp);
                continue;
            }
            if meta.len() > MAX_FILE_BYTES {
                scan.unreadable.push((
                    rel.clone(),
                    format!("larger than {MAX_FILE_BYTES} bytes; skipped"),
                ));
                seen.insert(rel, stamp);
                continue;
            }
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    let media = media_type(&path).unwrap_or("text/plain");
                    scan.changed.push(SourceDocument {
                        id: rel.clone(),
                        text,
                        media_type: media.to_string(),
                        metadata: vec![("path".into(), rel.clone())],
                        url: None,
                        time_ms: stamp.1.and_then(|t| {
                            t.duration_since(std::time::UNIX_EPOCH)
                                .ok()
                                .map(|d| d.as_millis() as i64)
                        }),
                    });
                    seen.insert(rel, stamp);
                }
                // Not remembered: read again next scan.
                Err(e) => scan.unreadable.push((rel, e.to_string())),
            }
        }
        self.seen = seen;
        Ok(scan)
    }

    /// Forgets what was seen, so the next scan reads every file (after a failed ingest).
    pub fn forget(&mut self, rel: &str) {
        self.seen.remove(rel);
    }
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf, std::fs::Metadata)>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        // Editors' and VCS' hidden files and folders are not documents.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() && media_type(&path).is_some() {
            let meta = entry.metadata()?;
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, path, meta));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_read_only_new_or_touched_files_and_list_all() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.md"), "# A\n\ntext").unwrap();
        std::fs::write(dir.path().join("sub/b.html"), "<p>b</p>").unwrap();
        std::fs::write(dir.path().join("skip.bin"), "x").unwrap();
        std::fs::write(dir.path().join(".hidden.md"), "x").unwrap();
        let mut w = FolderWatch::new(dir.path().to_path_buf());
        let s = w.scan().unwrap();
        let mut ids: Vec<_> = s.changed.iter().map(|d| d.id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["a.md", "sub/b.html"]);
        assert!(s.changed[0].media_type.starts_with("text/"));
        let s = w.scan().unwrap();
        assert!(s.changed.is_empty());
        assert_eq!(s.present.len(), 2);
        std::fs::write(dir.path().join("a.md"), "# A\n\nlonger text").unwrap();
        std::fs::remove_file(dir.path().join("sub/b.html")).unwrap();
        let s = w.scan().unwrap();
        assert_eq!(s.changed.len(), 1);
        assert_eq!(s.changed[0].id, "a.md");
        assert_eq!(s.present.len(), 1);
    }
}
