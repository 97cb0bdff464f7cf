//! Which records go into the next PutRecords request, so that records of one partition key
//! reach the stream in commit order whatever part of a request fails (SPEC 2.3, 5.3).
//!
//! Kinesis keeps order per shard within one request, but a PutRecords call may fail for
//! some entries and succeed for later ones: two records of one key in one request could be
//! stored in the wrong order once the first is resent. So the planner puts **at most one
//! record of a key** into a request, and sends **no record of a key while an earlier one of
//! that key is in flight or waiting to be resent**. A failed record goes back to its place
//! in the queue, ahead of every later record of its key. Requests over disjoint keys may be
//! in flight at once. (Records of one key that must travel together can be packed into one
//! KPL aggregate first: Kinesis accepts or rejects an aggregate whole.)
//!
//! Durability: every record gets a sequence number in commit order. A flush's position is
//! durable once every record submitted before it is acknowledged ([`Planner::durable`]).
//!
//! The planner is plain state, no I/O: the sink's sender task owns it, takes
//! [`Planner::next_request`], sends it, and reports the outcome with [`Planner::complete`].

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use bytes::Bytes;

use crate::model::Lsn;

/// PutRecords limits: records per request.
pub const MAX_RECORDS: usize = 500;
/// PutRecords limits: bytes per request (data plus partition keys).
pub const MAX_REQUEST_BYTES: usize = 5 << 20;
/// PutRecords limits: bytes per record (data plus partition key).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// One Kinesis record waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub partition_key: String,
    /// Routes the record to a shard regardless of its key (KPL aggregates, see `kpl`).
    pub explicit_hash_key: Option<String>,
    pub data: Bytes,
}

impl Entry {
    /// What the record counts against the request and record limits.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// A request to send: the entries with their sequence numbers, in queue order.
#[derive(Debug)]
pub struct Request {
    pub entries: Vec<(u64, Entry)>,
}

impl Request {
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|(_, e)| e.size()).sum()
    }
}

/// See the module documentation.
#[derive(Default)]
pub struct Planner {
    next_seq: u64,
    /// Records not sent yet, or sent and failed, by sequence number.
    waiting: BTreeMap<u64, Entry>,
    /// Sequence numbers and keys of records in flight.
    in_flight: BTreeSet<u64>,
    busy_keys: HashSet<String>,
    /// `(first sequence number after the flush, its position)`, in order.
    marks: VecDeque<(u64, Lsn)>,
    durable: Lsn,
}

impl Planner {
    /// Queues a record behind everything queued so far. The caller checked
    /// [`MAX_RECORD_BYTES`] (a record that can never fit goes to the dead letters).
    pub fn push(&mut self, entry: Entry) {
        debug_assert!(entry.size() <= MAX_RECORD_BYTES);
        self.waiting.insert(self.next_seq, entry);
        self.next_seq += 1;
    }

    /// Everything pushed so far belongs to flushes up to `lsn`: it becomes durable when
    /// they are all acknowledged.
    pub fn mark(&mut self, lsn: Lsn) {
        self.marks.push_back((self.next_seq, lsn));
        self.advance();
    }

    /// The position up to which every record is acknowledged.
    pub fn durable(&self) -> Lsn {
        self.durable
    }

    /// Records queued or in flight.
    pub fn outstanding(&self) -> usize {
        self.waiting.len() + self.in_flight.len()
    }

