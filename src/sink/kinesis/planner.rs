//! Which records go into the next PutRecords request, so that records of one partition key
//! reach the stream in commit order whatever part of a request fails (SPEC 2.3, 5.3).
//!
//! Kinesis keeps order per shard within one request, but a PutRecords call may fail for
//! some entries and succeed for later ones: two records of one key in one request could be
//! stored in the wrong order once the first is resent. So the planner puts **at most one
//! record of a key** into a request, and sends **no record of a key while an earlier one of
//! that key is in flight or waiting to be resent**. A failed record goes back to its place
//! in the queue, ahead of every later record of its key. Requests over disjoint keys may be
//! in flight at once.
//!
//! A KPL aggregate carries the user records of many keys ([`Planner::push_carrying`]): the
//! rule covers **every** key inside it, so an aggregate waits while an earlier record of any
//! of its keys is in flight or waiting, and no later record of any of its keys is sent while
//! it is. Kinesis accepts or rejects an aggregate whole, and a failed one is resent whole (or,
//! when it landed on the wrong shard, replaced at its place by new aggregates of the user
//! records the consumer would drop, [`Planner::replace`]).
//!
//! Durability: every record gets a sequence number in commit order. A flush's position is
//! durable once every record submitted before it is acknowledged ([`Planner::durable`]).
//!
//! The planner is plain state, no I/O: the sink's sender task owns it, takes
//! [`Planner::next_request`], sends it, and reports the outcome with [`Planner::complete`].

use std::collections::{BTreeMap, HashSet, VecDeque};

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

/// A record's place in the queue: the order it was pushed in (`n`), and for the pieces a
/// record was replaced by ([`Planner::replace`]) their order among themselves, at its place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq {
    n: u64,
    sub: Vec<u32>,
}

impl Seq {
    fn piece(&self, i: usize) -> Seq {
        let mut sub = self.sub.clone();
        sub.push(i as u32);
        Seq { n: self.n, sub }
    }
}

/// A request to send: the entries with their sequence numbers, in queue order.
#[derive(Debug)]
pub struct Request {
    pub entries: Vec<(Seq, Entry)>,
}

impl Request {
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|(_, e)| e.size()).sum()
    }
}

/// A queued record, the partition keys of the user records it carries (its own key for a
/// plain record; every key inside a KPL aggregate), and how many user records that is.
#[derive(Debug)]
struct Item {
    entry: Entry,
    keys: Vec<String>,
    records: usize,
}

/// See the module documentation.
#[derive(Default)]
pub struct Planner {
    next_seq: u64,
    /// Records not sent yet, or sent and failed, in queue order.
    waiting: BTreeMap<Seq, Item>,
    /// Records in flight: their keys and user record counts.
    in_flight: BTreeMap<Seq, (Vec<String>, usize)>,
    /// The keys of every record in flight (disjoint between records in flight).
    busy_keys: HashSet<String>,
    /// User records queued or in flight.
    outstanding: usize,
    /// `(first sequence number after the flush, its position)`, in order.
    marks: VecDeque<(u64, Lsn)>,
    durable: Lsn,
}

impl Planner {
    /// Queues a record behind everything queued so far. The caller checked
    /// [`MAX_RECORD_BYTES`] (a record that can never fit goes to the dead letters).
    pub fn push(&mut self, entry: Entry) -> Seq {
        let key = entry.partition_key.clone();
        self.push_carrying(entry, vec![key], 1)
    }

    /// Queues a record that carries `records` user records with the partition keys `keys`
    /// (a KPL aggregate; the record's own key is added when missing): it is sent only when no
    /// earlier record of any of these keys is in flight or waiting, and holds back every
    /// later record of any of them until it is acknowledged.
    pub fn push_carrying(&mut self, entry: Entry, keys: Vec<String>, records: usize) -> Seq {
        debug_assert!(entry.size() <= MAX_RECORD_BYTES);
        let seq = Seq { n: self.next_seq, sub: Vec::new() };
        self.next_seq += 1;
        self.insert_waiting(seq.clone(), entry, keys, records);
        seq
    }

