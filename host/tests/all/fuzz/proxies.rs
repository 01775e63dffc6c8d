//! The scraper's `proxies_file`, through [`parse_proxies`] (what `load_proxies` runs on
//! the file's text).
//!
//! Generated: files of proxy URLs built from parts — schemes right and wrong, `://` or
//! not, credentials with a planted password (plain or percent-encoded, with broken
//! escapes), hosts (names, IPv4, bracketed IPv6, unicode, empty), ports in and out of
//! range, trailing slashes and paths — with comments and blank lines; and raw text.
//! Checked: no panic; a refusal names the file and a line that exists and never quotes
//! the password; an accepted proxy shows as `scheme://host:port` only (`Display`, `Debug`
//! and `server()` never carry the password), its server string parses back to the same
//! server, a user is never empty, and no two proxies share a server.

use bolero::generator::TypeGenerator;
use impressox_host::scraper::proxies::{ProxyUrl, parse_proxies};

use super::mutate::Text;
use super::{Meter, budget};

const ORIGIN: &str = "/etc/impressox/x-proxies.txt";

/// Planted as the password: must never appear in an error or a shown proxy.
const SECRET: &str = "Pl4ntedPr0xyPass";

const WORDS: &[&str] = &[
    "http",
    "https",
    "socks5",
    "HTTP",
    "socks4",
    "ftp",
    "",
    "proxy.example.com",
    "10.0.0.1",
    "[::1]",
    "[2001:db8::1]",
    "[::ffff:1.2.3.4]",
    "[]",
    "[zz]",
    "xn--nxasmq6b",
    "under_score.example",
    "user",
    "u%40ser",
    "8080",
    "0",
    "65535",
    "65536",
    "-1",
    "99999999999999999999",
    "/",
    "/path",
    "?q",
    "#frag",
];

#[derive(Debug, Clone, TypeGenerator)]
enum Part {
    Word(u8),
    Other(Text),
}

impl Part {
    fn render(&self) -> String {
        match self {
            Part::Word(i) => WORDS[usize::from(*i) % WORDS.len()].to_string(),
            Part::Other(t) => t.render(WORDS),
        }
    }
}

/// How the planted password is written.
#[derive(Debug, Clone, TypeGenerator)]
enum Password {
    Plain,
    /// Every byte as `%XX`.
    Encoded,
    /// With a broken escape after it.
    BrokenEscape(u8),
    Other(Text),
}

#[derive(Debug, Clone, TypeGenerator)]
enum Line {
    Url {
        scheme: Part,
        separator: bool,
        user: Option<(Part, Password)>,
        host: Part,
        port: Option<Part>,
        tail: Option<Part>,
    },
    Comment(Text),
    Blank,
    Raw(String),
}

impl Line {
    fn render(&self) -> String {
        match self {
            Line::Url {
                scheme,
                separator,
                user,
                host,
                port,
                tail,
            } => {
                let mut s = scheme.render();
                s.push_str(if *separator { "://" } else { ":/" });
                if let Some((user, password)) = user {
                    s.push_str(&user.render());
                    s.push(':');
                    s.push_str(&match password {
                        Password::Plain => SECRET.to_string(),
                        Password::Encoded => SECRET.bytes().map(|b| format!("%{b:02X}")).collect(),
                        Password::BrokenEscape(b) => format!("{SECRET}%{}", char::from(*b)),
                        Password::Other(t) => t.render(WORDS),
                    });
                    s.push('@');
                }
                s.push_str(&host.render());
                if let Some(port) = port {
                    s.push(':');
                    s.push_str(&port.render());
                }
                if let Some(tail) = tail {
                    s.push_str(&tail.render());
                }
                s
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

#[test]
fn proxies_files() {
    let meter = Meter::start("proxies");
    bolero::check!()
        .with_type::<File>()
        .with_test_time(budget())
        .for_each(|file| {
            let text = match file {
                File::Lines(lines) => lines
                    .iter()
                    .take(16)
                    .map(Line::render)
                    .collect::<Vec<_>>()
                    .join("\n"),
                File::Raw(s) => s.clone(),
            };
            meter.input(text.as_bytes(), || match parse_proxies(&text, ORIGIN) {
                Ok(proxies) => assert_sound(&proxies, &text),
                Err(e) => {
                    let msg = format!("{e:#}");
                    let line: Option<usize> = msg
                        .strip_prefix(&format!("proxies_file {ORIGIN} line "))
                        .and_then(|rest| rest.split(':').next())
                        .and_then(|n| n.parse().ok());
                    assert!(
                        line.is_some_and(|n| (1..=text.lines().count()).contains(&n)),
                        "the error names no line of the file: {msg}; file {text:?}"
                    );
                    assert!(
                        !msg.contains(SECRET),
                        "the error quotes the password: {msg}"
                    );
                }
            })
        });
    meter.finish();
}

fn assert_sound(proxies: &[ProxyUrl], text: &str) {
    let mut servers = std::collections::HashSet::new();
    for p in proxies {
        let server = p.server();
        for shown in [server.clone(), p.to_string(), format!("{p:?}")] {
            assert!(
                !shown.contains(SECRET),
                "a shown proxy carries the password: {shown}"
            );
        }
        assert!(servers.insert(server.clone()), "{server} twice in {text:?}");
        let again = ProxyUrl::parse(&server)
            .unwrap_or_else(|e| panic!("{server} (from {text:?}) does not parse back: {e}"));
        assert_eq!(again.server(), server);
        assert!(again.credentials().is_none());
        if let Some((user, _)) = p.credentials() {
            assert!(!user.is_empty(), "empty user accepted from {text:?}");
        }
    }
}
