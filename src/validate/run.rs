//! `pgcdc validate` (SPEC 6): the target against the source at one exact LSN.
//!
//! 1. **Snapshot and its LSN.** A replication connection creates a temporary logical slot
//!    with an exported snapshot; the slot's consistent point is the validation LSN `V`. A
//!    transaction is visible in that snapshot exactly when its commit record starts before
//!    `V`, i.e. when its `_lsn` (SPEC 5.1) is `< V`. An ordinary session imports the snapshot
//!    (`REPEATABLE READ READ ONLY`, `SET TRANSACTION SNAPSHOT`) and keeps that transaction
//!    open until the end; the replication connection stays idle meanwhile.
//! 2. **Tables.** The publication's tables (`pg_publication_tables`, read in the snapshot)
//!    matching `source.tables`, with their columns and key as of `V`: the replica identity's
//!    columns (the primary key, or the index's under `USING INDEX`; the primary key under
//!    `FULL`); `REPLICA IDENTITY FULL` without a primary key is compared as a
//!    multiset of whole rows; a table with no key and no full identity cannot be validated
//!    (reported, not a difference). Only the columns and rows the publication publishes
//!    are read (PG15 column lists and row filters, [`Catalog::published_table_schema`]).
//!    Tables `source.tables` selects that the publication leaves out are reported as not
//!    published, which makes the report unclean.
//! 3. **Wait for the target.** It must hold every transaction that committed before `V`:
//!    its checkpoint (`_pgcdc/checkpoint.json` of the first Parquet sink) reached `V` — or,
//!    when no `pgcdc run` is reading the pipeline's slot, none of the transactions between
//!    the checkpoint and `V` touches a validated table (checked by peeking at that slot with
//!    `pg_logical_slot_peek_binary_changes`, which consumes nothing). A full load still in
//!    progress (`_pgcdc/load.json`) is waited for too. Gives up after `--timeout`.
//! 4. **Compare.** Per table: the source rows read in the snapshot go through the output's
//!    type mapping ([`canonical_rows`]); the target is materialised with the SPEC 5.1 rule
//!    up to `V` and projected onto the source's columns. Missing, extra and differing rows
//!    are counted, with a few examples (key and first differing columns, in key order);
//!    duplicate `(_lsn, _seq)` pairs in the target are differences too (SPEC 2.2).
//!
//! Limits: each table's source rows and target state are held in memory (one table at a
//! time); Parquet files are read from local targets only ([`read_target_table`]); creating
//! the temporary slot waits for transactions already running on the source to finish.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::compare::{canonical_list, canonical_rows};
use super::materialize::{materialize_rows, project, read_table_rows, ChangeRow};
use crate::source::quote::{qualified, quote_ident, quote_literal};
use crate::model::TableSchema;
use crate::config::{Config, Layout, ParquetSinkConfig};
use crate::error::{Error, Result, ResultExt};
use crate::load::state::LoadState;
use crate::model::{Lsn, RowOp};
use crate::config::TableFilter;
use crate::sink::parquet::{manifest, naming};
use crate::sink::storage::{self, Storage};
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;
use crate::source::replication::ReplicationConn;
use crate::source::sql;

/// Examples kept per kind (missing, extra, differing, duplicate) and table.
const EXAMPLES_PER_KIND: usize = 5;
/// Differing columns shown per differing row.
const COLUMNS_PER_EXAMPLE: usize = 3;
/// Values in examples longer than this are shortened.
const VALUE_CHARS: usize = 120;

pub struct ValidateOptions {
    /// How long to wait for the target to reach the validation LSN.
    pub timeout: Duration,
    /// How often the target's checkpoint is read while waiting.
    pub poll_interval: Duration,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions { timeout: Duration::from_secs(300), poll_interval: Duration::from_millis(500) }
    }
}

