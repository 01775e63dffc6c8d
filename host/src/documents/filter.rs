//! Queries over documents: conditions on top-level fields, evaluated in memory by the
//! embedded backend and translated to MongoDB filters by the other.
//!
//! Comparison follows MongoDB's order across types closely enough for our fields:
//! null < numbers < strings < booleans; numbers compare as numbers whatever their JSON
//! representation. A missing field is null.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::Doc;

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// A condition on one field.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Lt(Value),
    Lte(Value),
    Gt(Value),
    Gte(Value),
    /// The field is present (and not null) or absent.
    Exists(bool),
}

/// An AND of conditions on top-level fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter(pub Vec<(String, Cond)>);

impl Filter {
    /// Matches everything.
    pub fn all() -> Filter {
        Filter::default()
    }
    pub fn eq(mut self, field: &str, v: impl Into<Value>) -> Filter {
        self.0.push((field.into(), Cond::Eq(v.into())));
        self
    }
    pub fn ne(mut self, field: &str, v: impl Into<Value>) -> Filter {
        self.0.push((field.into(), Cond::Ne(v.into())));
        self
    }
    pub fn is_in(mut self, field: &str, vs: Vec<Value>) -> Filter {
        self.0.push((field.into(), Cond::In(vs)));
        self
    }
    pub fn lt(mut self, field: &str, v: impl Into<Value>) -> Filter {
        self.0.push((field.into(), Cond::Lt(v.into())));
        self
    }
    pub fn lte(mut self, field: &str, v: impl Into<Value>) -> Filter {
        self.0.push((field.into(), Cond::Lte(v.into())));
        self
    }
    pub fn gt(mut self, field: &str, v: impl Into<Value>) -> Filter {
        self.0.push((field.into(), Cond::Gt(v.into())));
        self
    }
    pub fn gte(mut self, field: &str, v: impl Into<Value>) -> Filter {
        self.0.push((field.into(), Cond::Gte(v.into())));
        self
    }
    pub fn exists(mut self, field: &str, present: bool) -> Filter {
        self.0.push((field.into(), Cond::Exists(present)));
        self
    }

    /// Whether `doc` matches every condition.
    pub fn matches(&self, doc: &Doc) -> bool {
        self.0.iter().all(|(field, cond)| {
            let v = doc.get(field).unwrap_or(&Value::Null);
            match cond {
                Cond::Eq(x) => compare(v, x) == Ordering::Equal,
                Cond::Ne(x) => compare(v, x) != Ordering::Equal,
                Cond::In(xs) => xs.iter().any(|x| compare(v, x) == Ordering::Equal),
                Cond::Lt(x) => same_kind(v, x) && compare(v, x) == Ordering::Less,
                Cond::Lte(x) => same_kind(v, x) && compare(v, x) != Ordering::Greater,
                Cond::Gt(x) => same_kind(v, x) && compare(v, x) == Ordering::Greater,
                Cond::Gte(x) => same_kind(v, x) && compare(v, x) != Ordering::Less,
                Cond::Exists(present) => v.is_null() != *present,
            }
        })
    }
}

/// A query: filter, sort keys, limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub filter: Filter,
    pub sort: Vec<(String, Order)>,
    pub limit: Option<usize>,
}

impl Query {
    pub fn new(filter: Filter) -> Query {
        Query {
            filter,
            ..Default::default()
        }
    }
    pub fn sort(mut self, field: &str, order: Order) -> Query {
        self.sort.push((field.into(), order));
        self
    }
    pub fn limit(mut self, n: usize) -> Query {
        self.limit = Some(n);
        self
    }

