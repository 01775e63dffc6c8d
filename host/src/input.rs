//! Checking what users send (API bodies, stream entries, config seeds): one error type
//! that names the field, one JSON parser that fills it in, and the id alphabet that ids
//! share because they become parts of keys and URLs.

/// A validation failure naming the field, e.g. `condition.value`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// Why a JSON body was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyError {
    /// Not JSON at all.
    Syntax(String),
    /// JSON of the wrong shape; names the field.
    Field(FieldError),
}

/// Parse a JSON object into `T`, naming the failing field: its path for a wrong value
/// (`condition.value`), the field itself for a missing or unknown one, `body` for a body
/// that is not one object.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    // serde's derived structs also accept a JSON array, filling the fields in order: a
    // body of `["r1", "u1", ...]` would pass, and a wrong one would be reported at `[0]`.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(BodyError::Field(FieldError::new(
            "body",
            "expected a JSON object ({...}), not an array",
        )));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return BodyError::Syntax(format!("not valid JSON: {inner}"));
        }
        let msg = inner.to_string();
        let field = if path != "." {
            path
        } else if msg.starts_with("missing field") || msg.starts_with("unknown field") {
            // "missing field `id`", "unknown field `colour`, expected ...".
            msg.split('`').nth(1).unwrap_or("body").to_string()
        } else {
            "body".to_string()
        };
        BodyError::Field(FieldError::new(&field, msg))
    })?;
    // Deserializing stops after the first value; `{...} {...}` or `{...}x` is not one
    // object (serde_json::from_slice checks this, a bare Deserializer does not).
    de.end()
        .map_err(|e| BodyError::Syntax(format!("not valid JSON: {e}")))?;
    Ok(value)
}

/// 1..=`max` characters of letters, digits and `- _ . : @`.
pub fn valid_key(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u32,
        b: Option<Vec<u32>>,
    }

    #[test]
    fn errors_name_the_field() {
        let field = |text: &str| match parse_json::<T>(text.as_bytes()) {
            Err(BodyError::Field(f)) => f.field,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(field(r#"{}"#), "a");
        assert_eq!(field(r#"{"a": 1, "c": 2}"#), "c");
        assert_eq!(field(r#"{"a": "x"}"#), "a");
        assert_eq!(field(r#"{"a": 1, "b": [1, "x"]}"#), "b[1]");
        assert!(matches!(parse_json::<T>(b"{"), Err(BodyError::Syntax(_))));
        assert!(valid_key("rule-42_a.b:c@d", 128) && !valid_key("a b", 128) && !valid_key("", 1));
    }
}
