//! Queries over documents: conditions on top-level fields, evaluated in memory by the
//! embedded backend and translated to MongoDB filters by the other.
//!
//! Comparison follows MongoDB's order across types closely enough for our fields:
//! null < numbers < strings < booleans; numbers compare as numbers whatever their JSON
//! representation. A missing field is null.

use std::cmp::Ordering;

use serde_json::Value;

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
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i.cmp(&j),
            _ => x
                .as_f64()
                .unwrap_or(f64::NAN)
                .total_cmp(&y.as_f64().unwrap_or(f64::NAN)),
        },
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
}
