//! The Kinesis sink (issue 8) against a 4-shard stream on moto, read back by boto3 from every
//! shard: every change of a mixed workload arrives, per partition key in commit order, also
//! when the stream rejects part of the entries of PutRecords calls, throttles whole calls
//! and drops connections (the fault proxy), and across a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use pgcdc::model::{Lsn, RowOp};
use pgcdc::sink::kinesis::dms_json::{parse_stream_position, stream_position};
use serde_json::Value;

use crate::kinesis_kpl::kinesis_script;
use crate::s3::pgcdc_s3;
use crate::s3_faults::{start_proxy, write_plan};
use crate::support::{describe, moto, unique_suffix, write_config, Setup};

/// A cdc config with a local Parquet sink (which holds progress) and a Kinesis sink on
/// `stream`, reaching AWS at `endpoint`.
pub(crate) fn config(s: &Setup, stream: &str, endpoint: &str, in_flight: usize) -> PathBuf {
    config_with(s, stream, endpoint, in_flight, "")
}

/// [`config`] with `extra` lines in the Kinesis sink's table (`aggregation = "kpl"`).
pub(crate) fn config_with(s: &Setup, stream: &str, endpoint: &str, in_flight: usize, extra: &str) -> PathBuf {
    write_config(
        s.dir.path(),
        &format!(
            "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\n\n[pipeline]\nmode = \"cdc\"\nstatus_interval = \"1s\"\n\n\
             [aws]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n\n\
             [[sink]]\nkind = \"parquet\"\nurl = \"{}\"\nflush_interval = \"1s\"\n\n\
             [[sink]]\nkind = \"kinesis\"\nstream = \"{stream}\"\nmax_in_flight = {in_flight}\n{extra}",
            s.db.url,
            s.publication,
            s.slot,
            s.out().display()
        ),
    )
}

pub(crate) fn new_stream() -> String {
    let stream = format!("pgcdc-{}", unique_suffix());
    let listed = kinesis_script(&[OsStr::new("create-stream"), OsStr::new(&stream), OsStr::new("4")]);
    assert_eq!(listed["shards"].as_array().unwrap().len(), 4);
    stream
}

/// One record read back: its shard, partition key and JSON.
pub(crate) struct Read {
    pub shard: String,
    pub key: String,
    pub json: Value,
}

pub(crate) fn read_stream(stream: &str) -> Vec<Read> {
    let v = kinesis_script(&[OsStr::new("read"), OsStr::new(stream)]);
    let mut out = Vec::new();
    for (shard, records) in v["shards"].as_object().unwrap() {
        for r in records.as_array().unwrap() {
            let data = hex_decode(r["data_hex"].as_str().unwrap());
            out.push(Read {
                shard: shard.clone(),
                key: r["partition_key"].as_str().unwrap().to_string(),
                json: serde_json::from_slice(&data).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&data))),
            });
        }
    }
    out
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// `(table, operation, stream-position)` of every data record, and checks on the way that a
/// key's records sit on one shard in commit order (by `stream-position`). Returns them with
/// the number of records seen twice (same table and position).
pub(crate) fn data_records(read: &[Read]) -> (BTreeSet<(String, String, String)>, usize) {
    // Per partition key: (shard, stream position) of each record, in shard order.
    type Placed<'a> = Vec<(&'a str, (Lsn, i64))>;
    let mut per_key: BTreeMap<&str, Placed> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut twice = 0;
    for r in read.iter().filter(|r| r.json["metadata"]["record-type"] == "data") {
        let m = &r.json["metadata"];
        let pos = m["stream-position"].as_str().unwrap_or_else(|| panic!("no stream-position: {}", r.json));
        let parsed = parse_stream_position(pos).unwrap_or_else(|| panic!("bad stream-position {pos}"));
        per_key.entry(r.key.as_str()).or_default().push((r.shard.as_str(), parsed));
        let table = format!("{}.{}", m["schema-name"].as_str().unwrap(), m["table-name"].as_str().unwrap());
        if !seen.insert((table, m["operation"].as_str().unwrap().to_string(), pos.to_string())) {
            twice += 1;
        }
    }
    for (key, recs) in &per_key {
        let shards: BTreeSet<_> = recs.iter().map(|(s, _)| *s).collect();
        assert_eq!(shards.len(), 1, "key {key} is on several shards: {shards:?}");
        let positions: Vec<_> = recs.iter().map(|(_, p)| *p).collect();
        let mut sorted = positions.clone();
        sorted.sort();
        sorted.dedup();
        let mut deduped = positions.clone();
        deduped.dedup();
        assert_eq!(deduped, sorted, "key {key}: records out of commit order: {positions:?}");
    }
    (seen, twice)
}

