//! The options of the DMS layout (`layout = "dms"`, SPEC 5.2) on a Parquet sink, checked
//! together: they mean nothing in the native layout, so setting one there is an error rather
//! than silently ignored.

use serde::Deserialize;

use super::{Layout, ParquetSinkConfig};
use crate::error::{Error, Result};

/// `format`: the file format of a DMS-layout sink.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    #[default]
    Parquet,
    /// DMS's CSV files: accepted by the parser, not built yet (a configuration error).
    Csv,
}

/// Checks the DMS options of Parquet sink number `n` (1-based, for messages). Errors are
/// configuration errors (exit 2) naming the sink and the key.
pub fn validate(n: usize, p: &ParquetSinkConfig) -> Result<()> {
    let set: Vec<&str> = [
        (p.format != FileFormat::Parquet, "format"),
        (p.date_partitioning, "date_partitioning"),
        (p.timestamp_column.is_some(), "timestamp_column"),
        (p.include_op_for_full_load, "include_op_for_full_load"),
        (p.cdc_inserts_only, "cdc_inserts_only"),
        (
            p.parquet_timestamp_in_millisecond,
            "parquet_timestamp_in_millisecond",
        ),
    ]
    .into_iter()
    .filter_map(|(on, key)| on.then_some(key))
    .collect();
    if p.layout == Layout::Native {
        if let Some(key) = set.first() {
            return Err(Error::config(format!(
                "sink {n} (parquet): `{key}` is an option of layout = \"dms\""
            ))
            .with_hint(format!("add layout = \"dms\" or remove `{key}`")));
        }
        return Ok(());
    }
    if p.format == FileFormat::Csv {
        return Err(Error::config(format!(
            "sink {n} (parquet): format = \"csv\" is not supported by this build yet"
        ))
        .with_hint("use format = \"parquet\" (the default)"));
    }
    if let Some(c) = &p.timestamp_column {
        if c.is_empty() || c.eq_ignore_ascii_case("Op") {
            return Err(Error::config(format!(
                "sink {n} (parquet): timestamp_column must be a name other than \"Op\""
            ))
            .with_hint("DMS's usual name is timestamp_column = \"DMS_TIMESTAMP\""));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Layout};

    fn parse(extra: &str) -> crate::error::Result<Config> {
        Config::parse(&format!(
            "[source]\nurl = \"postgres://u@localhost/db\"\n[[sink]]\nkind = \"parquet\"\nurl = \"/tmp/out\"\n{extra}\n"
        ))
    }

    #[test]
    fn dms_layout_and_its_options_load() {
        let c = parse(
            "layout = \"dms\"\ndate_partitioning = true\ntimestamp_column = \"DMS_TIMESTAMP\"\n\
             include_op_for_full_load = true\ncdc_inserts_only = true\nparquet_timestamp_in_millisecond = true",
        )
        .unwrap();
        let p = c.parquet_sinks().next().unwrap();
        assert_eq!(p.layout, Layout::Dms);
        assert!(p.date_partitioning && p.include_op_for_full_load && p.cdc_inserts_only);
        assert_eq!(p.timestamp_column.as_deref(), Some("DMS_TIMESTAMP"));
    }

    #[test]
    fn dms_options_without_the_layout_or_csv_are_config_errors() {
        let e = parse("date_partitioning = true").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.message,
            "sink 1 (parquet): `date_partitioning` is an option of layout = \"dms\""
        );
        let e = parse("layout = \"dms\"\nformat = \"csv\"").unwrap_err();
        assert_eq!(
            e.message,
            "sink 1 (parquet): format = \"csv\" is not supported by this build yet"
        );
        let e = parse("layout = \"dms\"\ntimestamp_column = \"Op\"").unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
    }
}
