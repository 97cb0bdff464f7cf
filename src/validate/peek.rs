//! Looking at the changes still pending in the pipeline's slot, without consuming them:
//! whether any transaction between the target's checkpoint and the validation LSN changes a
//! validated table. Read with `pg_logical_slot_peek_binary_changes` (which needs the slot
//! idle) and decoded with the same pgoutput decoder as replication.

use std::collections::HashSet;

use bytes::Bytes;
use futures_util::TryStreamExt;

use crate::error::{Error, Result};
use crate::model::Lsn;
use crate::source::catalog::Catalog;
use crate::source::pgoutput::{Decoder, PgOutputMessage};
use crate::source::quote::quote_ident;
use crate::source::sql;

/// The pgoutput protocol version peeked with: no streaming, so every change arrives inside
/// its transaction's Begin … Commit.
const PROTO_VERSION: u32 = 1;

/// Transactions in `slot` (read through `publication`) that committed before `until`, end after
/// the target's checkpoint `at` and change one of `relids`. Nothing is consumed.
///
/// Errors (the slot is busy or gone, a message does not decode) are one message; the caller
/// reports it as "could not check the changes in between" and keeps waiting.
pub(super) async fn pending_transactions(
    control: &Catalog,
    slot: &str,
    publication: &str,
    at: Lsn,
    until: Lsn,
    relids: &HashSet<u32>,
) -> Result<usize> {
    let (v, publication, proto) = (
        until.to_string(),
        quote_ident(publication),
        PROTO_VERSION.to_string(),
    );
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&slot, &v, &publication, &proto];
    let rows = control
        .client
        .query_raw(
            "SELECT data FROM pg_logical_slot_peek_binary_changes($1::text::name, $2::text::pg_lsn, NULL,
                        'proto_version', $4::text, 'publication_names', $3::text)",
            params,
        )
        .await
        .map_err(|e| Error::runtime(sql::db_error_text(&e)))?;
    futures_util::pin_mut!(rows);
    let mut decoder = Decoder::new(PROTO_VERSION);
    let mut pending = PendingCount::new(at, relids);
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| Error::runtime(sql::db_error_text(&e)))?
    {
        let data: Vec<u8> = row.get(0);
        let msg = decoder
            .decode(Bytes::from(data))
            .map_err(|e| Error::runtime(format!("decoding a peeked change: {e}")))?;
        pending.feed(&msg);
    }
    Ok(pending.count)
}

/// Counts transactions that change one of `relids` and end after `at`, fed message by
/// message in slot order.
struct PendingCount<'a> {
    at: Lsn,
    relids: &'a HashSet<u32>,
    /// Whether the open transaction changed a validated table so far.
    touches: bool,
    count: usize,
}

impl<'a> PendingCount<'a> {
    fn new(at: Lsn, relids: &'a HashSet<u32>) -> PendingCount<'a> {
        PendingCount {
            at,
            relids,
            touches: false,
            count: 0,
        }
    }

    fn feed(&mut self, msg: &PgOutputMessage) {
        match msg {
            PgOutputMessage::Begin { .. } => self.touches = false,
            PgOutputMessage::Insert { relid, .. }
            | PgOutputMessage::Update { relid, .. }
            | PgOutputMessage::Delete { relid, .. } => self.touches |= self.relids.contains(relid),
            PgOutputMessage::Truncate { relids, .. } => {
                self.touches |= relids.iter().any(|r| self.relids.contains(r))
            }
            PgOutputMessage::Commit { end_lsn, .. } => {
                if self.touches && *end_lsn > self.at {
                    self.count += 1;
                }
                self.touches = false;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::pgoutput::Tuple;

    fn commit(end: u64) -> PgOutputMessage {
        PgOutputMessage::Commit {
            flags: 0,
            commit_lsn: Lsn(end - 8),
            end_lsn: Lsn(end),
            commit_ts: Default::default(),
        }
    }

    fn begin() -> PgOutputMessage {
        PgOutputMessage::Begin {
            final_lsn: Lsn(0),
            commit_ts: Default::default(),
            xid: 1,
        }
    }

    #[test]
    fn counts_transactions_after_the_checkpoint_that_touch_validated_tables() {
        let relids: HashSet<u32> = [7].into();
        let mut p = PendingCount::new(Lsn(100), &relids);
        let insert = |relid| PgOutputMessage::Insert {
            xid: None,
            relid,
            new: Tuple::default(),
        };
        // Before the checkpoint: not pending.
        for m in [begin(), insert(7), commit(100)] {
            p.feed(&m);
        }
        // Another table only: not pending.
        for m in [begin(), insert(8), commit(200)] {
            p.feed(&m);
        }
        // A validated table, after the checkpoint: pending; also through a truncate.
        for m in [
            begin(),
            insert(8),
            insert(7),
            commit(300),
            begin(),
            PgOutputMessage::Truncate {
                xid: None,
                options: 0,
                relids: vec![9, 7],
            },
            commit(400),
        ] {
            p.feed(&m);
        }
        assert_eq!(p.count, 2);
    }
}
