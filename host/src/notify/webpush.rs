//! Web Push's two pieces of key material, shared by the preferences, the API, the CLI and
//! the `webpush` channel:
//!
//! - a [`Subscription`]: the browser's `PushSubscription` JSON as the page gets it from
//!   `pushManager.subscribe()` (`endpoint`, `keys.p256dh`, `keys.auth`); its canonical JSON is
//!   the delivery target, so a record carries everything its send needs even if the
//!   subscription is dropped from the preferences meanwhile;
//! - the [`Vapid`] key pair (RFC 8292): the raw 32-byte P-256 private key, base64url, as
//!   web-push libraries print it, from `IMPRESSOX_VAPID_PRIVATE_KEY`; its public key is what
//!   the page passes to `subscribe()` as `applicationServerKey`.
//!
//! The cryptography is web-push-native's (RustCrypto's p256, aes-gcm and hkdf); nothing here
//! computes more than encodings.

use serde::{Deserialize, Serialize};
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;
use web_push_native::jwt_simple::prelude::Duration;

use crate::input::FieldError;

/// The most subscriptions one user may keep (one per browser or device).
pub const MAX_SUBSCRIPTIONS: usize = 20;
/// The longest endpoint URL accepted (push services' URLs are a few hundred characters).
const MAX_ENDPOINT_LEN: usize = 2048;

/// A browser's push subscription. Its `Debug` shows the endpoint's origin only: the endpoint's
/// path and the keys are credentials.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// The push service URL for this browser (a capability: whoever knows it can push).
    pub endpoint: String,
    /// When the push service will drop it (ms since the epoch), if the browser says.
    #[serde(
        default,
        rename = "expirationTime",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiration_time: Option<f64>,
    pub keys: SubscriptionKeys,
}

/// The browser's encryption keys for one subscription (`Debug` never prints them).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    /// The browser's P-256 public key, uncompressed (65 bytes), base64url.
    pub p256dh: String,
    /// The 16-byte authentication secret, base64url.
    pub auth: String,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("endpoint", &self.shown())
            .field("expiration_time", &self.expiration_time)
            .field("keys", &self.keys)
            .finish()
    }
}

impl std::fmt::Debug for SubscriptionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubscriptionKeys { .. }")
    }
}

/// Decode base64url as browsers and libraries write it: with or without padding, and
/// tolerating the standard alphabet (`+/`) that some libraries print.
pub fn decode_b64url(text: &str) -> Option<Vec<u8>> {
    let t: String = text
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    data_encoding::BASE64URL_NOPAD.decode(t.as_bytes()).ok()
}

/// base64url without padding.
pub fn encode_b64url(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

impl Subscription {
    /// Check it as the preferences' field `field` (errors name the sub-field), and return it
    /// with its keys in canonical form (unpadded base64url).
    pub fn checked(&self, field: &str) -> Result<Subscription, FieldError> {
        let bad = |sub: &str, msg: &str| FieldError::new(&format!("{field}.{sub}"), msg);
        if self.endpoint.len() > MAX_ENDPOINT_LEN {
            return Err(bad(
                "endpoint",
                &format!("at most {MAX_ENDPOINT_LEN} characters"),
            ));
        }
        let url = reqwest::Url::parse(&self.endpoint)
            .map_err(|e| bad("endpoint", &format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none_or(str::is_empty) {
            return Err(bad(
                "endpoint",
                "must be the push service's https URL, as the browser gave it",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("endpoint", "must not carry credentials"));
        }
        let p256dh = decode_b64url(&self.keys.p256dh)
            .filter(|b| b.len() == 65 && b[0] == 4)
            .filter(|b| web_push_native::p256::PublicKey::from_sec1_bytes(b).is_ok())
            .ok_or_else(|| {
                bad(
                    "keys.p256dh",
                    "the browser's P-256 public key: 65 bytes (uncompressed point) in base64url",
                )
            })?;
        let auth = decode_b64url(&self.keys.auth)
            .filter(|b| b.len() == 16)
            .ok_or_else(|| bad("keys.auth", "the 16-byte auth secret in base64url"))?;
        Ok(Subscription {
            endpoint: self.endpoint.clone(),
            expiration_time: self.expiration_time,
            keys: SubscriptionKeys {
                p256dh: encode_b64url(&p256dh),
                auth: encode_b64url(&auth),
            },
        })
    }

    /// The delivery target: the canonical JSON (endpoint and keys; the expiration time is
    /// not part of the identity).
    pub fn target(&self) -> String {
        serde_json::json!({
            "endpoint": self.endpoint,
            "keys": {"p256dh": self.keys.p256dh, "auth": self.keys.auth},
        })
        .to_string()
    }

    /// Read a delivery target back.
    pub fn from_target(target: &str) -> Option<Subscription> {
        serde_json::from_str(target).ok()
    }

    /// The endpoint as people are shown it: scheme and host (the path is the credential).
    pub fn shown(&self) -> String {
        shown_origin(&self.endpoint)
    }
}

/// `scheme://host/…` of a URL whose path or query is a credential.
pub fn shown_origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("?")),
        Err(_) => "…".into(),
    }
}

/// The application server's VAPID key pair.
pub struct Vapid {
    key: ES256KeyPair,
    public_b64: String,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The public key only: the private one never reaches a log.
        f.debug_struct("Vapid")
            .field("public_key", &self.public_b64)
            .finish()
    }
}

