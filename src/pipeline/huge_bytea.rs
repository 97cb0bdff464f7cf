//! Huge `bytea` values of a change decoded from their hex text in place.
//!
//! # Memory contract
//!
//! pgoutput sends a `bytea` as hex text, twice its size (`\x` and two digits per byte).
//! Decoded by the batch builder, a 100 MiB value would be in memory three times over (the
//! message holding the text, and the bytes). [`decode_huge_bytea`] turns such a value into
//! its bytes inside the message's own allocation instead, before the change reaches the
//! sinks, and shrinks that allocation to them: at most the message's size is ever held,
//! and the sinks get the value as [`TupleValue::Binary`] — the type's binary form, which
//! for `bytea` is its bytes, exactly what a binary COPY of the full load gives them.
//!
//! A value qualifies when its text has at least [`BATCH_BYTES`] (the size from which the
//! batch builders hold a value without copying it), its column is a `bytea` the sinks
//! receive as such (not dropped, not written as text by a rule) and no row filter is
//! evaluated by pgcdc itself for the table (that filter reads values as text). The value
//! can only be decoded in place when nothing else refers to the message: the other values
//! of the change are copied first (other huge `bytea` values are decoded into a copy),
//! which is only done when those copies are smaller than the value's bytes (a row that
//! also holds a huge text is left as it is); if the message is still shared the value
//! stays text and is decoded the usual way. A value that is not valid hex stays text, so
//! the sinks refuse it with the usual error.

use bytes::Bytes;

use super::shapes::TableShape;
use crate::batch::text::{decode_bytea, decode_bytea_hex_in_place};
use crate::batch::BATCH_BYTES;
use crate::model::{PgType, TupleValue};
use crate::source::pgoutput::PgOutputMessage;

/// [`decode_huge_bytea`] on the tuples of an Insert, Update or Delete.
pub fn decode_change(shape: &TableShape, msg: &mut PgOutputMessage) {
    match msg {
        PgOutputMessage::Insert { new, .. } => decode_huge_bytea(shape, &mut [Some(new)]),
        PgOutputMessage::Update { old, new, .. } => decode_huge_bytea(shape, &mut [Some(new), old.as_mut().map(|(_, t)| t)]),
        PgOutputMessage::Delete { old, .. } => decode_huge_bytea(shape, &mut [Some(&mut old.1)]),
        _ => {}
    }
}

