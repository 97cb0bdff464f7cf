//! Tests of KPL aggregation against the real KPL's bytes (`tests/fixtures/kpl/`), exact size
//! accounting, and shard-aware grouping.

use std::collections::HashMap;

use super::*;

fn fixture(name: &str) -> Vec<serde_json::Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kpl")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn s<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(|x| x.as_str())
}

/// The user records a Kinesis record carries: its aggregate, or itself when plain.
fn unpack(r: &KinesisRecord) -> Vec<UserRecord> {
    match deaggregate(&r.data).unwrap() {
        Unpacked::Aggregated(users) => {
            assert!(r.is_aggregated(), "{r:?}");
            assert_eq!(users.len(), r.user_records);
            users
        }
        Unpacked::Plain => {
            assert!(!r.is_aggregated());
            vec![UserRecord {
                partition_key: r.partition_key.clone(),
                explicit_hash_key: r.explicit_hash_key.clone(),
                data: r.data.clone(),
            }]
        }
    }
}

/// Deterministic pseudo-random numbers (no rand dependency in the library's tests).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound
    }
}

#[test]
fn aggregation_vectors_are_reproduced_byte_for_byte() {
    let vectors = fixture("aggregation_vectors.json");
    assert_eq!(vectors.len(), 2);
    for v in &vectors {
        let mut agg = Aggregator::new();
        let input = v["aggregator_input_user_records_in_order"]
            .as_array()
            .unwrap();
        for u in input {
            let ehk = s(u, "explicit_hash_key");
            let outcome = agg.add(
                s(u, "partition_key").unwrap(),
                ehk,
                s(u, "data").unwrap().as_bytes(),
            );
            assert_eq!(outcome, AddOutcome::Added);
        }
        let size = agg.size();
        let r = agg.finish().unwrap();
        let expected = &v["expected_aggregated_record"];
        assert_eq!(
            hex::encode(&r.data),
            s(expected, "data_hex").unwrap(),
            "{}",
            v["test"]
        );
        assert_eq!(r.size(), size);
        assert_eq!(r.user_records, input.len());
        assert_eq!(r.partition_key, s(expected, "partition_key").unwrap());
        // The vector's writer sends "" without explicit hash keys; we send the first record's
        // hash key, as the KPL does.
        let first = &input[0];
        let want_ehk = match s(first, "explicit_hash_key") {
            Some(e) => e.to_owned(),
            None => hash_key(s(first, "partition_key").unwrap()).to_string(),
        };
        assert_eq!(r.explicit_hash_key.as_deref(), Some(want_ehk.as_str()));
        assert!(agg.is_empty() && agg.finish().is_none());
    }
}

#[test]
fn real_kpl_records_deaggregate_exactly_and_reaggregate_to_the_same_bytes() {
    let vectors = fixture("deaggregation_vectors.json");
    assert_eq!(vectors.len(), 4);
    let mut aggregated = 0;
    for v in &vectors {
        let data = hex::decode(s(v, "data_hex").unwrap()).unwrap();
        let expected: Vec<UserRecord> = v["expected_user_records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| UserRecord {
                partition_key: s(u, "partitionKey").unwrap().to_owned(),
                explicit_hash_key: s(u, "explicitHashKey").map(str::to_owned),
                data: s(u, "data").unwrap().as_bytes().to_vec(),
            })
            .collect();
        match deaggregate(&data).unwrap() {
            Unpacked::Plain => {
                assert_eq!(expected.len(), 1, "{}", v["test"]);
                assert_eq!(expected[0].data, data);
            }
            Unpacked::Aggregated(users) => {
                aggregated += 1;
                assert_eq!(users, expected, "{}", v["test"]);
                // Writing the same user records gives the KPL's bytes, including the vector
                // whose records share one partition key and explicit hash key (each is in its
                // table once).
                let mut agg = Aggregator::new();
                for u in &users {
                    let outcome =
                        agg.add(&u.partition_key, u.explicit_hash_key.as_deref(), &u.data);
                    assert_eq!(outcome, AddOutcome::Added);
                }
                assert_eq!(
                    hex::encode(agg.finish().unwrap().data),
                    s(v, "data_hex").unwrap()
                );
            }
        }
    }
    assert_eq!(aggregated, 3);
}

