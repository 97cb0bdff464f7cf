//! Startup, authentication and the replication commands (IDENTIFY_SYSTEM,
//! CREATE/DROP_REPLICATION_SLOT, START_REPLICATION) over the simple query protocol.

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::stream::ReplicationStream;
use crate::error::{Error, Result};
use crate::model::Lsn;
use crate::source::conninfo::{ConnInfo, SESSION_SETTINGS};
use crate::source::quote::quote_ident;
use crate::source::tls::{self, PgStream};

/// A server error as received: SQLSTATE code, message, detail and hint.
#[derive(Debug, Clone, Default)]
pub struct ServerError {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ServerError {
    pub fn into_error(self, what: &str) -> Error {
        let mut msg = format!("{what}: {} (SQLSTATE {})", self.message, self.code);
        if let Some(d) = &self.detail {
            msg.push_str(&format!("; {d}"));
        }
        let transient = crate::source::sql::sqlstate_is_transient(&self.code);
        let err = Error::runtime(msg);
        let err = if transient { err.retryable() } else { err };
        match self.hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }
}

pub struct SystemInfo {
    pub system_id: String,
    pub timeline: u32,
    pub xlogpos: Lsn,
    pub dbname: Option<String>,
}

/// What to do with the snapshot of a newly created slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotAction {
    /// Export it for other sessions (`SET TRANSACTION SNAPSHOT`); valid while this connection
    /// stays idle.
    Export,
    NoExport,
}

pub struct SlotCreated {
    pub consistent_point: Lsn,
    pub snapshot_name: Option<String>,
}

/// A read buffer above this capacity is replaced after the message that grew it
/// ([`ReplicationConn::release_large_buffer`]).
const LARGE_READ_BUFFER: usize = 8 << 20;

/// A connected, authenticated walsender session. Owns its socket and read buffer.
pub struct ReplicationConn {
    pub(super) stream: PgStream,
    pub(super) buf: BytesMut,
    /// `server_version_num`, e.g. 150004.
    pub server_version: u32,
    info: ConnInfo,
}

impl ReplicationConn {
    /// Connects with `replication=database`, authenticates (trust, password, md5,
    /// SCRAM-SHA-256) and waits for ReadyForQuery.
    pub async fn connect(info: &ConnInfo) -> Result<ReplicationConn> {
        let stream = tls::connect(info).await?;
        let mut conn = ReplicationConn { stream, buf: BytesMut::with_capacity(1 << 16), server_version: 0, info: info.clone() };
        let mut params: Vec<(&str, &str)> = vec![
            ("user", info.user.as_str()),
            ("database", info.dbname.as_str()),
            ("replication", "database"),
            ("application_name", info.application_name.as_str()),
        ];
        params.extend(SESSION_SETTINGS.iter().copied());
        let mut out = BytesMut::new();
        frontend::startup_message(params, &mut out).map_err(io_err)?;
        conn.send(&out).await?;
        conn.authenticate().await?;
        loop {
            match conn.read_message().await? {
                Message::ParameterStatus(p) => {
                    if p.name().map_err(io_err)? == "server_version" {
                        conn.server_version = parse_server_version(p.value().map_err(io_err)?);
                    }
                }
                Message::BackendKeyData(_) | Message::NoticeResponse(_) => {}
                Message::ReadyForQuery(_) => break,
                Message::ErrorResponse(e) => return Err(conn.connect_error(server_error(&e))),
                _ => return Err(Error::runtime("unexpected message during connection startup")),
            }
        }
        Ok(conn)
    }

    fn connect_error(&self, e: ServerError) -> Error {
        let code = e.code.clone();
        let err = e.into_error(&format!("cannot open a replication connection to {}", self.info.redacted()));
        match code.as_str() {
            "28P01" => err.with_hint("check the user and password (source.url or PGPASSWORD)"),
            // 28000: pg_hba.conf rejects the connection; 42501: the role lacks REPLICATION
            // ("must be superuser or replication role to start walsender").
            "28000" | "42501" => err.with_hint(
                "the role needs the REPLICATION attribute (ALTER ROLE ... REPLICATION) and pg_hba.conf must allow it to connect",
            ),
            "3D000" => err.with_hint("the database does not exist: check the database name in source.url"),
            "53300" => err.with_hint("the server has no free connection or wal sender slot: raise max_wal_senders/max_connections"),
            _ => err,
        }
    }

