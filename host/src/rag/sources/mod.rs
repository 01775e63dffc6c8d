//! Sources: where documents come from (`[[rag.sources]]`), one [`SourceRunner`] each.
//!
//! A runner's [`SourceRunner::pass`] looks at its source once (a folder scan, a round of
//! page fetches, the collection past its cursor), ingests what is new or changed and
//! removes what is gone. The rag worker calls it every `interval`; `impressox rag ingest`
//! calls it once. Chunking and embedding block, so a pass hands them to
//! `spawn_blocking`.
//!
//! - [`files`]: a watched folder.
//! - [`urls`]: pages with HTTP validators, through the SSRF guard.
//! - [`render`]: `urls` pages loaded in headless Chromium (`render = true`).
//! - [`documents`]: a document-store collection followed by a cursor.
//! - [`cursors`]: the saved positions and validators.

pub mod cursors;
pub mod documents;
pub mod files;
pub mod render;
pub mod urls;

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};

use self::cursors::{Cursors, SourceState};
use self::documents::DocumentsFollower;
use self::files::FolderWatch;
use super::config::{SourceConfig, SourceKind};
use super::service::{IngestCounts, RagService, SourceDocument};
use crate::documents::Documents;

/// How often a `documents` source checks for deleted records, in passes.
const RECONCILE_EVERY: u64 = 30;

/// One source and what it remembers between passes.
pub struct SourceRunner {
    pub config: SourceConfig,
    service: Arc<RagService>,
    cursors: Arc<Cursors>,
    docs: Option<Arc<dyn Documents>>,
    folder: Option<FolderWatch>,
    client: Option<crate::net::Outbound>,
    /// `render = true`: the browser pool the pages are loaded in.
    renderer: Option<Arc<render::Renderer>>,
    passes: u64,
    /// A documents source has asked its store for the cursor field's index.
    cursor_index_ready: bool,
}

impl SourceRunner {
    /// `base_dir` resolves a folder's relative path; `docs` is needed by `documents`
    /// sources.
    pub fn new(
        config: SourceConfig,
        base_dir: &std::path::Path,
        service: Arc<RagService>,
        cursors: Arc<Cursors>,
        docs: Option<Arc<dyn Documents>>,
    ) -> Result<SourceRunner> {
        let folder = match (&config.kind, &config.path) {
            (SourceKind::Files, Some(p)) => Some(FolderWatch::new(if p.is_absolute() {
                p.clone()
            } else {
                base_dir.join(p)
            })),
            _ => None,
        };
        let client = match config.kind {
            SourceKind::Urls => Some(urls::client(config.allow_private_addresses)?),
            _ => None,
        };
        if config.kind == SourceKind::Documents && docs.is_none() {
            return Err(anyhow!(
                "[[rag.sources]] `{}`: a documents source needs the document store",
                config.name
            ));
        }
        Ok(SourceRunner {
            config,
            service,
            cursors,
            docs,
            folder,
            client,
            renderer: None,
            passes: 0,
            cursor_index_ready: false,
        })
    }

    /// Gives a `render = true` source the browser pool its pages are loaded in.
    pub fn with_renderer(mut self, renderer: Arc<render::Renderer>) -> SourceRunner {
        self.renderer = Some(renderer);
        self
    }

    /// Replaces a `urls` source's guarded client (tests: a guard that trusts the test
    /// site's loopback address, so the guard's refusals can be watched on loopback too).
    pub fn with_client(mut self, client: crate::net::Outbound) -> SourceRunner {
        if self.client.is_some() {
            self.client = Some(client);
        }
        self
    }

    /// The browser pool of a `render = true` source.
    pub fn renderer(&self) -> Option<&Arc<render::Renderer>> {
        self.renderer.as_ref()
    }

    /// Looks at the source once: ingests what changed, removes what is gone.
    pub async fn pass(&mut self) -> Result<IngestCounts> {
        self.passes += 1;
        self.check_model().await?;
        match self.config.kind {
            SourceKind::Files => self.files_pass().await,
            SourceKind::Urls => self.urls_pass().await,
            SourceKind::Documents => self.documents_pass().await,
        }
    }

    /// The collection must hold the configured embedder's vectors (else `rag reindex`).
    async fn check_model(&self) -> Result<()> {
        let service = self.service.clone();
        let collection = self.config.collection.clone();
        tokio::task::spawn_blocking(move || {
            service.index().check_model(&collection, service.embedder())
        })
        .await
        .context("the model check panicked")?
        .map_err(|e| anyhow!("source `{}`: {e}", self.config.name))
    }

    async fn ingest(&self, docs: Vec<SourceDocument>) -> Result<IngestCounts> {
        if docs.is_empty() {
            return Ok(IngestCounts::default());
        }
        let service = self.service.clone();
        let source = self.config.clone();
        tokio::task::spawn_blocking(move || service.ingest(&source, docs))
            .await
            .context("the ingest task panicked")?
            .map_err(|e| anyhow!("source `{}`: {e}", self.config.name))
    }

    async fn remove_missing(&self, present: HashSet<String>) -> Result<IngestCounts> {
        let service = self.service.clone();
        let source = self.config.clone();
        tokio::task::spawn_blocking(move || service.remove_missing(&source, &present))
            .await
            .context("the removal task panicked")?
            .map_err(|e| anyhow!("source `{}`: {e}", self.config.name))
    }

