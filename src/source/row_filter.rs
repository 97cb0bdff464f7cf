//! Evaluating a row filter on one change's values with the server, for the filters pgcdc
//! applies itself (`crate::pipeline::row_filter`): PostgreSQL parses and evaluates the
//! expression, so it means exactly what it means in the full load's `WHERE` and in a
//! publication.

use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

use super::catalog::Catalog;
use super::quote::quote_ident;
use crate::error::{Error, Result};
use crate::model::{TableSchema, TupleValue};

impl Catalog {
    /// Prepares `SELECT (expr) IS TRUE FROM (SELECT $1::text::type1 AS "c1", …) AS "table"`
    /// over every column of `table` (source names and types): the statement
    /// [`Catalog::row_filter_holds`] runs. Errors name the table and the server's message.
    pub async fn row_filter_statement(&self, table: &TableSchema, expr: &str) -> Result<Statement> {
        let oids: Vec<u32> = table.columns.iter().map(|c| c.type_oid).collect();
        let typmods: Vec<i32> = table.columns.iter().map(|c| c.type_modifier).collect();
        let names = self
            .client
            .query("SELECT format_type(t, m) FROM unnest($1::oid[], $2::int4[]) WITH ORDINALITY AS u(t, m, n) ORDER BY n", &[&oids, &typmods])
            .await
            .map_err(|e| super::sql::query_error("reading the columns' type names", &e))?;
        let columns: Vec<String> = table
            .columns
            .iter()
            .zip(&names)
            .enumerate()
            .map(|(i, (c, row))| format!("${}::text::{} AS {}", i + 1, row.get::<_, String>(0), quote_ident(&c.name)))
            .collect();
        let sql = format!("SELECT ({expr}) IS TRUE FROM (SELECT {}) AS {}", columns.join(", "), quote_ident(&table.name));
        self.client.prepare(&sql).await.map_err(|e| {
            Error::config(format!("the row filter of {} ({expr}) is not valid: {}", table.qualified_name(), super::sql::db_error_text(&e)))
                .with_hint("fix the rule's `where`: a PostgreSQL boolean expression over the table's columns")
        })
    }

    /// Whether the filter of `statement` (from [`Catalog::row_filter_statement`]) holds for
    /// `values`, one per column; `Unchanged` (not sent) counts as NULL.
    pub async fn row_filter_holds(&self, statement: &Statement, table: &str, values: &[TupleValue]) -> Result<bool> {
        let texts: Vec<Option<String>> = values
            .iter()
            .map(|v| match v {
                TupleValue::Text(b) | TupleValue::Binary(b) => Some(String::from_utf8_lossy(b).into_owned()),
                TupleValue::Null | TupleValue::Unchanged => None,
            })
            .collect();
        let params: Vec<&(dyn ToSql + Sync)> = texts.iter().map(|t| t as &(dyn ToSql + Sync)).collect();
        let row = self
            .client
            .query_one(statement, &params)
            .await
            .map_err(|e| Error::runtime(format!("evaluating the row filter of {table}: {}", super::sql::db_error_text(&e))))?;
        Ok(row.get(0))
    }
}
