//! Several Parquet sinks in every mode (issue 7 step 7): the full load, its resumption after
//! a kill, CDC and reloads write into each sink, native and DMS layout side by side, and
//! each sink on its own equals the source.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{assert_success, read_parquet_glob_with_python, stderr, write_config, Setup};

/// full-load-and-cdc into three local sinks: `out` (native, holds progress), `out2`
/// (native) and `out3` (DMS layout).
fn three_sinks(s: &Setup) -> (PathBuf, PathBuf, PathBuf) {
    let (out2, out3) = (s.dir.path().join("out2"), s.dir.path().join("out3"));
    let toml = format!(
        "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\n\n\
         [pipeline]\nmode = \"full-load-and-cdc\"\nstatus_interval = \"1s\"\nload_workers = 2\nload_chunk_size = \"128KiB\"\n\n\
         [[sink]]\nkind = \"parquet\"\nurl = \"{}\"\nflush_interval = \"1s\"\n\n\
         [[sink]]\nkind = \"parquet\"\nurl = \"{}\"\nflush_interval = \"1s\"\n\n\
         [[sink]]\nkind = \"parquet\"\nurl = \"{}\"\nflush_interval = \"1s\"\nlayout = \"dms\"\n",
        s.db.url,
        s.publication,
        s.slot,
        s.out().display(),
        out2.display(),
        out3.display()
    );
    (write_config(s.dir.path(), &toml), out2, out3)
}

/// The DMS-layout table in `dir`, materialised the way a DMS consumer does: the `LOAD`
/// files' rows upserted by `id`, then the CDC files in name (commit-time) order applied by
/// `id`. (A load resumed in a second snapshot may hold a key in two `LOAD` files, an older
/// and a newer version; the CDC changes between the two snapshots follow, so upserts
/// converge, as they must for DMS's own overlap of full load and cached changes.)
fn materialise_dms(dir: &Path, table: &str) -> BTreeMap<i64, Value> {
    let mut rows = BTreeMap::new();
    let read = |glob: &str| -> Vec<Value> {
        let v = read_parquet_glob_with_python(dir, glob);
        v["tables"].as_object().unwrap().values().flat_map(|t| t["rows"].as_array().unwrap().clone()).collect()
    };
    for r in read(&format!("public/{table}/LOAD*.parquet")) {
        rows.insert(r["id"].as_i64().unwrap(), r["v"].clone());
    }
    for r in read(&format!("public/{table}/2*.parquet")) {
        let id = r["id"].as_i64().unwrap();
        match r["Op"].as_str().unwrap() {
            "I" | "U" => rows.insert(id, r["v"].clone()),
            "D" => rows.remove(&id),
            op => panic!("unexpected Op {op}"),
        };
    }
    rows
}