/// What the Parquet sink holds for `tables` as `(table, operation, stream-position)`: the
/// changes the stream must carry.
pub(crate) fn expected(s: &Setup, tables: &[&str]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for t in tables {
        for r in s.change_rows("public", t) {
            let op = match r.op {
                RowOp::Insert => "insert",
                RowOp::Update => "update",
                RowOp::Delete => "delete",
                _ => continue,
            };
            out.insert((format!("public.{t}"), op.to_string(), stream_position(Lsn(r.lsn as u64), r.seq)));
        }
    }
    out
}

/// Asserts two sets of records are equal, showing a few of the differences.
pub(crate) fn assert_same(got: &BTreeSet<(String, String, String)>, want: &BTreeSet<(String, String, String)>, what: &str) {
    let missing: Vec<_> = want.difference(got).take(8).collect();
    let extra: Vec<_> = got.difference(want).take(8).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} missing, e.g. {missing:?}; {} extra, e.g. {extra:?}",
        want.difference(got).count(),
        got.difference(want).count()
    );
}

pub(crate) async fn workload(s: &Setup, round: i32) {
    let base = round * 10_000;
    for i in 0..20 {
        s.db.exec(&format!(
            "INSERT INTO acct SELECT g, 'v' || g, g FROM generate_series({0} + {i} * 10, {0} + {i} * 10 + 9) g;
             UPDATE acct SET n = n + 1 WHERE id % 7 = {1} AND id >= {0};
             INSERT INTO notes SELECT 'note-{round}-{i}', string_agg(md5(g::text || random()::text), '') FROM generate_series(1, 300) g;",
            base,
            i % 7
        ))
        .await;
    }
    s.db.exec(&format!(
        "UPDATE acct SET id = id + 5000 WHERE id = {base} + 5;
         DELETE FROM acct WHERE id % 5 = 0 AND id >= {base};
         UPDATE notes SET tag = 't{round}' WHERE k LIKE 'note-{round}-%';
         INSERT INTO acct SELECT g, 'big', 0 FROM generate_series({base} + 6000, {base} + 8999) g"
    ))
    .await;
    // Its own statement: inside the batch above, ROLLBACK would undo the batch too.
    s.db.exec(&format!("BEGIN; INSERT INTO acct VALUES ({base} + 9999, 'rolled back', 0); ROLLBACK")).await;
}