impl Vapid {
    /// From the base64url of the raw 32-byte private key. The error never repeats the value.
    pub fn from_private_b64(text: &str) -> anyhow::Result<Vapid> {
        let raw = decode_b64url(text)
            .filter(|b| b.len() == 32)
            .ok_or_else(|| anyhow::anyhow!("not the base64url of a raw 32-byte P-256 key"))?;
        let key = ES256KeyPair::from_bytes(&raw)
            .map_err(|_| anyhow::anyhow!("not a valid P-256 private key"))?;
        Ok(Vapid::from_key(key))
    }

    fn from_key(key: ES256KeyPair) -> Vapid {
        let public_b64 = encode_b64url(&key.public_key().public_key().to_bytes_uncompressed());
        Vapid { key, public_b64 }
    }

    /// A new random key pair: (private, public), both base64url, as `webpush keygen` prints.
    pub fn generate() -> (String, String) {
        let key = ES256KeyPair::generate();
        let private = encode_b64url(&key.to_bytes());
        (private, Vapid::from_key(key).public_b64)
    }

    /// The public key (65 bytes uncompressed, base64url): the page's `applicationServerKey`
    /// and the `k=` of every `Authorization` header.
    pub fn public_key(&self) -> &str {
        &self.public_b64
    }

    /// The `Authorization` value for an endpoint: `vapid t=<ES256 JWT>, k=<public key>`,
    /// the JWT's `aud` the endpoint's origin, `exp` `valid_secs` from now, `sub` `subject`.
    ///
    /// The claims are built here rather than by web-push-native's `VapidSignature`, which
    /// leaves a non-default port out of `aud` (the origin includes it, and a push service on
    /// one — a stand-in, a self-hosted service — would refuse the token); the signing is
    /// jwt-simple's, as there.
    pub fn authorization(
        &self,
        endpoint: &str,
        valid_secs: u64,
        subject: &str,
    ) -> anyhow::Result<String> {
        let url = reqwest::Url::parse(endpoint)?;
        let origin = url.origin().ascii_serialization();
        let claims = Claims::create(Duration::from_secs(valid_secs))
            .with_audience(origin)
            .with_subject(subject);
        let token = self
            .key
            .sign(claims)
            .map_err(|e| anyhow::anyhow!("signing the VAPID token: {e}"))?;
        Ok(format!("vapid t={token}, k={}", self.public_b64))
    }
}

/// The VAPID public key for the private key in the environment variable `var`, if set
/// (for `GET /api/v1/webpush/public-key` on any host, with or without the notify worker).
pub fn public_key_from_env(var: &str) -> anyhow::Result<Option<String>> {
    match std::env::var(var).ok().filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => Vapid::from_private_b64(&text)
            .map(|v| Some(v.public_key().to_string()))
            .map_err(|e| anyhow::anyhow!("{var} ([notify.webpush] private_key_env): {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A browser's subscription, as the web-push-native crate's documentation gives it.
    const P256DH: &str =
        "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY";
    const AUTH: &str = "_ordMnz7uTCmrpBTeUV4Bw";

    fn sub(endpoint: &str, p256dh: &str, auth: &str) -> Subscription {
        Subscription {
            endpoint: endpoint.into(),
            expiration_time: None,
            keys: SubscriptionKeys {
                p256dh: p256dh.into(),
                auth: auth.into(),
            },
        }
    }

    #[test]
    fn debug_output_shows_the_origin_and_never_the_credentials() {
        let s = sub(
            "https://push.example.net/wpush/v2/secret-path",
            P256DH,
            AUTH,
        );
        let shown = format!("{s:?}");
        assert!(shown.contains("https://push.example.net/"), "{shown}");
        for secret in ["secret-path", P256DH, AUTH] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn a_browser_subscription_is_accepted_and_canonical() {
        let padded = format!("{AUTH}==");
        let s = sub("https://push.example.net/wpush/v2/abc", P256DH, &padded)
            .checked("s")
            .unwrap();
        assert_eq!(s.keys.auth, AUTH);
        let back = Subscription::from_target(&s.target()).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.shown(), "https://push.example.net/…");
    }

    #[test]
    fn bad_keys_and_endpoints_name_the_field() {
        let cases = [
            (sub("ftp://x/y", P256DH, AUTH), "s.endpoint"),
            (sub("https://x/y", "AAAA", AUTH), "s.keys.p256dh"),
            (sub("https://x/y", P256DH, "AAAA"), "s.keys.auth"),
        ];
        for (s, field) in cases {
            assert_eq!(s.checked("s").unwrap_err().field, field);
        }
        // 65 bytes that are not a point on the curve.
        let off_curve = encode_b64url(&[[4u8].as_slice(), &[7u8; 64]].concat());
        assert_eq!(
            sub("https://x/y", &off_curve, AUTH)
                .checked("s")
                .unwrap_err()
                .field,
            "s.keys.p256dh"
        );
    }

    #[test]
    fn generated_keys_load_back_and_sign() {
        let (private, public) = Vapid::generate();
        let v = Vapid::from_private_b64(&private).unwrap();
        assert_eq!(v.public_key(), public);
        assert_eq!(decode_b64url(&public).unwrap().len(), 65);
        let h = v
            .authorization("https://push.example.net:8443/x", 3600, "mailto:a@b.c")
            .unwrap();
        assert!(h.starts_with("vapid t=ey"), "{h}");
        assert!(h.ends_with(&format!("k={public}")));
        assert!(!format!("{v:?}").contains(&private));
        let e = Vapid::from_private_b64("not-a-key")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("not-a-key"));
    }
}