    fn insert_waiting(&mut self, seq: Seq, entry: Entry, mut keys: Vec<String>, records: usize) {
        if !keys.contains(&entry.partition_key) {
            keys.push(entry.partition_key.clone());
        }
        keys.sort_unstable();
        keys.dedup();
        self.outstanding += records.max(1);
        self.waiting.insert(seq, Item { entry, keys, records: records.max(1) });
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

    /// User records queued or in flight (a plain record counts one, an aggregate the user
    /// records inside it).
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// The next request, `None` when nothing can be sent now (empty, or every waiting
    /// record has a key with an earlier record in flight or waiting). Records are taken in
    /// queue order, none sharing a key with another in the request, skipping records with a
    /// key that an earlier record in flight or waiting holds, within [`MAX_RECORDS`] and
    /// [`MAX_REQUEST_BYTES`].
    pub fn next_request(&mut self) -> Option<Request> {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut taken = Vec::new();
        let mut bytes = 0;
        for (seq, item) in &self.waiting {
            let blocked = item.keys.iter().any(|k| seen.contains(k.as_str()) || self.busy_keys.contains(k));
            seen.extend(item.keys.iter().map(String::as_str));
            if blocked {
                continue;
            }
            if taken.len() == MAX_RECORDS || bytes + item.entry.size() > MAX_REQUEST_BYTES {
                break;
            }
            bytes += item.entry.size();
            taken.push(seq.clone());
        }
        if taken.is_empty() {
            return None;
        }
        let entries = taken
            .into_iter()
            .map(|seq| {
                let item = self.waiting.remove(&seq).expect("taken from waiting");
                self.busy_keys.extend(item.keys.iter().cloned());
                self.in_flight.insert(seq.clone(), (item.keys, item.records));
                (seq, item.entry)
            })
            .collect();
        Some(Request { entries })
    }

    /// The outcome of `request`: `failed[i]` says whether its i-th entry was rejected (a
    /// whole failed call: all true). Failed records go back to their place in the queue,
    /// ahead of every later record of their keys; acknowledged ones may raise
    /// [`Planner::durable`].
    pub fn complete(&mut self, request: Request, failed: &[bool]) {
        for (i, (seq, entry)) in request.entries.into_iter().enumerate() {
            let (keys, records) = self.in_flight.remove(&seq).expect("a request's entries are in flight");
            for k in &keys {
                self.busy_keys.remove(k);
            }
            self.outstanding -= records;
            if failed.get(i).copied().unwrap_or(true) {
                self.insert_waiting(seq, entry, keys, records);
            }
        }
        self.advance();
    }

    /// Replaces the waiting record at `seq` (one that [`Planner::complete`] just put back)
    /// by `pieces` — `(record, keys of its user records, how many)` — in their order, at its
    /// place in the queue: ahead of every later record of their keys, and counted for the
    /// flush it belonged to. No pieces: the record counts as acknowledged. The sender uses
    /// it for an aggregate that landed on another shard than planned (`super::aggregate`).
    pub fn replace(&mut self, seq: &Seq, pieces: Vec<(Entry, Vec<String>, usize)>) {
        let Some(old) = self.waiting.remove(seq) else {
            debug_assert!(false, "replace: {seq:?} is not waiting");
            return;
        };
        self.outstanding -= old.records;
        for (i, (entry, keys, records)) in pieces.into_iter().enumerate() {
            self.insert_waiting(seq.piece(i), entry, keys, records);
        }
        self.advance();
    }

    fn advance(&mut self) {
        let lowest_unacked = [self.waiting.keys().next(), self.in_flight.keys().next()]
            .into_iter()
            .flatten()
            .map(|s| s.n)
            .min()
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
    /// An aggregate of `(key, data)` user records: data lists them as `key=data,...`.
    fn agg(users: &[(&str, &str)]) -> (Entry, Vec<String>, usize) {
        let data = users.iter().map(|(k, d)| format!("{k}={d}")).collect::<Vec<_>>().join(",");
        let keys = users.iter().map(|(k, _)| k.to_string()).collect();
        (entry(users[0].0, &data), keys, users.len())
    }

    fn push_agg(p: &mut Planner, users: &[(&str, &str)]) -> Seq {
        let (e, keys, n) = agg(users);
        p.push_carrying(e, keys, n)
    }

    #[test]
    fn an_aggregate_holds_back_every_key_inside_it() {
        let mut p = Planner::default();
        push_agg(&mut p, &[("a", "1"), ("b", "1"), ("c", "1")]);
        p.push(entry("b", "b2"));
        p.push(entry("d", "d1"));
        assert_eq!(p.outstanding(), 5);
        let r1 = p.next_request().unwrap();
        assert_eq!(datas(&r1), ["a=1,b=1,c=1", "d1"], "b2 waits for the aggregate, whose own key is a");
        assert!(p.next_request().is_none(), "b is busy while the aggregate is in flight");
        p.complete(r1, &[false, false]);
        assert_eq!(datas(&p.next_request().unwrap()), ["b2"]);
    }

    #[test]
    fn an_aggregate_waits_for_an_earlier_record_of_any_of_its_keys() {
        let mut p = Planner::default();
        p.push(entry("c", "c0"));
        push_agg(&mut p, &[("a", "1"), ("b", "1"), ("c", "1")]);
        p.push(entry("e", "e1"));
        let r1 = p.next_request().unwrap();
        assert_eq!(datas(&r1), ["c0", "e1"], "the aggregate's third key has an earlier record");
        assert!(p.next_request().is_none());
        p.complete(r1, &[true, false]); // c0 failed: the aggregate still waits
        let r2 = p.next_request().unwrap();
        assert_eq!(datas(&r2), ["c0"]);
        p.complete(r2, &[false]);
        assert_eq!(datas(&p.next_request().unwrap()), ["a=1,b=1,c=1"]);
    }

    #[test]
    fn a_failed_aggregate_is_resent_whole_before_any_later_record_of_any_of_its_keys() {
        let mut p = Planner::default();
        push_agg(&mut p, &[("a", "1"), ("b", "1")]);
        p.push(entry("c", "c1"));
        push_agg(&mut p, &[("c", "2"), ("b", "2")]);
        p.push(entry("a", "a2"));
        p.mark(Lsn(7));
        let r1 = p.next_request().unwrap();
        assert_eq!(datas(&r1), ["a=1,b=1", "c1"]);
        p.complete(r1, &[true, false]);
        let r2 = p.next_request().unwrap();
        assert_eq!(datas(&r2), ["a=1,b=1"], "resent whole; c=2,b=2 and a2 wait for it");
        assert!(p.next_request().is_none());
        p.complete(r2, &[false]);
        let r3 = p.next_request().unwrap();
        assert_eq!(datas(&r3), ["c=2,b=2", "a2"]);
        p.complete(r3, &[false, false]);
        assert_eq!((p.durable(), p.outstanding()), (Lsn(7), 0));
    }

    #[test]
    fn a_replaced_aggregate_keeps_its_place_and_its_flush() {
        let mut p = Planner::default();
        push_agg(&mut p, &[("a", "1"), ("b", "1"), ("c", "1")]);
        p.mark(Lsn(10));
        p.push(entry("b", "b2"));
        p.push(entry("c", "c2"));
        p.mark(Lsn(20));
        let r1 = p.next_request().unwrap();
        assert_eq!(datas(&r1), ["a=1,b=1,c=1"]);
        let seq = r1.entries[0].0.clone();
        // It landed on a shard whose consumer keeps only a's record: b and c go again, in
        // two pieces (their new shards), ahead of b2 and c2.
        p.complete(r1, &[true]);
        let (b, bk, bn) = agg(&[("b", "1")]);
        let (c, ck, cn) = agg(&[("c", "1")]);
        p.replace(&seq, vec![(b, bk, bn), (c, ck, cn)]);
        assert_eq!(p.outstanding(), 4);
        let r2 = p.next_request().unwrap();
        assert_eq!(datas(&r2), ["b=1", "c=1"]);
        assert!(p.next_request().is_none());
        p.complete(r2, &[false, true]);
        assert_eq!(p.durable(), Lsn::ZERO, "a piece of flush 10 is not acknowledged");
        let r3 = p.next_request().unwrap();
        assert_eq!(datas(&r3), ["c=1", "b2"], "the failed piece before c2");
        p.complete(r3, &[false, false]);
        assert_eq!(p.durable(), Lsn(10));
        let r4 = p.next_request().unwrap();
        assert_eq!(datas(&r4), ["c2"]);
        // A piece replaced again, by nothing: everything of it was delivered.
        let seq = r4.entries[0].0.clone();
        p.complete(r4, &[true]);
        p.replace(&seq, Vec::new());
        assert_eq!((p.durable(), p.outstanding()), (Lsn(20), 0));
    }

    #[test]
    fn random_partial_failures_keep_per_key_order_across_aggregates() {
        // Records carrying one to four keys' user records; whatever fails, each key's user
        // records are stored in push order, once each, and everything is stored.
        let mut p = Planner::default();
        let mut expected: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut i = 0u32;
        while i < 3000 {
            let n = 1 + (next() % 4) as usize;
            let users: Vec<(String, String)> = (0..n)
                .map(|_| {
                    i += 1;
                    let k = format!("k{}", next() % 29);
                    expected.entry(k.clone()).or_default().push(i);
                    (k, i.to_string())
                })
                .collect();
            let refs: Vec<(&str, &str)> = users.iter().map(|(k, d)| (k.as_str(), d.as_str())).collect();
            push_agg(&mut p, &refs);
        }
        p.mark(Lsn(1));
        let mut stored: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut in_flight = Vec::new();
        while p.outstanding() > 0 {
            while let Some(r) = p.next_request() {
                in_flight.push(r);
            }
            let r = in_flight.remove((next() % in_flight.len() as u64) as usize);
            let failed: Vec<bool> = r.entries.iter().map(|_| next().is_multiple_of(3)).collect();
            for ((_, e), f) in r.entries.iter().zip(&failed) {
                if !f {
                    for kd in String::from_utf8(e.data.to_vec()).unwrap().split(',') {
                        let (k, d) = kd.split_once('=').unwrap();
                        stored.entry(k.to_string()).or_default().push(d.parse().unwrap());
                    }
                }
            }
            p.complete(r, &failed);
        }
        assert_eq!(stored, expected);
        assert_eq!(p.durable(), Lsn(1));
    }
}
