//! Glue requests with pgcdc's retry policy, on a runtime of their own.
//!
//! Transient failures (throttling, 5xx, timeouts, connection errors) are retried with
//! exponential back-off and jitter for up to [`RETRY_FOR`], each logged; a service error
//! with a code (no such database, access denied, ...) is returned at once for the caller
//! to judge ([`Answer::Refused`]).

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_glue::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::error::{Error, Result};

/// How long transient failures of one request are retried before it fails.
pub const RETRY_FOR: Duration = Duration::from_secs(600);

/// A request's answer: its output, or a service error's code and message.
pub enum Answer<T> {
    Done(T),
    Refused { code: String, message: String },
}

/// Sends the request `send` makes, retrying transient failures. `what` names the request
/// in log lines and errors (`creating Glue table shop.public_orders`).
pub async fn call<T, E, R, Fut>(
    what: &str,
    retry_for: Duration,
    mut send: impl FnMut() -> Fut,
) -> Result<Answer<T>>
where
    Fut: Future<Output = std::result::Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        let err = match send().await {
            Ok(t) => return Ok(Answer::Done(t)),
            Err(e) => e,
        };
        let detail = DisplayErrorContext(&err).to_string();
        let transient = match &err {
            SdkError::ServiceError(se) => {
                let code = se.err().code().unwrap_or("").to_string();
                let throttled = matches!(
                    code.as_str(),
                    "ThrottlingException"
                        | "InternalServiceException"
                        | "OperationTimeoutException"
                        | "ConcurrentModificationException"
                        | "ServiceUnavailableException"
                        | "ResourceNotReadyException"
                );
                if !throttled && !code.is_empty() {
                    let message = se.err().message().unwrap_or(&detail).to_string();
                    return Ok(Answer::Refused { code, message });
                }
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
