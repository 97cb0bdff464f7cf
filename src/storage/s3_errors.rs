//! How S3 requests fail (see [`super::s3`], "Errors and retries"): every SDK error is
//! classified once into a [`Failure`]: transient (retried with back-off by
//! `Target::retry`), a failed precondition (a refused conditional put), a missing key, or a
//! permanent error with a hint that says what to fix. Messages never contain credentials.

use std::sync::atomic::Ordering;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::s3::Target;
use super::{refused, PutMode};
use crate::error::Error;

/// How a request failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// Transient: the same request may succeed later.
    Retry(Error),
    /// `412 Precondition Failed` (or `409 ConditionalRequestConflict`).
    Precondition,
    /// `404` of a key (NoSuchKey, or a HEAD's NotFound).
    NotFound,
    /// Permanent.
    Fail(Error),
}

impl Failure {
    /// The error to report; `refused`/`not found` become `refused` for `key`.
    pub fn into_error(self, target: &Target, key: &str, mode: &PutMode<'_>) -> Error {
        match self {
            Failure::Retry(e) | Failure::Fail(e) => e,
            Failure::Precondition | Failure::NotFound => refused(&target.describe(), key, mode),
        }
    }
}

/// The hint when the credential chain found nothing.
const NO_CREDENTIALS: &str =
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an instance/task role";

/// Sorts an SDK error into transient (retried), not found, refused, or permanent.
pub(super) fn classify<E>(
    t: &Target,
    what: &str,
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let target = t.describe();
    let detail = crate::aws::error_causes(&e);
    let msg = |m: &str| format!("{what} ({target}): {m}");
    match &e {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            Failure::Retry(Error::runtime(msg(&detail)).retryable())
        }
        SdkError::DispatchFailure(d) if d.is_user() => Failure::Fail(Error::runtime(msg(&detail))),
        SdkError::DispatchFailure(_)
            if detail.contains("no credentials") || detail.contains("credential provider") =>
        {
            let err = Error::runtime(msg(&format!("no AWS credentials: {detail}")));
            if t.reached.load(Ordering::Relaxed) {
                Failure::Retry(err.retryable())
            } else {
                Failure::Fail(err.with_hint(NO_CREDENTIALS))
            }
        }
        SdkError::DispatchFailure(_) => {
            if t.reached.load(Ordering::Relaxed) {
                Failure::Retry(
                    Error::runtime(msg(&format!("cannot reach the endpoint: {detail}")))
                        .retryable(),
                )
            } else {
                Failure::Fail(Error::runtime(msg(&format!("cannot reach the S3 endpoint: {detail}"))).with_hint(
                    "check [aws] endpoint_url / AWS_ENDPOINT_URL, the network and HTTPS_PROXY/NO_PROXY",
                ))
            }
        }
        SdkError::ServiceError(se) => {
            t.reached.store(true, Ordering::Relaxed);
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("").to_string();
            let text = if code.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("{code} (HTTP {status})")
            };
            match (status, code.as_str()) {
                (412, _) | (409, "ConditionalRequestConflict") => Failure::Precondition,
                (404, "NoSuchBucket") => Failure::Fail(
                    Error::runtime(msg(&format!("the bucket `{}` does not exist", t.bucket)))
                        .with_hint("create the bucket first, or fix the bucket in the sink url"),
                ),
                (404, _) => Failure::NotFound,
                (500..=599, _) | (_, "SlowDown" | "Throttling" | "ThrottlingException" | "RequestTimeout" | "InternalError") => {
                    Failure::Retry(Error::runtime(msg(&text)).retryable())
                }
                (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken") => Failure::Fail(
                    Error::runtime(msg(&format!("the credentials were rejected: {text}")))
                        .with_hint("check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_PROFILE, role); pgcdc uses the SDK's standard chain"),
                ),
                (301, _) | (_, "PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException") => {
                    Failure::Fail(
                        Error::runtime(msg(&format!("the bucket is in another region: {text}")))
                            .with_hint("set [aws] region (or AWS_REGION) to the bucket's region"),
                    )
                }
                (403, _) => Failure::Fail(
                    Error::runtime(msg(&format!("access denied: {text}")))
                        .with_hint("grant s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on the bucket and prefix"),
                ),
                _ => Failure::Fail(Error::runtime(msg(&detail))),
            }
        }
        _ => {
            let m = msg(&detail);
            if detail.contains("credentials") {
                Failure::Fail(Error::runtime(m).with_hint(NO_CREDENTIALS))
            } else {
                Failure::Fail(Error::runtime(m))
            }
        }
    }
}