#[derive(Debug, Serialize)]
pub struct ValidateReport {
    /// The validation LSN: the snapshot's consistent point. Transactions that committed
    /// before it are compared, later ones are not.
    pub lsn: Lsn,
    /// The target compared (`file:///...`).
    pub target: String,
    /// The target's durable position when the comparison started.
    pub target_lsn: Option<Lsn>,
    /// Why the target was known to hold everything before `lsn`.
    pub target_ready: TargetReady,
    /// True when every validated table is identical (tables that cannot be validated do
    /// not count as differences) and no selected table is missing from the publication.
    pub clean: bool,
    pub tables: Vec<TableReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetReady {
    /// The checkpoint is at or past the validation LSN.
    Checkpoint,
    /// The checkpoint is behind, but nothing committed in between changed a validated table.
    NoChangesSinceCheckpoint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    Identical,
    Different,
    NotValidated,
    /// Selected by `source.tables` but not in the publication: never replicated. Makes the
    /// report unclean (exit 3).
    NotPublished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareBy {
    /// Rows matched by key (primary key or replica identity index).
    Key,
    /// REPLICA IDENTITY FULL without a key: whole rows compared as multisets.
    WholeRow,
}

#[derive(Debug, Serialize)]
pub struct TableReport {
    pub schema: String,
    pub table: String,
    pub status: TableStatus,
    /// Why the table was not validated.
    pub reason: Option<String>,
    pub compared_by: Option<CompareBy>,
    /// Key columns (for `whole_row`: every column).
    pub key: Vec<String>,
    /// Generated columns: not sent by pgoutput, absent from the output, not compared.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_compared: Vec<String>,
    pub source_rows: usize,
    pub target_rows: usize,
    pub missing: usize,
    pub extra: usize,
    pub differing: usize,
    /// `(_lsn, _seq)` pairs found more than once in the target's files.
    pub duplicates: usize,
    /// Parquet files and change rows read for the table (all of them, also past the LSN).
    pub files: usize,
    pub change_rows: usize,
    /// A few examples of each kind of difference, in key order.
    pub examples: Vec<Example>,
}

impl TableReport {
    /// A report of `schema.table` with nothing compared yet.
    fn empty(schema: String, table: String) -> TableReport {
        TableReport {
            schema,
            table,
            status: TableStatus::NotValidated,
            reason: None,
            compared_by: None,
            key: Vec::new(),
            not_compared: Vec::new(),
            source_rows: 0,
            target_rows: 0,
            missing: 0,
            extra: 0,
            differing: 0,
            duplicates: 0,
            files: 0,
            change_rows: 0,
            examples: Vec::new(),
        }
    }

    pub fn name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    fn has_differences(&self) -> bool {
        self.missing + self.extra + self.differing + self.duplicates > 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExampleKind {
    /// In the source, not in the target.
    Missing,
    /// In the target, not in the source.
    Extra,
    /// Same key, different values.
    Differing,
    /// A `(_lsn, _seq)` pair written more than once.
    Duplicate,
}

#[derive(Debug, Serialize)]
pub struct Example {
    pub kind: ExampleKind,
    /// The row's key (for whole-row comparison: every column), as output values.
    #[serde(serialize_with = "as_map")]
    pub key: Vec<(String, Option<String>)>,
    /// For `differing`: the first columns that differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnDiff>,
    /// For whole-row comparison: how often the row occurs in the source and the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_count: Option<usize>,
    /// For `duplicate`: the pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ColumnDiff {
    pub column: String,
    pub source: Option<String>,
    pub target: Option<String>,
}

fn as_map<S: serde::Serializer>(v: &[(String, Option<String>)], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(k, v)| (k, v)))
}

impl Example {
    fn new(kind: ExampleKind, key: Vec<(String, Option<String>)>) -> Example {
        Example { kind, key, columns: Vec::new(), source_count: None, target_count: None, lsn: None, seq: None }
    }
}

/// Validates the configured target against the source (see the module docs).
pub async fn validate(config: &Config, opts: &ValidateOptions) -> Result<ValidateReport> {
    // `--timeout` bounds both waits together: for the snapshot and for the target.
    let deadline = Instant::now() + opts.timeout;
    let sink = config.parquet_sinks().next().ok_or_else(|| {
        Error::config("validate compares the source with a Parquet target, but the configuration has no [[sink]] with kind = \"parquet\"")
    })?;
    if sink.layout != Layout::Native {
        return Err(Error::config("validate reads the native layout (SPEC 5.1); the first Parquet sink uses layout = \"dms\"")
            .with_hint("use `pgcdc dms compare` for DMS-layout output"));
    }
    target_root(sink)?;
    let info = ConnInfo::from_url(config.source.url.as_deref())?;
    let control = Catalog::new(sql::connect(&info).await?);
    let publication = &config.source.publication;
    if !control.publication_exists(publication).await? {
        return Err(Error::runtime(format!("publication `{publication}` does not exist"))
            .with_hint("create it with `pgcdc setup -c FILE`"));
    }

    // Tables that joined, were renamed or recreated are reloaded by `run`: wait for that
    // before the snapshot, which would cut off a reload that finishes after it.
    let target = storage::open(&sink.location)?;
    let filter = TableFilter::new(&config.source.tables);
    let reloading = crate::pipeline::table_watch::wait_until_followed(&control, target.as_ref(), publication, &filter, deadline.saturating_duration_since(Instant::now()), opts.poll_interval).await?;
    if !reloading.is_empty() {
        return Err(Error::runtime(format!("the target does not hold these tables completely yet: {}", reloading.join("; ")))
            .with_hint("`pgcdc run` loads them: keep it running, or run `pgcdc run --until-lsn current` first; raise --timeout if it is only slow"));
    }

    // 1. The snapshot and its LSN.
    let mut repl = ReplicationConn::connect(&info).await?;
    // Unique on the server: the pid, plus the time for processes on other machines.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let slot_name = format!("pgcdc_validate_{}_{nanos}", std::process::id());
    tracing::info!(slot = %slot_name, "taking the validation snapshot (a temporary slot; waits for running transactions to finish)");
    let created = super::waiting::create_snapshot_slot(&mut repl, &control, &slot_name, deadline, opts.timeout)
        .await
        .map_err(|e| e.context("creating the temporary slot for the validation snapshot"))?;
    let v = created.consistent_point;
    let snapshot = created
        .snapshot_name
        .ok_or_else(|| Error::runtime("the server created the validation slot but exported no snapshot"))?;
    let snap_client = sql::connect(&info).await?;
    snap_client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {};
             SET LOCAL idle_in_transaction_session_timeout = 0; SET LOCAL statement_timeout = 0",
            quote_literal(&snapshot)
        ))
        .await
        .map_err(|e| Error::runtime(format!("importing the validation snapshot: {}", sql::db_error_text(&e))))?;
    let snap = Catalog::new(snap_client);
    tracing::info!(lsn = %v, "validation snapshot taken");

