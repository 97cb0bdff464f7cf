//! Decoder for `pgoutput` logical replication messages, protocol versions 1–4.
//!
//! Input is the payload of one XLogData message, starting with the tag byte. Decoding is
//! strict: every field must be present, strings must be NUL-terminated UTF-8, lengths and
//! counts must not be negative, and nothing may follow a complete message. Any violation is a
//! [`DecodeError`] naming the message, the byte offset and what was expected; no byte sequence
//! makes the decoder panic or allocate more than the input can describe. Value and message
//! payloads are [`Bytes::slice`]s of the input: nothing is copied.

use bytes::Bytes;

use super::messages::{OldKind, PgOutputMessage, Relation, RelationColumn, Tuple};
use crate::model::TupleValue;
use crate::model::{Lsn, PgTimestamp};

/// Why a pgoutput message could not be decoded. Offsets count from the tag byte (offset 0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty pgoutput message: expected a tag byte")]
    Empty,
    #[error("unknown pgoutput message tag {}", show_byte(*tag))]
    UnknownTag { tag: u8 },
    #[error(
        "pgoutput {} message truncated at byte {offset}: expected {expected}, but {remaining} byte(s) remain",
        tag_name(*tag)
    )]
    Truncated {
        tag: u8,
        offset: usize,
        expected: &'static str,
        remaining: usize,
    },
    #[error("pgoutput {} message invalid at byte {offset}: expected {expected}, found {found}", tag_name(*tag))]
    Invalid {
        tag: u8,
        offset: usize,
        expected: &'static str,
        found: String,
    },
    #[error("pgoutput {} message has {count} trailing byte(s) after its end at byte {offset}", tag_name(*tag))]
    TrailingBytes {
        tag: u8,
        offset: usize,
        count: usize,
    },
    #[error(
        "pgoutput {} message requires protocol version {min}, but version {version} is in use",
        tag_name(*tag)
    )]
    UnsupportedByVersion { tag: u8, version: u32, min: u32 },
    #[error("pgoutput {} message is not valid {}", tag_name(*tag),
        if *in_stream { "inside a stream (StreamStart was not followed by StreamStop)" } else { "outside a stream" })]
    StreamState { tag: u8, in_stream: bool },
}

/// Stateful decoder for one replication connection.
///
/// It remembers the protocol version and whether it is between StreamStart and StreamStop,
/// because only there do Relation, Type, Insert, Update, Delete, Truncate and Message carry a
/// leading transaction id. A message that fails to decode leaves the state unchanged.
#[derive(Debug, Clone)]
pub struct Decoder {
    protocol_version: u32,
    in_stream: bool,
}

impl Decoder {
    /// A decoder for the negotiated `proto_version`, outside any stream.
    pub fn new(protocol_version: u32) -> Decoder {
        Decoder {
            protocol_version,
            in_stream: false,
        }
    }

    /// Decodes one message (tag byte first) and tracks StreamStart/StreamStop.
    pub fn decode(&mut self, data: Bytes) -> Result<PgOutputMessage, DecodeError> {
        let msg = decode_message(data, self.protocol_version, self.in_stream)?;
        match msg {
            PgOutputMessage::StreamStart { .. } => self.in_stream = true,
            PgOutputMessage::StreamStop => self.in_stream = false,
            _ => {}
        }
        Ok(msg)
    }

    /// Whether the last StreamStart has not yet been closed by a StreamStop.
    pub fn in_stream(&self) -> bool {
        self.in_stream
    }
}

