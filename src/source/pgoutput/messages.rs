//! The logical replication messages of the `pgoutput` plugin, protocol versions 1–4.
//!
//! See PostgreSQL's "Logical Replication Message Formats". Field names follow the docs.
//! Timestamps are microseconds since 2000-01-01 UTC as on the wire ([`crate::model::PgTimestamp`]).
//! Byte payloads are `Bytes` slices of the received buffer: decoding copies nothing.

use bytes::Bytes;

use crate::model::{Lsn, PgTimestamp, TupleValue};

/// TupleData: one value per column of the relation, in relation column order.
pub type Tuple = Vec<TupleValue>;

/// Which old tuple an Update or Delete carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OldKind {
    /// `K`: only the replica identity (key) columns; other columns are `Null`.
    Key,
    /// `O`: the whole old row (REPLICA IDENTITY FULL).
    Full,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationColumn {
    /// Bit 1: the column is part of the replica identity.
    pub flags: u8,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

impl RelationColumn {
    pub fn is_key(&self) -> bool {
        self.flags & 1 != 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    pub relid: u32,
    pub namespace: String,
    pub name: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PgOutputMessage {
    Begin { final_lsn: Lsn, commit_ts: PgTimestamp, xid: u32 },
    Commit { flags: u8, commit_lsn: Lsn, end_lsn: Lsn, commit_ts: PgTimestamp },
    Origin { commit_lsn: Lsn, name: String },
    /// `xid` is present only inside a stream (protocol v2+).
    Relation { xid: Option<u32>, relation: Relation },
    Type { xid: Option<u32>, oid: u32, namespace: String, name: String },
    Insert { xid: Option<u32>, relid: u32, new: Tuple },
    Update { xid: Option<u32>, relid: u32, old: Option<(OldKind, Tuple)>, new: Tuple },
    Delete { xid: Option<u32>, relid: u32, old: (OldKind, Tuple) },
    /// `options`: bit 1 CASCADE, bit 2 RESTART IDENTITY.
    Truncate { xid: Option<u32>, options: u8, relids: Vec<u32> },
    /// A logical decoding message (`pg_logical_emit_message`); flags bit 1 = transactional.
    Message { xid: Option<u32>, flags: u8, lsn: Lsn, prefix: String, content: Bytes },
    StreamStart { xid: u32, first_segment: bool },
    StreamStop,
    StreamCommit { xid: u32, flags: u8, commit_lsn: Lsn, end_lsn: Lsn, commit_ts: PgTimestamp },
    /// `abort_lsn`/`abort_ts` are sent only in protocol v4 with parallel streaming.
    StreamAbort { xid: u32, subxid: u32, abort_lsn: Option<Lsn>, abort_ts: Option<PgTimestamp> },
    BeginPrepare { prepare_lsn: Lsn, end_lsn: Lsn, prepare_ts: PgTimestamp, xid: u32, gid: String },
    Prepare { flags: u8, prepare_lsn: Lsn, end_lsn: Lsn, prepare_ts: PgTimestamp, xid: u32, gid: String },
    CommitPrepared { flags: u8, commit_lsn: Lsn, end_lsn: Lsn, commit_ts: PgTimestamp, xid: u32, gid: String },
    RollbackPrepared {
        flags: u8,
        prepare_end_lsn: Lsn,
        rollback_end_lsn: Lsn,
        prepare_ts: PgTimestamp,
        rollback_ts: PgTimestamp,
        xid: u32,
        gid: String,
    },
    StreamPrepare { flags: u8, prepare_lsn: Lsn, end_lsn: Lsn, prepare_ts: PgTimestamp, xid: u32, gid: String },
}

impl PgOutputMessage {
    /// The transaction id carried by a message sent inside a stream, if any.
    pub fn stream_xid(&self) -> Option<u32> {
        match self {
            PgOutputMessage::Relation { xid, .. }
            | PgOutputMessage::Type { xid, .. }
            | PgOutputMessage::Insert { xid, .. }
            | PgOutputMessage::Update { xid, .. }
            | PgOutputMessage::Delete { xid, .. }
            | PgOutputMessage::Truncate { xid, .. }
            | PgOutputMessage::Message { xid, .. } => *xid,
            _ => None,
        }
    }
}