    // 2. The tables, as of the snapshot.
    let mut tables = Vec::new();
    for (schema, table, _, _) in snap.publication_tables(publication).await? {
        if filter.matches(&schema, &table) {
            // Only the published columns and rows (PG15 column lists and row filters).
            tables.push(snap.published_table_schema(publication, &schema, &table).await?);
        }
    }
    let unpublished = snap.unpublished_matching_tables(publication, &config.source.tables).await?;
    let relids: HashSet<u32> = tables.iter().map(|t| t.schema.relid).collect();

    // 3. Wait until the target holds everything before V.
    let opts = &ValidateOptions { timeout: deadline.saturating_duration_since(Instant::now()), ..*opts };
    let (target_lsn, target_ready) = wait_for_target(&control, target.as_ref(), config, v, &relids, opts).await?;

    // 4. Compare, one table at a time.
    let mut reports = Vec::new();
    for published in &tables {
        let table = &published.schema;
        let report = compare_table(&snap, sink, table, published.row_filter.as_deref(), v)
            .await
            .map_err(|e| e.context(format!("{}.{}", table.schema, table.name)))?;
        tracing::info!(
            table = %report.name(),
            status = ?report.status,
            source_rows = report.source_rows,
            target_rows = report.target_rows,
            "compared"
        );
        reports.push(report);
    }
    drop(snap);
    // The snapshot was imported; the slot is no longer needed. Dropped with the session anyway.
    if let Err(e) = repl.simple_query(&format!("DROP_REPLICATION_SLOT {}", quote_ident(&slot_name))).await {
        tracing::debug!("dropping the temporary slot: {e}");
    }
    drop(repl);
    for (schema, table) in unpublished {
        let reason = format!(
            "matches source.tables but is not in publication `{publication}`, so it is not replicated: {}",
            crate::source::publication::add_tables_sql(publication, &[(schema.clone(), table.clone())])
        );
        tracing::warn!(table = %format!("{schema}.{table}"), "not published");
        reports.push(TableReport { status: TableStatus::NotPublished, reason: Some(reason), ..TableReport::empty(schema, table) });
    }
    let clean = !reports.iter().any(|r| r.has_differences() || r.status == TableStatus::NotPublished);
    Ok(ValidateReport { lsn: v, target: target.describe(), target_lsn, target_ready, clean, tables: reports })
}