async fn source_rows(s: &Setup, table: &str) -> BTreeMap<i64, Value> {
    s.db.query_strings(&format!("SELECT id::text, v FROM {table}"))
        .await
        .into_iter()
        .map(|r| (r[0].as_ref().unwrap().parse().unwrap(), r[1].clone().map_or(Value::Null, Value::String)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_parquet_sink_gets_the_load_its_resumption_cdc_and_reloads() {
    let s = Setup::new("multi_sink").await;
    s.db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         INSERT INTO a SELECT g, repeat('a', 100) FROM generate_series(1, 40000) g;
         CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO b SELECT g, repeat('b', 100) FROM generate_series(1, 40000) g;",
    )
    .await;
    s.db.create_publication(&s.publication, "a, b").await;
    let (cfg, out2, out3) = three_sinks(&s);

    // Killed after a few chunks: some are published in every sink, the rest in none or some.
    let mut cmd = crate::support::pgcdc();
    cmd.args(["run", "--until-lsn", "current", "-c"]).arg(&cfg).env("PGCDC_FAILPOINTS", "load-chunk-done@4");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.signal(), Some(9), "killed in the middle of the load: {}", stderr(&out));
    assert!(!out2.join("_pgcdc/load.json").exists(), "progress lives in the first sink only");

    // The source changes while pgcdc is down; the resumed load and CDC reach every sink.
    s.db.exec("UPDATE a SET v = 'changed' WHERE id % 10 = 0; DELETE FROM b WHERE id % 3 = 0; INSERT INTO b VALUES (100000, 'late')").await;
    let out = s.run_until_current(&cfg).await;
    assert!(stderr(&out).contains("resuming the full load"), "{}", stderr(&out));
    s.db.exec("UPDATE a SET v = 'cdc' WHERE id < 100; DELETE FROM a WHERE id BETWEEN 100 AND 120; INSERT INTO b VALUES (100001, NULL)").await;
    s.run_until_current(&cfg).await;
    // A reload of b: into both native sinks; the DMS sink, where b has LOAD files, only
    // follows it (as DMS would).
    s.db.exec("UPDATE b SET v = 'before reload' WHERE id = 1").await;
    let out = s.pgcdc(&cfg, &["run", "--until-lsn", "current", "--reload", "public.b"]).await;
    assert_success(&out, "pgcdc run --reload public.b");
    assert!(stderr(&out).contains("does not reload a loaded table"), "{}", stderr(&out));
    s.db.exec("UPDATE b SET v = 'after reload' WHERE id = 2").await;
    s.run_until_current(&cfg).await;

    for table in ["a", "b"] {
        s.assert_matches_source("public", table).await;
        // The second native sink, on its own.
        let c = pgcdc::validate::current::compare_current(
            &s.db.client().await,
            &catalog_schema(&s, table).await,
            &pgcdc::sink::parquet::naming::table_dir(&out2, "public", table),
            None,
        )
        .await
        .unwrap();
        assert!(c.duplicates.is_empty(), "{table} in out2: duplicated (_lsn, _seq)");
        assert!(c.diff.is_clean(), "{table} in out2 differs from the source: {:#?}", c.diff);
        assert_eq!(materialise_dms(&out3, table), source_rows(&s, table).await, "{table} in the DMS sink");
    }
    // Both native sinks hold the reload of b (its reset row `T`).
    for dir in [s.out(), out2.clone()] {
        let (rows, _, _) = pgcdc::validate::materialize::read_table_rows(&pgcdc::sink::parquet::naming::table_dir(&dir, "public", "b")).unwrap();
        assert!(rows.iter().any(|r| r.op == pgcdc::model::RowOp::Truncate), "{} has b's reload", dir.display());
    }
    assert_success(&s.pgcdc(&cfg, &["validate", "--timeout", "60s"]).await, "pgcdc validate (first sink)");
    let out = s.pgcdc(&cfg, &["validate", "--timeout", "60s", "--sink", "2", "--format", "json"]).await;
    assert_success(&out, "pgcdc validate --sink 2");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["target"].as_str().unwrap().contains("out2"), "{report}");
    for (n, why) in [("3", "layout = \"dms\""), ("4", "has 3 [[sink]] entries"), ("0", "has 3 [[sink]] entries")] {
        let out = s.pgcdc(&cfg, &["validate", "--sink", n]).await;
        assert_eq!(out.status.code(), Some(2), "--sink {n}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "--sink {n}: {}", stderr(&out));
    }
}

async fn catalog_schema(s: &Setup, table: &str) -> std::sync::Arc<pgcdc::model::TableSchema> {
    let catalog = pgcdc::source::catalog::Catalog::new(s.db.client().await);
    catalog.table_schema("public", table).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_load_refuses_a_second_sink_that_holds_another_runs_output() {
    let s = Setup::new("multi_sink_used").await;
    s.db.exec("CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a VALUES (1, 'x')").await;
    s.db.create_publication(&s.publication, "a").await;
    let (cfg, out2, _) = three_sinks(&s);
    // out2 already holds progress of some other run.
    std::fs::create_dir_all(out2.join("_pgcdc")).unwrap();
    std::fs::write(out2.join("_pgcdc/checkpoint.json"), br#"{"end_lsn":"0/1000","commit_lsn":"0/1000","counts":{},"written_at":"2026-01-01T00:00:00Z"}"#).unwrap();
    let out = s.pgcdc(&cfg, &["run", "--until-lsn", "current"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("already holds the output of another run") && err.contains("out2"), "{err}");
    assert!(!s.out().join("public").exists(), "nothing was loaded into the first sink");
}
