//! The Telegram bot's commands (SPEC §9): `/start [code]`, `/watch`, `/alerts`,
//! `/unwatch`, `/mute`, `/help`, parsed from a message's text into [`Command`]. Pure: no
//! I/O, so every accepted and refused form is unit-tested here; `bot.rs` acts on them.
//!
//! Anything malformed or unknown is refused with the usage line of the command (or the
//! whole help for an unknown one), which the bot sends back as the reply: a chat user
//! learns the syntax from the answer instead of from silence.

use crate::market::rules::{Mode, Op, Trigger};

pub const USAGE_START: &str =
    "Usage: /start, or /start <code> with a code from POST /api/v1/users/{user_id}/telegram-link";
pub const USAGE_WATCH: &str = "Usage: /watch <SYMBOL> <above|below|crosses_up|crosses_down> <price> \
     [once|every|cooldown=<secs>], e.g. /watch BTCUSDT above 70000";
pub const USAGE_ALERTS: &str = "Usage: /alerts (lists your alerts)";
pub const USAGE_UNWATCH: &str = "Usage: /unwatch <id>, with an id from /alerts";
pub const USAGE_MUTE: &str =
    "Usage: /mute <duration> such as 30m, 2h or 1d (at most 30d), or /mute off";

/// Everything the bot understands, one usage line each.
pub const HELP: &str = "Usage:\n\
     /start - link this chat to your alerts\n\
     /watch <SYMBOL> <above|below|crosses_up|crosses_down> <price> [once|every|cooldown=<secs>], \
     e.g. /watch BTCUSDT above 70000\n\
     /alerts - list your alerts\n\
     /unwatch <id> - delete an alert\n\
     /mute <30m|2h|1d> - pause notifications; /mute off - resume";

/// The longest mute a command sets; a longer pause is a preferences change.
pub const MAX_MUTE_MS: i64 = 30 * 86_400_000;

/// A parsed command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Link the chat: to `tg-<chat id>`, or with a link code to the user who asked for it.
    Start {
        code: Option<String>,
    },
    Watch(Watch),
    Alerts,
    Unwatch {
        id: String,
    },
    Mute(MuteFor),
    Help,
}

/// `/watch BTCUSDT above 70000 [once|every|cooldown=<secs>]`
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    /// Upper-cased.
    pub symbol: String,
    pub op: Op,
    pub value: f64,
    pub trigger: Trigger,
}

/// `/mute 30m` or `/mute off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuteFor {
    /// Mute every kind for this long.
    Ms(i64),
    /// Clear the mutes.
    Off,
}

/// Parse a message's text. `Err` carries the reply: the usage of the command, or the
/// help for text that is not a known command.
pub fn parse(text: &str) -> Result<Command, &'static str> {
    let mut words = text.split_whitespace();
    let Some(first) = words.next() else {
        return Err(HELP);
    };
    let Some(name) = first.strip_prefix('/') else {
        return Err(HELP);
    };
    // In groups Telegram clients address a bot as `/watch@impressox_bot`.
    let name = name.split_once('@').map_or(name, |(n, _)| n);
    let args: Vec<&str> = words.collect();
    match name.to_ascii_lowercase().as_str() {
        "start" => match args.as_slice() {
            [] => Ok(Command::Start { code: None }),
            [code] if valid_code(code) => Ok(Command::Start {
                code: Some(code.to_ascii_uppercase()),
            }),
            _ => Err(USAGE_START),
        },
        "watch" => parse_watch(&args).map(Command::Watch).ok_or(USAGE_WATCH),
        "alerts" => match args.as_slice() {
            [] => Ok(Command::Alerts),
            _ => Err(USAGE_ALERTS),
        },
        "unwatch" => match args.as_slice() {
            [id] if crate::input::valid_key(id, 128) => Ok(Command::Unwatch {
                id: (*id).to_string(),
            }),
            _ => Err(USAGE_UNWATCH),
        },
        "mute" => match args.as_slice() {
            [arg] => parse_mute(arg).map(Command::Mute).ok_or(USAGE_MUTE),
            _ => Err(USAGE_MUTE),
        },
        "help" => Ok(Command::Help),
        _ => Err(HELP),
    }
}

/// A link code's shape: 16 base32 characters (either case: people retype them).
pub fn valid_code(code: &str) -> bool {
    code.len() == 16
        && code
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b))
}

fn parse_watch(args: &[&str]) -> Option<Watch> {
    let (symbol, op, value, mode) = match args {
        [s, o, v] => (s, o, v, None),
        [s, o, v, m] => (s, o, v, Some(m)),
        _ => return None,
    };
    let symbol = symbol.to_ascii_uppercase();
    // The rule's own validation checks the length; here only what is clearly not a pair.
    if !symbol.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let op = match op.to_ascii_lowercase().as_str() {
        "above" => Op::Above,
        "below" => Op::Below,
        "crosses_up" => Op::CrossesUp,
        "crosses_down" => Op::CrossesDown,
        _ => return None,
    };
    // `f64::from_str` also takes "inf" and "NaN"; a price is a positive finite number.
    let value: f64 = value
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)?;
    let trigger = match mode.map(|m| m.to_ascii_lowercase()) {
        None => Trigger::default(),
        Some(m) if m == "once" => Trigger::default(),
        Some(m) if m == "every" => Trigger {
            mode: Mode::Every,
            cooldown_secs: None,
        },
        Some(m) => {
            let secs: u32 = m.strip_prefix("cooldown=")?.parse().ok()?;
            if secs == 0 {
                return None;
            }
            Trigger {
                mode: Mode::Cooldown,
                cooldown_secs: Some(secs),
            }
        }
    };
    Some(Watch {
        symbol,
        op,
        value,
        trigger,
    })
}

