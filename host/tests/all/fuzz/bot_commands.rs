//! The Telegram bot's command parser, [`commands::parse`]: the text of every message a
//! chat sends the bot.
//!
//! Generated: command lines built from the bot's commands (with `@botname`, upper case,
//! near misses) and arguments that mean something to them (symbols, ops, prices in many
//! spellings, trigger modes, mute durations, link codes, rule ids), joined by odd
//! whitespace (tabs, newlines, no-break and ideographic spaces, zero-width spaces) and
//! unicode; and raw text. Checked: no panic; a refusal is the usage line of a command or
//! the help; an accepted `/watch` has an upper-case alphanumeric symbol, a finite positive
//! price and a consistent trigger, re-parses to itself when written back, and makes a
//! rule that the rules' own validation refuses at most for its symbol's length; a mute is
//! positive and at most 30 days; a link code and an id are well-formed.

use bolero::generator::TypeGenerator;
use impressox_host::market::rules::{Condition, Mode, Op, RuleSpec};
use impressox_host::notify::commands::{
    self, Command, HELP, MAX_MUTE_MS, MuteFor, USAGE_ALERTS, USAGE_MUTE, USAGE_START,
    USAGE_UNWATCH, USAGE_WATCH, Watch, valid_code,
};

use super::mutate::{Number, Text, mangle};
use super::{Meter, budget};

const COMMANDS: &[&str] = &[
    "/start", "/watch", "/alerts", "/unwatch", "/mute", "/help", "/WATCH", "/Mute",
];

const WORDS: &[&str] = &[
    "BTCUSDT",
    "btcusdt",
    "ETH-USDT",
    "BTC/USDT",
    "B",
    "ÄBC",
    "above",
    "below",
    "crosses_up",
    "crosses_down",
    "pct_change",
    "ABOVE",
    "70000",
    "70000.5",
    "7e4",
    "0x10",
    "-5",
    "0",
    "1e309",
    "inf",
    "NaN",
    "+70000",
    "70_000",
    "once",
    "every",
    "cooldown=600",
    "cooldown=0",
    "cooldown=4294967296",
    "COOLDOWN=60",
    "cooldown",
    "30m",
    "2h",
    "1d",
    "30d",
    "31d",
    "0m",
    "off",
    "OFF",
    "9223372036854775807m",
    "1.5h",
    "m",
    "ABCDEFGHIJKLMNOP",
    "abcdefghijklmnop",
    "ABCDEFGHIJKLMNO1",
    "tg-1000",
    "r_0123456789abcdef",
    "a/b",
    "@impressox_bot",
];

const SEPARATORS: &[&str] = &[
    " ", " ", " ", "  ", "\t", "\n", "\r\n", "\u{a0}", "\u{3000}", "\u{2003}", "\u{85}",
    "\u{200b}", "",
];

#[derive(Debug, Clone, TypeGenerator)]
enum Word {
    Known(u8),
    Number(Number),
    Other(Text),
}

#[derive(Debug, Clone, TypeGenerator)]
enum Line {
    Command {
        name: u8,
        mangled: Option<u8>,
        bot_suffix: bool,
        args: Vec<Word>,
        separators: Vec<u8>,
        lead: Option<u8>,
    },
    Raw(String),
}

impl Line {
    fn render(&self) -> String {
        match self {
            Line::Command {
                name,
                mangled,
                bot_suffix,
                args,
                separators,
                lead,
            } => {
                let sep = |i: usize| {
                    let s = separators.get(i).copied().unwrap_or(0);
                    SEPARATORS[usize::from(s) % SEPARATORS.len()]
                };
                let name = COMMANDS[usize::from(*name) % COMMANDS.len()];
                let mut s = lead.map(|i| sep(usize::from(i))).unwrap_or("").to_string();
                s.push_str(&match mangled {
                    Some(how) => mangle(name, *how),
                    None => name.to_string(),
                });
                if *bot_suffix {
                    s.push_str("@impressox_bot");
                }
                for (i, arg) in args.iter().take(6).enumerate() {
                    s.push_str(sep(i));
                    s.push_str(&match arg {
                        Word::Known(k) => WORDS[usize::from(*k) % WORDS.len()].to_string(),
                        Word::Number(n) => n.value().to_string(),
                        Word::Other(t) => t.render(WORDS),
                    });
                }
                s
            }
            Line::Raw(s) => s.clone(),
        }
    }
}

#[test]
fn command_lines() {
    let meter = Meter::start("bot_commands");
    bolero::check!()
        .with_type::<Line>()
        .with_test_time(budget())
        .for_each(|line| {
            let text = line.render();
            meter.input(text.as_bytes(), || match commands::parse(&text) {
                Ok(cmd) => assert_sound(&cmd, &text),
                Err(usage) => assert!(
                    [
                        HELP,
                        USAGE_START,
                        USAGE_WATCH,
                        USAGE_ALERTS,
                        USAGE_UNWATCH,
                        USAGE_MUTE
                    ]
                    .contains(&usage),
                    "an answer that is no usage line: {usage:?} for {text:?}"
                ),
            })
        });
    meter.finish();
}

fn assert_sound(cmd: &Command, text: &str) {
    match cmd {
        Command::Watch(w) => {
            assert!(
                !w.symbol.is_empty()
                    && w.symbol
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
                "{w:?} from {text:?}"
            );
            assert!(w.value.is_finite() && w.value > 0.0, "{w:?} from {text:?}");
            assert_eq!(
                w.trigger.mode == Mode::Cooldown,
                w.trigger.cooldown_secs.is_some_and(|s| s > 0),
                "{w:?} from {text:?}"
            );
            assert_ne!(w.op, Op::PctChange, "{text:?}");
            let again = written_back(w);
            assert_eq!(
                commands::parse(&again),
                Ok(cmd.clone()),
                "{again:?} (from {text:?}) parses to something else"
            );
            // The rule the bot creates for it (notify/bot.rs).
            let spec = RuleSpec {
                id: Some("tg-1".into()),
                user_id: "tg-1".into(),
                symbol: w.symbol.clone(),
                condition: Condition {
                    op: w.op,
                    value: w.value,
                    direction: None,
                    window_secs: None,
                },
                trigger: w.trigger.clone(),
                expires_at: None,
                channels: Some(vec!["telegram".into()]),
                processor: None,
                note: None,
            };
            if let Err(e) = spec.validate(true) {
                assert_eq!(e.field, "symbol", "{e} for {text:?}");
            }
        }
        Command::Mute(MuteFor::Ms(ms)) => {
            assert!((1..=MAX_MUTE_MS).contains(ms), "{ms} from {text:?}");
        }
        Command::Mute(MuteFor::Off) | Command::Alerts | Command::Help => {}
        Command::Start { code } => {
            if let Some(code) = code {
                assert!(
                    valid_code(code) && code.to_ascii_uppercase() == *code,
                    "{text:?}"
                );
            }
        }
        Command::Unwatch { id } => {
            assert!(impressox_host::input::valid_key(id, 128), "{text:?}");
        }
    }
}

/// `/watch` written back as a person would type it.
fn written_back(w: &Watch) -> String {
    let op = serde_json::to_value(w.op).unwrap();
    let trigger = match (w.trigger.mode, w.trigger.cooldown_secs) {
        (Mode::Cooldown, Some(s)) => format!("cooldown={s}"),
        (Mode::Every, _) => "every".into(),
        _ => "once".into(),
    };
    format!(
        "/watch {} {} {} {trigger}",
        w.symbol,
        op.as_str().unwrap(),
        w.value
    )
}
