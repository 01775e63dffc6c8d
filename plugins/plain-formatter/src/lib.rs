//! `plain-formatter`: renders a notification as plain text (console, email, webhook).

use impressox_plugin_sdk::types::{Notification, ParseMode, Priority, RenderedMessage};
use impressox_plugin_sdk::{NotifyFormatter, export_notify_formatter};

/// The plugin.
pub struct PlainFormatter;

impl NotifyFormatter for PlainFormatter {
    const NAME: &'static str = "plain-formatter";
    const DESCRIPTION: &'static str = "plain text for console, email and webhook";

    fn format(n: Notification, channel: String) -> Result<Vec<RenderedMessage>, String> {
        Ok(vec![render(&n, &channel)])
    }
}

/// Render one notification; `critical` ones are marked so they stand out in a log.
pub fn render(n: &Notification, channel: &str) -> RenderedMessage {
    let marker = match n.priority {
        Priority::Critical => "[CRITICAL] ",
        Priority::Normal => "",
    };
    let text = if n.body.is_empty() {
        format!("{marker}{}", n.title)
    } else {
        format!("{marker}{}\n{}", n.title, n.body)
    };
    RenderedMessage {
        subject: (channel == "email").then(|| format!("{marker}{}", n.title)),
        html: None,
        text,
        parse_mode: ParseMode::Plain,
    }
}

export_notify_formatter!(PlainFormatter);
