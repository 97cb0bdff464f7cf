//! The full load into a Kinesis sink (issue 8 step 1): every loaded row reaches a 4-shard
//! stream as a DMS `load` record, before any change of its key, also when the load is
//! killed halfway and resumed; with a Parquet sink beside it, and alone with `[state]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use pgcdc::model::{Lsn, RowOp};
use serde_json::Value;

use crate::kinesis::{assert_same, config, config_with, data_records, expected, new_stream, read_stream, read_stream_kcl, setup_tables, workload, Read};
use crate::s3::pgcdc_s3;
use crate::support::{describe, moto, write_config, Setup};

/// Turns the cdc config `cfg` into a full-load-and-cdc one with small chunks and two workers.
fn as_full_load(cfg: &Path) {
    let toml = std::fs::read_to_string(cfg).unwrap();
    let toml = toml.replace("mode = \"cdc\"", "mode = \"full-load-and-cdc\"\nload_workers = 2\nload_chunk_size = \"32KiB\"");
    std::fs::write(cfg, toml).unwrap();
}

/// Rows present before the first run: several chunks of `acct`, and TOASTed `notes`.
async fn before_the_load(s: &Setup) {
    s.db.exec(
        "INSERT INTO acct SELECT g, 'loaded ' || g, g FROM generate_series(100000, 109999) g;
         INSERT INTO notes SELECT 'pre-' || g, repeat(md5(g::text), 200), NULL FROM generate_series(1, 50) g",
    )
    .await;
}

/// `(table, partition key)` of every `load` record, each once, and how many were sent twice.
fn load_records(read: &[Read]) -> (BTreeSet<(String, String)>, usize) {
    let mut out = BTreeSet::new();
    let mut twice = 0;
    for r in read.iter().filter(|r| r.json["metadata"]["operation"] == "load") {
        let m = &r.json["metadata"];
        assert!(m.get("stream-position").is_none() && m.get("transaction-id").is_none(), "DMS writes no transaction on load records: {}", r.json);
        assert_eq!(m["record-type"], "data");
        let table = format!("{}.{}", m["schema-name"].as_str().unwrap(), m["table-name"].as_str().unwrap());
        if !out.insert((table, r.key.clone())) {
            twice += 1;
        }
    }
    (out, twice)
}

/// `(table, partition key)` of every row the Parquet sink holds from the load.
fn loaded_rows(s: &Setup, tables: &[&str]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for t in tables {
        let key_column = if *t == "acct" { "id" } else { "k" };
        for r in s.change_rows("public", t).into_iter().filter(|r| r.op == RowOp::Load) {
            let key = r.values[key_column].as_ref().expect("a key");
            out.insert((format!("public.{t}"), format!("public.{t}.{key}")));
        }
    }
    out
}

/// Per partition key, in shard order: its `load` records come before any change of it.
fn assert_load_first(read: &[Read]) {
    let mut changed: BTreeMap<&str, bool> = BTreeMap::new();
    let mut shards = BTreeMap::new();
    for r in read.iter().filter(|r| r.json["metadata"]["record-type"] == "data") {
        let shard = shards.entry(r.key.as_str()).or_insert(r.shard.as_str());
        assert_eq!(*shard, r.shard, "key {} on two shards", r.key);
        if r.json["metadata"]["operation"] == "load" {
            assert!(!changed.get(r.key.as_str()).copied().unwrap_or(false), "key {}: a load record after a change of it", r.key);
        } else {
            changed.insert(r.key.as_str(), true);
        }
    }
}

/// The CDC records, without the load's.
fn changes_only(read: Vec<Read>) -> Vec<Read> {
    read.into_iter().filter(|r| r.json["metadata"]["operation"] != "load").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_resumed_full_load_reaches_the_stream_as_load_records_before_each_keys_changes() {
    let s = setup_tables("kinesis_load").await;
    before_the_load(&s).await;
    let stream = new_stream();
    let cfg = config(&s, &stream, &moto().endpoint_url(), 1);
    as_full_load(&cfg);
    // Killed after the second chunk is done but before that is recorded.
    let mut cmd = crate::support::pgcdc();
    moto().aws_env(&mut cmd);
    cmd.args(["run", "--until-lsn", "current", "-c"]).arg(&cfg).env("PGCDC_FAILPOINTS", "load-chunk-done@2");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(9), "killed inside the load: {}", describe(&out));
    }
    let sent_before_resume = load_records(&read_stream(&stream)).0.len();
    assert!(sent_before_resume > 0, "the first chunks' records were sent before the kill");
    // Changes while no run is up: the resumed load or the CDC after it carries them.
    s.db.exec("UPDATE acct SET n = -1 WHERE id % 1000 = 0; DELETE FROM acct WHERE id % 1000 = 1").await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "resume: {}", describe(&out));
    workload(&s, 0).await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "cdc: {}", describe(&out));

    let read = read_stream(&stream);
    assert_load_first(&read);
    let (loaded, _resent) = load_records(&read);
    let want = loaded_rows(&s, &["acct", "notes"]);
    assert!(want.len() >= 10_000, "{}", want.len());
    let missing: Vec<_> = want.difference(&loaded).collect();
    assert!(missing.is_empty(), "a load record for every row the load copied into the Parquet sink: {} missing, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
    // The killed attempt sent records of a chunk it never recorded as done; the resumed
    // load copied that chunk again in a newer snapshot, without the rows deleted meanwhile.
    // Those rows' load records stay in the stream, and the CDC from the slot's point
    // deletes them after (a consumer applying by key converges).
    let deleted: BTreeSet<&str> = read.iter().filter(|r| r.json["metadata"]["operation"] == "delete").map(|r| r.key.as_str()).collect();
    let extra: Vec<_> = loaded.difference(&want).collect();
    assert!(extra.iter().all(|(_, k)| deleted.contains(k.as_str())), "load records of rows neither loaded nor deleted later: {extra:?}");
    // A load record carries the row: the TOASTed body arrives whole.
    let note = read.iter().find(|r| r.key == "public.notes.pre-7").expect("notes row pre-7");
    assert_eq!(note.json["data"]["body"].as_str().unwrap().len(), 32 * 200);
    let (got, twice) = data_records(&changes_only(read));
    assert_eq!(twice, 0);
    assert_same(&got, &expected(&s, &["acct", "notes"]), "the changes after the load, exactly");
}

