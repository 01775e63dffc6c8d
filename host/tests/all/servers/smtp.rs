//! An SMTP sink for one test (docs/design/notify.md §7.3): PyPI's aiosmtpd from the test
//! virtualenv, running `python/impressox_smtp.py`'s `FaultyMailbox` on a free loopback port.
//!
//! It stores what it receives in a Maildir in a temporary dir, and refuses or stalls recipients
//! whose local part asks for it (`reject-550@…`, `reject-451@…`, `slow-<secs>@…`), so the email
//! channel's real client (lettre) sees real SMTP answers. [`SmtpServer::messages`] reads the
//! Maildir back with a small MIME reader: headers (unfolded, RFC 2047 words decoded) and the leaf
//! parts of a multipart message with their transfer encoding undone. It is only as thorough as
//! the tests need; the raw text is there for anything else.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::mongo::venv;
use super::redis::free_port;

/// How long a fresh server gets to accept connections before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a start is retried on a new port: the free port is found by binding and releasing
/// it, so another process may grab it in between.
const START_ATTEMPTS: usize = 3;

/// Where `impressox_smtp.py` lives, for `PYTHONPATH`.
const PYTHON_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/all/servers/python");

pub struct SmtpServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// One stored message.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The Maildir file name.
    pub file_name: String,
    /// The message as stored (line ends normalised to `\n`). aiosmtpd adds `X-Peer`,
    /// `X-MailFrom` and `X-RcptTo` (the envelope) at the end of the headers.
    pub raw: String,
    /// Top-level headers in order, unfolded, encoded words decoded.
    pub headers: Vec<(String, String)>,
    /// The leaf parts (for `multipart/*`, recursively), or the body as a single part.
    pub parts: Vec<MailPart>,
}

/// A leaf MIME part.
#[derive(Clone, Debug)]
pub struct MailPart {
    /// The media type, lower-cased, without parameters: `text/plain`, `text/html`.
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    /// The body with its transfer encoding (quoted-printable, base64) undone, read as UTF-8.
    pub body: String,
}

impl SmtpServer {
    /// Start a server on a free loopback port and wait until it accepts connections.
    pub fn start() -> SmtpServer {
        let dir = tempfile::Builder::new()
            .prefix("impressox-smtp-")
            .tempdir()
            .expect("temporary dir for the SMTP sink");
        let mut server = SmtpServer {
            port: 0,
            dir,
            child: None,
        };
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            match server.launch() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("the SMTP sink did not start after {START_ATTEMPTS} attempts: {last_error}");
    }

