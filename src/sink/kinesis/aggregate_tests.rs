//! The sender's aggregation path against a fake stream that routes records as Kinesis does,
//! fails some, and is resharded in the middle; judged by a consumer that reads like the KCL.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::*;
use crate::model::Lsn;
use crate::sink::kinesis::kpl::hash_key;

fn shard(id: &str, start: u128, end: u128, open: bool) -> ShardInfo {
    ShardInfo {
        shard_id: id.into(),
        starting_hash_key: start.to_string(),
        ending_hash_key: end.to_string(),
        open,
    }
}

const Q: u128 = u128::MAX / 4 + 1;

/// Four even shards, and the same after shard 0 was split at `split` (children 4 and 5).
fn four_shards() -> Vec<ShardInfo> {
    (0..4)
        .map(|i| {
            shard(
                &format!("s{i}"),
                i * Q,
                if i == 3 { u128::MAX } else { (i + 1) * Q - 1 },
                true,
            )
        })
        .collect()
}

fn split_first(split: u128) -> Vec<ShardInfo> {
    let mut s = four_shards();
    s[0].open = false;
    s.push(shard("s4", 0, split - 1, true));
    s.push(shard("s5", split, Q - 1, true));
    s
}

fn user(key: &str, i: u32) -> Entry {
    Entry {
        partition_key: key.into(),
        explicit_hash_key: None,
        data: Bytes::from(format!("{key}#{i}#{}", "x".repeat((i % 50) as usize))),
    }
}

/// The position of a user record's data.
fn pos(data: &[u8]) -> (String, u32) {
    let s = std::str::from_utf8(data).unwrap();
    let mut it = s.split('#');
    (
        it.next().unwrap().to_string(),
        it.next().unwrap().parse().unwrap(),
    )
}

