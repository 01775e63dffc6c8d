//! `kv`, `docs`, `notify` and `prices`: declared in WIT, their backends not yet built.
//!
//! They are linked for tasks and event handlers so that a component importing them links
//! and can say who it is; the load then refuses it (not granted, or granted but not
//! provided by this host version, see `check_imports`). So these calls run only while the
//! loader asks a component for its `info`, and each is refused like an ungranted call.

use crate::bindings::prices::PricePoint;
use crate::bindings::types::Notification;
use crate::runtime::state::StoreState;

fn refused(capability: &str) -> String {
    format!("the `{capability}` capability is not available to this plugin")
}

impl crate::bindings::kv::Host for StoreState {
    fn get(&mut self, _key: String) -> Result<Option<Vec<u8>>, String> {
        Err(refused("kv"))
    }
    fn set(&mut self, _key: String, _value: Vec<u8>, _ttl_ms: Option<u64>) -> Result<(), String> {
        Err(refused("kv"))
    }
    fn delete(&mut self, _key: String) -> Result<bool, String> {
        Err(refused("kv"))
    }
    fn incr(&mut self, _key: String, _by: i64) -> Result<i64, String> {
        Err(refused("kv"))
    }
}

impl crate::bindings::docs::Host for StoreState {
    fn upsert(&mut self, _collection: String, _id: String, _json: String) -> Result<(), String> {
        Err(refused("docs"))
    }
    fn get(&mut self, _collection: String, _id: String) -> Result<Option<String>, String> {
        Err(refused("docs"))
    }
    fn find(
        &mut self,
        _collection: String,
        _filter_json: String,
        _limit: u32,
    ) -> Result<Vec<String>, String> {
        Err(refused("docs"))
    }
    fn delete(&mut self, _collection: String, _id: String) -> Result<bool, String> {
        Err(refused("docs"))
    }
}

impl crate::bindings::notify::Host for StoreState {
    fn enqueue(&mut self, _request: Notification, _channels: Vec<String>) -> Result<(), String> {
        Err(refused("notify"))
    }
}

impl crate::bindings::prices::Host for StoreState {
    fn latest(&mut self, _symbol: String) -> Option<PricePoint> {
        None
    }
    fn recent(&mut self, _symbol: String, _limit: u32) -> Vec<PricePoint> {
        Vec::new()
    }
}
