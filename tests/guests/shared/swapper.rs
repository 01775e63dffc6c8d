//! A formatter whose answer names the version that produced it, built twice (swap-v1,
//! swap-v2) for the hot-swap tests.

use impressox_plugin_sdk::types::{Notification, ParseMode, RenderedMessage};
use impressox_plugin_sdk::{NotifyFormatter, export_notify_formatter};

struct Swapper;

impl NotifyFormatter for Swapper {
    const NAME: &'static str = "swapper";

    fn format(n: Notification, _channel: String) -> Result<Vec<RenderedMessage>, String> {
        Ok(vec![RenderedMessage {
            text: format!("{}:{}", env!("CARGO_PKG_VERSION"), n.id),
            subject: None,
            html: None,
            parse_mode: ParseMode::Plain,
        }])
    }
}

export_notify_formatter!(Swapper);
