//! Replaying a committed streamed transaction: its spilled messages are read back and
//! decoded on a thread of their own, ahead of the pipeline thread that applies them.
//!
//! At Stream Commit the walsender has already sent the whole transaction, so the replay is
//! all that stands between the commit and its rows being written: reading the spill file
//! and decoding pgoutput (about a sixth of that work on a wide table) overlap the
//! conversion and writing on the pipeline thread instead of preceding each row.
//!
//! # Contract
//!
//! * [`Replay::next`] yields the transaction's changes in spill order, without the ones of
//!   rolled-back subtransactions and without transactional logical messages (`M`), which no
//!   sink writes.
//! * At most [`AHEAD`] chunks of [`CHUNK`] decoded messages wait in memory: the decoder
//!   thread waits for the pipeline (bounded memory, SPEC 2.5).
//! * The first read or decode error ends the replay: `next` returns it, once.
//! * Dropping a [`Replay`] early (the pipeline failed) stops the thread at its next chunk
//!   and removes the spill file ([`SpilledTxn`]'s drop).

use std::sync::mpsc::{sync_channel, Receiver};
use std::vec::IntoIter;

use super::spill::SpilledTxn;
use crate::error::{Error, Result};
use crate::source::pgoutput::{decode_message, PgOutputMessage};

/// Decoded messages handed over at a time.
const CHUNK: usize = 512;
/// Chunks decoded ahead of the pipeline.
const AHEAD: usize = 4;

/// The decoded changes of one committed streamed transaction (see the module docs).
pub struct Replay {
    chunks: Receiver<Result<Vec<PgOutputMessage>>>,
    current: IntoIter<PgOutputMessage>,
}

impl Replay {
    /// Starts decoding `spilled` (pgoutput `protocol_version`) on a thread of its own.
    pub fn start(mut spilled: SpilledTxn, protocol_version: u32) -> Result<Replay> {
        let (tx, chunks) = sync_channel(AHEAD);
        std::thread::Builder::new()
            .name("pgcdc-replay".into())
            .spawn(move || loop {
                let chunk = next_chunk(&mut spilled, protocol_version);
                let last = !matches!(&chunk, Ok(c) if c.len() == CHUNK);
                if tx.send(chunk).is_err() || last {
                    return;
                }
            })
            .map_err(|e| Error::runtime(format!("starting the replay thread: {e}")))?;
        Ok(Replay { chunks, current: Vec::new().into_iter() })
    }

    /// The next change, `None` after the last one.
    pub fn next(&mut self) -> Result<Option<PgOutputMessage>> {
        loop {
            if let Some(m) = self.current.next() {
                return Ok(Some(m));
            }
            match self.chunks.recv() {
                Ok(chunk) => self.current = chunk?.into_iter(),
                // The thread sent its last (short) chunk and ended.
                Err(_) => return Ok(None),
            }
        }
    }
}

/// Up to [`CHUNK`] changes; fewer only at the end of the spill.
fn next_chunk(spilled: &mut SpilledTxn, protocol_version: u32) -> Result<Vec<PgOutputMessage>> {
    let mut out = Vec::with_capacity(CHUNK);
    while out.len() < CHUNK {
        let Some(raw) = spilled.next_message()? else { break };
        let msg = decode_message(raw, protocol_version, true)
            .map_err(|e| Error::runtime(format!("decoding spilled pgoutput: {e}")))?;
        if msg.stream_xid().is_some_and(|x| spilled.aborted_subxacts.contains(&x)) {
            continue;
        }
        if !matches!(msg, PgOutputMessage::Message { .. }) {
            out.push(msg);
        }
    }
    Ok(out)
}
