//! TOTP codes for X's two-factor step (RFC 6238 over RFC 4226; design §3.4).
//!
//! What authenticator apps do for X: HMAC-SHA-1, 30-second steps from the Unix epoch, 6
//! digits. The secret is the base32 text X shows when 2FA is set up; people copy it with
//! spaces, in lower case or with `=` padding, so all of those are accepted.

use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::secret::Secret;

/// Seconds per code.
const STEP_SECS: u64 = 30;
/// Digits per code.
const DIGITS: u32 = 6;

/// Why a TOTP secret cannot be used. The message never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// The secret is not base32.
    #[error("the TOTP secret is not valid base32 (letters A-Z and digits 2-7)")]
    InvalidSecret,
    /// The secret is empty.
    #[error("the TOTP secret is empty")]
    Empty,
}

/// The 6-digit code for the 30-second step holding `unix_secs`.
pub fn code_at(secret: &Secret, unix_secs: u64) -> Result<String, TotpError> {
    let key = decode_secret(secret.expose())?;
    let code = hotp(&key, unix_secs / STEP_SECS, DIGITS);
    Ok(format!("{code:0width$}", width = DIGITS as usize))
}

/// The code for the current time (the clock read here, at the edge).
pub fn now(secret: &Secret) -> Result<String, TotpError> {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    code_at(secret, unix)
}

/// The key bytes of a base32 secret, after upper-casing and removing spaces and `=`.
pub(crate) fn decode_secret(secret: &str) -> Result<Vec<u8>, TotpError> {
    let cleaned = clean_secret(secret);
    if cleaned.is_empty() {
        return Err(TotpError::Empty);
    }
    data_encoding::BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map_err(|_| TotpError::InvalidSecret)
}

/// The secret as base32 proper: upper case, no spaces, no padding.
pub(crate) fn clean_secret(secret: &str) -> String {
    secret
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// RFC 4226 HOTP: HMAC-SHA-1 of the big-endian counter, dynamic truncation, `digits`.
fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        // HMAC accepts keys of any length; this arm cannot be reached.
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    // The low nibble of the last byte picks 4 bytes; 19 = 20-byte digest - 1.
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    binary % 10_u32.pow(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 seed, ASCII `12345678901234567890`, in base32.
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn rfc6238_sha1_vectors() {
        let key = decode_secret(RFC_SECRET).unwrap();
        assert_eq!(key, b"12345678901234567890");
        for (t, expected) in [
            (59_u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(format!("{:08}", hotp(&key, t / 30, 8)), expected, "T={t}");
            // The 6-digit code is the low six digits of the 8-digit one.
            let six = code_at(&Secret::new(RFC_SECRET), t).unwrap();
            assert_eq!(six, expected[2..], "T={t}");
        }
    }

    #[test]
    fn secret_with_spaces_and_lowercase_decodes() {
        let spaced = "gezd gnbv gy3t qojq gezd gnbv gy3t qojq";
        assert_eq!(
            code_at(&Secret::new(spaced), 59).unwrap(),
            code_at(&Secret::new(RFC_SECRET), 59).unwrap()
        );
        // Padding `=` is tolerated.
        assert_eq!(
            decode_secret("JBSWY3DPEHPK3PXP====").unwrap(),
            decode_secret("JBSWY3DPEHPK3PXP").unwrap()
        );
    }

    #[test]
    fn codes_change_every_thirty_seconds_and_keep_leading_zeros() {
        let s = Secret::new(RFC_SECRET);
        assert_eq!(code_at(&s, 1_111_111_109).unwrap(), "081804");
        assert_eq!(code_at(&s, 30).unwrap(), code_at(&s, 59).unwrap());
        assert_ne!(code_at(&s, 59).unwrap(), code_at(&s, 60).unwrap());
        assert_eq!(now(&s).unwrap().len(), 6);
    }

    #[test]
    fn invalid_secret_is_an_error_without_the_secret() {
        for bad in ["not base32 at all!", "ABCDEFGH1", "QQQ"] {
            let e = code_at(&Secret::new(bad), 0).unwrap_err();
            assert_eq!(e, TotpError::InvalidSecret, "{bad}");
            assert!(!e.to_string().contains(bad), "{e}");
        }
        assert_eq!(
            code_at(&Secret::new("  ="), 0).unwrap_err(),
            TotpError::Empty
        );
    }
}
