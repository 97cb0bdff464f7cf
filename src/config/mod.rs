//! The TOML configuration of SPEC 4.
//!
//! Loading does, in order: read the file, replace `${VAR}` from the environment, parse with
//! unknown keys rejected (the error names the nearest valid key), then validate values. Any
//! failure is a configuration error (exit 2) that names the file, the key and a fix.

mod dead_letter;
mod dms;
mod dms_task;
mod env;
mod location;
mod metrics;
mod rules;
mod s3_options;
mod tables;
mod units;

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
pub use dead_letter::DeadLetterConfig;
pub use dms::FileFormat;
pub use dms_task::DmsTaskConfig;
pub use location::Location;
pub use metrics::MetricsConfig;
pub use rules::{Patterns, Rename, RuleConfig};
#[cfg(test)]
pub(crate) use rules::parse_rules;
pub use tables::TableFilter;
pub use units::{parse_duration, parse_size};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub source: SourceConfig,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    #[serde(default, rename = "sink")]
    pub sinks: Vec<SinkConfig>,
    #[serde(default)]
    pub aws: Option<AwsConfig>,
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    #[serde(default)]
    pub state: Option<StateConfig>,
    #[serde(default)]
    pub dead_letter: Option<DeadLetterConfig>,
    #[serde(default)]
    pub catalog: Option<CatalogConfig>,
    /// `[dms]`: the DMS companion's settings (`pgcdc dms`, see [`DmsTaskConfig`]).
    #[serde(default)]
    pub dms: Option<DmsTaskConfig>,
    /// `[[rule]]`s in configuration order (SPEC 5.5, [`RuleConfig`]).
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// libpq-style URL; PG* environment variables fill what it leaves out.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default = "default_name")]
    pub publication: String,
    #[serde(default = "default_name")]
    pub slot: String,
    /// `schema.table` patterns with `*` wildcards; empty means every table of the publication.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Send a `pg_logical_emit_message` heartbeat at this interval so an idle slot advances
    /// (SPEC 2.7). Off unless set.
    #[serde(default, with = "units::opt_duration")]
    pub heartbeat_interval: Option<Duration>,
    /// How long `run` keeps reconnecting to a source it lost (a restart, a failover, a
    /// dropped connection) before it exits with the error; `"0s"` exits at once.
    #[serde(default = "default_reconnect_timeout", with = "units::duration")]
    pub reconnect_timeout: Duration,
}

fn default_reconnect_timeout() -> Duration {
    Duration::from_secs(600)
}

fn default_name() -> String {
    "pgcdc".to_string()
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    FullLoad,
    Cdc,
    #[default]
    FullLoadAndCdc,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "full-load" => Ok(Mode::FullLoad),
            "cdc" => Ok(Mode::Cdc),
            "full-load-and-cdc" => Ok(Mode::FullLoadAndCdc),
            _ => Err(format!("unknown mode `{s}`: expected full-load, cdc or full-load-and-cdc")),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    #[serde(default)]
    pub mode: Mode,
    /// Local directory for spilled streamed transactions; default: `_pgcdc/spill` in a local
    /// target, else the system temp directory.
    #[serde(default)]
    pub spill_dir: Option<String>,
    /// How often the slot is told our durable position (standby status update).
    #[serde(default = "default_status_interval", with = "units::duration")]
    pub status_interval: Duration,
    /// Parallel copy sessions of the full load; default: the number of cores (2..8).
    #[serde(default)]
    pub load_workers: Option<usize>,
    /// Heap bytes per full-load chunk (CTID range); default: from table size and workers.
    #[serde(default, with = "units::opt_size")]
    pub load_chunk_size: Option<u64>,
}