#[test]
fn deaggregate_rejects_a_wrong_md5_or_malformed_protobuf_and_passes_plain_data() {
    let mut agg = Aggregator::new();
    assert_eq!(agg.add("k1", None, b"one"), AddOutcome::Added);
    assert_eq!(agg.add("k2", Some("17"), b"two"), AddOutcome::Added);
    let mut data = agg.finish().unwrap().data;
    assert_eq!(data[..4], MAGIC);
    let users = match deaggregate(&data).unwrap() {
        Unpacked::Aggregated(u) => u,
        other => panic!("{other:?}"),
    };
    assert_eq!(users[1].explicit_hash_key.as_deref(), Some("17"));
    assert_eq!(users[0].explicit_hash_key, None);

    let last = data.len() - 1;
    data[last] ^= 1;
    let err = deaggregate(&data).unwrap_err();
    assert!(err.message.contains("MD5"), "{}", err.message);

    // A protobuf cut in the middle, with a matching MD5: malformed.
    let body = &data[4..data.len() - 16];
    let cut = &body[..body.len() - 2];
    let forged = [&MAGIC[..], cut, &md5(cut)].concat();
    let err = deaggregate(&forged).unwrap_err();
    assert!(err.message.contains("malformed"), "{}", err.message);

    // A record pointing past the key table.
    let bad = [0x0A, 1, b'k', 0x1A, 5, 0x08, 3, 0x1A, 1, b'x'];
    let forged = [&MAGIC[..], &bad, &md5(&bad)].concat();
    let err = deaggregate(&forged).unwrap_err();
    assert!(err.message.contains("index 3"), "{}", err.message);

    assert_eq!(deaggregate(b"{\"data\":1}").unwrap(), Unpacked::Plain);
    assert_eq!(deaggregate(&MAGIC).unwrap(), Unpacked::Plain);
    assert_eq!(deaggregate(b"").unwrap(), Unpacked::Plain);
}

#[test]
fn tags_and_unknown_fields_are_skipped() {
    // Record { pk 0, data "d", tags [Tag { key "t" }] } plus an unknown varint field 9.
    let body = [
        0x0A, 1, b'k', 0x1A, 10, 0x08, 0, 0x1A, 1, b'd', 0x22, 3, 0x0A, 1, b't', 0x48, 7,
    ];
    let data = [&MAGIC[..], &body, &md5(&body)].concat();
    let want = vec![UserRecord {
        partition_key: "k".into(),
        explicit_hash_key: None,
        data: b"d".to_vec(),
    }];
    assert_eq!(deaggregate(&data).unwrap(), Unpacked::Aggregated(want));
}

#[test]
fn size_is_exact_at_every_step_across_varint_boundaries() {
    let mut rng = Lcg(7);
    let lens = [
        0, 1, 126, 127, 128, 129, 16_382, 16_383, 16_384, 16_385, 300,
    ];
    let mut agg = Aggregator::with_limit(usize::MAX);
    let mut added = Vec::new();
    for n in 0..150 {
        let pk = format!("key-{}", rng.next(if n < 80 { 30 } else { 200 }));
        let ehk = (rng.next(3) == 0).then(|| (rng.next(1000) as u128 * 1_000_000_007).to_string());
        let data = vec![b'x'; lens[rng.next(lens.len())]];
        assert_eq!(agg.add(&pk, ehk.as_deref(), &data), AddOutcome::Added);
        added.push(UserRecord {
            partition_key: pk,
            explicit_hash_key: ehk,
            data,
        });
        // Finishing a copy built the same way gives exactly the announced size.
        let mut copy = Aggregator::with_limit(usize::MAX);
        for u in &added {
            let _ = copy.add(&u.partition_key, u.explicit_hash_key.as_deref(), &u.data);
        }
        let r = copy.finish().unwrap();
        assert_eq!(r.size(), agg.size(), "after {} records", added.len());
        assert_eq!(unpack(&r), added);
    }
    let users = agg.take_user_records();
    assert_eq!(users, added);
    assert!(agg.is_empty());
}

