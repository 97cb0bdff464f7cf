//! Waiting until the target holds every transaction that committed before the validation
//! LSN (step 3 of [`super::run`]): its checkpoint reached the LSN, or — when no `pgcdc run`
//! reads the pipeline's slot — none of the transactions in between touches a validated
//! table ([`super::peek`]). A full load still in progress is waited for too.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::peek::pending_transactions;
use super::report::TargetReady;
use super::run::ValidateOptions;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::state::load::LoadState;
use crate::model::Lsn;
use crate::storage::Storage;
use crate::source::catalog::Catalog;

/// Waits until the target holds every transaction that committed before `v` (tables
/// `relids`), polling every `opts.poll_interval`. `home` is where progress lives (the first
/// Parquet sink; `target` itself when that is the one validated): the load's state is read
/// there, the checkpoint in `target`. Returns the target's durable position and
/// why it is complete; after `opts.timeout` fails with what it found (exit 1).
pub(super) async fn wait_for_target(
    control: &Catalog,
    target: &dyn Storage,
    home: &dyn Storage,
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
        let at = crate::state::checkpoint::read_checkpoint(target)?.map(|c| c.end_lsn);
        let load_running = LoadState::read(home)?.is_some_and(|l| !l.complete);
        if !load_running {
            if at.is_some_and(|a| a >= v) {
                return Ok((at, TargetReady::Checkpoint));
            }
            if let Some(a) = at.filter(|a| peeked_at != Some(*a)) {
                // Only when no run reads the slot: peeking makes it busy for a moment.
                let slot = control.slot(&config.source.slot).await?;
                if slot.as_ref().is_some_and(|s| !s.active) {
                    match pending_transactions(
                        control,
                        &config.source.slot,
                        &config.source.publication,
                        a,
                        v,
                        relids,
                    )
                    .await
                    {
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
                    peek_error = Some(format!(
                        "the replication slot `{}` does not exist",
                        config.source.slot
                    ));
                }
            }
        }
        if started.elapsed() >= opts.timeout {
            return Err(not_caught_up(
                at,
                v,
                load_running,
                pending,
                peek_error,
                opts.timeout,
            ));
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

fn not_caught_up(
    at: Option<Lsn>,
    v: Lsn,
    load_running: bool,
    pending: Option<usize>,
    peek_error: Option<String>,
    waited: Duration,
) -> Error {
    let mut msg = match at {
        Some(a) => format!("the target is durable up to {a}, but validating at the source snapshot needs it at {v}"),
        None => format!("the target has no checkpoint yet (nothing replicated), but validating at the source snapshot needs it at {v}"),
    };
    if load_running {
        msg.push_str("; its full load is still in progress");
    }
    if let Some(n) = pending.filter(|n| *n > 0) {
        msg.push_str(&format!(
            "; {n} transaction(s) changing the validated tables committed in between"
        ));
    }
    if let Some(e) = peek_error {
        msg.push_str(&format!(" (could not check the changes in between: {e})"));
    }
    msg.push_str(&format!(
        "; gave up after {}",
        humantime::format_duration(waited)
    ));
    Error::runtime(msg).with_hint(format!(
        "`pgcdc run` must be running so that the target passes {v} (or run `pgcdc run --until-lsn current` first, then validate); raise --timeout if the pipeline is only slow"
    ))
}