/// Decodes the huge `bytea` values of one change's tuples (its new and old tuple, either
/// absent) in place where it can (see the module docs). Called by the pipeline for every
/// Insert, Update and Delete of a table sinks receive, before the rows are made; all
/// huge values of the change are converted, so equal old and new values stay equal.
pub fn decode_huge_bytea(shape: &TableShape, tuples: &mut [Option<&mut Vec<TupleValue>>]) {
    if shape.filter.is_some() {
        return;
    }
    let qualifies = |i: usize, v: &TupleValue| match v {
        TupleValue::Text(b) => {
            b.len() >= BATCH_BYTES
                && b.starts_with(b"\\x")
                && shape
                    .source
                    .columns
                    .get(i)
                    .is_some_and(|c| c.pg_type == PgType::Bytea)
                && shape.shaped.columns.iter().any(|c| c.index == i)
                && !shape
                    .shaped
                    .columns
                    .iter()
                    .any(|c| c.index == i && c.as_text)
        }
        _ => false,
    };
    let huge: Vec<(usize, usize)> = tuples
        .iter()
        .enumerate()
        .filter_map(|(t, tuple)| tuple.as_ref().map(|tuple| (t, tuple)))
        .flat_map(|(t, tuple)| {
            tuple
                .iter()
                .enumerate()
                .filter(|&(i, v)| qualifies(i, v))
                .map(move |(i, _)| (t, i))
        })
        .collect();
    let Some(&last) = huge.last() else { return };
    // Everything else that may share the message's allocation becomes a copy of its own
    // (the other huge bytea values are decoded into theirs, as the sinks would): only
    // worth it when those copies are smaller than the bytes of the value decoded in place.
    let copied: usize = tuples
        .iter()
        .enumerate()
        .filter_map(|(t, tuple)| tuple.as_ref().map(|tuple| (t, tuple)))
        .flat_map(|(t, tuple)| tuple.iter().enumerate().map(move |(i, v)| ((t, i), v)))
        .filter(|(at, _)| !huge.contains(at))
        .map(|(_, v)| match v {
            TupleValue::Text(b) | TupleValue::Binary(b) => b.len(),
            _ => 0,
        })
        .sum();
    let last_len = match &tuples[last.0].as_ref().expect("found above")[last.1] {
        TupleValue::Text(b) => b.len(),
        _ => 0,
    };
    if copied >= last_len / 2 {
        return;
    }
    for (t, tuple) in tuples.iter_mut().enumerate() {
        let Some(tuple) = tuple else { continue };
        for (i, v) in tuple.iter_mut().enumerate() {
            if (t, i) == last {
                continue;
            }
            *v = match std::mem::replace(v, TupleValue::Null) {
                TupleValue::Text(b) if huge.contains(&(t, i)) => {
                    let mut bytes = Vec::new();
                    match decode_bytea(&b, &mut bytes) {
                        Ok(()) => TupleValue::Binary(bytes.into()),
                        Err(_) => TupleValue::Text(Bytes::copy_from_slice(&b)),
                    }
                }
                TupleValue::Text(b) => TupleValue::Text(Bytes::copy_from_slice(&b)),
                TupleValue::Binary(b) => TupleValue::Binary(Bytes::copy_from_slice(&b)),
                other => other,
            };
        }
    }
    let (t, i) = last;
    let v = &mut tuples[t].as_mut().expect("found above")[i];
    let TupleValue::Text(text) = std::mem::replace(v, TupleValue::Null) else {
        unreachable!("qualifies only text values")
    };
    *v = match text.try_into_mut() {
        Ok(unique) => {
            let mut buf = Vec::from(unique);
            match decode_bytea_hex_in_place(&mut buf) {
                Ok(()) => TupleValue::Binary(buf.into()),
                Err(_) => TupleValue::Text(buf.into()),
            }
        }
        Err(shared) => {
            tracing::debug!("a huge bytea value's message is shared: decoded by the sink");
            TupleValue::Text(shared)
        }
    };
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::schema::fixtures::col;
    use crate::model::TableSchema;

    fn shape(rules: &str) -> Arc<TableShape> {
        let table = Arc::new(TableSchema {
            relid: 1,
            schema: "public".into(),
            name: "h".into(),
            columns: vec![col("id", 20, -1), col("b", 17, -1), col("t", 25, -1)],
            key: vec![0],
            replica_identity: b'f',
            relfilenode: None,
        });
        let rules = if rules.is_empty() {
            Vec::new()
        } else {
            crate::config::parse_rules(rules)
        };
        let mut shapes = super::super::shapes::Shapes::new(rules, Default::default());
        shapes.of(&table).unwrap()
    }

    /// One message holding the id, a huge hex bytea and a text value, as pgoutput slices it.
    fn message(hex_digits: &str) -> Vec<TupleValue> {
        let hex = format!(
            "\\x{}",
            hex_digits.repeat(BATCH_BYTES / 2 / hex_digits.len() * 2)
        );
        let body = format!("1{hex}small");
        let m = Bytes::from(body.into_bytes());
        let n = hex.len();
        vec![
            TupleValue::Text(m.slice(0..1)),
            TupleValue::Text(m.slice(1..1 + n)),
            TupleValue::Text(m.slice(1 + n..)),
        ]
    }

    #[test]
    fn a_huge_value_is_decoded_in_its_message() {
        let mut new = message("Ab");
        let text_ptr = match &new[1] {
            TupleValue::Text(b) => b.as_ptr(),
            _ => unreachable!(),
        };
        decode_huge_bytea(&shape(""), &mut [Some(&mut new), None]);
        let TupleValue::Binary(b) = &new[1] else {
            panic!("{:?}", &new[1])
        };
        assert_eq!(b.len(), BATCH_BYTES / 2);
        assert!(b.iter().all(|&x| x == 0xab));
        // The message's allocation, moved to its front (the id byte came first).
        assert_eq!(b.as_ptr(), unsafe { text_ptr.sub(1) });
        assert_eq!(new[0], TupleValue::Text(Bytes::from_static(b"1")));
        assert_eq!(new[2], TupleValue::Text(Bytes::from_static(b"small")));
    }

    #[test]
    fn old_and_new_values_are_both_decoded() {
        let mut new = message("01");
        let mut old = new.clone();
        decode_huge_bytea(&shape(""), &mut [Some(&mut new), Some(&mut old)]);
        assert!(matches!(&new[1], TupleValue::Binary(b) if b.len() == BATCH_BYTES / 2));
        assert_eq!(new, old);
    }

    #[test]
    fn values_stay_text_where_they_must() {
        let mut shared = message("ff");
        let keep = shared[1].clone();
        decode_huge_bytea(&shape(""), &mut [Some(&mut shared)]);
        assert_eq!(
            shared[1], keep,
            "a message referred to elsewhere is not changed"
        );

        let mut bad = message("0g");
        decode_huge_bytea(&shape(""), &mut [Some(&mut bad)]);
        assert!(matches!(&bad[1], TupleValue::Text(b) if b.starts_with(b"\\x0g0g")));

        // Besides a huge text, copying the text would cost more than decoding in place saves.
        let mut with_text = message("ff");
        with_text[2] = TupleValue::Text(Bytes::from("t".repeat(BATCH_BYTES / 2)));
        decode_huge_bytea(&shape(""), &mut [Some(&mut with_text)]);
        assert!(matches!(&with_text[1], TupleValue::Text(_)));

        let as_text = "[[rule]]\ntables = \"public.h\"\ntext_columns = [\"b\"]\n";
        let mut text = message("ff");
        decode_huge_bytea(&shape(as_text), &mut [Some(&mut text)]);
        assert!(matches!(&text[1], TupleValue::Text(_)));
    }
}
