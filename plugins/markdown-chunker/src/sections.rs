//! Markdown sections: the byte range each heading opens, up to the next heading, with the
//! path of headings above it (`Intro > Setup`).
//!
//! Headings are ATX (`## Setup`, up to three spaces before, closing `#`s dropped) and
//! setext (a text line underlined with `===` or `---`). Lines inside fenced code (```` ``` ````
//! or `~~~`) and a leading YAML front matter block are never headings.

use std::ops::Range;

/// One section of a Markdown text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The headings above and including this section's own, outermost first; empty for
    /// the text before the first heading.
    pub path: Vec<String>,
    /// From the start of its heading line to the start of the next heading.
    pub range: Range<usize>,
    /// Where the text after the heading starts (== `range.start` without a heading).
    pub body_start: usize,
}

struct Heading {
    level: usize,
    title: String,
    /// Start of the heading's first line, and of the line after it.
    start: usize,
    body_start: usize,
}

/// The sections of `text`, in order, covering all of it.
pub fn sections(text: &str) -> Vec<Section> {
    let headings = headings(text);
    let mut out = Vec::new();
    let first = headings.first().map_or(text.len(), |h| h.start);
    if first > 0 {
        out.push(Section {
            path: Vec::new(),
            range: 0..first,
            body_start: 0,
        });
    }
    let mut stack: Vec<(usize, String)> = Vec::new();
    for (i, h) in headings.iter().enumerate() {
        while stack.last().is_some_and(|(level, _)| *level >= h.level) {
            stack.pop();
        }
        stack.push((h.level, h.title.clone()));
        let end = headings.get(i + 1).map_or(text.len(), |n| n.start);
        out.push(Section {
            path: stack.iter().map(|(_, t)| t.clone()).collect(),
            range: h.start..end,
            body_start: h.body_start.min(end),
        });
    }
    out
}

/// Lines with their byte offsets (each without its line ending).
fn lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        out.push((at, line.trim_end_matches(['\n', '\r'])));
        at += line.len();
    }
    out
}

fn headings(text: &str) -> Vec<Heading> {
    let lines = lines(text);
    let next_start = |i: usize| lines.get(i + 1).map_or(text.len(), |(s, _)| *s);
    let mut out = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    let mut i = 0;
    // Front matter: `---` on the first line up to the next `---` or `...`.
    if lines.first().is_some_and(|(_, l)| l.trim_end() == "---")
        && let Some(end) = lines
            .iter()
            .skip(1)
            .position(|(_, l)| matches!(l.trim_end(), "---" | "..."))
    {
        i = end + 2;
    }
    // Whether the line before may be a setext heading's text.
    let mut paragraph_line = false;
    while i < lines.len() {
        let (start, raw) = lines[i];
        let indent = raw.len() - raw.trim_start_matches(' ').len();
        let line = raw.trim_start_matches(' ');
        if let Some(marker) = fence_marker(line).filter(|_| indent <= 3) {
            match fence {
                None => fence = Some(marker),
                Some((c, n))
                    if marker.0 == c && marker.1 >= n && line.trim_end().len() == marker.1 =>
                {
                    fence = None
                }
                Some(_) => {}
            }
            paragraph_line = false;
            i += 1;
            continue;
        }
        if fence.is_some() || indent > 3 {
            paragraph_line = false;
            i += 1;
            continue;
        }
        if let Some((level, title)) = atx(line) {
            out.push(Heading {
                level,
                title,
                start,
                body_start: next_start(i),
            });
            paragraph_line = false;
            i += 1;
            continue;
        }
        if paragraph_line && let Some(level) = setext_underline(line) {
            let (prev_start, prev) = lines[i - 1];
            out.push(Heading {
                level,
                title: prev.trim().to_string(),
                start: prev_start,
                body_start: next_start(i),
            });
            paragraph_line = false;
            i += 1;
            continue;
        }
        paragraph_line = !line.trim().is_empty() && !starts_block(line);
        i += 1;
    }
    out
}

/// ```` ``` ```` or `~~~` (three or more) opening or closing a fence: its char and length.
fn fence_marker(line: &str) -> Option<(char, usize)> {
    let c = line.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = line.chars().take_while(|x| *x == c).count();
    (n >= 3).then_some((c, n))
}

/// `#`..`######` then a space (or nothing): the level and the title without closing `#`s.
fn atx(line: &str) -> Option<(usize, String)> {
    let level = line.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let mut title = rest.trim();
    let closing = title.trim_end_matches('#');
    if closing.is_empty() || closing.ends_with([' ', '\t']) {
        title = closing.trim_end();
    }
    Some((level, title.to_string()))
}

fn setext_underline(line: &str) -> Option<usize> {
    let t = line.trim_end();
    if !t.is_empty() && t.chars().all(|c| c == '=') {
        Some(1)
    } else if !t.is_empty() && t.chars().all(|c| c == '-') {
        Some(2)
    } else {
        None
    }
}

/// Lines that start a block of their own (so the line under them is no setext heading).
fn starts_block(line: &str) -> bool {
    line.starts_with(['>', '-', '*', '+', '|', '<'])
        || line
            .split_once(['.', ')'])
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(text: &str) -> Vec<(String, &str)> {
        sections(text)
            .into_iter()
            .map(|s| (s.path.join(" > "), &text[s.range]))
            .collect()
    }

    #[test]
    fn headings_nest_into_paths() {
        let text = "Preface.\n# Intro\nHello.\n## Setup\nSteps.\n### Deep\nx\n## Usage ##\nRun.\n# Next\nEnd.";
        let got = paths(text);
        let names: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "",
                "Intro",
                "Intro > Setup",
                "Intro > Setup > Deep",
                "Intro > Usage",
                "Next"
            ]
        );
        assert_eq!(got[0].1, "Preface.\n");
        assert_eq!(got[2].1, "## Setup\nSteps.\n");
        assert_eq!(got[5].1, "# Next\nEnd.");
    }

    #[test]
    fn fences_front_matter_and_non_headings_are_skipped() {
        let text = "---\ntitle: x\n---\n# A\n```sh\n# not a heading\n```\n#hashtag\n    # indented code\n## B\n";
        let got = paths(text);
        let names: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["", "A", "A > B"]);
        assert!(got[1].1.contains("# not a heading"));
    }

    #[test]
    fn setext_headings() {
        let text = "Title\n=====\nBody.\n\nPart\n----\nMore.\n\n- item\n---\n";
        let got = paths(text);
        let names: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["Title", "Title > Part"]);
        let s = sections(text);
        assert_eq!(&text[s[0].body_start..s[0].range.end], "Body.\n\n");
    }

    #[test]
    fn crlf_lines() {
        let text = "# A\r\nx\r\n## B\r\ny\r\n";
        let got = paths(text);
        assert_eq!(got[1], ("A > B".to_string(), "## B\r\ny\r\n"));
    }
}
