//! The compact records of `validate`'s partitioned comparison ([`super::partitioned`]): a
//! row is one byte string, its values numbered by column instead of named, so that spilling,
//! reading back, materialising and comparing a partition allocate (almost) nothing per value.
//!
//! * A **value** is `0` (SQL NULL) or the varint of its length + 1 followed by its canonical
//!   text ([`crate::batch::cell_to_string`]); equal values have equal encodings.
//! * A **region** is the varint of its number of values followed by the values, by column
//!   number ([`Columns`]): a source row has one value per compared column; a target row one
//!   per column number up to the highest one its file has (a missing number is NULL, which is
//!   what the materialisation rule reads for a column a row does not have).
//! * A **change record** is `_op` (1 byte), `_lsn` and `_seq` (8 bytes each, little endian),
//!   the varint of its key's number ([`Columns::key_id`]), the varint count and numbers of its
//!   `_unchanged` columns, then its region.
//!
//! Column numbers `0..n` are the compared (source) columns in their order, so the first `n`
//! values of a target region are the row projected onto them, byte for byte comparable with
//! a source region. The encoding is private to one run.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::compare::Row;
use crate::error::{Error, Result};
use crate::model::RowOp;

/// A region (or any value string) borrowed from a partition's file, or built.
pub type Bytes<'a> = Cow<'a, [u8]>;

/// The encoding of NULL.
pub const NULL: &[u8] = &[0];

/// A hash map keyed by encoded values, with a fast hasher (keys are this run's own data,
/// nothing to defend against).
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The multiply-rotate hash of the Rust compiler (`FxHasher`), eight bytes at a time, with
/// a final mix.
#[derive(Default)]
pub struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        // MurmurHash3's finaliser: every input bit reaches the low bits the table indexes by.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Column names and keys by number, for one table's comparison.
#[derive(Debug, Default)]
pub struct Columns {
    names: Vec<String>,
    ids: HashMap<String, u32>,
    keys: Vec<Vec<u32>>,
}

impl Columns {
    /// The table's compared columns get numbers `0..cols.len()`, in order.
    pub fn new(cols: &[String]) -> Columns {
        let mut c = Columns::default();
        for name in cols {
            c.id(name);
        }
        c
    }

    /// The number of a column name (a new one the first time).
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    /// The number of a key (its columns' numbers).
    pub fn key_id(&mut self, key: &[String]) -> u32 {
        let ids: Vec<u32> = key.iter().map(|k| self.id(k)).collect();
        match self.keys.iter().position(|k| *k == ids) {
            Some(i) => i as u32,
            None => {
                self.keys.push(ids);
                (self.keys.len() - 1) as u32
            }
        }
    }

    /// The columns of key number `id` (empty for an unknown one).
    pub fn key(&self, id: u32) -> &[u32] {
        self.keys.get(id as usize).map_or(&[], Vec::as_slice)
    }
}

fn corrupt() -> Error {
    Error::runtime(
        "validate's spill file is truncated or corrupt (was the temp directory changed meanwhile?)",
    )
    .with_hint("run validate again; it needs its temp directory (TMPDIR) to itself")
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(buf: &[u8], at: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or_else(corrupt)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(corrupt())
}

/// Appends one value.
pub fn put_value(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => out.push(0),
        Some(s) => {
            put_varint(out, s.len() as u64 + 1);
            out.extend_from_slice(s);
        }
    }
}

/// The value at `*at` (its text, or `None` for NULL); `*at` moves past it.
fn value<'a>(buf: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>> {
    let len = varint(buf, at)? as usize;
    if len == 0 {
        return Ok(None);
    }
    let end = at
        .checked_add(len - 1)
        .filter(|&e| e <= buf.len())
        .ok_or_else(corrupt)?;
    let v = &buf[*at..end];
    *at = end;
    Ok(Some(v))
}

/// Encodes a region of `values` into `out` (appended).
pub fn put_region<'v>(out: &mut Vec<u8>, values: impl ExactSizeIterator<Item = Option<&'v [u8]>>) {
    put_varint(out, values.len() as u64);
    for v in values {
        put_value(out, v);
    }
}

/// A source row's region (the comparison builds them in [`super::canonical::canonical_regions`]).
#[cfg(test)]
pub fn encode_row(row: &Row, out: &mut Vec<u8>) {
    out.clear();
    put_region(out, row.iter().map(|v| v.as_deref().map(str::as_bytes)));
}

