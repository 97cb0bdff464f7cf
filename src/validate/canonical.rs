//! Reading a source table through the same type mapping as the output, so that source and
//! target values compare cell by cell as canonical strings ([`crate::batch::cell_to_string`]).

use std::sync::Arc;

use bytes::Bytes;

use super::compare::{Row, Rows};
use crate::batch::{TableBatchBuilder, cell_to_string};
use crate::model::{OutputRow, TableSchema};
use crate::error::{Error, Result};
use crate::model::{Lsn, RowOp};
use crate::model::TupleValue;
use crate::source::publication::{with_row_filter, PublishedTable};
use crate::source::quote::{qualified, quote_ident};
use super::source_rows::SourceRows;

/// `table`'s columns (in `table.columns` order) as text, as `client` sees the source now (in
/// its transaction's snapshot, if any): `SELECT … FROM [ONLY] schema.table [WHERE (filter)]`.
/// With `only`, rows of inheritance children and partitions are left out. The input of
/// [`canonical_rows`] and [`canonical_list`], read whole or in chunks ([`SourceRows`]).
pub async fn read_source_rows<'a>(
    client: &'a tokio_postgres::Client,
    table: &TableSchema,
    only: bool,
    row_filter: Option<&str>,
) -> Result<SourceRows<'a>> {
    let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    Ok(SourceRows::new(client, select_sql((&table.schema, &table.name), &columns, only, row_filter)))
}

/// [`read_source_rows`] for a table shaped by the rules: the output columns of
/// `published.schema`, each read from its source column of the source table, with the
/// publication's and the rules' row filter. A text override needs nothing more: the text
/// form is what a text query returns for any type.
pub async fn read_published_rows<'a>(
    client: &'a tokio_postgres::Client,
    published: &PublishedTable,
    only: bool,
) -> Result<SourceRows<'a>> {
    let columns: Vec<&str> = published.columns.iter().map(|c| c.name.as_str()).collect();
    let source = (published.source.schema.as_str(), published.source.name.as_str());
    Ok(SourceRows::new(client, select_sql(source, &columns, only, published.row_filter.as_deref())))
}

fn select_sql((schema, table): (&str, &str), columns: &[&str], only: bool, row_filter: Option<&str>) -> String {
    format!(
        "SELECT {} FROM {}{}{}",
        columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", "),
        if only { "ONLY " } else { "" },
        qualified(schema, table),
        with_row_filter("", row_filter)
    )
}

/// Converts text rows (as `simple_query` returns them, in column order) through the Arrow
/// type mapping of `table`, keyed by `table.key`: the source side of
/// [`super::compare::compare_keyed`]. Rows with the same key collapse into one.
///
/// Errors when a value does not convert to its column's output type (names the table).
pub fn canonical_rows(table: &Arc<TableSchema>, text_rows: &[Row]) -> Result<Rows> {
    Ok(canonical_list(table, text_rows)?
        .into_iter()
        .map(|vals| (table.key.iter().map(|&k| vals[k].clone()).collect(), vals))
        .collect())
}

/// Text rows through the Arrow type mapping of `table`, in order, as canonical strings
/// (the source side of [`super::compare::compare_multisets`] once counted).
pub fn canonical_list(table: &Arc<TableSchema>, text_rows: &[Row]) -> Result<Vec<Row>> {
    let mut builder = TableBatchBuilder::new(table.clone());
    let mut out = Vec::with_capacity(text_rows.len());
    let mut values: Vec<TupleValue> = Vec::with_capacity(table.columns.len());
    for chunk in text_rows.chunks(8192) {
        for r in chunk {
            values.clear();
            values.extend(r.iter().map(|v| match v {
                None => TupleValue::Null,
                Some(s) => TupleValue::Text(Bytes::copy_from_slice(s.as_bytes())),
            }));
            builder
                .append(&OutputRow {
                    op: RowOp::Load,
                    lsn: Lsn::ZERO,
                    seq: 0,
                    xid: None,
                    commit_ts_us: 0,
                    values: &values,
                })
                .map_err(|e| Error::runtime(format!("{}.{}: {e}", table.schema, table.name)))?;
        }
        let batch = builder.finish();
        for r in 0..batch.num_rows() {
            out.push(
                (0..table.columns.len())
                    .map(|c| cell_to_string(batch.column(c).as_ref(), r))
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// [`canonical_list`] for the partitioned comparison: each row of `text_rows` (taken, its
/// strings moved into the builder without a copy) through the type mapping of `table`,
/// encoded as a region of [`super::packed`] into `f`, in order. A `Utf8` value is its own
/// canonical string ([`cell_to_string`]) and is copied straight from the batch.
pub(super) fn canonical_regions(
    table: &Arc<TableSchema>,
    text_rows: Vec<Row>,
    mut f: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    let mut builder = TableBatchBuilder::new(table.clone());
    let mut values: Vec<TupleValue> = Vec::with_capacity(table.columns.len());
    let mut region = Vec::new();
    let mut rows = text_rows.into_iter().peekable();
    while rows.peek().is_some() {
        for r in rows.by_ref().take(8192) {
            values.clear();
            values.extend(r.into_iter().map(|v| match v {
                None => TupleValue::Null,
                Some(s) => TupleValue::Text(Bytes::from(s)),
            }));
            builder
                .append(&OutputRow { op: RowOp::Load, lsn: Lsn::ZERO, seq: 0, xid: None, commit_ts_us: 0, values: &values })
                .map_err(|e| Error::runtime(format!("{}.{}: {e}", table.schema, table.name)))?;
        }
        let batch = builder.finish();
        let columns: Vec<&dyn Array> = (0..table.columns.len()).map(|c| batch.column(c).as_ref()).collect();
        for r in 0..batch.num_rows() {
            region.clear();
            super::packed::put_varint(&mut region, columns.len() as u64);
            for a in &columns {
                match a.data_type() {
                    arrow_schema::DataType::Utf8 if !a.is_null(r) => {
                        super::packed::put_value(&mut region, Some(a.as_string::<i32>().value(r).as_bytes()))
                    }
                    _ => super::packed::put_value(&mut region, cell_to_string(*a, r).as_deref().map(str::as_bytes)),
                }
            }
            f(&region)?;
        }
    }
    Ok(())
}
