//! The S3 options of Parquet sinks (`storage_class`, `sse`, `kms_key_id`), checked when the
//! configuration is read. They reach the uploads as `crate::aws::S3Options`.

use super::{Location, ParquetSinkConfig};
use crate::error::{Error, Result};

/// Checks the S3 options of Parquet sink number `n`: they are allowed only on S3 targets,
/// `sse` is `AES256` or `aws:kms`, and `kms_key_id` goes with `aws:kms`.
pub fn check(n: usize, p: &ParquetSinkConfig) -> Result<()> {
    let is_s3 = matches!(p.location, Location::S3 { .. });
    for (set, key) in [
        (p.storage_class.is_some(), "storage_class"),
        (p.sse.is_some(), "sse"),
        (p.kms_key_id.is_some(), "kms_key_id"),
        (p.lock_lease.is_some(), "lock_lease"),
    ] {
        if set && !is_s3 {
            return Err(Error::config(format!(
                "sink {n} (parquet): `{key}` applies to S3 targets only ({})",
                p.location
            ))
            .with_hint(format!("remove `{key}`, or write to s3://bucket/prefix/")));
        }
    }
    match p.sse.as_deref() {
        None | Some("AES256") => {}
        Some("aws:kms") => {}
        Some(other) => {
            return Err(Error::config(format!(
                "sink {n} (parquet): sse = \"{other}\" is not known"
            ))
            .with_hint("use sse = \"AES256\" or sse = \"aws:kms\" (with kms_key_id)"))
        }
    }
    if p.kms_key_id.is_some() && p.sse.as_deref() != Some("aws:kms") {
        return Err(Error::config(format!(
            "sink {n} (parquet): kms_key_id needs sse = \"aws:kms\""
        ))
        .with_hint("add sse = \"aws:kms\" or remove kms_key_id"));
    }
    if p.lock_lease.is_some_and(|l| l < std::time::Duration::from_secs(3)) {
        return Err(Error::config(format!("sink {n} (parquet): lock_lease must be at least 3s"))
            .with_hint("the default, 60s, suits most targets"));
    }
    if let Some(c) = &p.storage_class {
        if c.is_empty() || !c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
            return Err(Error::config(format!(
                "sink {n} (parquet): storage_class = \"{c}\" is not an S3 storage class"
            ))
            .with_hint("e.g. STANDARD, STANDARD_IA, INTELLIGENT_TIERING, ONEZONE_IA, GLACIER_IR"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(url: &str, extra: &str) -> crate::error::Result<Config> {
        Config::parse(&format!(
            "[source]\nurl = \"postgres://u@h/db\"\n\n[[sink]]\nkind = \"parquet\"\nurl = \"{url}\"\n{extra}\n"
        ))
    }

    #[test]
    fn s3_options_are_checked() {
        parse(
            "s3://bucket-1/x/",
            "storage_class = \"STANDARD_IA\"\nsse = \"aws:kms\"\nkms_key_id = \"alias/k\"",
        )
        .unwrap();
        parse("s3://bucket-1/x/", "sse = \"AES256\"").unwrap();
        for (url, extra, says) in [
            (
                "/tmp/out",
                "sse = \"AES256\"",
                "`sse` applies to S3 targets only",
            ),
            (
                "s3://bucket-1/x/",
                "sse = \"aes\"",
                "sse = \"aes\" is not known",
            ),
            (
                "s3://bucket-1/x/",
                "sse = \"AES256\"\nkms_key_id = \"k\"",
                "kms_key_id needs sse = \"aws:kms\"",
            ),
            (
                "s3://bucket-1/x/",
                "storage_class = \"cheap\"",
                "is not an S3 storage class",
            ),
        ] {
            let e = parse(url, extra).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{extra}: {e}");
            assert!(e.message.contains(says), "{extra}: {e}");
        }
    }
}
