//! Malformed input: truncations, trailing bytes, bad markers, bad UTF-8; never a panic.

use super::*;

// ---------------------------------------------------------------------------------------
// 3. Malformed input
// ---------------------------------------------------------------------------------------

/// Valid messages with the version and stream state they decode under.
fn valid_messages() -> Vec<(Bytes, u32, bool)> {
    let mut all: Vec<(Bytes, u32, bool)> = super::published::vectors()
        .into_iter()
        .map(|(_, wire, _)| (wire, 1, false))
        .collect();
    for in_stream in [false, true] {
        let v = if in_stream { 2 } else { 1 };
        all.push((relation_msg(in_stream), v, in_stream));
        all.push((type_msg(in_stream), v, in_stream));
        all.push((insert_msg(in_stream), v, in_stream));
        all.push((update_msg(in_stream, None), v, in_stream));
        all.push((update_msg(in_stream, Some(b'K')), v, in_stream));
        all.push((update_msg(in_stream, Some(b'O')), v, in_stream));
        all.push((delete_msg(in_stream, b'K'), v, in_stream));
        all.push((delete_msg(in_stream, b'O'), v, in_stream));
        all.push((truncate_msg(in_stream), v, in_stream));
        all.push((message_msg(in_stream), v, in_stream));
    }
    all.push((stream_start(1), 2, false));
    all.push((stream_stop(), 2, true));
    all.push((stream_commit(), 2, false));
    all.push((stream_abort_short(), 2, false));
    all.push((stream_abort_long(), 4, false));
    all.push((begin_prepare(), 3, false));
    all.push((prepare_like(b'P'), 3, false));
    all.push((prepare_like(b'K'), 3, false));
    all.push((rollback_prepared(), 3, false));
    all.push((prepare_like(b'p'), 3, false));
    all
}

#[test]
fn every_valid_message_decodes() {
    for (wire, version, in_stream) in valid_messages() {
        decode(&wire, version, in_stream).unwrap_or_else(|e| panic!("{e}: {wire:02X?}"));
    }
}

#[test]
fn truncation_at_every_length_is_an_error() {
    for (wire, version, in_stream) in valid_messages() {
        for len in 0..wire.len() {
            // A v4 StreamAbort cut right after subxid is the valid short form.
            if wire[0] == b'A' && version == 4 && len == 9 {
                continue;
            }
            let mut d = Decoder::new(version);
            if in_stream {
                d.decode(stream_start(1)).unwrap();
            }
            match d.decode(wire.slice(..len)) {
                Ok(msg) => panic!("{wire:02X?} cut to {len} bytes decoded as {msg:?}"),
                Err(DecodeError::Truncated {
                    offset, remaining, ..
                }) => {
                    assert!(
                        offset <= len && remaining == len - offset,
                        "{offset} {remaining} {len}"
                    )
                }
                Err(DecodeError::Empty) => assert_eq!(len, 0),
                Err(e) => panic!("{wire:02X?} cut to {len}: not a truncation error: {e}"),
            }
            assert_eq!(
                d.in_stream(),
                in_stream,
                "a failed message changed the stream state"
            );
        }
    }
}

#[test]
fn trailing_bytes_are_an_error() {
    for (wire, version, in_stream) in valid_messages() {
        let mut longer = wire.to_vec();
        longer.push(0);
        let err = decode(&Bytes::from(longer), version, in_stream).unwrap_err();
        assert_eq!(
            err,
            DecodeError::TrailingBytes {
                tag: wire[0],
                offset: wire.len(),
                count: 1
            }
        );
    }
}

#[test]
fn truncated_error_names_message_offset_and_field() {
    let wire = insert_msg(true).slice(..7);
    let err = decode(&wire, 2, true).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pgoutput Insert message truncated at byte 5: expected a 4-byte relation id, but 2 byte(s) remain"
    );
}

#[test]
fn empty_input_and_unknown_tags_are_errors() {
    assert_eq!(
        decode(&Bytes::new(), 4, false).unwrap_err(),
        DecodeError::Empty
    );
    let known = b"BCORYIUDTMSEcAbPKrp";
    for tag in 0..=u8::MAX {
        if known.contains(&tag) {
            continue;
        }
        let err = decode(&Bytes::from(vec![tag, 0, 0, 0, 0]), 4, false).unwrap_err();
        assert_eq!(err, DecodeError::UnknownTag { tag });
        assert!(err.to_string().contains(&format!("0x{tag:02X}")), "{err}");
    }
    assert_eq!(
        DecodeError::UnknownTag { tag: b'Z' }.to_string(),
        "unknown pgoutput message tag 'Z' (0x5A)"
    );
}

