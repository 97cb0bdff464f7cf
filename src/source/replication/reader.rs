//! The replication reader: the loop that reads the walsender's CopyData, answers
//! keepalives, reports the durable position to the slot, and feeds the pipeline.
//!
//! # Contract
//!
//! * **Who calls it, where.** `pgcdc run` (`pipeline::runner`) spawns [`read`] as one tokio
//!   task once `START_REPLICATION` succeeded. It is the only user of the
//!   [`ReplicationStream`] while it runs; it never decodes pgoutput (the pipeline thread
//!   does).
//! * **What it sends where.** Batches of [`SourceEvent`]s, in stream order, into the bounded
//!   channel the pipeline thread reads: `Data` for each XLogData, `Keepalive` for each
//!   primary keepalive (at most 256 events a batch: the messages already buffered after
//!   the one it waited for), and a `Tick` about once a second. A full channel blocks the
//!   reader, which then stops reading the socket (back-pressure) but keeps sending status
//!   updates, so a pipeline blocked for minutes (a sink riding out an outage) does not
//!   lose its connection to `wal_sender_timeout`. To the server it sends
//!   standby status updates: `write` = the highest `wal_end` received, `flush` = `apply` =
//!   `durable()`, the position every sink has made durable (SPEC 2.1). They go out every
//!   `status_interval` (at most 10 s), within a second after `durable()` moved, and at once
//!   when a keepalive asks for a reply. The reader never reports past `durable()`.
//! * **How it stops.** When `stop` fires or its sender is dropped, when the pipeline has
//!   hung up (a send into the channel fails), or on an error. It then returns the stream
//!   in a [`ReaderEnd`], unclosed, so the caller can send the final position after the
//!   pipeline has flushed ([`ReaderEnd::finish`]).
//! * **What an error means.** [`ReaderEnd::error`] is the first failure of the connection
//!   (socket error, server error, or the server ending the copy). Everything handed over
//!   before it is unaffected; the caller lets the pipeline keep what is complete and fails
//!   the run. Nothing past `durable()` was confirmed, so the next run repeats the rest.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::stream::{ReplicationStream, StreamEvent};
use crate::error::{Error, Result};
use crate::model::Lsn;

/// What the replication reader hands to the pipeline, in stream order.
#[derive(Debug)]
pub enum SourceEvent {
    /// One pgoutput message from XLogData.
    Data { wal_end: Lsn, data: Bytes },
    /// A keepalive: the server has sent everything before `wal_end`.
    Keepalive { wal_end: Lsn },
    /// Time passes (sent about once a second): lets age-based flushes happen when idle.
    Tick,
    /// Stop at the next transaction boundary, flush, and return.
    Shutdown,
    /// From now on, stop like `--until-lsn` at this LSN.
    SetUntil(Lsn),
}

/// The most events put into one batch for the pipeline.
const MAX_BATCH: usize = 256;

/// Where the reader stopped, and with which stream.
pub struct ReaderEnd {
    stream: ReplicationStream,
    /// The highest `wal_end` received from the server.
    pub received: Lsn,
    /// Why the reader stopped, when it was not asked to (see the module docs).
    pub error: Option<Error>,
}

impl ReaderEnd {
    /// Reports `durable` to the slot one last time and closes the stream; returns
    /// [`ReaderEnd::error`]. Called by `run` after the pipeline thread has ended, so
    /// `durable` is final. A failure to send is ignored: the next run starts from what the
    /// slot has confirmed, and the target skips what it already holds.
    pub async fn finish(mut self, durable: Lsn) -> Option<Error> {
        let _ = self
            .stream
            .send_status(self.received, durable, durable, false)
            .await;
        self.stream.close().await;
        self.error
    }
}

/// Runs the reader until it stops (see the module docs for the contract). `start` is the
/// position streaming started from; `durable` returns the position every sink has made
/// durable.
pub async fn read(
    mut stream: ReplicationStream,
    start: Lsn,
    status_interval: Duration,
    durable: impl Fn() -> Lsn,
    tx: mpsc::Sender<Vec<SourceEvent>>,
    mut stop: oneshot::Receiver<()>,
) -> ReaderEnd {
    let mut status_tick = tokio::time::interval(status_interval.min(Duration::from_secs(10)));
    let mut second = tokio::time::interval(Duration::from_secs(1));
    let mut received = start;
    let mut last_reported = Lsn::ZERO;
    let mut error = None;
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            _ = status_tick.tick() => {
                let durable = durable();
                if let Err(e) = stream.send_status(received, durable, durable, false).await { error = Some(e); break; }
                last_reported = durable;
            }
            _ = second.tick() => {
                // A tick only lets the pipeline flush by age: dropped when the channel is full.
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(vec![SourceEvent::Tick]) { break; }
                let durable = durable();
                if durable > last_reported {
                    // Tell the slot promptly after a flush.
                    if let Err(e) = stream.send_status(received, durable, durable, false).await { error = Some(e); break; }
                    last_reported = durable;
                }
            }
            ev = stream.next() => {
                let first = match ev {
                    Ok(Some(first)) => first,
                    // Unasked, the server ends the copy only when its walsender stops (shutdown,
                    // failover): the source went away.
                    Ok(None) => { error = Some(Error::runtime("the server ended the replication stream").retryable()); break; }
                    Err(e) => { error = Some(e); break; }
                };
                let (batch, reply) = match read_batch(&mut stream, first, &mut received) {
                    Ok(b) => b,
                    Err(e) => { error = Some(e); break; }
                };
                if reply {
                    let durable = durable();
                    if let Err(e) = stream.send_status(received, durable, durable, false).await { error = Some(e); break; }
                }
                // Back-pressure: while the pipeline is busy (a sink retrying through an
                // outage), keep telling the server we are alive, or it would end the
                // connection after wal_sender_timeout.
                let permit = loop {
                    tokio::select! {
                        biased;
                        _ = &mut stop => break None,
                        p = tx.reserve() => break p.ok(),
                        _ = status_tick.tick() => {
                            let durable = durable();
                            if let Err(e) = stream.send_status(received, durable, durable, false).await { error = Some(e); break None; }
                            last_reported = durable;
                        }
                    }
                };
                match permit {
                    Some(p) => p.send(batch),
                    None => break,
                }
            }
        }
    }
    ReaderEnd {
        stream,
        received,
        error,
    }
}

/// `first` and the events already buffered behind it (up to [`MAX_BATCH`]), as pipeline
/// events; raises `received` to their `wal_end`. Also says whether a keepalive asked for a
/// reply. Does not wait for the socket.
fn read_batch(
    stream: &mut ReplicationStream,
    first: StreamEvent,
    received: &mut Lsn,
) -> Result<(Vec<SourceEvent>, bool)> {
    let mut batch = Vec::with_capacity(64);
    let mut reply = false;
    let mut push = |ev: StreamEvent, batch: &mut Vec<SourceEvent>| match ev {
        StreamEvent::XLogData { wal_end, data, .. } => {
            *received = (*received).max(wal_end);
            batch.push(SourceEvent::Data { wal_end, data });
        }
        StreamEvent::Keepalive {
            wal_end,
            reply_requested,
        } => {
            *received = (*received).max(wal_end);
            reply |= reply_requested;
            batch.push(SourceEvent::Keepalive { wal_end });
        }
    };
    push(first, &mut batch);
    while batch.len() < MAX_BATCH {
        match stream.try_next_buffered()? {
            Some(ev) => push(ev, &mut batch),
            None => break,
        }
    }
    Ok((batch, reply))
}
