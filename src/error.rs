//! Errors as the user sees them: one readable message, a hint how to fix it, and an exit code.
//!
//! Every error that reaches `main` is an [`Error`]. Its kind decides the exit code (SPEC 3):
//! configuration and usage problems exit 2, everything at run time exits 1. Messages never
//! contain passwords or keys (SPEC 2.9): connection strings are shown through
//! [`crate::source::conninfo::ConnInfo::redacted`].

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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn config(message: impl Into<String>) -> Error {
        Error { kind: ErrorKind::Config, message: message.into(), hint: None }
    }
    pub fn runtime(message: impl Into<String>) -> Error {
        Error { kind: ErrorKind::Runtime, message: message.into(), hint: None }
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

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::runtime(e.to_string())
    }
}

/// Adds context to any displayable error while turning it into a runtime [`Error`].
pub trait ResultExt<T> {
    fn runtime_ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> ResultExt<T> for std::result::Result<T, E> {
    fn runtime_ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::runtime(format!("{}: {e}", context())))
    }
}
