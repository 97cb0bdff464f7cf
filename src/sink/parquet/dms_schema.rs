//! The columns of the DMS layout (SPEC 5.2): what AWS DMS's S3 target writes for a
//! PostgreSQL table, matched against a real DMS file (`testdata/dms_s3/`).
//!
//! A DMS file has, in order: `Op` (`I`/`U`/`D`; in full-load files only with
//! `include_op_for_full_load`, always `I` there; in CSV files with `cdc_inserts_only` and
//! without `include_op_for_full_load` not at all, as DMS's `CdcInsertsOnly` documents), the `timestamp_column` if configured (a
//! REQUIRED string `YYYY-MM-DD HH:MM:SS.ffffff`, the commit time in UTC; for the full load
//! the time the load started, as DMS writes the transfer time), then the table's columns,
//! all OPTIONAL, and no pgcdc metadata columns. `Op` is REQUIRED like DMS's own
//! timestamp column.
//!
//! Types, as DMS maps PostgreSQL types: bool, int2/4/8, float4/8, bytea, date, time natively;
//! `numeric(p,s)` with p ≤ 38 as DECIMAL(p,s) stored as a fixed-length byte array (as DMS
//! stores it, not the INT32/INT64 the Arrow writer would choose); `money` as DECIMAL(38,4)
//! (parsed from PostgreSQL's text form, which assumes an `lc_monetary` with `.` as the
//! decimal point, as in the C and en_US locales); timestamp and timestamptz as a UTC
//! timestamp, microseconds or, with `parquet_timestamp_in_millisecond`, milliseconds (DMS's
//! `ParquetTimestampInMillisecond`); everything else (uuid, json, jsonb, interval, arrays,
//! unconstrained numeric or precision > 38, enums, ...) as a UTF8 string of PostgreSQL's text
//! form. Unconstrained numeric stays exact as a string, where DMS would round it to its
//! default NUMERIC(28,6).
//!
//! How it is built: the table's columns are first re-typed ([`DmsColumns::source_table`]) so
//! that the ordinary batch builder ([`crate::batch::TableBatchBuilder`]) and the full load's
//! COPY read every string column as text; its batches are then turned into DMS batches by
//! [`DmsColumns::convert`], and the file is written with [`DmsColumns::writer_options`], or
//! with `format = "csv"` as CSV ([`super::csv_writer`]) of the same converted batches.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::builder::{Decimal128Builder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampMicrosecondType, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowSchemaConverter;
use parquet::basic::{LogicalType, Type as PhysicalType};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::{SchemaDescriptor, Type};

use super::csv_writer::{CsvFormat, CsvPartWriter};
use super::part_file::PartFile;
use super::writer::PartWriter;
use crate::batch::schema::{COL_COMMIT_TS, COL_OP};
use crate::config::{Compression, FileFormat, Layout, ParquetSinkConfig};
use crate::error::{Error, Result};
use crate::model::{PgType, RowOp, TableSchema};

/// The name of DMS's operation column.
pub const OP_COLUMN: &str = "Op";
/// `money`'s type OID: written as DECIMAL(38,4) like DMS.
const MONEY_OID: u32 = 790;
const MONEY_PRECISION: u8 = 38;
const MONEY_SCALE: i8 = 4;
/// DMS's largest NUMERIC precision; above it a numeric is a string.
const MAX_DECIMAL_PRECISION: u8 = 38;

/// Which kind of file a batch goes to: they differ in the `Op` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmsFile {
    Load,
    Cdc,
}

/// The DMS options of one Parquet sink that shape its columns.
#[derive(Debug, Clone)]
pub struct DmsColumns {
    pub timestamp_column: Option<String>,
    pub include_op_for_full_load: bool,
    pub cdc_inserts_only: bool,
    pub timestamp_unit: TimeUnit,
    /// `format = "csv"`: files are CSV of these options; `None` for Parquet files.
    pub csv: Option<CsvFormat>,
}

