//! Tests of the pgoutput decoder: published vectors, hand-built messages, malformed input.
//!
//! This file holds the shared helpers and the hand-built message builders; each kind of
//! test lives in its own file below.

mod hand_built;
mod malformed;
mod published;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::*;
use crate::model::TupleValue;
use crate::model::{Lsn, PgTimestamp, PG_EPOCH_UNIX_SECS};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

use crate::source::pgoutput::test_wire::Enc;

fn decode(data: &Bytes, version: u32, in_stream: bool) -> Result<PgOutputMessage, DecodeError> {
    decode_message(data.clone(), version, in_stream)
}

fn text(s: &str) -> TupleValue {
    TupleValue::Text(Bytes::copy_from_slice(s.as_bytes()))
}

/// Asserts that `part` is a slice of `whole`'s buffer, i.e. decoding copied nothing.
fn assert_zero_copy(part: &Bytes, whole: &Bytes) {
    let (start, end) = (
        whole.as_ptr() as usize,
        whole.as_ptr() as usize + whole.len(),
    );
    let p = part.as_ptr() as usize;
    assert!(
        p >= start && p + part.len() <= end,
        "value was copied instead of sliced"
    );
}

fn tuple_payloads(tuple: &Tuple) -> impl Iterator<Item = &Bytes> {
    tuple.iter().filter_map(|v| match v {
        TupleValue::Text(b) | TupleValue::Binary(b) => Some(b),
        _ => None,
    })
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian, as PostgreSQL counts).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let date = chrono::NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32).expect("a valid test date");
    (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days()
}

/// `2019-07-18T17:02:35.726322Z` to microseconds since 2000-01-01 UTC.
fn rfc3339_to_pg(s: &str) -> PgTimestamp {
    let s = s.strip_suffix('Z').expect("a UTC RFC 3339 timestamp");
    let (date, time) = s.split_once('T').expect("date and time");
    let ymd: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let hms: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    assert!(frac.len() <= 6, "more than microsecond precision in {s}");
    let micros: i64 = format!("{frac:0<6}").parse().unwrap();
    let secs =
        days_from_civil(ymd[0], ymd[1], ymd[2]) * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    (secs - PG_EPOCH_UNIX_SECS) * 1_000_000 + micros
}

#[test]
fn timestamp_helper_matches_the_pg_epoch() {
    assert_eq!(days_from_civil(2000, 1, 1) * 86_400, PG_EPOCH_UNIX_SECS);
    assert_eq!(rfc3339_to_pg("2000-01-01T00:00:00Z"), 0);
    assert_eq!(rfc3339_to_pg("2000-01-01T00:00:01.5Z"), 1_500_000);
    assert_eq!(rfc3339_to_pg("1999-12-31T23:59:59.999999Z"), -1);
    assert_eq!(
        rfc3339_to_pg("2000-03-01T00:00:00Z"),
        (31 + 29) * 86_400_000_000
    );
}

// ---------------------------------------------------------------------------------------
// 2. Hand-built messages
// ---------------------------------------------------------------------------------------

const XID: u32 = 0xDEAD_BEEF;
const LSN1: u64 = 0x16_B374_D848;
const LSN2: u64 = 0x16_B374_D8A0;
const TS1: i64 = 774_000_000_123_456;
const TS2: i64 = -42; // before 2000: timestamps are signed

fn relation_msg(in_stream: bool) -> Bytes {
    let e = Enc::tag(b'R');
    let e = if in_stream { e.u32(XID) } else { e };
    e.u32(16_385)
        .cstr("sales")
        .cstr("café_表")
        .u8(b'f')
        .i16(3)
        .u8(1)
        .cstr("id")
        .u32(20)
        .i32(-1)
        .u8(0)
        .cstr("name")
        .u32(1043)
        .i32(14)
        .u8(0)
        .cstr("")
        .u32(u32::MAX)
        .i32(i32::MIN)
        .build()
}

