//! Glue requests with pgcdc's retry policy, on a runtime of their own.
//!
//! Transient failures (throttling, every 5xx and 429 whatever its code, timeouts, connection
//! errors, a lost answer) are retried with exponential back-off and jitter for up to
//! [`RETRY_FOR`], each logged with the request, the error code and how long it has been
//! failing ([`is_transient`]); any other service error (no such database, access denied,
//! already exists, ...) is returned at once for the caller to judge ([`Answer::Refused`]).
//! A retried request may have been done already (its answer was lost), so callers treat
//! `AlreadyExistsException` after a retry as success.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_glue::config::http::HttpResponse;
use aws_sdk_glue::error::{ProvideErrorMetadata, SdkError};

use crate::error::{Error, Result};

/// How long transient failures of one request are retried before it fails.
pub const RETRY_FOR: Duration = Duration::from_secs(600);

/// A request's answer: its output, or a service error's code and message.
pub enum Answer<T> {
    Done(T),
    Refused { code: String, message: String },
}

/// Whether a Glue service error (HTTP `status`, error `code`, empty when the answer had
/// none) is transient: every 5xx and 429 (AWS answers its generic `InternalFailure` and
/// `ServiceUnavailable` with those, not only Glue's own `InternalServiceException`), the
/// throttling and busy codes whatever the status, and an answer without a code.
pub fn is_transient(status: u16, code: &str) -> bool {
    status >= 500
        || status == 429
        || code.is_empty()
        || matches!(
            code,
            "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
                | "InternalServiceException"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "ServiceUnavailableException"
                | "OperationTimeoutException"
                | "RequestTimeout"
                | "RequestTimeoutException"
                | "ConcurrentModificationException"
                | "ResourceNotReadyException"
        )
}

/// Sends the request `send` makes, retrying transient failures ([`is_transient`]). `what`
/// names the request in log lines and errors (`creating Glue table shop.public_orders`).
/// An error: a non-service failure that is not transient, or transient failures that went
/// on for `retry_for`.
pub async fn call<T, E, Fut>(
    what: &str,
    retry_for: Duration,
    mut send: impl FnMut() -> Fut,
) -> Result<Answer<T>>
where
    Fut: Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        let err = match send().await {
            Ok(t) => return Ok(Answer::Done(t)),
            Err(e) => e,
        };
        let mut detail = crate::aws::error_causes(&err);
        let transient = match &err {
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or("").to_string();
                let status = se.raw().status().as_u16();
                let message = se.err().message().unwrap_or("").to_string();
                if !is_transient(status, &code) {
                    let message = if message.is_empty() { detail } else { message };
                    return Ok(Answer::Refused { code, message });
                }
                // One line, without the SDK's dump of the raw answer.
                detail = format!("{code} (HTTP {status}): {message}");
                true
            }
            SdkError::DispatchFailure(d) => !d.is_user(),
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
            _ => false,
        };
        if !transient {
            return Err(Error::runtime(format!("{what} failed: {detail}"))
                .with_hint("check [aws] region / endpoint_url and the AWS credentials"));
        }
        if started.elapsed() >= retry_for {
            return Err(Error::runtime(format!(
                "{what} kept failing for {:?}: {detail}",
                started.elapsed()
            ))
            .with_hint(
                "is the Glue endpoint reachable? the files are stored; the next run registers them",
            ));
        }
        tracing::warn!(failing_for = ?started.elapsed(), "{what} failed, retrying in {delay:?}: {detail}");
        tokio::time::sleep(crate::aws::jitter(delay)).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// The error of a refused request that the caller has no answer for.
pub fn refused(what: &str, code: &str, message: &str) -> Error {
    let hint = match code {
        "AccessDeniedException" => "the credentials need glue:GetDatabase, GetTable, CreateTable, UpdateTable, GetPartitions and CreatePartition",
        "EntityNotFoundException" => "create the Glue database first (aws glue create-database), or fix [catalog] glue_database",
        _ => "see the message from Glue",
    };
    Error::runtime(format!("{what} failed: {code}: {message}")).with_hint(hint)
}

#[cfg(test)]
#[path = "calls_tests.rs"]
mod tests;
