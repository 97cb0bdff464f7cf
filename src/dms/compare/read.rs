//! Reading one DMS-shaped data file (Parquet or CSV, gzipped or not) into changes whose
//! values are in the *source* table's column order, normalised ([`super::normalise`]).
//!
//! Columns are matched by name to the source's (exactly, else ignoring case: DMS keeps an
//! Oracle source's upper-case names); `Op` is the operation; any other column (DMS's
//! `TimestampColumnName`, e.g. `DMS_TIMESTAMP`) is not compared. A CSV file's first line is
//! its header when every field of it is a column name (a source column, `Op`, or the
//! configured timestamp column) and one is a source column. Without a header (DMS's default,
//! `AddColumnName = false`) the columns are the source's, in order, after an optional `Op`
//! (a first field `I`, `U` or `D`) and an optional timestamp field: a record holds n, n + 1
//! or n + 2 fields for a table of n columns. A row without `Op` is a load row in a full-load
//! file, an insert in a CDC file (DMS's `CdcInsertsOnly`).

use std::io::Read;

use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::csv::{records, Field};
use super::files::{DataFile, Format};
use super::normalise::{normalise, Kind};
use crate::batch::cell_to_string;
use crate::error::{Error, Result};
use crate::model::{RowOp, TableSchema};
use crate::storage::Storage;

/// One row of a DMS file: its operation and the source columns' values (normalised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub op: RowOp,
    pub values: Vec<Option<String>>,
}

/// What reading needs to know about a table and the files' conventions.
pub struct TableReader<'a> {
    pub table: &'a TableSchema,
    pub kinds: Vec<Kind>,
    /// Columns compared at millisecond precision: DMS wrote them in milliseconds. Set by
    /// reading a Parquet file whose column is a millisecond timestamp.
    pub millis: Vec<bool>,
    /// The text of NULL in CSV files (DMS's `CsvNullValue`; empty by default).
    pub null_value: String,
    /// DMS's `TimestampColumnName`, if known; only used to recognise a header line.
    pub timestamp_column: Option<String>,
}

impl<'a> TableReader<'a> {
    pub fn new(
        table: &'a TableSchema,
        null_value: String,
        timestamp_column: Option<String>,
    ) -> Self {
        TableReader {
            kinds: table.columns.iter().map(Kind::of).collect(),
            millis: vec![false; table.columns.len()],
            table,
            null_value,
            timestamp_column,
        }
    }

    /// The source column named `name` (exactly, else ignoring case).
    pub fn column(&self, name: &str) -> Option<usize> {
        let cols = &self.table.columns;
        cols.iter()
            .position(|c| c.name == name)
            .or_else(|| cols.iter().position(|c| c.name.eq_ignore_ascii_case(name)))
    }

    /// Reads `file` of `storage`: its rows in file order. Errors name the file and say what
    /// was expected; a file that is not Parquet or CSV of this table is one such error.
    pub fn read(&mut self, storage: &dyn Storage, file: &DataFile) -> Result<Vec<Change>> {
        let name = format!("{}/{}", storage.describe(), file.key);
        let bad = |what: String| {
            Error::runtime(format!("cannot read the DMS file {name}: {what}"))
                .with_hint("compare reads DMS's Parquet and CSV files (.parquet, .csv, .csv.gz); move other files out of the folder")
        };
        let data = storage
            .get(&file.key)?
            .ok_or_else(|| bad("it vanished while compare read it".into()))?;
        let default_op = if file.load {
            RowOp::Load
        } else {
            RowOp::Insert
        };
        let mut rows = match file.format {
            Format::Parquet => self
                .read_parquet(data, default_op)
                .map_err(|e| bad(e.to_string()))?,
            Format::Csv { gzip } => {
                let bytes = if gzip {
                    let mut out = Vec::new();
                    flate2::read::MultiGzDecoder::new(&data[..])
                        .read_to_end(&mut out)
                        .map_err(|e| bad(format!("not gzip: {e}")))?;
                    out
                } else {
                    data
                };
                self.read_csv(&String::from_utf8_lossy(&bytes), default_op)
                    .map_err(|e| bad(e.message))?
            }
        };
        for row in &mut rows {
            for (i, v) in row.values.iter_mut().enumerate() {
                *v = normalise(self.kinds[i], self.millis[i], v.take());
            }
        }
        Ok(rows)
    }

