//! The SPEC 5.1 materialisation rule over one partition's change records ([`super::packed`]),
//! for the partitioned comparison ([`super::partitioned`]). It is the rule of
//! [`super::materialize::materialize_rows_seeing_deletes`] and
//! [`super::materialize::materialize_multiset`] step for step, with column numbers for
//! names and the rows' values borrowed from the partition's file (a row is copied only when
//! it takes `_unchanged` values from another).

use super::packed::{
    decode_values, key_of, projected, value_at, with_values, Bytes, Change, Columns, FastMap,
};
use crate::error::Result;
use crate::model::RowOp;
use std::borrow::Cow;

/// What sees each row a `D` removes: `(lsn, seq, region)`.
pub type Deleted<'d> = dyn FnMut(i64, i64, &[u8]) -> Result<()> + 'd;

/// A materialised partition: key (its values encoded, [`key_of`]) → the row's region.
pub type State<'a> = FastMap<Bytes<'a>, Bytes<'a>>;

/// Applies the rule to `changes` (any order): sorted by `(_lsn, _seq)`, rows with
/// `_lsn > up_to` ignored, each row applied with its file's key (`Columns::key`, or `key`
/// when empty), the state re-keyed when the key changes, and keyed by `key` at the end.
/// `deleted(lsn, seq, region)` sees each row a `D` removes. Errors are corrupt records and
/// `deleted`'s.
pub fn materialize<'a>(
    mut changes: Vec<Change<'a>>,
    columns: &Columns,
    key: &[u32],
    up_to: i64,
    deleted: &mut Deleted,
) -> Result<State<'a>> {
    changes.sort_by_key(|c| (c.lsn, c.seq));
    let mut state: State<'a> = FastMap::default();
    state.reserve(changes.len());
    let mut state_key: Vec<u32> = key.to_vec();
    let mut last_deleted: Option<(i64, i64, Bytes<'a>)> = None;
    for row in changes.into_iter().filter(|r| r.lsn <= up_to) {
        let file_key = columns.key(row.key_id);
        let row_key: &[u32] = if file_key.is_empty() { key } else { file_key };
        if row_key != state_key.as_slice() && row.op != RowOp::Truncate {
            state = rekey(state, row_key)?;
            state_key = row_key.to_vec();
        }
        let region: Bytes<'a> = Cow::Borrowed(row.region);
        match row.op {
            RowOp::Load | RowOp::Insert => {
                let mut values = region;
                if let Some((lsn, seq, deleted)) = &last_deleted {
                    if *lsn == row.lsn && *seq == row.seq - 1 && !row.unchanged.is_empty() {
                        values = Cow::Owned(carried(row.region, deleted, &row.unchanged)?);
                    }
                }
                state.insert(key_of(&values, &state_key)?, values);
            }
            RowOp::Update => {
                let k = key_of(&region, &state_key)?;
                let values = match state.get(&k) {
                    Some(prev) if !row.unchanged.is_empty() => {
                        Cow::Owned(carried(row.region, prev, &row.unchanged)?)
                    }
                    _ => region,
                };
                state.insert(k, values);
            }
            RowOp::Delete => {
                let removed = state.remove(&key_of(&region, &state_key)?);
                if let Some(r) = &removed {
                    deleted(row.lsn, row.seq, r)?;
                }
                last_deleted = removed.map(|v| (row.lsn, row.seq, v));
                continue;
            }
            RowOp::Truncate => state.clear(),
        }
        last_deleted = None;
    }
    if !key.is_empty() && state_key != key {
        state = rekey(state, key)?;
    }
    Ok(state)
}

/// `region` with the values of the `unchanged` columns taken from `from`.
fn carried(region: &[u8], from: &[u8], unchanged: &[u32]) -> Result<Vec<u8>> {
    let set = unchanged
        .iter()
        .map(|&c| Ok((c, value_at(from, c)?)))
        .collect::<Result<Vec<_>>>()?;
    with_values(region, &set)
}

/// The same rows keyed by `key`. Rows that fall on one key keep the one whose old key is
/// the greatest (as the whole-table rule's ordered state does).
fn rekey<'a>(state: State<'a>, key: &[u32]) -> Result<State<'a>> {
    let mut out: FastMap<Bytes<'a>, (Bytes<'a>, Bytes<'a>)> = FastMap::default();
    out.reserve(state.len());
    for (old, v) in state {
        let k = key_of(&v, key)?;
        match out.get(&k) {
            Some((kept, _)) if decode_values(kept)? > decode_values(&old)? => {}
            _ => {
                out.insert(k, (old, v));
            }
        }
    }
    Ok(out.into_iter().map(|(k, (_, v))| (k, v)).collect())
}

/// The rule for a table without a key ([`super::materialize::materialize_multiset`]):
/// whole rows (projected onto the first `n` columns) counted.
pub fn count_whole_rows<'a>(
    mut changes: Vec<Change<'a>>,
    n: usize,
    up_to: i64,
) -> Result<FastMap<Bytes<'a>, usize>> {
    changes.sort_by_key(|c| (c.lsn, c.seq));
    let mut counts: FastMap<Bytes<'a>, usize> = FastMap::default();
    for row in changes.into_iter().filter(|r| r.lsn <= up_to) {
        let values = projected(row.region, n)?;
        match row.op {
            RowOp::Load | RowOp::Insert => *counts.entry(values).or_insert(0) += 1,
            RowOp::Delete => {
                if let Some(c) = counts.get_mut(&values) {
                    *c -= 1;
                    if *c == 0 {
                        counts.remove(&values);
                    }
                }
            }
            RowOp::Update => {}
            RowOp::Truncate => counts.clear(),
        }
    }
    Ok(counts)
}