#[test]
fn records_fill_up_to_the_limit_and_the_next_one_would_pass_it() {
    for limit in [MAX_RECORD_BYTES, 5_000, 1_000] {
        let mut rng = Lcg(limit as u64);
        let mut agg = Aggregator::with_limit(limit);
        let mut added = Vec::new();
        let mut finished = 0;
        for i in 0..20_000 {
            let pk = format!("public.t.{}", rng.next(5_000));
            let data = vec![b'a' + (i % 26) as u8; rng.next(limit / 20) + 1];
            match agg.add(&pk, None, &data) {
                AddOutcome::Added => added.push((pk, data)),
                AddOutcome::Full => {
                    let size = agg.size();
                    let r = agg.finish().unwrap();
                    assert_eq!(r.size(), size);
                    assert!(r.size() <= limit);
                    // With no limit, the refused record would have taken it past the limit.
                    let mut unbounded = Aggregator::with_limit(usize::MAX);
                    for (k, d) in added
                        .iter()
                        .chain(std::iter::once(&(pk.clone(), data.clone())))
                    {
                        let _ = unbounded.add(k, None, d);
                    }
                    assert!(unbounded.size() > limit, "{} <= {limit}", unbounded.size());
                    assert_eq!(unpack(&r).len(), added.len());
                    added.clear();
                    finished += 1;
                    assert_eq!(agg.add(&pk, None, &data), AddOutcome::Added);
                    added.push((pk, data));
                    if finished == 3 {
                        break;
                    }
                }
                AddOutcome::TooLarge { .. } => panic!("record of {} bytes", data.len()),
            }
        }
        assert_eq!(finished, 3, "limit {limit}");
    }
}

#[test]
fn a_lone_record_is_sent_plain_and_an_oversized_one_is_refused() {
    let mut agg = Aggregator::with_limit(100);
    assert_eq!(agg.add("k", Some("5"), b"hello"), AddOutcome::Added);
    let r = agg.finish().unwrap();
    let want = KinesisRecord {
        partition_key: "k".into(),
        explicit_hash_key: Some("5".into()),
        data: b"hello".to_vec(),
        user_records: 1,
    };
    assert_eq!(r, want);
    assert_eq!(deaggregate(&r.data).unwrap(), Unpacked::Plain);

    // 99 bytes plain fit; aggregated (magic, MD5, protobuf) they would not, so it goes plain
    // and nothing can join it.
    let data = [b'z'; 97];
    assert_eq!(agg.add("ab", None, &data), AddOutcome::Added);
    assert_eq!(agg.size(), 99);
    assert_eq!(agg.add("ab", None, b""), AddOutcome::Full);
    let r = agg.finish().unwrap();
    assert_eq!((r.data.as_slice(), r.user_records), (&data[..], 1));

    assert_eq!(
        agg.add("abcd", None, &data),
        AddOutcome::TooLarge { size: 101 }
    );
    assert!(agg.is_empty());
}

#[test]
fn hash_keys_are_the_big_endian_md5_of_the_partition_key() {
    // md5("") = d41d8cd98f00b204e9800998ecf8427e, read as one big-endian number.
    assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
    assert_eq!(
        hash_key("a"),
        u128::from_str_radix("0cc175b9c0f1b6a831c399e269772661", 16).unwrap()
    );
    assert_eq!(parse_hash_key("0"), Some(0));
    assert_eq!(
        parse_hash_key("340282366920938463463374607431768211455"),
        Some(u128::MAX)
    );
    for bad in [
        "340282366920938463463374607431768211456",
        "",
        "+1",
        "01",
        " 1",
        "-1",
        "1e3",
    ] {
        assert_eq!(parse_hash_key(bad), None, "{bad:?}");
    }
    assert_eq!(effective_hash_key("a", Some("12")), Some(12));
    assert_eq!(effective_hash_key("a", None), Some(hash_key("a")));
}

#[test]
fn partition_keys_over_256_bytes_are_hashed() {
    let k256 = "k".repeat(256);
    assert!(matches!(fit_partition_key(&k256), std::borrow::Cow::Borrowed(k) if k == k256));
    let k257 = "k".repeat(257);
    let fitted = fit_partition_key(&k257);
    assert_eq!(fitted, hex::encode(md5(k257.as_bytes())));
    assert_eq!(fitted.len(), 32);
    // Bytes count, not characters: 129 two-byte characters are 258 bytes.
    assert_eq!(fit_partition_key(&"é".repeat(128)), "é".repeat(128));
    assert_eq!(fit_partition_key(&"é".repeat(129)).len(), 32);
    assert_ne!(fit_partition_key(&"k".repeat(300)), fitted);
}

