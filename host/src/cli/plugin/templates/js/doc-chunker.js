// `{{name}}`: a doc-chunker plugin for ImpressoX Workers, written in JavaScript.
//
// It cuts a text document at blank lines into paragraphs, and packs paragraphs into
// chunks of at most `maxTokens` of the embedder's tokens (`count` from the host). Offsets
// are chars (Unicode scalar values, not UTF-16 units or bytes) of the document's text.
// `throw "reason"` (a string) for a document it cannot read.

import { count } from "impressox:plugin/tokens@0.1.0";

const NAME = "{{name}}";
const VERSION = "0.1.0";

// Char offset of a UTF-16 index (astral chars are two units in JavaScript, one char here).
const chars = (text, index) => [...text.slice(0, index)].length;

export const chunkDocument = {
  info() {
    // No `kind`: a doc-chunker's kind is its export.
    return { name: NAME, version: VERSION, description: "paragraphs packed up to maxTokens" };
  },

  chunk(document, options) {
    if (!document.mediaType.startsWith("text/")) throw `document \`${document.id}\`: \`${document.mediaType}\` is not text`;
    const text = document.text;
    const paragraphs = [];
    const re = /\S[\s\S]*?(?=\n\s*\n|\s*$)/g;
    for (const m of text.matchAll(re)) paragraphs.push([m.index, m.index + m[0].length]);
    const chunks = [];
    let current = null;
    let used = 0;
    const push = ([s, e]) =>
      chunks.push({ text: text.slice(s, e), start: chars(text, s), end: chars(text, e), metadata: document.metadata });
    for (const [s, e] of paragraphs) {
      const n = count(text.slice(s, e));
      if (current && used + n <= options.maxTokens) {
        current = [current[0], e];
        used += n;
        continue;
      }
      if (current) push(current);
      current = [s, e];
      used = n;
    }
    if (current) push(current);
    return { normalised: undefined, chunks };
  },
};
