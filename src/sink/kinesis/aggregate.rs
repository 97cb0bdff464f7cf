//! `aggregation = "kpl"` in the sender: user records packed per shard into KPL aggregates
//! before the [`Planner`] sees them, and what happens when the stream is resharded.
//!
//! * **Packing.** Each flush's records (a [`super::sender::Batch`]) are aggregated per shard
//!   of the current [`ShardMap`] ([`ShardAggregator`], up to the 1 MiB record limit, data plus
//!   partition key) and every aggregate is finished at the end of the batch, so records wait
//!   no longer than the sink's linger. An aggregate is queued with the partition keys of all
//!   its user records ([`Planner::push_carrying`]): no later record of any of them is sent
//!   before it is acknowledged, and a failed one is resent whole first.
//! * **The shard map** comes from ListShards (paginated) when the sink opens; the map holds
//!   the open shards, and the hash key ranges of every listed shard (closed ones too) are kept
//!   for the landing check below. It is listed again every [`RELIST_EVERY`] before a batch is
//!   packed, and when an answer shows a record on another shard than the map predicts (as the
//!   KPL does), at most once per [`MIN_RELIST`].
//! * **Resharding.** PutRecords answers each record's `ShardId`. The KCL hands a consumer only
//!   the user records of an aggregate whose hash key lies in the hash key range of the shard
//!   it read the aggregate from, and drops the others (awslabs/kinesis-aggregation,
//!   `potential_data_loss.md`). So when an aggregate lands on a shard other than planned, its
//!   user records outside that shard's range count as not delivered: they are aggregated
//!   anew under the refreshed map and replace the aggregate at its place in the queue
//!   ([`Planner::replace`]), ahead of every later record of their keys, and the flush they
//!   belong to is not durable before they are acknowledged. The ones inside the range were
//!   delivered; a landing shard whose range is unknown even after listing counts as
//!   delivering nothing (a resend is a duplicate, never a loss). Consumers drop duplicates by
//!   `stream-position`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::kpl::{
    deaggregate, effective_hash_key, ShardAggregator, ShardInfo, ShardMap, ShardRecord, Unpacked,
    UserRecord,
};
use super::planner::{Entry, Planner, Request};
use super::sender::StreamRef;
use crate::error::{Error, Result};

/// How often the shard map is listed again without a sign of resharding.
pub const RELIST_EVERY: Duration = Duration::from_secs(60);
/// The shortest time between two listings prompted by records on unexpected shards.
pub const MIN_RELIST: Duration = Duration::from_secs(1);

/// A record for the planner: the Kinesis record, the partition keys of the user records it
/// carries, and how many user records that is.
type Piece = (Entry, Vec<String>, usize);

/// The sender's aggregation state; see the module documentation.
pub struct Aggregation {
    map: ShardMap,
    /// Hash key range of every listed shard, open or closed.
    ranges: HashMap<String, (u128, u128)>,
    listed_at: Instant,
    /// Every map installed so far: the ones aggregates still queued may have been packed by.
    history: Vec<ShardMap>,
    /// User records and Kinesis records queued so far (for the log and tests).
    pub user_records: u64,
    pub kinesis_records: u64,
}

impl Aggregation {
    /// Lists the stream's shards (called by the sink when it opens, on its runtime). An error
    /// is the start's one clear error.
    pub async fn start(stream: &StreamRef) -> Result<Aggregation> {
        let shards = list_shards(stream).await.map_err(|(code, detail)| {
            Error::runtime(format!(
                "listing the shards of Kinesis stream {}: {detail}",
                stream.stream
            ))
            .with_hint(match code.as_str() {
                "AccessDeniedException" => {
                    "aggregation = \"kpl\" needs kinesis:ListShards on the stream"
                }
                _ => super::sender::refusal_hint(&code),
            })
        })?;
        Aggregation::from_shards(shards)
    }

    /// The state for a stream with `shards` (as ListShards describes them).
    pub fn from_shards(shards: Vec<ShardInfo>) -> Result<Aggregation> {
        let map = ShardMap::new(shards.iter().cloned())?;
        let mut a = Aggregation {
            history: vec![map.clone()],
            map,
            ranges: HashMap::new(),
            listed_at: Instant::now(),
            user_records: 0,
            kinesis_records: 0,
        };
        a.install(shards)?;
        Ok(a)
    }

    /// The current map of open shards.
    pub fn map(&self) -> &ShardMap {
        &self.map
    }

