//! `impressox:plugin/tokens`: the embedder's token count for doc-chunker plugins, so they
//! size chunks in the tokens the embedder will see (`rag::tokens`). Pure: no I/O, same
//! text, same count. The counter is opened when the chunker loads (a chunker whose model
//! folder lacks a tokenizer is refused then), so a call here only counts.

use wasmtime::Result;

use crate::bindings::tokens::Host;
use crate::runtime::state::StoreState;

impl StoreState {
    fn count_tokens(&self, text: &str) -> Result<u32> {
        let Some(counter) = self.plugin.caps.tokens.as_ref() else {
            // Only a probe (asking a component its name before it is granted anything)
            // runs without one; a chunker that counts while saying its name is broken.
            return Err(wasmtime::format_err!(
                "the embedder's token count is not available while loading"
            ));
        };
        counter.count(text).map_err(wasmtime::Error::msg)
    }
}

impl Host for StoreState {
    fn count(&mut self, text: String) -> Result<u32> {
        self.count_tokens(&text)
    }

    fn count_many(&mut self, texts: Vec<String>) -> Result<Vec<u32>> {
        texts.iter().map(|t| self.count_tokens(t)).collect()
    }
}
