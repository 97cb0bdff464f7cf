//! Staging a streamed transaction while it streams ([`crate::sink::Staging`]).
//!
//! A transaction streamed in progress (pgoutput `streaming`) is spilled as it arrives and,
//! at its Stream Commit, replayed: the server has sent everything by then, so the whole
//! decoding, conversion and encoding of, say, a million rows would stand between the commit
//! and its rows being written. Instead, the pipeline also hands each change to the sinks'
//! staging as it arrives, and the commit only fills in what was not known before it (the
//! commit LSN and time).
//!
//! # Contract
//!
//! * One transaction at a time: the first streamed transaction seen while none is staged,
//!   if every sink offers staging. Others are spilled and replayed as before.
//! * The staged transaction's own Relation messages describe its tables (pgoutput sends
//!   them inside every streamed transaction before its first change of a table), in a
//!   relation cache of its own: nothing the pipeline keeps for other transactions changes
//!   before the commit. At the commit they are applied to the pipeline's cache, as a replay
//!   would, and the staged rows are used only if every table's output schema is then the
//!   one they were staged under.
//! * Staging stops for good (the spill is replayed at the commit) on what only the commit
//!   order, or a second look, could settle: a rolled-back subtransaction that had staged
//!   changes or Relation messages, a second schema for a table, a TRUNCATE, a row filter
//!   pgcdc evaluates itself, more than [`MAX_TABLES`] tables or [`MAX_SUBXACTS`]
//!   subtransactions (memory), or any error a sink's staging returns. The spill is written whatever happens:
//!   it stays the source of truth.
//! * `PGCDC_STREAM_STAGING=off` turns staging off (every streamed transaction is replayed),
//!   to compare the two paths or to rule staging out while diagnosing.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::relations::{CatalogLookup, Relations};
use super::shapes::{Shapes, TableShape};
use crate::error::{Error, Result};
use crate::model::{RowOp, TableSchema};
use crate::source::pgoutput::Relation;

/// Tables one staged transaction may touch; past them it is replayed. Each staged table
/// holds a batch builder and a part writer besides the ones of the ordinary path.
const MAX_TABLES: usize = 16;
/// Subtransactions with staged changes it may have; past them it is replayed.
const MAX_SUBXACTS: usize = 4096;

/// What the pipeline knows of the staged transaction.
pub struct Staged {
    pub xid: u32,
    relations: Relations,
    shapes: Shapes,
    /// The transaction's Relation messages (copies, one per relation), in order, for the
    /// pipeline's cache at the commit.
    relation_messages: Vec<Bytes>,
    /// The tables with staged rows, in the order of their first row.
    pub tables: Vec<TableRows>,
    /// Subtransactions whose changes or Relation messages were staged.
    subxacts: HashSet<u32>,
    /// `_seq` of the next row.
    pub seq: i64,
}

/// The staged rows of one table.
pub struct TableRows {
    pub shape: Arc<TableShape>,
    /// Rows staged, per operation.
    pub counts: Vec<(RowOp, u64)>,
}

/// Where staging stands.
pub enum Staging {
    /// Nothing staged: the next streamed transaction may be.
    Idle,
    Active(Box<Staged>),
    /// This transaction stopped staging; it is replayed at its commit.
    Abandoned(u32),
    /// `PGCDC_STREAM_STAGING=off`.
    Off,
}

/// Whether `PGCDC_STREAM_STAGING` lets streamed transactions be staged (unset, `on`: yes;
/// `off`: no). Read by `run` before it connects; any other value is a configuration error.
pub fn enabled_by_env() -> Result<bool> {
    match std::env::var("PGCDC_STREAM_STAGING") {
        Err(_) => Ok(true),
        Ok(v) if v == "on" => Ok(true),
        Ok(v) if v == "off" => Ok(false),
        Ok(v) => Err(Error::config(format!("PGCDC_STREAM_STAGING: `{v}` is neither `on` nor `off`"))
            .with_hint("unset it (staging on), or set it to `off` to replay every streamed transaction")),
    }
}

impl Staging {
    /// `Idle` when streamed transactions are staged, else `Off`.
    pub fn new(enabled: bool) -> Staging {
        if enabled {
            Staging::Idle
        } else {
            Staging::Off
        }
    }

    /// The staged transaction, if it is `xid`.
    pub fn active(&mut self, xid: u32) -> Option<&mut Staged> {
        match self {
            Staging::Active(s) if s.xid == xid => Some(s),
            _ => None,
        }
    }

    /// `xid` ended (committed or aborted): the state it leaves, and its staging if it had one.
    pub fn end(&mut self, xid: u32) -> Option<Box<Staged>> {
        match std::mem::replace(self, Staging::Idle) {
            Staging::Active(s) if s.xid == xid => Some(s),
            Staging::Abandoned(x) if x == xid => None,
            other => {
                *self = other;
                None
            }
        }
    }
}

