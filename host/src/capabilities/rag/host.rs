//! The WIT adapter of `rag`.

use crate::bindings::rag::{Host, RagDocument, UpsertOutcome};
use crate::capabilities::call::run;
use crate::runtime::state::StoreState;
use wasmtime::component::{HasSelf, Linker};

use super::Document;

impl Host for StoreState {
    fn query(&mut self, request_json: String) -> wasmtime::Result<Result<String, String>> {
        let bytes = request_json.len();
        run(
            self,
            "rag.query",
            |c| c.rag.as_ref(),
            bytes,
            |r| r.query(&request_json),
        )
    }

    fn upsert(
        &mut self,
        collection: String,
        document: RagDocument,
    ) -> wasmtime::Result<Result<UpsertOutcome, String>> {
        let doc = Document {
            id: document.id,
            text: document.text,
            media_type: document.media_type,
            metadata: document.metadata,
            url: document.url,
            time_ms: document.time_ms,
        };
        let bytes = collection.len() + doc.bytes();
        let out = run(
            self,
            "rag.upsert",
            |c| c.rag.as_ref(),
            bytes,
            |r| r.upsert(&collection, doc),
        )?;
        Ok(out.map(|u| UpsertOutcome {
            chunks: u.chunks,
            embedded: u.embedded,
        }))
    }

    fn delete(&mut self, collection: String, id: String) -> wasmtime::Result<Result<bool, String>> {
        let bytes = collection.len() + id.len();
        run(
            self,
            "rag.delete",
            |c| c.rag.as_ref(),
            bytes,
            |r| r.delete(&collection, &id),
        )
    }
}

/// Add `impressox:plugin/rag` to a linker.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> anyhow::Result<()> {
    crate::bindings::rag::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)
        .map_err(anyhow::Error::from)
}
