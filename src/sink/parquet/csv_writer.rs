//! DMS's CSV files (`layout = "dms"`, `format = "csv"`, SPEC 5.2): the second file encoder
//! beside [`super::writer::PartWriter`], staged, sealed and published exactly like a Parquet
//! part (see [`super::part_file`]), so exactly-once and crash recovery do not change.
//!
//! A file holds the batches of [`super::dms_schema::DmsColumns::convert`] (the same columns as
//! the DMS Parquet files: `Op` first in CDC files, in LOAD files only with
//! `include_op_for_full_load`, then `timestamp_column`, then the table's columns), one line
//! per row. The conventions are AWS DMS's S3 target defaults (its `S3Settings` reference, and
//! the real DMS files in `testdata/dms_s3/oracle_source_csv/`):
//!
//! * comma between fields, `\n` after every row (the last one too), UTF-8, no byte order mark;
//! * no header row unless `add_column_name = true` (DMS `AddColumnName`), then one line of
//!   column names first;
//! * NULL is an empty, unquoted field, or the `csv_null_value` text unquoted (DMS
//!   `CsvNullValue`);
//! * a value is enclosed in double quotes only when it needs them: when it holds a comma, a
//!   double quote, CR or LF (DMS documents quotes and line breaks for `Rfc4180`, whose default
//!   is on; RFC 4180 also requires the delimiter), when it is the empty string (`""`, so that
//!   it differs from NULL, as PostgreSQL's `COPY … CSV` writes it; DMS's documentation does
//!   not say how it writes an empty string), or when it equals a non-empty `csv_null_value`.
//!   A double quote inside a quoted value is doubled.
//! * `compression = "gzip"` (DMS `CompressionType = GZIP`) writes the file as one gzip member
//!   and names it `.csv.gz`.
//!
//! Values (see [`csv_text`]): integers and decimals as plain decimal text with the column's
//! scale (`24000.00`, exact, as in the real DMS files; `money` as DECIMAL(38,4):
//! `2.2500`); timestamps and timestamptz as the UTC time `YYYY-MM-DD HH:MM:SS[.ffffff]`
//! without an offset (the fraction only when not zero, trailing zeros cut, as the real DMS
//! files' `1987-06-17 00:00:00`); everything DMS's documentation and files do not settle is
//! written in PostgreSQL's own text form: booleans `t`/`f`, floats shortest round-trip
//! (`1.5`, `1e+20`, `NaN`, `Infinity`), dates `2024-01-31` (` BC`, `infinity` kept), times
//! `12:34:56.5`, bytea `\x` and lower-case hex, and every string column (uuid, json, jsonb,
//! interval, arrays, unconstrained numeric, …) as PostgreSQL printed it.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, TimestampMicrosecondType, TimestampMillisecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use flate2::write::GzEncoder;

use super::writer::{LsnRange, SealedPart};
use crate::batch::cell_to_string;
use crate::batch::text::format_timestamp;
use crate::error::{Error, Result, ResultExt};
use crate::model::TableSchema;

/// Write the line buffer to the file once it holds this many bytes.
const FLUSH_BYTES: usize = 1 << 20;

/// The CSV options of one sink (from `add_column_name`, `csv_null_value`, `compression`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvFormat {
    /// A first line of column names (DMS `AddColumnName`).
    pub header: bool,
    /// The text of a NULL (DMS `CsvNullValue`); empty by default.
    pub null_value: String,
    /// Gzip the file (DMS `CompressionType = GZIP`).
    pub gzip: bool,
}

impl CsvFormat {
    /// The file name extension: `csv` or `csv.gz`.
    pub fn extension(&self) -> &'static str {
        if self.gzip {
            "csv.gz"
        } else {
            "csv"
        }
    }
}

