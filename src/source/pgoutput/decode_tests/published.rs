//! The published pgoutput vectors (tests/fixtures/pgoutput_vectors.json).

use super::*;

// ---------------------------------------------------------------------------------------
// 1. Published vectors
// ---------------------------------------------------------------------------------------

// Vectors from the test suites of cpursley/walex @ 42e1cda8 (test/walex/decoder/decoder_test.exs)
// and baselabs/replicant @ e57b8e10 (test/replicant/decoder/conformance_test.exs), both MIT.
const VECTORS: &str = include_str!("../../../../tests/fixtures/pgoutput_vectors.json");

/// The `expected` object of a vector; every field must be taken exactly once.
struct Fields(Map<String, Value>);

impl Fields {
    fn take(&mut self, key: &str) -> Value {
        self.0
            .remove(key)
            .unwrap_or_else(|| panic!("expected field `{key}` missing"))
    }
    fn str(&mut self, key: &str) -> String {
        self.take(key)
            .as_str()
            .unwrap_or_else(|| panic!("`{key}` is not a string"))
            .to_owned()
    }
    fn u64(&mut self, key: &str) -> u64 {
        self.take(key)
            .as_u64()
            .unwrap_or_else(|| panic!("`{key}` is not an unsigned integer"))
    }
    fn u32(&mut self, key: &str) -> u32 {
        u32::try_from(self.u64(key)).unwrap()
    }
    fn u8(&mut self, key: &str) -> u8 {
        u8::try_from(self.u64(key)).unwrap()
    }
    fn lsn(&mut self, key: &str) -> Lsn {
        self.str(key).parse().unwrap()
    }
    fn ts(&mut self, key: &str) -> PgTimestamp {
        rfc3339_to_pg(&self.str(key))
    }
    fn tuple(&mut self, key: &str) -> Tuple {
        let values = self.take(key);
        values.as_array().unwrap().iter().map(json_value).collect()
    }
    fn opt_tuple(&mut self, key: &str) -> Option<Tuple> {
        self.0.contains_key(key).then(|| self.tuple(key))
    }
}

fn json_value(v: &Value) -> TupleValue {
    let mut f = Fields(v.as_object().unwrap().clone());
    let value = match f.str("kind").as_str() {
        "null" => TupleValue::Null,
        "unchanged_toast" => TupleValue::Unchanged,
        "text" => text(&f.str("value")),
        kind => panic!("unknown tuple value kind {kind}"),
    };
    assert!(f.0.is_empty(), "unchecked tuple value fields {:?}", f.0);
    value
}

/// The message a vector's `expected` object describes, checking its `tag` against the wire.
fn expected_message(expected: &Value, wire_tag: u8) -> PgOutputMessage {
    let mut f = Fields(expected.as_object().unwrap().clone());
    assert_eq!(f.str("tag").as_bytes(), [wire_tag]);
    let msg = match f.str("type").as_str() {
        "Begin" => PgOutputMessage::Begin {
            final_lsn: f.lsn("final_lsn"),
            commit_ts: f.ts("commit_ts"),
            xid: f.u32("xid"),
        },
        "Commit" => PgOutputMessage::Commit {
            flags: f.u8("flags"),
            commit_lsn: f.lsn("commit_lsn"),
            end_lsn: f.lsn("end_lsn"),
            commit_ts: f.ts("commit_ts"),
        },
        "Origin" => PgOutputMessage::Origin {
            commit_lsn: f.lsn("origin_lsn"),
            name: f.str("name"),
        },
        "Relation" => {
            let relid = f.u32("oid");
            let namespace = f.str("namespace");
            let name = f.str("name");
            let identity = f.str("replica_identity");
            assert_eq!(identity.len(), 1);
            let columns = f.take("columns");
            let columns = columns
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let mut c = Fields(c.as_object().unwrap().clone());
                    let col = RelationColumn {
                        flags: c.u8("flags"),
                        name: c.str("name"),
                        type_oid: c.u32("type_oid"),
                        type_modifier: c.take("typmod").as_i64().unwrap() as i32,
                    };
                    assert!(c.0.is_empty(), "unchecked column fields {:?}", c.0);
                    col
                })
                .collect();
            let relation = Relation {
                relid,
                namespace,
                name,
                replica_identity: identity.as_bytes()[0],
                columns,
            };
            PgOutputMessage::Relation {
                xid: None,
                relation,
            }
        }
        "Type" => PgOutputMessage::Type {
            xid: None,
            oid: f.u32("oid"),
            namespace: f.str("namespace"),
            name: f.str("name"),
        },
        "Truncate" => {
            let relids = f
                .take("rel_oids")
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            PgOutputMessage::Truncate {
                xid: None,
                options: f.u8("options"),
                relids,
            }
        }
        "Insert" => PgOutputMessage::Insert {
            xid: None,
            relid: f.u32("rel_oid"),
            new: f.tuple("new"),
        },
        "Update" => {
            let key = f.opt_tuple("key").map(|t| (OldKind::Key, t));
            let full = f.opt_tuple("old").map(|t| (OldKind::Full, t));
            assert!(key.is_none() || full.is_none(), "both key and old");
            PgOutputMessage::Update {
                xid: None,
                relid: f.u32("rel_oid"),
                old: key.or(full),
                new: f.tuple("new"),
            }
        }
        "Delete" => {
            let key = f.opt_tuple("key").map(|t| (OldKind::Key, t));
            let full = f.opt_tuple("old").map(|t| (OldKind::Full, t));
            let old = match (key, full) {
                (Some(old), None) | (None, Some(old)) => old,
                _ => panic!("a Delete needs exactly one of key and old"),
            };
            PgOutputMessage::Delete {
                xid: None,
                relid: f.u32("rel_oid"),
                old,
            }
        }
        "Message" => PgOutputMessage::Message {
            xid: None,
            flags: f.u8("transactional"),
            lsn: f.lsn("lsn"),
            prefix: f.str("prefix"),
            content: Bytes::from(f.str("content")),
        },
        other => panic!("vector of unhandled type {other}"),
    };
    assert!(f.0.is_empty(), "unchecked expected fields {:?}", f.0);
    msg
}

