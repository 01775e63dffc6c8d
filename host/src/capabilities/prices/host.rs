//! The WIT adapter of `prices`.

use crate::bindings::prices::{Host, PricePoint};
use crate::capabilities::call::run;
use crate::runtime::state::StoreState;
use wasmtime::component::{HasSelf, Linker};

impl Host for StoreState {
    fn latest(&mut self, symbol: String) -> wasmtime::Result<Result<Option<PricePoint>, String>> {
        run(
            self,
            "prices.latest",
            |c| c.prices.as_deref(),
            symbol.len(),
            |p| p.latest(&symbol),
        )
    }

    fn recent(
        &mut self,
        symbol: String,
        limit: u32,
    ) -> wasmtime::Result<Result<Vec<PricePoint>, String>> {
        run(
            self,
            "prices.recent",
            |c| c.prices.as_deref(),
            symbol.len() + 4,
            |p| p.recent(&symbol, limit),
        )
    }
}

/// Add `impressox:plugin/prices` to a linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> anyhow::Result<()> {
    crate::bindings::prices::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        .map_err(anyhow::Error::from)
}