    async fn files_pass(&mut self) -> Result<IngestCounts> {
        let folder = self.folder.as_mut().expect("files sources have a folder");
        let root = folder.root().to_path_buf();
        let started = std::time::Instant::now();
        let scan = folder
            .scan()
            .with_context(|| format!("source `{}`: folder {}", self.config.name, root.display()))?;
        self.service.count_read(started);
        for (rel, why) in &scan.unreadable {
            tracing::warn!(source = %self.config.name, file = %rel, error = %why, "a file could not be read");
        }
        let changed_ids: Vec<String> = scan.changed.iter().map(|d| d.id.clone()).collect();
        let mut counts = match self.ingest(scan.changed).await {
            Ok(c) => c,
            Err(e) => {
                // Read again next pass.
                let folder = self.folder.as_mut().expect("files sources have a folder");
                for id in &changed_ids {
                    folder.forget(id);
                }
                return Err(e);
            }
        };
        // Unreadable files are kept, not removed.
        let mut present = scan.present;
        present.extend(scan.unreadable.into_iter().map(|(rel, _)| rel));
        counts.add(self.remove_missing(present).await?);
        Ok(counts)
    }

    async fn urls_pass(&mut self) -> Result<IngestCounts> {
        let client = self.client.clone().expect("urls sources have a client");
        let renderer = match (self.config.render, &self.renderer) {
            (false, _) => None,
            (true, Some(r)) => Some(r.clone()),
            (true, None) => {
                return Err(anyhow!(
                    "source `{}`: render = true, but no browser pool was given to the source",
                    self.config.name
                ));
            }
        };
        let mut state = self.cursors.get(&self.config.name);
        let mut counts = IngestCounts::default();
        let mut errors = Vec::new();
        for url in self.config.urls.clone() {
            let previous = state.pages.get(&url).cloned().unwrap_or_default();
            let started = std::time::Instant::now();
            let fetched = match &renderer {
                // A rendered page has no validators of its own: the content hash decides
                // whether it is embedded again.
                Some(r) => r
                    .render(
                        &self.config.name,
                        &client,
                        self.config.allow_private_addresses,
                        &url,
                    )
                    .await
                    .map(|doc| urls::Fetched::Page {
                        doc,
                        validators: Default::default(),
                    }),
                None => urls::fetch(&client, &url, &previous).await,
            };
            self.service.count_read(started);
            match fetched {
                Ok(urls::Fetched::NotModified) => counts.unchanged += 1,
                Ok(urls::Fetched::Page { doc, validators }) => {
                    counts.add(self.ingest(vec![doc]).await?);
                    state.pages.insert(url.clone(), validators);
                    self.cursors.set(&self.config.name, state.clone())?;
                }
                Err(e) => {
                    tracing::warn!(source = %self.config.name, error = %e, "a page could not be fetched; its stored chunks stay");
                    errors.push(e.to_string());
                }
            }
        }
        let present: HashSet<String> = self.config.urls.iter().cloned().collect();
        counts.add(self.remove_missing(present).await?);
        if !errors.is_empty() {
            return Err(anyhow!(
                "source `{}`: {} of {} pages failed (first: {})",
                self.config.name,
                errors.len(),
                self.config.urls.len(),
                errors[0]
            ));
        }
        Ok(counts)
    }

    async fn documents_pass(&mut self) -> Result<IngestCounts> {
        let docs = self.docs.clone().expect("documents sources have the store");
        let from = self.config.from.clone().unwrap_or_default();
        let field = self.config.cursor_field().to_string();
        let follower = DocumentsFollower {
            docs: docs.as_ref(),
            collection: &from,
            field: &field,
        };
        if !self.cursor_index_ready {
            // Only speed depends on it: a store that refuses (MongoDB, when an index on the
            // same key exists under another name) is still read correctly.
            if let Err(e) = follower.ensure_cursor_index().await {
                tracing::warn!(source = %self.config.name, collection = %from, error = %format!("{e:#}"),
                    "no index on the cursor field; each page will be sorted by the store");
            }
            self.cursor_index_ready = true;
        }
        let mut state: SourceState = self.cursors.get(&self.config.name);
        let mut counts = IngestCounts::default();
        loop {
            let started = std::time::Instant::now();
            let page = follower
                .next_page(state.position.as_ref(), documents::PAGE)
                .await
                .with_context(|| format!("source `{}`: reading `{from}`", self.config.name))?;
            let batch: Vec<SourceDocument> =
                page.iter().filter_map(documents::to_document).collect();
            self.service.count_read(started);
            let Some(last) = page.last() else { break };
            let next = follower.position_of(last);
            let full = page.len() == documents::PAGE;
            counts.add(self.ingest(batch).await?);
            state.position = next;
            self.cursors.set(&self.config.name, state.clone())?;
            if !full {
                break;
            }
        }
        if self.passes % RECONCILE_EVERY == 1 {
            counts.add(self.remove_deleted_records(&follower).await?);
        }
        Ok(counts)
    }

    /// Removes the chunks of records the collection no longer has.
    async fn remove_deleted_records(
        &self,
        follower: &DocumentsFollower<'_>,
    ) -> Result<IngestCounts> {
        let service = self.service.clone();
        let source = self.config.clone();
        let stored = tokio::task::spawn_blocking(move || service.stored_ids(&source))
            .await
            .context("the listing task panicked")?
            .map_err(|e| anyhow!("source `{}`: {e}", self.config.name))?;
        let gone = follower.missing(&stored).await?;
        let ids: Vec<String> = gone
            .iter()
            .map(|id| RagService::document_id(&self.config.name, id))
            .collect();
        let service = self.service.clone();
        let source = self.config.clone();
        tokio::task::spawn_blocking(move || service.remove(&source, &ids))
            .await
            .context("the removal task panicked")?
            .map_err(|e| anyhow!("source `{}`: {e}", self.config.name))
    }
}