pub(crate) async fn setup_tables(hint: &str) -> Setup {
    let s = Setup::new(hint).await;
    s.db.exec(
        "CREATE TABLE acct (id int PRIMARY KEY, v text, n int);
         CREATE TABLE notes (k text PRIMARY KEY, body text, tag text)",
    )
    .await;
    s.db.create_publication(&s.publication, "acct, notes").await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_reaches_a_four_shard_stream_in_commit_order_per_key() {
    let s = setup_tables("kinesis_e2e").await;
    let stream = new_stream();
    let cfg = config(&s, &stream, &moto().endpoint_url(), 1);
    s.db.exec(&format!(
        "CREATE TABLE ddl (id int PRIMARY KEY, a text, mid text[], z numeric(12,2)); ALTER PUBLICATION {} ADD TABLE ddl",
        s.publication
    ))
    .await;
    assert!(pgcdc_s3(&cfg, &["setup"]).await.status.success());
    workload(&s, 0).await;
    // One transaction: a row, a column added with a default, a column in the middle
    // dropped, changes under each shape.
    s.db.exec(
        "INSERT INTO ddl VALUES (1, 'a', '{x}', 1.5); ALTER TABLE ddl ADD COLUMN extra int DEFAULT 7;
         UPDATE ddl SET a = NULL; ALTER TABLE ddl DROP COLUMN mid; DELETE FROM ddl",
    )
    .await;
    // One transaction: a column added (with a default) and another dropped.
    s.db.exec(
        "ALTER TABLE acct ADD COLUMN extra text DEFAULT 'd', ADD COLUMN tmp int; INSERT INTO acct (id, v, extra) VALUES (-1, 'x', 'new column');
         ALTER TABLE acct DROP COLUMN tmp; INSERT INTO acct (id, v) VALUES (-2, 'y')",
    )
    .await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    // A second run after more changes: nothing acknowledged is sent again.
    workload(&s, 1).await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));

    let read = read_stream(&stream);
    let (got, twice) = data_records(&read);
    assert_eq!(twice, 0, "a clean restart resends nothing");
    let want = expected(&s, &["acct", "notes", "ddl"]);
    assert!(want.len() > 6000, "{}", want.len());
    assert_same(&got, &want, "the stream carries exactly the changes the Parquet sink holds");
    // Unchanged TOAST values are left out of an update, not sent as null.
    let toast_update = read
        .iter()
        .find(|r| r.json["metadata"]["operation"] == "update" && r.json["metadata"]["table-name"] == "notes")
        .unwrap_or_else(|| {
            let mut ops: BTreeMap<String, usize> = BTreeMap::new();
            for r in &read {
                *ops.entry(format!("{} {}", r.json["metadata"]["table-name"], r.json["metadata"]["operation"])).or_default() += 1;
            }
            panic!("no update of notes: {ops:?}")
        });
    assert!(toast_update.json["data"].get("body").is_none(), "{}", toast_update.json);
    // Control records: a create-table per table and the added column.
    let controls: Vec<(String, String)> = read
        .iter()
        .filter(|r| r.json["metadata"]["record-type"] == "control")
        .map(|r| (r.json["metadata"]["operation"].as_str().unwrap().to_string(), r.json["metadata"]["table-name"].as_str().unwrap().to_string()))
        .collect();
    for want in [("create-table", "acct"), ("create-table", "notes"), ("add-column", "acct"), ("drop-column", "acct"), ("add-column", "ddl"), ("drop-column", "ddl")] {
        assert!(controls.iter().any(|(o, t)| (o.as_str(), t.as_str()) == want), "{want:?} in {controls:?}");
    }
    // Nothing was renamed or retyped.
    assert!(controls.iter().all(|(o, _)| o == "create-table" || o == "add-column" || o == "drop-column"), "{controls:?}");
    // The slot moved only as far as the stream acknowledged (stored under _pgcdc/sinks/).
    let stored: Value = serde_json::from_slice(&std::fs::read(s.out().join(format!("_pgcdc/sinks/kinesis-{stream}.json"))).unwrap()).unwrap();
    let confirmed: Lsn = s.db.slot_confirmed_lsn(&s.slot).await.unwrap().parse().unwrap();
    let acked: Lsn = stored["end_lsn"].as_str().unwrap().parse().unwrap();
    assert!(confirmed <= acked, "slot confirmed {confirmed}, stream acknowledged {acked}");
}