/// A file that counts the bytes that reached it (the file's size so far).
struct Counting {
    file: File,
    bytes: u64,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

enum Out {
    Plain(BufWriter<Counting>),
    Gzip(GzEncoder<BufWriter<Counting>>),
}

/// One CSV file being written in the staging directory. Nothing here is visible to readers:
/// the sink publishes sealed files.
pub struct CsvPartWriter {
    pub path: PathBuf,
    pub schema: Arc<TableSchema>,
    arrow_schema: SchemaRef,
    out: Option<Out>,
    null_value: String,
    /// Rows formatted but not written to `out` yet.
    line: String,
    pub rows: u64,
}

impl CsvPartWriter {
    /// Creates the file at `path` for batches of `arrow_schema` (rows of `schema`), writing
    /// the header line first when `format.header`.
    pub fn create(
        path: PathBuf,
        schema: Arc<TableSchema>,
        arrow_schema: SchemaRef,
        format: &CsvFormat,
    ) -> Result<CsvPartWriter> {
        let file = File::create(&path).runtime_ctx(|| format!("creating {}", path.display()))?;
        let inner = BufWriter::with_capacity(256 << 10, Counting { file, bytes: 0 });
        let out = if format.gzip {
            Out::Gzip(GzEncoder::new(inner, flate2::Compression::default()))
        } else {
            Out::Plain(inner)
        };
        let mut w = CsvPartWriter {
            path,
            schema,
            arrow_schema,
            out: Some(out),
            null_value: format.null_value.clone(),
            line: String::with_capacity(FLUSH_BYTES + (64 << 10)),
            rows: 0,
        };
        if format.header {
            let names: Vec<&str> = w
                .arrow_schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            let mut line = String::new();
            push_record(&mut line, names.iter().map(|n| Some(*n)), &w.null_value);
            w.line = line;
        }
        Ok(w)
    }

    /// Appends the rows of `batch` (of the file's Arrow schema).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.schema().fields() != self.arrow_schema.fields() {
            return Err(Error::runtime(format!(
                "internal: a batch of another shape for {}",
                self.path.display()
            )));
        }
        let columns = batch.columns();
        for row in 0..batch.num_rows() {
            let fields = columns.iter().map(|c| csv_text(c.as_ref(), row));
            push_owned_record(&mut self.line, fields, &self.null_value);
            if self.line.len() >= FLUSH_BYTES {
                self.flush_line()?;
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn flush_line(&mut self) -> Result<()> {
        let bytes = std::mem::take(&mut self.line);
        let path = &self.path;
        let res = match self.out.as_mut() {
            Some(Out::Plain(w)) => w.write_all(bytes.as_bytes()),
            Some(Out::Gzip(w)) => w.write_all(bytes.as_bytes()),
            None => return Err(Error::runtime("internal: CSV file already sealed")),
        };
        res.runtime_ctx(|| format!("writing {}", path.display()))?;
        self.line = bytes;
        self.line.clear();
        Ok(())
    }

    /// About what the file weighs so far (compressed bytes with gzip, except what the
    /// compressor still holds), plus the rows not written yet.
    pub fn size(&self) -> u64 {
        let on_disk = |w: &BufWriter<Counting>| w.get_ref().bytes + w.buffer().len() as u64;
        let written = match &self.out {
            Some(Out::Plain(w)) => on_disk(w),
            Some(Out::Gzip(w)) => on_disk(w.get_ref()),
            None => 0,
        };
        written + self.line.len() as u64
    }

    /// Writes what is buffered, ends the gzip stream, fsyncs.
    pub fn seal(mut self, range: LsnRange) -> Result<SealedPart> {
        self.flush_line()?;
        let path = self.path.clone();
        let ctx = || format!("finishing {}", path.display());
        let buffered = match self.out.take() {
            Some(Out::Plain(w)) => w,
            Some(Out::Gzip(w)) => w.finish().runtime_ctx(ctx)?,
            None => return Err(Error::runtime("internal: CSV file already sealed")),
        };
        let counting = buffered
            .into_inner()
            .map_err(|e| e.into_error())
            .runtime_ctx(ctx)?;
        counting
            .file
            .sync_all()
            .runtime_ctx(|| format!("fsync of {}", path.display()))?;
        tracing::debug!(path = %path.display(), rows = self.rows, bytes = counting.bytes, "sealed a CSV part");
        Ok(SealedPart {
            path,
            schema: self.schema.clone(),
            first_lsn: range.first_lsn,
            last_lsn: range.last_lsn,
            first_ts_us: range.first_ts_us,
        })
    }
}

/// The text of one cell in a DMS CSV file; `None` for NULL. See the module documentation
/// for each type's form.
pub fn csv_text(array: &dyn Array, row: usize) -> Option<Cow<'_, str>> {
    if array.is_null(row) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Utf8 => Cow::Borrowed(array.as_string::<i32>().value(row)),
        DataType::Timestamp(unit, _) => {
            let us = match unit {
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .saturating_mul(1000),
                _ => array.as_primitive::<TimestampMicrosecondType>().value(row),
            };
            // UTC, without PostgreSQL's `+00`: DMS writes timestamptz as UTC times.
            Cow::Owned(format_timestamp(us, false))
        }
        DataType::Float64 => Cow::Owned(pg_float8(array.as_primitive::<Float64Type>().value(row))),
        DataType::Float32 => Cow::Owned(pg_float4(array.as_primitive::<Float32Type>().value(row))),
        _ => Cow::Owned(cell_to_string(array, row)?),
    })
}

