//! Shard-aware aggregation: [`ShardMap`] (which open shard a key maps to) and
//! [`ShardAggregator`] (one [`Aggregator`] per shard).
//!
//! The KCL (v2) delivers a user record of an aggregate only when the record's own hash key
//! (its explicit hash key, else the MD5 of its partition key) lies in the hash key range of the
//! shard the aggregate was read from, and drops the others silently (awslabs/
//! kinesis-aggregation, `potential_data_loss.md`). So an aggregate must hold only user records
//! of one shard, and must be routed to that shard: [`Aggregator::finish`] sends it with the
//! first user record's hash key as explicit hash key, which lies in the shard by construction.
//!
//! The map comes from ListShards and goes stale when the stream is resharded. The sink lists
//! the shards again when it learns of a change (a periodic ListShards, or records landing on a
//! shard other than planned: PutRecords answers with each record's `ShardId`) and packs later
//! records with the new map ([`ShardAggregator::replace_map`] plans waiting user records
//! anew). Aggregates already sent under the old map may still be split across the children of
//! a split shard; no producer can prevent that (same document), so the sink resends the user
//! records such an aggregate carried outside the shard it landed on (`super::super::aggregate`).

use std::collections::BTreeMap;

use crate::error::{Error, Result};

use super::{effective_hash_key, AddOutcome, Aggregator, KinesisRecord, MAX_RECORD_BYTES};

/// One shard as ListShards describes it (`ShardId`, `HashKeyRange`; `open` is false when the
/// shard has an `EndingSequenceNumber`, i.e. was closed by a split or merge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_id: String,
    /// `HashKeyRange.StartingHashKey`: a decimal 128-bit integer.
    pub starting_hash_key: String,
    /// `HashKeyRange.EndingHashKey`: a decimal 128-bit integer, inclusive.
    pub ending_hash_key: String,
    pub open: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Range {
    shard_id: String,
    start: u128,
    end: u128,
}

/// The open shards of a stream by hash key range: which shard a record lands on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardMap {
    /// Open shards sorted by `start`; together they cover `0..=u128::MAX` exactly once.
    ranges: Vec<Range>,
}

impl ShardMap {
    /// The map of the open shards in `shards` (closed ones are ignored: Kinesis writes only to
    /// open shards).
    ///
    /// Errors when a hash key is not a decimal 128-bit integer, a range is empty, or the open
    /// shards do not cover every hash key exactly once (a listing taken in the middle of a
    /// resharding, or truncated: list the shards again, following `NextToken`).
    pub fn new(shards: impl IntoIterator<Item = ShardInfo>) -> Result<ShardMap> {
        let mut ranges = Vec::new();
        for s in shards.into_iter().filter(|s| s.open) {
            let parse = |what: &str, v: &str| {
                v.parse::<u128>().map_err(|_| {
                    Error::runtime(format!(
                        "Kinesis shard {}: {what} {v:?} is not a 128-bit decimal integer",
                        s.shard_id
                    ))
                    .with_hint("ListShards returned an unexpected hash key range")
                })
            };
            let start = parse("starting hash key", &s.starting_hash_key)?;
            let end = parse("ending hash key", &s.ending_hash_key)?;
            if start > end {
                return Err(Error::runtime(format!(
                    "Kinesis shard {}: starting hash key {start} is after ending hash key {end}",
                    s.shard_id
                ))
                .with_hint("ListShards returned an unexpected hash key range"));
            }
            ranges.push(Range {
                shard_id: s.shard_id,
                start,
                end,
            });
        }
        ranges.sort_by_key(|r| r.start);
        let mut next = Some(0u128);
        for r in &ranges {
            if Some(r.start) != next {
                return Err(coverage_error(format!(
                    "shard {} starts at hash key {} where {} was expected",
                    r.shard_id,
                    r.start,
                    next.map_or("nothing more".into(), |n| n.to_string())
                )));
            }
            next = r.end.checked_add(1);
        }
        if let Some(n) = next {
            return Err(coverage_error(format!("no open shard holds hash key {n}")));
        }
        Ok(ShardMap { ranges })
    }

    /// The shard a record with `partition_key` (and no explicit hash key) lands on.
    pub fn shard_for(&self, partition_key: &str) -> &str {
        self.shard_for_hash(super::hash_key(partition_key))
    }

    /// The shard whose hash key range holds `hash_key`.
    pub fn shard_for_hash(&self, hash_key: u128) -> &str {
        let i = self.ranges.partition_point(|r| r.end < hash_key);
        &self.ranges[i].shard_id
    }

    /// The inclusive hash key range of an open shard, `None` for an unknown id.
    pub fn range_of(&self, shard_id: &str) -> Option<(u128, u128)> {
        self.ranges
            .iter()
            .find(|r| r.shard_id == shard_id)
            .map(|r| (r.start, r.end))
    }

    /// Ids of the open shards, by hash key range.
    pub fn shard_ids(&self) -> impl Iterator<Item = &str> {
        self.ranges.iter().map(|r| r.shard_id.as_str())
    }
}

