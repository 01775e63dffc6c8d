//! The seam between the host's I/O and the capabilities it lends to plugins.
//!
//! [`Services`] is built once per host from the configuration and the stores the host
//! opened (`impressox run` shares its store and document store with the workers;
//! `impressox plugin run` and tests open their own with [`Services::open`]). At load,
//! [`Services::grant`] turns a plugin's `[plugins.grants.<name>]` into its [`Granted`]
//! state — its kv namespace, its collections, its notify source, its RAG collections —
//! which lives in the plugin's context for as long as that version serves. A runtime built
//! without services ([`Services::none`]) serves the pure kinds; a task or event handler
//! that imports a granted store capability is refused there at load, saying so. Outbound
//! HTTP needs no store, so every runtime has it (its limits and counters are the
//! runtime's). The `rag` capability's backend is the rag worker's service, which opens
//! later (it needs the runtime for its chunkers): the worker fills [`Services::rag_slot`]
//! when it starts and clears it when it stops.

use std::sync::Arc;

use anyhow::Result;

use super::budget::BudgetConfig;
use super::{docs, http, kv, notify, prices, rag};
use crate::config::{Config, Grants};
use crate::documents::Documents;
use crate::storage::Store;

/// What the capabilities of one host run on.
#[derive(Clone, Default)]
pub struct Services {
    budget: BudgetConfig,
    http: Arc<http::Http>,
    kv: Option<kv::Service>,
    docs: Option<docs::Service>,
    notify: Option<notify::Service>,
    prices: Option<prices::Service>,
    rag: Option<rag::Service>,
    /// Where the rag worker puts its service when it runs in this process (the `rag`
    /// capability's backend: the worker opens after the capabilities are built).
    rag_slot: rag::Slot,
    /// The embedder's token count for doc-chunkers (`[rag.embedder] model_dir`).
    tokens: Arc<crate::rag::Tokens>,
}

impl Services {
    /// No backends: for runtimes that call only pure plugins, and for `plugin check`.
    pub fn none(config: &Config) -> Services {
        Services {
            budget: config.capabilities.budget(),
            http: Arc::new(http::Http::new(&config.plugins.http)),
            tokens: Arc::new(crate::rag::Tokens::from_model_dir(config.tokenizer_dir())),
            ..Default::default()
        }
    }

    /// Every capability, on the host's store and document store.
    pub fn new(config: &Config, store: Arc<dyn Store>, documents: Arc<dyn Documents>) -> Services {
        let caps = &config.capabilities;
        let rag_slot = rag::Slot::default();
        Services {
            budget: caps.budget(),
            http: Arc::new(http::Http::new(&config.plugins.http)),
            kv: Some(kv::Service::new(caps.kv, store.clone())),
            docs: Some(docs::Service::new(caps.docs, documents.clone())),
            notify: Some(notify::Service::new(store.clone(), documents)),
            prices: Some(prices::Service::new(caps.prices, &config.market, store)),
            rag: Some(rag::Service::new(caps.rag.clone(), rag_slot.clone())),
            rag_slot,
            tokens: Arc::new(crate::rag::Tokens::from_model_dir(config.tokenizer_dir())),
        }
    }

    /// Open the configured store and document store on the plugin I/O runtime (where the
    /// capabilities' waits run) and build every capability on them.
    pub fn open(config: &Config) -> Result<Services> {
        let rt = crate::runtime::deadline::io_runtime();
        let (store, documents) = rt.block_on(async {
            let limits = crate::storage::StoreLimits {
                history_len: config.market.history_len,
                stream_maxlen: config.market.stream_maxlen,
                ..Default::default()
            };
            let store = crate::storage::open(config, limits).await?;
            let documents = crate::documents::open(config).await?;
            anyhow::Ok((store, documents))
        })?;
        Ok(Services::new(config, store, documents))
    }

    /// Count tokens with `tokens` instead of the model folder's tokenizer (an embedder
    /// that owns its tokenizer; tests).
    pub fn with_tokens(mut self, tokens: Arc<crate::rag::Tokens>) -> Services {
        self.tokens = tokens;
        self
    }

