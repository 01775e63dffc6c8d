//! `StoredCookie`: the crate's own cookie shape, stored by the host in its key-value store, and
//! its conversions to and from CDP's `network::CookieParam` / `network::Cookie`.
//!
//! Our type is independent of chromiumoxide's so a chromiumoxide upgrade never changes what is
//! stored. Its `Debug` never prints the value (session cookies are credentials).

use std::fmt;

use chromiumoxide::cdp::browser_protocol::network::{
    Cookie, CookieParam, CookieSameSite, TimeSinceEpoch,
};
use serde::{Deserialize, Serialize};

use crate::error::BrowserError;

/// One cookie of an account's session, as stored between runs.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCookie {
    pub name: String,
    pub value: String,
    pub domain: String,
    #[serde(default = "root_path")]
    pub path: String,
    /// Seconds since the epoch; `None` for a session cookie.
    #[serde(default)]
    pub expires: Option<f64>,
    #[serde(default)]
    pub http_only: bool,
    #[serde(default)]
    pub secure: bool,
    /// `"Strict"`, `"Lax"` or `"None"` as CDP spells them.
    #[serde(default)]
    pub same_site: Option<String>,
}

fn root_path() -> String {
    "/".to_string()
}

impl fmt::Debug for StoredCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCookie")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .field("domain", &self.domain)
            .field("path", &self.path)
            .field("expires", &self.expires)
            .field("http_only", &self.http_only)
            .field("secure", &self.secure)
            .field("same_site", &self.same_site)
            .finish()
    }
}

impl StoredCookie {
    /// The CDP parameter for `Storage.setCookies`.
    pub(crate) fn to_param(&self) -> Result<CookieParam, BrowserError> {
        let mut p = CookieParam::new(self.name.clone(), self.value.clone());
        p.domain = Some(self.domain.clone());
        p.path = Some(self.path.clone());
        p.http_only = Some(self.http_only);
        p.secure = Some(self.secure);
        p.expires = self.expires.map(TimeSinceEpoch::new);
        if let Some(s) = &self.same_site {
            p.same_site = Some(s.parse::<CookieSameSite>().map_err(|_| {
                BrowserError::Cdp(format!(
                    "cookie {:?} for {}: same_site {s:?} is not Strict, Lax or None",
                    self.name, self.domain
                ))
            })?);
        }
        Ok(p)
    }

    /// Our form of a cookie read back with `Storage.getCookies`.
    pub(crate) fn from_cdp(c: &Cookie) -> StoredCookie {
        StoredCookie {
            name: c.name.clone(),
            value: c.value.clone(),
            domain: c.domain.clone(),
            path: c.path.clone(),
            // CDP reports -1 for session cookies (verified on Chromium 148).
            expires: (!c.session && c.expires >= 0.0).then_some(c.expires),
            http_only: c.http_only,
            secure: c.secure,
            same_site: c.same_site.as_ref().map(|s| s.as_ref().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie() -> StoredCookie {
        StoredCookie {
            name: "auth_token".into(),
            value: "s3cret-value".into(),
            domain: "127.0.0.1".into(),
            path: "/".into(),
            expires: Some(2_000_000_000.0),
            http_only: true,
            secure: false,
            same_site: Some("Lax".into()),
        }
    }

    #[test]
    fn debug_never_prints_the_value() {
        let s = format!("{:?}", cookie());
        assert!(s.contains("auth_token") && !s.contains("s3cret"), "{s}");
    }

    #[test]
    fn converts_to_a_cdp_param_with_every_field() {
        let p = cookie().to_param().unwrap();
        assert_eq!(p.name, "auth_token");
        assert_eq!(p.value, "s3cret-value");
        assert_eq!(p.domain.as_deref(), Some("127.0.0.1"));
        assert_eq!(p.http_only, Some(true));
        assert_eq!(p.same_site, Some(CookieSameSite::Lax));
        assert_eq!(
            p.expires.as_ref().map(|t| *t.inner()),
            Some(2_000_000_000.0)
        );
    }

    #[test]
    fn a_bad_same_site_names_the_cookie_not_its_value() {
        let mut c = cookie();
        c.same_site = Some("Sometimes".into());
        let e = c.to_param().unwrap_err().to_string();
        assert!(e.contains("auth_token") && e.contains("Sometimes"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn serde_fills_defaults_for_a_minimal_cookie() {
        let c: StoredCookie =
            serde_json::from_str(r#"{"name":"ct0","value":"v","domain":".x.com"}"#).unwrap();
        assert_eq!(c.path, "/");
        assert_eq!(c.expires, None);
        assert!(!c.http_only && !c.secure);
    }
}