impl DmsColumns {
    /// The sink's DMS columns; `None` in the native layout.
    pub fn of(cfg: &ParquetSinkConfig) -> Option<Arc<DmsColumns>> {
        (cfg.layout == Layout::Dms).then(|| {
            Arc::new(DmsColumns {
                timestamp_column: cfg.timestamp_column.clone(),
                include_op_for_full_load: cfg.include_op_for_full_load,
                cdc_inserts_only: cfg.cdc_inserts_only,
                timestamp_unit: if cfg.parquet_timestamp_in_millisecond {
                    TimeUnit::Millisecond
                } else {
                    TimeUnit::Microsecond
                },
                csv: (cfg.format == FileFormat::Csv).then(|| CsvFormat {
                    header: cfg.add_column_name,
                    null_value: cfg.csv_null_value.clone().unwrap_or_default(),
                    gzip: cfg.compression == Compression::Gzip,
                }),
            })
        })
    }

    /// Whether a row of `op` is written: DMS has no row for TRUNCATE (it does not capture
    /// it), and with `cdc_inserts_only` it writes inserts only (updates and deletes are not
    /// written, as DMS's `CdcInsertsOnly`).
    pub fn keeps(&self, op: RowOp) -> bool {
        match op {
            RowOp::Load | RowOp::Insert => true,
            RowOp::Update | RowOp::Delete => !self.cdc_inserts_only,
            RowOp::Truncate => false,
        }
    }

