//! Stream entries read off Redis' raw replies, fields in the order they were written and
//! as bytes, so an entry a producer wrote with a value that is not UTF-8 becomes one
//! malformed entry (`StreamEntry::malformed`) instead of an error that fails the whole
//! read, again and again, for every entry behind it.
//!
//! XREADGROUP answers `[[stream, [[id, [field, value, ...]], ...]]]` (RESP2) or a map of
//! stream to entries (RESP3); an entry that was deleted while pending comes back as
//! `[id, nil]`. XAUTOCLAIM answers `[next-id, [entries], [deleted ids]]`.

use anyhow::{Result, anyhow, bail};
use redis::Value;

use super::StreamEntry;

/// The entries of one stream in an XREADGROUP reply (none for a nil reply). Entries
/// deleted while pending are left out.
pub fn read_group_entries(reply: &Value) -> Result<Vec<StreamEntry>> {
    let streams: Vec<&Value> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|s| match s {
                Value::Array(pair) if pair.len() == 2 => Ok(&pair[1]),
                other => Err(anyhow!("unexpected XREADGROUP stream item: {other:?}")),
            })
            .collect::<Result<_>>()?,
        Value::Map(pairs) => pairs.iter().map(|(_, v)| v).collect(),
        other => bail!("unexpected XREADGROUP reply: {other:?}"),
    };
    let mut out = Vec::new();
    for entries in streams {
        out.extend(entries_of(entries)?);
    }
    Ok(out)
}

/// The claimed entries of an XAUTOCLAIM reply and the cursor to continue from.
pub fn autoclaim_entries(reply: &Value) -> Result<(String, Vec<StreamEntry>)> {
    let Value::Array(parts) = reply else {
        bail!("unexpected XAUTOCLAIM reply: {reply:?}");
    };
    let cursor = parts
        .first()
        .map(text)
        .transpose()?
        .ok_or_else(|| anyhow!("XAUTOCLAIM reply without a cursor"))?;
    let entries = match parts.get(1) {
        Some(v) => entries_of(v)?,
        None => Vec::new(),
    };
    Ok((cursor, entries))
}

fn entries_of(v: &Value) -> Result<Vec<StreamEntry>> {
    let Value::Array(items) = v else {
        if matches!(v, Value::Nil) {
            return Ok(Vec::new());
        }
        bail!("unexpected list of stream entries: {v:?}");
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(pair) = item else {
            bail!("unexpected stream entry: {item:?}");
        };
        let id = pair
            .first()
            .map(text)
            .transpose()?
            .ok_or_else(|| anyhow!("stream entry without an id"))?;
        let raw = match pair.get(1) {
            None | Some(Value::Nil) => continue,
            Some(Value::Array(kv)) => kv
                .chunks(2)
                .map(|c| {
                    Ok((
                        bytes(&c[0])?,
                        c.get(1).map(bytes).transpose()?.unwrap_or_default(),
                    ))
                })
                .collect::<Result<Vec<_>>>()?,
            Some(Value::Map(kv)) => kv
                .iter()
                .map(|(k, v)| Ok((bytes(k)?, bytes(v)?)))
                .collect::<Result<Vec<_>>>()?,
            Some(other) => bail!("unexpected fields of stream entry {id}: {other:?}"),
        };
        out.push(StreamEntry::from_fields(id, raw, 1));
    }
    Ok(out)
}

fn bytes(v: &Value) -> Result<Vec<u8>> {
    match v {
        Value::BulkString(b) => Ok(b.clone()),
        Value::SimpleString(s) => Ok(s.clone().into_bytes()),
        Value::Int(i) => Ok(i.to_string().into_bytes()),
        Value::Okay => Ok(b"OK".to_vec()),
        other => bail!("unexpected stream field: {other:?}"),
    }
}

fn text(v: &Value) -> Result<String> {
    String::from_utf8(bytes(v)?).map_err(|_| anyhow!("a stream entry id that is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn fields_keep_their_order_and_a_bad_value_marks_only_its_entry() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(b"s"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk(b"1-0"),
                    Value::Array(vec![bulk(b"z"), bulk(b"1"), bulk(b"a"), bulk(b"2")]),
                ]),
                Value::Array(vec![bulk(b"2-0"), Value::Nil]),
                Value::Array(vec![
                    bulk(b"3-0"),
                    Value::Array(vec![bulk(b"x"), bulk(&[0xff])]),
                ]),
            ]),
        ])]);
        let entries = read_group_entries(&reply).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].fields,
            vec![("z".into(), "1".into()), ("a".into(), "2".into())]
        );
        assert!(entries[0].malformed.is_none());
        assert_eq!(entries[1].id, "3-0");
        assert!(entries[1].malformed.is_some());
    }
}
