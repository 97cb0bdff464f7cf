//! The sink factory: one [`Sink`] per `[[sink]]` of the configuration.

use super::kinesis::KinesisSink;
use super::parquet::ParquetSink;
use super::Sink;
use crate::config::{Config, SinkConfig};
use crate::error::{Error, Result};
use crate::storage::Targets;

/// Opens every configured sink, in configuration order, each Parquet sink over its target
/// in `targets` (opened once by the caller, see [`Targets`]), each with the `[dead_letter]`
/// location when one is configured (see [`super::dead_letter`]).
///
/// Called by `pgcdc run` before streaming (the pipeline drives the sinks) and by
/// `pgcdc check` (which only describes them). Opening changes nothing in a target:
/// recovery happens later, in [`Sink::recover`]. An error is the first sink that cannot be
/// opened (a kind this build does not support); no sink is returned then.
pub fn open_sinks(config: &Config, targets: &Targets) -> Result<Vec<Box<dyn Sink>>> {
    let dead_letters = super::dead_letter::DeadLetters::open(config)?;
    config
        .sinks
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            SinkConfig::Parquet(p) => {
                let storage = targets.for_sink(i).expect("Targets::open opened every Parquet sink").clone();
                let storage = crate::sink::parquet::glue::with_catalog(config, p, storage)?;
                Ok(Box::new(ParquetSink::open(p, storage)?.with_dead_letters(dead_letters.clone())) as Box<dyn Sink>)
            }
            SinkConfig::Kinesis(k) => {
                // Its acknowledged position lives in the progress store.
                let progress = targets.progress().cloned().ok_or_else(|| {
                    Error::config("a Kinesis sink keeps its position in the progress store, and there is none")
                        .with_hint("add [state] url = \"file:///var/lib/pgcdc/state\" or a Parquet sink")
                })?;
                Ok(Box::new(KinesisSink::open(k, config.aws.as_ref(), progress)?.with_dead_letters(dead_letters.clone())) as Box<dyn Sink>)
            }
        })
        .collect()
}