/// Every request the proxy logged with a fault, by fault.
fn faults(log: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(f) = v["fault"].as_str() {
            *out.entry(f.to_string()).or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_failures_throttling_and_resets_lose_and_reorder_nothing() {
    faulty_stream("kinesis_faults", false).await;
}

/// The same with KPL aggregation: a rejected aggregate is resent whole before any later
/// record of any key inside it, and a consumer that reads like the KCL gets everything in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kpl_aggregation_partial_failures_throttling_and_resets_lose_and_reorder_nothing() {
    faulty_stream("kinesis_kpl_faults", true).await;
}

async fn faulty_stream(hint: &str, kpl: bool) {
    let s = setup_tables(hint).await;
    let stream = new_stream();
    let (plan, log) = (s.dir.path().join("plan.json"), s.dir.path().join("proxy.jsonl"));
    let (_proxy, endpoint) = start_proxy(&plan, &log);
    let cfg = config_with(&s, &stream, &endpoint, 1, if kpl { "aggregation = \"kpl\"\n" } else { "" });
    assert!(pgcdc_s3(&cfg, &["setup"]).await.status.success());
    let rules = if kpl {
        // Aggregates make fewer calls, and back-off doubles with each failed call in a row:
        // the faults are spread out, and part of the aggregates of a call fail from the
        // start.
        serde_json::json!([
            {"target_contains": "PutRecords", "fault": "kinesis_partial", "fail_every": 3, "every": 3, "limit": 5},
            {"target_contains": "PutRecords", "fault": "throttle_kinesis", "every": 3, "limit": 2},
            {"target_contains": "PutRecords", "fault": "reset", "every": 3, "limit": 2},
            {"target_contains": "PutRecords", "fault": "kinesis_partial", "fail_every": 1, "error_code": "InternalFailure", "every": 3, "limit": 2}
        ])
    } else {
        // Rules are tried in order and count only the requests that reach them: the rare
        // faults first, so that each of them happens.
        serde_json::json!([
            {"target_contains": "PutRecords", "fault": "throttle_kinesis", "every": 3, "limit": 3},
            {"target_contains": "PutRecords", "fault": "reset", "every": 3, "limit": 2},
            {"target_contains": "PutRecords", "fault": "kinesis_partial", "fail_every": 1, "error_code": "InternalFailure", "every": 3, "limit": 2},
            {"target_contains": "PutRecords", "fault": "kinesis_partial", "fail_every": 3, "every": 2}
        ])
    };
    write_plan(&plan, &serde_json::json!({ "rules": rules }));
    let err = if kpl {
        // Streaming while the source changes: many flushes, so a key's records are in many
        // aggregates in a row; then a run to the end.
        let mut cmd = crate::support::pgcdc();
        moto().aws_env(&mut cmd);
        cmd.args(["run", "-c"]).arg(&cfg).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut run = crate::support::ChildGuard::spawn(&mut cmd, "pgcdc run");
        workload(&s, 0).await;
        // Small transactions over many keys, each in its own flush or two.
        for i in 0..40 {
            s.db.exec(&format!("UPDATE acct SET n = n + 1 WHERE id % 10 = {}", i % 10)).await;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        workload(&s, 1).await;
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let first = tokio::task::spawn_blocking(move || run.stop(std::time::Duration::from_secs(60))).await.unwrap();
        assert!(first.status.success(), "{}", describe(&first));
        let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
        assert!(out.status.success(), "{}", describe(&out));
        format!("{}{}", String::from_utf8_lossy(&first.stderr), String::from_utf8_lossy(&out.stderr))
    } else {
        workload(&s, 0).await;
        let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(err.contains("putting records failed") && err.contains("resending in"), "the log says what fails: {err}");
    let injected = faults(&log);
    for f in ["kinesis_partial", "throttle_kinesis", "reset"] {
        assert!(injected.get(f).copied().unwrap_or(0) > 0, "{f} was injected: {injected:?}");
    }

    let read = if kpl {
        // Some call failed for part of its aggregates and stored the others.
        let mixed = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["fault"] == "kinesis_partial" && v["failed"].as_u64() > Some(0) && v["forwarded"].as_u64() > Some(0))
            .count();
        assert!(mixed > 0, "a call failed for part of its aggregates: {injected:?}");
        let kcl = read_stream_kcl(&stream);
        assert!(kcl.kinesis_records * 4 < kcl.user_records, "aggregated: {} Kinesis records for {} user records", kcl.kinesis_records, kcl.user_records);
        kcl.records
    } else {
        read_stream(&stream)
    };
    let (got, twice) = data_records(&read);
    assert_same(&got, &expected(&s, &["acct", "notes"]), "nothing is missing");
    // A reset after the stream stored a request's records makes them arrive twice; the
    // consumer drops those by stream-position (counted here, ordered above).
    eprintln!("records delivered twice (a reset after they were stored): {twice}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_stream_is_one_clear_error_before_anything_is_read() {
    let s = setup_tables("kinesis_missing").await;
    let cfg = config(&s, "no-such-stream", &moto().endpoint_url(), 4);
    assert!(pgcdc_s3(&cfg, &["setup"]).await.status.success());
    s.db.exec("INSERT INTO acct VALUES (1, 'a', 1)").await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Kinesis stream no-such-stream") && err.contains("create the stream"), "{err}");
    assert!(!err.contains("retrying") && !err.contains("resending"), "not retried: {err}");
    assert!(s.db.slot_confirmed_lsn(&s.slot).await.is_some());
    assert!(!s.out().join("public").exists(), "nothing was written before the error");
}

/// Kinesis as the only sink: progress (the slot's position, the acknowledged one) lives in
/// `[state] url`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kinesis_only_pipeline_keeps_its_position_in_the_state_store() {
    let s = setup_tables("kinesis_only").await;
    let stream = new_stream();
    let state = s.dir.path().join("state");
    let cfg = write_config(
        s.dir.path(),
        &format!(
            "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\n\n[pipeline]\nmode = \"cdc\"\nstatus_interval = \"1s\"\n\n\
             [aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n\n\
             [[sink]]\nkind = \"kinesis\"\nstream = \"{stream}\"\n\n[state]\nurl = \"file://{}\"\n",
            s.db.url,
            s.publication,
            s.slot,
            moto().endpoint_url(),
            state.display()
        ),
    );
    assert!(pgcdc_s3(&cfg, &["setup"]).await.status.success());
    for round in 0..2 {
        for i in 0..10 {
            let id = round * 100 + i * 10;
            s.db.exec(&format!("INSERT INTO acct SELECT g, 'v', 0 FROM generate_series({id}, {id} + 9) g")).await;
        }
        s.db.exec(&format!("UPDATE acct SET n = 1 WHERE id BETWEEN {0} AND {0} + 9; DELETE FROM acct WHERE id BETWEEN {0} + 90 AND {0} + 94", round * 100)).await;
        let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
        assert!(out.status.success(), "{}", describe(&out));
    }
    let read = read_stream(&stream);
    let (got, twice) = data_records(&read);
    assert_eq!(twice, 0, "the second run resends nothing");
    let count = |op: &str| got.iter().filter(|(_, o, _)| o == op).count();
    assert_eq!((count("insert"), count("update"), count("delete")), (200, 20, 10));
    let stored: Value = serde_json::from_slice(&std::fs::read(state.join(format!("_pgcdc/sinks/kinesis-{stream}.json"))).unwrap()).unwrap();
    let acked: Lsn = stored["end_lsn"].as_str().unwrap().parse().unwrap();
    let confirmed: Lsn = s.db.slot_confirmed_lsn(&s.slot).await.unwrap().parse().unwrap();
    assert!(confirmed > Lsn::ZERO && confirmed <= acked, "slot confirmed {confirmed}, stream acknowledged {acked}");
    // SIGTERM of a run that has nothing new to send stops it at once, exit 0.
    let mut cmd = crate::support::pgcdc();
    moto().aws_env(&mut cmd);
    cmd.args(["run", "-c"]).arg(&cfg).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut run = crate::support::ChildGuard::spawn(&mut cmd, "pgcdc run");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || run.stop(std::time::Duration::from_secs(20))).await.unwrap();
    assert!(out.status.success() && started.elapsed() < std::time::Duration::from_secs(10), "SIGTERM: {} after {:?}", describe(&out), started.elapsed());
    // `status` shows the stream's acknowledged position, read from the state store.
    let out = pgcdc_s3(&cfg, &["status", "--json"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["sink_positions"][0]["sink"], format!("kinesis-{stream}"));
    assert_eq!(status["sink_positions"][0]["acknowledged_lsn"], acked.to_string());
    assert!(status["progress_store"].as_str().unwrap().contains("state"), "{status}");
}

/// What a consumer keeps: per partition key, in shard order, each record whose
/// `stream-position` is past the highest it has seen for that key (it drops a restart's
/// resends that way). Returns `(table, operation, position)` of the kept data records and
/// how many it dropped.
fn consumer_view(read: &[Read]) -> (BTreeSet<(String, String, String)>, usize) {
    let mut highest: BTreeMap<&str, (Lsn, i64)> = BTreeMap::new();
    let (mut kept, mut dropped) = (BTreeSet::new(), 0);
    for r in read.iter().filter(|r| r.json["metadata"]["record-type"] == "data") {
        let m = &r.json["metadata"];
        let pos = m["stream-position"].as_str().unwrap();
        let parsed = parse_stream_position(pos).unwrap();
        if highest.get(r.key.as_str()).is_some_and(|h| *h >= parsed) {
            dropped += 1;
            continue;
        }
        highest.insert(r.key.as_str(), parsed);
        let table = format!("{}.{}", m["schema-name"].as_str().unwrap(), m["table-name"].as_str().unwrap());
        assert!(kept.insert((table, m["operation"].as_str().unwrap().to_string(), pos.to_string())), "{pos} kept twice");
    }
    (kept, dropped)
}

/// SIGKILL while records are being sent — at a failpoint after the stream stored a request
/// but before its acknowledgement was recorded, and at a random moment — then a restart:
/// every change is in the stream, and the only duplicates are resends a consumer drops by
/// `stream-position`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_sending_loses_nothing_and_duplicates_only_droppable_resends() {
    sigkill_while_sending("kinesis_crash", false).await;
}

/// The same with KPL aggregation, read like the KCL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kpl_aggregation_sigkill_while_sending_loses_nothing_and_duplicates_only_droppable_resends() {
    sigkill_while_sending("kinesis_kpl_crash", true).await;
}

