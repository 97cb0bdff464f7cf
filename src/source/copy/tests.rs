//! Unit tests of the binary COPY parser.

use super::*;

type Row<'a> = Vec<Option<&'a [u8]>>;

fn header(ext: &[u8]) -> Vec<u8> {
    let mut v = SIGNATURE.to_vec();
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(&(ext.len() as u32).to_be_bytes());
    v.extend_from_slice(ext);
    v
}

fn encode_rows(v: &mut Vec<u8>, rows: &[Row<'_>]) {
    for r in rows {
        v.extend_from_slice(&(r.len() as i16).to_be_bytes());
        for f in r {
            match f {
                None => v.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    v.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    v.extend_from_slice(b);
                }
            }
        }
    }
}

fn stream_with_ext(ext: &[u8], rows: &[Row<'_>]) -> Vec<u8> {
    let mut v = header(ext);
    encode_rows(&mut v, rows);
    v.extend_from_slice(&(-1i16).to_be_bytes());
    v
}

fn stream(rows: &[Row<'_>]) -> Vec<u8> {
    stream_with_ext(b"", rows)
}

fn expect(rows: &[Row<'_>]) -> Vec<Vec<TupleValue>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|f| match f {
                    None => TupleValue::Null,
                    Some(b) => TupleValue::Binary(Bytes::copy_from_slice(b)),
                })
                .collect()
        })
        .collect()
}

/// Feeds `pieces` one by one, draining rows after each; returns the rows and the parser.
fn feed(mut p: BinaryCopyParser, pieces: &[&[u8]]) -> Result<(Vec<Vec<TupleValue>>, BinaryCopyParser), CopyError> {
    let mut got = Vec::new();
    let mut row = Vec::new();
    for piece in pieces {
        p.push(Bytes::copy_from_slice(piece));
        while p.next_row(&mut row)?.is_some() {
            got.push(row.clone());
        }
    }
    Ok((got, p))
}

fn sample() -> Vec<Row<'static>> {
    vec![
        vec![Some(b"1"), None, Some(b"hello")],
        vec![Some(b""), Some(b"x"), None],
        vec![Some(b"abc"), Some(b"def"), Some(b"g")],
        vec![None, None, None],
    ]
}

#[test]
fn whole_stream_in_one_chunk_is_zero_copy() {
    let rows = sample();
    let data = Bytes::from(stream(&rows));
    let mut p = BinaryCopyParser::with_field_count(3);
    p.push(data.clone());
    let mut row = Vec::new();
    let mut got = Vec::new();
    while p.next_row(&mut row).unwrap().is_some() {
        // Every non-empty field points into the pushed chunk.
        for v in &row {
            if let TupleValue::Binary(b) = v {
                if !b.is_empty() {
                    let inside = data.as_ptr() as usize..data.as_ptr() as usize + data.len();
                    assert!(inside.contains(&(b.as_ptr() as usize)), "field was copied");
                }
            }
        }
        got.push(row.clone());
    }
    assert!(p.finished());
    p.finish().unwrap();
    assert_eq!(got, expect(&rows));
    assert_eq!(p.rows(), 4);
}

#[test]
fn rows_survive_every_chunk_boundary() {
    let rows = sample();
    // A header extension too, so that it can be cut as well.
    let data = stream_with_ext(b"ext!", &rows);
    let want = expect(&rows);
    for cut in 0..=data.len() {
        for cut2 in cut..=data.len() {
            let (got, p) =
                feed(BinaryCopyParser::with_field_count(3), &[&data[..cut], &data[cut..cut2], &data[cut2..]])
                    .unwrap_or_else(|e| panic!("cut {cut}/{cut2}: {e}"));
            assert!(p.finished(), "cut {cut}/{cut2}");
            p.finish().unwrap();
            assert_eq!(got, want, "cut {cut}/{cut2}");
        }
    }
}

#[test]
fn byte_by_byte_and_pushed_all_before_draining() {
    let rows = sample();
    let data = stream(&rows);
    let pieces: Vec<&[u8]> = data.chunks(1).collect();
    let (got, p) = feed(BinaryCopyParser::new(), &pieces).unwrap();
    assert_eq!(got, expect(&rows));
    p.finish().unwrap();
    // Every chunk pushed before the first next_row.
    let mut p = BinaryCopyParser::new();
    for c in data.chunks(3) {
        p.push(Bytes::copy_from_slice(c));
    }
    let mut row = Vec::new();
    let mut got = Vec::new();
    while p.next_row(&mut row).unwrap().is_some() {
        got.push(row.clone());
    }
    assert_eq!(got, expect(&rows));
    p.finish().unwrap();
}

