//! An incremental parser of `COPY … TO STDOUT (FORMAT binary)` output.
//!
//! The format (PostgreSQL docs, "COPY", Binary Format): the 11-byte signature
//! `PGCOPY\n\xff\r\n\0`, an `i32` flags word, an `i32` header-extension length and that many
//! bytes; then tuples, each an `i16` field count (`-1` is the trailer that ends the data)
//! followed per field by an `i32` length (`-1` is NULL) and that many bytes. All integers are
//! big-endian.
//!
//! Chunks arrive in whatever sizes the stream has (PostgreSQL sends one CopyData message per
//! row, the header with the first row; other producers may cut anywhere). A field that lies
//! inside one chunk is handed out as a zero-copy `Bytes` slice of it. A row (or the header)
//! that straddles chunks is gathered into one buffer first; only the bytes of that row are
//! copied, each at most once, so even a row of many megabytes arriving in small chunks is
//! parsed in linear time.
//!
//! Use:
//! ```ignore
//! let mut parser = BinaryCopyParser::with_field_count(columns);
//! let mut row = Vec::new();
//! while let Some(chunk) = stream.next().await {
//!     parser.push(chunk?);
//!     while parser.next_row(&mut row)?.is_some() { /* row: one TupleValue per field */ }
//! }
//! parser.finish()?; // the trailer was read and nothing follows it
//! ```

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::model::TupleValue;

/// The binary COPY signature.
pub const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Signature, flags and extension length.
const HEADER_FIXED_LEN: usize = SIGNATURE.len() + 8;
/// Flags bit 16: every tuple carries an OID field (servers before PostgreSQL 12, `WITH OIDS`).
const FLAG_OIDS: u32 = 1 << 16;
/// Flags bits 0–15 signal incompatible format changes: a reader must reject unknown ones.
const FLAGS_CRITICAL: u32 = 0xFFFF;

/// What is wrong with a binary COPY stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    #[error("the COPY stream does not start with the binary COPY signature PGCOPY\\n\\377\\r\\n\\0")]
    BadSignature,
    #[error("the COPY stream's header has flags {0:#010x}, which this reader does not support (OIDs or an incompatible format)")]
    UnsupportedFlags(u32),
    #[error("row {row} of the COPY stream has {found} fields, expected {expected}")]
    FieldCount { row: u64, expected: usize, found: i16 },
    #[error("row {row} of the COPY stream has an invalid field count {found}")]
    BadFieldCount { row: u64, found: i16 },
    #[error("row {row} of the COPY stream has an invalid length {len} in field {field}")]
    BadLength { row: u64, field: usize, len: i32 },
    #[error("the COPY stream ended {where_} ({pending} bytes of it received): the data is truncated")]
    Truncated { where_: String, pending: usize },
    #[error("the COPY stream has {bytes} bytes after its trailer")]
    TrailingData { bytes: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Rows,
    Done,
}

/// How far the scan of the current unit (header or row) got. Positions are relative to the
/// unit's first byte, so a scan can resume when the unit moves from a chunk to the carry
/// buffer and when the carry buffer grows.
#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    /// Bytes of the unit validated so far.
    pos: usize,
    /// The row's field count, once read.
    fields: Option<u16>,
    /// Fields scanned so far.
    done: u16,
}

enum Step {
    /// The unit is incomplete: it needs at least this many bytes.
    Need(usize),
    /// The header is complete and `usize` bytes long.
    Header(usize),
    /// A row of `fields` fields, `len` bytes long.
    Row { fields: u16, len: usize },
    /// The trailer (2 bytes).
    Trailer,
}

#[inline]
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Incremental binary COPY parser: [`push`](Self::push) chunks, take rows with
/// [`next_row`](Self::next_row), check the end with [`finish`](Self::finish).
#[derive(Debug)]
pub struct BinaryCopyParser {
    /// Chunks not consumed yet; the front one may be partly consumed.
    queue: VecDeque<Bytes>,
    /// Total bytes in `queue`.
    queued: usize,
    /// The start of a unit that straddles chunks (empty otherwise).
    carry: BytesMut,
    /// Scan progress over `carry`.
    scan: Scan,
    state: State,
    expected: Option<usize>,
    rows: u64,
}

