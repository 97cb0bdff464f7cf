//! The sink factory: one [`Sink`] per `[[sink]]` of the configuration.

use super::parquet::ParquetSink;
use super::Sink;
use crate::config::{Config, SinkConfig};
use crate::error::{Error, Result};

/// Opens every configured sink, in configuration order.
///
/// Called by `pgcdc run` before streaming (the pipeline drives the sinks) and by
/// `pgcdc check` (which only describes them). Opening changes nothing in a target:
/// recovery happens later, in [`Sink::recover`]. An error is the first sink that cannot be
/// opened (a bad URL, or a kind this build does not support); no sink is returned then.
pub fn open_sinks(config: &Config) -> Result<Vec<Box<dyn Sink>>> {
    config
        .sinks
        .iter()
        .map(|s| match s {
            SinkConfig::Parquet(p) => Ok(Box::new(ParquetSink::open(p)?) as Box<dyn Sink>),
            SinkConfig::Kinesis(_) => Err(Error::config(
                "kind = \"kinesis\" is not supported by this build yet",
            )),
        })
        .collect()
}