/// Waits until the target holds every transaction that committed before `v` (module docs,
/// step 3). Returns the target's durable position and why it is complete.
async fn wait_for_target(
    control: &Catalog,
    target: &dyn Storage,
    config: &Config,
    v: Lsn,
    relids: &HashSet<u32>,
    opts: &ValidateOptions,
) -> Result<(Option<Lsn>, TargetReady)> {
    let started = Instant::now();
    let mut logged = false;
    // The checkpoint at which the slot was last peeked, and what that found.
    let mut peeked_at: Option<Lsn> = None;
    let mut pending: Option<usize> = None;
    let mut peek_error: Option<String> = None;
    loop {
        let at = manifest::read_checkpoint(target)?.map(|c| c.end_lsn);
        let load_running = LoadState::read(target)?.is_some_and(|l| !l.complete);
        if !load_running {
            if at.is_some_and(|a| a >= v) {
                return Ok((at, TargetReady::Checkpoint));
            }
            if let Some(a) = at.filter(|a| peeked_at != Some(*a)) {
                // Only when no run reads the slot: peeking makes it busy for a moment.
                let slot = control.slot(&config.source.slot).await?;
                if slot.as_ref().is_some_and(|s| !s.active) {
                    match pending_transactions(control, config, a, v, relids).await {
                        Ok(0) => {
                            tracing::info!(target_lsn = %a, lsn = %v, "no change to a validated table committed between the target's checkpoint and the snapshot");
                            return Ok((at, TargetReady::NoChangesSinceCheckpoint));
                        }
                        Ok(n) => {
                            peeked_at = Some(a);
                            pending = Some(n);
                            peek_error = None;
                        }
                        Err(e) => {
                            tracing::debug!("peeking at slot {}: {e}", config.source.slot);
                            peek_error = Some(e.message);
                        }
                    }
                } else if slot.is_none() {
                    peek_error = Some(format!("the replication slot `{}` does not exist", config.source.slot));
                }
            }
        }
        if started.elapsed() >= opts.timeout {
            return Err(not_caught_up(at, v, load_running, pending, peek_error, opts.timeout));
        }
        if !logged {
            tracing::info!(
                target_lsn = %at.map_or("none".to_string(), |a| a.to_string()),
                lsn = %v,
                "waiting for the target to reach the validation LSN"
            );
            logged = true;
        }
        tokio::time::sleep(opts.poll_interval).await;
    }
}

fn not_caught_up(at: Option<Lsn>, v: Lsn, load_running: bool, pending: Option<usize>, peek_error: Option<String>, waited: Duration) -> Error {
    let mut msg = match at {
        Some(a) => format!("the target is durable up to {a}, but validating at the source snapshot needs it at {v}"),
        None => format!("the target has no checkpoint yet (nothing replicated), but validating at the source snapshot needs it at {v}"),
    };
    if load_running {
        msg.push_str("; its full load is still in progress");
    }
    if let Some(n) = pending.filter(|n| *n > 0) {
        msg.push_str(&format!("; {n} transaction(s) changing the validated tables committed in between"));
    }
    if let Some(e) = peek_error {
        msg.push_str(&format!(" (could not check the changes in between: {e})"));
    }
    msg.push_str(&format!("; gave up after {}", humantime::format_duration(waited)));
    Error::runtime(msg).with_hint(format!(
        "`pgcdc run` must be running so that the target passes {v} (or run `pgcdc run --until-lsn current` first, then validate); raise --timeout if the pipeline is only slow"
    ))
}