/// Decodes one message without tracking state, e.g. when replaying spilled stream messages.
///
/// `in_stream` says whether the message was sent between StreamStart and StreamStop, i.e.
/// whether xid-carrying messages have their xid. A StreamStart inside a stream or a StreamStop
/// outside one is an error.
pub fn decode_message(
    data: Bytes,
    protocol_version: u32,
    in_stream: bool,
) -> Result<PgOutputMessage, DecodeError> {
    let &tag = data.first().ok_or(DecodeError::Empty)?;
    let kind = message_kind(tag).ok_or(DecodeError::UnknownTag { tag })?;
    if protocol_version < kind.min_version {
        return Err(DecodeError::UnsupportedByVersion {
            tag,
            version: protocol_version,
            min: kind.min_version,
        });
    }
    if (tag == b'S' && in_stream) || (tag == b'E' && !in_stream) {
        return Err(DecodeError::StreamState { tag, in_stream });
    }
    let mut r = Reader {
        buf: data,
        pos: 1,
        tag,
    };
    let xid = if in_stream && kind.stream_xid {
        Some(r.u32("a 4-byte transaction id")?)
    } else {
        None
    };
    let msg = match tag {
        b'B' => PgOutputMessage::Begin {
            final_lsn: r.lsn("an 8-byte final LSN")?,
            commit_ts: r.ts("an 8-byte commit timestamp")?,
            xid: r.u32("a 4-byte transaction id")?,
        },
        b'C' => PgOutputMessage::Commit {
            flags: r.u8("a 1-byte flags field")?,
            commit_lsn: r.lsn("an 8-byte commit LSN")?,
            end_lsn: r.lsn("an 8-byte end LSN")?,
            commit_ts: r.ts("an 8-byte commit timestamp")?,
        },
        b'O' => PgOutputMessage::Origin {
            commit_lsn: r.lsn("an 8-byte origin commit LSN")?,
            name: r.cstr("a NUL-terminated origin name")?,
        },
        b'R' => PgOutputMessage::Relation {
            xid,
            relation: r.relation()?,
        },
        b'Y' => PgOutputMessage::Type {
            xid,
            oid: r.u32("a 4-byte type OID")?,
            namespace: r.cstr("a NUL-terminated type namespace")?,
            name: r.cstr("a NUL-terminated type name")?,
        },
        b'I' => {
            let relid = r.u32("a 4-byte relation id")?;
            r.marker(b"N", "the new-tuple marker N")?;
            PgOutputMessage::Insert {
                xid,
                relid,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relid = r.u32("a 4-byte relation id")?;
            let old = match r.marker(
                b"KON",
                "an old-tuple marker K or O, or the new-tuple marker N",
            )? {
                b'N' => None,
                marker => {
                    let old = (old_kind(marker), r.tuple()?);
                    r.marker(b"N", "the new-tuple marker N")?;
                    Some(old)
                }
            };
            PgOutputMessage::Update {
                xid,
                relid,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relid = r.u32("a 4-byte relation id")?;
            let kind = old_kind(r.marker(b"KO", "an old-tuple marker K or O")?);
            PgOutputMessage::Delete {
                xid,
                relid,
                old: (kind, r.tuple()?),
            }
        }
        b'T' => {
            let count = r.count32("a 4-byte relation count")?;
            let options = r.u8("a 1-byte options field")?;
            let mut relids = Vec::with_capacity(count.min(r.remaining() / 4));
            for _ in 0..count {
                relids.push(r.u32("a 4-byte relation id")?);
            }
            PgOutputMessage::Truncate {
                xid,
                options,
                relids,
            }
        }
        b'M' => PgOutputMessage::Message {
            xid,
            flags: r.u8("a 1-byte flags field")?,
            lsn: r.lsn("an 8-byte message LSN")?,
            prefix: r.cstr("a NUL-terminated message prefix")?,
            content: r.sized("a 4-byte content length", "the message content")?,
        },
        b'S' => PgOutputMessage::StreamStart {
            xid: r.u32("a 4-byte transaction id")?,
            first_segment: r.marker(&[0, 1], "a first-segment flag 0 or 1")? == 1,
        },
        b'E' => PgOutputMessage::StreamStop,
        b'c' => PgOutputMessage::StreamCommit {
            xid: r.u32("a 4-byte transaction id")?,
            flags: r.u8("a 1-byte flags field")?,
            commit_lsn: r.lsn("an 8-byte commit LSN")?,
            end_lsn: r.lsn("an 8-byte end LSN")?,
            commit_ts: r.ts("an 8-byte commit timestamp")?,
        },
        b'A' => {
            let xid = r.u32("a 4-byte transaction id")?;
            let subxid = r.u32("a 4-byte subtransaction id")?;
            // v4 adds abort_lsn and abort_ts, but only with `streaming = parallel`: their
            // presence is told by the message length alone.
            let (abort_lsn, abort_ts) = if protocol_version >= 4 && r.remaining() > 0 {
                (
                    Some(r.lsn("an 8-byte abort LSN")?),
                    Some(r.ts("an 8-byte abort timestamp")?),
                )
            } else {
                (None, None)
            };
            PgOutputMessage::StreamAbort {
                xid,
                subxid,
                abort_lsn,
                abort_ts,
            }
        }
        b'b' => {
            let (prepare_lsn, end_lsn, prepare_ts, xid, gid) = r.prepared("prepare")?;
            PgOutputMessage::BeginPrepare { prepare_lsn, end_lsn, prepare_ts, xid, gid }
        }
        b'P' => {
            let flags = r.u8("a 1-byte flags field")?;
            let (prepare_lsn, end_lsn, prepare_ts, xid, gid) = r.prepared("prepare")?;
            PgOutputMessage::Prepare { flags, prepare_lsn, end_lsn, prepare_ts, xid, gid }
        }
        b'K' => {
            let flags = r.u8("a 1-byte flags field")?;
            let (commit_lsn, end_lsn, commit_ts, xid, gid) = r.prepared("commit")?;
            PgOutputMessage::CommitPrepared { flags, commit_lsn, end_lsn, commit_ts, xid, gid }
        }
        b'r' => PgOutputMessage::RollbackPrepared {
            flags: r.u8("a 1-byte flags field")?,
            prepare_end_lsn: r.lsn("an 8-byte prepare end LSN")?,
            rollback_end_lsn: r.lsn("an 8-byte rollback end LSN")?,
            prepare_ts: r.ts("an 8-byte prepare timestamp")?,
            rollback_ts: r.ts("an 8-byte rollback timestamp")?,
            xid: r.u32("a 4-byte transaction id")?,
            gid: r.cstr("a NUL-terminated GID")?,
        },
        b'p' => {
            let flags = r.u8("a 1-byte flags field")?;
            let (prepare_lsn, end_lsn, prepare_ts, xid, gid) = r.prepared("prepare")?;
            PgOutputMessage::StreamPrepare { flags, prepare_lsn, end_lsn, prepare_ts, xid, gid }
        }
        _ => return Err(DecodeError::UnknownTag { tag }),
    };
    r.finish()?;
    Ok(msg)
}

/// What the decoder knows about a tag before reading the body.
struct MessageKind {
    name: &'static str,
    /// The first protocol version that sends this message.
    min_version: u32,
    /// Whether the message starts with an xid when sent inside a stream.
    stream_xid: bool,
}

fn message_kind(tag: u8) -> Option<MessageKind> {
    let (name, min_version, stream_xid) = match tag {
        b'B' => ("Begin", 1, false),
        b'C' => ("Commit", 1, false),
        b'O' => ("Origin", 1, false),
        b'R' => ("Relation", 1, true),
        b'Y' => ("Type", 1, true),
        b'I' => ("Insert", 1, true),
        b'U' => ("Update", 1, true),
        b'D' => ("Delete", 1, true),
        b'T' => ("Truncate", 1, true),
        b'M' => ("Message", 1, true),
        b'S' => ("StreamStart", 2, false),
        b'E' => ("StreamStop", 2, false),
        b'c' => ("StreamCommit", 2, false),
        b'A' => ("StreamAbort", 2, false),
        b'b' => ("BeginPrepare", 3, false),
        b'P' => ("Prepare", 3, false),
        b'K' => ("CommitPrepared", 3, false),
        b'r' => ("RollbackPrepared", 3, false),
        b'p' => ("StreamPrepare", 3, false),
        _ => return None,
    };
    Some(MessageKind {
        name,
        min_version,
        stream_xid,
    })
}

fn tag_name(tag: u8) -> &'static str {
    message_kind(tag).map_or("unknown", |k| k.name)
}

/// `'X' (0x58)` for printable bytes, `0x01` otherwise.
fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}' (0x{b:02X})", b as char)
    } else {
        format!("0x{b:02X}")
    }
}