/// The hash key ranges CreateStream gives `n` shards: equal parts, the last one to the end.
fn even_shards(n: u128) -> Vec<ShardInfo> {
    let step = u128::MAX / n + 1;
    (0..n)
        .map(|i| ShardInfo {
            shard_id: format!("shardId-{i:012}"),
            starting_hash_key: (i * step).to_string(),
            ending_hash_key: if i == n - 1 {
                u128::MAX
            } else {
                (i + 1) * step - 1
            }
            .to_string(),
            open: true,
        })
        .collect()
}

#[test]
fn shard_map_finds_the_shard_whose_range_holds_the_key() {
    let infos = even_shards(4);
    let map = ShardMap::new(infos.clone()).unwrap();
    assert_eq!(map.shard_ids().count(), 4);
    let mut seen = HashMap::new();
    for i in 0..2_000 {
        let key = format!("public.orders.{i}");
        let h = hash_key(&key);
        let shard = map.shard_for(&key);
        let (start, end) = map.range_of(shard).unwrap();
        assert!(start <= h && h <= end);
        *seen.entry(shard.to_owned()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(map.shard_for_hash(0), "shardId-000000000000");
    assert_eq!(map.shard_for_hash(u128::MAX), "shardId-000000000003");
    assert_eq!(map.shard_for_hash(u128::MAX / 4), "shardId-000000000000");
    assert_eq!(
        map.shard_for_hash(u128::MAX / 4 + 1),
        "shardId-000000000001"
    );

    // A closed parent and its two open children, listed in any order.
    let mut split = even_shards(2);
    split[1].open = false;
    let mid = u128::MAX / 4 * 3;
    split.push(ShardInfo {
        shard_id: "shardId-000000000003".into(),
        starting_hash_key: (mid + 1).to_string(),
        ending_hash_key: u128::MAX.to_string(),
        open: true,
    });
    split.push(ShardInfo {
        shard_id: "shardId-000000000002".into(),
        starting_hash_key: (u128::MAX / 2 + 1).to_string(),
        ending_hash_key: mid.to_string(),
        open: true,
    });
    let map = ShardMap::new(split).unwrap();
    assert_eq!(
        map.shard_ids().collect::<Vec<_>>(),
        [
            "shardId-000000000000",
            "shardId-000000000002",
            "shardId-000000000003"
        ]
    );
    assert_eq!(map.shard_for_hash(mid), "shardId-000000000002");
    assert_eq!(map.shard_for_hash(mid + 1), "shardId-000000000003");

    // Gaps, overlaps and bad numbers are refused.
    let mut gap = infos.clone();
    gap.remove(2);
    assert!(ShardMap::new(gap)
        .unwrap_err()
        .message
        .contains("starts at hash key"));
    let mut overlap = infos.clone();
    overlap[1].starting_hash_key = "5".into();
    assert!(ShardMap::new(overlap).is_err());
    let mut short = infos.clone();
    short[3].ending_hash_key = (u128::MAX - 1).to_string();
    assert!(ShardMap::new(short)
        .unwrap_err()
        .message
        .contains("no open shard holds"));
    let mut bad = infos;
    bad[0].ending_hash_key = "x".into();
    assert!(ShardMap::new(bad)
        .unwrap_err()
        .message
        .contains("not a 128-bit"));
    assert!(ShardMap::new(Vec::new()).is_err());
}

/// Every Kinesis record is routed (by its explicit hash key, else its partition key) to the
/// shard it was planned for, and every user record in it maps to that same shard under `map`.
fn check_shards(map: &ShardMap, out: &[ShardRecord]) {
    for sr in out {
        let r = &sr.record;
        assert!(r.size() <= MAX_RECORD_BYTES);
        let routed = effective_hash_key(&r.partition_key, r.explicit_hash_key.as_deref()).unwrap();
        assert_eq!(map.shard_for_hash(routed), sr.shard_id);
        for u in unpack(r) {
            let own = effective_hash_key(&u.partition_key, u.explicit_hash_key.as_deref()).unwrap();
            assert_eq!(
                map.shard_for_hash(own),
                sr.shard_id,
                "user record {u:?} in an aggregate of {}",
                sr.shard_id
            );
        }
    }
}

/// Every user record of `input` is in exactly one of the Kinesis records `out` (taken in
/// order), and per key in the order of `input`.
fn check_complete_and_ordered(input: &[UserRecord], out: &[ShardRecord]) {
    let mut got: HashMap<String, Vec<UserRecord>> = HashMap::new();
    for sr in out {
        for u in unpack(&sr.record) {
            got.entry(u.partition_key.clone()).or_default().push(u);
        }
    }
    let mut want: HashMap<String, Vec<UserRecord>> = HashMap::new();
    for u in input {
        want.entry(u.partition_key.clone())
            .or_default()
            .push(u.clone());
    }
    assert_eq!(got.len(), want.len());
    for (key, w) in want {
        assert!(
            got[&key] == w,
            "user records of key {key} missing, doubled or out of order"
        );
    }
}

fn workload(n: usize, keys: usize, seed: u64) -> Vec<UserRecord> {
    let mut rng = Lcg(seed);
    (0..n)
        .map(|i| {
            let k = rng.next(keys);
            // Every tenth key routes by an explicit hash key of its own.
            let ehk = k.is_multiple_of(10).then(|| {
                (k as u128)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
                    .to_string()
            });
            UserRecord {
                partition_key: format!("public.orders.{k}"),
                explicit_hash_key: ehk,
                data: format!("change {i} of key {k} {}", "p".repeat(rng.next(400))).into_bytes(),
            }
        })
        .collect()
}

#[test]
fn a_four_shard_stream_gets_each_user_record_on_the_shard_of_its_own_key() {
    let map = ShardMap::new(even_shards(4)).unwrap();
    let input = workload(20_000, 3_000, 42);
    let mut agg = ShardAggregator::with_limit(map.clone(), 64 * 1024);
    let mut out = Vec::new();
    for u in &input {
        out.extend(
            agg.add(&u.partition_key, u.explicit_hash_key.as_deref(), &u.data)
                .unwrap(),
        );
    }
    assert!(agg.pending_user_records() > 0);
    out.extend(agg.finish_all());
    assert_eq!(agg.pending_user_records(), 0);
    assert!(out.len() > 40, "{} records", out.len());
    assert!(out.iter().all(|r| r.record.is_aggregated()));
    let shards: std::collections::HashSet<_> = out.iter().map(|r| r.shard_id.as_str()).collect();
    assert_eq!(shards.len(), 4);
    check_shards(&map, &out);
    check_complete_and_ordered(&input, &out);

    assert_eq!(
        agg.add("k", Some("x1"), b"d"),
        Err(Rejected::InvalidExplicitHashKey("x1".into()))
    );
    assert!(matches!(
        agg.add("k", None, &vec![0; 64 * 1024]),
        Err(Rejected::TooLarge { .. })
    ));
}

#[test]
fn a_new_shard_map_replans_the_waiting_records() {
    let before = ShardMap::new(even_shards(2)).unwrap();
    let after = ShardMap::new(even_shards(4)).unwrap();
    let input = workload(3_000, 500, 9);
    let (first, second) = input.split_at(1_000);
    let mut agg = ShardAggregator::with_limit(before.clone(), 32 * 1024);
    let mut out_before = Vec::new();
    for u in first {
        out_before.extend(
            agg.add(&u.partition_key, u.explicit_hash_key.as_deref(), &u.data)
                .unwrap(),
        );
    }
    let sent: usize = out_before.iter().map(|r| r.record.user_records).sum();
    let waiting = agg.pending_user_records();
    assert_eq!(sent + waiting, first.len());
    assert!(waiting > 0);
    let mut out_after = agg.replace_map(after.clone());
    for u in second {
        out_after.extend(
            agg.add(&u.partition_key, u.explicit_hash_key.as_deref(), &u.data)
                .unwrap(),
        );
    }
    out_after.extend(agg.finish_all());
    // What was sent before went by the old map; everything after, the waiting records
    // included, by the new one; together complete and in order per key.
    check_shards(&before, &out_before);
    check_shards(&after, &out_after);
    check_complete_and_ordered(&input, &[out_before, out_after].concat());
}