fn coverage_error(detail: String) -> Error {
    Error::runtime(format!(
        "the open shards of the Kinesis stream do not cover the hash key range: {detail}"
    ))
    .with_hint("the stream is being resharded or the listing was incomplete: list the shards again")
}

/// A Kinesis record and the shard it was planned for (and is routed to by its explicit hash
/// key, or by its own key when plain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardRecord {
    pub shard_id: String,
    pub record: KinesisRecord,
}

/// Why [`ShardAggregator::add`] refused a user record (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Data plus partition key are over the record limit even sent plain: a dead letter.
    #[error("a Kinesis record of {size} bytes (data and partition key) is over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The explicit hash key is not a decimal integer below 2^128: Kinesis would refuse it.
    #[error("explicit hash key {0:?} is not a decimal integer below 2^128")]
    InvalidExplicitHashKey(String),
}

/// Aggregates user records per shard: records are grouped with others of the shard their own
/// hash key maps to, never across shards.
///
/// Order: the user records of one shard appear in the Kinesis records returned for that shard
/// in the order they were added, and those Kinesis records are returned in order. A key always
/// maps to one shard (for one map), so the sink keeps per-key order by sending the records of
/// one shard in the order returned, each after the previous one was acknowledged.
#[derive(Debug)]
pub struct ShardAggregator {
    map: ShardMap,
    limit: usize,
    pending: BTreeMap<String, Aggregator>,
}

impl ShardAggregator {
    /// Aggregation into Kinesis-sized records ([`MAX_RECORD_BYTES`]) over `map`.
    pub fn new(map: ShardMap) -> ShardAggregator {
        ShardAggregator::with_limit(map, MAX_RECORD_BYTES)
    }

    /// Like [`new`](Self::new) with records of at most `limit` bytes (tests, head-room).
    pub fn with_limit(map: ShardMap, limit: usize) -> ShardAggregator {
        ShardAggregator {
            map,
            limit,
            pending: BTreeMap::new(),
        }
    }

    /// The shard map records are planned with.
    pub fn map(&self) -> &ShardMap {
        &self.map
    }

    /// Adds a user record to the aggregate of its shard. When it does not fit there, that
    /// aggregate is finished and returned (send it before anything added later for the same
    /// shard) and the record starts the next one.
    pub fn add(
        &mut self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) -> Result<Option<ShardRecord>, Rejected> {
        let hash = effective_hash_key(partition_key, explicit_hash_key).ok_or_else(|| {
            Rejected::InvalidExplicitHashKey(explicit_hash_key.unwrap_or_default().to_owned())
        })?;
        let shard = self.map.shard_for_hash(hash);
        let limit = self.limit;
        let agg = match self.pending.get_mut(shard) {
            Some(agg) => agg,
            None => self
                .pending
                .entry(shard.to_owned())
                .or_insert_with(|| Aggregator::with_limit(limit)),
        };
        match agg.add(partition_key, explicit_hash_key, data) {
            AddOutcome::Added => Ok(None),
            AddOutcome::TooLarge { size } => Err(Rejected::TooLarge { size, limit }),
            AddOutcome::Full => {
                let record = agg.finish().expect("a full aggregator holds records");
                let again = agg.add(partition_key, explicit_hash_key, data);
                debug_assert_eq!(again, AddOutcome::Added);
                Ok(Some(ShardRecord {
                    shard_id: shard.to_owned(),
                    record,
                }))
            }
        }
    }

    /// Finishes the aggregate of one shard (e.g. its linger time is up); `None` when empty.
    pub fn finish_shard(&mut self, shard_id: &str) -> Option<ShardRecord> {
        let record = self.pending.get_mut(shard_id)?.finish()?;
        Some(ShardRecord {
            shard_id: shard_id.to_owned(),
            record,
        })
    }

    /// Finishes every waiting aggregate, by shard id.
    pub fn finish_all(&mut self) -> Vec<ShardRecord> {
        let mut out = Vec::new();
        for (shard_id, agg) in &mut self.pending {
            if let Some(record) = agg.finish() {
                out.push(ShardRecord {
                    shard_id: shard_id.clone(),
                    record,
                });
            }
        }
        out
    }

    /// Number of user records waiting in unfinished aggregates.
    pub fn pending_user_records(&self) -> usize {
        self.pending.values().map(Aggregator::len).sum()
    }

    /// Installs a new shard map (after a resharding) and plans the waiting user records anew
    /// under it, each shard's records in their order. Returns the aggregates that filled up
    /// while doing so. User records of one key were all waiting for one old shard, so their
    /// order holds.
    pub fn replace_map(&mut self, map: ShardMap) -> Vec<ShardRecord> {
        let waiting: Vec<_> = self
            .pending
            .values_mut()
            .flat_map(|agg| agg.take_user_records())
            .collect();
        self.pending.clear();
        self.map = map;
        let mut out = Vec::new();
        for u in waiting {
            let added = self.add(&u.partition_key, u.explicit_hash_key.as_deref(), &u.data);
            // Each record was accepted before, with the same limit and a valid hash key.
            if let Some(r) = added.expect("a waiting user record is accepted again") {
                out.push(r);
            }
        }
        out
    }
}