/// The vectors' wire bytes with their expected message.
///
/// The walex Origin vector omits the NUL after the origin name, which PostgreSQL always sends
/// (`pq_sendstring` in `logicalrep_write_origin`, read back with `pq_getmsgstring`). The decoder
/// rejects it as truncated; the vector is checked with the terminator appended.
pub(super) fn vectors() -> Vec<(String, Bytes, PgOutputMessage)> {
    let all: Vec<Value> = serde_json::from_str(VECTORS).unwrap();
    assert_eq!(all.len(), 19);
    let mut fixed_origin = 0;
    let out = all
        .iter()
        .map(|v| {
            assert_eq!(v["includes_tag_byte"], Value::Bool(true));
            let name = v["test"].as_str().unwrap().to_owned();
            let mut wire = hex::decode(v["hex"].as_str().unwrap()).unwrap();
            let expected = expected_message(&v["expected"], wire[0]);
            if wire[0] == b'O' && wire.last() != Some(&0) {
                let err = decode(&Bytes::from(wire.clone()), 1, false).unwrap_err();
                assert!(
                    matches!(
                        err,
                        DecodeError::Truncated {
                            tag: b'O',
                            offset: 9,
                            expected: "a NUL-terminated origin name",
                            ..
                        }
                    ),
                    "{err}"
                );
                wire.push(0);
                fixed_origin += 1;
            }
            (name, Bytes::from(wire), expected)
        })
        .collect();
    assert_eq!(fixed_origin, 1);
    out
}

#[test]
fn published_vectors_decode_exactly() {
    for (name, wire, expected) in vectors() {
        for version in 1..=4 {
            let mut decoder = Decoder::new(version);
            let got = decoder
                .decode(wire.clone())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, expected, "vector `{name}`, protocol v{version}");
            assert!(!decoder.in_stream());
        }
    }
}

#[test]
fn published_vector_payloads_are_zero_copy() {
    for (_, wire, _) in vectors() {
        match decode(&wire, 4, false).unwrap() {
            PgOutputMessage::Insert { new, .. } => {
                tuple_payloads(&new).for_each(|b| assert_zero_copy(b, &wire))
            }
            PgOutputMessage::Update { old, new, .. } => {
                old.iter()
                    .flat_map(|(_, t)| tuple_payloads(t))
                    .for_each(|b| assert_zero_copy(b, &wire));
                tuple_payloads(&new).for_each(|b| assert_zero_copy(b, &wire));
            }
            PgOutputMessage::Delete { old: (_, t), .. } => {
                tuple_payloads(&t).for_each(|b| assert_zero_copy(b, &wire))
            }
            PgOutputMessage::Message { content, .. } => assert_zero_copy(&content, &wire),
            _ => {}
        }
    }
}

#[test]
fn begin_vector_timestamp_is_the_documented_instant() {
    // Independent of the RFC 3339 helper: 0x000230F65858D5F2 µs after 2000-01-01.
    let wire = Bytes::from(hex::decode("4200000002a7f4a880000230f65858d5f20000026b").unwrap());
    let PgOutputMessage::Begin {
        commit_ts,
        final_lsn,
        xid,
    } = decode(&wire, 1, false).unwrap()
    else {
        panic!()
    };
    assert_eq!(commit_ts, 0x0002_30F6_5858_D5F2);
    assert_eq!(
        crate::model::pg_ts_to_unix_micros(commit_ts),
        1_563_469_355_726_322
    );
    assert_eq!(final_lsn, Lsn(0x2_A7F4_A880));
    assert_eq!(xid, 619);
}