    async fn authenticate(&mut self) -> Result<()> {
        let (user, pw) = (self.info.user.clone(), self.info.password.clone());
        let password = move || {
            pw.clone().ok_or_else(|| {
                Error::runtime(format!("the server asks for a password for user {user} but none is configured"))
                    .with_hint("put the password in source.url (use ${PGPASSWORD}) or set PGPASSWORD")
            })
        };
        match self.read_message().await? {
            Message::AuthenticationOk => return Ok(()),
            Message::AuthenticationCleartextPassword => {
                let pw = password()?;
                let mut out = BytesMut::new();
                frontend::password_message(pw.as_bytes(), &mut out).map_err(io_err)?;
                self.send(&out).await?;
            }
            Message::AuthenticationMd5Password(body) => {
                let pw = password()?;
                let hash = md5_hash(self.info.user.as_bytes(), pw.as_bytes(), body.salt());
                let mut out = BytesMut::new();
                frontend::password_message(hash.as_bytes(), &mut out).map_err(io_err)?;
                self.send(&out).await?;
            }
            Message::AuthenticationSasl(body) => {
                let pw = password()?;
                let mut mechanisms = body.mechanisms();
                let mut scram = false;
                while let Some(m) = mechanisms.next().map_err(io_err)? {
                    if m == sasl::SCRAM_SHA_256 {
                        scram = true;
                    }
                }
                if !scram {
                    return Err(Error::runtime("the server offers no SASL mechanism pgcdc supports (SCRAM-SHA-256)"));
                }
                let mut client = sasl::ScramSha256::new(pw.as_bytes(), sasl::ChannelBinding::unsupported());
                let mut out = BytesMut::new();
                frontend::sasl_initial_response(sasl::SCRAM_SHA_256, client.message(), &mut out).map_err(io_err)?;
                self.send(&out).await?;
                match self.read_message().await? {
                    Message::AuthenticationSaslContinue(b) => client.update(b.data()).map_err(io_err)?,
                    Message::ErrorResponse(e) => return Err(self.connect_error(server_error(&e))),
                    _ => return Err(Error::runtime("unexpected message during SCRAM authentication")),
                }
                let mut out = BytesMut::new();
                frontend::sasl_response(client.message(), &mut out).map_err(io_err)?;
                self.send(&out).await?;
                match self.read_message().await? {
                    Message::AuthenticationSaslFinal(b) => client.finish(b.data()).map_err(|e| {
                        Error::runtime(format!("SCRAM server signature did not verify: {e}"))
                    })?,
                    Message::ErrorResponse(e) => return Err(self.connect_error(server_error(&e))),
                    _ => return Err(Error::runtime("unexpected message during SCRAM authentication")),
                }
            }
            Message::ErrorResponse(e) => return Err(self.connect_error(server_error(&e))),
            _ => return Err(Error::runtime("the server asked for an authentication method pgcdc does not support")
                .with_hint("use trust, password, md5 or scram-sha-256 in pg_hba.conf")),
        }
        match self.read_message().await? {
            Message::AuthenticationOk => Ok(()),
            Message::ErrorResponse(e) => Err(self.connect_error(server_error(&e))),
            _ => Err(Error::runtime("unexpected message after authentication")),
        }
    }

