//! Builds pgoutput messages by hand, for the decoder's tests and the pipeline's.

use bytes::Bytes;

/// Builds a message byte by byte, in network byte order.
pub(crate) struct Enc(Vec<u8>);

impl Enc {
    pub(crate) fn tag(tag: u8) -> Enc {
        Enc(vec![tag])
    }
    pub(crate) fn u8(mut self, v: u8) -> Enc {
        self.0.push(v);
        self
    }
    pub(crate) fn i16(mut self, v: i16) -> Enc {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u32(mut self, v: u32) -> Enc {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn i32(mut self, v: i32) -> Enc {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u64(mut self, v: u64) -> Enc {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn i64(mut self, v: i64) -> Enc {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn raw(mut self, b: &[u8]) -> Enc {
        self.0.extend_from_slice(b);
        self
    }
    /// A NUL-terminated string.
    pub(crate) fn cstr(self, s: &str) -> Enc {
        self.raw(s.as_bytes()).u8(0)
    }
    pub(crate) fn text(self, v: &[u8]) -> Enc {
        self.u8(b't').i32(v.len() as i32).raw(v)
    }
    pub(crate) fn binary(self, v: &[u8]) -> Enc {
        self.u8(b'b').i32(v.len() as i32).raw(v)
    }
    pub(crate) fn build(self) -> Bytes {
        Bytes::from(self.0)
    }
}
