//! The full load (SPEC 2.6, 5.1, issue 3): a consistent snapshot, parallel chunked COPY,
//! resumption after a kill, and the hand-off to CDC, checked against the source.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use pgcdc::model::RowOp;
use crate::support::{assert_success, parquet_files, Setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_while_writers_change_the_same_rows_then_cdc_matches_the_source() {
    let s = Setup::new("load_concurrent").await;
    s.db.exec(
        "CREATE TABLE acct (id int PRIMARY KEY, owner text, balance numeric(12,2), updated timestamptz);
         INSERT INTO acct SELECT g, 'owner ' || g, g, now() FROM generate_series(1, 200000) g;
         CREATE TABLE events (id bigserial PRIMARY KEY, acct int, what text);
         INSERT INTO events (acct, what) SELECT g % 1000, 'e' || g FROM generate_series(1, 50000) g",
    )
    .await;
    s.db.create_publication(&s.publication, "acct, events").await;
    let cfg = s.config_with("full-load-and-cdc", "load_workers = 2\nload_chunk_size = \"512KiB\"");

    // Writers change the rows being copied while the load runs.
    let db = s.db.clone();
    let writer = tokio::spawn(async move {
        for i in 0..40 {
            db.exec(&format!(
                "UPDATE acct SET balance = balance + 1, updated = now() WHERE id % 40 = {i};
                 DELETE FROM acct WHERE id % 997 = {i};
                 INSERT INTO acct VALUES ({} , 'new', 0, now());
                 UPDATE acct SET id = id + 1000000 WHERE id = {};
                 INSERT INTO events (acct, what) VALUES ({i}, 'during load')",
                300000 + i,
                5000 + i
            ))
            .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut cmd = crate::support::pgcdc();
    cmd.args(["run", "-c"]).arg(&cfg).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    writer.await.unwrap();
    // Let it reach the end of the writers' work, then stop it politely.
    tokio::time::sleep(Duration::from_secs(2)).await;
    crate::support::sigterm(&child);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    eprintln!("first run:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "SIGTERM is a clean stop: {:?}", out.status);

    // Catch up on whatever is left, in CDC mode from the same target.
    let cfg_cdc = s.config_with("full-load-and-cdc", "");
    s.run_until_current(&cfg_cdc).await;
    s.assert_matches_source("public", "acct").await;
    s.assert_matches_source("public", "events").await;
    let out = s.pgcdc(&cfg_cdc, &["validate", "--timeout", "60s"]).await;
    assert_success(&out, "pgcdc validate after a load with concurrent writers");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("acct") && report.contains("events"), "{report}");
    let rows = s.change_rows("public", "acct");
    let loaded = rows.iter().filter(|r| r.op == RowOp::Load).count();
    assert!(loaded >= 199_000, "the load wrote {loaded} rows");
    let load_lsn = rows.iter().find(|r| r.op == RowOp::Load).unwrap().lsn;
    assert!(rows.iter().filter(|r| r.op != RowOp::Load).all(|r| r.lsn > load_lsn), "CDC starts after the snapshot");
    assert!(parquet_files(&s.table_dir("public", "acct").join("load")).len() > 2, "several chunks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_killed_midway_resumes_keeps_finished_chunks_and_converges() {
    let s = Setup::new("load_resume").await;
    s.db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         INSERT INTO a SELECT g, repeat('a', 100) FROM generate_series(1, 60000) g;
         CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO b SELECT g, repeat('b', 100) FROM generate_series(1, 60000) g;",
    )
    .await;
    s.db.create_publication(&s.publication, "a, b").await;
    let cfg = s.config_with("full-load-and-cdc", "load_workers = 2\nload_chunk_size = \"128KiB\"");
    let mut cmd = crate::support::pgcdc();
    cmd.args(["run", "--until-lsn", "current", "-c"]).arg(&cfg).env("PGCDC_FAILPOINTS", "load-chunk-done@5");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.signal(), Some(9), "killed in the middle of the load: {}", String::from_utf8_lossy(&out.stderr));
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(s.out().join("_pgcdc/load.json")).unwrap()).unwrap();
    assert_eq!(state["complete"], false);
    // Chunks recorded as done must be kept as they are; others are redone.
    let mut done_files = Vec::new();
    for (name, t) in state["tables"].as_object().unwrap() {
        for c in t["chunks"].as_array().unwrap() {
            if let Some(lsn) = c["done_at"].as_str() {
                let lsn: pgcdc::model::Lsn = lsn.parse().unwrap();
                let (schema, table) = name.split_once('.').unwrap();
                let f = s.table_dir(schema, table).join("load").join(format!("{}-{:05}.parquet", lsn.file_hex(), c["part"].as_u64().unwrap()));
                let modified = std::fs::metadata(&f).unwrap_or_else(|_| panic!("{} is missing", f.display())).modified().unwrap();
                done_files.push((f, modified));
            }
        }
    }
    assert!(done_files.len() >= 3, "chunks finished before the kill: {}", done_files.len());

    // The source changes while pgcdc is down; the resumed load uses a newer snapshot.
    s.db.exec("UPDATE a SET v = 'changed' WHERE id % 10 = 0; DELETE FROM b WHERE id % 3 = 0; INSERT INTO b VALUES (100000, 'late')").await;
    let out = s.run_until_current(&cfg).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming the full load"));
    for (f, modified) in &done_files {
        let now = std::fs::metadata(f).unwrap_or_else(|_| panic!("finished chunk {} was removed", f.display())).modified().unwrap();
        assert_eq!(&now, modified, "finished chunk {} was rewritten", f.display());
    }
    s.assert_matches_source("public", "a").await;
    s.assert_matches_source("public", "b").await;
    assert_success(&s.pgcdc(&cfg, &["validate", "--timeout", "60s"]).await, "pgcdc validate after a resumed load");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(s.out().join("_pgcdc/load.json")).unwrap()).unwrap();
    assert_eq!(state["complete"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_keyless_partitioned_and_quoted_tables_load() {
    let s = Setup::new("load_shapes").await;
    s.db.exec(
        r#"CREATE TABLE empty_t (id int PRIMARY KEY, v text);
           CREATE TABLE nokey (a int, b text);
           ALTER TABLE nokey REPLICA IDENTITY FULL;
           INSERT INTO nokey VALUES (1, 'x'), (1, 'x'), (2, NULL);
           CREATE TABLE parted (id int, region text, v numeric(8,2), PRIMARY KEY (id, region)) PARTITION BY LIST (region);
           CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu');
           CREATE TABLE parted_us PARTITION OF parted FOR VALUES IN ('us');
           INSERT INTO parted SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 1000) g;
           CREATE SCHEMA "Mixed Schema";
           CREATE TABLE "Mixed Schema"."Odd ""Name""" ("Id" int PRIMARY KEY, "Value Col" text, arr int[], d date, ts timestamptz, j jsonb, u uuid);
           INSERT INTO "Mixed Schema"."Odd ""Name""" VALUES (1, 'v', '{1,NULL,3}', 'infinity', '2024-01-01 00:00:00+00', '{"a": 1}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
                                                   (2, NULL, NULL, '0044-03-15 BC', NULL, NULL, NULL);"#,
    )
    .await;
    s.db.exec(&format!(
        "CREATE PUBLICATION \"{}\" FOR TABLE empty_t, nokey, parted, \"Mixed Schema\".\"Odd \"\"Name\"\"\" WITH (publish_via_partition_root = true)",
        s.publication
    ))
    .await;
    let cfg = s.config_with("full-load", "");
    let out = s.pgcdc(&cfg, &["run"]).await;
    assert_success(&out, "run --mode full-load");
    assert!(s.db.slot_names().await.is_empty(), "full-load uses a temporary slot only");

    // Empty table: one file with the schema and no rows.
    let empty = parquet_files(&s.table_dir("public", "empty_t"));
    assert_eq!(empty.len(), 1);
    assert!(s.change_rows("public", "empty_t").is_empty());
    // No key: every row, duplicates included.
    assert_eq!(s.change_rows("public", "nokey").len(), 3);
    // Partitioned with publish_via_partition_root: rows under the root.
    assert_eq!(s.change_rows("public", "parted").len(), 1000);
    s.assert_matches_source("public", "parted").await;
    s.assert_matches_source("Mixed Schema", "Odd \"Name\"").await;
}

/// Every type of SPEC 5.4 through the binary COPY path: the loaded values must equal the
/// source read through the text path (what CDC uses), cell by cell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_loads_exactly_as_cdc_reads_it() {
    let s = Setup::new("load_types").await;
    s.db.exec(
        r#"CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
           CREATE DOMAIN posint AS int CHECK (VALUE > 0);
           CREATE DOMAIN label AS text;
           CREATE TABLE alltypes (
             id int PRIMARY KEY, b bool, i2 int2, i8 int8, o oid, f4 float4, f8 float8,
             n10 numeric(10,2), n50 numeric(50,5), nu numeric, m money,
             c1 "char", cn char(5), vc varchar(10), nm name, t text, by bytea,
             d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval,
             u uuid, j json, jb jsonb, ip inet, cid cidr, mac macaddr, x xml, r int4range,
             e mood, pi posint, lb label,
             ai int[], at text[], ad date[], an numeric[], ats timestamptz[], au uuid[], ab bool[]);
           INSERT INTO alltypes VALUES
            (1, true, 1, 9223372036854775807, 4294967295, 1.5, 'NaN', 12345678.91, 1234567890123456789012345678901234567890.12345, 'NaN', 12.34,
             'a', 'ab', 'varchar', 'name', E'tab\there \\N "q", ü', '\x00ff10',
             '0044-03-15 BC', '24:00:00', '12:00:00+05:30', 'infinity', '-infinity', '1 year 2 mons -3 days 04:05:06.5',
             'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": null, "a": 1}', '10.0.0.1/8', '10.0.0.0/8', '08:00:2b:01:02:03', '<a>x</a>', '[1,5)',
             'happy', 7, 'lbl',
             '{1,NULL,3}', '{"a b","NULL",NULL,""}', '{infinity,2024-01-01}', '{1.5,NaN}', '{"2024-01-01 00:00:00+00",NULL}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{t,f,NULL}'),
            (2, NULL, NULL, NULL, NULL, '-Infinity', 1e300, NULL, NULL, '-Infinity', NULL,
             NULL, NULL, NULL, NULL, NULL, NULL, '300000-01-01', '00:00:00', NULL, '2000-01-01 00:00:00', '1999-12-31 23:59:59.999999+00', NULL,
             NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
             '{}', '{}', NULL, NULL, NULL, NULL, NULL);
           INSERT INTO alltypes (id, t, d, tstz) SELECT g, 'row ' || g, DATE '2024-01-01' + g, now() FROM generate_series(3, 5000) g;"#,
    )
    .await;
    s.db.create_publication(&s.publication, "alltypes").await;
    let cfg = s.config_with("full-load", "load_workers = 2\nload_chunk_size = \"64KiB\"");
    assert_success(&s.pgcdc(&cfg, &["run"]).await, "full load");
    assert_eq!(s.assert_matches_source("public", "alltypes").await, 5000);
    assert!(parquet_files(&s.table_dir("public", "alltypes").join("load")).len() > 1, "several chunks");
}