    /// Runs one command with the simple query protocol; returns its rows as text.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).map_err(io_err)?;
        self.send(&out).await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.read_message().await? {
                Message::DataRow(row) => {
                    let buf = row.buffer();
                    let mut vals = Vec::new();
                    let mut ranges = row.ranges();
                    while let Some(r) = ranges.next().map_err(io_err)? {
                        vals.push(r.map(|r| String::from_utf8_lossy(&buf[r]).into_owned()));
                    }
                    rows.push(vals);
                }
                Message::ErrorResponse(e) => error = Some(server_error(&e)),
                Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e.into_error(&format!("`{}` failed", first_words(sql)))),
            None => Ok(rows),
        }
    }

    pub async fn identify_system(&mut self) -> Result<SystemInfo> {
        let rows = self.simple_query("IDENTIFY_SYSTEM").await?;
        let row = rows.first().ok_or_else(|| Error::runtime("IDENTIFY_SYSTEM returned no row"))?;
        let get = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        Ok(SystemInfo {
            system_id: get(0),
            timeline: get(1).parse().unwrap_or(0),
            xlogpos: get(2).parse().map_err(Error::runtime)?,
            dbname: row.get(3).cloned().flatten(),
        })
    }

    /// Creates a logical slot using pgoutput. A temporary slot disappears with the session.
    pub async fn create_slot(&mut self, slot: &str, temporary: bool, snapshot: SnapshotAction) -> Result<SlotCreated> {
        let temp = if temporary { " TEMPORARY" } else { "" };
        let sql = if self.server_version >= 150000 {
            let snap = match snapshot {
                SnapshotAction::Export => "export",
                SnapshotAction::NoExport => "nothing",
            };
            format!("CREATE_REPLICATION_SLOT {}{temp} LOGICAL pgoutput (SNAPSHOT '{snap}')", quote_ident(slot))
        } else {
            let snap = match snapshot {
                SnapshotAction::Export => "EXPORT_SNAPSHOT",
                SnapshotAction::NoExport => "NOEXPORT_SNAPSHOT",
            };
            format!("CREATE_REPLICATION_SLOT {}{temp} LOGICAL pgoutput {snap}", quote_ident(slot))
        };
        let rows = self.simple_query(&sql).await?;
        let row = rows.first().ok_or_else(|| Error::runtime("CREATE_REPLICATION_SLOT returned no row"))?;
        Ok(SlotCreated {
            consistent_point: row.get(1).cloned().flatten().unwrap_or_default().parse().map_err(Error::runtime)?,
            snapshot_name: row.get(2).cloned().flatten(),
        })
    }

    /// Starts streaming from `start` (the server uses the later of it and the slot's
    /// confirmed position). `options` are pgoutput options, already quoted as values.
    pub async fn start_replication(mut self, slot: &str, start: Lsn, options: &[(&str, String)]) -> Result<ReplicationStream> {
        let opts: Vec<String> = options
            .iter()
            .map(|(k, v)| format!("\"{k}\" '{}'", v.replace('\'', "''")))
            .collect();
        let sql = format!("START_REPLICATION SLOT {} LOGICAL {} ({})", quote_ident(slot), start, opts.join(", "));
        let mut out = BytesMut::new();
        frontend::query(&sql, &mut out).map_err(io_err)?;
        self.send(&out).await?;
        loop {
            if self.read_copy_both_response().await? {
                break;
            }
            match self.read_message().await? {
                Message::NoticeResponse(_) => {}
                Message::ErrorResponse(e) => {
                    let e = server_error(&e);
                    let code = e.code.clone();
                    let in_use = e.message.contains("is active for PID");
                    let err = e.into_error(&format!("cannot start replication from slot {slot}"));
                    return Err(if in_use {
                        err.with_hint("another process is reading this slot: stop it, or give this pgcdc its own source.slot")
                    } else if code == "42704" {
                        err.with_hint("create the slot and publication with `pgcdc setup -c FILE`")
                    } else {
                        err
                    });
                }
                _ => return Err(Error::runtime("unexpected answer to START_REPLICATION")),
            }
        }
        Ok(ReplicationStream::new(self))
    }

    pub(super) async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await.map_err(|e| Error::io("writing to PostgreSQL", &e))?;
        self.stream.flush().await.map_err(|e| Error::io("writing to PostgreSQL", &e))
    }

    /// Consumes a CopyBothResponse ('W') if it is the next message (postgres-protocol does not
    /// parse it). Returns false, consuming nothing, when another message comes first.
    async fn read_copy_both_response(&mut self) -> Result<bool> {
        loop {
            if self.buf.len() >= 5 {
                if self.buf[0] != b'W' {
                    return Ok(false);
                }
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
                if self.buf.len() > len {
                    let _ = self.buf.split_to(len + 1);
                    return Ok(true);
                }
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<()> {
        if self.buf.capacity() - self.buf.len() < 8192 {
            self.buf.reserve(1 << 16);
        }
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| {
                let err = Error::io("reading from PostgreSQL", &e);
                // A TLS connection cut without close_notify (a server killed, a crash
                // restart): as transient as a plain connection closed.
                if e.kind() == std::io::ErrorKind::UnexpectedEof { err.retryable() } else { err }
            })?;
        if n == 0 {
            return Err(Error::runtime("PostgreSQL closed the replication connection")
                .with_hint("see the server log; the server may have restarted or terminated the wal sender")
                .retryable());
        }
        Ok(())
    }

    /// Parses one complete message from the read buffer, without reading the socket.
    pub(super) fn try_parse(&mut self) -> Result<Option<Message>> {
        let msg = Message::parse(&mut self.buf).map_err(io_err)?;
        self.release_large_buffer();
        Ok(msg)
    }

    /// Reads one backend message. Cancel-safe: a partial message stays in the buffer.
    pub(super) async fn read_message(&mut self) -> Result<Message> {
        loop {
            if let Some(msg) = Message::parse(&mut self.buf).map_err(io_err)? {
                self.release_large_buffer();
                return Ok(msg);
            }
            self.fill().await?;
        }
    }

    /// After a message larger than [`LARGE_READ_BUFFER`] (a huge value) the read buffer
    /// grew to hold it, and would keep that allocation (and its resident pages) for the
    /// connection's life: the few bytes after the message move to a small buffer, and the
    /// large one is freed once the message handed out is dropped.
    fn release_large_buffer(&mut self) {
        if self.buf.capacity() > LARGE_READ_BUFFER && self.buf.len() < LARGE_READ_BUFFER / 4 {
            let mut small = BytesMut::with_capacity((1 << 16).max(self.buf.len()));
            small.extend_from_slice(&self.buf);
            self.buf = small;
        }
    }
}

pub(super) fn server_error(body: &postgres_protocol::message::backend::ErrorResponseBody) -> ServerError {
    let mut e = ServerError::default();
    let mut fields = body.fields();
    while let Ok(Some(f)) = fields.next() {
        let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'C' => e.code = v,
            b'M' => e.message = v,
            b'D' => e.detail = Some(v),
            b'H' => e.hint = Some(v),
            _ => {}
        }
    }
    e
}

