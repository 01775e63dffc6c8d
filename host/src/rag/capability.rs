//! The rag worker's [`RagService`] behind the `rag` capability's [`Index`] seam: a
//! plugin's document takes the path of a source's (`RagService::ingest_one`), under its
//! own source `plugin:<name>`, and errors become what the plugin sees.

use impressox_rag::{Hit, Query, QueryError};

use super::service::{IngestError, Ingested, RagService, SourceDocument, Target};
use crate::capabilities::error::CapError;
use crate::capabilities::rag::{Document, Index, Upserted, index_error};

impl Index for RagService {
    fn query(&self, q: &Query) -> Result<Vec<Hit>, QueryError> {
        RagService::query(self, q)
    }

    fn model_id(&self) -> String {
        self.embedder().model_id().to_string()
    }

    fn upsert(
        &self,
        collection: &str,
        source: &str,
        chunker: &str,
        doc: Document,
    ) -> Result<Upserted, CapError> {
        const DURING: &str = "rag.upsert";
        let id = doc.id.clone();
        let into = Target {
            collection,
            source,
            chunker,
        };
        let doc = SourceDocument {
            id: doc.id,
            text: doc.text,
            media_type: doc.media_type,
            metadata: doc.metadata,
            url: doc.url,
            time_ms: doc.time_ms,
        };
        match self.ingest_one(&into, doc) {
            Ok(Ingested::Stored { chunks }) => Ok(Upserted {
                chunks: chunks as u32,
                embedded: chunks as u32,
            }),
            Ok(Ingested::Unchanged { chunks }) => Ok(Upserted {
                chunks: chunks as u32,
                embedded: 0,
            }),
            Ok(Ingested::Refused(why)) => Err(CapError::refused(format!(
                "{DURING}: the chunker `{chunker}` refused document `{id}`: {why}"
            ))),
            // The operator's set-up, not the plugin's fault, but nothing the plugin could
            // learn a secret from: say which chunker and why (`[capabilities.rag] chunker`).
            Err(IngestError::Chunker(e)) => Err(CapError::refused(format!(
                "{DURING}: the chunker plugin `{chunker}` (`[capabilities.rag] chunker`) \
                 cannot be called: {e}"
            ))),
            Err(IngestError::Index(e)) => Err(index_error(DURING, e)),
        }
    }

    fn delete(&self, collection: &str, source: &str, id: &str) -> Result<bool, CapError> {
        let document_id = RagService::document_id(source, id);
        self.remove_document(collection, &document_id)
            .map_err(|e| index_error("rag.delete", e))
    }
}
