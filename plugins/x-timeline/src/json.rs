//! Typed, non-panicking accessors over `serde_json::Value`.
//!
//! X's JSON is untrusted input that changes shape without notice, so every read goes
//! through these helpers: a missing key or an explicit `null` is "absent" (`None`), a
//! value of the wrong type is an error naming the dotted path, and nothing ever panics.
//! Paths are slices of object keys; the dotted form is built only when an error is
//! reported, so the happy path allocates nothing.

use serde_json::Value;

/// The value at `path`, or `None` when a key is missing, a step is not an object, or the
/// value is `null` (X sends `null` and omits keys interchangeably).
pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.get(*key)?;
    }
    if cur.is_null() { None } else { Some(cur) }
}

/// A string at `path`; absent is `Ok(None)`, another type is an error.
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Result<Option<&'a str>, String> {
    match at(v, path) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(type_error(path, "a string", other)),
    }
}

/// A non-negative integer at `path`. X sends most counts as numbers but some (e.g.
/// `views.count`) as decimal strings, so both are accepted.
pub(crate) fn u64_at(v: &Value, path: &[&str]) -> Result<Option<u64>, String> {
    match at(v, path) {
        None => Ok(None),
        Some(v @ Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| type_error(path, "a count", v)),
        Some(Value::String(s)) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("{} is {s:?}, expected a count", path.join("."))),
        Some(other) => Err(type_error(path, "a count", other)),
    }
}

/// A boolean at `path`.
pub(crate) fn bool_at(v: &Value, path: &[&str]) -> Result<Option<bool>, String> {
    match at(v, path) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(type_error(path, "a boolean", other)),
    }
}

/// An array at `path`; absent is the empty slice, since every list X omits means "none".
pub(crate) fn array_at<'a>(v: &'a Value, path: &[&str]) -> Result<&'a [Value], String> {
    match at(v, path) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(type_error(path, "an array", other)),
    }
}

/// The first string found along `paths`: how one field is read across X's user shapes
/// (newest location first, then the older ones).
pub(crate) fn first_str<'a>(v: &'a Value, paths: &[&[&str]]) -> Result<Option<&'a str>, String> {
    for path in paths {
        if let Some(s) = str_at(v, path)? {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// The first count found along `paths`.
pub(crate) fn first_u64(v: &Value, paths: &[&[&str]]) -> Result<Option<u64>, String> {
    for path in paths {
        if let Some(n) = u64_at(v, path)? {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// The first boolean found along `paths`.
pub(crate) fn first_bool(v: &Value, paths: &[&[&str]]) -> Result<Option<bool>, String> {
    for path in paths {
        if let Some(b) = bool_at(v, path)? {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

/// The first array found along `paths`, or the empty slice.
pub(crate) fn first_array<'a>(v: &'a Value, paths: &[&[&str]]) -> Result<&'a [Value], String> {
    for path in paths {
        if at(v, path).is_some() {
            return array_at(v, path);
        }
    }
    Ok(&[])
}

fn type_error(path: &[&str], expected: &str, found: &Value) -> String {
    let kind = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("{} is {kind}, expected {expected}", path.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_and_null_are_none() {
        let v = json!({"a": {"b": null}, "s": "x"});
        assert!(at(&v, &["a", "b"]).is_none());
        assert!(at(&v, &["a", "c"]).is_none());
        // Walking through a non-object is "absent", not a panic.
        assert!(at(&v, &["s", "deeper"]).is_none());
        assert_eq!(str_at(&v, &["missing"]), Ok(None));
    }

    #[test]
    fn wrong_types_name_the_path() {
        let v = json!({"legacy": {"favorite_count": "lots", "full_text": 3, "n": -1}});
        assert_eq!(
            u64_at(&v, &["legacy", "favorite_count"]),
            Err("legacy.favorite_count is \"lots\", expected a count".to_string())
        );
        assert_eq!(
            str_at(&v, &["legacy", "full_text"]),
            Err("legacy.full_text is a number, expected a string".to_string())
        );
        assert!(u64_at(&v, &["legacy", "n"]).is_err());
        assert!(array_at(&v, &["legacy"]).is_err());
    }

    #[test]
    fn counts_accept_numbers_and_decimal_strings() {
        let v = json!({"a": 7, "b": "48213"});
        assert_eq!(u64_at(&v, &["a"]), Ok(Some(7)));
        assert_eq!(u64_at(&v, &["b"]), Ok(Some(48213)));
    }

    #[test]
    fn first_prefers_earlier_paths() {
        let v = json!({"core": {"name": "new"}, "legacy": {"name": "old", "c": 2}});
        assert_eq!(
            first_str(&v, &[&["core", "name"], &["legacy", "name"]]),
            Ok(Some("new"))
        );
        assert_eq!(first_u64(&v, &[&["x"], &["legacy", "c"]]), Ok(Some(2)));
        assert_eq!(first_bool(&v, &[&["x"]]), Ok(None));
        assert_eq!(first_array(&v, &[&["x"]]).map(<[Value]>::len), Ok(0));
    }
}
