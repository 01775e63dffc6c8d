//! Cutting text into pieces of at most N tokens, for doc-chunker plugins.
//!
//! [`split`] packs the words of a span of text greedily up to the token limit, then moves
//! the cut back to the strongest boundary in the window's second half (a blank line, then
//! a line end, then a sentence end, then a clause), so pieces end where a reader would
//! pause. The next piece starts up to `overlap-tokens` before the cut, at a sentence start
//! when one is in reach. Cuts fall between words; only a single word longer than the limit
//! (a long URL, a hash) is cut inside, at char boundaries.
//!
//! Counting is the caller's ([`crate::tokens::count_many`] in a plugin, anything in a unit
//! test): words are counted in one call, and each piece once more as a whole, so a
//! tokenizer whose counts do not add up over words (BPE) still never gets a piece over the
//! limit. For BERT's WordPiece, which splits on whitespace and punctuation first, they add
//! up exactly.
//!
//! Pieces are byte ranges of the text (Rust slices); [`CharOffsets`] turns them into the
//! char offsets the WIT `chunk` record carries.

use std::ops::Range;

use crate::types::ChunkOptions;

/// How good a place the gap after a word is to end a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Break {
    Word,
    Clause,
    Sentence,
    Line,
    Paragraph,
}

#[derive(Debug)]
struct Unit {
    range: Range<usize>,
    tokens: u32,
    brk: Break,
}

/// Refuse options no chunk can honour: a zero limit, or an overlap as long as a chunk.
pub fn check_options(options: &ChunkOptions) -> Result<(), String> {
    if options.max_tokens == 0 {
        return Err("max-tokens must be at least 1".into());
    }
    if options.overlap_tokens >= options.max_tokens {
        return Err(format!(
            "overlap-tokens ({}) must be smaller than max-tokens ({})",
            options.overlap_tokens, options.max_tokens
        ));
    }
    Ok(())
}

/// Byte ranges of `text` inside `within` to use as chunks, in order. Each holds at most
/// `options.max_tokens` tokens as `count` counts them, starts and ends on a word (no
/// leading or trailing whitespace), and overlaps the previous one by at most
/// `options.overlap_tokens` tokens. Empty when `within` holds only whitespace.
///
/// `within` must lie on char boundaries of `text`. `count` answers a token count per text.
pub fn split(
    text: &str,
    within: Range<usize>,
    options: &ChunkOptions,
    count: &mut dyn FnMut(&[String]) -> Vec<u32>,
) -> Vec<Range<usize>> {
    let max = options.max_tokens.max(1);
    let overlap = options.overlap_tokens.min(max - 1);
    let units = units(text, within, max, count);
    let n = units.len();
    if n == 0 {
        return Vec::new();
    }
    // prefix[k] = tokens of units[..k].
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0u64);
    for u in &units {
        prefix.push(prefix.last().copied().unwrap_or(0) + u64::from(u.tokens));
    }
    let sum = |a: usize, b: usize| prefix[b] - prefix[a];
    let max64 = u64::from(max);

    let mut pieces = Vec::new();
    let mut i = 0;
    while i < n {
        // Greedy: as many words as fit (at least one).
        let mut j = i + 1;
        while j < n && sum(i, j + 1) <= max64 {
            j += 1;
        }
        if j < n {
            j = best_cut(&units, i, j, |k| sum(i, k) * 2 >= max64);
        }
        // The whole piece, counted once: shrink while a non-additive tokenizer says it is
        // over.
        while j > i + 1 {
            let piece = text[units[i].range.start..units[j - 1].range.end].to_string();
            if count(&[piece]).first().copied().unwrap_or(0) <= max {
                break;
            }
            j -= 1;
        }
        pieces.push(units[i].range.start..units[j - 1].range.end);
        if j >= n {
            break;
        }
        i = overlap_start(&units, i, j, overlap, sum);
    }
    pieces
}

/// Where to end a window that greedily reached `units[i..j]`: the latest strongest break
/// among the cuts that keep the window at least half full (`full_enough(k)` for a window
/// `i..k`), or `j` when none is better than a plain word gap.
fn best_cut(units: &[Unit], i: usize, j: usize, full_enough: impl Fn(usize) -> bool) -> usize {
    let mut best = j;
    let mut best_brk = units[j - 1].brk;
    for k in (i + 1..j).rev() {
        if !full_enough(k) {
            break;
        }
        if units[k - 1].brk > best_brk {
            best = k;
            best_brk = units[k - 1].brk;
        }
    }
    best
}