    /// The embedder's token count lent to doc-chunkers.
    pub fn tokens(&self) -> &Arc<crate::rag::Tokens> {
        &self.tokens
    }

    /// The slot the rag worker fills with its service while it runs.
    pub fn rag_slot(&self) -> &rag::Slot {
        &self.rag_slot
    }

    /// Outbound HTTP: its per-plugin counters are rendered on `/metrics`.
    pub fn http(&self) -> &http::Http {
        &self.http
    }

    /// Plugin `name`'s state from its grants. Refused when a grant cannot be honoured: an
    /// invalid collection name or `http` entry, or (with `require_backends`) a capability the component
    /// imports and was granted but this host has no backend for.
    pub fn grant(
        &self,
        name: &str,
        grants: &Grants,
        imports: &[String],
        require_backends: bool,
    ) -> Result<Granted, String> {
        let imported = |key: &str| {
            imports
                .iter()
                .any(|i| matches!(super::policy_for(i), super::ImportPolicy::Grant { key: k, .. } if k == key))
        };
        if require_backends {
            let missing = [
                ("kv", grants.kv, self.kv.is_some()),
                ("docs", !grants.docs.is_empty(), self.docs.is_some()),
                ("notify", grants.notify, self.notify.is_some()),
                ("prices", grants.prices, self.prices.is_some()),
                ("rag", !grants.rag.is_empty(), self.rag.is_some()),
            ]
            .into_iter()
            .find(|(key, granted, present)| *granted && !present && imported(key));
            if let Some((key, _, _)) = missing {
                return Err(format!(
                    "plugin `{name}` imports the `{key}` capability and is granted it, but this \
                     process runs without the stores capabilities need (`impressox run` and \
                     `impressox plugin run` have them)"
                ));
            }
        }
        let docs = match (&self.docs, grants.docs.is_empty()) {
            (Some(service), false) => Some(service.grant(name, &grants.docs)?),
            _ => None,
        };
        let rag = match (&self.rag, grants.rag.is_empty()) {
            (Some(service), false) => Some(service.grant(name, &grants.rag)?),
            _ => None,
        };
        let http = self.http.for_plugin(name, &grants.http)?;
        // A doc-chunker sizes its chunks with the embedder's tokenizer: without it, it
        // cannot work, and is refused here naming the missing file.
        let imports_tokens = imports
            .iter()
            .any(|i| super::policy_for(i) == super::ImportPolicy::Chunker);
        let tokens = match imports_tokens {
            true => Some(
                self.tokens
                    .counter()
                    .map_err(|e| format!("plugin `{name}` counts tokens, but {e}"))?,
            ),
            false => None,
        };
        Ok(Granted {
            tokens,
            budget: self.budget,
            http,
            kv: self
                .kv
                .as_ref()
                .filter(|_| grants.kv)
                .map(|s| s.grant(name)),
            docs,
            notify: self
                .notify
                .as_ref()
                .filter(|_| grants.notify)
                .map(|s| s.grant(name)),
            prices: self
                .prices
                .as_ref()
                .filter(|_| grants.prices)
                .map(|s| s.grant()),
            rag,
        })
    }
}

/// One plugin's capabilities: what its grants give it, and its per-call budget.
#[derive(Default)]
pub struct Granted {
    pub budget: BudgetConfig,
    pub http: Option<Arc<http::PluginHttp>>,
    pub kv: Option<kv::Granted>,
    pub docs: Option<docs::Granted>,
    pub notify: Option<notify::Granted>,
    pub prices: Option<Arc<prices::Granted>>,
    pub rag: Option<rag::Granted>,
    /// The embedder's token count (doc-chunkers).
    pub tokens: Option<Arc<dyn crate::rag::TokenCounter>>,
}

impl std::fmt::Debug for Granted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Granted")
            .field("budget", &self.budget)
            .field("http", &self.http.is_some())
            .field("kv", &self.kv.is_some())
            .field("docs", &self.docs.is_some())
            .field("notify", &self.notify.is_some())
            .field("prices", &self.prices.is_some())
            .field("rag", &self.rag.is_some())
            .field("tokens", &self.tokens.is_some())
            .finish()
    }
}