    /// The next request, `None` when nothing can be sent now (empty, or every waiting
    /// record's key has an earlier record in flight). Records are taken in queue order, at
    /// most one per key, skipping keys with an earlier record in flight or waiting, within
    /// [`MAX_RECORDS`] and [`MAX_REQUEST_BYTES`].
    pub fn next_request(&mut self) -> Option<Request> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut taken = Vec::new();
        let mut bytes = 0;
        for (seq, e) in &self.waiting {
            if !seen.insert(e.partition_key.as_str()) || self.busy_keys.contains(&e.partition_key) {
                continue;
            }
            if taken.len() == MAX_RECORDS || bytes + e.size() > MAX_REQUEST_BYTES {
                break;
            }
            bytes += e.size();
            taken.push(*seq);
        }
        if taken.is_empty() {
            return None;
        }
        let entries = taken
            .into_iter()
            .map(|seq| {
                let e = self.waiting.remove(&seq).expect("taken from waiting");
                self.busy_keys.insert(e.partition_key.clone());
                self.in_flight.insert(seq);
                (seq, e)
            })
            .collect();
        Some(Request { entries })
    }

    /// The outcome of `request`: `failed[i]` says whether its i-th entry was rejected (a
    /// whole failed call: all true). Failed records go back to their place in the queue,
    /// ahead of every later record of their key; acknowledged ones may raise
    /// [`Planner::durable`].
    pub fn complete(&mut self, request: Request, failed: &[bool]) {
        for (i, (seq, e)) in request.entries.into_iter().enumerate() {
            self.in_flight.remove(&seq);
            self.busy_keys.remove(&e.partition_key);
            if failed.get(i).copied().unwrap_or(true) {
                self.waiting.insert(seq, e);
            }
        }
        self.advance();
    }

    fn advance(&mut self) {
        let lowest_unacked = [self.waiting.keys().next(), self.in_flight.iter().next()]
            .into_iter()
            .flatten()
            .min()
            .copied()
            .unwrap_or(self.next_seq);
        while let Some(&(after, lsn)) = self.marks.front() {
            if after > lowest_unacked {
                break;
            }
            self.durable = self.durable.max(lsn);
            self.marks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, data: &str) -> Entry {
        Entry { partition_key: key.into(), explicit_hash_key: None, data: Bytes::from(data.to_string()) }
    }

    fn datas(r: &Request) -> Vec<String> {
        r.entries.iter().map(|(_, e)| String::from_utf8(e.data.to_vec()).unwrap()).collect()
    }

    #[test]
    fn one_record_per_key_per_request_and_none_while_its_key_is_in_flight() {
        let mut p = Planner::default();
        for (k, d) in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("c", "c1"), ("b", "b2")] {
            p.push(entry(k, d));
        }
        let r1 = p.next_request().unwrap();
        assert_eq!(datas(&r1), ["a1", "b1", "c1"]);
        // a2 and b2 wait for a1 and b1; nothing else can go.
        assert!(p.next_request().is_none());
        p.complete(r1, &[false, false, false]);
        let r2 = p.next_request().unwrap();
        assert_eq!(datas(&r2), ["a2", "b2"]);
    }

    #[test]
    fn a_failed_record_is_resent_before_any_later_record_of_its_key() {
        let mut p = Planner::default();
        for (k, d) in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2")] {
            p.push(entry(k, d));
        }
        p.mark(Lsn(100));
        let r1 = p.next_request().unwrap();
        assert_eq!(datas(&r1), ["a1", "b1"]);
        p.complete(r1, &[true, false]); // a1 throttled, b1 stored
        assert_eq!(p.durable(), Lsn::ZERO);
        let r2 = p.next_request().unwrap();
        assert_eq!(datas(&r2), ["a1", "b2"], "a1 again before a2; b goes on");
        p.complete(r2, &[false, false]);
        let r3 = p.next_request().unwrap();
        assert_eq!(datas(&r3), ["a2"]);
        p.complete(r3, &[false]);
        assert_eq!(p.durable(), Lsn(100));
        assert_eq!(p.outstanding(), 0);
    }

    #[test]
    fn requests_in_flight_at_once_have_disjoint_keys() {
        let mut p = Planner::default();
        for i in 0..1200 {
            p.push(entry(&format!("k{}", i % 700), "x"));
        }
        let r1 = p.next_request().unwrap();
        assert_eq!(r1.entries.len(), MAX_RECORDS);
        let r2 = p.next_request().unwrap();
        assert_eq!(r2.entries.len(), 200, "the other 200 keys");
        let keys1: HashSet<_> = r1.entries.iter().map(|(_, e)| e.partition_key.clone()).collect();
        assert!(r2.entries.iter().all(|(_, e)| !keys1.contains(&e.partition_key)));
        assert!(p.next_request().is_none());
    }

    #[test]
    fn requests_stay_within_five_mib() {
        let mut p = Planner::default();
        let big = "x".repeat(MAX_RECORD_BYTES - 10);
        for i in 0..7 {
            p.push(entry(&format!("k{i}"), &big));
        }
        let r = p.next_request().unwrap();
        assert_eq!(r.entries.len(), 5);
        assert!(r.bytes() <= MAX_REQUEST_BYTES);
    }

    #[test]
    fn a_flush_is_durable_only_when_everything_before_it_is_acknowledged() {
        let mut p = Planner::default();
        p.push(entry("a", "1"));
        p.mark(Lsn(10));
        p.push(entry("b", "2"));
        p.mark(Lsn(20));
        let r = p.next_request().unwrap();
        assert_eq!(r.entries.len(), 2);
        p.complete(r, &[true, false]); // the first flush's record failed
        assert_eq!(p.durable(), Lsn::ZERO, "b's ack alone proves nothing about flush 10");
        let r = p.next_request().unwrap();
        p.complete(r, &[false]);
        assert_eq!(p.durable(), Lsn(20));
        p.mark(Lsn(30)); // an empty flush is durable at once
        assert_eq!(p.durable(), Lsn(30));
    }

    #[test]
    fn random_partial_failures_keep_per_key_order() {
        // A stream that stores what it accepts; whatever fails, each key's records arrive
        // in push order, and everything arrives.
        let mut p = Planner::default();
        let mut expected: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for i in 0..2000u32 {
            let k = format!("k{}", (i * 7919) % 37);
            expected.entry(k.clone()).or_default().push(i);
            p.push(entry(&k, &i.to_string()));
        }
        p.mark(Lsn(1));
        let mut stored: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut in_flight = Vec::new();
        while p.outstanding() > 0 {
            while let Some(r) = p.next_request() {
                in_flight.push(r);
            }
            let r = in_flight.remove((rng % in_flight.len() as u64) as usize);
            let failed: Vec<bool> = r
                .entries
                .iter()
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng.is_multiple_of(3)
                })
                .collect();
            for ((_, e), f) in r.entries.iter().zip(&failed) {
                if !f {
                    stored.entry(e.partition_key.clone()).or_default().push(String::from_utf8(e.data.to_vec()).unwrap().parse().unwrap());
                }
            }
            p.complete(r, &failed);
        }
        assert_eq!(stored, expected);
        assert_eq!(p.durable(), Lsn(1));
    }
}
