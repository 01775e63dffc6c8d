//! Structure-aware inputs: a valid example of the format, edited.
//!
//! A [`Doc`] picks one of the target's valid examples (JSON or TOML, held as a JSON
//! value), applies up to [`MAX_EDITS`] [`Edit`]s to its tree — drop a field, retype it,
//! make it huge or unicode, nest it deeply, mangle a key, graft one field's value into
//! another — renders it back to text, then damages up to [`MAX_EDITS`] bytes
//! ([`ByteEdit`]). Or it is raw bytes. Strings come from the target's dictionary
//! (field names and values that mean something to that parser), from [`ODD`] (unicode
//! and control characters that break naive code), or from anything at all.
//!
//! Everything here is deterministic in the generated value, so libFuzzer's coverage
//! feedback steers the edits as well as the bytes.

use bolero::generator::TypeGenerator;
use serde_json::{Map, Value};

/// Edits applied per input; more rarely finds more and costs time.
pub const MAX_EDITS: usize = 8;

/// Unicode and control characters that trip code assuming ASCII, one char = one byte,
/// stable lengths under case mapping, or no separators inside a value.
pub const ODD: &[&str] = &[
    "é",
    "e\u{301}",
    "日本語",
    "🚀",
    "\u{202e}",
    "\u{200b}",
    "\u{feff}",
    "\u{0}",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "\u{3000}",
    "\u{2028}",
    "İ",
    "ß",
    "ﬃ",
    "\u{10ffff}",
    "\u{fffd}",
    "١٢٣",
    "１２３",
    "Ⅻ",
    "\r\n",
    "\t",
    "\n",
    " ",
    "\\",
    "\"",
    "'",
    "%",
    "%zz",
    "%00",
    ":",
    "@",
    "#",
    "/",
    "=",
    "-",
    "_",
    ".",
    "..",
    "../../../../etc/passwd",
    "${HOME}",
    "%s%n",
    "\u{1b}[31m",
];

/// Numbers that sit on edges: signs, zero, huge, tiny, not exactly representable.
const EDGE_NUMBERS: &[f64] = &[
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1,
    0.30000000000000004,
    1e-7,
    5e-324,
    f64::MIN_POSITIVE,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    9007199254740993.0,
    18446744073709551615.0,
    9.223372036854776e18,
    4294967295.0,
    4294967296.0,
    604800.0,
    604801.0,
    70000.00000000001,
    123456789.12345679,
    1e15,
    1e16,
    0.5,
];

/// JSON fragments no tree can hold: spliced in as text (see [`Leaf::Raw`]).
pub const RAW_JSON: &[&str] = &[
    "1e400",
    "-1e400",
    "-0",
    "00012",
    "1.",
    ".5",
    "+1",
    "NaN",
    "Infinity",
    "123456789012345678901234567890",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "\"\\uDBFF\\uDFFF\"",
    "{\"a\":1,\"a\":2}",
    "[",
    "{",
    "]",
    "/*c*/1",
    "true false",
    "\"unterminated",
    "1e-400",
    "18446744073709551616",
    "-9223372036854775809",
];

/// TOML fragments, for config files.
pub const RAW_TOML: &[&str] = &[
    "inf",
    "-inf",
    "nan",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "0x7fffffffffffffff",
    "0o777",
    "0b2",
    "1_000_000",
    "9223372036854775808",
    "-9223372036854775809",
    "\"\"\"multi\nline\"\"\"",
    "'''raw'''",
    "{ a = 1, a = 2 }",
    "[1, \"two\", {three = 3}]",
    "[[",
    "= =",
    "\"\\uD800\"",
    "1e400",
    "true\n[x]",
];

/// A string value or key.
#[derive(Debug, Clone, TypeGenerator)]
pub enum Text {
    /// A word of the target's dictionary.
    Word(u8),
    /// One of [`ODD`].
    Odd(u8),
    /// Anything.
    Any(String),
    /// A word (or an odd piece) repeated: up to 255 times, or up to 16,320 with `big`
    /// (values far over every limit: notes, titles, bodies, data).
    Huge {
        piece: u8,
        odd: bool,
        times: u8,
        big: bool,
    },
    /// A word with an odd piece spliced in.
    Spliced { word: u8, odd: u8, at: u8 },
    /// Two words joined by an odd piece.
    Joined { a: u8, glue: u8, b: u8 },
}

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[usize::from(i) % list.len()]
}

