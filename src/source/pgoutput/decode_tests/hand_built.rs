//! Hand-built messages for everything the published vectors lack.

use super::*;

#[test]
fn stream_start_and_stop_track_the_stream() {
    let mut d = Decoder::new(2);
    assert!(!d.in_stream());
    assert_eq!(
        d.decode(stream_start(1)).unwrap(),
        PgOutputMessage::StreamStart {
            xid: XID,
            first_segment: true
        }
    );
    assert!(d.in_stream());
    assert_eq!(
        d.decode(stream_stop()).unwrap(),
        PgOutputMessage::StreamStop
    );
    assert!(!d.in_stream());
    assert_eq!(
        d.decode(stream_start(0)).unwrap(),
        PgOutputMessage::StreamStart {
            xid: XID,
            first_segment: false
        }
    );
    assert!(d.in_stream());
}

#[test]
fn stream_commit_decodes() {
    for version in 2..=4 {
        assert_eq!(
            decode(&stream_commit(), version, false).unwrap(),
            PgOutputMessage::StreamCommit {
                xid: XID,
                flags: 0,
                commit_lsn: Lsn(LSN1),
                end_lsn: Lsn(LSN2),
                commit_ts: TS1
            }
        );
    }
}

#[test]
fn stream_abort_short_form_in_every_streaming_version() {
    let expected = PgOutputMessage::StreamAbort {
        xid: XID,
        subxid: XID + 1,
        abort_lsn: None,
        abort_ts: None,
    };
    for version in 2..=4 {
        assert_eq!(
            decode(&stream_abort_short(), version, false).unwrap(),
            expected
        );
    }
}

#[test]
fn stream_abort_long_form_only_in_v4() {
    assert_eq!(
        decode(&stream_abort_long(), 4, false).unwrap(),
        PgOutputMessage::StreamAbort {
            xid: XID,
            subxid: XID + 1,
            abort_lsn: Some(Lsn(LSN2)),
            abort_ts: Some(TS2)
        }
    );
    for version in 2..=3 {
        let err = decode(&stream_abort_long(), version, false).unwrap_err();
        assert_eq!(
            err,
            DecodeError::TrailingBytes {
                tag: b'A',
                offset: 9,
                count: 16
            }
        );
    }
    // Part of the v4 fields is neither form.
    let partial = stream_abort_long().slice(..17);
    assert!(matches!(
        decode(&partial, 4, false),
        Err(DecodeError::Truncated {
            tag: b'A',
            offset: 17,
            ..
        })
    ));
}

#[test]
fn xid_prefixed_messages_inside_a_stream() {
    let mut d = Decoder::new(2);
    d.decode(stream_start(1)).unwrap();
    let relation = d.decode(relation_msg(true)).unwrap();
    assert_eq!(
        relation,
        PgOutputMessage::Relation {
            xid: Some(XID),
            relation: expected_relation()
        }
    );
    assert_eq!(
        d.decode(type_msg(true)).unwrap(),
        PgOutputMessage::Type {
            xid: Some(XID),
            oid: 90_001,
            namespace: "public".into(),
            name: "mood".into()
        }
    );
    assert_eq!(
        d.decode(insert_msg(true)).unwrap(),
        PgOutputMessage::Insert {
            xid: Some(XID),
            relid: 16_385,
            new: expected_insert_tuple()
        }
    );
    let old = vec![text("1"), TupleValue::Null];
    let new = vec![text("1"), text("")];
    assert_eq!(
        d.decode(update_msg(true, None)).unwrap(),
        PgOutputMessage::Update {
            xid: Some(XID),
            relid: 7,
            old: None,
            new: new.clone()
        }
    );
    assert_eq!(
        d.decode(update_msg(true, Some(b'K'))).unwrap(),
        PgOutputMessage::Update {
            xid: Some(XID),
            relid: 7,
            old: Some((OldKind::Key, old.clone())),
            new: new.clone()
        }
    );
    assert_eq!(
        d.decode(update_msg(true, Some(b'O'))).unwrap(),
        PgOutputMessage::Update {
            xid: Some(XID),
            relid: 7,
            old: Some((OldKind::Full, old)),
            new
        }
    );
    let deleted = vec![text("1"), TupleValue::Unchanged];
    assert_eq!(
        d.decode(delete_msg(true, b'K')).unwrap(),
        PgOutputMessage::Delete {
            xid: Some(XID),
            relid: 7,
            old: (OldKind::Key, deleted.clone())
        }
    );
    assert_eq!(
        d.decode(delete_msg(true, b'O')).unwrap(),
        PgOutputMessage::Delete {
            xid: Some(XID),
            relid: 7,
            old: (OldKind::Full, deleted)
        }
    );
    assert_eq!(
        d.decode(truncate_msg(true)).unwrap(),
        PgOutputMessage::Truncate {
            xid: Some(XID),
            options: 3,
            relids: vec![1, 2, u32::MAX]
        }
    );
    let message = d.decode(message_msg(true)).unwrap();
    assert_eq!(message.stream_xid(), Some(XID));
    assert_eq!(
        message,
        PgOutputMessage::Message {
            xid: Some(XID),
            flags: 1,
            lsn: Lsn(LSN1),
            prefix: "pgcdc/heartbeat".into(),
            content: Bytes::from_static(&[0, 1, 0, 0xFE]),
        }
    );
    d.decode(stream_stop()).unwrap();
    // After the stream the same messages carry no xid.
    assert_eq!(
        d.decode(insert_msg(false)).unwrap(),
        PgOutputMessage::Insert {
            xid: None,
            relid: 16_385,
            new: expected_insert_tuple()
        }
    );
    assert_eq!(
        d.decode(relation_msg(false)).unwrap(),
        PgOutputMessage::Relation {
            xid: None,
            relation: expected_relation()
        }
    );
}