/// Every value of a region, as text slices.
pub fn region_values(region: &[u8]) -> Result<Vec<Option<&[u8]>>> {
    let mut at = 0;
    let n = varint(region, &mut at)?;
    (0..n).map(|_| value(region, &mut at)).collect()
}

/// The encoded bytes of value `id` of a region ([`NULL`] past its end).
pub fn encoded_value(region: &[u8], id: u32) -> Result<&[u8]> {
    let mut at = 0;
    let n = varint(region, &mut at)?;
    if u64::from(id) >= n {
        return Ok(NULL);
    }
    for _ in 0..id {
        value(region, &mut at)?;
    }
    let start = at;
    value(region, &mut at)?;
    Ok(&region[start..at])
}

/// Value `id` of a region as text (`None`: NULL, also past its end).
pub fn value_at(region: &[u8], id: u32) -> Result<Option<&[u8]>> {
    let enc = encoded_value(region, id)?;
    let mut at = 0;
    value(enc, &mut at)
}

/// The encoded bytes of the first `n` values of a region, padded with NULLs when it has
/// fewer: the row projected onto the compared columns, comparable byte for byte.
pub fn projected(region: &[u8], n: usize) -> Result<Cow<'_, [u8]>> {
    let mut at = 0;
    let has = varint(region, &mut at)? as usize;
    let start = at;
    if has == n {
        return Ok(Cow::Borrowed(&region[start..]));
    }
    for _ in 0..has.min(n) {
        value(region, &mut at)?;
    }
    if has >= n {
        return Ok(Cow::Borrowed(&region[start..at]));
    }
    let mut v = region[start..at].to_vec();
    v.resize(v.len() + (n - has), 0);
    Ok(Cow::Owned(v))
}

/// Values encoded one after the other (a key, a projection), as a [`Row`].
pub fn decode_values(mut buf: &[u8]) -> Result<Row> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let mut at = 0;
        out.push(value(buf, &mut at)?.map(|v| String::from_utf8_lossy(v).into_owned()));
        buf = &buf[at..];
    }
    Ok(out)
}

/// The key `ids` of a region: the encoded values one after the other, borrowed from the
/// region when it is one column of a borrowed region.
pub fn key_of<'a>(region: &Bytes<'a>, ids: &[u32]) -> Result<Bytes<'a>> {
    if let (Cow::Borrowed(r), [id]) = (region, ids) {
        return Ok(Cow::Borrowed(encoded_value(r, *id)?));
    }
    let mut k = Vec::new();
    for &id in ids {
        k.extend_from_slice(encoded_value(region, id)?);
    }
    Ok(Cow::Owned(k))
}

/// A region with the values of `set` (column number → value) replaced.
pub fn with_values(region: &[u8], set: &[(u32, Option<&[u8]>)]) -> Result<Vec<u8>> {
    let mut values = region_values(region)?;
    for (id, v) in set {
        let i = *id as usize;
        if values.len() <= i {
            values.resize(i + 1, None);
        }
        values[i] = *v;
    }
    let mut out = Vec::with_capacity(region.len() + 16);
    put_region(&mut out, values.into_iter());
    Ok(out)
}

/// The partition (of `n`) of a row whose partitioning values encode to `parts` (one after
/// the other), at `level` (each level hashes differently). Deterministic across runs.
pub fn partition_of_encoded<'p>(
    parts: impl Iterator<Item = &'p [u8]>,
    level: u32,
    n: usize,
) -> usize {
    if n <= 1 {
        return 0;
    }
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new_with_keys(0x7067_6364_6376_616c, u64::from(level));
    for p in parts {
        h.write(p);
    }
    (h.finish() % n as u64) as usize
}

/// One change record, borrowed from its file.
#[derive(Debug)]
pub struct Change<'a> {
    pub op: RowOp,
    pub lsn: i64,
    pub seq: i64,
    pub key_id: u32,
    pub unchanged: Vec<u32>,
    pub region: &'a [u8],
}

/// Encodes a change record head into `out` (cleared first); its region follows.
pub fn put_change_head(
    out: &mut Vec<u8>,
    op: RowOp,
    lsn: i64,
    seq: i64,
    key_id: u32,
    unchanged: &[u32],
) {
    out.clear();
    out.push(op.code().as_bytes()[0]);
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    put_varint(out, u64::from(key_id));
    put_varint(out, unchanged.len() as u64);
    for &u in unchanged {
        put_varint(out, u64::from(u));
    }
}