/// Transactions that committed before `v`, end after the target's checkpoint `at` and
/// change one of `relids`: peeked from the pipeline's slot (nothing is consumed).
async fn pending_transactions(control: &Catalog, config: &Config, at: Lsn, v: Lsn, relids: &HashSet<u32>) -> Result<usize> {
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
            &[&config.source.slot, &v.to_string(), &quote_ident(&config.source.publication)],
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

/// The local directory of a Parquet target.
fn target_root(sink: &ParquetSinkConfig) -> Result<PathBuf> {
    let Some(path) = sink.location.local_dir().cloned() else {
        return Err(Error::config(format!("validate reads local targets only so far; the Parquet sink is `{}`", sink.location))
            .with_hint("validate a local copy of the target (file:///path)"));
    };
    Ok(if path.is_absolute() { path } else { std::env::current_dir().runtime_ctx(|| format!("resolving {}", path.display()))?.join(path) })
}

/// Every change row of one table in the target, the number of files read and the key
/// named in the newest file. The one place that reads Parquet files (local for now).
pub fn read_target_table(sink: &ParquetSinkConfig, schema: &str, table: &str) -> Result<(Vec<ChangeRow>, usize, Vec<String>)> {
    let dir = naming::table_dir(&target_root(sink)?, schema, table);
    read_table_rows(&dir)
}

async fn compare_table(snap: &Catalog, sink: &ParquetSinkConfig, table: &Arc<TableSchema>, row_filter: Option<&str>, v: Lsn) -> Result<TableReport> {
    let cols: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let key: Vec<String> = table.key.iter().map(|&i| cols[i].clone()).collect();
    let whole_row = table.replica_identity == b'f' && table.key.len() == cols.len() && !has_key_index(snap, table.relid).await?;
    let mut report = TableReport {
        key: key.clone(),
        not_compared: snap.generated_columns(table.relid).await?,
        ..TableReport::empty(table.schema.clone(), table.name.clone())
    };
    if key.is_empty() {
        report.reason = Some("no primary key or replica identity".to_string());
        return Ok(report);
    }

    // The source, in the snapshot.
    let relkind = snap
        .client
        .query_one("SELECT relkind::text FROM pg_class WHERE oid = $1", &[&table.relid])
        .await
        .map_err(|e| Error::runtime(format!("reading pg_class: {}", sql::db_error_text(&e))))?;
    let relkind: String = relkind.get(0);
    // A partitioned table (published via its root) holds its partitions' rows; any other
    // table only its own (inheritance children are published and written separately).
    let only = if relkind == "p" { "" } else { "ONLY " };
    let select = format!(
        "SELECT {} FROM {only}{}{}",
        cols.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", "),
        qualified(&table.schema, &table.name),
        crate::source::publication::with_row_filter("", row_filter)
    );
    let text = crate::source::sql::simple_rows(&snap.client, &select).await?;

    // The target, up to V: `_lsn < V` (V is a commit LSN of no transaction in the snapshot).
    let up_to = v.0 as i64 - 1;
    let (rows, files, _) = tokio::task::block_in_place(|| read_target_table(sink, &table.schema, &table.name))?;
    report.files = files;
    report.change_rows = rows.len();
    let dups = duplicates(&rows);
    report.duplicates = dups.len();
    for (lsn, seq) in dups.iter().take(EXAMPLES_PER_KIND) {
        report.examples.push(Example { lsn: Some(Lsn(*lsn as u64)), seq: Some(*seq), ..Example::new(ExampleKind::Duplicate, Vec::new()) });
    }

    if whole_row {
        report.compared_by = Some(CompareBy::WholeRow);
        let source = count_rows(canonical_list(table, &text)?);
        drop(text);
        let target = tokio::task::block_in_place(|| materialize_multiset(rows, &cols, up_to));
        compare_multisets(&cols, &source, &target, &mut report);
    } else {
        report.compared_by = Some(CompareBy::Key);
        let source = canonical_rows(table, &text)?;
        drop(text);
        let target = tokio::task::block_in_place(|| {
            let (state, _) = materialize_rows(rows, &key, Some(up_to));
            project(&state, &cols)
        });
        compare_keyed(&cols, &key, &source, &target, &mut report);
    }
    report.status = if report.has_differences() { TableStatus::Different } else { TableStatus::Identical };
    Ok(report)
}

/// True when the table has a primary key or a replica identity index (then the key is that,
/// even if it happens to cover every column).
async fn has_key_index(snap: &Catalog, relid: u32) -> Result<bool> {
    let row = snap
        .client
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = $1 AND (indisprimary OR indisreplident))", &[&relid])
        .await
        .map_err(|e| Error::runtime(format!("reading pg_index: {}", sql::db_error_text(&e))))?;
    Ok(row.get(0))
}