fn default_status_interval() -> Duration {
    Duration::from_secs(10)
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            mode: Mode::default(),
            spill_dir: None,
            status_interval: default_status_interval(),
            load_workers: None,
            load_chunk_size: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SinkConfig {
    Parquet(ParquetSinkConfig),
    Kinesis(KinesisSinkConfig),
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Native,
    Dms,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Zstd,
    None,
    /// Parquet's GZIP codec, or a gzipped CSV file (`format = "csv"`), as DMS's
    /// `CompressionType = GZIP`.
    Gzip,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// `file:///dir`, a plain path, or `s3://bucket/prefix/`, as written.
    pub url: String,
    /// `url`, parsed by [`Config::parse`]: what everything else uses.
    #[serde(skip)]
    pub location: Location,
    #[serde(default)]
    pub layout: Layout,
    #[serde(default = "default_flush_interval", with = "units::duration")]
    pub flush_interval: Duration,
    #[serde(default = "default_max_file_size", with = "units::size")]
    pub max_file_size: u64,
    /// `compression` as written; [`Self::compression`] is what it means (see [`dms::compression`]).
    #[serde(default, rename = "compression")]
    pub compression_setting: Option<Compression>,
    /// Filled by [`Config::parse`]: `zstd` for Parquet unless set, `none` for CSV unless set.
    #[serde(skip)]
    pub compression: Compression,
    #[serde(default)]
    pub storage_class: Option<String>,
    #[serde(default)]
    pub sse: Option<String>,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// S3 only: the lease of the target's lock object (default 60 s): how long a crashed
    /// or paused holder keeps others out, and how long a holder cut off from the endpoint
    /// keeps writing before it must stop.
    #[serde(default, with = "units::opt_duration")]
    pub lock_lease: Option<Duration>,
    // The options of `layout = "dms"` (SPEC 5.2), checked by `dms::validate`; see
    // `crate::sink::parquet::dms_schema` for what they do.
    #[serde(default)]
    pub format: FileFormat,
    #[serde(default)]
    pub date_partitioning: bool,
    #[serde(default)]
    pub timestamp_column: Option<String>,
    #[serde(default)]
    pub include_op_for_full_load: bool,
    #[serde(default)]
    pub cdc_inserts_only: bool,
    #[serde(default)]
    pub parquet_timestamp_in_millisecond: bool,
    /// `format = "csv"` only: a header row of column names (DMS `AddColumnName`).
    #[serde(default)]
    pub add_column_name: bool,
    /// `format = "csv"` only: the text of a NULL (DMS `CsvNullValue`); default: an empty field.
    #[serde(default)]
    pub csv_null_value: Option<String>,
}

fn default_flush_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_max_file_size() -> u64 {
    128 * 1024 * 1024
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisSinkConfig {
    pub stream: String,
    #[serde(default = "default_kinesis_format")]
    pub format: String,
    #[serde(default = "default_partition_key")]
    pub partition_key: String,
    #[serde(default = "default_aggregation")]
    pub aggregation: String,
    /// PutRecords calls in flight at once (over disjoint partition keys); default 4.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

fn default_max_in_flight() -> usize {
    4
}

fn default_kinesis_format() -> String {
    "dms-json".into()
}
fn default_partition_key() -> String {
    "primary-key".into()
}
fn default_aggregation() -> String {
    "none".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    pub url: String,
    /// `url`, parsed once in [`Config::parse`].
    #[serde(skip)]
    pub location: Location,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    pub glue_database: String,
}

impl Config {
    /// Reads, substitutes, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        let raw = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read configuration file {}: {e}", path.display()))
                .with_hint("pass an existing TOML file with -c FILE")
        })?;
        Config::parse(&raw).map_err(|e| e.context(format!("configuration {}", path.display())))
    }

    /// Parses configuration text (after `${VAR}` substitution) and validates it.
    pub fn parse(raw: &str) -> Result<Config> {
        let text = env::substitute(raw)?;
        let mut config: Config = toml::from_str(&text).map_err(|e| explain_toml_error(&e, &text))?;
        for (i, sink) in config.sinks.iter_mut().enumerate() {
            if let SinkConfig::Parquet(p) = sink {
                p.location = Location::parse(&p.url).map_err(|e| e.context(format!("sink {} (parquet)", i + 1)))?;
                p.compression = dms::compression(p);
            }
        }
        if let Some(st) = config.state.as_mut() {
            st.location = Location::parse(&st.url).map_err(|e| e.context("[state] url"))?;
        }
        dead_letter::parse(&mut config)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.sinks.is_empty() {
            return Err(Error::config("no [[sink]] is configured").with_hint(
                "add a sink, e.g.\n    [[sink]]\n    kind = \"parquet\"\n    url = \"file:///var/lib/pgcdc/out\"",
            ));
        }
        for (i, sink) in self.sinks.iter().enumerate() {
            match sink {
                SinkConfig::Parquet(p) => {
                    s3_options::check(i + 1, p)?;
                    dms::validate(i + 1, p)?;
                    if p.max_file_size < 1024 {
                        return Err(Error::config(format!("sink {} (parquet): max_file_size must be at least 1KiB", i + 1))
                            .with_hint("write e.g. max_file_size = \"128MiB\" (the default)"));
                    }
                }
                SinkConfig::Kinesis(k) => {
                    if k.max_in_flight == 0 {
                        return Err(Error::config(format!("sink {}: max_in_flight must be at least 1", i + 1)).with_hint("leave it out for the default, or write a number of requests ≥ 1"));
                    }
                    if k.stream.trim().is_empty() {
                        return Err(Error::config(format!("sink {}: kind = \"kinesis\" needs a `stream` (a name or an ARN)", i + 1)));
                    }
                }
            }
        }
        if let Some(m) = &self.metrics {
            metrics::validate(m)?;
        }
        if self.catalog.is_some() {
            dms::refuse_csv_with_catalog(self)?;
            let local = self.sinks.iter().any(|s| matches!(s, SinkConfig::Parquet(p) if !matches!(p.location, Location::S3 { .. })));
            if local || !self.sinks.iter().any(|s| matches!(s, SinkConfig::Parquet(_))) {
                return Err(Error::config("[catalog] registers Parquet files on S3 in Glue, but a Parquet sink is not on S3")
                    .with_hint("use url = \"s3://bucket/prefix/\" for every Parquet sink, or remove the [catalog] section"));
            }
        }
        if !self.sinks.iter().any(|s| matches!(s, SinkConfig::Parquet(_))) && self.state.is_none() {
            return Err(Error::config("no Parquet sink and no [state] url: progress has nowhere to live")
                .with_hint("add [state] url = \"file:///var/lib/pgcdc/state\""));
        }
        if self.pipeline.load_workers == Some(0) {
            return Err(Error::config("pipeline.load_workers must be at least 1"));
        }
        for pat in &self.source.tables {
            if pat.trim().is_empty() {
                return Err(Error::config("source.tables contains an empty pattern"));
            }
        }
        rules::validate(&self.rules)
    }

    pub fn parquet_sinks(&self) -> impl Iterator<Item = &ParquetSinkConfig> {
        self.sinks.iter().filter_map(|s| match s {
            SinkConfig::Parquet(p) => Some(p),
            _ => None,
        })
    }
}

