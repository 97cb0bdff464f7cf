//! Surviving a lost source (SPEC 2.7, issue 11): when PostgreSQL restarts, fails over to a
//! new primary that has the slot, or drops the connection, `run` reconnects with back-off
//! and resumes CDC from what the sinks hold, as a new process would.
//!
//! The CDC attempt that lost its source has already ended in order: the pipeline kept what
//! was complete and stored it ([`super::Pipeline::close`]), the sinks were dropped. The next
//! attempt reopens the sinks, recovers from their checkpoints and starts streaming at that
//! position, so nothing is lost and no file is written twice (the crash tests prove the same
//! path for a killed process). Only errors of a source that went away are retried
//! ([`source_lost`]); an error that a person must fix (a password, a dropped slot, a
//! privilege) ends the run at once.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::source::catalog::Catalog;
use crate::source::conninfo::ConnInfo;
use crate::source::sql;

/// Whether `e` means the source went away rather than refused us: a transient failure
/// ([`Error::is_retryable`]: connection reset or closed, server shutting down or starting
/// up) or a server that does not answer ([`Error::is_unreachable`], refused connections:
/// the server was reached before in this run, so it is restarting).
pub fn source_lost(e: &Error) -> bool {
    e.is_retryable() || e.is_unreachable()
}

/// How a reconnect wait ended.
pub enum Reconnected {
    /// A SQL connection to the source works again.
    Catalog(Catalog),
    /// SIGINT or SIGTERM arrived while waiting: stop, exit 0.
    Stopped,
}

/// Waits, with back-off from 0.5 s doubling to 30 s (jittered), until a SQL connection to the
/// source succeeds. Gives up with the last error after `limit` since `lost_at`, or at once
/// on an error that is not of a lost source. `lost` is the error that ended the attempt
/// (logged once, with the wait). Called from `run` on its tokio runtime.
pub async fn reconnect(
    info: &ConnInfo,
    lost: Error,
    lost_at: Instant,
    limit: Duration,
    sigterm: &mut tokio::signal::unix::Signal,
) -> Result<Reconnected> {
    let mut delay = Duration::from_millis(500);
    let mut last = lost;
    crate::metrics::source_lost(&last.message);
    tracing::warn!("lost the source: {}; reconnecting for up to {}", last.message, humantime::format_duration(limit));
    loop {
        if lost_at.elapsed() + delay > limit {
            return Err(last.context(format!("the source stayed unreachable for {}", humantime::format_duration(round_secs(lost_at.elapsed())))));
        }
        tokio::select! {
            _ = tokio::time::sleep(crate::aws::jitter(delay)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(Reconnected::Stopped),
            _ = sigterm.recv() => return Ok(Reconnected::Stopped),
        }
        match sql::connect(info).await {
            Ok(client) => {
                let catalog = Catalog::new(client);
                // A server that accepts connections but is still recovering answers queries
                // with 57P03 or fails them: probe once before streaming.
                match catalog.server_version_num().await {
                    Ok(_) => {
                        crate::metrics::source_back();
                        tracing::info!(after = %humantime::format_duration(round_secs(lost_at.elapsed())), "reconnected to the source; resuming CDC");
                        return Ok(Reconnected::Catalog(catalog));
                    }
                    Err(e) if source_lost(&e) => last = e,
                    Err(e) => return Err(e),
                }
            }
            Err(e) if source_lost(&e) => last = e,
            Err(e) => return Err(e),
        }
        tracing::info!("source still unreachable ({}); next try in {:.1}s", last.message, delay.as_secs_f64());
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

fn round_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}