#[test]
fn invalid_utf8_is_an_error() {
    let cases: Vec<(Bytes, u32, usize)> = vec![
        (
            Enc::tag(b'R')
                .u32(1)
                .raw(b"ns\xFF\0")
                .cstr("t")
                .u8(b'd')
                .i16(0)
                .build(),
            1,
            5,
        ),
        (
            Enc::tag(b'R')
                .u32(1)
                .cstr("ns")
                .raw(b"\xC3\0")
                .u8(b'd')
                .i16(0)
                .build(),
            1,
            8,
        ),
        (
            Enc::tag(b'R')
                .u32(1)
                .cstr("ns")
                .cstr("t")
                .u8(b'd')
                .i16(1)
                .u8(0)
                .raw(b"\xE2\x82\0")
                .u32(25)
                .i32(-1)
                .build(),
            1,
            14,
        ),
        (
            Enc::tag(b'Y').u32(1).cstr("ns").raw(b"\x80\0").build(),
            1,
            8,
        ),
        (Enc::tag(b'O').u64(1).raw(b"o\xFE\0").build(), 1, 9),
        (
            Enc::tag(b'M').u8(0).u64(1).raw(b"\xFFp\0").i32(0).build(),
            1,
            10,
        ),
        (
            Enc::tag(b'b')
                .u64(1)
                .u64(2)
                .i64(3)
                .u32(4)
                .raw(b"g\xFF\0")
                .build(),
            3,
            29,
        ),
        (
            Enc::tag(b'r')
                .u8(0)
                .u64(1)
                .u64(2)
                .i64(3)
                .i64(4)
                .u32(5)
                .raw(b"g\xFF\0")
                .build(),
            3,
            38,
        ),
    ];
    for (wire, version, offset) in cases {
        match decode(&wire, version, false) {
            Err(DecodeError::Invalid {
                offset: at, found, ..
            }) => {
                assert_eq!(at, offset, "{wire:02X?}");
                assert!(found.contains("invalid UTF-8"), "{found}");
            }
            other => panic!("{wire:02X?}: {other:?}"),
        }
    }
    // Message content is bytes, not text: invalid UTF-8 there is fine.
    let content = Enc::tag(b'M')
        .u8(0)
        .u64(1)
        .cstr("p")
        .i32(1)
        .raw(b"\xFF")
        .build();
    assert!(decode(&content, 1, false).is_ok());
}

#[test]
fn negative_lengths_and_counts_are_errors() {
    let cases: Vec<(Bytes, usize)> = vec![
        (
            Enc::tag(b'I')
                .u32(1)
                .u8(b'N')
                .i16(1)
                .u8(b't')
                .i32(-1)
                .build(),
            9,
        ),
        (
            Enc::tag(b'I')
                .u32(1)
                .u8(b'N')
                .i16(1)
                .u8(b'b')
                .i32(i32::MIN)
                .build(),
            9,
        ),
        (Enc::tag(b'I').u32(1).u8(b'N').i16(-1).build(), 6),
        (Enc::tag(b'M').u8(0).u64(1).cstr("p").i32(-1).build(), 12),
        (Enc::tag(b'T').i32(-1).u8(0).build(), 1),
        (
            Enc::tag(b'R')
                .u32(1)
                .cstr("n")
                .cstr("t")
                .u8(b'd')
                .i16(-2)
                .build(),
            10,
        ),
    ];
    for (wire, offset) in cases {
        match decode(&wire, 1, false) {
            Err(DecodeError::Invalid {
                offset: at, found, ..
            }) => {
                assert_eq!(at, offset, "{wire:02X?}");
                assert!(found.starts_with("negative"), "{found}");
            }
            other => panic!("{wire:02X?}: {other:?}"),
        }
    }
}

#[test]
fn lengths_and_counts_beyond_the_message_are_truncation() {
    let cases = [
        Enc::tag(b'I')
            .u32(1)
            .u8(b'N')
            .i16(1)
            .u8(b't')
            .i32(100)
            .raw(b"abc")
            .build(),
        Enc::tag(b'I')
            .u32(1)
            .u8(b'N')
            .i16(i16::MAX)
            .u8(b'n')
            .build(),
        Enc::tag(b'M')
            .u8(0)
            .u64(1)
            .cstr("p")
            .i32(i32::MAX)
            .raw(b"x")
            .build(),
        Enc::tag(b'T').i32(i32::MAX).u8(0).u32(1).build(),
        Enc::tag(b'R')
            .u32(1)
            .cstr("n")
            .cstr("t")
            .u8(b'd')
            .i16(i16::MAX)
            .build(),
    ];
    for wire in cases {
        assert!(
            matches!(decode(&wire, 1, false), Err(DecodeError::Truncated { .. })),
            "{wire:02X?}"
        );
    }
}

