//! Reload requests: how the pipeline, the publication watch and `run --reload` ask for a
//! table to be (re)loaded while CDC keeps running.
//!
//! [`Reloads`] is shared (`Arc`) by everything in `run` that may ask for a reload and by
//! the reload worker ([`super::reload`]) that performs them. [`Reloads::submit`]
//! records the request as pending in `_pgcdc/tables.json` *before* it returns (so a crash
//! never forgets it, and `validate` waits for it) and wakes the worker; it does no catalog
//! work and never waits for the reload, so the pipeline thread may call it.
//!
//! [`Reloads::observe`] compares what the stream or the catalog says about a table (OID,
//! name, leaf partitions) with what the target holds and decides: nothing, a reload (mode
//! `full-load-and-cdc`, or any explicit request), or — in mode `cdc`, which loads nothing
//! by itself — a warning that names the table and says `pgcdc run --reload` loads it.
//!
//! Other detectors (e.g. a table rewrite that wrote no WAL for its rows) call
//! [`Reloads::submit`] with a [`ReloadRequest`] naming the table and the reason.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::error::Result;
use crate::state::tables::{FollowedTable, PendingReload, TableRegistry};
use crate::model::Lsn;
use crate::storage::Storage;

/// A request to reload one table: a fresh snapshot of it is written to the target, after
/// a reset that supersedes everything written for it before (README, "Reloads").
#[derive(Clone, Debug)]
pub struct ReloadRequest {
    /// The table's OID: a reload follows the table, whatever it is called by then.
    pub relid: u32,
    pub schema: String,
    pub table: String,
    /// Said in the log and recorded with the pending reload, e.g. "joined the publication".
    pub reason: String,
}

/// The shared book of followed tables and pending reloads (module docs).
pub struct Reloads {
    storage: Arc<dyn Storage>,
    registry: Mutex<TableRegistry>,
    /// Whether tables that join (or change identity) are loaded automatically.
    auto_load: bool,
    wake: Notify,
}

/// What [`Reloads::observe`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Observed {
    Known,
    Reload,
    Warned,
}

