//! Streamed in-progress transactions (pgoutput v2+ `streaming`) spilled to local disk.
//!
//! Between Stream Start and Stream Stop the server sends changes of a transaction that has
//! not committed yet, in chunks interleaved with other transactions. They are appended, as
//! raw pgoutput messages, to one file per top-level transaction. Stream Commit replays the
//! file; Stream Abort deletes it (whole transaction) or marks a subtransaction whose changes
//! the replay skips. Memory use is one write buffer per open transaction, whatever its size
//! (SPEC 2.5). Spill files do not survive a restart: the server streams unconfirmed
//! transactions again from their start.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use bytes::Bytes;

use crate::config::Config;
use crate::error::{Error, Result, ResultExt};

struct SpillFile {
    path: PathBuf,
    writer: BufWriter<File>,
    aborted_subxacts: HashSet<u32>,
    messages: u64,
}

pub struct StreamSpill {
    dir: PathBuf,
    open: HashMap<u32, SpillFile>,
}

/// The replayable content of one committed streamed transaction.
pub struct SpilledTxn {
    path: PathBuf,
    reader: BufReader<File>,
    /// Subtransactions rolled back: their changes are skipped.
    pub aborted_subxacts: HashSet<u32>,
}

impl StreamSpill {
    /// Uses (and empties) `dir`.
    pub fn new(dir: PathBuf) -> Result<StreamSpill> {
        if dir.exists() {
            fs::remove_dir_all(&dir).runtime_ctx(|| format!("clearing spill directory {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).runtime_ctx(|| format!("creating spill directory {}", dir.display()))?;
        Ok(StreamSpill { dir, open: HashMap::new() })
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Appends one raw pgoutput message to transaction `xid`'s spill file.
    pub fn append(&mut self, xid: u32, message: &[u8]) -> Result<()> {
        if !self.open.contains_key(&xid) {
            let path = self.dir.join(format!("{xid}.spill"));
            let file = File::create(&path).runtime_ctx(|| format!("creating {}", path.display()))?;
            self.open.insert(
                xid,
                SpillFile { path, writer: BufWriter::with_capacity(1 << 20, file), aborted_subxacts: HashSet::new(), messages: 0 },
            );
        }
        let f = self.open.get_mut(&xid).expect("inserted");
        let len = u32::try_from(message.len()).map_err(|_| Error::runtime("a pgoutput message over 4 GiB"))?;
        f.writer.write_all(&len.to_le_bytes()).and_then(|_| f.writer.write_all(message)).map_err(|e| {
            Error::runtime(format!("spilling a streamed transaction to {}: {e}", f.path.display()))
                .with_hint("free space in the spill directory (pipeline.spill_dir)")
        })?;
        f.messages += 1;
        crate::metrics::spilled(message.len() + 4);
        Ok(())
    }

    /// Stream Abort: the whole transaction (`subxid == xid`) or one subtransaction.
    pub fn abort(&mut self, xid: u32, subxid: u32) {
        if xid == subxid {
            if let Some(f) = self.open.remove(&xid) {
                drop(f.writer);
                fs::remove_file(&f.path).ok();
            }
        } else if let Some(f) = self.open.get_mut(&xid) {
            f.aborted_subxacts.insert(subxid);
        }
    }

    /// Stream Commit: hands over the spilled messages for replay (`None` if nothing was spilled).
    pub fn take(&mut self, xid: u32) -> Result<Option<SpilledTxn>> {
        let Some(f) = self.open.remove(&xid) else { return Ok(None) };
        let SpillFile { path, writer, aborted_subxacts, .. } = f;
        writer.into_inner().map_err(|e| Error::runtime(format!("flushing {}: {e}", path.display())))?;
        let file = File::open(&path).runtime_ctx(|| format!("reopening {}", path.display()))?;
        Ok(Some(SpilledTxn { path, reader: BufReader::with_capacity(1 << 20, file), aborted_subxacts }))
    }
}

impl SpilledTxn {
    /// The next spilled message, in arrival order.
    pub fn next_message(&mut self) -> Result<Option<Bytes>> {
        let mut len = [0u8; 4];
        match self.reader.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::runtime(format!("reading {}: {e}", self.path.display()))),
        }
        let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
        self.reader.read_exact(&mut buf).runtime_ctx(|| format!("reading {}", self.path.display()))?;
        Ok(Some(Bytes::from(buf)))
    }
}

impl Drop for SpilledTxn {
    fn drop(&mut self) {
        fs::remove_file(&self.path).ok();
    }
}

/// Where `run` spills streamed transactions: `pipeline.spill_dir` when set, else
/// `_pgcdc/spill` under the first Parquet sink's local directory, else a per-process
/// directory under the system's temporary directory.
pub fn spill_dir(config: &Config) -> PathBuf {
    if let Some(d) = &config.pipeline.spill_dir {
        return PathBuf::from(d);
    }
    if let Some(p) = config.parquet_sinks().next() {
        if let Some(root) = p.location.local_dir() {
            return root.join("_pgcdc").join("spill");
        }
    }
    std::env::temp_dir().join(format!("pgcdc-spill-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spill_replays_in_order_and_abort_removes() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StreamSpill::new(dir.path().join("spill")).unwrap();
        s.append(7, b"one").unwrap();
        s.append(8, b"other").unwrap();
        s.append(7, b"two").unwrap();
        s.abort(7, 9);
        s.abort(8, 8);
        assert_eq!(s.open_count(), 1);
        let mut t = s.take(7).unwrap().unwrap();
        assert!(t.aborted_subxacts.contains(&9));
        assert_eq!(t.next_message().unwrap().unwrap(), Bytes::from_static(b"one"));
        assert_eq!(t.next_message().unwrap().unwrap(), Bytes::from_static(b"two"));
        assert!(t.next_message().unwrap().is_none());
        assert!(s.take(8).unwrap().is_none());
        drop(t);
        assert_eq!(fs::read_dir(dir.path().join("spill")).unwrap().count(), 0);
    }
}