async fn sigkill_while_sending(hint: &str, kpl: bool) {
    use std::os::unix::process::ExitStatusExt;
    let s = setup_tables(hint).await;
    let stream = new_stream();
    let cfg = config_with(&s, &stream, &moto().endpoint_url(), 1, if kpl { "aggregation = \"kpl\"\n" } else { "" });
    assert!(pgcdc_s3(&cfg, &["setup"]).await.status.success());
    workload(&s, 0).await;
    let mut cmd = crate::support::pgcdc();
    moto().aws_env(&mut cmd);
    // Aggregates make few requests: with KPL, the first answered one.
    let nth = if kpl { 1 } else { 3 };
    cmd.args(["run", "--until-lsn", "current", "-c"]).arg(&cfg).env("PGCDC_FAILPOINTS", format!("kinesis-put-answered@{nth}"));
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.signal(), Some(9), "killed after answered request {nth}: {}", describe(&out));

    // A random kill of a run that streams while the source changes.
    let mut cmd = crate::support::pgcdc();
    moto().aws_env(&mut cmd);
    cmd.args(["run", "-c"]).arg(&cfg).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let guard = crate::support::ChildGuard::spawn(&mut cmd, "pgcdc run");
    workload(&s, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    drop(guard); // SIGKILL

    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let read = if kpl { read_stream_kcl(&stream).records } else { read_stream(&stream) };
    let (kept, dropped) = consumer_view(&read);
    assert_same(&kept, &expected(&s, &["acct", "notes"]), "every change, once, after dropping resends");
    assert!(dropped > 0, "the kill after a stored but unrecorded request makes the restart resend it");
}

