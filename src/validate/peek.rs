//! Looking at the changes still pending in the pipeline's slot, without consuming them:
//! whether any transaction between the target's checkpoint and the validation LSN changes a
//! validated table (`pg_logical_slot_peek_binary_changes`, which needs the slot idle).

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::model::Lsn;
use crate::source::catalog::Catalog;
use crate::source::quote::quote_ident;
use crate::source::sql;

/// Transactions that committed before `v`, end after the target's checkpoint `at` and
/// change one of `relids`: peeked from the pipeline's slot (nothing is consumed).
pub(super) async fn pending_transactions(control: &Catalog, slot: &str, publication: &str, at: Lsn, v: Lsn, relids: &HashSet<u32>) -> Result<usize> {
    // pgoutput v1: Begin 'B', Commit 'C' (flags, commit LSN, end LSN, time), Insert 'I' /
    // Update 'U' / Delete 'D' (relid first), Truncate 'T' (count, options, relids).
    let rows = control
        .client
        .query(
            "SELECT get_byte(data, 0),
                    CASE get_byte(data, 0) WHEN 67 THEN substr(data, 11, 8) WHEN 84 THEN data ELSE substr(data, 2, 4) END
               FROM pg_logical_slot_peek_binary_changes($1::text::name, $2::text::pg_lsn, NULL,
                        'proto_version', '1', 'publication_names', $3::text)
              WHERE get_byte(data, 0) IN (66, 67, 73, 85, 68, 84)",
            &[&slot, &v.to_string(), &quote_ident(publication)],
        )
        .await
        .map_err(|e| Error::runtime(sql::db_error_text(&e)))?;
    let be_u32 = |b: &[u8], at: usize| b.get(at..at + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
    let mut pending = 0;
    let mut touches = false;
    for row in rows {
        let kind: i32 = row.get(0);
        let data: Vec<u8> = row.get(1);
        match kind as u8 {
            b'B' => touches = false,
            b'I' | b'U' | b'D' => touches |= be_u32(&data, 0).is_some_and(|r| relids.contains(&r)),
            b'T' => {
                let n = be_u32(&data, 1).unwrap_or(0) as usize;
                touches |= (0..n).any(|i| be_u32(&data, 6 + 4 * i).is_some_and(|r| relids.contains(&r)));
            }
            b'C' => {
                let end = data.get(..8).map(|s| u64::from_be_bytes(s.try_into().expect("8 bytes"))).unwrap_or(u64::MAX);
                if touches && Lsn(end) > at {
                    pending += 1;
                }
                touches = false;
            }
            _ => {}
        }
    }
    Ok(pending)
}
