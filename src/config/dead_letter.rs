//! `[dead_letter]` (SPEC 4, 5.3, 5.4): where changes that no sink can ever accept are
//! written, with their reason, instead of stopping the run. The facility itself is
//! [`crate::sink::dead_letter`].

use serde::Deserialize;

use super::{Config, Location};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// `file:///dir` or `s3://bucket/prefix/` (S3 through `[aws]`), as written.
    pub url: String,
    /// `url`, parsed once by [`parse`].
    #[serde(skip)]
    pub location: Location,
}

/// Parses `[dead_letter] url` into its [`Location`] and refuses a location that is also a
/// Parquet sink's or the `[state]` store's: those are cleaned and locked by their writer,
/// and dead letters must survive both. Called by [`Config::parse`]; errors are
/// configuration errors naming the section.
pub fn parse(config: &mut Config) -> Result<()> {
    let Some(dl) = config.dead_letter.as_mut() else {
        return Ok(());
    };
    dl.location = Location::parse(&dl.url).map_err(|e| e.context("[dead_letter] url"))?;
    let dl = &config.dead_letter.as_ref().expect("checked").location;
    let taken = config
        .parquet_sinks()
        .map(|p| &p.location)
        .chain(config.state.as_ref().map(|s| &s.location));
    for other in taken {
        if overlaps(dl, other) {
            return Err(Error::config(format!("[dead_letter] url {dl} overlaps the target {other}"))
                .with_hint("give dead letters a location of their own, e.g. file:///var/lib/pgcdc/dead-letters"));
        }
    }
    Ok(())
}

/// Whether one location lies inside the other (or they are the same).
fn overlaps(a: &Location, b: &Location) -> bool {
    match (a, b) {
        (Location::Local(a), Location::Local(b)) => a.starts_with(b) || b.starts_with(a),
        (
            Location::S3 {
                bucket: ba,
                prefix: pa,
            },
            Location::S3 {
                bucket: bb,
                prefix: pb,
            },
        ) => ba == bb && (pa.starts_with(pb.as_str()) || pb.starts_with(pa.as_str())),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Location};

    const MINIMAL: &str = "[source]\nurl = \"postgres://u@h/d\"\n[[sink]]\nkind = \"parquet\"\nurl = \"file:///data/out\"\n";

    #[test]
    fn dead_letter_url_is_parsed_and_kept_apart_from_targets() {
        let c = Config::parse(&format!(
            "{MINIMAL}[dead_letter]\nurl = \"file:///data/dl\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.dead_letter.unwrap().location,
            Location::Local("/data/dl".into())
        );
        let c = Config::parse(&format!(
            "{MINIMAL}[dead_letter]\nurl = \"s3://bucket-a/dl\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.dead_letter.unwrap().location,
            Location::S3 {
                bucket: "bucket-a".into(),
                prefix: "dl/".into()
            }
        );
        for url in ["file:///data/out", "file:///data/out/dl", "file:///data"] {
            let e =
                Config::parse(&format!("{MINIMAL}[dead_letter]\nurl = \"{url}\"\n")).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(
                e.message.contains("[dead_letter]") && e.message.contains("overlaps"),
                "{e}"
            );
        }
        let e = Config::parse(&format!(
            "{MINIMAL}[dead_letter]\nurl = \"file://relative\"\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("[dead_letter] url"), "{e}");
        let e = Config::parse(&format!(
            "{MINIMAL}[dead_letter]\nurl = \"file:///x\"\nurll = 1\n"
        ))
        .unwrap_err();
        assert!(e.message.contains("unknown key `urll`"), "{e}");
    }
}
