//! Ordinary SQL connections (catalog queries, setup, checks) through `tokio-postgres`, over
//! the same TLS negotiation as the replication connection.

use tokio_postgres::{Client, NoTls};

use super::conninfo::ConnInfo;
use super::tls;
use crate::error::{Error, Result};

/// Connects an ordinary session with pgcdc's session settings (UTC, ISO dates, hex bytea).
/// The connection task runs on the current tokio runtime until the client is dropped.
pub async fn connect(info: &ConnInfo) -> Result<Client> {
    let (client, connection) = open(info).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("SQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// A session's client and its connection future, which must be polled for the client to
/// make progress.
async fn open(
    info: &ConnInfo,
) -> Result<(Client, tokio_postgres::Connection<tls::PgStream, tokio_postgres::tls::NoTlsStream>)> {
    let stream = tls::connect(info).await?;
    info.sql_config().connect_raw(stream, NoTls).await.map_err(|e| describe_connect_error(info, &e))
}

/// [`connect`], with the connection driven inside the caller's task instead of a task of its
/// own: `work` gets the client, and the connection is polled by the same future as `work`
/// until `work` ends (then both are dropped and the session closes). A bulk reader such as
/// a full-load COPY then reads the socket on the thread that consumes the rows, without a
/// cross-thread wake-up per batch of messages. If the connection ends first, `work` sees
/// its requests fail as with [`connect`]. Blocking inside `work` (`block_in_place`) also
/// pauses the connection, which is what a consumer that stops reading does anyway.
pub async fn driven<T, F, Fut>(info: &ConnInfo, work: F) -> Result<T>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    use std::future::Future;
    use std::task::Poll;
    let (client, connection) = open(info).await?;
    let mut connection = Some(Box::pin(connection));
    let work = work(client);
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        if let Some(c) = connection.as_mut() {
            if let Poll::Ready(r) = c.as_mut().poll(cx) {
                if let Err(e) = r {
                    tracing::debug!("SQL connection ended: {e}");
                }
                connection = None;
            }
        }
        work.as_mut().poll(cx)
    })
    .await
}

/// Turns a connection error into a message that says what to fix, without the password.
pub fn describe_connect_error(info: &ConnInfo, e: &tokio_postgres::Error) -> Error {
    let (msg, code) = match e.as_db_error() {
        Some(db) => (db.message().to_string(), Some(db.code().code().to_string())),
        None => (error_chain(e), None),
    };
    if code.is_none() && info.password.is_none() && msg.contains("password missing") {
        return Error::runtime(format!(
            "cannot connect to {}: the server asks for a password for user {} but none is configured",
            info.redacted(),
            info.user
        ))
        .with_hint("put the password in source.url (postgres://user:${PGPASSWORD}@host/db) or set PGPASSWORD");
    }
    let err = Error::runtime(format!("cannot connect to {}: {msg}", info.redacted()));
    let err = if pg_error_is_transient(e) { err.retryable() } else { err };
    match code.as_deref() {
        Some("28P01") | Some("28000") => err.with_hint(
            "check the user and password (source.url or PGPASSWORD) and the server's pg_hba.conf",
        ),
        Some("3D000") => err.with_hint("the database does not exist: check the database name in source.url"),
        _ => err,
    }
}

/// `"{what}: {error with SQLSTATE}"` as a runtime error, retryable when the failure is
/// transient ([`pg_error_is_transient`]). `what` says what was being done (`"reading pg_class"`).
pub fn query_error(what: impl std::fmt::Display, e: &tokio_postgres::Error) -> Error {
    let mut err = Error::runtime(format!("{what}: {}", db_error_text(e)));
    if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
        err = err.with_hint(
            "the role in source.url lacks this privilege: GRANT it, or run `pgcdc setup --admin-url URL`, which grants SELECT on the published tables; `pgcdc check` lists what is missing",
        );
    }
    if pg_error_is_transient(e) {
        err.retryable()
    } else {
        err
    }
}

/// Whether a PostgreSQL client error is worth retrying (see [`crate::error`], "Retrying"):
/// the connection was closed, reset or timed out, or the server reported a connection
/// failure or a shutdown ([`sqlstate_is_transient`]).
pub fn pg_error_is_transient(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        Some(db) => sqlstate_is_transient(db.code().code()),
        None => e.is_closed() || crate::error::chain_is_transient(e),
    }
}

/// SQLSTATEs worth retrying: class 08 (connection exception), 57P01 (admin shutdown), 57P02
/// (crash shutdown), 57P03 (cannot connect now: the server is starting or in recovery).
pub fn sqlstate_is_transient(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// Formats a server error with its SQLSTATE, for messages.
pub fn db_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => error_chain(e),
    }
}

/// The error and its causes: tokio-postgres's own text is only the kind ("invalid
/// configuration", "error communicating with the server"); the cause says what happened.
fn error_chain(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.ends_with(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// All rows of a query as text values (simple query protocol).
pub async fn simple_rows(client: &tokio_postgres::Client, sql_text: &str) -> Result<Vec<Vec<Option<String>>>> {
    let msgs = client
        .simple_query(sql_text)
        .await
        .map_err(|e| Error::runtime(format!("{sql_text}: {}", db_error_text(&e))))?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::sqlstate_is_transient;

    #[test]
    fn connection_failures_and_shutdowns_are_transient_other_sqlstates_not() {
        for code in ["08000", "08003", "08006", "08001", "57P01", "57P02", "57P03"] {
            assert!(sqlstate_is_transient(code), "{code}");
        }
        // Authentication, missing objects, syntax, privileges, a slot in use: a person must act.
        for code in ["28P01", "3D000", "42P01", "42601", "42501", "55006", "57014"] {
            assert!(!sqlstate_is_transient(code), "{code}");
        }
    }
}