#[test]
fn a_big_field_in_small_chunks_is_gathered_once() {
    let big = vec![7u8; 1 << 20];
    let rows: Vec<Row<'_>> = vec![vec![Some(b"a")], vec![Some(&big)], vec![Some(b"z")]];
    let data = stream(&rows);
    let pieces: Vec<&[u8]> = data.chunks(1000).collect();
    let (got, p) = feed(BinaryCopyParser::with_field_count(1), &pieces).unwrap();
    assert_eq!(got, expect(&rows));
    p.finish().unwrap();
}

#[test]
fn zero_field_rows_and_empty_streams() {
    let rows: Vec<Row<'_>> = vec![vec![], vec![]];
    let (got, p) = feed(BinaryCopyParser::with_field_count(0), &[&stream(&rows)]).unwrap();
    assert_eq!(got, vec![Vec::<TupleValue>::new(), Vec::new()]);
    p.finish().unwrap();
    let (got, p) = feed(BinaryCopyParser::new(), &[&stream(&[])]).unwrap();
    assert!(got.is_empty() && p.finished());
    p.finish().unwrap();
}

#[test]
fn bad_signature_is_an_error_even_before_the_header_is_complete() {
    let e = feed(BinaryCopyParser::new(), &[b"NOTCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0"]).unwrap_err();
    assert_eq!(e, CopyError::BadSignature);
    let e = feed(BinaryCopyParser::new(), &[b"PGCOPX"]).unwrap_err();
    assert_eq!(e, CopyError::BadSignature);
    // Text-format COPY output.
    let e = feed(BinaryCopyParser::new(), &[b"1\thello\n"]).unwrap_err();
    assert_eq!(e, CopyError::BadSignature);
}

#[test]
fn flags_oids_and_critical_bits_are_rejected() {
    for flags in [FLAG_OIDS, 1, 0x8000] {
        let mut data = stream(&[vec![Some(b"1")]]);
        data[11..15].copy_from_slice(&flags.to_be_bytes());
        let e = feed(BinaryCopyParser::new(), &[&data]).unwrap_err();
        assert_eq!(e, CopyError::UnsupportedFlags(flags));
    }
    // Bits 17–31 are backwards-compatible: ignored.
    let mut data = stream(&[vec![Some(b"1")]]);
    data[11..15].copy_from_slice(&(1u32 << 20).to_be_bytes());
    let (got, p) = feed(BinaryCopyParser::new(), &[&data]).unwrap();
    assert_eq!(got.len(), 1);
    p.finish().unwrap();
}

#[test]
fn wrong_field_counts_and_lengths_are_errors() {
    let data = stream(&[vec![Some(b"1"), Some(b"2")], vec![Some(b"1")]]);
    let e = feed(BinaryCopyParser::with_field_count(2), &[&data]).unwrap_err();
    assert_eq!(e, CopyError::FieldCount { row: 2, expected: 2, found: 1 });
    // Negative field count other than the trailer's -1.
    let mut data = header(b"");
    data.extend_from_slice(&(-2i16).to_be_bytes());
    let e = feed(BinaryCopyParser::new(), &[&data]).unwrap_err();
    assert_eq!(e, CopyError::BadFieldCount { row: 1, found: -2 });
    // Negative length other than NULL's -1, also when it arrives in pieces.
    let mut data = stream(&[vec![Some(b"1")]]);
    data[19 + 2..19 + 6].copy_from_slice(&(-7i32).to_be_bytes());
    for cut in 0..data.len() {
        let e = feed(BinaryCopyParser::new(), &[&data[..cut], &data[cut..]]).unwrap_err();
        assert_eq!(e, CopyError::BadLength { row: 1, field: 1, len: -7 }, "cut {cut}");
    }
}

#[test]
fn truncated_streams_are_reported_at_the_end() {
    let data = stream(&sample());
    for cut in 0..data.len() {
        let (got, p) = feed(BinaryCopyParser::with_field_count(3), &[&data[..cut]]).unwrap();
        assert!(!p.finished(), "cut {cut}");
        let e = p.finish().unwrap_err();
        assert!(matches!(e, CopyError::Truncated { .. }), "cut {cut}: {e}");
        assert!(got.len() <= 4);
        let msg = e.to_string();
        if cut < 19 {
            assert!(msg.contains("inside its header"), "{msg}");
        }
    }
    let (_, p) = feed(BinaryCopyParser::new(), &[&data[..data.len() - 2]]).unwrap();
    assert_eq!(
        p.finish().unwrap_err().to_string(),
        "the COPY stream ended after 4 rows without its trailer (0 bytes of it received): the data is truncated"
    );
}

#[test]
fn data_after_the_trailer_is_an_error() {
    let mut data = stream(&sample());
    data.extend_from_slice(b"xx");
    let e = feed(BinaryCopyParser::new(), &[&data]).unwrap_err();
    assert_eq!(e, CopyError::TrailingData { bytes: 2 });
    // Also when it arrives in a later chunk.
    let data = stream(&sample());
    let e = feed(BinaryCopyParser::new(), &[&data, b"x"]).unwrap_err();
    assert_eq!(e, CopyError::TrailingData { bytes: 1 });
}
