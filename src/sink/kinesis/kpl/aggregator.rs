//! [`Aggregator`]: packs user records into one KPL aggregated Kinesis record, counting its
//! exact size as records are added.

use std::collections::HashMap;
use std::ops::Range;

use super::{hash_key, md5, DIGEST_LEN, MAGIC, MAX_RECORD_BYTES};

/// Protobuf tags (field number << 3 | wire type) of the fields we write.
const TAG_PARTITION_KEY_TABLE: u8 = (1 << 3) | 2;
const TAG_EXPLICIT_HASH_KEY_TABLE: u8 = (2 << 3) | 2;
const TAG_RECORDS: u8 = (3 << 3) | 2;
const TAG_RECORD_PARTITION_KEY_INDEX: u8 = 1 << 3;
const TAG_RECORD_EXPLICIT_HASH_KEY_INDEX: u8 = 2 << 3;
const TAG_RECORD_DATA: u8 = (3 << 3) | 2;

/// One Kinesis record ready for PutRecords: an aggregate of several user records or one plain
/// user record (module docs, "The Kinesis record that carries an aggregate").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KinesisRecord {
    /// The record's `PartitionKey`.
    pub partition_key: String,
    /// The record's `ExplicitHashKey`: always set on aggregates, the user record's own (if
    /// any) on plain records.
    pub explicit_hash_key: Option<String>,
    /// The record's `Data`.
    pub data: Vec<u8>,
    /// How many user records it carries (1: plain).
    pub user_records: usize,
}

impl KinesisRecord {
    /// Whether `data` is a KPL aggregate (more than one user record).
    pub fn is_aggregated(&self) -> bool {
        self.user_records > 1
    }

    /// Size as Kinesis counts it against the 1 MiB limit: data plus partition key bytes.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// What [`Aggregator::add`] did with a user record.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// The record is in the aggregate.
    Added,
    /// The record would take the Kinesis record past the limit: nothing changed; call
    /// [`Aggregator::finish`], send its record, and add this one again (it then fits).
    Full,
    /// The record alone (plain: data plus partition key, `size` bytes) is over the limit:
    /// it can never be sent (a dead letter). Nothing changed.
    TooLarge { size: usize },
}

/// The first user record of the aggregate: what the Kinesis record is sent with, and where
/// its data is, for sending it plain.
#[derive(Debug)]
struct First {
    partition_key: String,
    explicit_hash_key: Option<String>,
    data: Range<usize>,
}

/// Builds one Kinesis record from user records, in the order they are added.
///
/// The protobuf is encoded as records arrive (tables and records in separate buffers, joined
/// by [`finish`](Self::finish)), and the size of the finished Kinesis record is known exactly
/// at every step, magic, MD5 and the outer partition key included, so [`add`](Self::add) can
/// refuse the record that would pass the limit. Not thread-safe by design: one owner (the
/// sink's batching task) adds and finishes.
#[derive(Debug)]
pub struct Aggregator {
    limit: usize,
    partition_key_table: Vec<u8>,
    partition_key_index: HashMap<String, u64>,
    explicit_hash_key_table: Vec<u8>,
    explicit_hash_key_index: HashMap<String, u64>,
    records: Vec<u8>,
    count: usize,
    first: Option<First>,
}

impl Default for Aggregator {
    fn default() -> Self {
        Aggregator::new()
    }
}

impl Aggregator {
    /// An empty aggregator for Kinesis's limit, [`MAX_RECORD_BYTES`].
    pub fn new() -> Aggregator {
        Aggregator::with_limit(MAX_RECORD_BYTES)
    }

    /// An empty aggregator whose records stay within `limit` bytes (data plus partition key);
    /// smaller limits are for tests and for leaving head-room.
    pub fn with_limit(limit: usize) -> Aggregator {
        Aggregator {
            limit,
            partition_key_table: Vec::new(),
            partition_key_index: HashMap::new(),
            explicit_hash_key_table: Vec::new(),
            explicit_hash_key_index: HashMap::new(),
            records: Vec::new(),
            count: 0,
            first: None,
        }
    }

    /// The limit this aggregator keeps to.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Number of user records added since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no user record is waiting.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Exact size (data plus partition key) of the Kinesis record [`finish`](Self::finish)
    /// would return now; 0 when empty.
    pub fn size(&self) -> usize {
        match &self.first {
            None => 0,
            Some(f) if self.count == 1 => f.data.len() + f.partition_key.len(),
            Some(f) => self.aggregated_size(0) + f.partition_key.len(),
        }
    }

    /// Adds a user record after the ones already added, if the Kinesis record stays within
    /// the limit; see [`AddOutcome`]. An explicit hash key is stored as given (Kinesis wants
    /// a decimal integer below 2^128; [`super::parse_hash_key`] checks one).
    pub fn add(
        &mut self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) -> AddOutcome {
        let plain = partition_key.len() + data.len();
        if plain > self.limit {
            return AddOutcome::TooLarge { size: plain };
        }
        if let Some(first) = &self.first {
            let growth = self.growth(partition_key, explicit_hash_key, data);
            if self.aggregated_size(growth) + first.partition_key.len() > self.limit {
                return AddOutcome::Full;
            }
        }
        self.append(partition_key, explicit_hash_key, data);
        AddOutcome::Added
    }

