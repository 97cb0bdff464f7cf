//! Spill files of `validate`'s partitioned comparison ([`super::partitioned`]): rows written
//! to one of N files by a hash of some of their values, read back one file at a time.
//!
//! The files live in a private directory under the system temp directory (`$TMPDIR`), made
//! by [`SpillDir::create`] and removed with everything in it when the [`SpillDir`] is dropped
//! (also on errors). A file is a sequence of records, each its length (4 bytes) and its
//! bytes; the records of the comparison are those of [`super::packed`].

use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Buffer of each open spill file (there are at most [`MAX_FANOUT`] × 2 at once).
const BUF: usize = 32 << 10;
/// Most files one partitioning writes at once.
pub const MAX_FANOUT: usize = 256;

/// A private temp directory, removed when dropped.
pub struct SpillDir {
    path: PathBuf,
    next: std::sync::atomic::AtomicUsize,
}

impl SpillDir {
    /// Creates `pgcdc-validate-<pid>-<nanos>` under [`std::env::temp_dir`].
    pub fn create() -> Result<SpillDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("pgcdc-validate-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| {
            Error::runtime(format!("validate cannot create its spill directory {}: {e}", path.display()))
                .with_hint("validate compares large tables through files in the temp directory: set TMPDIR to a writable directory with room for about twice the table")
        })?;
        Ok(SpillDir { path, next: 0.into() })
    }

    /// A new file name in the directory (not created).
    pub fn file(&self, what: &str) -> PathBuf {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.path.join(format!("{what}-{n}"))
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::runtime(format!("validate's spill file {}: {e}", path.display()))
        .with_hint("validate needs room in the temp directory (TMPDIR) for about twice the table")
}

/// The partition (of `n`) of a record by its bytes.
pub fn partition_of_bytes(bytes: &[u8], n: usize) -> usize {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new_with_keys(0x7067_6364_6376_616c, 0x7061_6972);
    bytes.hash(&mut h);
    (h.finish() % n.max(1) as u64) as usize
}

/// One spill file being written.
pub struct SpillWriter {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    /// Bytes written so far.
    pub bytes: u64,
    /// Records written so far.
    pub records: u64,
}

impl SpillWriter {
    /// A writer of `path`; the file is created at the first record.
    pub fn new(path: PathBuf) -> SpillWriter {
        SpillWriter {
            path,
            out: None,
            bytes: 0,
            records: 0,
        }
    }

    /// Appends one encoded record.
    pub fn write(&mut self, record: &[u8]) -> Result<()> {
        if self.out.is_none() {
            let f = File::create(&self.path).map_err(|e| io_error(&self.path, e))?;
            self.out = Some(BufWriter::with_capacity(BUF, f));
        }
        let out = self.out.as_mut().expect("opened above");
        out.write_all(&(record.len() as u32).to_le_bytes())
            .map_err(|e| io_error(&self.path, e))?;
        out.write_all(record).map_err(|e| io_error(&self.path, e))?;
        self.bytes += record.len() as u64 + 4;
        self.records += 1;
        Ok(())
    }

    /// Flushes and closes the file; the path to read it back (`None`: nothing was written).
    pub fn finish(mut self) -> Result<Option<PathBuf>> {
        match self.out.take() {
            None => Ok(None),
            Some(mut out) => {
                out.flush().map_err(|e| io_error(&self.path, e))?;
                Ok(Some(self.path.clone()))
            }
        }
    }
}