/// Where the piece after `units[i..j]` starts: back from `j` by at most `overlap` tokens,
/// at the earliest sentence start in that reach (else at the earliest word), always after
/// `i` so every piece moves forward.
fn overlap_start(
    units: &[Unit],
    i: usize,
    j: usize,
    overlap: u32,
    sum: impl Fn(usize, usize) -> u64,
) -> usize {
    if overlap == 0 {
        return j;
    }
    let mut k = j;
    while k > i + 1 && sum(k - 1, j) <= u64::from(overlap) {
        k -= 1;
    }
    (k..j)
        .find(|&s| units[s - 1].brk >= Break::Sentence)
        .unwrap_or(k)
}

/// The words of `text[within]` with their token counts and the break after each; a word
/// over `max` tokens becomes several units cut at char boundaries.
fn units(
    text: &str,
    within: Range<usize>,
    max: u32,
    count: &mut dyn FnMut(&[String]) -> Vec<u32>,
) -> Vec<Unit> {
    let mut words: Vec<Range<usize>> = Vec::new();
    let mut start = None;
    for (off, c) in text[within.clone()].char_indices() {
        let at = within.start + off;
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                words.push(s..at);
                start = None;
            }
            (false, None) => start = Some(at),
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push(s..within.end);
    }
    let texts: Vec<String> = words.iter().map(|r| text[r.clone()].to_string()).collect();
    let counts = count(&texts);
    let mut units = Vec::with_capacity(words.len());
    for (w, range) in words.iter().enumerate() {
        let brk = match words.get(w + 1) {
            None => Break::Paragraph,
            Some(next) => break_between(&text[range.clone()], &text[range.end..next.start]),
        };
        let tokens = counts.get(w).copied().unwrap_or(1);
        if tokens <= max {
            units.push(Unit {
                range: range.clone(),
                tokens,
                brk,
            });
            continue;
        }
        let parts = cut_word(text, range.clone(), max, count);
        let last = parts.len().saturating_sub(1);
        for (p, (range, tokens)) in parts.into_iter().enumerate() {
            units.push(Unit {
                range,
                tokens,
                brk: if p == last { brk } else { Break::Word },
            });
        }
    }
    units
}

fn break_between(word: &str, gap: &str) -> Break {
    let newlines = gap.matches('\n').count();
    if newlines >= 2 {
        return Break::Paragraph;
    }
    if newlines == 1 {
        return Break::Line;
    }
    let end = word.trim_end_matches(['"', '\'', ')', ']', '*', '_', '»', '”', '’']);
    match end.chars().last() {
        Some('.' | '!' | '?' | '…' | '。') => Break::Sentence,
        Some(',' | ';' | ':' | '—') => Break::Clause,
        _ => Break::Word,
    }
}

/// A word over `max` tokens, cut into the longest runs of chars that fit (binary search on
/// char boundaries, so a few counts per part).
fn cut_word(
    text: &str,
    word: Range<usize>,
    max: u32,
    count: &mut dyn FnMut(&[String]) -> Vec<u32>,
) -> Vec<(Range<usize>, u32)> {
    let mut parts = Vec::new();
    let mut start = word.start;
    while start < word.end {
        let ends: Vec<usize> = text[start..word.end]
            .char_indices()
            .map(|(o, c)| start + o + c.len_utf8())
            .collect();
        let mut measure = |end: usize| {
            count(&[text[start..end].to_string()])
                .first()
                .copied()
                .unwrap_or(0)
        };
        // The largest index whose run fits; at least one char.
        let (mut lo, mut hi) = (0usize, ends.len() - 1);
        let mut fit = (ends[0], measure(ends[0]));
        while lo <= hi {
            let mid = (lo + hi) / 2;
            let tokens = measure(ends[mid]);
            if tokens <= max {
                fit = (ends[mid], tokens);
                lo = mid + 1;
            } else if mid == 0 {
                break;
            } else {
                hi = mid - 1;
            }
        }
        parts.push((start..fit.0, fit.1));
        start = fit.0;
    }
    parts
}

/// Char offsets (Unicode scalar values) of byte offsets into one text. Moving forward
/// from the previous answer counts only the chars in between, so offsets asked in
/// document order cost one pass over the text.
#[derive(Debug)]
pub struct CharOffsets<'a> {
    text: &'a str,
    byte: usize,
    chars: u32,
}

