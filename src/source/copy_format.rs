//! An incremental parser of `COPY … TO STDOUT (FORMAT binary)` output.
//!
//! Chunks arrive in whatever sizes the server's CopyData messages have; fields that lie in
//! one chunk are handed out as zero-copy `Bytes` slices, a row that straddles chunks is
//! first gathered into one buffer. The caller owns the row vector and reuses it.

use bytes::{Buf, Bytes, BytesMut};

use super::pgoutput::TupleValue;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the COPY stream does not start with the binary COPY signature")]
    BadSignature,
    #[error("the COPY stream uses unsupported header flags {0:#x}")]
    Flags(u32),
    #[error("a COPY row has an invalid field length {0}")]
    BadLength(i32),
    #[error("a COPY row has {0} fields")]
    BadFieldCount(i16),
}

pub struct BinaryCopyParser {
    buf: BytesMut,
    /// The current chunk when `buf` is empty (fast path: no copying).
    chunk: Bytes,
    header_done: bool,
    finished: bool,
}

impl Default for BinaryCopyParser {
    fn default() -> Self {
        Self::new()
    }
}

impl BinaryCopyParser {
    pub fn new() -> Self {
        BinaryCopyParser { buf: BytesMut::new(), chunk: Bytes::new(), header_done: false, finished: false }
    }

    /// Adds the next chunk of the stream.
    pub fn push(&mut self, chunk: Bytes) {
        if self.chunk.is_empty() && self.buf.is_empty() {
            self.chunk = chunk;
        } else {
            if !self.chunk.is_empty() {
                self.buf.extend_from_slice(&self.chunk);
                self.chunk = Bytes::new();
            }
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// True once the trailer (field count −1) was read.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Parses the next complete row into `out` (cleared first); `None` when more input is
    /// needed or the stream is finished.
    pub fn next_row(&mut self, out: &mut Vec<TupleValue>) -> Result<Option<()>, CopyError> {
        if self.finished {
            return Ok(None);
        }
        if !self.buf.is_empty() {
            // Slow path: data spans chunks; work on a frozen copy of what we have.
            let mut cursor = std::mem::take(&mut self.buf).freeze();
            let r = self.parse_one(&mut cursor, out);
            match r {
                Ok(Some(())) => {
                    if !cursor.is_empty() {
                        self.chunk = cursor;
                    }
                    Ok(Some(()))
                }
                Ok(None) => {
                    // `cursor` only moved past a header parsed in this call.
                    self.buf = BytesMut::from(&cursor[..]);
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        } else {
            let mut cursor = self.chunk.clone();
            match self.parse_one(&mut cursor, out)? {
                Some(()) => {
                    self.chunk = cursor;
                    Ok(Some(()))
                }
                None => {
                    // Incomplete: keep the rest (past any header just parsed) for the next chunk.
                    self.buf.extend_from_slice(&cursor);
                    self.chunk = Bytes::new();
                    Ok(None)
                }
            }
        }
    }

    /// Parses one row (or the header plus one row) from `cur`; on `None` nothing is consumed
    /// logically (the caller keeps the original data).
    fn parse_one(&mut self, cur: &mut Bytes, out: &mut Vec<TupleValue>) -> Result<Option<()>, CopyError> {
        let mut c = cur.clone();
        if !self.header_done {
            if c.len() < SIGNATURE.len() + 8 {
                return Ok(None);
            }
            if &c[..SIGNATURE.len()] != SIGNATURE {
                return Err(CopyError::BadSignature);
            }
            c.advance(SIGNATURE.len());
            let flags = c.get_u32();
            if flags & 0xFFFF_0000 != 0 && flags != 0 {
                return Err(CopyError::Flags(flags));
            }
            let ext = c.get_u32() as usize;
            if c.len() < ext {
                return Ok(None);
            }
            c.advance(ext);
            self.header_done = true;
            *cur = c.clone();
        }
        if c.len() < 2 {
            return Ok(None);
        }
        let n = c.get_i16();
        if n == -1 {
            self.finished = true;
            *cur = c;
            return Ok(None);
        }
        if n < 0 {
            return Err(CopyError::BadFieldCount(n));
        }
        out.clear();
        for _ in 0..n {
            if c.len() < 4 {
                return Ok(None);
            }
            let len = c.get_i32();
            if len == -1 {
                out.push(TupleValue::Null);
                continue;
            }
            if len < 0 {
                return Err(CopyError::BadLength(len));
            }
            let len = len as usize;
            if c.len() < len {
                return Ok(None);
            }
            out.push(TupleValue::Binary(c.split_to(len)));
        }
        *cur = c;
        Ok(Some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(rows: &[Vec<Option<&[u8]>>]) -> Vec<u8> {
        let mut v = SIGNATURE.to_vec();
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
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
        v.extend_from_slice(&(-1i16).to_be_bytes());
        v
    }

    #[test]
    fn rows_survive_every_chunk_boundary() {
        let rows: Vec<Vec<Option<&[u8]>>> =
            vec![vec![Some(b"1"), None, Some(b"hello")], vec![Some(b""), Some(b"x"), None], vec![Some(b"abc"), Some(b"def"), Some(b"g")]];
        let data = stream(&rows);
        for cut in 0..=data.len() {
            for cut2 in cut..=data.len() {
                let mut p = BinaryCopyParser::new();
                let mut got = Vec::new();
                let mut row = Vec::new();
                for piece in [&data[..cut], &data[cut..cut2], &data[cut2..]] {
                    p.push(Bytes::copy_from_slice(piece));
                    while p.next_row(&mut row).unwrap().is_some() {
                        got.push(row.clone());
                    }
                }
                assert!(p.finished(), "cut {cut}/{cut2}");
                assert_eq!(got.len(), 3);
                assert_eq!(got[0][2], TupleValue::Binary(Bytes::from_static(b"hello")));
                assert_eq!(got[0][1], TupleValue::Null);
                assert_eq!(got[1][0], TupleValue::Binary(Bytes::new()));
                assert_eq!(got[2][1], TupleValue::Binary(Bytes::from_static(b"def")));
            }
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut p = BinaryCopyParser::new();
        p.push(Bytes::from_static(b"NOTCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0"));
        assert!(p.next_row(&mut Vec::new()).is_err());
        let mut data = stream(&[vec![Some(b"1")]]);
        data[19 + 2..19 + 6].copy_from_slice(&(-7i32).to_be_bytes());
        let mut p = BinaryCopyParser::new();
        p.push(Bytes::from(data));
        assert!(p.next_row(&mut Vec::new()).is_err());
    }
}
