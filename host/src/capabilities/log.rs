//! `impressox:plugin/log`: plugin log lines into the host's tracing output, tagged with the
//! plugin's name. Messages are capped so a guest cannot flood the log with one call.

use crate::bindings::log::{Host, Level};
use crate::runtime::state::StoreState;

/// Longest message kept, in bytes.
const MAX_MESSAGE: usize = 8 * 1024;

impl Host for StoreState {
    fn log(&mut self, level: Level, message: String) {
        let plugin = self.plugin.name.as_str();
        let message = crate::util::truncate(&message, MAX_MESSAGE);
        match level {
            Level::Trace => tracing::trace!(target: "plugin", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "plugin", plugin, "{message}"),
            Level::Info => tracing::info!(target: "plugin", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "plugin", plugin, "{message}"),
            Level::Error => tracing::error!(target: "plugin", plugin, "{message}"),
        }
    }
}
