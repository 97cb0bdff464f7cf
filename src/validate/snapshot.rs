//! The validation snapshot and its LSN (step 1 of [`super::run`]): a temporary logical slot
//! with an exported snapshot, imported by an ordinary session that keeps its
//! `REPEATABLE READ READ ONLY` transaction open until the comparison is done.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::model::Lsn;
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;
use crate::source::quote::{quote_ident, quote_literal};
use crate::source::replication::ReplicationConn;
use crate::source::sql;

/// An open validation snapshot. The replication connection stays idle while `catalog`
/// reads; [`ValidationSnapshot::release`] ends both.
pub(super) struct ValidationSnapshot {
    /// The slot's consistent point: a transaction is visible in the snapshot exactly when its
    /// commit record starts before it (its `_lsn < lsn`).
    pub lsn: Lsn,
    /// A session inside the snapshot's transaction.
    pub catalog: Catalog,
    repl: ReplicationConn,
    slot: String,
}

impl ValidationSnapshot {
    /// Creates the temporary slot (waiting for running transactions to end, at most until
    /// `deadline`; `timeout` is named in the error) and imports its snapshot into a new
    /// session. `control` is an ordinary session used to see and cancel what the creation
    /// waits for ([`super::waiting`]).
    pub async fn take(
        info: &ConnInfo,
        control: &Catalog,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<ValidationSnapshot> {
        let mut repl = ReplicationConn::connect(info).await?;
        // Unique on the server: the pid, plus the time for processes on other machines.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let slot = format!("pgcdc_validate_{}_{nanos}", std::process::id());
        tracing::info!(slot = %slot, "taking the validation snapshot (a temporary slot; waits for running transactions to finish)");
        let created =
            super::waiting::create_snapshot_slot(&mut repl, control, &slot, deadline, timeout)
                .await
                .map_err(|e| {
                    e.context("creating the temporary slot for the validation snapshot")
                })?;
        let lsn = created.consistent_point;
        let snapshot = created.snapshot_name.ok_or_else(|| {
            Error::runtime("the server created the validation slot but exported no snapshot")
        })?;
        let client = sql::connect(info).await?;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {};
             SET LOCAL idle_in_transaction_session_timeout = 0; SET LOCAL statement_timeout = 0",
                quote_literal(&snapshot)
            ))
            .await
            .map_err(|e| {
                Error::runtime(format!(
                    "importing the validation snapshot: {}",
                    sql::db_error_text(&e)
                ))
            })?;
        tracing::info!(lsn = %lsn, "validation snapshot taken");
        Ok(ValidationSnapshot {
            lsn,
            catalog: Catalog::new(client),
            repl,
            slot,
        })
    }

    /// Ends the snapshot's session, drops the temporary slot (it would go with the
    /// replication connection anyway) and closes that connection. Never fails.
    pub async fn release(self) {
        let ValidationSnapshot {
            catalog,
            mut repl,
            slot,
            ..
        } = self;
        drop(catalog);
        if let Err(e) = repl
            .simple_query(&format!("DROP_REPLICATION_SLOT {}", quote_ident(&slot)))
            .await
        {
            tracing::debug!("dropping the temporary slot: {e}");
        }
    }
}
