//! `markdown-chunker`: cuts documents for retrieval by their structure, then by size.
//!
//! - `text/markdown`: one section per heading ([`sections`]), each cut by size in the
//!   embedder's tokens with overlap (`impressox_plugin_sdk::chunking`); every chunk carries
//!   its heading path as `section` (`Intro > Setup`). A section with nothing under its
//!   heading makes no chunk of its own (its heading is in its subsections' paths).
//! - `text/html`: turned into Markdown (`htmd`), then as Markdown. The offsets index that
//!   Markdown, which the answer carries as `normalised`.
//! - `text/plain`: cut by size, preferring blank lines, line ends and sentence ends.
//! - `application/json` (and `+json`): every string field with a letter in it becomes a
//!   paragraph `path: value` of the normalised text (`title: ...`, `items[2].text: ...`),
//!   which is cut by size; numbers, booleans and nulls are left out.
//!
//! Offsets are chars of the document's own text for Markdown and plain text (`normalised`
//! is none), and of `normalised` for HTML and JSON; `text[start..end]` (in chars) is always
//! exactly the chunk's text. The logic takes the token counter as an argument, so it is
//! tested natively with any counter.

use impressox_plugin_sdk::chunking::{self, CharOffsets};
use impressox_plugin_sdk::types::{Chunk, ChunkOptions, Chunked, Document};
use impressox_plugin_sdk::{DocChunker, export_doc_chunker, tokens};

pub mod json_text;
pub mod sections;

/// The plugin.
pub struct MarkdownChunker;

impl DocChunker for MarkdownChunker {
    const NAME: &'static str = "markdown-chunker";
    const DESCRIPTION: &'static str =
        "Markdown and HTML by headings then size (with overlap); plain text and JSON by size";

    fn chunk(document: Document, options: ChunkOptions) -> Result<Chunked, String> {
        chunk_document(&document, &options, &mut |texts| tokens::count_many(texts))
    }
}

export_doc_chunker!(MarkdownChunker);

/// The metadata key of a chunk's heading path.
pub const SECTION: &str = "section";

/// What this chunker reads a media type as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
    Plain,
    Json,
}

/// The format of a media type (`text/markdown; charset=utf-8` → Markdown), or an error
/// listing the ones this chunker reads.
pub fn format_of(media_type: &str) -> Result<Format, String> {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/markdown" | "text/x-markdown" => Ok(Format::Markdown),
        "text/html" | "application/xhtml+xml" => Ok(Format::Html),
        "text/plain" | "" => Ok(Format::Plain),
        "application/json" => Ok(Format::Json),
        t if t.ends_with("+json") => Ok(Format::Json),
        _ => Err(format!(
            "media type `{media_type}` is not one markdown-chunker reads (text/markdown, \
             text/html, text/plain, application/json)"
        )),
    }
}

/// Cut `doc`; `count` answers the token count of each text.
pub fn chunk_document(
    doc: &Document,
    options: &ChunkOptions,
    count: &mut dyn FnMut(&[String]) -> Vec<u32>,
) -> Result<Chunked, String> {
    chunking::check_options(options).map_err(|e| format!("document `{}`: {e}", doc.id))?;
    let format = format_of(&doc.media_type).map_err(|e| format!("document `{}`: {e}", doc.id))?;
    let normalised = match format {
        Format::Markdown | Format::Plain => None,
        Format::Html => Some(html_to_markdown(&doc.text)),
        Format::Json => Some(
            json_text::normalise(&doc.text)
                .map_err(|e| format!("document `{}` is not valid JSON: {e}", doc.id))?,
        ),
    };
    let text = normalised.as_deref().unwrap_or(&doc.text);
    let spans: Vec<(Vec<String>, std::ops::Range<usize>)> = match format {
        Format::Markdown | Format::Html => sections::sections(text)
            .into_iter()
            // A heading with nothing under it is context for its subsections, not a chunk.
            .filter(|s| !text[s.body_start..s.range.end].trim().is_empty())
            .map(|s| (s.path, s.range))
            .collect(),
        Format::Plain | Format::Json => vec![(Vec::new(), 0..text.len())],
    };
    let base: Vec<(String, String)> = doc
        .metadata
        .iter()
        .filter(|(k, _)| k != SECTION)
        .cloned()
        .collect();
    let mut offsets = CharOffsets::new(text);
    let mut chunks = Vec::new();
    for (path, range) in spans {
        let mut metadata = base.clone();
        if !path.is_empty() {
            metadata.push((SECTION.to_string(), path.join(" > ")));
        }
        for piece in chunking::split(text, range, options, count) {
            chunks.push(Chunk {
                text: text[piece.clone()].to_string(),
                start: offsets.at(piece.start),
                end: offsets.at(piece.end),
                metadata: metadata.clone(),
            });
        }
    }
    Ok(Chunked { normalised, chunks })
}

