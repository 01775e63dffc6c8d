//! Where each source stopped: the `documents` source's position and the `urls` source's
//! HTTP validators, in one small JSON file beside the index (`data_dir/rag/sources.json`).
//!
//! Written atomically (temporary file, fsync, rename), and only ever an optimisation:
//! losing it makes a source read everything again, which the ingest's version check turns
//! into chunker calls without embeddings. So it lives with the host's data, not in the
//! shared store, whichever vector store holds the chunks.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::documents::Position;

/// A page's validators from its last `200`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// One source's saved state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pages: BTreeMap<String, Validators>,
}

/// The file and its contents.
#[derive(Debug)]
pub struct Cursors {
    path: PathBuf,
    state: Mutex<BTreeMap<String, SourceState>>,
}

impl Cursors {
    /// Reads the file; a missing or unreadable one starts empty (logged).
    pub fn open(dir: &Path) -> Cursors {
        let path = dir.join("sources.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "the sources' positions do not parse; every source reads from its start");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        Cursors {
            path,
            state: Mutex::new(state),
        }
    }

    pub fn get(&self, source: &str) -> SourceState {
        self.state.lock().get(source).cloned().unwrap_or_default()
    }

    /// Replaces a source's state and writes the file (under the lock, so two sources'
    /// writes never interleave).
    pub fn set(&self, source: &str, s: SourceState) -> Result<()> {
        let mut state = self.state.lock();
        state.insert(source.to_string(), s);
        let json = serde_json::to_vec_pretty(&*state)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("failed to write {}", tmp.display()))?;
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("failed to replace {}", self.path.display()))?;
        Ok(())
    }
}