impl<'a> CharOffsets<'a> {
    pub fn new(text: &'a str) -> CharOffsets<'a> {
        CharOffsets {
            text,
            byte: 0,
            chars: 0,
        }
    }

    /// The char offset of byte offset `byte` (a char boundary of the text).
    pub fn at(&mut self, byte: usize) -> u32 {
        if byte >= self.byte {
            self.chars += self.text[self.byte..byte].chars().count() as u32;
        } else {
            self.chars -= self.text[byte..self.byte].chars().count() as u32;
        }
        self.byte = byte;
        self.chars
    }
}

/// The text between char offsets `start` and `end` of `text` (what a chunk's offsets
/// select; for tests and consumers that hold the normalised text).
pub fn char_slice(text: &str, start: u32, end: u32) -> String {
    text.chars()
        .skip(start as usize)
        .take(end.saturating_sub(start) as usize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per word, and one per 4 chars of a word over 8 chars: additive like
    /// WordPiece.
    fn words(texts: &[String]) -> Vec<u32> {
        texts
            .iter()
            .map(|t| {
                t.split_whitespace()
                    .map(|w| match w.chars().count() as u32 {
                        n if n <= 8 => 1,
                        n => n.div_ceil(4),
                    })
                    .sum()
            })
            .collect()
    }

    fn opts(max: u32, overlap: u32) -> ChunkOptions {
        ChunkOptions {
            max_tokens: max,
            overlap_tokens: overlap,
        }
    }

    fn pieces(text: &str, max: u32, overlap: u32) -> Vec<&str> {
        split(text, 0..text.len(), &opts(max, overlap), &mut words)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn short_text_is_one_piece_without_outer_whitespace() {
        assert_eq!(pieces("  one two three \n", 10, 2), vec!["one two three"]);
        assert!(pieces(" \n\t ", 10, 2).is_empty());
    }

    #[test]
    fn pieces_respect_the_limit_and_overlap() {
        let text = (0..100)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let got = pieces(&text, 10, 3);
        assert!(got.len() > 10);
        for p in &got {
            assert!(words(&[p.to_string()])[0] <= 10, "{p}");
        }
        // Each piece after the first starts with the last 3 words of the one before.
        for pair in got.windows(2) {
            let prev: Vec<&str> = pair[0].split(' ').collect();
            let next: Vec<&str> = pair[1].split(' ').collect();
            assert_eq!(&prev[prev.len() - 3..], &next[..3], "{pair:?}");
        }
        assert!(got.last().unwrap().ends_with("w99"));
    }

    #[test]
    fn cuts_prefer_paragraphs_then_sentences() {
        let text = "Alpha beta gamma delta. Epsilon zeta eta theta iota.\n\nKappa lambda mu nu xi omicron pi.";
        let got = pieces(text, 12, 0);
        assert_eq!(
            got[0],
            "Alpha beta gamma delta. Epsilon zeta eta theta iota."
        );
        assert_eq!(got[1], "Kappa lambda mu nu xi omicron pi.");
        let got = pieces("One two three. Four five six seven eight nine.", 6, 0);
        assert_eq!(got[0], "One two three.");
    }

    #[test]
    fn overlap_starts_at_a_sentence_when_one_is_in_reach() {
        // Seven tokens back would start at `b.`; the sentence after it starts one later.
        let got = pieces("a b. c d e f g h i j", 8, 7);
        assert_eq!(got[0], "a b. c d e f g h");
        assert_eq!(got[1], "c d e f g h i j");
    }

    #[test]
    fn a_word_over_the_limit_is_cut_at_char_boundaries() {
        let long = "é".repeat(40); // 10 tokens of 4 chars
        let text = format!("start {long} end");
        let got = pieces(&text, 3, 0);
        let joined: String = got.concat();
        assert!(joined.contains(&long[..8]));
        for p in &got {
            assert!(words(&[p.to_string()])[0] <= 3, "{p}");
        }
        let total: usize = got
            .iter()
            .map(|p| p.chars().filter(|c| *c == 'é').count())
            .sum();
        assert_eq!(total, 40, "no char lost or repeated without overlap");
    }

    #[test]
    fn a_non_additive_counter_never_gets_a_piece_over_the_limit() {
        // Counts a whole text as words + 1 per space (not additive over words).
        let mut odd = |texts: &[String]| -> Vec<u32> {
            texts
                .iter()
                .map(|t| t.split_whitespace().count() as u32 * 2 - 1)
                .collect()
        };
        let text = "a b c d e f g h i j";
        let got = split(text, 0..text.len(), &opts(5, 0), &mut odd);
        for r in &got {
            assert!(odd(&[text[r.clone()].to_string()])[0] <= 5);
        }
        assert_eq!(got.first().map(|r| &text[r.clone()]), Some("a b c"));
    }

    #[test]
    fn char_offsets_go_both_ways() {
        let text = "héllo wörld ✓ ok";
        let mut o = CharOffsets::new(text);
        let b = text.find("wörld").unwrap();
        assert_eq!(o.at(b), 6);
        let e = text.find(" ok").unwrap();
        assert_eq!(o.at(e), 13);
        assert_eq!(o.at(b), 6);
        assert_eq!(char_slice(text, 6, 11), "wörld");
    }

    #[test]
    fn options_are_checked() {
        assert!(
            check_options(&opts(0, 0))
                .unwrap_err()
                .contains("max-tokens")
        );
        assert!(
            check_options(&opts(5, 5))
                .unwrap_err()
                .contains("overlap-tokens (5)")
        );
        assert!(check_options(&opts(5, 4)).is_ok());
    }
}