/// Reads the records of a spill file in order, each into `f`; removes the file afterwards.
pub fn read_records(path: Option<&Path>, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut input = BufReader::with_capacity(256 << 10, file);
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 4];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(io_error(path, e)),
        }
        buf.resize(u32::from_le_bytes(len) as usize, 0);
        input.read_exact(&mut buf).map_err(|e| io_error(path, e))?;
        f(&buf)?;
    }
    drop(input);
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// The whole of a spill file (its records: [`super::packed::records`]), in memory; removes
/// the file. `None` (nothing written): empty.
pub fn read_all(path: Option<&Path>) -> Result<Vec<u8>> {
    let Some(path) = path else { return Ok(Vec::new()) };
    let data = std::fs::read(path).map_err(|e| io_error(path, e))?;
    let _ = std::fs::remove_file(path);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_change_rows_come_back_as_written() {
        use crate::model::RowOp;
        use crate::validate::packed::{encode_row, parse_change, put_change_head, records, region_values};
        let dir = SpillDir::create().unwrap();
        let path = dir.file("t");
        let mut w = SpillWriter::new(path);
        let mut buf = Vec::new();
        put_change_head(&mut buf, RowOp::Update, 42, -1, 0, &[1]);
        buf.extend_from_slice(&[2, 0, 2, b'1']);
        w.write(&buf).unwrap();
        let change = buf.clone();
        let row = vec![None, Some("x\ny".into()), Some(String::new())];
        encode_row(&row, &mut buf);
        w.write(&buf).unwrap();
        assert_eq!(w.records, 2);
        let path = w.finish().unwrap().unwrap();
        let mut seen = Vec::new();
        read_records(Some(&path), |r| {
            seen.push(r.to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![change.clone(), buf.clone()]);
        assert!(!path.exists(), "a file read back is removed");
        let back = parse_change(&seen[0]).unwrap();
        assert_eq!((back.op, back.lsn, back.seq, back.unchanged.as_slice()), (RowOp::Update, 42, -1, &[1u32][..]));
        assert_eq!(region_values(&seen[1]).unwrap().len(), 3);
        assert!(region_values(&seen[1][..3]).is_err());

        let mut w = SpillWriter::new(dir.file("t"));
        w.write(&change).unwrap();
        w.write(&buf).unwrap();
        let path = w.finish().unwrap().unwrap();
        let all = read_all(Some(&path)).unwrap();
        let back: Vec<&[u8]> = records(&all).collect::<Result<_>>().unwrap();
        assert_eq!(back, vec![&change[..], &buf[..]]);
        assert!(!path.exists(), "a file read back is removed");
        assert!(records(&all[..all.len() - 1]).any(|r| r.is_err()));
        let d = dir.path.clone();
        drop(dir);
        assert!(!d.exists(), "the directory goes with the SpillDir");
    }

    #[test]
    fn partitions_are_deterministic_spread_and_differ_by_level() {
        use crate::validate::packed::{put_value, partition_of_encoded};
        let partition_of = |vals: &[Option<String>], level: u32, n: usize| {
            let enc: Vec<Vec<u8>> = vals
                .iter()
                .map(|v| {
                    let mut b = Vec::new();
                    put_value(&mut b, v.as_deref().map(str::as_bytes));
                    b
                })
                .collect();
            partition_of_encoded(enc.iter().map(Vec::as_slice), level, n)
        };
        let v = |i: usize| vec![Some(i.to_string())];
        let n = 16;
        let mut counts = vec![0usize; n];
        for i in 0..16_000 {
            let p = partition_of(&v(i), 0, n);
            assert_eq!(p, partition_of(&v(i), 0, n));
            counts[p] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800 && c < 1200), "{counts:?}");
        // The next level splits one partition's rows again instead of keeping them together.
        let in_0: Vec<usize> = (0..16_000).filter(|&i| partition_of(&v(i), 0, n) == 0).collect();
        let spread: std::collections::HashSet<usize> = in_0.iter().map(|&i| partition_of(&v(i), 1, n)).collect();
        assert!(spread.len() > n / 2, "{spread:?}");
        assert_eq!(partition_of(&v(1), 0, 1), 0);
        assert_ne!(partition_of(&[None], 0, 1 << 20), partition_of(&[Some(String::new())], 0, 1 << 20));
    }
}
