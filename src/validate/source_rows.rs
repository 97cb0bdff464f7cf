//! The source rows of one table as text, from the `SELECT` that
//! [`super::canonical::read_source_rows`] builds: all at once ([`SourceRows::all`]), or in
//! chunks through a cursor ([`SourceRows::next_chunk`]) so that a large table never is in
//! memory whole.

use super::compare::Row;
use crate::error::Result;
use crate::source::sql;

/// The cursor `validate` reads a table through (one table at a time per session).
const CURSOR: &str = "pgcdc_validate_rows";

/// A table's `SELECT` on a session, not run yet.
pub struct SourceRows<'a> {
    client: &'a tokio_postgres::Client,
    select: String,
    declared: bool,
    done: bool,
}

impl<'a> SourceRows<'a> {
    pub(super) fn new(client: &'a tokio_postgres::Client, select: String) -> SourceRows<'a> {
        SourceRows {
            client,
            select,
            declared: false,
            done: false,
        }
    }

    /// Every row, in one query (works outside a transaction too).
    pub async fn all(self) -> Result<Vec<Row>> {
        sql::simple_rows(self.client, &self.select).await
    }

    /// The next (at most) `n` rows, `None` after the last. Declares a cursor at the first
    /// call, so the session must be in a transaction (validate's snapshot transaction: the
    /// rows are those of its snapshot); the cursor is closed after the last row.
    pub async fn next_chunk(&mut self, n: usize) -> Result<Option<Vec<Row>>> {
        if self.done {
            return Ok(None);
        }
        if !self.declared {
            let declare = format!("DECLARE {CURSOR} NO SCROLL CURSOR FOR {}", self.select);
            sql::simple_rows(self.client, &declare).await?;
            self.declared = true;
        }
        let rows = sql::simple_rows(self.client, &format!("FETCH FORWARD {n} FROM {CURSOR}")).await?;
        if rows.is_empty() {
            self.done = true;
            sql::simple_rows(self.client, &format!("CLOSE {CURSOR}")).await?;
            return Ok(None);
        }
        Ok(Some(rows))
    }
}
