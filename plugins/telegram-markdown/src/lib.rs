//! `telegram-markdown`: renders notifications as Telegram MarkdownV2.
//!
//! For channel `telegram` the message is the title in bold, a newline and the body:
//! `*BTCUSDT above 70000*\nBTCUSDT is 70123\.40 \(Binance\)`, with a leading `🚨 ` for
//! critical notifications. Title and body are escaped as Telegram requires outside code
//! entities: each of `` _ * [ ] ( ) ~ ` > # + - = | { } . ! `` and the backslash itself get
//! a backslash in front. Nothing else is escaped, so the text shows exactly as sent.
//!
//! Telegram accepts at most 4096 characters per message and counts UTF-16 code units, so
//! longer texts are split into several messages of at most 4096 UTF-16 units each. A split
//! never falls inside an escape sequence (`\x`) or inside the bold title, and prefers the
//! last newline in the second half of the window, then the last space there, then any
//! point between two characters; the newline or space split at is dropped. A title so long
//! that it cannot fit a message is cut, with `…`, so the bold markup stays balanced.
//!
//! Any other channel gets plain text (`[CRITICAL] ` marker, title, newline, body; the
//! title as subject for `email`), like `plain-formatter`.

use impressox_plugin_sdk::types::{Notification, ParseMode, Priority, RenderedMessage};
use impressox_plugin_sdk::{NotifyFormatter, export_notify_formatter};

/// Telegram's limit per message, in UTF-16 code units.
pub const TELEGRAM_LIMIT: usize = 4096;

/// The plugin.
pub struct TelegramMarkdown;

impl NotifyFormatter for TelegramMarkdown {
    const NAME: &'static str = "telegram-markdown";
    const DESCRIPTION: &'static str =
        "Telegram MarkdownV2 (escaped, split at 4096); plain text elsewhere";

    fn format(n: Notification, channel: String) -> Result<Vec<RenderedMessage>, String> {
        Ok(render(&n, &channel))
    }
}

export_notify_formatter!(TelegramMarkdown);

/// Render a notification for a channel.
pub fn render(n: &Notification, channel: &str) -> Vec<RenderedMessage> {
    if channel != "telegram" {
        return vec![plain(n, channel)];
    }
    telegram_parts(n, TELEGRAM_LIMIT)
        .into_iter()
        .map(|text| RenderedMessage {
            text,
            subject: None,
            html: None,
            parse_mode: ParseMode::MarkdownV2,
        })
        .collect()
}

/// Characters MarkdownV2 reserves outside code entities.
const SPECIAL: &[char] = &[
    '_', '*', '[', ']', '(', ')', '~', '`', '>', '#', '+', '-', '=', '|', '{', '}', '.', '!', '\\',
];

/// Escape text for MarkdownV2 outside code entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        if SPECIAL.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An indivisible piece of the rendered text.
struct Token {
    text: String,
    units: usize,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Newline,
    Space,
    Other,
}

fn units(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// The escaped tokens of `text`: one per character, an escape pair staying together.
fn push_tokens(tokens: &mut Vec<Token>, text: &str) {
    for c in text.chars() {
        let kind = match c {
            '\n' => Kind::Newline,
            ' ' => Kind::Space,
            _ => Kind::Other,
        };
        let text = if SPECIAL.contains(&c) {
            format!("\\{c}")
        } else {
            c.to_string()
        };
        tokens.push(Token {
            units: units(&text),
            text,
            kind,
        });
    }
}

/// The MarkdownV2 text of a notification, split into messages of at most `limit` UTF-16
/// units (`limit` is a parameter for tests; it must leave room for a short title).
fn telegram_parts(n: &Notification, limit: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    if n.priority == Priority::Critical {
        tokens.push(Token {
            text: "🚨 ".to_string(),
            units: units("🚨 "),
            kind: Kind::Other,
        });
    }
    // The bold title is one token, so no split falls inside it; cut it to fit if needed.
    let room = limit.saturating_sub(units("🚨 ") + 2);
    let mut title = escape(&n.title);
    if units(&title) > room {
        title = cut_escaped(&n.title, room.saturating_sub(1));
        title.push('…');
    }
    let bold = format!("*{title}*");
    tokens.push(Token {
        units: units(&bold),
        text: bold,
        kind: Kind::Other,
    });
    if !n.body.is_empty() {
        tokens.push(Token {
            text: "\n".to_string(),
            units: 1,
            kind: Kind::Newline,
        });
        push_tokens(&mut tokens, &n.body);
    }
    split(&tokens, limit)
}

/// The longest escaped prefix of `text` that fits in `room` units.
fn cut_escaped(text: &str, room: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let piece = if SPECIAL.contains(&c) {
            format!("\\{c}")
        } else {
            c.to_string()
        };
        let u = units(&piece);
        if used + u > room {
            break;
        }
        used += u;
        out.push_str(&piece);
    }
    out
}

