//! The stand-in's login flow (`POST /i/api/1.1/onboarding/task.json`) and TOTP.
//!
//! The login page's script posts one step at a time, `{"flow_token", "step", "value"}`, and
//! shows what the answer names next: `username` → (`challenge`: the account's email, for
//! accounts X finds suspicious) → `password` → (`code`: a TOTP code, for accounts with a secret)
//! → `done`. A wrong value answers `error` with X's message and the flow stays at that step, as
//! X's form does. Which step comes next is decided here, so the page's script stays dumb.
//!
//! TOTP is RFC 6238 with SHA-1, 30-second steps and 6 digits (what X's authenticator setup
//! uses); a code is accepted for the current and the previous step, so a code typed just
//! before a step boundary still works.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// A step of the flow: what the page asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Username,
    Challenge,
    Password,
    Code,
}

impl Step {
    pub fn parse(s: &str) -> Option<Step> {
        Some(match s {
            "username" => Step::Username,
            "challenge" => Step::Challenge,
            "password" => Step::Password,
            "code" => Step::Code,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Step::Username => "username",
            Step::Challenge => "challenge",
            Step::Password => "password",
            Step::Code => "code",
        }
    }

    /// X's message when this step's value is wrong.
    pub fn wrong_value_message(self) -> &'static str {
        match self {
            Step::Username => "Sorry, we could not find your account.",
            Step::Challenge => "Please enter the email address linked to your account.",
            Step::Password => "Wrong password!",
            Step::Code => "Your code was incorrect. Please try again.",
        }
    }
}

/// A login in progress: for which account, and what it waits for.
#[derive(Clone, Debug)]
pub struct Flow {
    pub username: String,
    pub waiting_for: Step,
}

/// The `count`-th code of a secret given as RFC 4648 base32 (spaces, `=` and case ignored),
/// with `digits` digits. `None` when the secret is not base32.
pub fn hotp(secret: &str, counter: u64, digits: u32) -> Option<String> {
    let cleaned: String = secret
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let key = data_encoding::BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .ok()?;
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    // RFC 4226 §5.3, dynamic truncation.
    let offset = (digest[19] & 0x0f) as usize;
    let value = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    let code = value % 10u32.pow(digits);
    Some(format!("{code:0width$}", width = digits as usize))
}

/// The 6-digit TOTP code of `secret` at `unix_secs`.
pub fn totp_at(secret: &str, unix_secs: u64) -> Option<String> {
    hotp(secret, unix_secs / 30, 6)
}

/// The code an authenticator shows now.
pub fn totp_now(secret: &str) -> Option<String> {
    totp_at(secret, unix_now())
}

/// Whether `code` is the current or the previous step's code of `secret`.
pub fn totp_accepts(secret: &str, code: &str, unix_secs: u64) -> bool {
    let code = code.trim();
    [unix_secs, unix_secs.saturating_sub(30)]
        .into_iter()
        .any(|t| totp_at(secret, t).is_some_and(|c| c == code))
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}