    /// Sort and cut `docs` as the query asks (the embedded backend's last step).
    pub fn apply_order(&self, docs: &mut Vec<Doc>) {
        if !self.sort.is_empty() {
            docs.sort_by(|a, b| {
                for (field, order) in &self.sort {
                    let x = a.get(field).unwrap_or(&Value::Null);
                    let y = b.get(field).unwrap_or(&Value::Null);
                    let o = compare(x, y);
                    let o = if *order == Order::Desc {
                        o.reverse()
                    } else {
                        o
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            });
        }
        if let Some(n) = self.limit {
            docs.truncate(n);
        }
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Number(_) => 1,
        Value::String(_) => 2,
        Value::Object(_) => 3,
        Value::Array(_) => 4,
        Value::Bool(_) => 5,
    }
}

/// Range conditions compare only like with like (MongoDB's type bracketing).
fn same_kind(a: &Value, b: &Value) -> bool {
    rank(a) == rank(b)
}

/// A total order over JSON values.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (i, j) in x.iter().zip(y) {
                let o = compare(i, j);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => serde_json::to_string(x)
            .ok()
            .cmp(&serde_json::to_string(y).ok()),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// An integer that JSON holds exactly (i64 or u64); `None` for a float.
fn exact_int(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

const TWO_63: f64 = 9_223_372_036_854_775_808.0;
const TWO_64: f64 = 18_446_744_073_709_551_616.0;

/// Numbers compare by their exact values, as MongoDB compares a long with a double:
/// an index key must agree with this order bit for bit, and a comparison through f64
/// would make `i64::MAX` equal to `i64::MAX - 1`. `-0.0` equals `0`.
fn compare_numbers(x: &Number, y: &Number) -> Ordering {
    let float = |n: &Number| n.as_f64().unwrap_or(f64::NAN);
    match (exact_int(x), exact_int(y)) {
        (Some(i), Some(j)) => i.cmp(&j),
        (Some(i), None) => compare_int_float(i, float(y)),
        (None, Some(j)) => compare_int_float(j, float(x)).reverse(),
        (None, None) => {
            let (a, b) = (float(x), float(y));
            a.partial_cmp(&b).unwrap_or_else(|| a.total_cmp(&b))
        }
    }
}

/// `i` (an i64 or u64) against `f`, exactly.
fn compare_int_float(i: i128, f: f64) -> Ordering {
    if f.is_nan() || f >= TWO_64 {
        Ordering::Less
    } else if f < -TWO_64 {
        Ordering::Greater
    } else {
        // |floor(f)| <= 2^64 is exact in i128; a fractional part puts f above its floor.
        let fl = f.floor();
        match i.cmp(&(fl as i128)) {
            Ordering::Equal if f > fl => Ordering::Less,
            o => o,
        }
    }
}

// Index key encoding: bytes whose lexicographic order is `compare`'s order, and equal
// exactly when `compare` says equal, so an index range scan finds what `Filter::matches`
// would and returns it sorted. Each value is self-delimiting (no encoding is a prefix of
// another) and starts with a tag below 0xFF, which lets a compound key concatenate its
// fields and lets `value ++ [0xFF]` bound "this value, whatever follows".
//
// The tags follow `compare`'s order across types (null < numbers < strings < objects <
// arrays < booleans, MongoDB's), not a per-type numbering: a sort served by an index
// must place every type where the in-memory sort does. Numbers share one ordered space
// (ints and floats interleave by value: 5 and 5.0 encode the same):
//   0x01 + 8 bytes f64 key        below -2^63 (floats only)
//   0x02 + 8 bytes floor ^ 2^63   in [-2^63, 2^63), then 0x00 if integral, else
//          0x01 + 8 bytes of the fraction's bits (in (0, 1): positive, so bits order)
//   0x03 + 8 bytes u64            in [2^63, 2^64) (u64 ints, huge integral floats), 0x00
//   0x04 + 8 bytes f64 key        2^64 and above (floats only)
// A string is its bytes with 0x00 escaped as 0x00 0xFF, closed by 0x00 0x00 (UTF-8 never
// holds 0xFF). An object is its JSON text encoded like a string (`compare` orders objects
// by that text); an array is 0x01 + element per element, closed by 0x00 (elementwise,
// shorter first, like `compare`). Indexed fields are scalars in practice; the composite
// cases are exact rather than an error so a stray value never makes a write fail.
const TAG_NULL: u8 = 0x00;
const TAG_NUM_LOW: u8 = 0x01;
const TAG_NUM: u8 = 0x02;
const TAG_NUM_U64: u8 = 0x03;
const TAG_NUM_HIGH: u8 = 0x04;
const TAG_STRING: u8 = 0x05;
const TAG_OBJECT: u8 = 0x06;
const TAG_ARRAY: u8 = 0x07;
const TAG_FALSE: u8 = 0x08;
const TAG_TRUE: u8 = 0x09;

/// Above every tag: `encoding ++ [KEY_END]` is above every key that starts with `encoding`.
pub const KEY_END: u8 = 0xFF;

/// The order-preserving key of a compound index: each value encoded, concatenated.
pub fn encode_key<'a>(values: impl IntoIterator<Item = &'a Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    for v in values {
        encode_value(v, &mut out);
    }
    out
}

/// Append the order-preserving encoding of one value (a missing field is `null`).
pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(TAG_NULL),
        Value::Bool(false) => out.push(TAG_FALSE),
        Value::Bool(true) => out.push(TAG_TRUE),
        Value::Number(n) => encode_number(n, out),
        Value::String(s) => {
            out.push(TAG_STRING);
            encode_bytes(s.as_bytes(), out);
        }
        Value::Object(m) => {
            out.push(TAG_OBJECT);
            encode_bytes(serde_json::to_string(m).unwrap_or_default().as_bytes(), out);
        }
        Value::Array(items) => {
            out.push(TAG_ARRAY);
            for item in items {
                out.push(0x01);
                encode_value(item, out);
            }
            out.push(0x00);
        }
    }
}