    /// The Kinesis record of the user records added so far (`None` when there are none), and
    /// the aggregator is empty again. One user record comes back plain, several as a KPL
    /// aggregate (module docs).
    pub fn finish(&mut self) -> Option<KinesisRecord> {
        let first = self.first.take()?;
        let count = std::mem::take(&mut self.count);
        let record = if count == 1 {
            KinesisRecord {
                partition_key: first.partition_key,
                explicit_hash_key: first.explicit_hash_key,
                data: self.records[first.data].to_vec(),
                user_records: 1,
            }
        } else {
            let explicit_hash_key = match first.explicit_hash_key {
                Some(ehk) => ehk,
                None => hash_key(&first.partition_key).to_string(),
            };
            KinesisRecord {
                data: self.encode(),
                partition_key: first.partition_key,
                explicit_hash_key: Some(explicit_hash_key),
                user_records: count,
            }
        };
        self.partition_key_table.clear();
        self.partition_key_index.clear();
        self.explicit_hash_key_table.clear();
        self.explicit_hash_key_index.clear();
        self.records.clear();
        Some(record)
    }

    /// The user records added so far, in order, and the aggregator is empty again: for
    /// planning them anew (a changed shard map).
    pub fn take_user_records(&mut self) -> Vec<super::UserRecord> {
        if self.first.is_none() {
            return Vec::new();
        }
        let body = self.protobuf();
        self.finish();
        super::deaggregate::decode_protobuf(&body)
            .expect("an aggregator decodes the protobuf it encoded")
    }

    /// Size of magic, protobuf and MD5 after `growth` more protobuf bytes.
    fn aggregated_size(&self, growth: usize) -> usize {
        MAGIC.len()
            + self.partition_key_table.len()
            + self.explicit_hash_key_table.len()
            + self.records.len()
            + growth
            + DIGEST_LEN
    }

    /// How many protobuf bytes adding this user record takes: new table entries plus the
    /// `records` entry.
    fn growth(&self, partition_key: &str, explicit_hash_key: Option<&str>, data: &[u8]) -> usize {
        let mut growth = 0;
        let pk_index = match self.partition_key_index.get(partition_key) {
            Some(&i) => i,
            None => {
                growth += len_delimited_size(partition_key.len());
                self.partition_key_index.len() as u64
            }
        };
        let mut inner = 1 + varint_size(pk_index);
        if let Some(ehk) = explicit_hash_key {
            let ehk_index = match self.explicit_hash_key_index.get(ehk) {
                Some(&i) => i,
                None => {
                    growth += len_delimited_size(ehk.len());
                    self.explicit_hash_key_index.len() as u64
                }
            };
            inner += 1 + varint_size(ehk_index);
        }
        inner += len_delimited_size(data.len());
        growth + len_delimited_size(inner)
    }

    fn append(&mut self, partition_key: &str, explicit_hash_key: Option<&str>, data: &[u8]) {
        let pk_index = key_index(
            &mut self.partition_key_index,
            &mut self.partition_key_table,
            TAG_PARTITION_KEY_TABLE,
            partition_key,
        );
        let ehk_index = explicit_hash_key.map(|ehk| {
            key_index(
                &mut self.explicit_hash_key_index,
                &mut self.explicit_hash_key_table,
                TAG_EXPLICIT_HASH_KEY_TABLE,
                ehk,
            )
        });
        let mut inner = 1 + varint_size(pk_index) + len_delimited_size(data.len());
        if let Some(i) = ehk_index {
            inner += 1 + varint_size(i);
        }
        let out = &mut self.records;
        out.push(TAG_RECORDS);
        put_varint(out, inner as u64);
        out.push(TAG_RECORD_PARTITION_KEY_INDEX);
        put_varint(out, pk_index);
        if let Some(i) = ehk_index {
            out.push(TAG_RECORD_EXPLICIT_HASH_KEY_INDEX);
            put_varint(out, i);
        }
        out.push(TAG_RECORD_DATA);
        put_varint(out, data.len() as u64);
        let start = out.len();
        out.extend_from_slice(data);
        if self.first.is_none() {
            self.first = Some(First {
                partition_key: partition_key.to_owned(),
                explicit_hash_key: explicit_hash_key.map(str::to_owned),
                data: start..out.len(),
            });
        }
        self.count += 1;
    }

    /// The `AggregatedRecord` protobuf: fields in number order, as the KPL writes them.
    fn protobuf(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.aggregated_size(0));
        body.extend_from_slice(&self.partition_key_table);
        body.extend_from_slice(&self.explicit_hash_key_table);
        body.extend_from_slice(&self.records);
        body
    }

    /// Magic, protobuf, MD5 of the protobuf.
    fn encode(&self) -> Vec<u8> {
        let body = self.protobuf();
        let mut out = Vec::with_capacity(self.aggregated_size(0));
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&body);
        out.extend_from_slice(&md5(&body));
        out
    }
}

/// The index of `key` in a key table, appending it (encoded as `tag`) when new.
fn key_index(index: &mut HashMap<String, u64>, table: &mut Vec<u8>, tag: u8, key: &str) -> u64 {
    if let Some(&i) = index.get(key) {
        return i;
    }
    let i = index.len() as u64;
    index.insert(key.to_owned(), i);
    table.push(tag);
    put_varint(table, key.len() as u64);
    table.extend_from_slice(key.as_bytes());
    i
}

/// Size of a length-delimited field of `len` payload bytes: tag, length varint, payload.
fn len_delimited_size(len: usize) -> usize {
    1 + varint_size(len as u64) + len
}

/// Bytes of `v` as a protobuf varint (7 bits per byte).
fn varint_size(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
