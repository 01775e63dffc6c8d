//! A JSON document's text: every string value with a letter in it, in document order, as
//! a paragraph `path: value` (`title: ...`, `items[2].text: ...`). Ids, hashes of digits,
//! numbers, booleans and nulls carry no prose and are left out.
//!
//! The walk reads the JSON as a stream (a serde visitor) rather than into a `Value`, whose
//! map would sort the keys: a document's own order (title, then body) is what a reader
//! and a chunk should see.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};

/// The normalised text of a JSON document, or the parser's error (with line and column).
pub fn normalise(json: &str) -> Result<String, String> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_str(json);
    Walk {
        path: String::new(),
        out: &mut out,
    }
    .deserialize(&mut de)
    .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(out.join("\n\n"))
}

/// Visits one value at `path`, pushing its text paragraphs onto `out`.
struct Walk<'a> {
    path: String,
    out: &'a mut Vec<String>,
}

impl Walk<'_> {
    fn child(&mut self, path: String) -> Walk<'_> {
        Walk {
            path,
            out: self.out,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<(), E> {
        let v = v.trim();
        if v.chars().any(char::is_alphabetic) {
            self.out.push(match self.path.is_empty() {
                true => v.to_string(),
                false => format!("{}: {v}", self.path),
            });
        }
        Ok(())
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            let path = format!("{}[{i}]", self.path);
            if seq.next_element_seed(self.child(path))?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let path = match self.path.is_empty() {
                true => key,
                false => format!("{}.{key}", self.path),
            };
            map.next_value_seed(self.child(path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_in_document_order_with_paths() {
        let got = normalise(r#"{"z": "last key first", "a": [{"t": "one"}, 7, "12-34", {"t": " two "}], "ok": true}"#)
            .unwrap();
        assert_eq!(got, "z: last key first\n\na[0].t: one\n\na[3].t: two");
        assert_eq!(normalise(r#""just text""#).unwrap(), "just text");
    }

    #[test]
    fn errors_have_a_position() {
        let err = normalise("{\"a\": }").unwrap_err();
        assert!(err.contains("line 1 column 7"), "{err}");
        assert!(normalise("{} x").unwrap_err().contains("trailing"));
    }
}
