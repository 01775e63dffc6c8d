//! `accounts_file`: the X accounts the scraper logs in with (design §3.1).
//!
//! One `username:password:email[:totp_secret]` per line; blank lines and `#` comments are
//! skipped, surrounding whitespace ignored. A password may contain `:`, so a line is read
//! from both ends: the username is the first field; from the right, the last field is the
//! TOTP secret when it is valid base32 of at least 16 characters **and** the field before
//! it holds an `@` (the email); otherwise the last field is the email. What lies between
//! is the password.
//!
//! Passwords, emails and TOTP secrets are [`Secret`]s: `Debug` prints `Secret(***)`, there
//! is no `Display` or `Serialize`, and errors name the file and line number, never the
//! line's text.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

pub use super::secret::Secret;

/// One line of `accounts_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The X handle, as written in the file.
    pub username: String,
    /// The password (may contain `:`).
    pub password: Secret,
    /// The email X asks for in its "unusual activity" challenge.
    pub email: Secret,
    /// The base32 TOTP secret, when the account has 2FA.
    pub totp: Option<Secret>,
    /// The line number in the file (1-based), for messages.
    pub line: usize,
    /// First 16 hex digits of SHA-256 over username, password and TOTP secret: stored
    /// with the account's state so a changed line (the operator fixed or replaced the
    /// credentials) clears `login_failed` and `banned`, without storing the secrets.
    pub fingerprint: String,
}

/// Read and parse `accounts_file`; a file readable by group or others is logged as a
/// warning (it holds passwords), not refused.
pub fn load_accounts(path: &Path) -> Result<Vec<Account>> {
    let text = read_secret_file("accounts_file", path)?;
    parse_accounts(&text, &path.display().to_string())
}

/// Read a file of credentials named by config key `key`; one readable by group or others
/// is a logged warning, not an error.
pub fn read_secret_file(key: &str, path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {key} {}", path.display()))?;
    if let Some(warning) = permission_warning(key, path) {
        tracing::warn!(worker = "x-scraper", "{warning}");
    }
    Ok(text)
}

/// Parse the text of `accounts_file`; `origin` (the file's path) goes into errors.
pub fn parse_accounts(text: &str, origin: &str) -> Result<Vec<Account>> {
    let mut accounts: Vec<Account> = Vec::new();
    // Handles are case-insensitive on X: `Alice` and `alice` are one account.
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let account = parse_line(trimmed, line)
            .map_err(|reason| anyhow::anyhow!("accounts_file {origin} line {line}: {reason}"))?;
        if let Some(first) = first_line.insert(account.username.to_ascii_lowercase(), line) {
            bail!(
                "accounts_file {origin} line {line}: duplicate username `{}` (first on line {first})",
                account.username
            );
        }
        accounts.push(account);
    }
    Ok(accounts)
}

/// One non-blank line. The reason never quotes the line: it holds a password.
fn parse_line(text: &str, line: usize) -> Result<Account, String> {
    const SHAPE: &str = "expected username:password:email[:totp_secret]";
    let fields: Vec<&str> = text.split(':').collect();
    let n = fields.len();
    if n < 3 {
        return Err(format!("{SHAPE} (found {n} field(s))"));
    }
    let username = fields[0].trim();
    if !is_handle(username) {
        // Not quoted: with a wrong separator (`alice;pass;mail`) the "username" field is
        // the whole line, password included.
        return Err(if username.is_empty() {
            format!("{SHAPE} (the username is empty)")
        } else {
            "the username is not a valid X handle (letters, digits, '_', at most 15)".into()
        });
    }
    let last = fields[n - 1].trim();
    let before_last = fields[n - 2].trim();
    let (password_end, email, totp) = if n >= 4 && before_last.contains('@') && !last.contains('@')
    {
        if !is_totp_secret(last) {
            return Err(format!(
                "{SHAPE} (the field after the email is not a valid base32 TOTP secret of at \
                 least 16 characters: letters A-Z and digits 2-7)"
            ));
        }
        (n - 2, before_last, Some(Secret::new(last)))
    } else if last.contains('@') {
        (n - 1, last, None)
    } else {
        return Err(format!("{SHAPE} (no email with '@' found)"));
    };
    let password = fields[1..password_end].join(":");
    if password.is_empty() {
        return Err(format!("{SHAPE} (the password is empty)"));
    }
    let fingerprint = fingerprint(username, &password, totp.as_ref().map(Secret::expose));
    Ok(Account {
        username: username.to_string(),
        password: Secret::new(password),
        email: Secret::new(email),
        totp,
        line,
        fingerprint,
    })
}