/// `float8` as PostgreSQL prints it (`extra_float_digits` ≥ 1, the default since 12): the
/// shortest digits that read back to the same value, fixed-point for decimal exponents
/// -4..14, else `d.ddde±XX`.
pub fn pg_float8(v: f64) -> String {
    if !v.is_finite() {
        return special(v);
    }
    pg_shortest(&format!("{v:e}"), 15)
}

/// `float4` as PostgreSQL prints it: as [`pg_float8`] with fixed-point for exponents -4..5.
pub fn pg_float4(v: f32) -> String {
    if !v.is_finite() {
        return special(v as f64);
    }
    pg_shortest(&format!("{v:e}"), 6)
}

fn special(v: f64) -> String {
    crate::batch::display::non_finite_text(v).unwrap_or("NaN").to_string()
}

/// Rust's shortest round-trip scientific form (`-1.2345e3`) laid out as PostgreSQL's
/// float output: fixed-point when `-4 <= exponent < fixed_below`.
fn pg_shortest(sci: &str, fixed_below: i32) -> String {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut s = String::from(sign);
    if (-4..fixed_below).contains(&exp) {
        if exp < 0 {
            s.push_str("0.");
            s.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            s.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                s.push_str(&digits);
                s.extend(std::iter::repeat_n('0', int_len - digits.len()));
            } else {
                s.push_str(&digits[..int_len]);
                s.push('.');
                s.push_str(&digits[int_len..]);
            }
        }
    } else {
        s.push_str(&digits[..1]);
        if digits.len() > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    }
    s
}

/// Appends one field: NULL as `null_value`, a value quoted only when it must be (see the
/// module documentation).
pub fn push_field(out: &mut String, value: Option<&str>, null_value: &str) {
    let Some(v) = value else {
        out.push_str(null_value);
        return;
    };
    let quote = v.is_empty()
        || v.contains([',', '"', '\r', '\n'])
        || (!null_value.is_empty() && v == null_value);
    if !quote {
        out.push_str(v);
        return;
    }
    out.push('"');
    for part in v.split_inclusive('"') {
        out.push_str(part);
        if part.ends_with('"') {
            out.push('"');
        }
    }
    out.push('"');
}

/// Appends one record: fields separated by commas, then `\n`.
pub fn push_record<'a>(
    out: &mut String,
    fields: impl Iterator<Item = Option<&'a str>>,
    null_value: &str,
) {
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(out, f, null_value);
    }
    out.push('\n');
}

fn push_owned_record<'a>(
    out: &mut String,
    fields: impl Iterator<Item = Option<Cow<'a, str>>>,
    null_value: &str,
) {
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(out, f.as_deref(), null_value);
    }
    out.push('\n');
}

#[cfg(test)]
mod tests;
