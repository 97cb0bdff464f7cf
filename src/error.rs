//! Errors as the user sees them: one readable message, a hint how to fix it, and an exit code.
//!
//! Every error that reaches `main` is an [`Error`]. Its kind decides the exit code (SPEC 3):
//! configuration and usage problems exit 2, everything at run time exits 1. Messages never
//! contain passwords or keys (SPEC 2.9): connection strings are shown through
//! [`crate::source::conninfo::ConnInfo::redacted`].
//!
//! An I/O error always says what it concerns (the file, directory or connection): there is no
//! `From<std::io::Error>`, so a bare `?` on one does not compile; use [`Error::io`] or
//! [`ResultExt::runtime_ctx`].
//!
//! # Retrying
//!
//! [`Error::is_retryable`] tells a caller whether the *same* operation, repeated after a pause
//! and without any change by a person, may succeed: the failure was transient (a connection to
//! PostgreSQL reset, closed or timed out, the server shutting down or not yet accepting
//! connections, an I/O call interrupted, would block, timed out). It is false for everything
//! else, including every configuration error, and false is the safe default: an error not
//! known to be transient is reported, not retried. Sinks writing to remote targets (S3,
//! Kinesis) retry with back-off only errors for which it is true, and mark their own
//! transient failures (throttling, 5xx) with [`Error::retryable`]. The flag never changes the
//! message or the exit code.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad configuration or command line: exit code 2.
    Config,
    /// Anything that failed while running: exit code 1.
    Runtime,
}

#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub hint: Option<String>,
    /// See the module documentation, "Retrying".
    retryable: bool,
    /// See [`Error::unreachable`].
    unreachable: bool,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn config(message: impl Into<String>) -> Error {
        Error { kind: ErrorKind::Config, message: message.into(), hint: None, retryable: false, unreachable: false }
    }
    pub fn runtime(message: impl Into<String>) -> Error {
        Error { kind: ErrorKind::Runtime, message: message.into(), hint: None, retryable: false, unreachable: false }
    }
    /// A runtime error about an I/O failure: `"{context}: {e}"`, where the context names the
    /// file, directory or peer (`"creating /data/out/_pgcdc"`). Retryable when the error's
    /// kind is transient ([`io_is_transient`]).
    pub fn io(context: impl fmt::Display, e: &std::io::Error) -> Error {
        let err = Error::runtime(format!("{context}: {e}"));
        if io_is_transient(e) {
            err.retryable()
        } else {
            err
        }
    }
    /// Marks the error as transient: repeating the operation may succeed (module docs).
    pub fn retryable(mut self) -> Error {
        self.retryable = true;
        self
    }
    /// Whether repeating the failed operation after a pause may succeed (module docs).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
    /// Marks a connection the server did not answer at all (refused, no such socket).
    /// [`Error::is_retryable`] stays false: at start a wrong address stays wrong. Only a
    /// caller that reached the same server before in this run (a restart, a failover)
    /// treats it as transient.
    pub fn unreachable(mut self) -> Error {
        self.unreachable = true;
        self
    }
    /// See [`Error::unreachable`].
    pub fn is_unreachable(&self) -> bool {
        self.unreachable
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }
    /// Prefixes the message with what was being done: `"{context}: {message}"`.
    pub fn context(mut self, context: impl fmt::Display) -> Error {
        self.message = format!("{context}: {}", self.message);
        self
    }
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::Config => 2,
            ErrorKind::Runtime => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Whether an I/O error is transient: interrupted, would block, timed out, or a connection
/// reset, aborted, broken or not connected. Not: a refused connection (a wrong port stays
/// wrong), a missing file, a permission problem, a full disk.
pub fn io_is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::Interrupted
            | K::WouldBlock
            | K::TimedOut
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::NotConnected
    )
}

/// Whether `e` or any error in its `source()` chain is a transient I/O error
/// ([`io_is_transient`]): how errors of client libraries that wrap their socket errors are
/// classified.
pub fn chain_is_transient(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            // An io::Error wrapping another error reports that error's causes as its source,
            // not the error itself.
            if io_is_transient(io) || io.get_ref().is_some_and(|inner| chain_is_transient(inner)) {
                return true;
            }
        }
        next = err.source();
    }
    false
}

/// Adds context to any displayable error while turning it into a runtime [`Error`].
pub trait ResultExt<T> {
    /// `"{context}: {error}"`; the context says what was done to what (`"reading /x/y.json"`).
    /// An `std::io::Error` is classified as by [`Error::io`].
    fn runtime_ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display + 'static> ResultExt<T> for std::result::Result<T, E> {
    fn runtime_ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| match (&e as &dyn std::any::Any).downcast_ref::<std::io::Error>() {
            Some(io) => Error::io(context(), io),
            None => Error::runtime(format!("{}: {e}", context())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error as IoError, ErrorKind as K};

    #[test]
    fn io_errors_name_what_they_concern_and_say_if_transient() {
        let e = Error::io("reading /data/x.json", &IoError::from(K::NotFound));
        assert!(e.message.starts_with("reading /data/x.json: "), "{e}");
        assert!(!e.is_retryable());
        assert_eq!(e.exit_code(), 1);
        for kind in [K::Interrupted, K::WouldBlock, K::TimedOut, K::ConnectionReset, K::BrokenPipe] {
            assert!(Error::io("x", &IoError::from(kind)).is_retryable(), "{kind:?}");
        }
        for kind in [K::PermissionDenied, K::ConnectionRefused, K::InvalidData, K::UnexpectedEof] {
            assert!(!Error::io("x", &IoError::from(kind)).is_retryable(), "{kind:?}");
        }
    }

    #[test]
    fn runtime_ctx_classifies_io_errors_only() {
        let r: std::result::Result<(), IoError> = Err(IoError::from(K::TimedOut));
        let e = r.runtime_ctx(|| "writing /out/f".into()).unwrap_err();
        assert!(e.is_retryable() && e.message.starts_with("writing /out/f: "), "{e}");
        let r: std::result::Result<(), String> = Err("timed out".into());
        let e = r.runtime_ctx(|| "writing /out/f".into()).unwrap_err();
        assert!(!e.is_retryable());
        assert_eq!(e.message, "writing /out/f: timed out");
    }

    #[test]
    fn retryable_is_explicit_and_kept_through_context_and_hint() {
        assert!(!Error::runtime("x").is_retryable());
        assert!(!Error::config("x").is_retryable());
        let e = Error::runtime("throttled").retryable().with_hint("h").context("putting s3://b/k");
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "putting s3://b/k: throttled\n  hint: h");
    }

    #[test]
    fn transient_causes_are_found_in_the_source_chain() {
        let inner = IoError::from(K::ConnectionReset);
        let outer = IoError::other(inner);
        assert!(chain_is_transient(&outer));
        assert!(!chain_is_transient(&IoError::from(K::NotFound)));
        let e = Error::runtime("x");
        assert!(!chain_is_transient(&e));
    }
}
