//! `discord-message`: renders a notification as a Discord incoming-webhook message: one
//! embed with the title, the body as its description, the notification's scalar data as
//! inline fields (`symbol`, `price`, ...), its time and a footer; mentions off (an alert's
//! text can never ping `@everyone`).
//!
//! Critical notifications stand out: a red embed and `🚨 **Critical**` as the message
//! content (a normal alert is blue, without content).
//!
//! Discord's limits are kept, in characters: title 256, description 4,096, at most 25
//! fields of name 256 and value 1,024, footer 2,048, content 2,000, and 6,000 over all the
//! embed's text; longer texts are cut with `…`.
//!
//! Any other channel gets plain text (`[CRITICAL] ` marker, title, newline, body).

use impressox_plugin_sdk::types::{Notification, ParseMode, Priority, RenderedMessage};
use impressox_plugin_sdk::{NotifyFormatter, export_notify_formatter};
use serde_json::{Value, json};

pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 4096;
pub const MAX_FIELDS: usize = 25;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_FIELD_VALUE: usize = 1024;
pub const MAX_EMBED_TOTAL: usize = 6000;
pub const MAX_CONTENT: usize = 2000;

/// Embed colours: red for critical, blue otherwise.
pub const RED: u32 = 0xE0_31_31;
pub const BLUE: u32 = 0x1C_7E_D6;

/// The plugin.
pub struct DiscordMessage;

impl NotifyFormatter for DiscordMessage {
    const NAME: &'static str = "discord-message";
    const DESCRIPTION: &'static str =
        "Discord webhook message (one embed, red for critical, limits kept); plain text elsewhere";

    fn format(n: Notification, channel: String) -> Result<Vec<RenderedMessage>, String> {
        let text = if channel == "discord" {
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

export_notify_formatter!(DiscordMessage);

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

/// `text` cut to at most `max` characters, with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// RFC 3339 (UTC, milliseconds) of Unix milliseconds, as Discord's `timestamp` takes it.
pub fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// The webhook message.
pub fn message(n: &Notification) -> Value {
    let critical = n.priority == Priority::Critical;
    let title = cut(&n.title, MAX_TITLE);
    let description = cut(&n.body, MAX_DESCRIPTION);
    let footer = cut(&format!("ImpressoX · {}", n.kind), 2048);
    let mut total = title.chars().count() + description.chars().count() + footer.chars().count();
    let data: Value = serde_json::from_str(&n.data_json).unwrap_or(Value::Null);
    let mut fields = Vec::new();
    if let Some(map) = data.as_object() {
        for (k, v) in map {
            let value = match v {
                Value::String(s) if !s.is_empty() => s.clone(),
                Value::Number(x) => x.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue, // nulls, objects and lists say nothing readable inline
            };
            let (name, value) = (cut(k, MAX_FIELD_NAME), cut(&value, MAX_FIELD_VALUE));
            let size = name.chars().count() + value.chars().count();
            if fields.len() == MAX_FIELDS || total + size > MAX_EMBED_TOTAL {
                break;
            }
            total += size;
            fields.push(json!({"name": name, "value": value, "inline": true}));
        }
    }
    let mut embed = json!({
        "title": title,
        "color": if critical { RED } else { BLUE },
        "timestamp": iso8601(n.created_at_ms),
        "footer": {"text": footer},
    });
    if !description.is_empty() {
        embed["description"] = json!(description);
    }
    if !fields.is_empty() {
        embed["fields"] = json!(fields);
    }
    let mut msg = json!({
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    });
    if critical {
        msg["content"] = json!(cut("🚨 **Critical**", MAX_CONTENT));
    }
    msg
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
            created_at_ms: 1_764_300_000_123,
        }
    }

    #[test]
    fn one_embed_with_the_data_as_fields() {
        let m = message(&n(
            Priority::Normal,
            "BTCUSDT above 70000",
            "BTCUSDT is 70123.40",
            r#"{"symbol":"BTCUSDT","price":70123.4,"note":null}"#,
        ));
        let e = &m["embeds"][0];
        assert_eq!(e["title"], "BTCUSDT above 70000");
        assert_eq!(e["description"], "BTCUSDT is 70123.40");
        assert_eq!(e["color"], BLUE);
        assert_eq!(e["timestamp"], "2025-11-28T03:20:00.123Z");
        assert_eq!(e["fields"].as_array().unwrap().len(), 2);
        assert_eq!(m["allowed_mentions"]["parse"], json!([]));
        assert!(m.get("content").is_none());
    }

    #[test]
    fn critical_is_a_red_embed_with_a_siren() {
        let m = message(&n(Priority::Critical, "t", "", "{}"));
        assert_eq!(m["embeds"][0]["color"], RED);
        assert!(m["content"].as_str().unwrap().starts_with("🚨"));
        assert!(m["embeds"][0].get("description").is_none());
    }

    #[test]
    fn discords_limits_are_kept() {
        let data: serde_json::Map<String, Value> = (0..40)
            .map(|i| (format!("k{i}"), json!("v".repeat(1500))))
            .collect();
        let m = message(&n(
            Priority::Normal,
            &"T".repeat(400),
            &"B".repeat(5000),
            &Value::Object(data).to_string(),
        ));
        let e = &m["embeds"][0];
        assert_eq!(e["title"].as_str().unwrap().chars().count(), MAX_TITLE);
        assert_eq!(
            e["description"].as_str().unwrap().chars().count(),
            MAX_DESCRIPTION
        );
        let fields = e["fields"].as_array().unwrap();
        assert!(fields.len() <= MAX_FIELDS);
        let total: usize = [&e["title"], &e["description"], &e["footer"]["text"]]
            .iter()
            .map(|v| v.as_str().unwrap().chars().count())
            .sum::<usize>()
            + fields
                .iter()
                .map(|f| {
                    f["name"].as_str().unwrap().chars().count()
                        + f["value"].as_str().unwrap().chars().count()
                })
                .sum::<usize>();
        assert!(total <= MAX_EMBED_TOTAL, "{total}");
        for f in fields {
            assert!(f["value"].as_str().unwrap().chars().count() <= MAX_FIELD_VALUE);
        }
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
