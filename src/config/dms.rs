//! The options of the DMS layout (`layout = "dms"`, SPEC 5.2) on a Parquet sink, checked
//! together: they mean nothing in the native layout, so setting one there is an error rather
//! than silently ignored. The CSV options (`add_column_name`, `csv_null_value`) likewise mean
//! nothing without `format = "csv"`.

use serde::Deserialize;

use super::{Compression, Config, Layout, ParquetSinkConfig, SinkConfig};
use crate::error::{Error, Result};

/// `format`: the file format of a DMS-layout sink.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    #[default]
    Parquet,
    /// DMS's CSV files (see `crate::sink::parquet::csv_writer`).
    Csv,
}

/// What `compression` means for the sink: as written, else `zstd` for Parquet files and
/// `none` for CSV files (DMS writes CSV uncompressed unless `CompressionType = GZIP`).
pub fn compression(p: &ParquetSinkConfig) -> Compression {
    p.compression_setting.unwrap_or(match p.format {
        FileFormat::Parquet => Compression::Zstd,
        FileFormat::Csv => Compression::None,
    })
}

/// `[catalog]` registers Parquet files only: a CSV sink with it is a configuration error
/// (exit 2), not a catalog that silently stays empty.
pub fn refuse_csv_with_catalog(c: &Config) -> Result<()> {
    for (i, s) in c.sinks.iter().enumerate() {
        if matches!(s, SinkConfig::Parquet(p) if p.format == FileFormat::Csv) {
            return Err(Error::config(format!(
                "sink {} (parquet): [catalog] registers Parquet files in Glue, but this sink writes format = \"csv\"",
                i + 1
            ))
            .with_hint("remove the [catalog] section or use format = \"parquet\""));
        }
    }
    Ok(())
}

/// Checks the DMS options of Parquet sink number `n` (1-based, for messages). Errors are
/// configuration errors (exit 2) naming the sink and the key.
pub fn validate(n: usize, p: &ParquetSinkConfig) -> Result<()> {
    let csv_only = [
        (p.add_column_name, "add_column_name"),
        (p.csv_null_value.is_some(), "csv_null_value"),
    ];
    if p.format != FileFormat::Csv {
        if let Some((_, key)) = csv_only.iter().find(|(on, _)| *on) {
            return Err(Error::config(format!(
                "sink {n} (parquet): `{key}` is an option of format = \"csv\""
            ))
            .with_hint(format!("add format = \"csv\" or remove `{key}`")));
        }
    }
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
        if p.compression_setting == Some(Compression::Zstd) {
            return Err(Error::config(format!(
                "sink {n} (parquet): format = \"csv\" is written uncompressed or gzipped, not zstd"
            ))
            .with_hint("use compression = \"gzip\" (DMS CompressionType = GZIP) or \"none\" (the default for CSV)"));
        }
        if p.parquet_timestamp_in_millisecond {
            return Err(Error::config(format!(
                "sink {n} (parquet): parquet_timestamp_in_millisecond applies to Parquet files, not format = \"csv\""
            ))
            .with_hint("remove parquet_timestamp_in_millisecond: CSV timestamps are written to the microsecond, as DMS"));
        }
        if let Some(v) = &p.csv_null_value {
            if v.contains([',', '"', '\r', '\n']) {
                return Err(Error::config(format!(
                    "sink {n} (parquet): csv_null_value {v:?} contains a comma, a double quote or a line break"
                ))
                .with_hint("choose a marker without them, such as csv_null_value = \"NULL\""));
            }
        }
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
        let e = parse("layout = \"dms\"\ntimestamp_column = \"Op\"").unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
    }

    #[test]
    fn csv_loads_with_its_options_and_defaults_to_no_compression() {
        use crate::config::{Compression, FileFormat};
        let c = parse("layout = \"dms\"\nformat = \"csv\"").unwrap();
        let p = c.parquet_sinks().next().unwrap();
        assert_eq!((p.format, p.compression), (FileFormat::Csv, Compression::None));
        assert!(!p.add_column_name && p.csv_null_value.is_none());
        let c = parse(
            "layout = \"dms\"\nformat = \"csv\"\ncompression = \"gzip\"\nadd_column_name = true\ncsv_null_value = \"NULL\"",
        )
        .unwrap();
        let p = c.parquet_sinks().next().unwrap();
        assert_eq!(p.compression, Compression::Gzip);
        assert!(p.add_column_name);
        assert_eq!(p.csv_null_value.as_deref(), Some("NULL"));
        // Parquet keeps zstd by default; gzip there is Parquet's GZIP codec, as DMS.
        let c = parse("layout = \"dms\"").unwrap();
        assert_eq!(c.parquet_sinks().next().unwrap().compression, Compression::Zstd);
        let c = parse("compression = \"gzip\"").unwrap();
        assert_eq!(c.parquet_sinks().next().unwrap().compression, Compression::Gzip);
    }

    #[test]
    fn bad_csv_combinations_are_config_errors() {
        for (extra, message) in [
            (
                "format = \"csv\"",
                "sink 1 (parquet): `format` is an option of layout = \"dms\"",
            ),
            (
                "layout = \"dms\"\ncsv_null_value = \"NULL\"",
                "sink 1 (parquet): `csv_null_value` is an option of format = \"csv\"",
            ),
            (
                "layout = \"dms\"\nadd_column_name = true",
                "sink 1 (parquet): `add_column_name` is an option of format = \"csv\"",
            ),
            (
                "add_column_name = true",
                "sink 1 (parquet): `add_column_name` is an option of format = \"csv\"",
            ),
            (
                "layout = \"dms\"\nformat = \"csv\"\ncompression = \"zstd\"",
                "sink 1 (parquet): format = \"csv\" is written uncompressed or gzipped, not zstd",
            ),
            (
                "layout = \"dms\"\nformat = \"csv\"\nparquet_timestamp_in_millisecond = true",
                "sink 1 (parquet): parquet_timestamp_in_millisecond applies to Parquet files, not format = \"csv\"",
            ),
            (
                "layout = \"dms\"\nformat = \"csv\"\ncsv_null_value = \"a,b\"",
                "sink 1 (parquet): csv_null_value \"a,b\" contains a comma, a double quote or a line break",
            ),
        ] {
            let e = parse(extra).unwrap_err();
            assert_eq!((e.exit_code(), e.message.as_str()), (2, message), "{extra}");
            assert!(e.hint.is_some(), "{extra}");
        }
        let e = parse("layout = \"dms\"\nformat = \"tsv\"").unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
    }

    #[test]
    fn csv_with_a_glue_catalog_is_a_config_error() {
        let e = Config::parse(
            "[source]\nurl = \"postgres://u@localhost/db\"\n[catalog]\nglue_database = \"d\"\n\
             [[sink]]\nkind = \"parquet\"\nurl = \"s3://bkt/p/\"\nlayout = \"dms\"\nformat = \"csv\"\n",
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.message.contains("[catalog]") && e.message.contains("csv"), "{e}");
    }
}
