//! Taking the validation snapshot within `--timeout`, saying what it waits for.
//!
//! `CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT` waits until every transaction that holds a
//! transaction id when it starts has ended, prepared transactions included (they wait for
//! `COMMIT PREPARED` / `ROLLBACK PREPARED`, possibly forever). [`create_snapshot_slot`]
//! bounds that wait by the command's deadline, logs the transactions it waits for once the
//! wait gets noticeable, and on timeout cancels the server-side creation and fails with
//! the list and how to end them.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::source::catalog::Catalog;
use crate::source::replication::{ReplicationConn, SlotCreated, SnapshotAction};
use crate::source::sql;

/// After this long, the transactions the snapshot waits for are logged.
const REPORT_AFTER: Duration = Duration::from_secs(2);

/// Creates the temporary slot `slot` with an exported snapshot on `repl`, giving up at
/// `deadline` (exit 1, naming what it waited for). `control` is an ordinary session used to
/// look at the server's transactions and to cancel the creation on timeout.
pub async fn create_snapshot_slot(
    repl: &mut ReplicationConn,
    control: &Catalog,
    slot: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<SlotCreated> {
    let create = repl.create_slot(slot, true, SnapshotAction::Export);
    tokio::pin!(create);
    let report_at = tokio::time::sleep(REPORT_AFTER);
    tokio::pin!(report_at);
    let mut reported = false;
    let expired = tokio::time::sleep_until(deadline.into());
    tokio::pin!(expired);
    loop {
        tokio::select! {
            r = &mut create => return r,
            _ = &mut report_at, if !reported => {
                reported = true;
                let waits = blockers(control).await;
                if !waits.is_empty() {
                    tracing::warn!("the validation snapshot waits for {} to end: {}", plural(waits.len()), waits.join("; "));
                }
            }
            _ = &mut expired => break,
        }
    }
    let waits = blockers(control).await;
    cancel_creation(control, slot).await;
    let what = if waits.is_empty() {
        "transactions that were running when it started".to_string()
    } else {
        format!("{}: {}", plural(waits.len()), waits.join("; "))
    };
    Err(Error::runtime(format!(
        "gave up after {} (--timeout): the server waits for {what} to end",
        humantime::format_duration(timeout)
    ))
    .with_hint(
        "a snapshot can only be taken once they end: finish a prepared transaction with COMMIT PREPARED 'gid' or ROLLBACK PREPARED 'gid', \
         commit or roll back (or pg_terminate_backend(pid)) a long-running session, or raise --timeout",
    ))
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 transaction".into()
    } else {
        format!("{n} transactions")
    }
}

/// Prepared transactions and sessions holding a transaction id, oldest first, one line each.
/// Empty when they cannot be read (the message then stays general).
async fn blockers(control: &Catalog) -> Vec<String> {
    let sql_text = "SELECT 'prepared transaction ' || quote_literal(gid) || ' (xid ' || transaction::text
                || ', database ' || database || ', owner ' || owner || ', prepared '
                || date_trunc('second', now() - prepared)::text || ' ago)'
           FROM pg_prepared_xacts
          UNION ALL
         SELECT 'transaction of pid ' || pid || ' (xid ' || backend_xid::text || ', '
                || coalesce(state, '?') || ' for ' || date_trunc('second', now() - xact_start)::text
                || ', user ' || coalesce(usename::text, '?') || ', database ' || coalesce(datname::text, '?')
                || ': ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 80) || ')'
           FROM pg_stat_activity
          WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend'";
    match control.client.simple_query(sql_text).await {
        Ok(msgs) => msgs
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .collect(),
        Err(e) => {
            tracing::debug!("listing running transactions: {}", sql::db_error_text(&e));
            Vec::new()
        }
    }
}

/// Cancels the walsender still creating `slot`, so that nothing is left waiting on the
/// server once we give up (the temporary slot goes with it).
async fn cancel_creation(control: &Catalog, slot: &str) {
    let r = control
        .client
        .execute(
            "SELECT pg_cancel_backend(pid) FROM (
                 SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL
                 UNION
                 SELECT pid FROM pg_stat_activity WHERE backend_type = 'walsender' AND strpos(query, $1) > 0) p",
            &[&slot],
        )
        .await;
    if let Err(e) = r {
        tracing::debug!(
            "cancelling the validation slot's creation: {}",
            sql::db_error_text(&e)
        );
    }
}