impl Reloads {
    pub fn new(
        storage: Arc<dyn Storage>,
        registry: TableRegistry,
        auto_load: bool,
    ) -> Arc<Reloads> {
        Arc::new(Reloads {
            storage,
            registry: Mutex::new(registry),
            auto_load,
            wake: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TableRegistry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `req` as pending (durably) and wakes the reload worker. A request for a
    /// table that already has a pending reload renames it and makes it run (again) after
    /// the current attempt. An error means the target could not be written.
    pub fn submit(&self, req: ReloadRequest) -> Result<()> {
        self.submit_at(req, Lsn::ZERO)
    }

    /// [`Reloads::submit`] for news known as of WAL position `at`.
    fn submit_at(&self, req: ReloadRequest, at: Lsn) -> Result<()> {
        let mut reg = self.lock();
        tracing::info!(table = %format!("{}.{}", req.schema, req.table), reason = %req.reason, "reloading the table while CDC continues");
        match reg.pending.iter_mut().find(|p| p.relid == req.relid) {
            Some(p) => {
                p.schema = req.schema;
                p.table = req.table;
                p.reason = req.reason;
                p.requests += 1;
                p.seen_at = p.seen_at.max(at);
            }
            None => reg.pending.push(PendingReload {
                relid: req.relid,
                schema: req.schema,
                table: req.table,
                reason: req.reason,
                seen_at: at,
                requests: 1,
                attempt: None,
            }),
        }
        reg.write(self.storage.as_ref())?;
        drop(reg);
        self.wake.notify_one();
        Ok(())
    }

    /// Compares a table as the stream or the catalog describes it with what the target
    /// holds (module docs). `leaves` is `None` when the caller does not know them (a
    /// Relation message); then only the OID and the name are compared. `at` is the WAL
    /// position the description is valid at (the commit LSN of the transaction that carried
    /// the Relation message; for a catalog read, an LSN read just before it): a description
    /// older than what the target already knows about the table is ignored, so replayed
    /// Relation messages from before a rename do not undo it.
    pub fn observe(
        &self,
        relid: u32,
        schema: &str,
        table: &str,
        leaves: Option<&[u32]>,
        at: Lsn,
    ) -> Result<Observed> {
        let reason = {
            let reg = self.lock();
            if at < reg.known_at(relid) {
                return Ok(Observed::Known);
            }
            let pending = reg.pending.iter().any(|p| p.relid == relid);
            match (reg.expected_name(relid), reg.tables.get(&relid)) {
                (Some((s, t)), _) if (s, t) != (schema, table) => format!("renamed from {s}.{t}"),
                (Some(_), Some(f))
                    if !pending && leaves.is_some_and(|l| l != f.leaves.as_slice()) =>
                {
                    "its partitions changed (ATTACH/DETACH PARTITION)".to_string()
                }
                (Some(_), _) => return Ok(Observed::Known),
                (None, _) => {
                    let same_name = reg
                        .tables
                        .values()
                        .any(|f| f.schema == schema && f.table == table);
                    if same_name {
                        "dropped and created again (a new table under a known name)".to_string()
                    } else {
                        "joined the publication".to_string()
                    }
                }
            }
        };
        if self.auto_load {
            self.submit_at(
                ReloadRequest {
                    relid,
                    schema: schema.into(),
                    table: table.into(),
                    reason,
                },
                at,
            )?;
            return Ok(Observed::Reload);
        }
        tracing::warn!(
            table = %format!("{schema}.{table}"),
            "{schema}.{table} {reason}; mode `cdc` does not load tables, so only its changes from now on are written: `pgcdc run --reload {schema}.{table}` loads it"
        );
        let mut reg = self.lock();
        reg.tables
            .retain(|id, f| *id == relid || !(f.schema == schema && f.table == table));
        let leaves = leaves.map(<[u32]>::to_vec).unwrap_or_else(|| vec![relid]);
        reg.tables.insert(
            relid,
            FollowedTable {
                schema: schema.into(),
                table: table.into(),
                leaves,
                seen_at: at,
                relfilenode: None,
            },
        );
        reg.write(self.storage.as_ref())?;
        Ok(Observed::Warned)
    }

    /// Whether this run loads tables by itself (mode `full-load-and-cdc`); in mode `cdc`
    /// only explicit `--reload` requests load anything.
    pub fn loads_tables(&self) -> bool {
        self.auto_load
    }

    /// Records `relfilenode` as the one the catalog shows now for the followed table
    /// `relid` and returns the one recorded before when it differs (the table was
    /// rewritten since: [`crate::pipeline::rewrite`]). `None` for a table that is not
    /// followed (it is loaded anyway) or whose relfilenode was not known yet. Called by the
    /// pipeline thread when a Relation message arrives; writes the registry only when the
    /// value changes.
    pub fn note_relfilenode(&self, relid: u32, relfilenode: u32) -> Result<Option<u32>> {
        let mut reg = self.lock();
        let Some(f) = reg.tables.get_mut(&relid) else { return Ok(None) };
        let before = f.relfilenode.replace(relfilenode);
        if before == Some(relfilenode) {
            return Ok(None);
        }
        reg.write(self.storage.as_ref())?;
        Ok(before)
    }

    /// Forgets followed tables that are no longer published (so that joining again loads
    /// them again). `published` are the OIDs in the publication as of WAL position `at`;
    /// tables the registry learnt about after `at` are kept.
    pub fn forget_unpublished(&self, published: &[u32], at: Lsn) -> Result<()> {
        let mut reg = self.lock();
        let before = reg.tables.len();
        reg.tables
            .retain(|id, t| published.contains(id) || t.seen_at >= at);
        if reg.tables.len() != before {
            reg.write(self.storage.as_ref())?;
        }
        Ok(())
    }

    /// The next pending reload to perform: (OID, requests so far, the earlier attempt).
    pub fn next_pending(&self) -> Option<PendingReload> {
        self.lock().pending.first().cloned()
    }

    /// Whether any reload is pending.
    pub fn has_pending(&self) -> bool {
        !self.lock().pending.is_empty()
    }

    /// Records that an attempt of `relid`'s reload starts writing files at `lsn` under
    /// `schema.table` (so a redo can delete them).
    pub fn start_attempt(&self, relid: u32, attempt: crate::state::tables::Attempt) -> Result<()> {
        let mut reg = self.lock();
        if let Some(p) = reg.pending.iter_mut().find(|p| p.relid == relid) {
            p.attempt = Some(attempt);
        }
        reg.write(self.storage.as_ref())
    }

    /// Records a finished reload: the table is followed as `done` (or forgotten when it
    /// no longer exists: `None`), other tables of the same name are forgotten, and the
    /// pending entry goes away unless another request arrived after `requests`.
    pub fn finish(&self, relid: u32, requests: u64, done: Option<FollowedTable>) -> Result<()> {
        let mut reg = self.lock();
        match done {
            Some(f) => {
                reg.tables
                    .retain(|id, t| *id == relid || !(t.schema == f.schema && t.table == f.table));
                reg.tables.insert(relid, f);
            }
            None => {
                reg.tables.remove(&relid);
            }
        }
        let again = reg
            .pending
            .iter()
            .any(|p| p.relid == relid && p.requests != requests);
        if again {
            if let Some(p) = reg.pending.iter_mut().find(|p| p.relid == relid) {
                // Its files stay: they are superseded by the next attempt's reset.
                p.attempt = None;
            }
            // Others first.
            if let Some(i) = reg.pending.iter().position(|p| p.relid == relid) {
                let p = reg.pending.remove(i);
                reg.pending.push(p);
            }
        } else {
            reg.pending.retain(|p| p.relid != relid);
        }
        reg.write(self.storage.as_ref())
    }

    /// Adds tables the target holds completely without a reload (the full load's, or
    /// mode `cdc`'s tables at the first start).
    pub fn follow(&self, relid: u32, table: FollowedTable) -> Result<()> {
        let mut reg = self.lock();
        reg.tables.insert(relid, table);
        reg.write(self.storage.as_ref())
    }

    /// Waits until a reload may be pending (after [`Reloads::submit`] or [`Reloads::wake`]).
    pub async fn wait(&self) {
        self.wake.notified().await
    }

    /// Wakes the worker (e.g. to make it notice that the run is ending).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(auto_load: bool) -> (tempfile::TempDir, Arc<Reloads>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage: Arc<dyn Storage> =
            Arc::from(crate::storage::open(&crate::config::Location::Local(dir.path().to_path_buf()), &Default::default()).expect("storage"));
        // What `Storage::lock` creates in `run`; these tests hold no lock.
        std::fs::create_dir_all(dir.path().join("_pgcdc/staging")).expect("staging");
        let mut reg = TableRegistry::default();
        let t = |name: &str, id: u32| FollowedTable {
            schema: "public".into(),
            table: name.into(),
            leaves: vec![id],
            seen_at: Lsn(100),
            relfilenode: None,
        };
        reg.tables.insert(1, t("t", 1));
        reg.tables.insert(2, t("u", 2));
        (dir, Reloads::new(storage, reg, auto_load))
    }

    #[test]
    fn renames_recreations_and_partitions_ask_for_reloads_and_old_news_is_ignored() {
        let (dir, r) = book(true);
        assert_eq!(
            r.observe(1, "public", "t", None, Lsn(120)).unwrap(),
            Observed::Known
        );
        // A Relation message from before what the target knows says nothing new.
        assert_eq!(
            r.observe(1, "public", "t_old", None, Lsn(50)).unwrap(),
            Observed::Known
        );
        assert_eq!(
            r.observe(1, "public", "t2", None, Lsn(150)).unwrap(),
            Observed::Reload
        );
        // Pending under the new name: the same news again asks for nothing more.
        assert_eq!(
            r.observe(1, "public", "t2", None, Lsn(160)).unwrap(),
            Observed::Known
        );
        assert_eq!(
            r.observe(1, "public", "t", None, Lsn(140)).unwrap(),
            Observed::Known
        );
        assert_eq!(
            r.observe(3, "public", "u", None, Lsn(170)).unwrap(),
            Observed::Reload
        );
        assert_eq!(
            r.observe(2, "public", "u", Some(&[2, 7]), Lsn(170))
                .unwrap(),
            Observed::Reload
        );
        let stored = TableRegistry::read(r.storage.as_ref()).unwrap().unwrap();
        let reasons: Vec<&str> = stored.pending.iter().map(|p| p.reason.as_str()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].starts_with("renamed from public.t"));
        assert!(reasons[1].starts_with("dropped and created again"));
        assert!(reasons[2].contains("partitions changed"));
        // Finishing the rename's reload follows the table under its new name.
        let p = r.next_pending().unwrap();
        let done = FollowedTable {
            schema: "public".into(),
            table: "t2".into(),
            leaves: vec![1],
            seen_at: Lsn(200),
            relfilenode: None,
        };
        r.finish(p.relid, p.requests, Some(done)).unwrap();
        assert_eq!(
            r.observe(1, "public", "t", None, Lsn(180)).unwrap(),
            Observed::Known
        );
        drop(dir);
    }

    #[test]
    fn mode_cdc_warns_and_follows_instead_of_loading() {
        let (_dir, r) = book(false);
        assert_eq!(
            r.observe(9, "public", "new", None, Lsn(150)).unwrap(),
            Observed::Warned
        );
        assert_eq!(
            r.observe(9, "public", "new", None, Lsn(160)).unwrap(),
            Observed::Known
        );
        assert!(!r.has_pending());
    }
}