/// An X handle: 1 to 15 ASCII letters, digits or `_`.
pub fn is_handle(s: &str) -> bool {
    (1..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Valid base32 of at least 16 characters (spaces and `=` padding allowed, any case).
fn is_totp_secret(s: &str) -> bool {
    let cleaned = super::totp::clean_secret(s);
    cleaned.len() >= 16 && super::totp::decode_secret(s).is_ok()
}

fn fingerprint(username: &str, password: &str, totp: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(username.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    h.update([0]);
    h.update(totp.unwrap_or("").as_bytes());
    hex::encode(h.finalize())[..16].to_string()
}

/// A warning when a credentials file (`key` is its config key) can be read by group or
/// others; `None` when it cannot, or when its mode cannot be read.
pub fn permission_warning(key: &str, path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    mode_warning(key, path, mode)
}

fn mode_warning(key: &str, path: &Path, mode: u32) -> Option<String> {
    (mode & 0o077 != 0).then(|| {
        format!(
            "{key} {} can be read by other users (mode {:o}); it holds credentials: chmod 600 it",
            path.display(),
            mode & 0o777
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOTP: &str = "JBSWY3DPEHPK3PXP";

    fn parse(text: &str) -> Result<Vec<Account>> {
        parse_accounts(text, "/etc/x-accounts.txt")
    }

    #[test]
    fn parses_three_and_four_field_lines() {
        let text = format!(
            "# comment\n\nalice:pw1:alice@example.com\n  bob:pw2:bob@example.com:{TOTP}  \r\n"
        );
        let accounts = parse(&text).unwrap();
        assert_eq!(accounts.len(), 2);
        let a = &accounts[0];
        assert_eq!(
            (
                a.username.as_str(),
                a.password.expose(),
                a.email.expose(),
                a.line
            ),
            ("alice", "pw1", "alice@example.com", 3)
        );
        assert!(a.totp.is_none());
        let b = &accounts[1];
        assert_eq!(
            (
                b.username.as_str(),
                b.password.expose(),
                b.email.expose(),
                b.line
            ),
            ("bob", "pw2", "bob@example.com", 4)
        );
        assert_eq!(b.totp.as_ref().map(Secret::expose), Some(TOTP));
        assert_eq!(a.fingerprint.len(), 16);
        assert_ne!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn password_may_contain_colons() {
        let text = format!(
            "alice:hunter2:with:colons:alice@example.com\n\
             bob:a:b@c:bob@example.com:{TOTP}\n\
             carol:p@ss:carol@example.com\n"
        );
        let accounts = parse(&text).unwrap();
        assert_eq!(accounts[0].password.expose(), "hunter2:with:colons");
        assert_eq!(accounts[0].email.expose(), "alice@example.com");
        assert_eq!(accounts[1].password.expose(), "a:b@c");
        assert!(accounts[1].totp.is_some());
        assert_eq!(accounts[2].password.expose(), "p@ss");
    }

    #[test]
    fn a_short_or_non_base32_last_field_is_not_a_totp_secret() {
        // `ABC` after an email: not a secret, and no email at the end either.
        let e = parse("alice:pw:alice@example.com:ABC\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
        assert!(e.contains("TOTP secret"), "{e}");
        assert!(!e.contains("ABC"), "{e}");
    }

    #[test]
    fn malformed_line_names_its_number_and_not_its_secret() {
        let text = "alice:pw:alice@example.com\nbob:Sup3rSecret!:no-email-here\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("/etc/x-accounts.txt"), "{e}");
        assert!(e.contains("no email with '@' found"), "{e}");
        assert!(!e.contains("Sup3rSecret"), "{e}");
        assert!(!e.contains("no-email-here"), "{e}");

        let e = parse("Sup3rSecret!\n").unwrap_err().to_string();
        assert!(e.contains("line 1") && !e.contains("Sup3rSecret"), "{e}");
        // A wrong separator puts the password into the username field.
        let e = parse("alice;Sup3rSecret!;a@b.c:x:y@z.c\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 1: the username is not a valid X handle"),
            "{e}"
        );
        assert!(!e.contains("Sup3rSecret"), "{e}");
        let e = parse("alice::alice@example.com\n").unwrap_err().to_string();
        assert!(e.contains("password is empty"), "{e}");
    }

    #[test]
    fn invalid_handle_is_refused() {
        for bad in ["toolonghandle_1234", "bad name", "dash-ed"] {
            let e = parse(&format!("{bad}:pw:a@b.c\n")).unwrap_err().to_string();
            assert!(
                e.contains("line 1: the username is not a valid X handle"),
                "{e}"
            );
        }
    }

    #[test]
    fn duplicate_username_is_refused() {
        let text = "alice:pw:a@b.c\n\nAlice:other:x@y.z\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(
            e.contains("line 3: duplicate username `Alice` (first on line 1)"),
            "{e}"
        );
        assert!(!e.contains("other"), "{e}");
    }

    #[test]
    fn debug_of_an_account_hides_secrets() {
        let text = format!("alice:Sup3rSecret!:alice@example.com:{TOTP}\n");
        let accounts = parse(&text).unwrap();
        let debug = format!("{accounts:?}");
        assert!(debug.contains("alice"), "{debug}");
        assert!(debug.contains("Secret(***)"), "{debug}");
        for secret in ["Sup3rSecret", "alice@example.com", TOTP] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }

    #[test]
    fn fingerprint_follows_password_and_totp_but_not_email() {
        let fp = |line: &str| parse(line).unwrap()[0].fingerprint.clone();
        let base = fp("alice:pw:a@b.c\n");
        assert_eq!(base, fp("alice:pw:other@b.c\n"));
        assert_ne!(base, fp("alice:pw2:a@b.c\n"));
        assert_ne!(base, fp(&format!("alice:pw:a@b.c:{TOTP}\n")));
    }

    #[test]
    fn readable_by_others_is_a_warning_naming_the_file() {
        let p = Path::new("/etc/x.txt");
        let w = mode_warning("accounts_file", p, 0o100644).unwrap();
        assert!(
            w.contains("accounts_file /etc/x.txt") && w.contains("644"),
            "{w}"
        );
        assert!(mode_warning("accounts_file", p, 0o100600).is_none());
        assert!(mode_warning("accounts_file", p, 0o100640).is_some());
    }

    #[test]
    fn load_reads_the_file_and_names_it_when_missing() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acc.txt");
        let e = load_accounts(&path).unwrap_err().to_string();
        assert!(e.contains("accounts_file") && e.contains("acc.txt"), "{e}");
        std::fs::write(&path, "alice:pw:a@b.c\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(permission_warning("accounts_file", &path).is_none());
        assert_eq!(load_accounts(&path).unwrap().len(), 1);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(permission_warning("accounts_file", &path).is_some());
    }
}
