//! Where the full load and reloads write: every sink of the configuration.
//!
//! A loaded chunk goes to every Parquet sink, so each sink holds the whole load and the
//! CDC after it, whatever its layout; and, as `load` records, to every Kinesis sink
//! ([`record_outputs`], full load only: a reload runs beside CDC and sends no records). Progress (`_pgcdc/load.json`, `tables.json`) lives in
//! the first sink only ([`crate::state`]); the files of a chunk are published to every sink
//! before the chunk is recorded as done, so a crash in between redoes the chunk everywhere.
//!
//! Sinks of both layouts may be configured together. The two layouts read a table
//! differently (the DMS layout reads the columns it writes as strings in their text form,
//! see [`DmsColumns::source_table`]), so a chunk is copied once per [`Shape`] that some
//! sink needs: once for all native sinks, once for all DMS-layout sinks.

use std::sync::Arc;

use crate::config::{Compression, Config, SinkConfig};
use crate::error::Result;
use crate::sink::kinesis::load::KinesisLoad;
use crate::sink::dead_letter::DeadLetters;
use crate::sink::parquet::dms_schema::DmsColumns;
use crate::storage::{Storage, Targets};

/// One Parquet sink as the full load sees it.
#[derive(Clone)]
pub struct LoadOutput {
    /// Its target, wrapped so that published files are registered in Glue when
    /// `[catalog]` is configured.
    pub storage: Arc<dyn Storage>,
    pub compression: Compression,
    /// `layout = "dms"` (SPEC 5.2): files get DMS names and columns.
    pub dms: Option<Arc<DmsColumns>>,
    /// `[dead_letter]` (the same for every output): where a loaded row with a value the
    /// layout cannot hold goes instead of stopping the load.
    pub dead_letters: Option<Arc<DeadLetters>>,
}

/// How a chunk is read from the source for a group of outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Native,
    Dms,
}

impl LoadOutput {
    pub fn shape(&self) -> Shape {
        if self.dms.is_some() {
            Shape::Dms
        } else {
            Shape::Native
        }
    }
}

/// The load outputs of `config`, one per Parquet sink in configuration order, over the
/// targets `run` opened (and locked). Errors when a Glue database of `[catalog]` cannot be
/// read.
pub fn load_outputs(config: &Config, targets: &Targets) -> Result<Vec<LoadOutput>> {
    let dead_letters = DeadLetters::open(config)?;
    config
        .sinks
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            SinkConfig::Parquet(p) => Some((i, p)),
            _ => None,
        })
        .map(|(i, p)| {
            let storage = targets.for_sink(i).expect("Targets::open opened every Parquet sink").clone();
            Ok(LoadOutput {
                storage: crate::sink::parquet::glue::with_catalog(config, p, storage)?,
                compression: p.compression,
                dms: DmsColumns::of(p),
                dead_letters: dead_letters.clone(),
            })
        })
        .collect()
}

/// Every Kinesis sink of `config`, opened for the full load's `load` records, in
/// configuration order. Errors when a stream cannot be described. Blocks (see
/// [`KinesisLoad::open`]).
pub fn record_outputs(config: &Config) -> Result<Vec<Arc<KinesisLoad>>> {
    let dead_letters = DeadLetters::open(config)?;
    config
        .sinks
        .iter()
        .filter_map(|s| match s {
            SinkConfig::Kinesis(k) => Some(k),
            _ => None,
        })
        .map(|k| KinesisLoad::open(k, config.aws.as_ref(), dead_letters.clone()).map(Arc::new))
        .collect()
}

/// The shapes `outputs` need, each once, native first; `records` (record outputs read the
/// native shape) adds the native one.
pub fn shapes(outputs: &[LoadOutput], records: bool) -> Vec<Shape> {
    [Shape::Native, Shape::Dms]
        .into_iter()
        .filter(|s| outputs.iter().any(|o| o.shape() == *s) || (records && *s == Shape::Native))
        .collect()
}
