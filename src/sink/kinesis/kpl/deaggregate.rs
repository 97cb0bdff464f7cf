//! [`deaggregate`]: unpacks a Kinesis record's data into its user records, checking the KPL
//! magic and MD5. For tests and for readers that verify what the sink wrote.

use crate::error::{Error, Result};

use super::{md5, DIGEST_LEN, MAGIC};

/// A user record unpacked from an aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
}

/// What a Kinesis record's data holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unpacked {
    /// Not an aggregate: the data is one user record, with the Kinesis record's own partition
    /// and explicit hash key.
    Plain,
    /// A KPL aggregate: its user records, in order.
    Aggregated(Vec<UserRecord>),
}

/// Unpacks the data of one Kinesis record.
///
/// Data that does not start with the magic `F3 89 9A C2`, or is not longer than magic plus
/// MD5, is [`Unpacked::Plain`] (as `aws_kinesis_agg` and the KCL decide). Data with the magic
/// whose MD5 does not match its protobuf, or whose protobuf is malformed (bad varint, a length
/// past the end, a key index outside its table, a record without partition key index or
/// data, a key that is not UTF-8), is an error: the KCL and `aws_kinesis_agg` would hand such
/// data to the consumer as one plain record, which for records this sink wrote means
/// corruption.
pub fn deaggregate(data: &[u8]) -> Result<Unpacked> {
    if !data.starts_with(&MAGIC) || data.len() <= MAGIC.len() + DIGEST_LEN {
        return Ok(Unpacked::Plain);
    }
    let (body, digest) = data[MAGIC.len()..].split_at(data.len() - MAGIC.len() - DIGEST_LEN);
    if md5(body) != digest {
        return Err(Error::runtime(format!(
            "KPL aggregated record of {} bytes: its MD5 {} does not match its content (MD5 {})",
            data.len(),
            hex::encode(digest),
            hex::encode(md5(body))
        ))
        .with_hint("the record was changed or cut after it was written"));
    }
    decode_protobuf(body)
        .map(Unpacked::Aggregated)
        .map_err(|e| {
            Error::runtime(format!(
                "KPL aggregated record of {} bytes: malformed protobuf: {e}",
                data.len()
            ))
            .with_hint(
                "the record's MD5 matches, so it was written like this: a bug in its producer",
            )
        })
}

/// Decodes an `AggregatedRecord` protobuf (without magic and MD5) into its user records.
pub(super) fn decode_protobuf(body: &[u8]) -> Result<Vec<UserRecord>, String> {
    let mut partition_keys = Vec::new();
    let mut explicit_hash_keys = Vec::new();
    let mut records = Vec::new();
    let mut r = Reader { buf: body, pos: 0 };
    while !r.at_end() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, 2) => partition_keys.push(utf8(r.bytes()?, "partition key")?),
            (2, 2) => explicit_hash_keys.push(utf8(r.bytes()?, "explicit hash key")?),
            (3, 2) => records.push(decode_record(r.bytes()?)?),
            _ => r.skip(wire)?,
        }
    }
    records
        .into_iter()
        .enumerate()
        .map(|(n, (pk, ehk, data))| {
            let partition_key = lookup(&partition_keys, pk, n, "partition key")?;
            let explicit_hash_key = match ehk {
                Some(i) => Some(lookup(&explicit_hash_keys, i, n, "explicit hash key")?),
                None => None,
            };
            Ok(UserRecord {
                partition_key,
                explicit_hash_key,
                data: data.to_vec(),
            })
        })
        .collect()
}

type RawRecord<'a> = (u64, Option<u64>, &'a [u8]);

fn decode_record(buf: &[u8]) -> Result<RawRecord<'_>, String> {
    let (mut pk, mut ehk, mut data) = (None, None, None);
    let mut r = Reader { buf, pos: 0 };
    while !r.at_end() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, 0) => pk = Some(r.varint()?),
            (2, 0) => ehk = Some(r.varint()?),
            (3, 2) => data = Some(r.bytes()?),
            _ => r.skip(wire)?,
        }
    }
    match (pk, data) {
        (Some(pk), Some(data)) => Ok((pk, ehk, data)),
        (None, _) => Err("a record without partition_key_index".into()),
        (_, None) => Err("a record without data".into()),
    }
}

fn lookup(table: &[String], index: u64, record: usize, what: &str) -> Result<String, String> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .cloned()
        .ok_or_else(|| {
            format!(
                "record {record}: {what} index {index}, but the table has {} entries",
                table.len()
            )
        })
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("a {what} that is not UTF-8"))
}

/// A cursor over protobuf bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or("a varint cut off at the end")?;
            self.pos += 1;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a varint longer than 10 bytes".into())
    }

    /// A field key: (field number, wire type).
    fn key(&mut self) -> Result<(u64, u8), String> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| format!("a field of {n} bytes past the end at offset {}", self.pos))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()?;
        self.take(n)
    }

    /// Skips a field of an unknown number (tags, fields of later format versions).
    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => self.bytes().map(drop),
            5 => self.take(4).map(drop),
            w => Err(format!("unsupported wire type {w} at offset {}", self.pos)),
        }
    }
}