impl Staged {
    /// Transaction `xid`, shaped by `shapes` (the pipeline's rules, nothing cached).
    pub fn new(xid: u32, shapes: Shapes) -> Staged {
        Staged {
            xid,
            relations: Relations::default(),
            shapes,
            relation_messages: Vec::new(),
            tables: Vec::new(),
            subxacts: HashSet::new(),
            seq: 0,
        }
    }

    /// A Relation message of the transaction (`raw`, decoded as `relation`, sent for
    /// (sub)transaction `xid`): describes its table for the changes that follow. `Err` when
    /// it describes a table the transaction described otherwise before.
    pub fn relation(&mut self, raw: &[u8], relation: &Relation, xid: Option<u32>, catalog: &mut dyn CatalogLookup) -> Result<()> {
        let before = self.relations.get(relation.relid).ok().cloned();
        let (table, _, _) = self.relations.apply(relation, catalog)?;
        match before {
            Some(b) if !Arc::ptr_eq(&b, &table) => {
                Err(Error::runtime(format!("{} changes schema inside the transaction", table.qualified_name())))
            }
            Some(_) => Ok(()),
            None => {
                self.note_subxact(xid)?;
                // A copy: the message is a slice of the connection's read buffer.
                self.relation_messages.push(Bytes::copy_from_slice(raw));
                Ok(())
            }
        }
    }

    /// The transaction's Relation messages, in order.
    pub fn relation_messages(&self) -> &[Bytes] {
        &self.relation_messages
    }

    /// The source schema of `relid` as the transaction describes it (`Err` when it did not).
    pub fn source(&self, relid: u32) -> Result<Arc<TableSchema>> {
        self.relations.get(relid).cloned()
    }

    /// `source` shaped by the rules.
    pub fn shape(&mut self, source: &Arc<TableSchema>) -> Result<Arc<TableShape>> {
        self.shapes.of(source)
    }

    /// Whether something of subtransaction `xid` was staged.
    pub fn touched_by(&self, xid: u32) -> bool {
        self.subxacts.contains(&xid)
    }

    /// Counts a row of `shape`'s table staged for (sub)transaction `xid`. `Err` past
    /// [`MAX_TABLES`] or [`MAX_SUBXACTS`].
    pub fn staged(&mut self, shape: &Arc<TableShape>, op: RowOp, xid: Option<u32>) -> Result<()> {
        self.seq += 1;
        self.note_subxact(xid)?;
        let i = match self.tables.iter().position(|t| Arc::ptr_eq(&t.shape, shape)) {
            Some(i) => i,
            None if self.tables.len() < MAX_TABLES => {
                self.tables.push(TableRows { shape: shape.clone(), counts: Vec::new() });
                self.tables.len() - 1
            }
            None => return Err(Error::runtime(format!("more than {MAX_TABLES} tables"))),
        };
        let counts = &mut self.tables[i].counts;
        match counts.iter_mut().find(|(o, _)| *o == op) {
            Some((_, n)) => *n += 1,
            None => counts.push((op, 1)),
        }
        Ok(())
    }

    fn note_subxact(&mut self, xid: Option<u32>) -> Result<()> {
        if let Some(x) = xid.filter(|x| *x != self.xid) {
            if self.subxacts.insert(x) && self.subxacts.len() > MAX_SUBXACTS {
                return Err(Error::runtime(format!("more than {MAX_SUBXACTS} subtransactions")));
            }
        }
        Ok(())
    }

    /// Rows staged in all.
    pub fn rows(&self) -> u64 {
        self.tables.iter().flat_map(|t| t.counts.iter().map(|(_, n)| n)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_counted_per_table_and_the_limits_stop_staging() {
        let mut s = Staged::new(100, Shapes::new(Vec::new(), HashSet::new()));
        let shapes: Vec<_> = (0..=MAX_TABLES as u32)
            .map(|relid| {
                let mut t = crate::model::schema::fixtures::orders();
                t.relid = relid;
                s.shape(&Arc::new(t)).unwrap()
            })
            .collect();
        for shape in &shapes[..MAX_TABLES] {
            s.staged(shape, RowOp::Insert, Some(100)).unwrap();
        }
        assert!(s.staged(&shapes[MAX_TABLES], RowOp::Insert, Some(100)).is_err(), "one table too many");
        s.staged(&shapes[0], RowOp::Delete, Some(7)).unwrap();
        s.staged(&shapes[0], RowOp::Delete, Some(7)).unwrap();
        assert_eq!(s.tables[0].counts, vec![(RowOp::Insert, 1), (RowOp::Delete, 2)]);
        assert_eq!(s.rows(), MAX_TABLES as u64 + 2);
        assert!(s.touched_by(7) && !s.touched_by(8) && !s.touched_by(100), "the top-level xid is no subtransaction");
        let subxacts: Result<Vec<_>> = (1000..1000 + MAX_SUBXACTS as u32).map(|x| s.staged(&shapes[1], RowOp::Insert, Some(x))).collect();
        assert!(subxacts.is_err(), "one subtransaction too many");
    }
}
