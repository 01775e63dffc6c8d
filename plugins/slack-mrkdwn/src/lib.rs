//! `slack-mrkdwn`: renders a notification as a Slack incoming-webhook message: `text` (the
//! fallback notifications and screen readers use) plus `blocks` in mrkdwn: a section with
//! the title in bold and the body, a section of the notification's scalar data as fields,
//! and a context line with the kind.
//!
//! Every piece of the notification is escaped as Slack requires (`&` → `&amp;`, `<` →
//! `&lt;`, `>` → `&gt;`), so an alert's text can never become a link or a `<!channel>`
//! mention. Critical notifications start with `:rotating_light:`.
//!
//! Slack's limits are kept, in characters: a section's text 3,000, at most 10 fields of
//! 2,000 each, `text` 40,000 (cut to 3,000 here: it is a preview); longer texts are cut
//! with `…` (before escaping, so an entity is never cut in half).
//!
//! Any other channel gets plain text (`[CRITICAL] ` marker, title, newline, body).

use impressox_plugin_sdk::types::{Notification, ParseMode, Priority, RenderedMessage};
use impressox_plugin_sdk::{NotifyFormatter, export_notify_formatter};
use serde_json::{Value, json};

pub const MAX_SECTION_TEXT: usize = 3000;
pub const MAX_FIELDS: usize = 10;
pub const MAX_FIELD_TEXT: usize = 2000;

/// The plugin.
pub struct SlackMrkdwn;

impl NotifyFormatter for SlackMrkdwn {
    const NAME: &'static str = "slack-mrkdwn";
    const DESCRIPTION: &'static str =
        "Slack webhook message (text + mrkdwn blocks, escaped); plain text elsewhere";

    fn format(n: Notification, channel: String) -> Result<Vec<RenderedMessage>, String> {
        let text = if channel == "slack" {
            message(&n).to_string()
        } else {
            plain(&n)
        };
        Ok(vec![RenderedMessage {
            text,
            subject: None,
            html: None,
            parse_mode: ParseMode::Plain,
        }])
    }
}

export_notify_formatter!(SlackMrkdwn);

fn plain(n: &Notification) -> String {
    let marker = match n.priority {
        Priority::Critical => "[CRITICAL] ",
        Priority::Normal => "",
    };
    if n.body.is_empty() {
        format!("{marker}{}", n.title)
    } else {
        format!("{marker}{}\n{}", n.title, n.body)
    }
}

/// Slack's escaping: the three characters its markup gives meaning.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` cut to at most `max` characters once escaped, with `…` when cut; the cut falls
/// before escaping, so no entity is split.
pub fn escaped_within(text: &str, max: usize) -> String {
    let full = escape(text);
    if full.chars().count() <= max {
        return full;
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let e = escape(c.encode_utf8(&mut [0; 4]));
        let n = e.chars().count();
        if used + n > max.saturating_sub(1) {
            break;
        }
        used += n;
        out.push_str(&e);
    }
    out.push('…');
    out
}

/// The webhook message.
pub fn message(n: &Notification) -> Value {
    let siren = if n.priority == Priority::Critical {
        ":rotating_light: "
    } else {
        ""
    };
    // "<siren>*<title>*\n<body>" within a section's limit: the title gets up to half.
    let title = escaped_within(&n.title, MAX_SECTION_TEXT / 2);
    let head = format!("{siren}*{title}*");
    let room = MAX_SECTION_TEXT - head.chars().count() - 1;
    let section_text = if n.body.is_empty() {
        head.clone()
    } else {
        format!("{head}\n{}", escaped_within(&n.body, room))
    };
    let mut blocks = vec![json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": section_text},
    })];
    let data: Value = serde_json::from_str(&n.data_json).unwrap_or(Value::Null);
    let fields: Vec<Value> = data
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let value = match v {
                Value::String(s) if !s.is_empty() => s.clone(),
                Value::Number(x) => x.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            let name = escaped_within(k, 200);
            let room = MAX_FIELD_TEXT - name.chars().count() - 3;
            Some(json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", escaped_within(&value, room))}))
        })
        .take(MAX_FIELDS)
        .collect();
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": format!("ImpressoX · {}", escaped_within(&n.kind, 200))}],
    }));
    let fallback = if n.body.is_empty() {
        format!("{siren}{}", n.title)
    } else {
        format!("{siren}{} — {}", n.title, n.body)
    };
    json!({
        "text": escaped_within(&fallback, MAX_SECTION_TEXT),
        "blocks": blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(priority: Priority, title: &str, body: &str, data: &str) -> Notification {
        Notification {
            id: "rule-42-1764300000".into(),
            user_id: "u1".into(),
            kind: "price_alert".into(),
            priority,
            title: title.into(),
            body: body.into(),
            data_json: data.into(),
            created_at_ms: 1_764_300_000_000,
        }
    }

    #[test]
    fn text_and_blocks_are_escaped() {
        let m = message(&n(
            Priority::Normal,
            "BTC > 70k & <!channel>",
            "a <https://x|link>",
            r#"{"symbol":"BTC<USDT>","price":70123.4}"#,
        ));
        assert_eq!(
            m["text"],
            "BTC &gt; 70k &amp; &lt;!channel&gt; — a &lt;https://x|link&gt;"
        );
        let section = m["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(
            section,
            "*BTC &gt; 70k &amp; &lt;!channel&gt;*\na &lt;https://x|link&gt;"
        );
        assert_eq!(m["blocks"][0]["text"]["type"], "mrkdwn");
        let fields = m["blocks"][1]["fields"].as_array().unwrap();
        assert!(
            fields
                .iter()
                .any(|f| f["text"] == "*symbol*\nBTC&lt;USDT&gt;")
        );
        let all = m.to_string();
        assert!(!all.contains("<!channel>") && !all.contains("<https"));
    }

    #[test]
    fn critical_gets_the_siren() {
        let m = message(&n(Priority::Critical, "t", "", "{}"));
        assert_eq!(m["text"], ":rotating_light: t");
        assert_eq!(m["blocks"][0]["text"]["text"], ":rotating_light: *t*");
        assert_eq!(
            m["blocks"].as_array().unwrap().len(),
            2,
            "no data: no fields block"
        );
    }

    #[test]
    fn limits_hold_and_cuts_never_split_an_entity() {
        let m = message(&n(
            Priority::Normal,
            &"<".repeat(4000),
            &"&".repeat(9000),
            "{}",
        ));
        let section = m["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(section.chars().count() <= MAX_SECTION_TEXT);
        assert!(section.ends_with('…'));
        let body = section.split('\n').nth(1).unwrap().trim_end_matches('…');
        assert!(body.len().is_multiple_of(5), "whole &amp; entities only");
        assert!(m["text"].as_str().unwrap().chars().count() <= MAX_SECTION_TEXT);
    }
}