#[test]
fn stateless_decode_honours_in_stream() {
    for version in 2..=4 {
        let msg = decode(&insert_msg(true), version, true).unwrap();
        assert_eq!(msg.stream_xid(), Some(XID));
        // The same bytes read without the xid are misaligned and rejected.
        assert!(decode(&insert_msg(true), version, false).is_err());
        assert_eq!(
            decode(&truncate_msg(false), version, false)
                .unwrap()
                .stream_xid(),
            None
        );
    }
}

#[test]
fn two_phase_messages_decode() {
    let gid = || "tx ✓".to_string();
    for version in 3..=4 {
        assert_eq!(
            decode(&begin_prepare(), version, false).unwrap(),
            PgOutputMessage::BeginPrepare {
                prepare_lsn: Lsn(LSN1),
                end_lsn: Lsn(LSN2),
                prepare_ts: TS1,
                xid: XID,
                gid: "gid-1".into()
            }
        );
        assert_eq!(
            decode(&prepare_like(b'P'), version, false).unwrap(),
            PgOutputMessage::Prepare {
                flags: 0,
                prepare_lsn: Lsn(LSN1),
                end_lsn: Lsn(LSN2),
                prepare_ts: TS1,
                xid: XID,
                gid: gid()
            }
        );
        assert_eq!(
            decode(&prepare_like(b'K'), version, false).unwrap(),
            PgOutputMessage::CommitPrepared {
                flags: 0,
                commit_lsn: Lsn(LSN1),
                end_lsn: Lsn(LSN2),
                commit_ts: TS1,
                xid: XID,
                gid: gid()
            }
        );
        assert_eq!(
            decode(&rollback_prepared(), version, false).unwrap(),
            PgOutputMessage::RollbackPrepared {
                flags: 0,
                prepare_end_lsn: Lsn(LSN1),
                rollback_end_lsn: Lsn(LSN2),
                prepare_ts: TS1,
                rollback_ts: TS2,
                xid: XID,
                gid: "gid-2".into()
            }
        );
        assert_eq!(
            decode(&prepare_like(b'p'), version, false).unwrap(),
            PgOutputMessage::StreamPrepare {
                flags: 0,
                prepare_lsn: Lsn(LSN1),
                end_lsn: Lsn(LSN2),
                prepare_ts: TS1,
                xid: XID,
                gid: gid()
            }
        );
    }
}

#[test]
fn extreme_field_values_round_trip() {
    let begin = Enc::tag(b'B')
        .u64(u64::MAX)
        .i64(i64::MIN)
        .u32(u32::MAX)
        .build();
    assert_eq!(
        decode(&begin, 1, false).unwrap(),
        PgOutputMessage::Begin {
            final_lsn: Lsn(u64::MAX),
            commit_ts: i64::MIN,
            xid: u32::MAX
        }
    );
    let commit = Enc::tag(b'C').u8(0xA5).u64(0).u64(1).i64(i64::MAX).build();
    assert_eq!(
        decode(&commit, 1, false).unwrap(),
        PgOutputMessage::Commit {
            flags: 0xA5,
            commit_lsn: Lsn(0),
            end_lsn: Lsn(1),
            commit_ts: i64::MAX
        }
    );
    let origin = Enc::tag(b'O').u64(LSN1).cstr("").build();
    assert_eq!(
        decode(&origin, 1, false).unwrap(),
        PgOutputMessage::Origin {
            commit_lsn: Lsn(LSN1),
            name: String::new()
        }
    );
    let empty_tuple = Enc::tag(b'I').u32(1).u8(b'N').i16(0).build();
    assert_eq!(
        decode(&empty_tuple, 1, false).unwrap(),
        PgOutputMessage::Insert {
            xid: None,
            relid: 1,
            new: vec![]
        }
    );
    let no_relids = Enc::tag(b'T').i32(0).u8(0).build();
    assert_eq!(
        decode(&no_relids, 1, false).unwrap(),
        PgOutputMessage::Truncate {
            xid: None,
            options: 0,
            relids: vec![]
        }
    );
    let empty_message = Enc::tag(b'M').u8(0).u64(0).cstr("").i32(0).build();
    assert_eq!(
        decode(&empty_message, 1, false).unwrap(),
        PgOutputMessage::Message {
            xid: None,
            flags: 0,
            lsn: Lsn(0),
            prefix: String::new(),
            content: Bytes::new()
        }
    );
}

#[test]
fn hand_built_payloads_are_zero_copy() {
    let wire = insert_msg(true);
    let PgOutputMessage::Insert { new, .. } = decode(&wire, 2, true).unwrap() else {
        panic!()
    };
    assert_eq!(tuple_payloads(&new).count(), 3);
    tuple_payloads(&new).for_each(|b| assert_zero_copy(b, &wire));
    let wire = message_msg(false);
    let PgOutputMessage::Message { content, .. } = decode(&wire, 1, false).unwrap() else {
        panic!()
    };
    assert_zero_copy(&content, &wire);
}

