//! Which of the configuration's sinks the DMS task mirrors, and where DMS writes for it.
//!
//! A DMS task has one target. `[dms] sink = N` picks the `[[sink]]`; by default the first
//! Parquet sink on S3 (or any Parquet sink when `[dms] s3_url` says where DMS writes), else
//! the first Kinesis sink. DMS's S3 folder sits *beside* pgcdc's prefix, never inside it:
//! `s3://bkt/cdc/` → `s3://b/cdc-dms/`, the bucket root → `s3://b/pgcdc-dms/`, so the two
//! writers never share a key and pgcdc's `_pgcdc/` progress is never under DMS's folder.

use crate::config::{Config, Location, ParquetSinkConfig, SinkConfig};
use crate::error::{Error, Result};
use crate::sink::kinesis::dms_json::DmsJsonOptions;

/// The sink a DMS task mirrors.
#[derive(Debug, Clone)]
pub enum Target {
    /// An S3 target endpoint writing what `sink` writes, into `bucket`/`folder`.
    S3 {
        /// 1-based index of the sink in the configuration.
        sink_number: usize,
        sink: Box<ParquetSinkConfig>,
        bucket: String,
        /// DMS's `BucketFolder` (no leading or trailing `/`).
        folder: String,
        /// Where pgcdc writes, as `s3://…` or the local path (for the texts).
        ours: String,
    },
    /// A Kinesis target endpoint on `stream` (a name or an ARN) with `options`.
    Kinesis {
        sink_number: usize,
        stream: String,
        options: DmsJsonOptions,
    },
}

impl Target {
    /// `s3` or `kinesis`: the target endpoint's engine and the suffix of its identifier.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::S3 { .. } => "s3",
            Target::Kinesis { .. } => "kinesis",
        }
    }

    pub fn sink_number(&self) -> usize {
        match self {
            Target::S3 { sink_number, .. } | Target::Kinesis { sink_number, .. } => *sink_number,
        }
    }

    /// Picks the mirrored sink of `config` (module documentation). A configuration error
    /// (exit 2) when no sink can be mirrored or `[dms] sink` names a wrong one.
    pub fn of(config: &Config) -> Result<Target> {
        let dms = config.dms.clone().unwrap_or_default();
        let s3_url = dms
            .s3_url
            .as_deref()
            .map(Location::parse)
            .transpose()
            .map_err(|e| e.context("[dms] s3_url"))?;
        if let Some(Location::Local(_)) = s3_url {
            return Err(Error::config(
                "[dms] s3_url must be an s3:// URL: DMS writes to S3 or Kinesis",
            )
            .with_hint("write s3_url = \"s3://bucket/prefix/\""));
        }
        let pick = |n: usize, s: &SinkConfig| -> Result<Target> {
            match s {
                SinkConfig::Parquet(p) => {
                    let (bucket, prefix, ours) = match (&p.location, &s3_url) {
                        (_, Some(Location::S3 { bucket, prefix })) => (bucket.clone(), prefix.clone(), None),
                        (Location::S3 { bucket, prefix }, None) => (bucket.clone(), prefix.clone(), Some(sibling(prefix))),
                        (Location::Local(dir), None) => {
                            return Err(Error::config(format!(
                                "sink {n} (parquet) writes to the local directory {}; DMS writes to S3 or Kinesis",
                                dir.display()
                            ))
                            .with_hint("add [dms] s3_url = \"s3://bucket/prefix/\" (where the DMS task writes), or choose another sink with [dms] sink = N"))
                        }
                        _ => unreachable!("s3_url is never local here"),
                    };
                    let folder = ours.unwrap_or_else(|| prefix.trim_matches('/').to_string());
                    Ok(Target::S3 {
                        sink_number: n,
                        sink: Box::new(p.clone()),
                        bucket,
                        folder,
                        ours: p.url.clone(),
                    })
                }
                SinkConfig::Kinesis(k) => {
                    let options = crate::sink::kinesis::stream::encoder_options(k)
                        .map_err(|e| e.context(format!("sink {n} (kinesis)")))?;
                    Ok(Target::Kinesis {
                        sink_number: n,
                        stream: k.stream.clone(),
                        options,
                    })
                }
            }
        };
        if let Some(n) = dms.sink {
            let s = config.sinks.get(n.wrapping_sub(1)).ok_or_else(|| {
                Error::config(format!(
                    "[dms] sink = {n}, but the configuration has {} [[sink]]",
                    config.sinks.len()
                ))
                .with_hint("sinks are numbered from 1 in the order they are written")
            })?;
            return pick(n, s);
        }
        let mirrorable = |s: &SinkConfig| match s {
            SinkConfig::Parquet(p) => matches!(p.location, Location::S3 { .. }) || s3_url.is_some(),
            SinkConfig::Kinesis(_) => true,
        };
        let first = config
            .sinks
            .iter()
            .enumerate()
            .find(|(_, s)| matches!(s, SinkConfig::Parquet(_)) && mirrorable(s))
            .or_else(|| config.sinks.iter().enumerate().find(|(_, s)| mirrorable(s)));
        match first {
            Some((i, s)) => pick(i + 1, s),
            // Explains why the first sink cannot be mirrored.
            None => pick(1, &config.sinks[0]),
        }
    }
}

/// The folder beside `prefix` (`a/cdc/` → `a/cdc-dms`; the root → `pgcdc-dms`).
pub fn sibling(prefix: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        "pgcdc-dms".into()
    } else {
        format!("{p}-dms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sinks: &str, dms: &str) -> Result<Target> {
        let c = Config::parse(&format!(
            "[source]\nurl = \"postgres://u@h/db\"\n[state]\nurl = \"/tmp/s\"\n{sinks}\n{dms}"
        ))
        .unwrap();
        Target::of(&c)
    }

    #[test]
    fn the_mirrored_sink_and_dms_folder() {
        assert_eq!(sibling("a/cdc/"), "a/cdc-dms");
        assert_eq!(sibling(""), "pgcdc-dms");
        let t = parse("[[sink]]\nkind = \"kinesis\"\nstream = \"s\"\n[[sink]]\nkind = \"parquet\"\nurl = \"s3://bkt/cdc/\"", "").unwrap();
        assert!(
            matches!(&t, Target::S3 { sink_number: 2, bucket, folder, .. } if bucket == "bkt" && folder == "cdc-dms"),
            "{t:?}"
        );
        let t = parse("[[sink]]\nkind = \"parquet\"\nurl = \"/tmp/o\"\n[[sink]]\nkind = \"kinesis\"\nstream = \"s\"", "").unwrap();
        assert_eq!((t.kind(), t.sink_number()), ("kinesis", 2));
        let t = parse(
            "[[sink]]\nkind = \"parquet\"\nurl = \"/tmp/o\"",
            "[dms]\ns3_url = \"s3://xyz/dms/\"",
        )
        .unwrap();
        assert!(
            matches!(&t, Target::S3 { folder, .. } if folder == "dms"),
            "{t:?}"
        );
        let e = parse("[[sink]]\nkind = \"parquet\"\nurl = \"/tmp/o\"", "").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.message.contains("local directory"), "{e}");
        let e = parse(
            "[[sink]]\nkind = \"parquet\"\nurl = \"/tmp/o\"",
            "[dms]\nsink = 3",
        )
        .unwrap_err();
        assert!(e.message.contains("[dms] sink = 3"), "{e}");
    }
}
