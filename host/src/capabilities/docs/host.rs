//! The WIT adapter of `docs`.

use crate::bindings::docs::Host;
use crate::capabilities::call::run;
use crate::runtime::state::StoreState;
use wasmtime::component::{HasSelf, Linker};

impl Host for StoreState {
    fn upsert(
        &mut self,
        collection: String,
        id: String,
        json: String,
    ) -> wasmtime::Result<Result<(), String>> {
        let bytes = collection.len() + id.len() + json.len();
        run(
            self,
            "docs.upsert",
            |c| c.docs.as_ref(),
            bytes,
            |d| d.upsert(&collection, &id, &json),
        )
    }

    fn get(
        &mut self,
        collection: String,
        id: String,
    ) -> wasmtime::Result<Result<Option<String>, String>> {
        let bytes = collection.len() + id.len();
        run(
            self,
            "docs.get",
            |c| c.docs.as_ref(),
            bytes,
            |d| d.get(&collection, &id),
        )
    }

    fn find(
        &mut self,
        collection: String,
        filter_json: String,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<String>, String>> {
        let bytes = collection.len() + filter_json.len() + 4;
        run(
            self,
            "docs.find",
            |c| c.docs.as_ref(),
            bytes,
            |d| d.find(&collection, &filter_json, limit),
        )
    }

    fn delete(&mut self, collection: String, id: String) -> wasmtime::Result<Result<bool, String>> {
        let bytes = collection.len() + id.len();
        run(
            self,
            "docs.delete",
            |c| c.docs.as_ref(),
            bytes,
            |d| d.delete(&collection, &id),
        )
    }
}

/// Add `impressox:plugin/docs` to a linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> anyhow::Result<()> {
    crate::bindings::docs::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        .map_err(anyhow::Error::from)
}