/// What a KCL consumer of the stream gets, and how the stream carried it.
pub(crate) struct KclRead {
    /// The user records handed to the consumer, shard by shard (parents before children).
    pub records: Vec<Read>,
    /// Kinesis records read, and user records inside them (before dropping).
    pub kinesis_records: usize,
    pub user_records: usize,
    /// User records of aggregates dropped because their hash key lies outside the hash key
    /// range of the shard they were read from.
    pub dropped: usize,
}

/// Reads every shard with boto3, unpacks aggregates with `aws_kinesis_agg`, and — like the
/// KCL (awslabs/kinesis-aggregation, `potential_data_loss.md`) — drops the user records of
/// an aggregate whose hash key lies outside the shard it was read from.
pub(crate) fn read_stream_kcl(stream: &str) -> KclRead {
    use pgcdc::sink::kinesis::kpl::effective_hash_key;
    let v = kinesis_script(&[OsStr::new("read"), OsStr::new(stream)]);
    let mut out = KclRead { records: Vec::new(), kinesis_records: 0, user_records: 0, dropped: 0 };
    // Shard ids sort in creation order: parents first, as the KCL reads them.
    for (shard, records) in v["shards"].as_object().unwrap() {
        let range = &v["ranges"][shard];
        let (start, end): (u128, u128) = (range[0].as_str().unwrap().parse().unwrap(), range[1].as_str().unwrap().parse().unwrap());
        let mut sequences = BTreeSet::new();
        for r in records.as_array().unwrap() {
            sequences.insert(r["sequence_number"].as_str().unwrap().to_string());
            out.user_records += 1;
            let key = r["partition_key"].as_str().unwrap();
            if r["aggregated"].as_bool().unwrap() {
                let h = effective_hash_key(key, r["explicit_hash_key"].as_str()).unwrap();
                if !(start..=end).contains(&h) {
                    out.dropped += 1;
                    continue;
                }
            }
            let data = hex_decode(r["data_hex"].as_str().unwrap());
            out.records.push(Read {
                shard: shard.clone(),
                key: key.to_string(),
                json: serde_json::from_slice(&data).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&data))),
            });
        }
        out.kinesis_records += sequences.len();
    }
    out
}