fn xorshift(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

#[test]
fn a_flush_is_packed_per_shard_and_every_aggregate_holds_its_keys() {
    let mut a = Aggregation::from_shards(four_shards()).unwrap();
    let mut p = Planner::default();
    let entries: Vec<Entry> = (0..3000)
        .map(|i| user(&format!("public.t.{}", (i * 7919) % 400), i))
        .collect();
    a.pack(&mut p, entries);
    a.pack(&mut p, vec![user("public.t.1", 5000)]);
    assert_eq!(p.outstanding(), 3001);
    assert_eq!(
        (a.user_records, a.kinesis_records),
        (3001, 4 + 1),
        "one aggregate per shard, and a lone record"
    );
    let r = p.next_request().unwrap();
    assert_eq!(
        r.entries.len(),
        4,
        "the lone record of key 1 waits for the aggregate holding key 1"
    );
    for (_, e) in &r.entries {
        let Unpacked::Aggregated(users) = deaggregate(&e.data).unwrap() else {
            panic!("not aggregated")
        };
        let landed = a.map().shard_for_hash(parse_ehk(e));
        assert!(users
            .iter()
            .all(|u| a.map().shard_for(&u.partition_key) == landed));
        assert!(e.size() <= super::super::planner::MAX_RECORD_BYTES);
    }
    assert!(p.next_request().is_none());
    p.complete(r, &[false; 4]);
    let r = p.next_request().unwrap();
    assert_eq!(r.entries[0].1.partition_key, "public.t.1");
    assert!(
        r.entries[0].1.explicit_hash_key.is_none(),
        "a lone record goes plain"
    );
}

fn parse_ehk(e: &Entry) -> u128 {
    e.explicit_hash_key
        .as_deref()
        .map_or_else(|| hash_key(&e.partition_key), |h| h.parse().unwrap())
}

#[test]
fn an_aggregate_on_the_wrong_shard_is_replaced_by_the_records_its_consumer_drops() {
    let mut a = Aggregation::from_shards(four_shards()).unwrap();
    let mut p = Planner::default();
    let keys: Vec<String> = (0..200)
        .map(|k| format!("k{k}"))
        .filter(|k| hash_key(k) < Q)
        .take(20)
        .collect();
    // Shard 0 will be split at `split`; the aggregate goes to the child holding its hash key
    // (its first record's), and the records of the other child's keys are dropped.
    let split = Q / 2;
    let ehk = hash_key(&keys[0]);
    let landed = if ehk < split { "s4" } else { "s5" };
    let outside: Vec<&String> = keys
        .iter()
        .filter(|k| (hash_key(k) < split) != (ehk < split))
        .collect();
    assert!(
        !outside.is_empty() && outside.len() < keys.len(),
        "the keys straddle the split"
    );
    a.pack(
        &mut p,
        keys.iter()
            .enumerate()
            .map(|(i, k)| user(k, i as u32))
            .collect(),
    );
    p.push(user(outside[0], 99));
    p.mark(Lsn(5));
    let r = p.next_request().unwrap();
    assert_eq!(r.entries.len(), 1);
    assert_eq!(parse_ehk(&r.entries[0].1), ehk);
    a.install(split_first(split)).unwrap();
    let misplaced = a.settle_with(&mut p, r, &[false], &[Some(landed.into())]);
    assert_eq!(misplaced, outside.len());
    assert_eq!(
        p.durable(),
        Lsn::ZERO,
        "the dropped records are not acknowledged"
    );
    let r = p.next_request().unwrap();
    assert_eq!(
        r.entries.len(),
        1,
        "one new aggregate, for the other child; the next record of one of its keys waits"
    );
    let Unpacked::Aggregated(users) = deaggregate(&r.entries[0].1.data).unwrap() else {
        panic!()
    };
    assert_eq!(
        users.iter().map(|u| &u.partition_key).collect::<Vec<_>>(),
        outside
    );
    let other = if landed == "s4" { "s5" } else { "s4" };
    assert_eq!(a.settle_with(&mut p, r, &[false], &[Some(other.into())]), 0);
    let r = p.next_request().unwrap();
    assert_eq!(pos(&r.entries[0].1.data), (outside[0].clone(), 99));
    p.complete(r, &[false]);
    assert_eq!((p.durable(), p.outstanding()), (Lsn(5), 0));
}

/// A fake stream with four shards, one of them split after `split_after` answers; the
/// sender's loop (requests in flight at once, answered in random order, a fifth of the
/// entries rejected) runs until everything is acknowledged. A consumer reading every shard
/// (the parent before its children) and dropping, like the KCL, the user records of an
/// aggregate outside the range of the shard it read it from, then dropping per key what is
/// not past the highest position it kept, gets every record once, per key in order.
#[test]
fn resharding_mid_stream_loses_and_reorders_nothing_for_a_kcl_consumer() {
    let split = Q / 3;
    let (before, after) = (four_shards(), split_first(split));
    let route = |resharded: bool, h: u128| -> String {
        let m = ShardMap::new(if resharded {
            after.clone()
        } else {
            before.clone()
        })
        .unwrap();
        m.shard_for_hash(h).to_string()
    };
    let mut a = Aggregation::from_shards(before.clone()).unwrap();
    let mut p = Planner::default();
    let mut rng = 0x1234_5678_9ABC_DEF1u64;
    let mut expected: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut n = 0;
    for batch in 0..40 {
        let entries: Vec<Entry> = (0..150)
            .map(|_| {
                n += 1;
                let k = format!("public.t.{}", xorshift(&mut rng) % 97);
                expected.entry(k.clone()).or_default().push(n);
                user(&k, n)
            })
            .collect();
        a.pack(&mut p, entries);
        p.mark(Lsn(batch + 1));
    }
    let mut stored: HashMap<String, Vec<Entry>> = HashMap::new();
    let (mut answers, mut misplaced, mut in_flight) = (0, 0, Vec::new());
    while p.outstanding() > 0 {
        while in_flight.len() < 4 {
            let Some(r) = p.next_request() else { break };
            in_flight.push(r);
        }
        let r = in_flight.remove((xorshift(&mut rng) % in_flight.len() as u64) as usize);
        answers += 1;
        let resharded = answers > 15;
        let failed: Vec<bool> = r
            .entries
            .iter()
            .map(|_| xorshift(&mut rng).is_multiple_of(5))
            .collect();
        let landed: Vec<Option<String>> = r
            .entries
            .iter()
            .map(|(_, e)| Some(route(resharded, parse_ehk(e))))
            .collect();
        for (((_, e), f), l) in r.entries.iter().zip(&failed).zip(&landed) {
            if !f {
                stored
                    .entry(l.clone().unwrap())
                    .or_default()
                    .push(e.clone());
            }
        }
        if a.is_stale(&r, &failed, &landed) {
            a.install(after.clone()).unwrap();
        }
        misplaced += a.settle_with(&mut p, r, &failed, &landed);
    }
    assert!(
        misplaced > 0,
        "aggregates packed before the split landed on a child shard"
    );
    assert_eq!(p.durable(), Lsn(40));
    // The consumer.
    let ranges: HashMap<String, (u128, u128)> = after
        .iter()
        .map(|s| {
            (
                s.shard_id.clone(),
                (
                    s.starting_hash_key.parse().unwrap(),
                    s.ending_hash_key.parse().unwrap(),
                ),
            )
        })
        .collect();
    let mut kept: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let (mut dropped_by_kcl, mut kinesis_records) = (0, 0);
    for shard_id in ["s0", "s1", "s2", "s3", "s4", "s5"] {
        let (start, end) = ranges[shard_id];
        for e in stored.get(shard_id).into_iter().flatten() {
            kinesis_records += 1;
            let users = match deaggregate(&e.data).unwrap() {
                Unpacked::Plain => vec![e.data.to_vec()],
                Unpacked::Aggregated(us) => us
                    .into_iter()
                    .filter(|u| {
                        let inside = (start..=end).contains(&hash_key(&u.partition_key));
                        dropped_by_kcl += usize::from(!inside);
                        inside
                    })
                    .map(|u| u.data)
                    .collect(),
            };
            for d in users {
                let (k, i) = pos(&d);
                let seen = kept.entry(k).or_default();
                if seen.last().is_none_or(|&last| i > last) {
                    seen.push(i);
                }
            }
        }
    }
    assert!(
        dropped_by_kcl > 0,
        "the consumer dropped records of misplaced aggregates"
    );
    assert!(
        kinesis_records * 20 < n as usize,
        "{kinesis_records} Kinesis records for {n} user records"
    );
    assert_eq!(kept, expected);
}

/// An aggregate on a shard whose range holds all of it (moto keeps writing to a closed parent
/// after a split) was delivered; on a shard nobody listed, none of it was.
#[test]
fn an_aggregate_on_a_covering_shard_is_delivered_and_on_an_unknown_one_resent_whole() {
    let mut a = Aggregation::from_shards(four_shards()).unwrap();
    a.install(split_first(Q / 2)).unwrap();
    let mut p = Planner::default();
    let keys: Vec<String> = (0..400)
        .map(|k| format!("k{k}"))
        .filter(|k| hash_key(k) < Q / 2)
        .take(10)
        .collect();
    a.pack(
        &mut p,
        keys.iter()
            .enumerate()
            .map(|(i, k)| user(k, i as u32))
            .collect(),
    );
    a.pack(
        &mut p,
        keys.iter()
            .enumerate()
            .map(|(i, k)| user(k, 100 + i as u32))
            .collect(),
    );
    let r = p.next_request().unwrap();
    assert_eq!(r.entries.len(), 1);
    assert!(
        a.is_stale(&r, &[false], &[Some("s0".into())]),
        "the map predicts s4"
    );
    assert_eq!(a.settle_with(&mut p, r, &[false], &[Some("s0".into())]), 0);
    let r = p.next_request().unwrap();
    let data = r.entries[0].1.data.clone();
    assert_eq!(a.settle_with(&mut p, r, &[false], &[Some("s9".into())]), 10);
    let r = p.next_request().unwrap();
    assert_eq!(r.entries[0].1.data, data, "packed again the same way");
    p.complete(r, &[false]);
    assert_eq!(p.outstanding(), 0);
}