impl Text {
    /// The string, with words from `dict` (never empty).
    pub fn render(&self, dict: &[&str]) -> String {
        match self {
            Text::Word(i) => pick(dict, *i).to_string(),
            Text::Odd(i) => pick(ODD, *i).to_string(),
            Text::Any(s) => s.clone(),
            Text::Huge {
                piece,
                odd,
                times,
                big,
            } => {
                let unit = if *odd {
                    pick(ODD, *piece)
                } else {
                    pick(dict, *piece)
                };
                let unit = if unit.is_empty() { "x" } else { unit };
                let times = usize::from(*times).max(1) * if *big { 64 } else { 1 };
                unit.repeat(times)
            }
            Text::Spliced { word, odd, at } => {
                let w = pick(dict, *word);
                let mut cut = usize::from(*at) % (w.len() + 1);
                while !w.is_char_boundary(cut) {
                    cut -= 1;
                }
                format!("{}{}{}", &w[..cut], pick(ODD, *odd), &w[cut..])
            }
            Text::Joined { a, glue, b } => {
                format!("{}{}{}", pick(dict, *a), pick(ODD, *glue), pick(dict, *b))
            }
        }
    }
}

/// A key: a dictionary word as is, mangled, or anything.
#[derive(Debug, Clone, TypeGenerator)]
pub enum Key {
    Word(u8),
    Mangled { word: u8, how: u8 },
    Any(Text),
}

impl Key {
    pub fn render(&self, dict: &[&str]) -> String {
        match self {
            Key::Word(i) => pick(dict, *i).to_string(),
            Key::Mangled { word, how } => mangle(pick(dict, *word), *how),
            Key::Any(t) => t.render(dict),
        }
    }
}

/// A near miss of `word`: cased, typo'd, camel-cased, padded, look-alike letters.
pub fn mangle(word: &str, how: u8) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    match how % 9 {
        0 => word.to_uppercase(),
        1 => format!("{word} "),
        2 => {
            if chars.len() > 1 {
                chars.swap(0, 1);
            }
            chars.into_iter().collect()
        }
        3 => {
            chars.pop();
            chars.into_iter().collect()
        }
        // Cyrillic look-alikes.
        4 => word.replace('a', "а").replace('e', "е").replace('o', "о"),
        5 => {
            let mut out = String::new();
            let mut upper = false;
            for c in word.chars() {
                if c == '_' {
                    upper = true;
                } else if upper {
                    out.extend(c.to_uppercase());
                    upper = false;
                } else {
                    out.push(c);
                }
            }
            out
        }
        6 => format!("\u{feff}{word}"),
        7 => format!("{word}{word}"),
        _ => word.replace('_', "-"),
    }
}

/// A number: small, any, or on an edge.
#[derive(Debug, Clone, TypeGenerator)]
pub enum Number {
    Small(i8),
    Int(i64),
    Unsigned(u64),
    Float(f64),
    Edge(u8),
}

impl Number {
    pub fn value(&self) -> Value {
        match self {
            Number::Small(n) => Value::from(*n),
            Number::Int(n) => Value::from(*n),
            Number::Unsigned(n) => Value::from(*n),
            // NaN and infinities have no JSON form: they become null.
            Number::Float(f) => Value::from(*f),
            Number::Edge(i) => Value::from(EDGE_NUMBERS[usize::from(*i) % EDGE_NUMBERS.len()]),
        }
    }
}

/// A value to put somewhere.
#[derive(Debug, Clone, TypeGenerator)]
pub enum Leaf {
    Null,
    Bool(bool),
    Num(Number),
    Str(Text),
    /// A number as a string (`"70000"`): the type confusion clients make.
    NumText(Number),
    EmptyArray,
    EmptyObject,
    List(Vec<Text>),
    /// A fragment of the format's raw text that no tree can hold (`1e400`, a lone
    /// surrogate, a duplicate key): spliced in after rendering.
    Raw(u8),
}

/// Marks a [`Leaf::Raw`] in the tree until the text is rendered.
fn raw_marker(i: u8) -> String {
    format!("\u{1}raw{i}\u{1}")
}

impl Leaf {
    pub fn value(&self, dict: &[&str]) -> Value {
        match self {
            Leaf::Null => Value::Null,
            Leaf::Bool(b) => Value::Bool(*b),
            Leaf::Num(n) => n.value(),
            Leaf::Str(t) => Value::String(t.render(dict)),
            Leaf::NumText(n) => Value::String(n.value().to_string()),
            Leaf::EmptyArray => Value::Array(Vec::new()),
            Leaf::EmptyObject => Value::Object(Map::new()),
            Leaf::List(items) => items
                .iter()
                .map(|t| Value::String(t.render(dict)))
                .collect(),
            Leaf::Raw(i) => Value::String(raw_marker(*i)),
        }
    }
}