/// A plain error out of a [`Failure`] that has no condition attached.
pub(super) fn plain(f: Failure, what: &str, t: &Target) -> Error {
    match f {
        Failure::Retry(e) | Failure::Fail(e) => e,
        Failure::Precondition => {
            Error::runtime(format!("{what} ({}): precondition failed", t.describe()))
        }
        Failure::NotFound => Error::runtime(format!("{what} ({}): not found", t.describe())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use aws_sdk_s3::config::http::HttpResponse;
    use aws_sdk_s3::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_s3::operation::put_object::PutObjectError;
    use aws_sdk_s3::primitives::SdkBody;

    use super::*;

    fn target(reached: bool) -> Target {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .build();
        Target {
            client: aws_sdk_s3::Client::from_conf(conf),
            bucket: "b-1".into(),
            prefix: "p/".into(),
            opts: Default::default(),
            reached: Arc::new(AtomicBool::new(reached)),
        }
    }

    fn service(status: u16, code: &str) -> SdkError<PutObjectError, HttpResponse> {
        let err = PutObjectError::generic(ErrorMetadata::builder().code(code).message("m").build());
        SdkError::service_error(
            err,
            HttpResponse::new(status.try_into().unwrap(), SdkBody::empty()),
        )
    }

    fn kind(f: &Failure) -> &'static str {
        match f {
            Failure::Retry(_) => "retry",
            Failure::Precondition => "precondition",
            Failure::NotFound => "not found",
            Failure::Fail(_) => "fail",
        }
    }

    #[test]
    fn transient_failures_are_retried_and_permanent_ones_explained() {
        let t = target(true);
        for (status, code, want, says) in [
            (503, "SlowDown", "retry", "SlowDown (HTTP 503)"),
            (500, "InternalError", "retry", "HTTP 500"),
            (400, "RequestTimeout", "retry", "RequestTimeout"),
            (412, "PreconditionFailed", "precondition", ""),
            (409, "ConditionalRequestConflict", "precondition", ""),
            (404, "NoSuchKey", "not found", ""),
            (
                404,
                "NoSuchBucket",
                "fail",
                "the bucket `b-1` does not exist",
            ),
            (403, "AccessDenied", "fail", "access denied"),
            (
                403,
                "InvalidAccessKeyId",
                "fail",
                "the credentials were rejected",
            ),
            (
                403,
                "SignatureDoesNotMatch",
                "fail",
                "the credentials were rejected",
            ),
            (301, "PermanentRedirect", "fail", "another region"),
            (
                400,
                "AuthorizationHeaderMalformed",
                "fail",
                "another region",
            ),
        ] {
            let f = classify(&t, "writing k", service(status, code));
            assert_eq!(kind(&f), want, "{status} {code}: {f:?}");
            if let Failure::Retry(e) | Failure::Fail(e) = &f {
                assert!(
                    e.message.contains(says) && e.message.contains("s3://b-1/p/"),
                    "{status} {code}: {e}"
                );
                assert_eq!(e.is_retryable(), want == "retry");
                assert_eq!(e.hint.is_some(), want == "fail", "{status} {code}: {e}");
            }
        }
    }

    #[test]
    fn a_connection_failure_is_transient_only_once_the_endpoint_answered() {
        let io = || {
            SdkError::<PutObjectError, HttpResponse>::dispatch_failure(ConnectorError::io(
                Box::new(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "refused",
                )),
            ))
        };
        let f = classify(&target(false), "writing k", io());
        assert!(
            matches!(&f, Failure::Fail(e) if e.message.contains("cannot reach the S3 endpoint") && e.hint.is_some()),
            "{f:?}"
        );
        assert_eq!(kind(&classify(&target(true), "writing k", io())), "retry");
        let timeout = SdkError::<PutObjectError, HttpResponse>::timeout_error("slow");
        assert_eq!(
            kind(&classify(&target(false), "writing k", timeout)),
            "retry"
        );
    }
}
