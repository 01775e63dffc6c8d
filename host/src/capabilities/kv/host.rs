//! The WIT adapter of `kv`: the grant, the budget and the deadline (`capabilities::call`),
//! then [`Granted`](super::Granted).

use crate::bindings::kv::Host;
use crate::capabilities::call::run;
use crate::runtime::state::StoreState;
use wasmtime::component::{HasSelf, Linker};

impl Host for StoreState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, String>> {
        run(
            self,
            "kv.get",
            |c| c.kv.as_ref(),
            key.len(),
            |kv| kv.get(&key),
        )
    }

    fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<Result<(), String>> {
        let bytes = key.len() + value.len();
        run(
            self,
            "kv.set",
            |c| c.kv.as_ref(),
            bytes,
            |kv| kv.set(&key, &value, ttl_ms),
        )
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, String>> {
        run(
            self,
            "kv.delete",
            |c| c.kv.as_ref(),
            key.len(),
            |kv| kv.delete(&key),
        )
    }

    fn incr(&mut self, key: String, by: i64) -> wasmtime::Result<Result<i64, String>> {
        run(
            self,
            "kv.incr",
            |c| c.kv.as_ref(),
            key.len() + 8,
            |kv| kv.incr(&key, by),
        )
    }
}

/// Add `impressox:plugin/kv` to a linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> anyhow::Result<()> {
    crate::bindings::kv::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        .map_err(anyhow::Error::from)
}