/// `aggregation = "kpl"` on a 4-shard stream with thousands of keys: a consumer that reads
/// like the KCL gets every change once, per key in commit order, and the stream holds far
/// fewer Kinesis records than changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpl_aggregates_give_a_kcl_consumer_every_change_once_in_commit_order_per_key() {
    let s = setup_tables("kinesis_kpl").await;
    let stream = new_stream();
    let cfg = config_with(&s, &stream, &moto().endpoint_url(), 1, "aggregation = \"kpl\"\n");
    assert!(pgcdc_s3(&cfg, &["setup"]).await.status.success());
    workload(&s, 0).await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    workload(&s, 1).await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));

    let kcl = read_stream_kcl(&stream);
    let (got, twice) = data_records(&kcl.records);
    assert_eq!(twice, 0, "every change once");
    let want = expected(&s, &["acct", "notes"]);
    assert!(want.len() > 6000, "{}", want.len());
    assert_same(&got, &want, "a KCL consumer gets every change");
    let keys: BTreeSet<&str> = kcl.records.iter().map(|r| r.key.as_str()).collect();
    assert!(keys.len() > 1000, "many keys: {}", keys.len());
    assert_eq!(kcl.dropped, 0, "no aggregate mixes shards");
    assert!(
        kcl.kinesis_records * 20 < kcl.user_records,
        "aggregated: {} Kinesis records for {} user records",
        kcl.kinesis_records,
        kcl.user_records
    );
}

/// The acknowledged position goes to `[state]` on S3 at most once a second (and at the end),
/// not at every 200 ms flush: counted in the log of a proxy in front of moto while a run
/// streams small transactions for a few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acknowledged_position_is_stored_at_most_once_a_second() {
    let s = setup_tables("kinesis_ack_rate").await;
    let stream = new_stream();
    let bucket = crate::s3::new_bucket("ackrate");
    let (plan, log) = (s.dir.path().join("plan.json"), s.dir.path().join("proxy.jsonl"));
    let (_proxy, endpoint) = start_proxy(&plan, &log);
    let cfg = write_config(
        s.dir.path(),
        &format!(
            "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\n\n[pipeline]\nmode = \"cdc\"\nstatus_interval = \"1s\"\n\n\
             [aws]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n\n\
             [[sink]]\nkind = \"kinesis\"\nstream = \"{stream}\"\nmax_in_flight = 1\n\n[state]\nurl = \"s3://{bucket}/state/\"\n",
            s.db.url, s.publication, s.slot,
        ),
    );
    assert!(pgcdc_s3(&cfg, &["setup"]).await.status.success());
    let mut cmd = crate::support::pgcdc();
    moto().aws_env(&mut cmd);
    cmd.args(["run", "-c"]).arg(&cfg).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut run = crate::support::ChildGuard::spawn(&mut cmd, "pgcdc run");
    for i in 0..30 {
        s.db.exec(&format!("INSERT INTO acct VALUES ({i}, 'v', 0)")).await;
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let out = tokio::task::spawn_blocking(move || run.stop(std::time::Duration::from_secs(20))).await.unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let writes: Vec<f64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["method"] == "PUT" && v["path"].as_str().unwrap().contains("_pgcdc/sinks/kinesis-"))
        .map(|v| v["t"].as_f64().unwrap())
        .collect();
    let span = writes.last().unwrap() - writes.first().unwrap();
    assert!(writes.len() >= 3, "the position was stored while streaming: {writes:?}");
    // One a second, plus the one at the end (and a second of slack for timing).
    assert!(writes.len() as f64 <= span + 2.0, "{} writes in {span:.1}s", writes.len());
    let (got, twice) = data_records(&read_stream(&stream));
    assert_eq!((got.len(), twice), (30, 0));
}