    /// The extension of the sink's data files: `parquet`, `csv` or `csv.gz`.
    pub fn extension(&self) -> &'static str {
        self.csv.as_ref().map_or("parquet", CsvFormat::extension)
    }

    fn has_op(&self, file: DmsFile) -> bool {
        if self.include_op_for_full_load {
            return true;
        }
        // DMS CSV with CdcInsertsOnly and without IncludeOpForFullLoad: no `Op` field.
        file == DmsFile::Cdc && !(self.csv.is_some() && self.cdc_inserts_only)
    }

    /// The table re-typed for the batch builder: every column DMS writes as a string reads
    /// as text (PostgreSQL's output form, in CDC and in the full load's COPY alike). Errors
    /// when a column's name is one DMS adds (`Op`, the timestamp column).
    pub fn source_table(&self, table: &Arc<TableSchema>) -> Result<Arc<TableSchema>> {
        for c in &table.columns {
            let clash =
                c.name == OP_COLUMN || self.timestamp_column.as_deref() == Some(c.name.as_str());
            if clash {
                return Err(Error::config(format!(
                    "table {} has a column named {:?}, which the DMS layout adds itself",
                    table.qualified_name(),
                    c.name
                ))
                .with_hint(
                    "set another timestamp_column, or leave the table out of source.tables",
                ));
            }
        }
        let mut t = (**table).clone();
        for c in &mut t.columns {
            let keep = match &c.pg_type {
                PgType::Bool
                | PgType::Int2
                | PgType::Int4
                | PgType::Int8
                | PgType::Float4
                | PgType::Float8
                | PgType::Bytea
                | PgType::Date
                | PgType::Time
                | PgType::Timestamp
                | PgType::Timestamptz
                | PgType::Text => true,
                PgType::Numeric { precision, .. } => *precision <= MAX_DECIMAL_PRECISION,
                // money stays `Other`: read as text, parsed into a decimal by `convert`.
                PgType::Other(_) => c.type_oid == MONEY_OID,
                PgType::NumericText | PgType::Json | PgType::Uuid | PgType::Array { .. } => false,
            };
            if !keep {
                c.pg_type = PgType::Text;
            }
        }
        Ok(Arc::new(t))
    }

    /// The Arrow schema of a DMS file of `source` (a [`Self::source_table`]).
    pub fn arrow_schema(&self, source: &TableSchema, file: DmsFile) -> SchemaRef {
        let mut fields = Vec::with_capacity(source.columns.len() + 2);
        if self.has_op(file) {
            fields.push(Field::new(OP_COLUMN, DataType::Utf8, false));
        }
        if let Some(c) = &self.timestamp_column {
            fields.push(Field::new(c, DataType::Utf8, false));
        }
        for c in &source.columns {
            let t = match c.pg_type.arrow_type() {
                _ if c.type_oid == MONEY_OID => DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE),
                DataType::Timestamp(_, _) => {
                    DataType::Timestamp(self.timestamp_unit, Some("UTC".into()))
                }
                other => other,
            };
            fields.push(Field::new(&c.name, t, true));
        }
        Arc::new(Schema::new(fields))
    }

    /// Opens a part file in staging for DMS batches of `source` (a [`Self::source_table`]):
    /// CSV with `format = "csv"` (`props` unused), else Parquet written with `props`.
    pub fn create_part(
        &self,
        path: PathBuf,
        source: Arc<TableSchema>,
        file: DmsFile,
        props: WriterProperties,
    ) -> Result<PartFile> {
        let schema = self.arrow_schema(&source, file);
        if let Some(csv) = &self.csv {
            return Ok(PartFile::Csv(CsvPartWriter::create(path, source, schema, csv)?));
        }
        let options = self.writer_options(&schema, props)?;
        Ok(PartFile::Parquet(PartWriter::create_with(path, source, schema, options)?))
    }

    /// A batch of the builder of `source` (a [`Self::source_table`]) as a DMS batch (schema
    /// [`Self::arrow_schema`]). Rows the builder holds must all be [`kept`](Self::keeps); an
    /// unparsable money value is an error naming the column.
    pub fn convert(
        &self,
        source: &TableSchema,
        batch: &RecordBatch,
        file: DmsFile,
    ) -> Result<RecordBatch> {
        let schema = &self.arrow_schema(source, file);
        let n = source.columns.len();
        let ops = batch.column(n).as_string::<i32>();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        if self.has_op(file) {
            let mut b = StringBuilder::with_capacity(ops.len(), ops.len());
            for op in ops.iter() {
                b.append_value(match op {
                    Some("L") => "I",
                    Some(o) => o,
                    None => return Err(Error::runtime("internal: a row without an operation")),
                });
            }
            arrays.push(Arc::new(b.finish()));
        }
        if self.timestamp_column.is_some() {
            let idx = batch
                .schema()
                .index_of(COL_COMMIT_TS)
                .map_err(|e| Error::runtime(format!("internal: {e}")))?;
            let ts = batch.column(idx).as_primitive::<TimestampMicrosecondType>();
            let mut b = StringBuilder::with_capacity(ts.len(), ts.len() * 26);
            for v in ts.values().iter() {
                b.append_value(dms_timestamp_text(*v));
            }
            arrays.push(Arc::new(b.finish()));
        }
        debug_assert_eq!(batch.schema().field(n).name(), COL_OP);
        for (i, c) in source.columns.iter().enumerate() {
            let col = batch.column(i);
            let target = schema.field(arrays.len()).data_type().clone();
            let out: ArrayRef = match (&target, col.data_type()) {
                (DataType::Decimal128(p, s), DataType::Utf8) => {
                    let mut b = Decimal128Builder::with_capacity(col.len());
                    for v in col.as_string::<i32>().iter() {
                        match v {
                            None => b.append_null(),
                            Some(t) => b.append_value(parse_money(t).ok_or_else(|| {
                                Error::runtime(format!(
                                    "column {:?} of {}: money value {t:?} is not a number with '.' as decimal point",
                                    c.name,
                                    source.qualified_name()
                                ))
                                .with_hint("set lc_monetary to C or en_US.UTF-8 on the source")
                            })?),
                        }
                    }
                    Arc::new(
                        b.finish()
                            .with_precision_and_scale(*p, *s)
                            .map_err(|e| Error::runtime(format!("internal: {e}")))?,
                    )
                }
                (DataType::Timestamp(unit, _), DataType::Timestamp(_, _)) => {
                    let us = col.as_primitive::<TimestampMicrosecondType>();
                    match unit {
                        TimeUnit::Millisecond => Arc::new(
                            us.unary::<_, TimestampMillisecondType>(|v| v.div_euclid(1000))
                                .with_timezone("UTC"),
                        ),
                        _ => Arc::new(us.clone().with_timezone("UTC")),
                    }
                }
                _ => col.clone(),
            };
            arrays.push(out);
        }
        RecordBatch::try_new(schema.clone(), arrays).map_err(|e| {
            Error::runtime(format!(
                "internal: DMS batch of {}: {e}",
                source.qualified_name()
            ))
        })
    }

    /// How a DMS file is written: root `schema`, no embedded Arrow schema, no dictionary
    /// (as DMS), DECIMAL columns as fixed-length byte arrays; `props` gives the compression.
    pub fn writer_options(
        &self,
        schema: &Schema,
        props: WriterProperties,
    ) -> Result<ArrowWriterOptions> {
        let err = |e: parquet::errors::ParquetError| {
            Error::runtime(format!("internal: DMS Parquet schema: {e}"))
        };
        let converted = ArrowSchemaConverter::new()
            .schema_root("schema")
            .convert(schema)
            .map_err(err)?;
        let root = converted.root_schema();
        let fields = root
            .get_fields()
            .iter()
            .map(|f| match f.get_basic_info().logical_type_ref() {
                Some(LogicalType::Decimal(parquet::basic::DecimalType { scale, precision }))
                    if f.get_physical_type() != PhysicalType::FIXED_LEN_BYTE_ARRAY =>
                {
                    Type::primitive_type_builder(f.name(), PhysicalType::FIXED_LEN_BYTE_ARRAY)
                        .with_repetition(f.get_basic_info().repetition())
                        .with_length(decimal_bytes(*precision) as i32)
                        .with_logical_type(Some(LogicalType::decimal(*scale, *precision)))
                        .with_precision(*precision)
                        .with_scale(*scale)
                        .build()
                        .map(Arc::new)
                        .map_err(err)
                }
                _ => Ok(f.clone()),
            })
            .collect::<Result<Vec<_>>>()?;
        let root = Type::group_type_builder("schema")
            .with_fields(fields)
            .build()
            .map_err(err)?;
        let props = props.into_builder().set_dictionary_enabled(false).build();
        Ok(ArrowWriterOptions::new()
            .with_properties(props)
            .with_skip_arrow_metadata(true)
            .with_parquet_schema(SchemaDescriptor::new(Arc::new(root))))
    }
}

