"""`{{name}}`: a doc-chunker plugin for ImpressoX Workers, written in Python.

It cuts a text document at blank lines into paragraphs, and packs paragraphs into chunks
of at most `max_tokens` of the embedder's tokens (`tokens.count`). Offsets are chars (not
bytes) of the document's text. Raise `Err("...")` for a document it cannot read; the host
reports it for that document and goes on.
"""

from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import tokens, types

NAME = "{{name}}"
VERSION = "0.1.0"


class ChunkDocument(exports.ChunkDocument):
    def info(self) -> types.ChunkerInfo:
        # No `kind`: a doc-chunker's kind is its export.
        return types.ChunkerInfo(
            name=NAME,
            version=VERSION,
            description="paragraphs packed up to max_tokens",
        )

    def chunk(self, document: types.Document, options: types.ChunkOptions) -> types.Chunked:
        if not document.media_type.startswith("text/"):
            raise Err(f"document `{document.id}`: `{document.media_type}` is not text")
        text = document.text
        # (start, end) of each paragraph, in chars.
        paragraphs = []
        start = 0
        for part in text.split("\n\n"):
            stripped = part.strip()
            if stripped:
                s = start + part.index(stripped)
                paragraphs.append((s, s + len(stripped)))
            start += len(part) + 2
        counts = tokens.count_many([text[s:e] for s, e in paragraphs])
        chunks: List[types.Chunk] = []
        current = None
        used = 0
        for (s, e), n in zip(paragraphs, counts):
            if current is not None and used + n <= options.max_tokens:
                current = (current[0], e)
                used += n
                continue
            if current is not None:
                chunks.append(self._chunk(text, current, document))
            current, used = (s, e), n
        if current is not None:
            chunks.append(self._chunk(text, current, document))
        return types.Chunked(normalised=None, chunks=chunks)

    def _chunk(self, text: str, span, document: types.Document) -> types.Chunk:
        s, e = span
        return types.Chunk(text=text[s:e], start=s, end=e, metadata=list(document.metadata))
