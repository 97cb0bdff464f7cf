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
mod tests;