/// One change to the tree. `at`, `from` and `to` pick a node by its pre-order index,
/// modulo the number of nodes (0 is the root).
#[derive(Debug, Clone, TypeGenerator)]
pub enum Edit {
    /// Drop a field or element.
    Remove { at: u16 },
    /// Replace a node by another value (retyping it, most of the time).
    Replace { at: u16, with: Leaf },
    /// Add a field to an object (or an element to an array).
    Insert { at: u16, key: Key, value: Leaf },
    /// Rename a field.
    RenameKey { at: u16, to: Key },
    /// Wrap a node in `depth` arrays or objects.
    Nest { at: u16, depth: u8, array: bool },
    /// Copy one node's value over another (right value, wrong field).
    Graft { from: u16, to: u16 },
    /// Replace the value of the first field named by a dictionary word, wherever it is:
    /// reaches a key deep in a large example far more often than a node index does.
    SetKey { key: u8, with: Leaf },
}

/// Byte-level damage to the rendered text.
#[derive(Debug, Clone, TypeGenerator)]
pub enum ByteEdit {
    Truncate { at: u16 },
    Insert { at: u16, byte: u8 },
    Remove { at: u16, len: u8 },
    Duplicate { at: u16, len: u8 },
    Splice { at: u16, text: Text },
}

/// An input for a parser of a structured text format.
#[derive(Debug, Clone, TypeGenerator)]
pub enum Doc {
    /// One of the target's examples, edited.
    Edited {
        example: u8,
        edits: Vec<Edit>,
        bytes: Vec<ByteEdit>,
    },
    /// Anything.
    Raw(Vec<u8>),
}

/// The examples and words one target edits with.
pub struct Grammar {
    pub examples: Vec<Value>,
    pub dict: &'static [&'static str],
}

impl Grammar {
    /// Examples given as JSON text (each must parse).
    pub fn json(examples: &[&str], dict: &'static [&'static str]) -> Grammar {
        Grammar {
            examples: examples
                .iter()
                .map(|e| serde_json::from_str(e).unwrap_or_else(|err| panic!("{e}: {err}")))
                .collect(),
            dict,
        }
    }

    /// Examples given as TOML text (each must parse), held as JSON trees.
    pub fn toml(examples: &[&str], dict: &'static [&'static str]) -> Grammar {
        Grammar {
            examples: examples
                .iter()
                .map(|e| {
                    let t: toml::Table =
                        toml::from_str(e).unwrap_or_else(|err| panic!("{e}: {err}"));
                    serde_json::to_value(t).expect("TOML as a JSON tree")
                })
                .collect(),
            dict,
        }
    }

    /// `doc` as JSON text.
    pub fn render_json(&self, doc: &Doc) -> Vec<u8> {
        self.render(doc, |v| serde_json::to_string(v).ok(), RAW_JSON, "\\u0001")
    }

    /// `doc` as TOML text (`None` when the edited tree has no TOML form, e.g. a
    /// top-level array). Nulls, which TOML lacks, drop their field.
    pub fn render_toml(&self, doc: &Doc) -> Option<Vec<u8>> {
        let text = self.render(
            doc,
            |v| {
                let mut v = v.clone();
                strip_nulls(&mut v);
                toml::to_string(&v).ok()
            },
            RAW_TOML,
            "\\u0001",
        );
        (!text.is_empty() || matches!(doc, Doc::Raw(_))).then_some(text)
    }

    fn render(
        &self,
        doc: &Doc,
        to_text: impl Fn(&Value) -> Option<String>,
        raw: &[&str],
        escaped_marker: &str,
    ) -> Vec<u8> {
        let (example, edits, bytes) = match doc {
            Doc::Raw(b) => return b.clone(),
            Doc::Edited {
                example,
                edits,
                bytes,
            } => (example, edits, bytes),
        };
        let mut tree = self.examples[usize::from(*example) % self.examples.len()].clone();
        for edit in edits.iter().take(MAX_EDITS) {
            apply(&mut tree, edit, self.dict);
        }
        let Some(mut text) = to_text(&tree) else {
            return Vec::new();
        };
        // Splice the raw fragments over their markers, quotes included.
        if text.contains(escaped_marker) {
            for i in 0..=u8::MAX {
                let marker = format!("\"{escaped_marker}raw{i}{escaped_marker}\"");
                if text.contains(&marker) {
                    text = text.replace(&marker, pick(raw, i));
                }
            }
        }
        let mut out = text.into_bytes();
        for edit in bytes.iter().take(MAX_EDITS) {
            damage(&mut out, edit, self.dict);
        }
        out
    }
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => {
            items.retain(|v| !v.is_null());
            items.iter_mut().for_each(strip_nulls);
        }
        _ => {}
    }
}