/// Greedy split at token boundaries (see the crate docs for the preferences).
fn split(tokens: &[Token], limit: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut start = 0;
    while start < tokens.len() {
        // A part never starts with a newline (left over after a hard cut).
        if tokens.get(start).is_some_and(|t| t.kind == Kind::Newline) {
            start += 1;
            continue;
        }
        // The longest run of tokens from `start` that fits.
        let mut used = 0;
        let mut end = start;
        while let Some(t) = tokens.get(end) {
            if used + t.units > limit {
                break;
            }
            used += t.units;
            end += 1;
        }
        if end == start {
            // A single token longer than the limit cannot happen (tokens are at most one
            // escape pair, or the title cut to fit); skip it rather than loop forever.
            start += 1;
            continue;
        }
        let (cut, next) = if end >= tokens.len() {
            (end, end)
        } else {
            match break_point(tokens, start, end) {
                Some(b) => (b, b + 1),
                None => (end, end),
            }
        };
        let text: String = tokens
            .get(start..cut)
            .unwrap_or_default()
            .iter()
            .map(|t| t.text.as_str())
            .collect();
        if !text.is_empty() {
            parts.push(text);
        }
        start = next;
    }
    parts
}

/// The newline, else the space, to split at within `start..end`: the last one in the
/// window's second half, so parts do not come out tiny.
fn break_point(tokens: &[Token], start: usize, end: usize) -> Option<usize> {
    let window = tokens.get(start..end)?;
    let half_units: usize = window.iter().map(|t| t.units).sum::<usize>() / 2;
    let mut acc = 0;
    let mut second_half_from = start;
    for (i, t) in window.iter().enumerate() {
        if acc >= half_units {
            second_half_from = start + i;
            break;
        }
        acc += t.units;
    }
    [Kind::Newline, Kind::Space].into_iter().find_map(|kind| {
        (second_half_from..end)
            .rev()
            .find(|&i| tokens.get(i).is_some_and(|t| t.kind == kind))
    })
}