impl Default for BinaryCopyParser {
    fn default() -> Self {
        Self::new()
    }
}

impl BinaryCopyParser {
    /// A parser that accepts rows of any field count.
    pub fn new() -> Self {
        BinaryCopyParser {
            queue: VecDeque::new(),
            queued: 0,
            carry: BytesMut::new(),
            scan: Scan::default(),
            state: State::Header,
            expected: None,
            rows: 0,
        }
    }

    /// A parser that rejects any row whose field count is not `fields` (the SELECT list's
    /// length), with [`CopyError::FieldCount`].
    pub fn with_field_count(fields: usize) -> Self {
        BinaryCopyParser { expected: Some(fields), ..Self::new() }
    }

    /// Adds the next chunk of the stream. Nothing is parsed until [`next_row`](Self::next_row).
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.queued += chunk.len();
            self.queue.push_back(chunk);
        }
    }

    /// True once the trailer (field count −1) was read.
    pub fn finished(&self) -> bool {
        self.state == State::Done
    }

    /// Rows returned by [`next_row`](Self::next_row) so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes received but not yet returned as rows (the start of an incomplete row).
    pub fn pending_bytes(&self) -> usize {
        self.queued + self.carry.len()
    }

    /// Parses the next complete row: `Some(())` with `out` cleared and holding one value per
    /// field (`TupleValue::Binary` or `TupleValue::Null`); `None` when more input is needed
    /// or the trailer was read (see [`finished`](Self::finished)). After an error the parser
    /// must not be used further.
    pub fn next_row(&mut self, out: &mut Vec<TupleValue>) -> Result<Option<()>, CopyError> {
        loop {
            if self.state == State::Done {
                let bytes = self.pending_bytes();
                return if bytes == 0 { Ok(None) } else { Err(CopyError::TrailingData { bytes }) };
            }
            if self.carry.is_empty() {
                // Fast path: the unit starts in the front chunk; fields are slices of it.
                let Some(front) = self.queue.front_mut() else {
                    return Ok(None);
                };
                let mut scan = Scan::default();
                match scan.step(front, self.state, self.expected, self.rows)? {
                    Step::Need(_) => {
                        // The unit continues in later chunks: gather it.
                        let front = self.queue.pop_front().expect("front exists");
                        self.queued -= front.len();
                        self.carry.extend_from_slice(&front);
                        self.scan = scan;
                    }
                    Step::Header(len) => {
                        self.state = State::Rows;
                        self.consume_front(len);
                    }
                    Step::Trailer => {
                        self.state = State::Done;
                        self.consume_front(2);
                    }
                    Step::Row { fields, len } => {
                        emit_row(front, fields, out);
                        self.consume_front(len);
                        self.rows += 1;
                        return Ok(Some(()));
                    }
                }
                continue;
            }
            // Slow path: top the carry buffer up to what the scan needs, never beyond the unit.
            let mut scan = self.scan;
            let step = scan.step(&self.carry, self.state, self.expected, self.rows)?;
            self.scan = scan;
            match step {
                Step::Need(n) => {
                    if !self.fill_carry(n) {
                        return Ok(None);
                    }
                }
                Step::Header(_) => {
                    self.state = State::Rows;
                    self.reset_carry();
                }
                Step::Trailer => {
                    self.state = State::Done;
                    self.reset_carry();
                }
                Step::Row { fields, len } => {
                    debug_assert_eq!(len, self.carry.len());
                    let row = self.carry.split().freeze();
                    self.scan = Scan::default();
                    emit_row(&row, fields, out);
                    self.rows += 1;
                    return Ok(Some(()));
                }
            }
        }
    }

    /// Checks the end of the stream: `Ok` only if the trailer was read and nothing follows
    /// it. Call it once the stream has ended and [`next_row`](Self::next_row) returned `None`.
    pub fn finish(&self) -> Result<(), CopyError> {
        let pending = self.pending_bytes();
        match self.state {
            State::Done if pending == 0 => Ok(()),
            State::Done => Err(CopyError::TrailingData { bytes: pending }),
            State::Header => Err(CopyError::Truncated { where_: "inside its header".into(), pending }),
            State::Rows if pending == 0 => {
                Err(CopyError::Truncated { where_: format!("after {} rows without its trailer", self.rows), pending })
            }
            State::Rows => Err(CopyError::Truncated { where_: format!("inside row {}", self.rows + 1), pending }),
        }
    }

    fn consume_front(&mut self, n: usize) {
        let front = self.queue.front_mut().expect("front exists");
        front.advance(n);
        self.queued -= n;
        if front.is_empty() {
            self.queue.pop_front();
        }
    }

    fn reset_carry(&mut self) {
        self.carry.clear();
        self.scan = Scan::default();
    }

    /// Moves queued bytes into `carry` until it holds `n` bytes; false if the queue ran dry.
    fn fill_carry(&mut self, n: usize) -> bool {
        let missing = n - self.carry.len();
        // A corrupt length must not make us reserve gigabytes that never arrive.
        self.carry.reserve(missing.min(self.queued));
        while self.carry.len() < n {
            let Some(front) = self.queue.front_mut() else {
                return false;
            };
            let take = (n - self.carry.len()).min(front.len());
            self.carry.extend_from_slice(&front[..take]);
            self.queued -= take;
            front.advance(take);
            if front.is_empty() {
                self.queue.pop_front();
            }
        }
        true
    }
}