/// HTML as Markdown (ATX headings), without the parts a reader never sees.
pub fn html_to_markdown(html: &str) -> String {
    let converter = htmd::HtmlToMarkdown::builder()
        .skip_tags(vec![
            "head", "script", "style", "noscript", "template", "svg", "iframe",
        ])
        .build();
    // html5ever recovers from any malformed HTML; the io::Error is its sink's, never seen
    // for a string. Should it ever come, the text with tags is still better than nothing.
    converter.convert(html).unwrap_or_else(|_| html.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per word (additive, like WordPiece over words without punctuation).
    fn words(texts: &[String]) -> Vec<u32> {
        texts
            .iter()
            .map(|t| t.split_whitespace().count() as u32)
            .collect()
    }

    fn doc(text: &str, media_type: &str) -> Document {
        Document {
            id: "d1".into(),
            text: text.into(),
            media_type: media_type.into(),
            metadata: vec![("path".into(), "docs/a.md".into())],
        }
    }

    fn run(d: &Document, max: u32, overlap: u32) -> Chunked {
        chunk_document(
            d,
            &ChunkOptions {
                max_tokens: max,
                overlap_tokens: overlap,
            },
            &mut words,
        )
        .unwrap()
    }

    fn meta<'a>(c: &'a Chunk, key: &str) -> Option<&'a str> {
        c.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every chunk's offsets select exactly its text in the text they index.
    fn assert_exact(d: &Document, out: &Chunked) {
        let text = out.normalised.as_deref().unwrap_or(&d.text);
        for c in &out.chunks {
            assert_eq!(chunking::char_slice(text, c.start, c.end), c.text);
        }
    }

    #[test]
    fn markdown_by_headings_then_size() {
        let body = (0..30)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let text = format!(
            "# Intro\n\nWelcome to the café.\n\n## Setup\n\n{body}\n\n# Empty\n## Inner\nx y\n"
        );
        let d = doc(&text, "text/markdown; charset=utf-8");
        let out = run(&d, 12, 3);
        assert!(out.normalised.is_none());
        assert_exact(&d, &out);
        let sections: Vec<&str> = out
            .chunks
            .iter()
            .map(|c| meta(c, SECTION).unwrap())
            .collect();
        assert_eq!(sections[0], "Intro");
        assert!(
            sections[1..sections.len() - 1]
                .iter()
                .all(|s| *s == "Intro > Setup")
        );
        assert_eq!(*sections.last().unwrap(), "Empty > Inner");
        assert!(
            out.chunks
                .iter()
                .all(|c| words(std::slice::from_ref(&c.text))[0] <= 12)
        );
        assert!(
            out.chunks
                .iter()
                .all(|c| meta(c, "path") == Some("docs/a.md"))
        );
        assert_eq!(out.chunks[1].text.lines().next(), Some("## Setup"));
        // Overlap: the second Setup chunk begins with the first one's last 3 words.
        let a: Vec<&str> = out.chunks[1].text.split_whitespace().collect();
        let b: Vec<&str> = out.chunks[2].text.split_whitespace().collect();
        assert_eq!(&a[a.len() - 3..], &b[..3]);
    }

    #[test]
    fn html_is_cut_by_its_headings() {
        let html = "<html><head><title>T</title><style>p{}</style></head><body>\
            <h1>Market monitor</h1><p>Watches prices &amp; rules.</p>\
            <h2>Feeds</h2><p>Binance and <b>Coinbase</b>.</p><script>x()</script></body></html>";
        let d = doc(html, "text/html");
        let out = run(&d, 50, 5);
        assert_exact(&d, &out);
        let md = out.normalised.as_deref().unwrap();
        assert!(md.contains("# Market monitor"), "{md}");
        assert!(!md.contains("x()") && !md.contains("p{}"), "{md}");
        assert_eq!(out.chunks.len(), 2, "{:?}", out.chunks);
        assert_eq!(
            meta(&out.chunks[1], SECTION),
            Some("Market monitor > Feeds")
        );
        assert!(out.chunks[0].text.contains("prices & rules"));
    }

    #[test]
    fn plain_text_and_json() {
        let d = doc("First paragraph here.\n\nSecond one.", "text/plain");
        let out = run(&d, 3, 0);
        let texts: Vec<&str> = out.chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["First paragraph here.", "Second one."]);
        assert!(meta(&out.chunks[0], SECTION).is_none());

        let d = doc(
            r#"{"title": "IREN update", "n": 3, "tags": ["mining", "42"], "body": {"text": "Hash rate up."}}"#,
            "application/json",
        );
        let out = run(&d, 50, 0);
        assert_exact(&d, &out);
        assert_eq!(
            out.normalised.as_deref(),
            Some("title: IREN update\n\ntags[0]: mining\n\nbody.text: Hash rate up.")
        );
    }

    #[test]
    fn bad_input_names_the_document_and_the_problem() {
        let opts = ChunkOptions {
            max_tokens: 10,
            overlap_tokens: 0,
        };
        let err = chunk_document(&doc("{", "application/json"), &opts, &mut words).unwrap_err();
        assert!(err.contains("document `d1` is not valid JSON"), "{err}");
        let err = chunk_document(&doc("x", "image/png"), &opts, &mut words).unwrap_err();
        assert!(err.contains("`image/png`"), "{err}");
        let bad = ChunkOptions {
            max_tokens: 4,
            overlap_tokens: 4,
        };
        let err = chunk_document(&doc("x", "text/plain"), &bad, &mut words).unwrap_err();
        assert!(err.contains("overlap-tokens"), "{err}");
    }

    #[test]
    fn a_section_key_from_the_source_is_replaced() {
        let mut d = doc("# A\nx\n", "text/markdown");
        d.metadata.push((SECTION.into(), "old".into()));
        let out = run(&d, 10, 0);
        let sections: Vec<&str> = out.chunks[0]
            .metadata
            .iter()
            .filter(|(k, _)| k == SECTION)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(sections, ["A"]);
    }
}
