//! Tool arguments: the JSON object a client sent, described to clients by the schema of a
//! typed struct, and parsed into it by the host's own body parser.
//!
//! rmcp's `Parameters<T>` would deserialize the arguments itself and answer a bad one with
//! a JSON-RPC protocol error ("invalid params") that many agents do not show the model.
//! [`Args`] takes the object as it is, so the tool parses it with the same parser as the
//! REST API's bodies ([`super::super::rules::parse_body`]) and a bad field comes back as a
//! tool error naming it (`condition.op`), which the agent reads and can correct.

use std::marker::PhantomData;

use rmcp::model::JsonObject;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;

use super::super::ApiError;
use super::super::rules::parse_body;

/// The arguments of a tool whose schema is `S`'s.
pub struct Args<S> {
    raw: JsonObject,
    _schema: PhantomData<fn() -> S>,
}

impl<'de, S> serde::Deserialize<'de> for Args<S> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Args {
            raw: JsonObject::deserialize(d)?,
            _schema: PhantomData,
        })
    }
}

impl<S: JsonSchema> JsonSchema for Args<S> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        S::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        S::json_schema(generator)
    }
}

impl<S> Args<S> {
    /// The arguments as sent, for a callee that parses a JSON body itself.
    pub fn into_raw(self) -> JsonObject {
        self.raw
    }

    /// The arguments as a `T` (the schema's own type, or the host type it mirrors), or a
    /// 400 naming the first bad field.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        // Serialising a map of JSON values cannot fail.
        let bytes = serde_json::to_vec(&self.raw).unwrap_or_default();
        parse_body(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Page {
        /// How many.
        limit: Option<usize>,
    }

    fn args(v: serde_json::Value) -> Args<Page> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_bad_field_is_named_and_an_unknown_one_refused() {
        let e = args(serde_json::json!({"limit": "ten"}))
            .parse::<Page>()
            .err()
            .unwrap();
        assert!(e.message.contains("limit"), "{}", e.message);
        let e = args(serde_json::json!({"colour": 1}))
            .parse::<Page>()
            .err()
            .unwrap();
        assert!(e.message.contains("colour"), "{}", e.message);
        assert!(args(serde_json::json!({})).parse::<Page>().is_ok());
    }

    #[test]
    fn the_schema_is_the_typed_structs() {
        let schema = schemars::schema_for!(Args<Page>);
        let v = serde_json::to_value(schema).unwrap();
        assert_eq!(v["type"], "object");
        assert_eq!(v["properties"]["limit"]["description"], "How many.");
    }
}