/// Bytes of a fixed-length DECIMAL of `precision` digits (Parquet's rule: the fewest bytes
/// whose two's complement holds every value).
fn decimal_bytes(precision: i32) -> usize {
    let mut n = 1usize;
    while ((8 * n - 1) as f64) * std::f64::consts::LOG10_2 < precision as f64 {
        n += 1;
    }
    n
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` (UTC) of µs since the epoch: DMS's timestamp column text.
pub fn dms_timestamp_text(us: i64) -> String {
    let t = chrono::DateTime::from_timestamp_micros(us).unwrap_or_default();
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// A `money` text (`$1,234.56`, `-$1,234.56`, `($1,234.56)`) as a decimal with scale 4;
/// `None` when it holds no digits or more than 4 decimals.
fn parse_money(text: &str) -> Option<i128> {
    let negative = text.contains('-') || text.starts_with('(');
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let (int, frac) = (digits(int), digits(frac));
    if (int.is_empty() && frac.is_empty()) || frac.len() > MONEY_SCALE as usize {
        return None;
    }
    let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac: i128 = format!("{frac:0<4}").parse().ok()?;
    let v = int.checked_mul(10_000)?.checked_add(frac)?;
    Some(if negative { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::fixtures::{col, orders};

    fn dms(inserts_only: bool) -> DmsColumns {
        DmsColumns {
            timestamp_column: Some("DMS_TIMESTAMP".into()),
            include_op_for_full_load: false,
            cdc_inserts_only: inserts_only,
            timestamp_unit: TimeUnit::Millisecond,
            csv: None,
        }
    }

    #[test]
    fn columns_and_types_as_dms_writes_them() {
        let mut t = orders();
        t.columns.push(col("u", 2950, -1));
        t.columns.push(col("j", 3802, -1));
        t.columns.push(col("m", 790, -1));
        t.columns.push(col("n", 1700, -1));
        t.columns.push(col("ts", 1114, -1));
        let d = dms(false);
        let src = d.source_table(&Arc::new(t)).unwrap();
        let cdc = d.arrow_schema(&src, DmsFile::Cdc);
        let got: Vec<(&str, &DataType, bool)> = cdc
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type(), f.is_nullable()))
            .collect();
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        assert_eq!(
            got,
            [
                ("Op", &DataType::Utf8, false),
                ("DMS_TIMESTAMP", &DataType::Utf8, false),
                ("id", &DataType::Int64, true),
                ("region", &DataType::Utf8, true),
                ("amount", &DataType::Decimal128(10, 2), true),
                ("tags", &DataType::Utf8, true),
                ("name", &DataType::Utf8, true),
                ("u", &DataType::Utf8, true),
                ("j", &DataType::Utf8, true),
                ("m", &DataType::Decimal128(38, 4), true),
                ("n", &DataType::Utf8, true),
                ("ts", &ts, true),
            ]
        );
        // Without include_op_for_full_load, LOAD files have no Op.
        assert_eq!(
            d.arrow_schema(&src, DmsFile::Load).field(0).name(),
            "DMS_TIMESTAMP"
        );
    }

    #[test]
    fn truncate_is_never_written_and_inserts_only_keeps_inserts() {
        use RowOp::*;
        let all: Vec<bool> = [Load, Insert, Update, Delete, Truncate]
            .iter()
            .map(|&o| dms(false).keeps(o))
            .collect();
        assert_eq!(all, [true, true, true, true, false]);
        let only: Vec<bool> = [Load, Insert, Update, Delete, Truncate]
            .iter()
            .map(|&o| dms(true).keeps(o))
            .collect();
        assert_eq!(only, [true, true, false, false, false]);
    }

    #[test]
    fn a_column_named_like_a_dms_column_is_refused() {
        let mut t = orders();
        t.columns.push(col("DMS_TIMESTAMP", 25, -1));
        let e = dms(false).source_table(&Arc::new(t)).unwrap_err();
        assert!(e.message.contains("DMS_TIMESTAMP"), "{e}");
    }

    #[test]
    fn money_texts() {
        assert_eq!(parse_money("$1,234.56"), Some(12_345_600));
        assert_eq!(parse_money("-$1,234.56"), Some(-12_345_600));
        assert_eq!(parse_money("($0.07)"), Some(-700));
        assert_eq!(parse_money("$47,632,969,758.54"), Some(476_329_697_585_400));
        assert_eq!(parse_money("12"), Some(120_000));
        assert_eq!(parse_money("$"), None);
    }

    #[test]
    fn decimal_sizes_match_parquet() {
        // DMS's file: numeric(15,2) in 7 bytes, DECIMAL(38,4) in 16.
        assert_eq!(decimal_bytes(15), 7);
        assert_eq!(decimal_bytes(38), 16);
        assert_eq!(decimal_bytes(9), 4);
        assert_eq!(decimal_bytes(2), 1);
    }

    #[test]
    fn timestamp_text_as_dms() {
        // The first DMS_TIMESTAMP of the real file.
        assert_eq!(
            dms_timestamp_text(1_658_817_978_616_807),
            "2022-07-26 06:46:18.616807"
        );
    }

    #[test]
    fn csv_files_drop_op_only_for_inserts_only_without_op_in_the_load() {
        let src = dms(false).source_table(&Arc::new(orders())).unwrap();
        let first = |d: &DmsColumns, f| d.arrow_schema(&src, f).field(0).name().clone();
        let csv = |inserts_only, op_in_load| DmsColumns {
            include_op_for_full_load: op_in_load,
            csv: Some(CsvFormat::default()),
            ..dms(inserts_only)
        };
        assert_eq!(first(&csv(false, false), DmsFile::Cdc), "Op");
        assert_eq!(first(&csv(true, false), DmsFile::Cdc), "DMS_TIMESTAMP");
        assert_eq!(first(&csv(true, true), DmsFile::Cdc), "Op");
        assert_eq!(first(&csv(true, true), DmsFile::Load), "Op");
        // Parquet keeps Op with cdc_inserts_only.
        assert_eq!(first(&dms(true), DmsFile::Cdc), "Op");
        assert_eq!((dms(true).extension(), csv(true, true).extension()), ("parquet", "csv"));
    }
}
