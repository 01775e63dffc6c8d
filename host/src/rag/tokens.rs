//! The embedder's token count: [`TokenCounter`] is the seam, [`WordPieceCounter`] the
//! implementation on a model folder's `tokenizer.json` (Hugging Face `tokenizers`, pure
//! Rust), and [`Tokens`] what a runtime holds: the counter, opened once on first need.
//!
//! Counts leave out the special tokens a model adds around a whole input (`[CLS]` and
//! `[SEP]` for all-MiniLM-L6-v2): a chunker adds up pieces, and the embedder adds those two
//! once per chunk. The `truncation` and `padding` that sentence-transformers saves into
//! `tokenizer.json` (128 for all-MiniLM-L6-v2) are switched off, or every long text would
//! count as 128.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

/// Counts tokens as the configured embedder sees them.
pub trait TokenCounter: Send + Sync {
    /// Tokens of `text`, without the special tokens added around a whole input.
    fn count(&self, text: &str) -> Result<u32, String>;
    /// Which tokenizer this is, for messages (a file path, a model id).
    fn describe(&self) -> String;
}

/// The file a model folder must hold for counting.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// A `tokenizer.json` (WordPiece for all-MiniLM-L6-v2; any model `tokenizers` reads).
pub struct WordPieceCounter {
    tokenizer: tokenizers::Tokenizer,
    path: PathBuf,
}

impl WordPieceCounter {
    /// Open `model_dir/tokenizer.json`; the error names the path and how to get the file.
    pub fn open(model_dir: &Path) -> Result<WordPieceCounter, String> {
        let path = model_dir.join(TOKENIZER_FILE);
        if !path.is_file() {
            return Err(format!(
                "the embedder's tokenizer {} is missing: run `cargo xtask models` (it unpacks \
                 all-MiniLM-L6-v2 into ~/.cache/impressox/models) or point `[rag.embedder] \
                 model_dir` at a model folder with a {TOKENIZER_FILE}",
                path.display()
            ));
        }
        let mut tokenizer = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| format!("cannot read the tokenizer {}: {e}", path.display()))?;
        tokenizer.with_truncation(None).map_err(|e| {
            format!(
                "cannot switch off truncation of the tokenizer {}: {e}",
                path.display()
            )
        })?;
        tokenizer.with_padding(None);
        Ok(WordPieceCounter { tokenizer, path })
    }
}

impl TokenCounter for WordPieceCounter {
    fn count(&self, text: &str) -> Result<u32, String> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| format!("tokenizer {}: {e}", self.path.display()))?;
        Ok(u32::try_from(encoding.len()).unwrap_or(u32::MAX))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// The token counter of one runtime: opened from `model_dir` when a doc-chunker first
/// loads (a failure is not kept, so a model put in place later is found by the next
/// load), or given ready-made by whoever owns another embedder.
pub struct Tokens {
    model_dir: PathBuf,
    counter: Mutex<Option<Arc<dyn TokenCounter>>>,
}

impl Tokens {
    /// A counter read from `model_dir` on first need.
    pub fn from_model_dir(model_dir: PathBuf) -> Tokens {
        Tokens {
            model_dir,
            counter: Mutex::new(None),
        }
    }

    /// A counter given ready-made (an embedder that owns its tokenizer).
    pub fn with_counter(counter: Arc<dyn TokenCounter>) -> Tokens {
        Tokens {
            model_dir: PathBuf::new(),
            counter: Mutex::new(Some(counter)),
        }
    }

    /// The model folder counted from.
    pub fn model_dir(&self) -> &Path {
        &self.model_dir
    }

    /// The counter, opening it now if need be.
    pub fn counter(&self) -> Result<Arc<dyn TokenCounter>, String> {
        let mut slot = self.counter.lock();
        if let Some(counter) = slot.as_ref() {
            return Ok(counter.clone());
        }
        let counter: Arc<dyn TokenCounter> = Arc::new(WordPieceCounter::open(&self.model_dir)?);
        *slot = Some(counter.clone());
        Ok(counter)
    }
}

impl Default for Tokens {
    fn default() -> Tokens {
        Tokens::from_model_dir(super::config::default_model_dir())
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("model_dir", &self.model_dir)
            .field("open", &self.counter.lock().is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tokenizer_names_the_path_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::from_model_dir(dir.path().join("nowhere"));
        let err = tokens.counter().err().unwrap();
        assert!(err.contains("nowhere/tokenizer.json"), "{err}");
        assert!(err.contains("cargo xtask models"), "{err}");
        assert!(err.contains("[rag.embedder]"), "{err}");
    }

    #[test]
    fn the_default_model_counts_without_special_tokens_and_untruncated() {
        let dir = super::super::config::default_model_dir();
        // `cargo xtask test` (what `cargo test-all` and CI run) puts it there first.
        let counter = WordPieceCounter::open(&dir).unwrap_or_else(|e| panic!("{e}"));
        // "hello" and "world" are single WordPiece tokens; no [CLS]/[SEP].
        assert_eq!(counter.count("Hello world").unwrap(), 2);
        assert_eq!(counter.count("").unwrap(), 0);
        // Far past the file's own truncation at 128.
        let long = "word ".repeat(1000);
        assert_eq!(counter.count(&long).unwrap(), 1000);
        // BERT splits on whitespace and punctuation: counts of words add up.
        let a = counter.count("Ticker $IREN rallies").unwrap();
        let b = counter.count("after earnings.").unwrap();
        assert_eq!(
            counter
                .count("Ticker $IREN rallies after earnings.")
                .unwrap(),
            a + b
        );
    }
}