/// Turns a TOML/serde error into one readable line, suggesting the nearest valid key.
///
/// The message gives the position (line and column) instead of quoting the offending line:
/// that line may hold a password (`url = "postgres://u:secret@..."`, or a `${VAR}` already
/// substituted), and secrets never appear in errors (SPEC 2.9).
fn explain_toml_error(e: &toml::de::Error, text: &str) -> Error {
    let msg = mask_url_passwords(e.message().trim());
    let location = e.span().map(|span| position(text, span.start)).unwrap_or_default();
    // serde's unknown-field message: "unknown field `x`, expected one of `a`, `b`"
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once('`') {
            let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            let best = candidates
                .iter()
                .map(|c| (strsim::jaro_winkler(field, c), *c))
                .filter(|(score, _)| *score > 0.7)
                .max_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
            let mut err = Error::config(format!("unknown key `{field}`{location}"));
            err = match best {
                Some((_, c)) => err.with_hint(format!("did you mean `{c}`?")),
                None => err.with_hint(format!("valid keys here: {}", candidates.join(", "))),
            };
            return err;
        }
    }
    let (msg, hint) = toml_error_hint(&msg);
    Error::config(format!("invalid configuration{location}: {msg}")).with_hint(hint)
}

/// Splits a TOML/serde message into the problem and a fix: a fix the message already
/// carries after `; ` (units, durations), the valid values of an enum, the expected type, a
/// missing key, else where to look.
fn toml_error_hint(msg: &str) -> (String, String) {
    if let Some((problem, fix)) = msg.split_once("; ") {
        return (problem.to_string(), fix.to_string());
    }
    let hint = if let Some(rest) = msg.strip_prefix("unknown variant `") {
        match rest.split_once(", expected ") {
            Some((_, expected)) => format!("use {}", expected.trim_start_matches("one of ")),
            None => "see the Configuration section of the README for the valid values".into(),
        }
    } else if let Some((_, expected)) = msg.strip_prefix("invalid type: ").and_then(|r| r.split_once(", expected ")) {
        format!("write {expected} here (strings in quotes, durations like \"5s\", sizes like \"128MiB\")")
    } else if let Some(rest) = msg.strip_prefix("missing field `") {
        format!("add `{}` to this table (see the examples in config/)", rest.trim_end_matches('`'))
    } else {
        "fix the TOML there: strings in quotes, tables as [name] and [[sink]], one key = value per line".into()
    };
    (msg.to_string(), hint)
}

/// ` at line L, column C` (1-based) of a byte offset.
fn position(text: &str, offset: usize) -> String {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!(" at line {line}, column {column}")
}

/// Replaces the password of every `scheme://user:password@` in `s` with `***`.
fn mask_url_passwords(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        // The authority ends at the first '/', '?', '#', quote or whitespace.
        let end = rest
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                out.push_str(&authority[..colon + 1]);
                out.push_str("***");
                out.push_str(&authority[at..]);
                rest = &rest[end..];
                continue;
            }
        }
        out.push_str(authority);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod example_tests;
#[cfg(test)]
mod tests;
