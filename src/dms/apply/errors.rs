//! DMS API errors as one readable message with a hint: the call and the object, what DMS
//! said, and what to do about it.

use aws_sdk_databasemigration::error::{ProvideErrorMetadata, SdkError};

use crate::error::Error;

/// Whether `e` says the object does not exist (DMS answers a Describe… with an empty
/// filter match as `ResourceNotFoundFault`).
pub fn is_not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code().is_some_and(|c| c.starts_with("ResourceNotFound"))
}

/// The error of DMS call `op` on object `id`. Missing permissions and invalid settings are
/// configuration errors (exit 2: a person must change the role or the configuration); a
/// resource in the wrong state and anything else are runtime errors.
pub fn dms_error<E, R>(op: &str, id: &str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    let code = e.code().unwrap_or_default().to_string();
    let said = e
        .message()
        .map(String::from)
        .unwrap_or_else(|| crate::aws::error_causes(&e));
    if code.starts_with("AccessDenied") || code == "UnauthorizedOperation" {
        return Error::config(format!("DMS {op} of {id}: access denied ({said})")).with_hint(
            format!("allow dms:{op} (and dms:Describe*) to the AWS identity pgcdc runs as"),
        );
    }
    if code.starts_with("InvalidParameter") || code == "ValidationException" {
        return Error::config(format!("DMS {op} of {id}: invalid settings: {said}")).with_hint(
            "fix the [dms] section or the sink; `pgcdc dms plan` shows the documents sent",
        );
    }
    if code == "InvalidResourceStateFault" {
        return Error::runtime(format!("DMS {op} of {id}: not possible in its current state: {said}"))
            .with_hint("stop the task (aws dms stop-replication-task) or wait until it is ready, then run apply again");
    }
    if code.is_empty() {
        return Error::runtime(format!("DMS {op} of {id}: {said}"))
            .with_hint("check [aws] endpoint_url / region and the network");
    }
    Error::runtime(format!("DMS {op} of {id}: {code}: {said}"))
}