/// Plain text for other channels.
fn plain(n: &Notification, channel: &str) -> RenderedMessage {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn note(title: &str, body: &str, priority: Priority) -> Notification {
        Notification {
            id: "n1".into(),
            user_id: "u1".into(),
            kind: "price_alert".into(),
            priority,
            title: title.into(),
            body: body.into(),
            data_json: "{}".into(),
            created_at_ms: 0,
        }
    }

    fn utf16(s: &str) -> usize {
        s.encode_utf16().count()
    }

    /// A backslash at the end that escapes nothing (an odd number of trailing backslashes).
    fn ends_with_lone_backslash(s: &str) -> bool {
        s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
    }

    /// Undo the escaping, checking that every special character is escaped.
    fn unescape(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                let next = chars.next().expect("escape at the end");
                assert!(SPECIAL.contains(&next), "needless escape of {next:?}");
                out.push(next);
            } else {
                assert!(
                    !SPECIAL.contains(&c) || c == '*',
                    "unescaped {c:?} in {s:?}"
                );
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn escapes_every_special_character() {
        for c in "_*[]()~`>#+-=|{}.!\\".chars() {
            assert_eq!(escape(&c.to_string()), format!("\\{c}"), "{c}");
        }
        assert_eq!(escape("a b\nc:,;?/\"'<&%$@^"), "a b\nc:,;?/\"'<&%$@^");
        assert_eq!(escape("BTC-USD 1.5% (up)!"), "BTC\\-USD 1\\.5% \\(up\\)\\!");
        assert_eq!(escape("C:\\path"), "C:\\\\path");
        assert_eq!(escape("ünïcödé 🚀"), "ünïcödé 🚀");
    }

    #[test]
    fn renders_bold_title_and_body() {
        let m = render(
            &note(
                "BTCUSDT above 70000",
                "BTCUSDT is 70123.40 (Binance)",
                Priority::Normal,
            ),
            "telegram",
        );
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].text,
            "*BTCUSDT above 70000*\nBTCUSDT is 70123\\.40 \\(Binance\\)"
        );
        assert_eq!(m[0].parse_mode, ParseMode::MarkdownV2);
        assert_eq!(m[0].subject, None);
        let m = render(&note("a*b_c", "", Priority::Normal), "telegram");
        assert_eq!(m[0].text, "*a\\*b\\_c*");
    }

    #[test]
    fn critical_gets_a_siren() {
        let m = render(&note("Liquidation", "now", Priority::Critical), "telegram");
        assert_eq!(m[0].text, "🚨 *Liquidation*\nnow");
    }

    #[test]
    fn other_channels_get_plain_text() {
        let n = note("T.", "b (1)", Priority::Critical);
        let m = render(&n, "email");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].text, "[CRITICAL] T.\nb (1)");
        assert_eq!(m[0].subject.as_deref(), Some("[CRITICAL] T."));
        assert_eq!(m[0].parse_mode, ParseMode::Plain);
        assert_eq!(
            render(&note("T", "", Priority::Normal), "console")[0].text,
            "T"
        );
        assert_eq!(render(&n, "webhook")[0].subject, None);
    }

    fn check_parts(parts: &[RenderedMessage], limit: usize) {
        assert!(parts.len() > 1);
        for p in parts {
            assert!(utf16(&p.text) <= limit, "part of {} units", utf16(&p.text));
            assert!(!p.text.is_empty());
            assert!(
                !ends_with_lone_backslash(&p.text),
                "part ends inside an escape"
            );
            assert!(!p.text.starts_with('\n'));
            unescape(&p.text);
        }
    }

    #[test]
    fn long_body_is_split_into_valid_parts() {
        // 10,000 characters, full of characters that need escaping, with spaces and newlines.
        let unit = "Price 70123.40 (+1.5%) [BTC-USD] is_up! ";
        let mut body = String::new();
        let mut i = 0;
        while body.chars().count() < 10_000 {
            body.push_str(unit);
            i += 1;
            if i % 7 == 0 {
                body.push('\n');
            }
        }
        let body: String = body.chars().take(10_000).collect();
        let parts = render(&note("Report", &body, Priority::Normal), "telegram");
        check_parts(&parts, TELEGRAM_LIMIT);
        assert!(
            parts.len() >= 3,
            "escaping makes ~13,000 units: {}",
            parts.len()
        );
        assert!(parts[0].text.starts_with("*Report*\n"));
        // Nothing lost but the separators split at.
        let joined: String = parts
            .iter()
            .map(|p| unescape(&p.text))
            .collect::<Vec<_>>()
            .join("");
        let original = format!("*Report*\n{body}");
        let strip = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        assert_eq!(strip(&joined), strip(&original));
        // Splits prefer newlines: parts end where a line of the body ended.
        for p in &parts[..parts.len() - 1] {
            assert!(
                unescape(&p.text).ends_with(' '),
                "a line of the body ends with the unit's space"
            );
        }
    }

    #[test]
    fn a_body_of_only_special_characters_never_splits_an_escape() {
        let body = ".".repeat(10_000);
        let parts = render(&note("x", &body, Priority::Critical), "telegram");
        check_parts(&parts, TELEGRAM_LIMIT);
        let total: usize = parts
            .iter()
            .map(|p| unescape(&p.text).matches('.').count())
            .sum();
        assert_eq!(total, 10_000);
        let backslashes = "\\".repeat(9_999);
        let parts = render(&note("x", &backslashes, Priority::Normal), "telegram");
        check_parts(&parts, TELEGRAM_LIMIT);
    }

    #[test]
    fn utf16_length_counts_surrogate_pairs() {
        // 3,000 rocket emoji: 3,000 characters but 6,000 UTF-16 units.
        let body = "🚀".repeat(3_000);
        let parts = render(&note("t", &body, Priority::Normal), "telegram");
        check_parts(&parts, TELEGRAM_LIMIT);
        assert_eq!(parts.len(), 2);
        assert!(
            parts
                .iter()
                .all(|p| p.text.chars().count() < TELEGRAM_LIMIT)
        );
        // Exactly at the limit: one message.
        let body = "a".repeat(TELEGRAM_LIMIT - utf16("*t*\n"));
        assert_eq!(
            render(&note("t", &body, Priority::Normal), "telegram").len(),
            1
        );
        let body = "a".repeat(TELEGRAM_LIMIT - utf16("*t*\n") + 1);
        assert_eq!(
            render(&note("t", &body, Priority::Normal), "telegram").len(),
            2
        );
    }

    #[test]
    fn splits_prefer_newlines_then_spaces() {
        let n = note("t", "aaaa bbbb\ncccc dddd eeee", Priority::Normal);
        let parts = telegram_parts(&n, 16);
        assert_eq!(parts, vec!["*t*\naaaa bbbb", "cccc dddd eeee"]);
        let n = note("t", "aaaa bbbb cccc dddd", Priority::Normal);
        assert_eq!(telegram_parts(&n, 14), vec!["*t*\naaaa bbbb", "cccc dddd"]);
        // No break point: a hard cut, still between escape pairs.
        let n = note("t", "........", Priority::Normal);
        let parts = telegram_parts(&n, 9);
        assert!(
            parts
                .iter()
                .all(|p| utf16(p) <= 9 && !ends_with_lone_backslash(p)),
            "{parts:?}"
        );
    }

    #[test]
    fn a_huge_title_is_cut_and_stays_bold() {
        let title = "-".repeat(5_000);
        let parts = render(&note(&title, "body", Priority::Critical), "telegram");
        let first = &parts[0].text;
        assert!(utf16(first) <= TELEGRAM_LIMIT);
        assert!(first.starts_with("🚨 *\\-"));
        assert!(first.ends_with("…*"));
        assert!(!ends_with_lone_backslash(first.trim_end_matches("…*")));
        assert_eq!(parts.last().map(|p| p.text.as_str()), Some("body"));
    }
}
