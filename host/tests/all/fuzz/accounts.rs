//! The scraper's `accounts_file`, through [`parse_accounts`] (what `load_accounts` runs
//! on the file's text).
//!
//! Generated: files of lines built from fields — handles valid and not, passwords that
//! carry a planted secret (with `:` and `@` in them), emails with and without `@`, TOTP
//! secrets valid, short, lower-case, padded or not base32 — joined by `:` or by the wrong
//! separator, with comments, blank lines, CRLF, odd whitespace and unicode; and raw
//! text. Checked: no panic; a refusal names the file and a line that exists, and never
//! quotes a password, email or TOTP secret; every accepted account has a valid handle, a
//! password, an email with `@`, its own line, a case-insensitively unique handle and a
//! 16-hex-digit fingerprint, and its `Debug` form hides the secrets.

use bolero::generator::TypeGenerator;
use impressox_host::scraper::accounts::{Account, is_handle, parse_accounts};

use super::mutate::{ODD, Text};
use super::{Meter, budget};

const ORIGIN: &str = "/etc/impressox/x-accounts.txt";

/// Planted in passwords, emails and TOTP secrets: must never appear in an error.
const SECRET_PASSWORD: &str = "Pl4nted!Pass";
const SECRET_EMAIL: &str = "planted.mailbox@example.com";
const SECRET_TOTP: &str = "JBSWY3DPEHPK3PXPQRSTUVWX";

const WORDS: &[&str] = &[
    "alice",
    "Bob_2",
    "ALICE",
    "toolonghandle_1234",
    "bad name",
    "dash-ed",
    "a",
    "pw",
    "p@ss",
    "hunter2:with:colons",
    "a@b.c",
    "no-email-here",
    "JBSWY3DPEHPK3PXP",
    "jbswy3dpehpk3pxp",
    "JBSW Y3DP EHPK 3PXP",
    "JBSWY3DPEHPK3PXP====",
    "ABC",
    "JBSWY3DPEHPK3PX1",
    "#",
    "",
];

#[derive(Debug, Clone, TypeGenerator)]
enum Field {
    Word(u8),
    SecretPassword {
        before: Option<Text>,
        after: Option<Text>,
    },
    SecretEmail,
    SecretTotp,
    Other(Text),
}

#[derive(Debug, Clone, TypeGenerator)]
enum Line {
    Fields {
        fields: Vec<Field>,
        sep: u8,
        pad: Option<u8>,
        crlf: bool,
    },
    Comment(Text),
    Blank,
    Raw(String),
}

const SEPARATORS: &[&str] = &[":", ":", ":", ":", ";", "::", " : ", "\t", "："];

impl Field {
    fn render(&self) -> String {
        match self {
            Field::Word(i) => WORDS[usize::from(*i) % WORDS.len()].to_string(),
            Field::SecretPassword { before, after } => format!(
                "{}{SECRET_PASSWORD}{}",
                before.as_ref().map(|t| t.render(WORDS)).unwrap_or_default(),
                after.as_ref().map(|t| t.render(WORDS)).unwrap_or_default()
            ),
            Field::SecretEmail => SECRET_EMAIL.to_string(),
            Field::SecretTotp => SECRET_TOTP.to_string(),
            Field::Other(t) => t.render(WORDS),
        }
    }
}

impl Line {
    fn render(&self) -> String {
        match self {
            Line::Fields {
                fields,
                sep,
                pad,
                crlf,
            } => {
                let sep = SEPARATORS[usize::from(*sep) % SEPARATORS.len()];
                let body: Vec<String> = fields.iter().take(8).map(Field::render).collect();
                let pad = pad.map(|i| ODD[usize::from(i) % ODD.len()]).unwrap_or("");
                format!(
                    "{pad}{}{pad}{}",
                    body.join(sep),
                    if *crlf { "\r" } else { "" }
                )
            }
            Line::Comment(t) => format!("# {}", t.render(WORDS)),
            Line::Blank => String::new(),
            Line::Raw(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, TypeGenerator)]
enum File {
    Lines(Vec<Line>),
    Raw(String),
}

impl File {
    fn render(&self) -> String {
        match self {
            File::Lines(lines) => {
                let lines: Vec<String> = lines.iter().take(16).map(Line::render).collect();
                lines.join("\n")
            }
            File::Raw(s) => s.clone(),
        }
    }
}

#[test]
fn accounts_files() {
    let meter = Meter::start("accounts");
    bolero::check!()
        .with_type::<File>()
        .with_test_time(budget())
        .for_each(|file| {
            let text = file.render();
            meter.input(text.as_bytes(), || match parse_accounts(&text, ORIGIN) {
                Ok(accounts) => assert_sound(&accounts, &text),
                Err(e) => {
                    let msg = format!("{e:#}");
                    let lines = text.lines().count();
                    let line: Option<usize> = msg
                        .strip_prefix(&format!("accounts_file {ORIGIN} line "))
                        .and_then(|rest| rest.split(':').next())
                        .and_then(|n| n.parse().ok());
                    assert!(
                        line.is_some_and(|n| (1..=lines).contains(&n)),
                        "the error names no line of the file: {msg}; file {text:?}"
                    );
                    for secret in [SECRET_PASSWORD, SECRET_EMAIL, SECRET_TOTP] {
                        assert!(!msg.contains(secret), "the error quotes a secret: {msg}");
                    }
                }
            })
        });
    meter.finish();
}

fn assert_sound(accounts: &[Account], text: &str) {
    let mut handles = std::collections::HashSet::new();
    let mut last_line = 0;
    for a in accounts {
        assert!(is_handle(&a.username), "{a:?} from {text:?}");
        assert!(!a.password.expose().is_empty(), "{a:?} from {text:?}");
        assert!(a.email.expose().contains('@'), "{a:?} from {text:?}");
        assert!(a.line > last_line, "lines out of order in {text:?}");
        last_line = a.line;
        assert!(
            handles.insert(a.username.to_ascii_lowercase()),
            "duplicate handle {} accepted from {text:?}",
            a.username
        );
        assert!(
            a.fingerprint.len() == 16 && a.fingerprint.bytes().all(|b| b.is_ascii_hexdigit()),
            "{a:?}"
        );
        let shown = format!("{a:?}");
        for secret in [SECRET_PASSWORD, SECRET_EMAIL, SECRET_TOTP] {
            assert!(!shown.contains(secret), "Debug shows a secret: {shown}");
        }
    }
    assert!(last_line <= text.lines().count());
}
