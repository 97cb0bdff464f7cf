//! The CopyBoth phase: XLogData and keepalives in, standby status updates out.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use super::conn::{io_err, server_error, ReplicationConn};
use crate::error::{Error, Result};
use crate::model::Lsn;

#[derive(Debug)]
pub enum StreamEvent {
    /// One pgoutput message. `wal_start` is the LSN of the WAL record it comes from.
    XLogData { wal_start: Lsn, wal_end: Lsn, data: Bytes },
    /// Primary keepalive: `wal_end` is the server's send position; answer at once when
    /// `reply_requested`.
    Keepalive { wal_end: Lsn, reply_requested: bool },
}

/// How long [`ReplicationStream::close`] waits for the server to answer its CopyDone.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A running logical replication stream. Owns the connection.
pub struct ReplicationStream {
    conn: ReplicationConn,
    ended: bool,
}

impl ReplicationStream {
    pub(super) fn new(conn: ReplicationConn) -> Self {
        ReplicationStream { conn, ended: false }
    }

    /// The next event, or `None` once the server ended the copy. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<StreamEvent>> {
        loop {
            if self.ended {
                return Ok(None);
            }
            let msg = self.conn.read_message().await?;
            if let Some(ev) = self.interpret(msg)? {
                return Ok(Some(ev));
            }
        }
    }

    /// The next event if one is already complete in the read buffer; never waits.
    pub fn try_next_buffered(&mut self) -> Result<Option<StreamEvent>> {
        while !self.ended {
            let Some(msg) = self.conn.try_parse()? else { return Ok(None) };
            if let Some(ev) = self.interpret(msg)? {
                return Ok(Some(ev));
            }
        }
        Ok(None)
    }

    fn interpret(&mut self, msg: Message) -> Result<Option<StreamEvent>> {
        match msg {
            Message::CopyData(body) => {
                let mut data = body.into_bytes();
                if data.is_empty() {
                    return Ok(None);
                }
                match data.get_u8() {
                    b'w' if data.len() >= 24 => {
                        let wal_start = Lsn(data.get_u64());
                        let wal_end = Lsn(data.get_u64());
                        let _send_time = data.get_i64();
                        Ok(Some(StreamEvent::XLogData { wal_start, wal_end, data }))
                    }
                    b'k' if data.len() >= 17 => {
                        let wal_end = Lsn(data.get_u64());
                        let _send_time = data.get_i64();
                        let reply_requested = data.get_u8() == 1;
                        Ok(Some(StreamEvent::Keepalive { wal_end, reply_requested }))
                    }
                    other => Err(Error::runtime(format!("unexpected replication message {other:#x}"))),
                }
            }
            Message::CopyDone => {
                self.ended = true;
                Ok(None)
            }
            Message::ErrorResponse(e) => Err(server_error(&e).into_error("replication stream failed")),
            Message::NoticeResponse(_) | Message::ParameterStatus(_) => Ok(None),
            // The server ends the copy on its own (a walsender stopping at shutdown): what
            // follows the copy means the stream is over.
            Message::CommandComplete(_) | Message::ReadyForQuery(_) => {
                self.ended = true;
                Ok(None)
            }
            other => Err(Error::runtime(format!("unexpected message in the replication stream ({})", message_name(&other)))),
        }
    }

    /// Sends a standby status update. `flush` is what the slot may treat as durable.
    pub async fn send_status(&mut self, write: Lsn, flush: Lsn, apply: Lsn, reply: bool) -> Result<()> {
        let mut body = BytesMut::with_capacity(34);
        body.put_u8(b'r');
        body.put_u64(write.0);
        body.put_u64(flush.0);
        body.put_u64(apply.0);
        body.put_i64(now_pg_micros());
        body.put_u8(reply as u8);
        let mut out = BytesMut::new();
        frontend::CopyData::new(&body[..]).map_err(io_err)?.write(&mut out);
        self.conn.send(&out).await
    }

    /// Ends the copy politely: CopyDone, then, once the server has answered it (at most
    /// [`CLOSE_WAIT`]), Terminate. The walsender handles its client's messages in order, so
    /// when it answers, the status update sent before the CopyDone has moved the slot: the
    /// slot shows the final position by the time pgcdc exits. Errors are ignored: the
    /// positions were already sent, and the next run starts from what the slot holds.
    pub async fn close(mut self) {
        let mut out = BytesMut::new();
        frontend::copy_done(&mut out);
        if self.conn.send(&out).await.is_ok() {
            let _ = tokio::time::timeout(CLOSE_WAIT, async {
                // XLogData still in flight, the server's CopyDone and CommandComplete, then
                // ReadyForQuery.
                while !matches!(self.conn.read_message().await, Ok(Message::ReadyForQuery(_)) | Err(_)) {}
            })
            .await;
        }
        let mut out = BytesMut::new();
        frontend::terminate(&mut out);
        let _ = self.conn.send(&out).await;
    }
}

fn now_pg_micros() -> i64 {
    crate::time_fmt::now_unix_micros() - crate::model::PG_EPOCH_UNIX_SECS * 1_000_000
}

/// The protocol name of a backend message, for errors.
fn message_name(m: &Message) -> &'static str {
    match m {
        Message::AuthenticationOk | Message::AuthenticationCleartextPassword | Message::AuthenticationMd5Password(_) => "Authentication",
        Message::BackendKeyData(_) => "BackendKeyData",
        Message::BindComplete => "BindComplete",
        Message::CloseComplete => "CloseComplete",
        Message::CopyInResponse(_) => "CopyInResponse",
        Message::CopyOutResponse(_) => "CopyOutResponse",
        Message::DataRow(_) => "DataRow",
        Message::EmptyQueryResponse => "EmptyQueryResponse",
        Message::NoData => "NoData",
        Message::NotificationResponse(_) => "NotificationResponse",
        Message::ParameterDescription(_) => "ParameterDescription",
        Message::ParseComplete => "ParseComplete",
        Message::PortalSuspended => "PortalSuspended",
        Message::RowDescription(_) => "RowDescription",
        _ => "another message",
    }
}