/// The same with `aggregation = "kpl"`: the load's records and the changes after them are
/// packed into per-shard aggregates, and a consumer that reads like the KCL gets every row
/// and change, load records first per key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kpl_aggregation_a_kcl_consumer_gets_the_load_then_the_changes() {
    let s = setup_tables("kinesis_load_kpl").await;
    before_the_load(&s).await;
    let stream = new_stream();
    let cfg = config_with(&s, &stream, &moto().endpoint_url(), 1, "aggregation = \"kpl\"\n");
    as_full_load(&cfg);
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    workload(&s, 0).await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));

    let kcl = read_stream_kcl(&stream);
    assert_eq!(kcl.dropped, 0, "no aggregate mixes shards");
    assert!(kcl.kinesis_records * 20 < kcl.user_records, "aggregated: {} Kinesis records for {} user records", kcl.kinesis_records, kcl.user_records);
    assert_load_first(&kcl.records);
    let (loaded, twice) = load_records(&kcl.records);
    assert_eq!((loaded, twice), (loaded_rows(&s, &["acct", "notes"]), 0), "every loaded row once");
    let (got, twice) = data_records(&changes_only(kcl.records));
    assert_eq!(twice, 0);
    assert_same(&got, &expected(&s, &["acct", "notes"]), "the changes after the load, exactly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_alone_with_a_state_store_loads_then_streams() {
    let s = setup_tables("kinesis_load_only").await;
    before_the_load(&s).await;
    let state = s.dir.path().join("state");
    let toml = |stream: &str| {
        format!(
            "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\n\n[pipeline]\nmode = \"full-load-and-cdc\"\nstatus_interval = \"1s\"\n\n\
             [aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n\n\
             [[sink]]\nkind = \"kinesis\"\nstream = \"{stream}\"\nmax_in_flight = 1\n\n[state]\nurl = \"file://{}\"\n",
            s.db.url,
            s.publication,
            s.slot,
            moto().endpoint_url(),
            state.display()
        )
    };
    // A stream that does not exist: one clear error before any slot is created.
    let cfg = write_config(s.dir.path(), &toml("pgcdc-no-such-stream"));
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("pgcdc-no-such-stream") && err.contains("create the stream"), "{}", describe(&out));
    assert!(s.db.slot_confirmed_lsn(&s.slot).await.is_none(), "no slot left behind");

    let stream = new_stream();
    let cfg = write_config(s.dir.path(), &toml(&stream));
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    // One transaction bigger than what the sink encodes and hands over at once (8192 rows,
    // 4 MiB): its records go out before its end, memory stays bounded.
    s.db.exec(
        "UPDATE acct SET n = -1 WHERE id % 1000 = 0; DELETE FROM acct WHERE id % 1000 = 1;
         INSERT INTO acct SELECT g, repeat('w', 300), 0 FROM generate_series(200000, 219999) g",
    )
    .await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));

    let read = read_stream(&stream);
    assert_load_first(&read);
    let (loaded, twice) = load_records(&read);
    assert_eq!((loaded.len(), twice), (10_050, 0), "every row once");
    let changes = changes_only(read);
    let (got, twice) = data_records(&changes);
    assert_eq!(twice, 0);
    let count = |op: &str| got.iter().filter(|(_, o, _)| o == op).count();
    assert_eq!((count("insert"), count("update"), count("delete")), (20_000, 10, 10));
    // The load handed CDC over at the slot's point, stored in the state store, and the slot
    // followed the stream's acknowledgements.
    let stored: Value = serde_json::from_slice(&std::fs::read(state.join(format!("_pgcdc/sinks/kinesis-{stream}.json"))).unwrap()).unwrap();
    let acked: Lsn = stored["end_lsn"].as_str().unwrap().parse().unwrap();
    let confirmed: Lsn = s.db.slot_confirmed_lsn(&s.slot).await.unwrap().parse().unwrap();
    assert!(confirmed > Lsn::ZERO && confirmed <= acked, "slot confirmed {confirmed}, stream acknowledged {acked}");
    let load: Value = serde_json::from_slice(&std::fs::read(state.join("_pgcdc/load.json")).unwrap()).unwrap();
    assert_eq!(load["complete"], true, "{load}");
}