    fn read_parquet(
        &mut self,
        data: Vec<u8>,
        default_op: RowOp,
    ) -> std::result::Result<Vec<Change>, Box<dyn std::error::Error>> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(data))?;
        let schema = builder.schema().clone();
        let mut op_col = None;
        let mut map = Vec::new();
        for (i, f) in schema.fields().iter().enumerate() {
            if f.name() == "Op" {
                op_col = Some(i);
            } else if let Some(c) = self.column(f.name()) {
                if matches!(f.data_type(), DataType::Timestamp(TimeUnit::Millisecond, _)) {
                    self.millis[c] = true;
                }
                map.push((i, c));
            }
        }
        let n = self.table.columns.len();
        let mut out = Vec::new();
        for batch in builder.build()? {
            let batch = batch?;
            for r in 0..batch.num_rows() {
                let op = match op_col {
                    Some(i) => op_of(cell_to_string(batch.column(i).as_ref(), r).as_deref())?,
                    None => default_op,
                };
                let mut values = vec![None; n];
                for &(i, c) in &map {
                    values[c] = cell_to_string(batch.column(i).as_ref(), r);
                }
                out.push(Change { op, values });
            }
        }
        Ok(out)
    }

    fn read_csv(&self, text: &str, default_op: RowOp) -> Result<Vec<Change>> {
        let mut recs = records(text).into_iter().peekable();
        let n = self.table.columns.len();
        let header: Option<Vec<Option<Target>>> = recs.peek().and_then(|first| self.header(first));
        if header.is_some() {
            recs.next();
        }
        let mut out = Vec::new();
        for (line, rec) in recs.enumerate() {
            let layout: Vec<Option<Target>> = match &header {
                Some(h) => h.clone(),
                None => {
                    let has_op =
                        matches!(rec.first().map(|f| f.text.as_str()), Some("I" | "U" | "D"))
                            && rec.len() > n;
                    let skip = rec.len().checked_sub(n).filter(|extra| *extra <= 2 && (!has_op || *extra >= 1)).ok_or_else(|| {
                        Error::runtime(format!(
                            "record {} has {} fields; {} has {n} columns (DMS adds at most Op and a timestamp column)",
                            line + 1,
                            rec.len(),
                            self.table.qualified_name()
                        ))
                    })?;
                    let mut l = vec![None; skip];
                    if has_op {
                        l[0] = Some(Target::Op);
                    }
                    l.extend((0..n).map(|c| Some(Target::Column(c))));
                    l
                }
            };
            let mut op = default_op;
            let mut values = vec![None; n];
            for (field, target) in rec.into_iter().zip(&layout) {
                match target {
                    Some(Target::Op) => {
                        op = op_of(Some(&field.text))
                            .map_err(|e| Error::runtime(format!("record {}: {e}", line + 1)))?
                    }
                    Some(Target::Column(c)) => values[*c] = field.value(&self.null_value),
                    None => {}
                }
            }
            out.push(Change { op, values });
        }
        Ok(out)
    }

    /// The columns of a header line, or `None` when `first` is a data record.
    fn header(&self, first: &[Field]) -> Option<Vec<Option<Target>>> {
        let mut any_column = false;
        let mut out = Vec::new();
        for f in first {
            if f.text == "Op" {
                out.push(Some(Target::Op));
            } else if let Some(c) = self.column(&f.text) {
                any_column = true;
                out.push(Some(Target::Column(c)));
            } else if self
                .timestamp_column
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(&f.text))
                || f.text == "DMS_TIMESTAMP"
            {
                out.push(None);
            } else {
                return None;
            }
        }
        any_column.then_some(out)
    }
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Op,
    Column(usize),
}

fn op_of(code: Option<&str>) -> std::result::Result<RowOp, Error> {
    match code {
        Some("I") => Ok(RowOp::Insert),
        Some("U") => Ok(RowOp::Update),
        Some("D") => Ok(RowOp::Delete),
        other => Err(Error::runtime(format!("Op is {other:?}, not I, U or D"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ColumnSchema, PgType};

    fn table() -> TableSchema {
        let col = |name: &str, pg_type: PgType| ColumnSchema {
            name: name.into(),
            type_oid: 25,
            type_modifier: -1,
            pg_type,
            replica_identity: false,
            attnum: None,
            missing: None,
        };
        TableSchema {
            relid: 1,
            schema: "hr".into(),
            name: "customer".into(),
            columns: vec![
                col("customerid", PgType::Text),
                col("email", PgType::Text),
                col("n", PgType::Float8),
            ],
            key: vec![0],
            replica_identity: b'd',
            relfilenode: None,
        }
    }

    #[test]
    fn csv_with_and_without_header_op_and_timestamp() {
        let t = table();
        let r = TableReader::new(&t, String::new(), Some("DMS_TIMESTAMP".into()));
        let with_header = r
            .read_csv(
                "CustomerID,Email,N\nB1,a@x,+5.0656000000000000e+05\n",
                RowOp::Load,
            )
            .unwrap();
        assert_eq!(
            with_header,
            vec![Change {
                op: RowOp::Load,
                values: vec![
                    Some("B1".into()),
                    Some("a@x".into()),
                    Some("+5.0656000000000000e+05".into())
                ]
            }]
        );
        let no_header = r.read_csv("U,B1,b@x,1\nD,B2,,\n", RowOp::Insert).unwrap();
        assert_eq!(no_header[0].op, RowOp::Update);
        assert_eq!(
            no_header[1],
            Change {
                op: RowOp::Delete,
                values: vec![Some("B2".into()), None, None]
            }
        );
        let op_ts = r
            .read_csv(
                "Op,DMS_TIMESTAMP,email,customerid,n\nI,2024-01-01 00:00:00.000000,e,B3,\n",
                RowOp::Insert,
            )
            .unwrap();
        assert_eq!(
            op_ts[0].values,
            vec![Some("B3".into()), Some("e".into()), None]
        );
        let ts_only = r
            .read_csv("2024-01-01 00:00:00.000000,B4,e,1\n", RowOp::Load)
            .unwrap();
        assert_eq!(
            (ts_only[0].op, ts_only[0].values[0].as_deref()),
            (RowOp::Load, Some("B4"))
        );
        let e = r.read_csv("a,b,c,d,e,f\n", RowOp::Load).unwrap_err();
        assert!(e.message.contains("has 6 fields"), "{e}");
    }
}
