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
//!    its checkpoint (`_pgcdc/checkpoint.json` of the validated sink) reached `V` — or,
//!    when no `pgcdc run` is reading the pipeline's slot, none of the transactions between
//!    the checkpoint and `V` touches a validated table (checked by peeking at that slot with
//!    `pg_logical_slot_peek_binary_changes`, which consumes nothing, `peek.rs`). A full load still in
//!    progress (`_pgcdc/load.json`) is waited for too. Gives up after `--timeout`.
//! 4. **Compare.** Per table: the source rows read in the snapshot go through the output's
//!    type mapping ([`super::canonical::canonical_rows`]); the target is materialised with the SPEC 5.1 rule
//!    up to `V` and projected onto the source's columns. Missing, extra and differing rows
//!    are counted, with a few examples (key and first differing columns, in key order);
//!    duplicate `(_lsn, _seq)` pairs in the target are differences too (SPEC 2.2).
//!
//! Memory is bounded: a table is compared partition by partition through spill files
//! (`partitioned.rs`). Creating the temporary slot waits for transactions already
//! running on the source to finish.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::report::{Outcome, TableReport, ValidateReport};
use super::snapshot::ValidationSnapshot;
use super::table::validate_table;
use super::target_ready::wait_for_target;
use crate::config::{Config, Layout, ParquetSinkConfig, SinkConfig};
use crate::error::{Error, Result};
use crate::config::TableFilter;
use crate::storage;
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;
use crate::source::sql;

/// Which target `pgcdc validate` reads (`--sink`) and how it waits (`--timeout`).
#[derive(Clone)]
pub struct ValidateOptions {
    /// `--sink N`: the N-th `[[sink]]` of the configuration (1-based), which must be a
    /// native-layout Parquet sink; `None`: the first Parquet sink.
    pub sink: Option<usize>,
    /// How long to wait for the target to reach the validation LSN.
    pub timeout: Duration,
    /// How often the target's checkpoint is read while waiting.
    pub poll_interval: Duration,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions { sink: None, timeout: Duration::from_secs(300), poll_interval: Duration::from_millis(500) }
    }
}

/// Validates the configured target against the source (see the module docs).
pub async fn validate(config: &Config, opts: &ValidateOptions) -> Result<ValidateReport> {
    // `--timeout` bounds both waits together: for the snapshot and for the target.
    let deadline = Instant::now() + opts.timeout;
    // A bad PGCDC_VALIDATE_MEMORY is refused before anything connects or takes a snapshot.
    super::partitioned::memory_budget()?;
    let sink = chosen_sink(config, opts.sink)?;
    let info = ConnInfo::from_url(config.source.url.as_deref())?;
    let control = Catalog::new(sql::connect(&info).await?);
    let publication = &config.source.publication;
    crate::source::preflight::require_publication(&control, publication).await?;
    crate::source::rules::plan(&control, config).await?;

    // Tables that joined, were renamed or recreated are reloaded by `run`: wait for that
    // before the snapshot, which would cut off a reload that finishes after it.
    let target = storage::open_sink_target(config, sink)?;
    // Progress (the load's state, the followed tables) lives in [state] or the first
    // Parquet sink.
    let first = config.parquet_sinks().next().expect("chosen_sink found a Parquet sink");
    let home = if config.state.is_none() && std::ptr::eq(first, sink) {
        None
    } else {
        Some(crate::state::ProgressStore::open(config)?.storage().clone())
    };
    let home = home.as_deref().unwrap_or(target.as_ref());
    let filter = TableFilter::new(&config.source.tables);
    let reloading = crate::pipeline::table_watch::wait_until_followed(&control, home, publication, &filter, deadline.saturating_duration_since(Instant::now()), opts.poll_interval).await?;
    if !reloading.is_empty() {
        return Err(Error::runtime(format!("the target does not hold these tables completely yet: {}", reloading.join("; ")))
            .with_hint("`pgcdc run` loads them: keep it running, or run `pgcdc run --until-lsn current` first; raise --timeout if it is only slow"));
    }

    // 1. The snapshot and its LSN.
    let snapshot = ValidationSnapshot::take(&info, &control, deadline, opts.timeout).await?;
    let (v, snap) = (snapshot.lsn, &snapshot.catalog);

    // 2. The tables, as of the snapshot.
    let mut tables = Vec::new();
    for (schema, table, _, _) in snap.publication_tables(publication).await? {
        if filter.matches(&schema, &table) {
            // Only the published columns and rows (PG15 column lists and row filters).
            tables.push(snap.published_table_schema(publication, &config.rules, &schema, &table).await?);
        }
    }
    let unpublished = snap.unpublished_matching_tables(publication, &config.source.tables).await?;
    let relids: HashSet<u32> = tables.iter().map(|t| t.schema.relid).collect();

    // 3. Wait until the target holds everything before V.
    let opts = &ValidateOptions { timeout: deadline.saturating_duration_since(Instant::now()), ..opts.clone() };
    let (target_lsn, target_ready) = wait_for_target(&control, target.as_ref(), home, config, v, &relids, opts).await?;

    // 4. Compare, one table at a time.
    let mut reports = Vec::new();
    let letters = crate::sink::dead_letter::DeadLetters::open(config)?;
    for published in &tables {
        let table = &published.schema;
        let report = validate_table(snap, target.as_ref(), published, v, letters.as_deref())
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
    snapshot.release().await;
    for (schema, table) in unpublished {
        let reason = format!(
            "matches source.tables but is not in publication `{publication}`, so it is not replicated: {}",
            crate::source::publication::add_tables_sql(publication, &[(schema.clone(), table.clone())])
        );
        tracing::warn!(table = %format!("{schema}.{table}"), "not published");
        reports.push(TableReport::new(schema, table, Vec::new(), Vec::new(), Outcome::NotPublished { reason }));
    }
    Ok(ValidateReport::new(v, target.describe(), target_lsn, target_ready, reports))
}

/// The Parquet sink `validate` reads: `--sink N` or the first Parquet sink. Configuration
/// errors (exit 2) for a sink that does not exist, is not Parquet, or is in the DMS layout.
fn chosen_sink(config: &Config, number: Option<usize>) -> Result<&ParquetSinkConfig> {
    let Some(n) = number else {
        let sink = config.parquet_sinks().next().ok_or_else(|| {
            Error::config("validate compares the source with a Parquet target, but the configuration has no [[sink]] with kind = \"parquet\"")
        })?;
        return native_only(sink, "the first Parquet sink");
    };
    match n.checked_sub(1).and_then(|i| config.sinks.get(i)) {
        Some(SinkConfig::Parquet(p)) => native_only(p, &format!("sink {n}")),
        Some(_) => Err(Error::config(format!("--sink {n}: sink {n} is not a Parquet sink"))
            .with_hint("validate reads Parquet targets; name one with --sink")),
        None => Err(Error::config(format!("--sink {n}: the configuration has {} [[sink]] entries", config.sinks.len()))
            .with_hint("sinks are numbered from 1 in the order of the configuration")),
    }
}

fn native_only<'a>(sink: &'a ParquetSinkConfig, what: &str) -> Result<&'a ParquetSinkConfig> {
    if sink.layout != Layout::Native {
        return Err(Error::config(format!("validate reads the native layout (SPEC 5.1); {what} uses layout = \"dms\""))
            .with_hint("use `pgcdc dms compare` for DMS-layout output, or --sink N for a native sink"));
    }
    Ok(sink)
}