/// Reads a change record.
pub fn parse_change(record: &[u8]) -> Result<Change<'_>> {
    if record.len() < 17 {
        return Err(corrupt());
    }
    let op = std::str::from_utf8(&record[..1])
        .ok()
        .and_then(RowOp::from_code)
        .ok_or_else(corrupt)?;
    let int =
        |r: std::ops::Range<usize>| i64::from_le_bytes(record[r].try_into().expect("8 bytes"));
    let (lsn, seq) = (int(1..9), int(9..17));
    let mut at = 17;
    let key_id = varint(record, &mut at)? as u32;
    let n = varint(record, &mut at)?;
    let unchanged = (0..n)
        .map(|_| varint(record, &mut at).map(|v| v as u32))
        .collect::<Result<Vec<_>>>()?;
    Ok(Change {
        op,
        lsn,
        seq,
        key_id,
        unchanged,
        region: &record[at..],
    })
}

/// The records of a spill file read whole into memory (see [`super::spill::read_all`]),
/// one by one.
pub fn records(buf: &[u8]) -> impl Iterator<Item = Result<&[u8]>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= buf.len() {
            return None;
        }
        let Some(len) = buf.get(at..at + 4) else {
            at = buf.len();
            return Some(Err(corrupt()));
        };
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let start = at + 4;
        at = start + len;
        Some(buf.get(start..at).ok_or_else(corrupt))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_changes_come_back_as_written() {
        let row: Row = vec![
            None,
            Some("x\ny".into()),
            Some(String::new()),
            Some("é".repeat(100)),
        ];
        let mut buf = Vec::new();
        encode_row(&row, &mut buf);
        let values = region_values(&buf).unwrap();
        assert_eq!(values.len(), 4);
        assert_eq!(decode_values(&projected(&buf, 4).unwrap()).unwrap(), row);
        assert_eq!(
            decode_values(&projected(&buf, 6).unwrap()).unwrap().len(),
            6,
            "padded with NULLs"
        );
        assert_eq!(
            decode_values(encoded_value(&buf, 3).unwrap()).unwrap(),
            vec![row[3].clone()]
        );
        assert_eq!(encoded_value(&buf, 9).unwrap(), NULL);
        let set = with_values(&buf, &[(0, Some(b"k")), (5, None)]).unwrap();
        assert_eq!(
            decode_values(&projected(&set, 2).unwrap()).unwrap(),
            vec![Some("k".to_string()), row[1].clone()]
        );
        assert_eq!(region_values(&set).unwrap().len(), 6);

        let mut rec = Vec::new();
        put_change_head(&mut rec, RowOp::Update, 42, -1, 3, &[1, 200]);
        rec.extend_from_slice(&buf);
        let c = parse_change(&rec).unwrap();
        assert_eq!(
            (
                c.op,
                c.lsn,
                c.seq,
                c.key_id,
                c.unchanged.as_slice(),
                c.region
            ),
            (RowOp::Update, 42, -1, 3, &[1u32, 200][..], &buf[..])
        );
        assert!(parse_change(&rec[..10]).is_err());
        assert!(region_values(&buf[..buf.len() - 1]).is_err());
    }

    #[test]
    fn keys_borrow_one_column_and_hash_alike() {
        let mut buf = Vec::new();
        encode_row(&vec![Some("1".into()), Some("a".into())], &mut buf);
        let r: Bytes = Cow::Borrowed(&buf);
        assert!(matches!(key_of(&r, &[0]).unwrap(), Cow::Borrowed(_)));
        let two = key_of(&r, &[1, 0]).unwrap();
        assert_eq!(
            decode_values(&two).unwrap(),
            vec![Some("a".to_string()), Some("1".to_string())]
        );
        let owned: Bytes = Cow::Owned(buf.clone());
        assert_eq!(key_of(&owned, &[0]).unwrap(), key_of(&r, &[0]).unwrap());
        let p = |v: &[u8]| partition_of_encoded([v].into_iter(), 0, 16);
        assert_eq!(
            p(encoded_value(&buf, 0).unwrap()),
            p(&key_of(&owned, &[0]).unwrap())
        );
    }
}