fn encode_number(n: &Number, out: &mut Vec<u8>) {
    if let Some(i) = n.as_i64() {
        out.push(TAG_NUM);
        out.extend_from_slice(&((i as u64) ^ (1 << 63)).to_be_bytes());
        out.push(0x00);
    } else if let Some(u) = n.as_u64() {
        out.push(TAG_NUM_U64);
        out.extend_from_slice(&u.to_be_bytes());
        out.push(0x00);
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.is_nan() || f >= TWO_64 {
            out.push(TAG_NUM_HIGH);
            out.extend_from_slice(&float_key(f));
        } else if f < -TWO_63 {
            out.push(TAG_NUM_LOW);
            out.extend_from_slice(&float_key(f));
        } else if f >= TWO_63 {
            // Integral at this magnitude and exact in u64: sorts among the u64 ints.
            out.push(TAG_NUM_U64);
            out.extend_from_slice(&(f as u64).to_be_bytes());
            out.push(0x00);
        } else {
            let fl = f.floor();
            out.push(TAG_NUM);
            out.extend_from_slice(&((fl as i64 as u64) ^ (1 << 63)).to_be_bytes());
            // Exact: f and its floor are less than 1 apart and share the ulp grid.
            let frac = f - fl;
            if frac == 0.0 {
                out.push(0x00);
            } else {
                out.push(0x01);
                out.extend_from_slice(&frac.to_bits().to_be_bytes());
            }
        }
    }
}

/// IEEE bits made to sort as unsigned: negatives flipped, positives with the sign set.
fn float_key(f: f64) -> [u8; 8] {
    let b = f.to_bits();
    let k = if b >> 63 == 1 { !b } else { b | (1 << 63) };
    k.to_be_bytes()
}

fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x00]);
}

/// The length of the first encoded value in `bytes` (`None` if they are malformed).
pub fn encoded_len(bytes: &[u8]) -> Option<usize> {
    match *bytes.first()? {
        TAG_NULL | TAG_FALSE | TAG_TRUE => Some(1),
        TAG_NUM_LOW | TAG_NUM_HIGH => Some(9),
        TAG_NUM | TAG_NUM_U64 => match *bytes.get(9)? {
            0x00 => Some(10),
            _ => Some(18),
        },
        TAG_STRING | TAG_OBJECT => {
            let mut i = 1;
            loop {
                match *bytes.get(i)? {
                    0x00 if *bytes.get(i + 1)? == 0x00 => return Some(i + 2),
                    0x00 => i += 2,
                    _ => i += 1,
                }
            }
        }
        TAG_ARRAY => {
            let mut i = 1;
            loop {
                match *bytes.get(i)? {
                    0x00 => return Some(i + 1),
                    _ => i += 1 + encoded_len(bytes.get(i + 1..)?)?,
                }
            }
        }
        _ => None,
    }
}

/// The encodings of the values `v` is comparable with by a range condition (MongoDB's
/// type bracketing, [`same_kind`]): `start..end` as tag bytes.
fn kind_bounds(v: &Value) -> (Vec<u8>, Vec<u8>) {
    let (start, end) = match v {
        Value::Null => (TAG_NULL, TAG_NUM_LOW),
        Value::Number(_) => (TAG_NUM_LOW, TAG_STRING),
        Value::String(_) => (TAG_STRING, TAG_OBJECT),
        Value::Object(_) => (TAG_OBJECT, TAG_ARRAY),
        Value::Array(_) => (TAG_ARRAY, TAG_FALSE),
        Value::Bool(_) => (TAG_FALSE, TAG_TRUE + 1),
    };
    (vec![start], vec![end])
}