fn expected_relation() -> Relation {
    let col = |flags, name: &str, type_oid, type_modifier| RelationColumn {
        flags,
        name: name.into(),
        type_oid,
        type_modifier,
    };
    Relation {
        relid: 16_385,
        namespace: "sales".into(),
        name: "café_表".into(),
        replica_identity: b'f',
        columns: vec![
            col(1, "id", 20, -1),
            col(0, "name", 1043, 14),
            col(0, "", u32::MAX, i32::MIN),
        ],
    }
}

/// Builds a message with the given tag, with `XID` after the tag when `in_stream`.
fn with_xid(tag: u8, in_stream: bool) -> Enc {
    let e = Enc::tag(tag);
    if in_stream {
        e.u32(XID)
    } else {
        e
    }
}

fn insert_msg(in_stream: bool) -> Bytes {
    with_xid(b'I', in_stream)
        .u32(16_385)
        .u8(b'N')
        .i16(5)
        .text(b"42")
        .u8(b'n')
        .u8(b'u')
        .binary(&[0, 0, 0, 7, 0xFF])
        .binary(b"")
        .build()
}

fn expected_insert_tuple() -> Tuple {
    vec![
        text("42"),
        TupleValue::Null,
        TupleValue::Unchanged,
        TupleValue::Binary(Bytes::from_static(&[0, 0, 0, 7, 0xFF])),
        TupleValue::Binary(Bytes::new()),
    ]
}

fn update_msg(in_stream: bool, old: Option<u8>) -> Bytes {
    let e = with_xid(b'U', in_stream).u32(7);
    let e = match old {
        Some(kind) => e.u8(kind).i16(2).text(b"1").u8(b'n'),
        None => e,
    };
    e.u8(b'N').i16(2).text(b"1").text(b"").build()
}

fn delete_msg(in_stream: bool, kind: u8) -> Bytes {
    with_xid(b'D', in_stream)
        .u32(7)
        .u8(kind)
        .i16(2)
        .text(b"1")
        .u8(b'u')
        .build()
}

fn truncate_msg(in_stream: bool) -> Bytes {
    with_xid(b'T', in_stream)
        .i32(3)
        .u8(3)
        .u32(1)
        .u32(2)
        .u32(u32::MAX)
        .build()
}

fn message_msg(in_stream: bool) -> Bytes {
    with_xid(b'M', in_stream)
        .u8(1)
        .u64(LSN1)
        .cstr("pgcdc/heartbeat")
        .i32(4)
        .raw(&[0, 1, 0, 0xFE])
        .build()
}

fn type_msg(in_stream: bool) -> Bytes {
    with_xid(b'Y', in_stream)
        .u32(90_001)
        .cstr("public")
        .cstr("mood")
        .build()
}

fn stream_start(first: u8) -> Bytes {
    Enc::tag(b'S').u32(XID).u8(first).build()
}

fn stream_stop() -> Bytes {
    Enc::tag(b'E').build()
}

fn stream_commit() -> Bytes {
    Enc::tag(b'c')
        .u32(XID)
        .u8(0)
        .u64(LSN1)
        .u64(LSN2)
        .i64(TS1)
        .build()
}

fn stream_abort_short() -> Bytes {
    Enc::tag(b'A').u32(XID).u32(XID + 1).build()
}

fn stream_abort_long() -> Bytes {
    Enc::tag(b'A')
        .u32(XID)
        .u32(XID + 1)
        .u64(LSN2)
        .i64(TS2)
        .build()
}

fn begin_prepare() -> Bytes {
    Enc::tag(b'b')
        .u64(LSN1)
        .u64(LSN2)
        .i64(TS1)
        .u32(XID)
        .cstr("gid-1")
        .build()
}

/// Prepare, CommitPrepared and StreamPrepare share one layout.
fn prepare_like(tag: u8) -> Bytes {
    Enc::tag(tag)
        .u8(0)
        .u64(LSN1)
        .u64(LSN2)
        .i64(TS1)
        .u32(XID)
        .cstr("tx ✓")
        .build()
}

fn rollback_prepared() -> Bytes {
    Enc::tag(b'r')
        .u8(0)
        .u64(LSN1)
        .u64(LSN2)
        .i64(TS1)
        .i64(TS2)
        .u32(XID)
        .cstr("gid-2")
        .build()
}