/// `(_lsn, _seq)` pairs that occur more than once, sorted.
fn duplicates(rows: &[ChangeRow]) -> Vec<(i64, i64)> {
    let mut pairs: Vec<(i64, i64)> = rows.iter().map(|r| (r.lsn, r.seq)).collect();
    pairs.sort_unstable();
    let mut out: Vec<(i64, i64)> = pairs.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
    out.dedup();
    out
}

type Row = Vec<Option<String>>;

fn count_rows(rows: Vec<Row>) -> HashMap<Row, usize> {
    let mut counts = HashMap::with_capacity(rows.len());
    for r in rows {
        *counts.entry(r).or_insert(0) += 1;
    }
    counts
}

/// The SPEC 5.1 rule for a table without a key (REPLICA IDENTITY FULL): rows are whole
/// rows, counted. `L`/`I` add one; `D` (carrying the whole old row) removes one; an update
/// that changes anything is written as `D` + `I`, so a `U` repeats its row and changes
/// nothing; `T` empties the table. Rows are projected onto `cols`.
fn materialize_multiset(mut rows: Vec<ChangeRow>, cols: &[String], up_to: i64) -> HashMap<Row, usize> {
    rows.sort_by_key(|r| (r.lsn, r.seq));
    let mut counts: HashMap<Row, usize> = HashMap::new();
    for row in rows.into_iter().filter(|r| r.lsn <= up_to) {
        let values: Row = cols.iter().map(|c| row.values.get(c).cloned().flatten()).collect();
        match row.op {
            RowOp::Load | RowOp::Insert => *counts.entry(values).or_insert(0) += 1,
            RowOp::Delete => {
                if let Some(n) = counts.get_mut(&values) {
                    *n -= 1;
                    if *n == 0 {
                        counts.remove(&values);
                    }
                }
            }
            RowOp::Update => {}
            RowOp::Truncate => counts.clear(),
        }
    }
    counts
}

fn shorten(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|s| match s.char_indices().nth(VALUE_CHARS) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s.clone(),
    })
}

fn named(names: &[String], values: &[Option<String>]) -> Vec<(String, Option<String>)> {
    names.iter().cloned().zip(values.iter().map(shorten)).collect()
}

fn compare_keyed(cols: &[String], key: &[String], source: &HashMap<Row, Row>, target: &HashMap<Row, Row>, report: &mut TableReport) {
    report.source_rows = source.len();
    report.target_rows = target.len();
    let mut missing = Vec::new();
    let mut differing = Vec::new();
    for (k, sv) in source {
        match target.get(k) {
            None => missing.push(k),
            Some(tv) if tv != sv => differing.push(k),
            Some(_) => {}
        }
    }
    let mut extra: Vec<&Row> = target.keys().filter(|k| !source.contains_key(*k)).collect();
    report.missing = missing.len();
    report.extra = extra.len();
    report.differing = differing.len();
    for (kind, keys) in [(ExampleKind::Missing, &mut missing), (ExampleKind::Extra, &mut extra), (ExampleKind::Differing, &mut differing)] {
        keys.sort();
        for k in keys.iter().take(EXAMPLES_PER_KIND) {
            let mut e = Example::new(kind, named(key, k));
            if kind == ExampleKind::Differing {
                let (sv, tv) = (&source[*k], &target[*k]);
                e.columns = (0..cols.len())
                    .filter(|&i| sv[i] != tv[i])
                    .take(COLUMNS_PER_EXAMPLE)
                    .map(|i| ColumnDiff { column: cols[i].clone(), source: shorten(&sv[i]), target: shorten(&tv[i]) })
                    .collect();
            }
            report.examples.push(e);
        }
    }
}

