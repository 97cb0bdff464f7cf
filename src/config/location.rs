//! [`Location`]: where a sink (or, later, the progress store) keeps its objects, parsed once
//! from its `url` when the configuration is read. Every other part of pgcdc takes a
//! `Location`, never the URL text.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// A target's root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A local directory: `file:///absolute/path`, or a plain path (relative to the working
    /// directory).
    Local(PathBuf),
    /// `s3://bucket/prefix/`. `prefix` has no leading `/` and ends with `/` unless it is
    /// empty (the bucket's root), so keys are `prefix + key`.
    S3 { bucket: String, prefix: String },
}

impl Default for Location {
    /// The working directory; only a placeholder until [`Location::parse`] fills it in.
    fn default() -> Location {
        Location::Local(PathBuf::from("."))
    }
}

impl Location {
    /// Parses a sink URL. Errors are configuration errors with a hint (exit 2).
    pub fn parse(url: &str) -> Result<Location> {
        let url = url.trim();
        if url.is_empty() {
            return Err(Error::config("`url` is empty").with_hint("write file:///absolute/path or s3://bucket/prefix/"));
        }
        if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(Error::config(format!("`{url}` is not an absolute file:// URL"))
                    .with_hint("write file:///absolute/path (three slashes)"));
            }
            return Ok(Location::Local(PathBuf::from(rest)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            check_bucket(bucket, url)?;
            let prefix = prefix.trim_start_matches('/');
            if prefix.split('/').any(|s| s == "." || s == "..") || prefix.contains("//") {
                return Err(Error::config(format!("`{url}`: the prefix has an empty, `.` or `..` segment"))
                    .with_hint("write s3://bucket/some/prefix/"));
            }
            let prefix = if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") };
            return Ok(Location::S3 { bucket: bucket.to_string(), prefix });
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(Error::config(format!("unsupported URL scheme `{scheme}://` in `{url}`"))
                .with_hint("use file:///path, a plain directory path, or s3://bucket/prefix/"));
        }
        Ok(Location::Local(PathBuf::from(url)))
    }

    /// The local directory, for a local target.
    pub fn local_dir(&self) -> Option<&PathBuf> {
        match self {
            Location::Local(p) => Some(p),
            Location::S3 { .. } => None,
        }
    }
}

/// S3's bucket naming rules (3–63 characters of lower-case letters, digits, `.` and `-`,
/// starting and ending with a letter or digit), so a typo fails here and not at the first
/// upload.
fn check_bucket(bucket: &str, url: &str) -> Result<()> {
    let ok_chars = bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if (3..=63).contains(&bucket.len()) && ok_chars && ends_ok(bucket.bytes().next()) && ends_ok(bucket.bytes().last()) {
        return Ok(());
    }
    Err(Error::config(format!("`{url}`: `{bucket}` is not a valid S3 bucket name"))
        .with_hint("bucket names have 3-63 lower-case letters, digits, dots and hyphens: s3://my-bucket/prefix/"))
}

impl fmt::Display for Location {
    /// `file:///abs/path` (a relative path as written), or `s3://bucket/prefix/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) if p.is_absolute() => write!(f, "file://{}", p.display()),
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_one_location_type() {
        assert_eq!(Location::parse("file:///data/out").unwrap(), Location::Local("/data/out".into()));
        assert_eq!(Location::parse("out/dir").unwrap(), Location::Local("out/dir".into()));
        assert_eq!(
            Location::parse("s3://my-bucket/cdc").unwrap(),
            Location::S3 { bucket: "my-bucket".into(), prefix: "cdc/".into() }
        );
        assert_eq!(Location::parse("s3://my-bucket").unwrap(), Location::S3 { bucket: "my-bucket".into(), prefix: "".into() });
        assert_eq!(Location::parse("s3://my-bucket/a/b/").unwrap().to_string(), "s3://my-bucket/a/b/");
        assert_eq!(Location::parse("file:///data/out").unwrap().to_string(), "file:///data/out");
    }

    #[test]
    fn bad_urls_say_what_to_write() {
        for (url, says) in [
            ("", "`url` is empty"),
            ("file://relative", "not an absolute file:// URL"),
            ("gs://bucket/x", "unsupported URL scheme `gs://`"),
            ("s3://My_Bucket/x", "not a valid S3 bucket name"),
            ("s3://ab/x", "not a valid S3 bucket name"),
            ("s3://bucket/a/../b", "`..` segment"),
        ] {
            let e = Location::parse(url).unwrap_err();
            assert!(e.message.contains(says), "{url}: {e}");
            assert!(e.hint.is_some(), "{url}: no hint");
        }
    }
}