    /// Installs a new listing. Errors (and keeps the old map) when its open shards do not
    /// cover the hash key space (a listing in the middle of a resharding).
    pub fn install(&mut self, shards: Vec<ShardInfo>) -> Result<()> {
        let map = ShardMap::new(shards.iter().cloned())?;
        for s in &shards {
            if let (Ok(start), Ok(end)) = (s.starting_hash_key.parse(), s.ending_hash_key.parse()) {
                self.ranges.insert(s.shard_id.clone(), (start, end));
            }
        }
        if !self.history.contains(&map) {
            self.history.push(map.clone());
        }
        if map != self.map {
            tracing::info!(
                open_shards = map.shard_ids().count(),
                "Kinesis shard map: {}",
                map.shard_ids().collect::<Vec<_>>().join(", ")
            );
        }
        self.map = map;
        self.listed_at = Instant::now();
        Ok(())
    }

    async fn relist(&mut self, stream: &StreamRef) -> std::result::Result<(), String> {
        let listed = list_shards(stream)
            .await
            .map_err(|(_, detail)| format!("listing shards failed: {detail}"))?;
        // Listed or not, wait before asking again.
        self.listed_at = Instant::now();
        self.install(listed).map_err(|e| e.to_string())
    }

    /// Packs a flush's records (see the module documentation) into `planner`, listing the
    /// shards first when the map is older than [`RELIST_EVERY`] (a failed listing keeps the
    /// old map: records on wrong shards are caught by the landing check).
    pub async fn push_batch(
        &mut self,
        stream: &StreamRef,
        planner: &mut Planner,
        entries: Vec<Entry>,
    ) {
        if self.listed_at.elapsed() >= RELIST_EVERY {
            if let Err(e) = self.relist(stream).await {
                tracing::warn!(stream = %stream.stream, "{e}; keeping the shard map");
            }
        }
        self.pack(planner, entries);
    }

    /// [`Aggregation::push_batch`] without the listing.
    pub fn pack(&mut self, planner: &mut Planner, entries: Vec<Entry>) {
        self.user_records += entries.len() as u64;
        let mut packer = Packer::new(self.map.clone());
        let mut out = Vec::new();
        for e in entries {
            if packer
                .add(
                    &e.partition_key,
                    e.explicit_hash_key.as_deref(),
                    &e.data,
                    &mut out,
                )
                .is_err()
            {
                // Not reached: the sink checks the size and sets no explicit hash keys. Sent
                // plain, after everything before it.
                packer.finish(&mut out);
                let key = e.partition_key.clone();
                out.push((e, vec![key], 1));
            }
        }
        packer.finish(&mut out);
        self.kinesis_records += out.len() as u64;
        for (entry, keys, n) in out {
            planner.push_carrying(entry, keys, n);
        }
    }

    /// Reports an answered request to `planner` (see [`Aggregation::settle_with`]), listing the
    /// shards first when a record landed on another shard than the map predicts. `Some`: a
    /// listing failed (the caller backs off before sending again).
    pub async fn settle(
        &mut self,
        stream: &StreamRef,
        planner: &mut Planner,
        request: Request,
        failed: &[bool],
        landed: &[Option<String>],
    ) -> Option<String> {
        let mut trouble = None;
        if self.is_stale(&request, failed, landed) && self.listed_at.elapsed() >= MIN_RELIST {
            if let Err(e) = self.relist(stream).await {
                trouble = Some(e);
            }
        }
        let misplaced = self.settle_with(planner, request, failed, landed);
        if misplaced > 0 {
            tracing::warn!(stream = %stream.stream, "{misplaced} user records landed in aggregates on a shard other than planned (the stream was resharded): aggregating them anew and resending them");
        }
        trouble
    }

    /// Whether an acknowledged record of `request` landed on another shard than the current
    /// map predicts for it.
    pub fn is_stale(&self, request: &Request, failed: &[bool], landed: &[Option<String>]) -> bool {
        request.entries.iter().enumerate().any(|(i, (_, e))| {
            let Some(Some(shard)) = landed
                .get(i)
                .filter(|_| !failed.get(i).copied().unwrap_or(true))
            else {
                return false;
            };
            effective_hash_key(&e.partition_key, e.explicit_hash_key.as_deref())
                .is_some_and(|h| self.map.shard_for_hash(h) != shard)
        })
    }

    /// Whether every user record inside `e` surely lies in `landed` (a hash key range) without
    /// unpacking it: whatever map packed it, the shard its hash key mapped to lies within.
    fn surely_inside(&self, e: &Entry, landed: (u128, u128)) -> bool {
        let Some(h) = effective_hash_key(&e.partition_key, e.explicit_hash_key.as_deref()) else {
            return false;
        };
        self.history.iter().all(|m| {
            m.range_of(m.shard_for_hash(h))
                .is_some_and(|(start, end)| landed.0 <= start && end <= landed.1)
        })
    }