/// The encoded values one field may take under its range conditions (`Lt`/`Lte`/`Gt`/
/// `Gte`; other conditions are ignored): `start..end` (inclusive, exclusive), exactly
/// the values `Filter::matches` accepts for those conditions. `None` without any range
/// condition; an empty range (`start >= end`) when they contradict each other.
pub fn value_range<'a>(conds: impl IntoIterator<Item = &'a Cond>) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut out: Option<(Vec<u8>, Vec<u8>)> = None;
    for cond in conds {
        let (start, end) = match cond {
            Cond::Lt(x) | Cond::Lte(x) | Cond::Gt(x) | Cond::Gte(x) => {
                let (kind_start, kind_end) = kind_bounds(x);
                let mut at = Vec::new();
                encode_value(x, &mut at);
                let mut past = at.clone();
                past.push(KEY_END);
                match cond {
                    Cond::Lt(_) => (kind_start, at),
                    Cond::Lte(_) => (kind_start, past),
                    Cond::Gt(_) => (past, kind_end),
                    _ => (at, kind_end),
                }
            }
            _ => continue,
        };
        out = Some(match out {
            None => (start, end),
            Some((s, e)) => (s.max(start), e.min(end)),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(v: Value) -> Doc {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn conditions() {
        let d = doc(json!({"_id": "a", "state": "queued", "due": 5, "n": 2.5}));
        assert!(
            Filter::all()
                .eq("state", "queued")
                .lte("due", 5)
                .matches(&d)
        );
        assert!(!Filter::all().eq("state", "sent").matches(&d));
        assert!(Filter::all().ne("state", "sent").gt("n", 2).matches(&d));
        assert!(
            Filter::all()
                .is_in("state", vec![json!("x"), json!("queued")])
                .matches(&d)
        );
        assert!(
            Filter::all()
                .exists("due", true)
                .exists("nope", false)
                .matches(&d)
        );
        assert!(
            !Filter::all().lt("state", 10).matches(&d),
            "a string is not less than a number"
        );
        assert!(Filter::all().eq("missing", Value::Null).matches(&d));
        assert!(Filter::all().eq("due", 5.0).matches(&d), "5 == 5.0");
    }

    #[test]
    fn sorting_and_limit() {
        let mut docs = vec![
            doc(json!({"_id": "a", "t": 3})),
            doc(json!({"_id": "b", "t": 1})),
            doc(json!({"_id": "c"})),
            doc(json!({"_id": "d", "t": 2})),
        ];
        Query::default()
            .sort("t", Order::Desc)
            .limit(3)
            .apply_order(&mut docs);
        let ids: Vec<&str> = docs.iter().map(|d| d["_id"].as_str().unwrap()).collect();
        assert_eq!(ids, vec!["a", "d", "b"]);
    }

    /// Values of every kind, with the edges of each number region.
    fn samples() -> Vec<Value> {
        let mut v = vec![
            Value::Null,
            json!(false),
            json!(true),
            json!(i64::MIN),
            json!(i64::MIN + 1),
            json!(-(1i64 << 53) - 1),
            json!(-1_000_000),
            json!(-1),
            json!(0),
            json!(1),
            json!(5),
            json!(1_700_000_000_000i64),
            json!(1i64 << 53),
            json!((1i64 << 53) + 1),
            json!(i64::MAX - 1),
            json!(i64::MAX),
            json!(1u64 << 63),
            json!((1u64 << 63) + 1),
            json!(u64::MAX),
            json!(-1e300),
            json!(-1.5e19),
            json!(-9_223_372_036_854_775_808.0),
            json!(-2.5),
            json!(-1.0),
            json!(-0.5),
            json!(-0.0),
            json!(0.0),
            json!(f64::MIN_POSITIVE),
            json!(0.5),
            json!(1.0),
            json!(4.999_999_999),
            json!(5.0),
            json!(5.000_000_001),
            json!(1e15 + 0.5),
            json!(9_223_372_036_854_775_808.0),
            json!(1.5e19),
            json!(18_446_744_073_709_551_616.0),
            json!(1e300),
            json!(""),
            json!("\0"),
            json!("\0\0"),
            json!("\0a"),
            json!("a"),
            json!("a\0"),
            json!("a\0b"),
            json!("a\u{1}"),
            json!("ab"),
            json!("queued"),
            json!("sent"),
            json!("é"),
            json!("\u{10FFFF}"),
            json!({}),
            json!({"a": 1}),
            json!({"a": 1.0}),
            json!({"a": "x\u{0}y"}),
            json!([]),
            json!([null]),
            json!([0]),
            json!([1]),
            json!([1.0]),
            json!([1, 2]),
            json!([1, "a"]),
            json!([1.5]),
            json!(["a"]),
            json!([[1]]),
            json!([[1], 2]),
        ];
        // Deterministic pseudo-random ints and floats on top of the edges.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(json!(x as i64 >> (x % 60)));
            v.push(json!((x as i64 >> 20) as f64 / 1024.0));
        }
        v
    }

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(v, &mut out);
        out
    }

    #[test]
    fn key_encoding_orders_and_equates_like_compare() {
        let values = samples();
        for a in &values {
            let ea = enc(a);
            assert_eq!(encoded_len(&ea), Some(ea.len()), "{a}");
            for b in &values {
                let eb = enc(b);
                assert_eq!(
                    ea.cmp(&eb),
                    compare(a, b),
                    "{a} vs {b}: {ea:02x?} vs {eb:02x?}"
                );
                if ea != eb {
                    assert!(!eb.starts_with(&ea), "{a} is a prefix of {b}");
                }
            }
        }
        // Sorting by key sorts like `compare`.
        let mut by_compare = values.clone();
        by_compare.sort_by(compare);
        let mut by_key = values;
        by_key.sort_by_key(enc);
        for (x, y) in by_compare.iter().zip(&by_key) {
            assert_eq!(compare(x, y), Ordering::Equal, "{x} vs {y}");
        }
    }

    #[test]
    fn numbers_compare_exactly_and_integral_floats_encode_as_ints() {
        assert_eq!(
            compare(&json!(i64::MAX), &json!(i64::MAX - 1)),
            Ordering::Greater
        );
        assert_eq!(
            compare(&json!(i64::MAX), &json!(1u64 << 63)),
            Ordering::Less
        );
        assert_eq!(compare(&json!(-0.0), &json!(0)), Ordering::Equal);
        assert_eq!(compare(&json!(2.5), &json!(2)), Ordering::Greater);
        assert_eq!(compare(&json!(-2.5), &json!(-2)), Ordering::Less);
        assert_eq!(enc(&json!(5)), enc(&json!(5.0)));
        assert_eq!(enc(&json!(0)), enc(&json!(-0.0)));
        assert_eq!(
            enc(&json!(1u64 << 63)),
            enc(&json!(9_223_372_036_854_775_808.0))
        );
        // A compound key is its fields' encodings concatenated.
        let k = encode_key([&json!("queued"), &json!(7)]);
        assert_eq!(k, [enc(&json!("queued")), enc(&json!(7))].concat());
        assert_eq!(encoded_len(&k), Some(enc(&json!("queued")).len()));
    }

    #[test]
    fn value_ranges_admit_what_the_filter_admits() {
        let values = samples();
        let conds = |x: &Value| {
            vec![
                Cond::Lt(x.clone()),
                Cond::Lte(x.clone()),
                Cond::Gt(x.clone()),
                Cond::Gte(x.clone()),
            ]
        };
        for x in values.iter().step_by(3) {
            for c in conds(x) {
                let (start, end) = value_range([&c]).unwrap();
                let f = Filter(vec![("f".into(), c.clone())]);
                for v in &values {
                    let key = enc(v);
                    let in_range = key >= start && key < end;
                    let matched = f.matches(&doc(json!({ "f": v })));
                    assert_eq!(in_range, matched, "{c:?} on {v}");
                }
            }
        }
        // Both sides intersect; contradictions are empty.
        let (s, e) = value_range(&[Cond::Gt(json!(3)), Cond::Lte(json!(9))]).unwrap();
        assert!(enc(&json!(3)) < s && enc(&json!(4)) >= s && enc(&json!(9)) < e);
        let (s, e) = value_range(&[Cond::Gt(json!(3)), Cond::Lt(json!("a"))]).unwrap();
        assert!(s >= e);
        assert_eq!(value_range(&[Cond::Eq(json!(3))]), None);
    }
}