    /// Always `127.0.0.1`: the host to configure, with [`Self::port`]; plain SMTP, no TLS.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Maildir (`cur`, `new`, `tmp`).
    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// aiosmtpd's output so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("aiosmtpd.log")).unwrap_or_default()
    }

    /// Every message stored so far, in arrival order.
    pub fn messages(&self) -> Vec<Mail> {
        let Ok(entries) = std::fs::read_dir(self.maildir().join("new")) else {
            return Vec::new();
        };
        let mut files: Vec<(Vec<u64>, String, PathBuf)> = entries
            .flatten()
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (arrival_key(&name), name, e.path())
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, name, path)| {
                let bytes = std::fs::read(path).ok()?;
                Some(Mail::parse(name, &String::from_utf8_lossy(&bytes)))
            })
            .collect()
    }

    /// Wait until at least `n` messages are stored; false on timeout.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let stored = std::fs::read_dir(self.maildir().join("new"))
                .map(|entries| entries.count())
                .unwrap_or(0);
            if stored >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Kill the server (SIGKILL) and wait for it to exit. Does nothing if already stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn launch(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.path().join("aiosmtpd.log"))
            .map_err(|e| format!("cannot create the log file: {e}"))?;
        let child = Command::new(venv().join("bin/python"))
            // -n: as root, aiosmtpd would otherwise setuid to nobody and lose the Maildir.
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "impressox_smtp.FaultyMailbox"])
            .arg(self.maildir())
            .env("PYTHONPATH", PYTHON_DIR)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot run aiosmtpd: {e}"))?;
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!("aiosmtpd exited ({status}): {}", self.log()));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(format!(
            "not listening on {} after {READY_TIMEOUT:?}: {}",
            self.port,
            self.log()
        ))
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sort key of a Maildir name `<secs>.M<usec>P<pid>Q<n>.<host>` (Python's `mailbox`): the
/// microseconds are not zero-padded, so names do not sort as text.
fn arrival_key(name: &str) -> Vec<u64> {
    let unique = name.split('.').take(2).collect::<Vec<_>>().join(".");
    unique
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

impl Mail {
    fn parse(file_name: String, raw: &str) -> Mail {
        let raw = raw.replace("\r\n", "\n");
        let (headers, body) = split_headers(&raw);
        let mut parts = Vec::new();
        collect_parts(&headers, body, &mut parts);
        Mail {
            file_name,
            raw,
            headers,
            parts,
        }
    }

    /// A top-level header's value (the first, if repeated), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// `Message-ID`, with its angle brackets: `<d-1@impressox>`.
    pub fn message_id(&self) -> Option<&str> {
        self.header("Message-ID")
    }

    pub fn to(&self) -> Option<&str> {
        self.header("To")
    }

    pub fn from(&self) -> Option<&str> {
        self.header("From")
    }

    pub fn subject(&self) -> Option<&str> {
        self.header("Subject")
    }

    /// The whole `Content-Type` value, parameters included.
    pub fn content_type(&self) -> Option<&str> {
        self.header("Content-Type")
    }

    /// The envelope recipients (`RCPT TO`), from aiosmtpd's `X-RcptTo`.
    pub fn rcpt_to(&self) -> Vec<String> {
        self.header("X-RcptTo")
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default()
    }

    /// The first leaf part of this media type (`text/plain`, `text/html`).
    pub fn part(&self, content_type: &str) -> Option<&MailPart> {
        self.parts
            .iter()
            .find(|p| p.content_type.eq_ignore_ascii_case(content_type))
    }

    /// The decoded `text/plain` body.
    pub fn text(&self) -> Option<&str> {
        self.part("text/plain").map(|p| p.body.as_str())
    }

    /// The decoded `text/html` body.
    pub fn html(&self) -> Option<&str> {
        self.part("text/html").map(|p| p.body.as_str())
    }

    /// Whether `needle` is in the raw message, a decoded header or a decoded part.
    pub fn contains(&self, needle: &str) -> bool {
        self.raw.contains(needle)
            || self.headers.iter().any(|(_, v)| v.contains(needle))
            || self.parts.iter().any(|p| p.body.contains(needle))
    }
}

impl MailPart {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Headers (unfolded, decoded) and the body after the first empty line.
fn split_headers(text: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = match text.find("\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None if text.starts_with('\n') => ("", &text[1..]),
        None => (text, ""),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    for (_, value) in &mut headers {
        *value = decode_words(value);
    }
    (headers, body)
}

/// The media type of a `Content-Type` value and one of its parameters.
fn media_type(headers: &[(String, String)]) -> String {
    find_header(headers, "Content-Type")
        .unwrap_or("text/plain")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn parameter(headers: &[(String, String)], name: &str) -> Option<String> {
    let value = find_header(headers, "Content-Type")?;
    value.split(';').skip(1).find_map(|p| {
        let (key, value) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

fn collect_parts(headers: &[(String, String)], body: &str, parts: &mut Vec<MailPart>) {
    let content_type = media_type(headers);
    if content_type.starts_with("multipart/")
        && let Some(boundary) = parameter(headers, "boundary")
    {
        let delimiter = format!("--{boundary}");
        let mut sections = Vec::new();
        let mut current: Option<Vec<&str>> = None;
        for line in body.split('\n') {
            if line.trim_end() == delimiter || line.trim_end() == format!("{delimiter}--") {
                sections.extend(current.take());
                if line.trim_end().ends_with("--") {
                    break;
                }
                current = Some(Vec::new());
            } else if let Some(lines) = current.as_mut() {
                lines.push(line);
            }
        }
        sections.extend(current);
        for section in sections {
            let section = section.join("\n");
            let (part_headers, part_body) = split_headers(&section);
            collect_parts(&part_headers, part_body, parts);
        }
        return;
    }
    let encoding = find_header(headers, "Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => decode_base64(body),
        _ => body.as_bytes().to_vec(),
    };
    parts.push(MailPart {
        content_type,
        headers: headers.to_vec(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
}

fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 2; // a soft line break
                continue;
            }
            let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
            if let (Some(high), Some(low)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0_u32, 0);
    for sextet in text.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`) in a header value; the
/// whitespace between two adjacent encoded words goes, as the RFC says.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let Some(word) = encoded_word(&rest[start..]) else {
            out.push_str(&rest[..start + 2]);
            rest = &rest[start + 2..];
            after_word = false;
            continue;
        };
        let between = &rest[..start];
        if !(after_word && between.trim().is_empty()) {
            out.push_str(between);
        }
        out.push_str(&word.1);
        rest = &rest[start + word.0..];
        after_word = true;
    }
    out.push_str(rest);
    out
}

/// The length and decoded text of the encoded word at the start of `text`.
fn encoded_word(text: &str) -> Option<(usize, String)> {
    let inner = text.strip_prefix("=?")?;
    let mut fields = inner.splitn(3, '?');
    let charset = fields.next()?;
    let encoding = fields.next()?;
    let rest = fields.next()?;
    let end = rest.find("?=")?;
    let payload = &rest[..end];
    let bytes = match encoding {
        "b" | "B" => decode_base64(payload),
        "q" | "Q" => decode_quoted_printable(&payload.replace('_', " ")),
        _ => return None,
    };
    let length = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
    Some((length, String::from_utf8_lossy(&bytes).into_owned()))
}