impl Scan {
    /// Continues scanning the unit at the start of `b` (the header in state `Header`, else
    /// a row or the trailer). Never reads past `b`; validates every length.
    fn step(&mut self, b: &[u8], state: State, expected: Option<usize>, rows: u64) -> Result<Step, CopyError> {
        if state == State::Header {
            let sig = b.len().min(SIGNATURE.len());
            if b[..sig] != SIGNATURE[..sig] {
                return Err(CopyError::BadSignature);
            }
            if b.len() < HEADER_FIXED_LEN {
                return Ok(Step::Need(HEADER_FIXED_LEN));
            }
            let flags = be_i32(b, SIGNATURE.len()) as u32;
            if flags & (FLAGS_CRITICAL | FLAG_OIDS) != 0 {
                return Err(CopyError::UnsupportedFlags(flags));
            }
            let ext = be_i32(b, SIGNATURE.len() + 4);
            if ext < 0 {
                return Err(CopyError::BadLength { row: 0, field: 0, len: ext });
            }
            let len = HEADER_FIXED_LEN + ext as usize;
            return Ok(if b.len() < len { Step::Need(len) } else { Step::Header(len) });
        }
        let row = rows + 1;
        let fields = match self.fields {
            Some(f) => f,
            None => {
                if b.len() < 2 {
                    return Ok(Step::Need(2));
                }
                let n = be_i16(b, 0);
                if n == -1 {
                    return Ok(Step::Trailer);
                }
                if n < 0 {
                    return Err(CopyError::BadFieldCount { row, found: n });
                }
                if let Some(e) = expected {
                    if e != n as usize {
                        return Err(CopyError::FieldCount { row, expected: e, found: n });
                    }
                }
                self.fields = Some(n as u16);
                self.pos = 2;
                n as u16
            }
        };
        while self.done < fields {
            if b.len() < self.pos + 4 {
                return Ok(Step::Need(self.pos + 4));
            }
            let len = be_i32(b, self.pos);
            if len < -1 {
                return Err(CopyError::BadLength { row, field: self.done as usize + 1, len });
            }
            let end = self.pos + 4 + len.max(0) as usize;
            if b.len() < end {
                // Not consumed: the length is re-read once the field's bytes are there.
                return Ok(Step::Need(end));
            }
            self.pos = end;
            self.done += 1;
        }
        Ok(Step::Row { fields, len: self.pos })
    }
}

/// Emits the fields of a row already validated by [`Scan::step`] at the start of `b`.
#[inline]
fn emit_row(b: &Bytes, fields: u16, out: &mut Vec<TupleValue>) {
    out.clear();
    out.reserve(fields as usize);
    let mut pos = 2;
    for _ in 0..fields {
        let len = be_i32(b, pos);
        pos += 4;
        if len < 0 {
            out.push(TupleValue::Null);
        } else {
            let end = pos + len as usize;
            out.push(TupleValue::Binary(b.slice(pos..end)));
            pos = end;
        }
    }
}

#[cfg(test)]
mod tests {
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
}
