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
//!   changes, a second schema for a table, a TRUNCATE, a row filter pgcdc evaluates
//!   itself, or any error a sink's staging returns. The spill is written whatever happens:
//!   it stays the source of truth.
//! * `PGCDC_STREAM_STAGING=off` turns staging off (every streamed transaction is replayed),
//!   to compare the two paths or to rule staging out while diagnosing.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::relations::Relations;
use super::shapes::{Shapes, TableShape};
use crate::config::RuleConfig;
use crate::model::RowOp;

/// What the pipeline knows of the staged transaction.
pub struct Staged {
    pub xid: u32,
    relations: Relations,
    shapes: Shapes,
    /// The transaction's Relation messages, in order, for the pipeline's cache at the commit.
    pub relation_messages: Vec<Bytes>,
    /// The tables with staged rows, in the order of their first row.
    pub tables: Vec<StagedTable>,
    /// Transaction and subtransaction ids of the staged changes.
    xids: HashSet<u32>,
    /// `_seq` of the next row.
    pub seq: i64,
}

/// A table with staged rows.
pub struct StagedTable {
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

impl Staging {
    /// `Off` when the environment turns staging off, else `Idle`.
    pub fn from_env() -> Staging {
        match std::env::var("PGCDC_STREAM_STAGING").as_deref() {
            Ok("off" | "0" | "false") => Staging::Off,
            _ => Staging::Idle,
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
    pub fn new(xid: u32, rules: Vec<RuleConfig>, server_filters: HashSet<String>) -> Staged {
        Staged {
            xid,
            relations: Relations::default(),
            shapes: Shapes::new(rules, server_filters),
            relation_messages: Vec::new(),
            tables: Vec::new(),
            xids: HashSet::new(),
            seq: 0,
        }
    }

    /// Whether staged changes belong to (sub)transaction `xid`.
    pub fn has_changes_of(&self, xid: u32) -> bool {
        self.xids.contains(&xid)
    }

    pub fn relations(&mut self) -> &mut Relations {
        &mut self.relations
    }

    /// The shape of `relid` as the transaction describes it; `None` when the stream has not
    /// described it in this transaction (then the transaction cannot be staged).
    pub fn shape(&mut self, relid: u32) -> crate::error::Result<Arc<TableShape>> {
        let source = self.relations.get(relid)?.clone();
        self.shapes.of(&source)
    }

    /// Counts a staged row of `shape`'s table, of (sub)transaction `xid`.
    pub fn staged(&mut self, shape: &Arc<TableShape>, op: RowOp, xid: Option<u32>) {
        self.seq += 1;
        if let Some(x) = xid {
            self.xids.insert(x);
        }
        let table = match self.tables.iter_mut().position(|t| Arc::ptr_eq(&t.shape, shape)) {
            Some(i) => &mut self.tables[i],
            None => {
                self.tables.push(StagedTable { shape: shape.clone(), counts: Vec::new() });
                self.tables.last_mut().expect("pushed")
            }
        };
        match table.counts.iter_mut().find(|(o, _)| *o == op) {
            Some((_, n)) => *n += 1,
            None => table.counts.push((op, 1)),
        }
    }

    /// Rows staged in all.
    pub fn rows(&self) -> u64 {
        self.tables.iter().flat_map(|t| t.counts.iter().map(|(_, n)| n)).sum()
    }
}