    /// Completes `request` in `planner`: `failed[i]` as PutRecords answered, and an aggregate
    /// that landed on shard `landed[i]` counts as failed when some of its user records lie
    /// outside that shard's range; those are aggregated anew under the current map and replace
    /// it at its place. Returns how many user records were misplaced.
    pub fn settle_with(
        &mut self,
        planner: &mut Planner,
        request: Request,
        failed: &[bool],
        landed: &[Option<String>],
    ) -> usize {
        let mut failed = failed.to_vec();
        failed.resize(request.entries.len(), true);
        let mut redo = Vec::new();
        for (i, (seq, e)) in request.entries.iter().enumerate() {
            if failed[i] {
                continue;
            }
            let Some(shard) = landed.get(i).cloned().flatten() else {
                continue;
            };
            let range = self.ranges.get(&shard).copied();
            if range.is_some_and(|r| self.surely_inside(e, r)) {
                continue;
            }
            // Plain records are delivered wherever they land.
            let Ok(Unpacked::Aggregated(users)) = deaggregate(&e.data) else {
                continue;
            };
            let lost: Vec<UserRecord> = users
                .into_iter()
                .filter(|u| {
                    let h = effective_hash_key(&u.partition_key, u.explicit_hash_key.as_deref());
                    !matches!((range, h), (Some((start, end)), Some(h)) if start <= h && h <= end)
                })
                .collect();
            if !lost.is_empty() {
                failed[i] = true;
                redo.push((seq.clone(), lost));
            }
        }
        planner.complete(request, &failed);
        let mut misplaced = 0;
        for (seq, users) in redo {
            misplaced += users.len();
            let mut packer = Packer::new(self.map.clone());
            let mut pieces = Vec::new();
            for u in users {
                let ok = packer.add(
                    &u.partition_key,
                    u.explicit_hash_key.as_deref(),
                    &u.data,
                    &mut pieces,
                );
                debug_assert!(ok.is_ok(), "a user record of an aggregate fits alone");
            }
            packer.finish(&mut pieces);
            self.kinesis_records += pieces.len() as u64;
            planner.replace(&seq, pieces);
        }
        misplaced
    }
}

/// A [`ShardAggregator`] that also tracks the partition keys inside each open aggregate.
struct Packer {
    agg: ShardAggregator,
    keys: HashMap<String, Vec<String>>,
}

impl Packer {
    fn new(map: ShardMap) -> Packer {
        Packer {
            agg: ShardAggregator::new(map),
            keys: HashMap::new(),
        }
    }

    /// Adds a user record; a filled aggregate goes to `out`. `Err`: refused (over the
    /// record limit alone, or an invalid explicit hash key); nothing changed.
    fn add(
        &mut self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
        out: &mut Vec<Piece>,
    ) -> std::result::Result<(), ()> {
        let hash = effective_hash_key(partition_key, explicit_hash_key).ok_or(())?;
        let shard = self.agg.map().shard_for_hash(hash).to_owned();
        match self.agg.add(partition_key, explicit_hash_key, data) {
            Err(_) => return Err(()),
            Ok(Some(full)) => {
                let keys = self.keys.remove(&full.shard_id).unwrap_or_default();
                out.push(piece(full, keys));
            }
            Ok(None) => {}
        }
        self.keys
            .entry(shard)
            .or_default()
            .push(partition_key.to_owned());
        Ok(())
    }

    /// Finishes every open aggregate into `out`.
    fn finish(&mut self, out: &mut Vec<Piece>) {
        for r in self.agg.finish_all() {
            let keys = self.keys.remove(&r.shard_id).unwrap_or_default();
            out.push(piece(r, keys));
        }
    }
}

fn piece(r: ShardRecord, keys: Vec<String>) -> Piece {
    let n = r.record.user_records;
    (
        Entry {
            partition_key: r.record.partition_key,
            explicit_hash_key: r.record.explicit_hash_key,
            data: Bytes::from(r.record.data),
        },
        keys,
        n,
    )
}

/// Every shard of the stream (ListShards, following `NextToken`). `Err((code, detail))`.
pub async fn list_shards(
    stream: &StreamRef,
) -> std::result::Result<Vec<ShardInfo>, (String, String)> {
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let call = stream.client.list_shards();
        // With a NextToken, ListShards takes no stream.
        let call = match &token {
            Some(t) => call.next_token(t),
            None if stream.is_arn() => call.stream_arn(&stream.stream),
            None => call.stream_name(&stream.stream),
        };
        let page = call.send().await.map_err(|e| {
            (
                e.code().unwrap_or("").to_string(),
                crate::aws::error_causes(&e),
            )
        })?;
        for s in page.shards() {
            let Some(range) = s.hash_key_range() else {
                continue;
            };
            out.push(ShardInfo {
                shard_id: s.shard_id().to_owned(),
                starting_hash_key: range.starting_hash_key().to_owned(),
                ending_hash_key: range.ending_hash_key().to_owned(),
                open: s
                    .sequence_number_range()
                    .is_none_or(|r| r.ending_sequence_number().is_none()),
            });
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
#[path = "aggregate_tests.rs"]
mod tests;
