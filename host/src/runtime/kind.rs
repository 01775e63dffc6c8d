//! The seven plugin kinds: their world names, the interface each exports, and the typed
//! pre-instantiated component and bindings for each.

use std::fmt;

use serde::Serialize;
use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::state::StoreState;
use crate::bindings::{
    doc_chunker, event_handler, feed_parser, notify_formatter, rule_processor, scrape_parser, task,
    types,
};

/// A plugin kind (one WIT world each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Raw feed payload → price ticks.
    FeedParser,
    /// Tick batches + rules → alerts.
    RuleProcessor,
    /// Captured page → tweets, profiles, cursors.
    ScrapeParser,
    /// Notification + channel → rendered messages.
    NotifyFormatter,
    /// Scheduled run → report.
    Task,
    /// Stream event → outcome.
    EventHandler,
    /// Document → chunks with offsets and metadata (retrieval).
    DocChunker,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 7] = [
        Kind::FeedParser,
        Kind::RuleProcessor,
        Kind::ScrapeParser,
        Kind::NotifyFormatter,
        Kind::Task,
        Kind::EventHandler,
        Kind::DocChunker,
    ];

    /// This kind's position in [`Kind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The world's name, as in `wit/worlds.wit` and the CLI.
    pub fn world(self) -> &'static str {
        match self {
            Kind::FeedParser => "feed-parser",
            Kind::RuleProcessor => "rule-processor",
            Kind::ScrapeParser => "scrape-parser",
            Kind::NotifyFormatter => "notify-formatter",
            Kind::Task => "task",
            Kind::EventHandler => "event-handler",
            Kind::DocChunker => "doc-chunker",
        }
    }

    /// The interface a component of this kind exports.
    pub fn export_interface(self) -> &'static str {
        match self {
            Kind::FeedParser => "parse-feed",
            Kind::RuleProcessor => "process-rules",
            Kind::ScrapeParser => "parse-page",
            Kind::NotifyFormatter => "format-notification",
            Kind::Task => "run-task",
            Kind::EventHandler => "handle-event",
            Kind::DocChunker => "chunk-document",
        }
    }

    /// Parse a world name.
    pub fn from_world(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.world() == name)
    }

    /// The kind whose export interface is `name`.
    pub fn from_export_interface(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.export_interface() == name)
    }

    /// Pure kinds get only `log` (and doc-chunkers `tokens`, which does no I/O):
    /// everything else arrives as arguments.
    pub fn is_pure(self) -> bool {
        !matches!(self, Kind::Task | Kind::EventHandler)
    }

    pub(crate) fn from_wit(kind: types::PluginKind) -> Kind {
        match kind {
            types::PluginKind::FeedParser => Kind::FeedParser,
            types::PluginKind::RuleProcessor => Kind::RuleProcessor,
            types::PluginKind::ScrapeParser => Kind::ScrapeParser,
            types::PluginKind::NotifyFormatter => Kind::NotifyFormatter,
            types::PluginKind::Task => Kind::Task,
            types::PluginKind::EventHandler => Kind::EventHandler,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

/// Who a plugin says it is: its `info()`, whichever record its kind's interface returns
/// (`plugin-info`, or `chunker-info` for doc-chunkers, whose kind is their export).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    pub name: String,
    pub version: String,
    /// The kind it says it is (a doc-chunker's is its export's).
    pub kind: Kind,
    pub description: String,
}

impl Identity {
    fn from_info(info: types::PluginInfo) -> Identity {
        Identity {
            name: info.name,
            version: info.version,
            kind: Kind::from_wit(info.kind),
            description: info.description,
        }
    }
}

/// A component linked and type-checked against its kind's world, ready to instantiate.
pub(crate) enum KindPre {
    FeedParser(feed_parser::FeedParserPre<StoreState>),
    RuleProcessor(rule_processor::RuleProcessorPre<StoreState>),
    ScrapeParser(scrape_parser::ScrapeParserPre<StoreState>),
    NotifyFormatter(notify_formatter::NotifyFormatterPre<StoreState>),
    Task(task::TaskPre<StoreState>),
    EventHandler(event_handler::EventHandlerPre<StoreState>),
    DocChunker(doc_chunker::DocChunkerPre<StoreState>),
}

/// A live instance's typed exports.
pub(crate) enum KindBindings {
    FeedParser(feed_parser::FeedParser),
    RuleProcessor(rule_processor::RuleProcessor),
    ScrapeParser(scrape_parser::ScrapeParser),
    NotifyFormatter(notify_formatter::NotifyFormatter),
    Task(task::Task),
    EventHandler(event_handler::EventHandler),
    DocChunker(doc_chunker::DocChunker),
}

impl KindPre {
    /// Check `pre` against the world of `kind` (fails when an export is missing or typed
    /// differently).
    pub(crate) fn new(kind: Kind, pre: InstancePre<StoreState>) -> wasmtime::Result<KindPre> {
        Ok(match kind {
            Kind::FeedParser => KindPre::FeedParser(feed_parser::FeedParserPre::new(pre)?),
            Kind::RuleProcessor => {
                KindPre::RuleProcessor(rule_processor::RuleProcessorPre::new(pre)?)
            }
            Kind::ScrapeParser => KindPre::ScrapeParser(scrape_parser::ScrapeParserPre::new(pre)?),
            Kind::NotifyFormatter => {
                KindPre::NotifyFormatter(notify_formatter::NotifyFormatterPre::new(pre)?)
            }
            Kind::Task => KindPre::Task(task::TaskPre::new(pre)?),
            Kind::EventHandler => KindPre::EventHandler(event_handler::EventHandlerPre::new(pre)?),
            Kind::DocChunker => KindPre::DocChunker(doc_chunker::DocChunkerPre::new(pre)?),
        })
    }

    pub(crate) fn instantiate(
        &self,
        store: &mut Store<StoreState>,
    ) -> wasmtime::Result<KindBindings> {
        Ok(match self {
            KindPre::FeedParser(p) => KindBindings::FeedParser(p.instantiate(store)?),
            KindPre::RuleProcessor(p) => KindBindings::RuleProcessor(p.instantiate(store)?),
            KindPre::ScrapeParser(p) => KindBindings::ScrapeParser(p.instantiate(store)?),
            KindPre::NotifyFormatter(p) => KindBindings::NotifyFormatter(p.instantiate(store)?),
            KindPre::Task(p) => KindBindings::Task(p.instantiate(store)?),
            KindPre::EventHandler(p) => KindBindings::EventHandler(p.instantiate(store)?),
            KindPre::DocChunker(p) => KindBindings::DocChunker(p.instantiate(store)?),
        })
    }
}

impl KindBindings {
    /// The plugin's own `info()`.
    pub(crate) fn info(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Identity> {
        let from = Identity::from_info;
        match self {
            KindBindings::FeedParser(b) => {
                b.impressox_plugin_parse_feed().call_info(store).map(from)
            }
            KindBindings::RuleProcessor(b) => b
                .impressox_plugin_process_rules()
                .call_info(store)
                .map(from),
            KindBindings::ScrapeParser(b) => {
                b.impressox_plugin_parse_page().call_info(store).map(from)
            }
            KindBindings::NotifyFormatter(b) => b
                .impressox_plugin_format_notification()
                .call_info(store)
                .map(from),
            KindBindings::Task(b) => b.impressox_plugin_run_task().call_info(store).map(from),
            KindBindings::EventHandler(b) => {
                b.impressox_plugin_handle_event().call_info(store).map(from)
            }
            KindBindings::DocChunker(b) => {
                let info = b.impressox_plugin_chunk_document().call_info(store)?;
                Ok(Identity {
                    name: info.name,
                    version: info.version,
                    kind: Kind::DocChunker,
                    description: info.description,
                })
            }
        }
    }
}
