//! How `run` starts and stops reloads beside CDC: the registry is opened (created on the
//! first run), `--reload` requests and the first look at the publication are recorded
//! before streaming starts, then the reload worker and the publication watch run as tokio
//! tasks with connections of their own while the replication reader streams.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::config::TableFilter;
use super::table_watch;
use crate::config::{Config, Mode};
use crate::error::{Error, Result};
use crate::load::reload::{relid_of, reload_worker, ReloadTarget};
use crate::load::requests::{ReloadRequest, Reloads};
use crate::load::outputs::LoadOutput;
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;

pub struct ReloadWiring {
    pub reloads: Arc<Reloads>,
    catalog: Arc<Catalog>,
    /// Every Parquet sink: a reload writes into each (the registry lives in the first).
    outputs: Vec<LoadOutput>,
    tid_ranges: bool,
    closing: Arc<AtomicBool>,
}

/// Opens the registry of the first Parquet sink, records `--reload` requests and looks at
/// the publication once. `None` without a Parquet sink (nothing to reload into).
pub async fn start(
    config: &Config,
    targets: &crate::storage::Targets,
    catalog: &Arc<Catalog>,
    server_version: u32,
    requested: &[String],
) -> Result<Option<ReloadWiring>> {
    let (Some(storage), Some(_)) = (targets.progress().cloned(), targets.first()) else {
        if !requested.is_empty() {
            return Err(Error::config(
                "--reload writes into a Parquet sink, and the configuration has none",
            ));
        }
        return Ok(None);
    };
    let filter = TableFilter::new(&config.source.tables);
    let publication = &config.source.publication;
    let registry =
        table_watch::open_registry(storage.as_ref(), catalog, publication, &filter).await?;
    let reloads = Reloads::new(
        storage.clone(),
        registry,
        config.pipeline.mode == Mode::FullLoadAndCdc,
    );
    let published = if requested.is_empty() {
        Vec::new()
    } else {
        table_watch::published_tables(catalog, publication, &TableFilter::new(&[])).await?
    };
    for name in requested {
        let (schema, table) = name.split_once('.').unwrap_or(("public", name.as_str()));
        let relid = relid_of(catalog, schema, table).await?.ok_or_else(|| {
            Error::config(format!(
                "--reload {name}: there is no table {schema}.{table}"
            ))
            .with_hint("name it as SCHEMA.TABLE, as the source spells it")
        })?;
        if !published.iter().any(|t| t.0 == relid) {
            return Err(Error::config(format!("--reload {name}: {schema}.{table} is not in publication `{publication}`"))
                .with_hint(format!("CDC follows only published tables: ALTER PUBLICATION \"{publication}\" ADD TABLE {schema}.{table}")));
        }
        if !filter.matches(schema, table) {
            return Err(Error::config(format!(
                "--reload {name}: {schema}.{table} does not match source.tables"
            )));
        }
        reloads.submit(ReloadRequest {
            relid,
            schema: schema.into(),
            table: table.into(),
            reason: "requested with --reload".into(),
        })?;
    }
    table_watch::check_once(catalog, publication, &filter, &reloads).await?;
    Ok(Some(ReloadWiring {
        reloads,
        catalog: catalog.clone(),
        outputs: crate::load::outputs::load_outputs(config, targets)?,
        tid_ranges: server_version >= 140000,
        closing: Arc::new(AtomicBool::new(false)),
    }))
}

impl ReloadWiring {
    /// Starts the reload worker and the publication watch.
    pub fn spawn(
        &self,
        info: &ConnInfo,
        config: &Config,
    ) -> (JoinHandle<Result<()>>, JoinHandle<Result<()>>) {
        let target = ReloadTarget {
            outputs: self.outputs.clone(),
            tid_ranges: self.tid_ranges,
            filter: TableFilter::new(&config.source.tables),
            publication: config.source.publication.clone(),
            rules: config.rules.clone(),
        };
        let worker = tokio::spawn(reload_worker(
            info.clone(),
            target,
            self.reloads.clone(),
            self.closing.clone(),
        ));
        let watch = tokio::spawn(table_watch::watch(
            self.catalog.clone(),
            config.source.publication.clone(),
            TableFilter::new(&config.source.tables),
            self.reloads.clone(),
        ));
        (worker, watch)
    }

    /// At the end of `run`: after a signal, stops the worker (its reload stays pending and
    /// is redone by the next run); otherwise lets it finish every pending reload.
    pub async fn finish(&self, worker: JoinHandle<Result<()>>, signalled: bool) -> Result<()> {
        if signalled {
            worker.abort();
            if self.reloads.has_pending() {
                tracing::info!("stopped with reloads pending: the next run redoes them");
            }
            return Ok(());
        }
        if self.reloads.has_pending() {
            tracing::info!("waiting for the pending reloads to finish");
        }
        self.closing.store(true, Ordering::SeqCst);
        self.reloads.wake();
        match worker.await {
            Ok(r) => r,
            Err(e) => Err(Error::runtime(format!("the reload worker failed: {e}"))),
        }
    }
}

/// The error to stop `run` with when a background task ended (it only ends on an error).
pub fn task_error(r: std::result::Result<Result<()>, tokio::task::JoinError>, what: &str) -> Error {
    match r {
        Ok(Err(e)) => e,
        Ok(Ok(())) => Error::runtime(format!("internal: {what} stopped")),
        Err(e) => Error::runtime(format!("{what} failed: {e}")),
    }
}
