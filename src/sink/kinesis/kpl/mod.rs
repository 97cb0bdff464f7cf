//! KPL aggregation (SPEC 5.3, issue 8 step 5): many user records packed into one Kinesis
//! record in the Kinesis Producer Library's aggregation format, which the KCL, AWS's
//! deaggregation libraries (`aws_kinesis_agg` for Python, the Java/Node/Go ones) and Lambda
//! deaggregators unpack.
//!
//! # Format
//!
//! An aggregated record is `F3 89 9A C2` ‖ a protobuf `AggregatedRecord` ‖ the 16-byte MD5 of
//! the protobuf bytes, with (proto2, awslabs/amazon-kinesis-producer `aggregation-format.md`):
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Tag { required string key = 1; optional string value = 2; }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! ```
//!
//! [`Aggregator`] writes it exactly as the KPL does (byte-identical to the real KPL output in
//! `tests/fixtures/kpl/`): each partition key and explicit hash key once in its table, in
//! first-seen order; all table entries before the records; `explicit_hash_key_index` only on
//! records that have an explicit hash key; no tags. [`deaggregate`] reads any valid
//! encoding (fields in any order, tags and unknown fields skipped).
//!
//! # The Kinesis record that carries an aggregate
//!
//! * Several user records: the aggregated bytes, sent with the **first user record's
//!   partition key** and, as explicit hash key, the **first user record's hash key** (its own
//!   explicit hash key, else the decimal MD5 of its partition key). The explicit hash key is
//!   what routes the record, exactly as the KPL does (`kinesis_record.cc`); the KPL saves
//!   bytes with the partition key `"a"`, we keep the first real key (at most 256 of the
//!   1 MiB, counted in the size) so the stream's own metadata names a key of the records
//!   inside, as `aws_kinesis_agg`'s aggregator and the test vectors do.
//! * One user record: sent **plain** (its own data, partition key and explicit hash key),
//!   as the KPL does: aggregation gains nothing for a lone record and costs 20+ bytes, and
//!   every deaggregator passes plain records through. A lone record whose aggregated form
//!   would pass 1 MiB but whose plain form fits is sent plain, too.
//!
//! Mixing user records with and without an explicit hash key in one aggregate is valid (the
//! KPL does it), but `aws_kinesis_agg` (Python, 1.2.3) then reports the first explicit hash key
//! for the records without one (it reads the unset optional index as 0; checked by hand). The
//! sink gives user records only partition keys, so its aggregates never mix.
//!
//! # Shards
//!
//! The KCL (v2) drops user records whose own hash key lies outside the shard the aggregated
//! record landed on (awslabs/kinesis-aggregation, `potential_data_loss.md`). [`ShardMap`]
//! maps a key to its shard as Kinesis does, and [`ShardAggregator`] aggregates only records of
//! one shard together; see [`shards`].
//!
//! # Partition keys
//!
//! Kinesis accepts partition keys of at most 256 characters; [`fit_partition_key`] replaces
//! longer ones by a hash. Callers pass fitted keys to the aggregators, which do not check.

mod aggregator;
mod deaggregate;
pub mod shards;

#[cfg(test)]
mod tests;

use std::borrow::Cow;

use md5::{Digest, Md5};

pub use aggregator::{AddOutcome, Aggregator, KinesisRecord};
pub use deaggregate::{deaggregate, Unpacked, UserRecord};
pub use shards::{Rejected, ShardAggregator, ShardInfo, ShardMap, ShardRecord};

/// The first four bytes of every KPL aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Length of the MD5 checksum that ends an aggregated record.
pub const DIGEST_LEN: usize = 16;

/// Kinesis's limit for one record: data plus partition key (UTF-8 bytes), 1 MiB.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Partition keys longer than this many bytes are hashed by [`fit_partition_key`].
pub const MAX_PARTITION_KEY_LEN: usize = 256;

/// MD5 of `bytes`.
pub(crate) fn md5(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

/// The 128-bit hash key Kinesis maps `partition_key` to: the MD5 of its UTF-8 bytes read as a
/// big-endian unsigned integer (Kinesis API reference, PutRecord: "an MD5 hash function is used
/// to map partition keys to 128-bit integer values"; the KPL's `user_record.cc`,
/// `aws_kinesis_agg`'s `_create_explicit_hash_key` and moto all read the digest big-endian).
/// A record lands on the open shard whose `[StartingHashKey, EndingHashKey]` holds it.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(md5(partition_key.as_bytes()))
}

/// Parses an explicit hash key as Kinesis accepts it: a decimal integer below 2^128 without
/// sign, spaces or leading zeros (`0|([1-9]\d{0,38})`). `None` when it is not one.
pub fn parse_hash_key(explicit_hash_key: &str) -> Option<u128> {
    let s = explicit_hash_key;
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

/// The hash key a user record is routed by: its explicit hash key if it has one, else the
/// MD5 of its partition key ([`hash_key`]). `None` when the explicit hash key is invalid.
pub fn effective_hash_key(partition_key: &str, explicit_hash_key: Option<&str>) -> Option<u128> {
    match explicit_hash_key {
        Some(ehk) => parse_hash_key(ehk),
        None => Some(hash_key(partition_key)),
    }
}

/// The partition key to send for `key` (SPEC 5.3, "keys longer than 256 bytes are hashed"):
/// `key` itself when it has at most [`MAX_PARTITION_KEY_LEN`] UTF-8 bytes, else the lower-case
/// hex MD5 of its UTF-8 bytes (32 characters).
///
/// The limit counts bytes as the SPEC says; Kinesis counts characters, so every key we send is
/// valid either way. MD5 because it is the hash Kinesis itself applies to partition keys (no
/// second algorithm in the sink), short (32 characters leave room in every record's 1 MiB and
/// in the aggregated key table, where SHA-256 hex would take 64), and collision resistance
/// against an attacker is not needed here: two keys that collide only share a shard and an
/// ordering lane, they are never merged. Deterministic, so a key's records keep one lane.
pub fn fit_partition_key(key: &str) -> Cow<'_, str> {
    if key.len() <= MAX_PARTITION_KEY_LEN {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(hex::encode(md5(key.as_bytes())))
    }
}