fn parse_mute(arg: &str) -> Option<MuteFor> {
    let arg = arg.to_ascii_lowercase();
    if arg == "off" {
        return Some(MuteFor::Off);
    }
    let unit_ms = match arg.chars().last()? {
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    let n: i64 = arg[..arg.len() - 1].parse().ok()?;
    let ms = n.checked_mul(unit_ms)?;
    (n > 0 && ms <= MAX_MUTE_MS).then_some(MuteFor::Ms(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(text: &str) -> Watch {
        match parse(text) {
            Ok(Command::Watch(w)) => w,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn watch_with_the_default_trigger() {
        let w = watch("/watch BTCUSDT above 70000");
        assert_eq!(w.symbol, "BTCUSDT");
        assert_eq!(w.op, Op::Above);
        assert_eq!(w.value, 70000.0);
        assert_eq!(w.trigger, Trigger::default());
    }

    #[test]
    fn a_bot_name_suffix_is_stripped() {
        assert_eq!(
            watch("/watch@impressox_bot ETHUSDT below 3000.5"),
            Watch {
                symbol: "ETHUSDT".into(),
                op: Op::Below,
                value: 3000.5,
                trigger: Trigger::default(),
            }
        );
        assert_eq!(
            parse("/alerts@impressox_bot"),
            Ok(Command::Alerts),
            "commands without arguments too"
        );
    }

    #[test]
    fn triggers_and_case() {
        let w = watch("/watch btcusdt crosses_up 65000 cooldown=600");
        assert_eq!(w.symbol, "BTCUSDT", "the symbol is upper-cased");
        assert_eq!(w.op, Op::CrossesUp);
        assert_eq!(
            w.trigger,
            Trigger {
                mode: Mode::Cooldown,
                cooldown_secs: Some(600)
            }
        );
        assert_eq!(
            watch("/watch SOLUSDT crosses_down 150 every").trigger.mode,
            Mode::Every
        );
        assert_eq!(
            watch("/WATCH SOLUSDT BELOW 150 ONCE").trigger,
            Trigger::default()
        );
    }

    #[test]
    fn a_malformed_watch_gets_its_usage() {
        for text in [
            "/watch",
            "/watch BTCUSDT",
            "/watch BTCUSDT above",
            "/watch BTCUSDT sideways 70000",
            "/watch BTCUSDT above seventy",
            "/watch BTCUSDT above -5",
            "/watch BTCUSDT above 0",
            "/watch BTCUSDT above inf",
            "/watch BTCUSDT above NaN",
            "/watch BTCUSDT above 70000 sometimes",
            "/watch BTCUSDT above 70000 cooldown=",
            "/watch BTCUSDT above 70000 cooldown=0",
            "/watch BTCUSDT above 70000 cooldown=-1",
            "/watch BTCUSDT above 70000 once extra",
            "/watch BTC/USDT above 70000",
            "/watch BTCUSDT pct_change 5",
        ] {
            assert_eq!(parse(text), Err(USAGE_WATCH), "{text}");
        }
        assert!(USAGE_WATCH.contains("e.g. /watch BTCUSDT above 70000"));
    }

    #[test]
    fn mute_durations() {
        assert_eq!(
            parse("/mute 30m"),
            Ok(Command::Mute(MuteFor::Ms(1_800_000)))
        );
        assert_eq!(parse("/mute 2h"), Ok(Command::Mute(MuteFor::Ms(7_200_000))));
        assert_eq!(
            parse("/mute 1d"),
            Ok(Command::Mute(MuteFor::Ms(86_400_000)))
        );
        assert_eq!(parse("/mute off"), Ok(Command::Mute(MuteFor::Off)));
        assert_eq!(parse("/mute OFF"), Ok(Command::Mute(MuteFor::Off)));
        for text in [
            "/mute 5x",
            "/mute",
            "/mute 0m",
            "/mute -1h",
            "/mute h",
            "/mute 31d",
            "/mute 2h 3m",
            "/mute 1.5h",
        ] {
            assert_eq!(parse(text), Err(USAGE_MUTE), "{text}");
        }
    }

    #[test]
    fn start_alerts_unwatch_help() {
        assert_eq!(parse("/start"), Ok(Command::Start { code: None }));
        assert_eq!(
            parse("/start abcdefghijklmnop"),
            Ok(Command::Start {
                code: Some("ABCDEFGHIJKLMNOP".into())
            }),
            "codes are upper-cased"
        );
        assert_eq!(parse("/start short"), Err(USAGE_START));
        assert_eq!(
            parse("/start ABCDEFGHIJKLMNO1"),
            Err(USAGE_START),
            "1 is not base32"
        );
        assert_eq!(parse("/alerts all"), Err(USAGE_ALERTS));
        assert_eq!(
            parse("/unwatch tg-1000"),
            Ok(Command::Unwatch {
                id: "tg-1000".into()
            })
        );
        assert_eq!(parse("/unwatch"), Err(USAGE_UNWATCH));
        assert_eq!(parse("/unwatch a b"), Err(USAGE_UNWATCH));
        assert_eq!(parse("/unwatch a/b"), Err(USAGE_UNWATCH));
        assert_eq!(parse("/help"), Ok(Command::Help));
    }

    #[test]
    fn unknown_commands_and_plain_text_get_the_help() {
        assert_eq!(parse("/frobnicate"), Err(HELP));
        assert_eq!(parse("hello"), Err(HELP));
        assert_eq!(parse("   "), Err(HELP));
        assert!(HELP.contains("/watch") && HELP.contains("/mute"));
    }
}