/// JSON pointers of every node, pre-order; the root is `""`.
fn pointers(v: &Value) -> Vec<String> {
    fn walk(v: &Value, here: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                out.push(here.clone());
                for (k, child) in m {
                    let k = k.replace('~', "~0").replace('/', "~1");
                    walk(child, format!("{here}/{k}"), out);
                }
            }
            Value::Array(items) => {
                out.push(here.clone());
                for (i, child) in items.iter().enumerate() {
                    walk(child, format!("{here}/{i}"), out);
                }
            }
            _ => out.push(here),
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// `(parent pointer, last token)`; `None` for the root.
fn split(pointer: &str) -> Option<(&str, String)> {
    let cut = pointer.rfind('/')?;
    Some((&pointer[..cut], unescape(&pointer[cut + 1..])))
}

fn nth(tree: &Value, at: u16) -> String {
    let all = pointers(tree);
    all[usize::from(at) % all.len()].clone()
}

fn apply(tree: &mut Value, edit: &Edit, dict: &[&str]) {
    match edit {
        Edit::Remove { at } => {
            let p = nth(tree, *at);
            if let Some((parent, last)) = split(&p) {
                match tree.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.shift_remove(&last);
                    }
                    Some(Value::Array(items)) => {
                        if let Ok(i) = last.parse::<usize>()
                            && i < items.len()
                        {
                            items.remove(i);
                        }
                    }
                    _ => {}
                }
            }
        }
        Edit::Replace { at, with } => {
            let p = nth(tree, *at);
            if let Some(node) = tree.pointer_mut(&p) {
                *node = with.value(dict);
            }
        }
        Edit::Insert { at, key, value } => {
            let p = nth(tree, *at);
            match tree.pointer_mut(&p) {
                Some(Value::Object(m)) => {
                    m.insert(key.render(dict), value.value(dict));
                }
                Some(Value::Array(items)) => items.push(value.value(dict)),
                _ => {}
            }
        }
        Edit::RenameKey { at, to } => {
            let p = nth(tree, *at);
            if let Some((parent, last)) = split(&p)
                && let Some(Value::Object(m)) = tree.pointer_mut(parent)
                && let Some(v) = m.shift_remove(&last)
            {
                m.insert(to.render(dict), v);
            }
        }
        Edit::Nest { at, depth, array } => {
            let p = nth(tree, *at);
            if let Some(node) = tree.pointer_mut(&p) {
                let mut v = node.take();
                for _ in 0..*depth {
                    v = if *array {
                        Value::Array(vec![v])
                    } else {
                        let mut m = Map::new();
                        m.insert("value".into(), v);
                        Value::Object(m)
                    };
                }
                *node = v;
            }
        }
        Edit::SetKey { key, with } => {
            let name = pick(dict, *key).replace('~', "~0").replace('/', "~1");
            let suffix = format!("/{name}");
            if let Some(p) = pointers(tree).into_iter().find(|p| p.ends_with(&suffix))
                && let Some(node) = tree.pointer_mut(&p)
            {
                *node = with.value(dict);
            }
        }
        Edit::Graft { from, to } => {
            let from = nth(tree, *from);
            let to = nth(tree, *to);
            if let Some(v) = tree.pointer(&from).cloned()
                && let Some(node) = tree.pointer_mut(&to)
            {
                *node = v;
            }
        }
    }
}

fn damage(out: &mut Vec<u8>, edit: &ByteEdit, dict: &[&str]) {
    let at = |pos: u16, len: usize| usize::from(pos) % (len + 1);
    match edit {
        ByteEdit::Truncate { at: pos } => {
            let cut = at(*pos, out.len());
            out.truncate(cut);
        }
        ByteEdit::Insert { at: pos, byte } => {
            let i = at(*pos, out.len());
            out.insert(i, *byte);
        }
        ByteEdit::Remove { at: pos, len } => {
            let i = at(*pos, out.len());
            let end = (i + usize::from(*len)).min(out.len());
            out.drain(i..end);
        }
        ByteEdit::Duplicate { at: pos, len } => {
            let i = at(*pos, out.len());
            let end = (i + usize::from(*len)).min(out.len());
            let copy = out[i..end].to_vec();
            out.splice(end..end, copy);
        }
        ByteEdit::Splice { at: pos, text } => {
            let i = at(*pos, out.len());
            let text = text.render(dict);
            out.splice(i..i, text.into_bytes());
        }
    }
}

#[test]
fn edits_reach_every_node_and_raw_fragments_are_spliced() {
    let g = Grammar::json(&[r#"{"a": {"b": [1, 2]}, "c": "x"}"#], &["word"]);
    assert_eq!(
        pointers(&g.examples[0]),
        ["", "/a", "/a/b", "/a/b/0", "/a/b/1", "/c"]
    );
    let doc = Doc::Edited {
        example: 0,
        edits: vec![
            Edit::Remove { at: 3 },
            Edit::Replace {
                at: 4,
                with: Leaf::Raw(0),
            },
            Edit::RenameKey {
                at: 1,
                to: Key::Mangled { word: 0, how: 0 },
            },
        ],
        bytes: vec![],
    };
    assert_eq!(
        String::from_utf8(g.render_json(&doc)).unwrap(),
        r#"{"c":1e400,"WORD":{"b":[2]}}"#
    );
}