fn old_kind(marker: u8) -> OldKind {
    if marker == b'K' {
        OldKind::Key
    } else {
        OldKind::Full
    }
}

/// A cursor over one message; every read names what it expects for the error.
struct Reader {
    buf: Bytes,
    pos: usize,
    tag: u8,
}

impl Reader {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn invalid(&self, offset: usize, expected: &'static str, found: String) -> DecodeError {
        DecodeError::Invalid {
            tag: self.tag,
            offset,
            expected,
            found,
        }
    }

    /// The next `N` bytes, or a Truncated error naming `what`.
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes: Option<[u8; N]> = self
            .buf
            .get(self.pos..self.pos + N)
            .and_then(|b| b.try_into().ok());
        let bytes = bytes.ok_or(DecodeError::Truncated {
            tag: self.tag,
            offset: self.pos,
            expected: what,
            remaining: self.remaining(),
        })?;
        self.pos += N;
        Ok(bytes)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.array(what).map(u32::from_be_bytes)
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        self.array(what).map(i32::from_be_bytes)
    }

    fn lsn(&mut self, what: &'static str) -> Result<Lsn, DecodeError> {
        self.array(what).map(|b| Lsn(u64::from_be_bytes(b)))
    }

    fn ts(&mut self, what: &'static str) -> Result<PgTimestamp, DecodeError> {
        self.array(what).map(i64::from_be_bytes)
    }

    /// A byte that must be one of `allowed`.
    fn marker(&mut self, allowed: &[u8], what: &'static str) -> Result<u8, DecodeError> {
        let offset = self.pos;
        let b = self.u8(what)?;
        if allowed.contains(&b) {
            Ok(b)
        } else {
            Err(self.invalid(offset, what, show_byte(b)))
        }
    }

    /// A non-negative Int16 count.
    fn count16(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let n = i16::from_be_bytes(self.array(what)?);
        usize::try_from(n).map_err(|_| self.invalid(offset, what, format!("negative count {n}")))
    }

    /// A non-negative Int32 count or length.
    fn count32(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let offset = self.pos;
        let n = self.i32(what)?;
        usize::try_from(n).map_err(|_| self.invalid(offset, what, format!("negative value {n}")))
    }

    /// An Int32 length followed by that many bytes, as a zero-copy slice.
    fn sized(&mut self, len_what: &'static str, what: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.count32(len_what)?;
        if len > self.remaining() {
            return Err(DecodeError::Truncated {
                tag: self.tag,
                offset: self.pos,
                expected: what,
                remaining: self.remaining(),
            });
        }
        let bytes = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(bytes)
    }

    /// A NUL-terminated UTF-8 string.
    fn cstr(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let rest = &self.buf[self.pos..];
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::Truncated {
                tag: self.tag,
                offset: self.pos,
                expected: what,
                remaining: rest.len(),
            })?;
        let s = std::str::from_utf8(&rest[..len])
            .map_err(|e| self.invalid(self.pos, what, format!("invalid UTF-8 ({e})")))?
            .to_owned();
        self.pos += len + 1;
        Ok(s)
    }

    /// The fields the two-phase messages share after their flags: an LSN (`kind` = prepare
    /// or commit), the end LSN, a timestamp, the transaction id and the GID.
    fn prepared(&mut self, kind: &'static str) -> Result<(Lsn, Lsn, PgTimestamp, u32, String), DecodeError> {
        let (lsn_what, ts_what) = match kind {
            "commit" => ("an 8-byte commit LSN", "an 8-byte commit timestamp"),
            _ => ("an 8-byte prepare LSN", "an 8-byte prepare timestamp"),
        };
        Ok((
            self.lsn(lsn_what)?,
            self.lsn("an 8-byte end LSN")?,
            self.ts(ts_what)?,
            self.u32("a 4-byte transaction id")?,
            self.cstr("a NUL-terminated GID")?,
        ))
    }

    /// TupleData: an Int16 column count, then per column `n`, `u`, `t` or `b` (+ length, bytes).
    fn tuple(&mut self) -> Result<Tuple, DecodeError> {
        let count = self.count16("a 2-byte column count")?;
        let mut values = Vec::with_capacity(count.min(self.remaining()));
        for _ in 0..count {
            values.push(
                match self.marker(b"nutb", "a column value kind n, u, t or b")? {
                    b'n' => TupleValue::Null,
                    b'u' => TupleValue::Unchanged,
                    b't' => TupleValue::Text(
                        self.sized("a 4-byte column value length", "the column value")?,
                    ),
                    _ => TupleValue::Binary(
                        self.sized("a 4-byte column value length", "the column value")?,
                    ),
                },
            );
        }
        Ok(values)
    }

    fn relation(&mut self) -> Result<Relation, DecodeError> {
        let relid = self.u32("a 4-byte relation id")?;
        let namespace = self.cstr("a NUL-terminated relation namespace")?;
        let name = self.cstr("a NUL-terminated relation name")?;
        let replica_identity = self.u8("a 1-byte replica identity setting")?;
        let count = self.count16("a 2-byte column count")?;
        // A column takes at least 10 bytes: flags, an empty name, type OID and modifier.
        let mut columns = Vec::with_capacity(count.min(self.remaining() / 10));
        for _ in 0..count {
            columns.push(RelationColumn {
                flags: self.u8("a 1-byte column flags field")?,
                name: self.cstr("a NUL-terminated column name")?,
                type_oid: self.u32("a 4-byte column type OID")?,
                type_modifier: self.i32("a 4-byte column type modifier")?,
            });
        }
        Ok(Relation {
            relid,
            namespace,
            name,
            replica_identity,
            columns,
        })
    }

    /// Succeeds only if the whole message was consumed.
    fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                tag: self.tag,
                offset: self.pos,
                count,
            }),
        }
    }
}

#[cfg(test)]
#[path = "decode_tests/mod.rs"]
mod tests;