#[test]
fn bad_markers_are_errors() {
    let cases: Vec<(Bytes, u32, usize, &str)> = vec![
        (
            Enc::tag(b'I').u32(1).u8(b'K').i16(0).build(),
            1,
            5,
            "'K' (0x4B)",
        ),
        (
            Enc::tag(b'U').u32(1).u8(b'X').i16(0).build(),
            1,
            5,
            "'X' (0x58)",
        ),
        (
            Enc::tag(b'U')
                .u32(1)
                .u8(b'K')
                .i16(0)
                .u8(b'K')
                .i16(0)
                .build(),
            1,
            8,
            "'K' (0x4B)",
        ),
        (
            Enc::tag(b'D').u32(1).u8(b'N').i16(0).build(),
            1,
            5,
            "'N' (0x4E)",
        ),
        (
            Enc::tag(b'I').u32(1).u8(b'N').i16(1).u8(b'x').build(),
            1,
            8,
            "'x' (0x78)",
        ),
        (
            Enc::tag(b'I').u32(1).u8(b'N').i16(1).u8(0).build(),
            1,
            8,
            "0x00",
        ),
        (Enc::tag(b'S').u32(1).u8(2).build(), 2, 5, "0x02"),
    ];
    for (wire, version, offset, found) in cases {
        match decode(&wire, version, false) {
            Err(DecodeError::Invalid {
                offset: at,
                found: f,
                ..
            }) => {
                assert_eq!((at, f.as_str()), (offset, found), "{wire:02X?}");
            }
            other => panic!("{wire:02X?}: {other:?}"),
        }
    }
}

#[test]
fn messages_newer_than_the_protocol_version_are_errors() {
    let cases = [
        (stream_start(1), 2),
        (stream_stop(), 2),
        (stream_commit(), 2),
        (stream_abort_short(), 2),
        (begin_prepare(), 3),
        (prepare_like(b'P'), 3),
        (prepare_like(b'K'), 3),
        (rollback_prepared(), 3),
        (prepare_like(b'p'), 3),
    ];
    for (wire, min) in cases {
        for version in 0..min {
            let err = decode(&wire, version, wire[0] == b'E').unwrap_err();
            assert_eq!(
                err,
                DecodeError::UnsupportedByVersion {
                    tag: wire[0],
                    version,
                    min
                }
            );
        }
    }
    let err = decode(&begin_prepare(), 2, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pgoutput BeginPrepare message requires protocol version 3, but version 2 is in use"
    );
}

#[test]
fn stream_boundaries_out_of_order_are_errors() {
    let mut d = Decoder::new(4);
    assert_eq!(
        d.decode(stream_stop()).unwrap_err(),
        DecodeError::StreamState {
            tag: b'E',
            in_stream: false
        }
    );
    assert!(!d.in_stream());
    d.decode(stream_start(1)).unwrap();
    assert_eq!(
        d.decode(stream_start(0)).unwrap_err(),
        DecodeError::StreamState {
            tag: b'S',
            in_stream: true
        }
    );
    assert!(d.in_stream());
}

/// A deterministic xorshift generator: no dependency, same bytes on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let tags = b"BCORYIUDTMSEcAbPKrpNKOntub\0";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let len = (rng.next() % 48) as usize;
        let mut wire: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if let Some(first) = wire.first_mut() {
            *first = tags[(rng.next() % tags.len() as u64) as usize];
        }
        // Small bytes make counts and lengths plausible, so decoding gets deeper.
        for b in wire.iter_mut().skip(1) {
            if rng.next().is_multiple_of(3) {
                *b %= 4;
            }
        }
        let wire = Bytes::from(wire);
        for version in 1..=4 {
            for in_stream in [false, true] {
                let _ = decode(&wire, version, in_stream);
            }
        }
    }
    // Single-byte corruptions of valid messages.
    for (wire, version, in_stream) in valid_messages() {
        for i in 0..wire.len() {
            let mut bad = wire.to_vec();
            bad[i] = rng.next() as u8;
            let _ = decode(&Bytes::from(bad), version, in_stream);
        }
    }
}

