//! [`Targets`]: the storage of every Parquet sink of a configuration, each opened once.
//!
//! `pgcdc run` opens its targets here at the start and hands the same [`Storage`] to the
//! full load, the reload worker, the progress store and the sinks, so that a target is one
//! client (one S3 connection pool), and its writer lock is held from before the first read
//! of progress until the run returns.

use std::sync::Arc;

use super::{lock::TargetLock, Storage};
use crate::config::{Config, SinkConfig};
use crate::error::Result;

/// The opened targets of one command, in configuration order.
pub struct Targets {
    /// `(index of the sink in config.sinks, its storage)`, Parquet sinks only.
    opened: Vec<(usize, Arc<dyn Storage>)>,
    /// `[state] url`, when configured apart from the sinks.
    state: Option<Arc<dyn Storage>>,
    locks: Vec<TargetLock>,
}

impl Targets {
    /// Opens the storage of every Parquet sink. Changes nothing in any target.
    pub fn open(config: &Config) -> Result<Targets> {
        let mut opened = Vec::new();
        for (i, s) in config.sinks.iter().enumerate() {
            if let SinkConfig::Parquet(p) = s {
                opened.push((i, Arc::from(super::open_sink_target(config, p)?)));
            }
        }
        let state = match &config.state {
            Some(st) => {
                let options = crate::aws::S3Options { aws: config.aws.clone(), ..Default::default() };
                Some(Arc::from(super::open(&st.location, &options)?))
            }
            None => None,
        };
        Ok(Targets { opened, state, locks: Vec::new() })
    }

    /// Takes every target's writer lock ([`Storage::lock`]) in configuration order (the
    /// `[state]` store last), and
    /// holds them until `self` is dropped. The first refusal is returned; the locks taken
    /// so far are released then. `pgcdc run` calls this before anything else touches a
    /// target.
    pub fn lock(&mut self) -> Result<()> {
        let locks = self.opened.iter().map(|(_, s)| s).chain(&self.state).map(|s| s.lock()).collect::<Result<Vec<_>>>()?;
        self.locks = locks;
        Ok(())
    }

    /// The storage of sink `index` of `config.sinks`, if it is a Parquet sink.
    pub fn for_sink(&self, index: usize) -> Option<&Arc<dyn Storage>> {
        self.opened.iter().find(|(i, _)| *i == index).map(|(_, s)| s)
    }

    /// The first Parquet target.
    pub fn first(&self) -> Option<&Arc<dyn Storage>> {
        self.opened.first().map(|(_, s)| s)
    }

    /// Where progress lives ([`crate::state`]): `[state] url`, else the first Parquet
    /// target. `None` only for a configuration without either, which `Config` refuses.
    pub fn progress(&self) -> Option<&Arc<dyn Storage>> {
        self.state.as_ref().or_else(|| self.first())
    }

    /// Every opened target, in configuration order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Storage>> {
        self.opened.iter().map(|(_, s)| s)
    }
}
