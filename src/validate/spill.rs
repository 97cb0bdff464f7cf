//! Spill files of `validate`'s partitioned comparison ([`super::partitioned`]): rows written
//! to one of N files by a hash of some of their values, read back one file at a time.
//!
//! The files live in a private directory under the system temp directory (`$TMPDIR`), made
//! by [`SpillDir::create`] and removed with everything in it when the [`SpillDir`] is dropped
//! (also on errors). The encoding is private to one run: source rows are a list of values,
//! target change rows ([`ChangeRow`]) name their columns and key by number through a
//! [`Names`] table kept in memory (a table's column names, a few kinds of key).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::compare::Row;
use super::materialize::ChangeRow;
use crate::error::{Error, Result};
use crate::model::RowOp;

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

/// The partition (of `n`) of a row whose partitioning values are `values`, at `level`
/// (each level of re-partitioning hashes differently). Deterministic across runs.
pub fn partition_of<'a>(values: impl Iterator<Item = &'a Option<String>>, level: u32, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    // SipHash with fixed keys: the same value always lands in the same partition.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new_with_keys(0x7067_6364_6376_616c, u64::from(level));
    for v in values {
        v.hash(&mut h);
    }
    (h.finish() % n as u64) as usize
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

/// Column names and keys by number, for the encoding of change rows.
#[derive(Default)]
pub struct Names {
    names: Vec<String>,
    ids: HashMap<String, u32>,
    keys: Vec<Arc<Vec<String>>>,
}

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    fn key_id(&mut self, key: &Arc<Vec<String>>) -> u32 {
        match self.keys.iter().position(|k| Arc::ptr_eq(k, key) || k == key) {
            Some(i) => i as u32,
            None => {
                self.keys.push(key.clone());
                (self.keys.len() - 1) as u32
            }
        }
    }
}

fn put_value(out: &mut Vec<u8>, v: &Option<String>) {
    match v {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// A cursor over one encoded record.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            return Err(Error::runtime(
                "validate's spill file is truncated (was the temp directory changed meanwhile?)",
            ));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn value(&mut self) -> Result<Option<String>> {
        if self.u8()? == 0 {
            return Ok(None);
        }
        let n = self.u32()? as usize;
        let bytes = self.take(n)?.to_vec();
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::runtime("validate's spill file holds a value that is not UTF-8"))
    }
}

/// Encodes a source row (its values in column order) into `out` (cleared first).
pub fn encode_row(row: &Row, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&(row.len() as u32).to_le_bytes());
    for v in row {
        put_value(out, v);
    }
}

/// Decodes a record of [`encode_row`].
pub fn decode_row(record: &[u8]) -> Result<Row> {
    let mut c = Cursor(record);
    let n = c.u32()? as usize;
    (0..n).map(|_| c.value()).collect()
}

/// Encodes a change row into `out` (cleared first), its names numbered in `names`.
pub fn encode_change(row: &ChangeRow, names: &mut Names, out: &mut Vec<u8>) {
    out.clear();
    out.push(row.op.code().as_bytes()[0]);
    out.extend_from_slice(&row.lsn.to_le_bytes());
    out.extend_from_slice(&row.seq.to_le_bytes());
    out.extend_from_slice(&names.key_id(&row.key).to_le_bytes());
    out.extend_from_slice(&(row.unchanged.len() as u32).to_le_bytes());
    for u in &row.unchanged {
        out.extend_from_slice(&names.id(u).to_le_bytes());
    }
    out.extend_from_slice(&(row.values.len() as u32).to_le_bytes());
    for (name, v) in &row.values {
        out.extend_from_slice(&names.id(name).to_le_bytes());
        put_value(out, v);
    }
}

/// Decodes a record of [`encode_change`].
pub fn decode_change(record: &[u8], names: &Names) -> Result<ChangeRow> {
    let mut c = Cursor(record);
    let code = [c.u8()?];
    let op = std::str::from_utf8(&code)
        .ok()
        .and_then(RowOp::from_code)
        .ok_or_else(|| Error::runtime("validate's spill file holds an unknown _op"))?;
    let (lsn, seq) = (c.i64()?, c.i64()?);
    let name = |id: u32| {
        names
            .names
            .get(id as usize)
            .cloned()
            .ok_or_else(|| Error::runtime("validate's spill file names an unknown column"))
    };
    let key = names
        .keys
        .get(c.u32()? as usize)
        .cloned()
        .ok_or_else(|| Error::runtime("validate's spill file names an unknown key"))?;
    let unchanged = (0..c.u32()?).map(|_| name(c.u32()?)).collect::<Result<Vec<_>>>()?;
    let mut values = BTreeMap::new();
    for _ in 0..c.u32()? {
        let n = name(c.u32()?)?;
        values.insert(n, c.value()?);
    }
    Ok(ChangeRow {
        op,
        lsn,
        seq,
        unchanged,
        values,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_change_rows_come_back_as_written() {
        let dir = SpillDir::create().unwrap();
        let path = dir.file("t");
        let mut w = SpillWriter::new(path);
        let mut names = Names::default();
        let key = Arc::new(vec!["id".to_string()]);
        let change = ChangeRow {
            op: RowOp::Update,
            lsn: 42,
            seq: -1,
            unchanged: vec!["v".into()],
            values: BTreeMap::from([
                ("id".to_string(), Some("1".to_string())),
                ("v".to_string(), None),
                ("é".to_string(), Some(String::new())),
            ]),
            key: key.clone(),
        };
        let mut buf = Vec::new();
        encode_change(&change, &mut names, &mut buf);
        w.write(&buf).unwrap();
        let row: Row = vec![None, Some("x\ny".into()), Some(String::new())];
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
        let back = decode_change(&seen[0], &names).unwrap();
        assert_eq!(
            (back.op, back.lsn, back.seq, &back.unchanged, &back.values, &back.key),
            (change.op, 42, -1, &change.unchanged, &change.values, &key)
        );
        assert_eq!(decode_row(&seen[1]).unwrap(), row);
        assert!(!path.exists(), "a file read back is removed");
        assert!(decode_row(&seen[1][..3]).is_err());
        let d = dir.path.clone();
        drop(dir);
        assert!(!d.exists(), "the directory goes with the SpillDir");
    }

    #[test]
    fn partitions_are_deterministic_spread_and_differ_by_level() {
        let v = |i: usize| vec![Some(i.to_string())];
        let n = 16;
        let mut counts = vec![0usize; n];
        for i in 0..16_000 {
            let p = partition_of(v(i).iter(), 0, n);
            assert_eq!(p, partition_of(v(i).iter(), 0, n));
            counts[p] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800 && c < 1200), "{counts:?}");
        // The next level splits one partition's rows again instead of keeping them together.
        let in_0: Vec<usize> = (0..16_000).filter(|&i| partition_of(v(i).iter(), 0, n) == 0).collect();
        let spread: std::collections::HashSet<usize> = in_0.iter().map(|&i| partition_of(v(i).iter(), 1, n)).collect();
        assert!(spread.len() > n / 2, "{spread:?}");
        assert_eq!(partition_of(v(1).iter(), 0, 1), 0);
        assert_ne!(
            partition_of([None].iter(), 0, 1 << 20),
            partition_of([Some(String::new())].iter(), 0, 1 << 20)
        );
    }
}