pub(super) fn io_err(e: std::io::Error) -> Error {
    Error::runtime(format!("protocol error talking to PostgreSQL: {e}"))
}

fn parse_server_version(v: &str) -> u32 {
    // "15.4 (Debian 15.4-1)" -> 150004; "16beta1" -> 160000; "9.6.2" -> 90602
    let version = v.split_whitespace().next().unwrap_or("");
    let mut nums = Vec::new();
    for part in version.split('.') {
        let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
        match digits.parse::<u32>() {
            Ok(n) => nums.push(n),
            Err(_) => break,
        }
        if digits.len() < part.len() {
            break; // "16beta1": what follows is not a minor version
        }
    }
    match nums.as_slice() {
        [major, minor, ..] if *major >= 10 => major * 10000 + minor,
        [major, minor, patch, ..] => major * 10000 + minor * 100 + patch,
        [major, minor] => major * 10000 + minor * 100,
        [major] => major * 10000,
        _ => 0,
    }
}

fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_version_parses() {
        assert_eq!(super::parse_server_version("15.18 (Debian 15.18-0+deb12u1)"), 150018);
        assert_eq!(super::parse_server_version("16beta1"), 160000);
        assert_eq!(super::parse_server_version("9.6.2"), 90602);
    }

    #[test]
    fn server_errors_are_retryable_only_for_connection_failures_and_shutdowns() {
        let err = |code: &str| super::ServerError {
            code: code.into(),
            message: "m".into(),
            detail: None,
            hint: None,
        };
        let shutdown = err("57P01").into_error("START_REPLICATION");
        assert!(shutdown.is_retryable());
        assert_eq!(shutdown.message, "START_REPLICATION: m (SQLSTATE 57P01)");
        assert!(!err("55006").into_error("START_REPLICATION").is_retryable());
    }
}
