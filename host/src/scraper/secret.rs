//! [`Secret`]: a credential (password, email, TOTP secret) that prints as `Secret(***)`.
//! It lives below both `accounts` (which reads them) and `totp` (which computes codes from
//! one), so neither has to import the other's types.

use std::fmt;

/// A credential: printable only on purpose, through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a credential.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The credential itself: for typing it into X's login form or computing a TOTP
    /// code, never for logs or errors.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