fn compare_multisets(cols: &[String], source: &HashMap<Row, usize>, target: &HashMap<Row, usize>, report: &mut TableReport) {
    report.source_rows = source.values().sum();
    report.target_rows = target.values().sum();
    let count = |m: &HashMap<Row, usize>, r: &Row| m.get(r).copied().unwrap_or(0);
    let mut missing: Vec<&Row> = source.keys().filter(|r| count(source, r) > count(target, r)).collect();
    let mut extra: Vec<&Row> = target.keys().filter(|r| count(target, r) > count(source, r)).collect();
    report.missing = missing.iter().map(|r| count(source, r) - count(target, r)).sum();
    report.extra = extra.iter().map(|r| count(target, r) - count(source, r)).sum();
    for (kind, rows) in [(ExampleKind::Missing, &mut missing), (ExampleKind::Extra, &mut extra)] {
        rows.sort();
        for r in rows.iter().take(EXAMPLES_PER_KIND) {
            report.examples.push(Example {
                source_count: Some(count(source, r)),
                target_count: Some(count(target, r)),
                ..Example::new(kind, named(cols, r))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn change(op: RowOp, lsn: i64, seq: i64, id: &str, v: &str) -> ChangeRow {
        let mut values = BTreeMap::new();
        values.insert("id".to_string(), Some(id.to_string()));
        values.insert("v".to_string(), Some(v.to_string()));
        ChangeRow { op, lsn, seq, unchanged: Vec::new(), values, key: Default::default() }
    }

    fn row(id: &str, v: &str) -> Row {
        vec![Some(id.to_string()), Some(v.to_string())]
    }

    #[test]
    fn whole_rows_are_counted_and_cut_at_the_lsn() {
        let cols = vec!["id".to_string(), "v".to_string()];
        let rows = vec![
            change(RowOp::Insert, 10, 0, "1", "a"),
            change(RowOp::Insert, 10, 1, "1", "a"),
            change(RowOp::Insert, 10, 2, "2", "b"),
            change(RowOp::Delete, 20, 0, "1", "a"),
            change(RowOp::Delete, 30, 0, "2", "b"),
        ];
        let m = materialize_multiset(rows, &cols, 29);
        assert_eq!(m.get(&row("1", "a")), Some(&1));
        assert_eq!(m.get(&row("2", "b")), Some(&1), "the delete at 30 is past the cut");

        let source = count_rows(vec![row("1", "a"), row("1", "a"), row("2", "b")]);
        let mut report = empty_report();
        compare_multisets(&cols, &source, &m, &mut report);
        assert_eq!((report.source_rows, report.target_rows, report.missing, report.extra), (3, 2, 1, 0));
        assert_eq!(report.examples[0].source_count, Some(2));
        assert_eq!(report.examples[0].target_count, Some(1));
    }

    #[test]
    fn keyed_comparison_names_keys_and_columns_in_order() {
        let cols = vec!["id".to_string(), "v".to_string(), "w".to_string()];
        let key = vec!["id".to_string()];
        let k = |s: &str| vec![Some(s.to_string())];
        let r = |a: &str, b: &str, c: &str| vec![Some(a.to_string()), Some(b.to_string()), Some(c.to_string())];
        let source: HashMap<Row, Row> = [(k("1"), r("1", "x", "y")), (k("2"), r("2", "x", "y")), (k("3"), r("3", "x", "y"))].into();
        let target: HashMap<Row, Row> = [(k("1"), r("1", "x", "y")), (k("2"), r("2", "X", "Y")), (k("4"), r("4", "x", "y"))].into();
        let mut report = empty_report();
        compare_keyed(&cols, &key, &source, &target, &mut report);
        assert_eq!((report.missing, report.extra, report.differing), (1, 1, 1));
        let d = report.examples.iter().find(|e| e.kind == ExampleKind::Differing).unwrap();
        assert_eq!(d.key, vec![("id".to_string(), Some("2".to_string()))]);
        assert_eq!(d.columns.iter().map(|c| c.column.as_str()).collect::<Vec<_>>(), vec!["v", "w"]);
        let json = serde_json::to_value(d).unwrap();
        assert_eq!(json["key"]["id"], "2");
    }

    #[test]
    fn duplicate_pairs_are_found_once() {
        let rows = vec![change(RowOp::Insert, 1, 0, "1", "a"), change(RowOp::Insert, 1, 0, "1", "a"), change(RowOp::Insert, 1, 0, "1", "a"), change(RowOp::Insert, 1, 1, "2", "a")];
        assert_eq!(duplicates(&rows), vec![(1, 0)]);
    }

    fn empty_report() -> TableReport {
        TableReport { status: TableStatus::Identical, ..TableReport::empty("public".into(), "t".into()) }
    }
}
