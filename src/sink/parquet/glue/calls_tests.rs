//! The retry policy of Glue requests ([`super::call`], [`super::is_transient`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_glue::config::http::HttpResponse;
use aws_sdk_glue::error::{ErrorMetadata, SdkError};
use aws_sdk_glue::operation::get_table::GetTableError;

use super::*;

/// A service error as the SDK returns it: HTTP `status` with the error `code`.
fn service_error(status: u16, code: &str) -> SdkError<GetTableError, HttpResponse> {
    let meta = ErrorMetadata::builder()
        .code(code)
        .message("from the test")
        .build();
    SdkError::service_error(
        GetTableError::generic(meta),
        HttpResponse::new(status.try_into().unwrap(), "".into()),
    )
}

#[test]
fn every_5xx_429_and_throttling_code_is_transient_other_codes_not() {
    for (status, code) in [
        (500, "InternalFailure"),
        (500, "InternalServiceException"),
        (503, "ServiceUnavailable"),
        (502, "SomethingNew"),
        (429, "TooManyRequestsException"),
        (400, "ThrottlingException"),
        (400, "ConcurrentModificationException"),
        (400, ""),
    ] {
        assert!(is_transient(status, code), "{status} {code}");
    }
    for (status, code) in [
        (400, "AccessDeniedException"),
        (400, "EntityNotFoundException"),
        (400, "AlreadyExistsException"),
        (400, "InvalidInputException"),
        (403, "UnrecognizedClientException"),
    ] {
        assert!(!is_transient(status, code), "{status} {code}");
    }
}

/// Answers `errors` in turn, then `Ok(attempt)`; counts the attempts.
async fn answer_after(errors: Vec<(u16, &'static str)>) -> (Result<Answer<usize>>, usize) {
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let answer = call(
        "reading Glue table d.t",
        Duration::from_secs(30),
        move || {
            let n = a.fetch_add(1, Ordering::SeqCst);
            let e = errors.get(n).copied();
            async move {
                match e {
                    Some((status, code)) => Err(service_error(status, code)),
                    None => Ok(n),
                }
            }
        },
    )
    .await;
    (answer, attempts.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_generic_internal_failure_is_retried_until_the_request_succeeds() {
    let (answer, attempts) =
        answer_after(vec![(500, "InternalFailure"), (400, "ThrottlingException")]).await;
    assert!(matches!(answer, Ok(Answer::Done(2))));
    assert_eq!(attempts, 3);
}

#[tokio::test]
async fn access_denied_is_refused_at_once() {
    let (answer, attempts) = answer_after(vec![(400, "AccessDeniedException")]).await;
    match answer {
        Ok(Answer::Refused { code, message }) => {
            assert_eq!(code, "AccessDeniedException");
            assert_eq!(message, "from the test");
        }
        _ => panic!("not refused"),
    }
    assert_eq!(attempts, 1);
}

#[tokio::test]
async fn transient_failures_past_retry_for_are_one_readable_error() {
    let err = call(
        "adding partition date=load to Glue table d.t",
        Duration::ZERO,
        || async {
            let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
            Err::<(), SdkError<GetTableError, HttpResponse>>(SdkError::dispatch_failure(
                aws_sdk_glue::error::ConnectorError::io(Box::new(reset)),
            ))
        },
    )
    .await
    .err()
    .expect("gives up");
    let text = err.to_string();
    assert!(
        text.contains("adding partition date=load to Glue table d.t kept failing for"),
        "{text}"
    );
    assert!(text.contains("connection reset"), "{text}");
    assert!(!text.contains("DispatchFailure {"), "no debug dump: {text}");
}
