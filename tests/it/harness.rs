//! Tests of the test harness itself (tests/it/support): if the cluster, its TLS/auth setup or the
//! Python readers break, these fail first and say so.

use crate::support::pg::{try_connect, MD5_PASSWORD, MD5_USER, NOREPL_USER, SCRAM_PASSWORD, SCRAM_USER};
use crate::support::{fresh_db, pg};

#[tokio::test]
async fn cluster_is_configured_for_logical_replication() {
    let db = fresh_db("harness_settings").await;
    let show = |name: &'static str| {
        let db = db.clone();
        async move {
            db.query_scalar(&format!("SHOW {name}"))
                .await
                .unwrap_or_default()
        }
    };
    assert_eq!(show("wal_level").await, "logical");
    assert_eq!(show("logical_decoding_work_mem").await, "64kB");
    assert_eq!(show("max_replication_slots").await, "100");
    assert_eq!(show("max_wal_senders").await, "100");
    assert_eq!(show("max_prepared_transactions").await, "20");
    assert_eq!(show("ssl").await, "on");
    assert_eq!(show("server_encoding").await, "UTF8");
    assert_eq!(show("listen_addresses").await, "127.0.0.1");
    assert_eq!(
        show("port").await,
        pg().port().to_string(),
        "the server listens on the port the harness reports"
    );
    assert!(pg().version_num() >= 140000, "{}", pg().version_num());
}

#[tokio::test]
async fn tls_files_exist_and_ssl_is_on() {
    let c = pg();
    let ca = std::fs::read_to_string(c.ca_cert_path()).expect("CA cert readable");
    assert!(ca.contains("BEGIN CERTIFICATE"), "{ca}");
    assert!(c.server_cert_path().exists());
    let db = fresh_db("harness_ssl").await;
    assert_eq!(db.query_scalar("SHOW ssl").await.as_deref(), Some("on"));
}

#[test]
fn scram_user_connects_over_verified_tls_with_psql() {
    let c = pg();
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=postgres user={SCRAM_USER} \
         sslmode=verify-full sslrootcert={}",
        c.port(),
        c.ca_cert_path().display()
    );
    let out = std::process::Command::new(c.bindir().join("psql"))
        .args(["-X", "-At", "-c"])
        .arg("SELECT ssl, current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .arg(&conninfo)
        .env("PGPASSWORD", SCRAM_PASSWORD)
        .env_remove("PGSSLMODE")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql over verify-full TLS failed: {}\n--- server log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log_contents()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t|scram_user");

    // The same with a wrong password is refused.
    let out = std::process::Command::new(c.bindir().join("psql"))
        .args(["-X", "-At", "-w", "-c", "SELECT 1"])
        .arg(&conninfo)
        .env("PGPASSWORD", "wrong")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run psql");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn password_users_need_their_password() {
    let db = fresh_db("harness_auth").await;

    let client = try_connect(&db.url_with_password(SCRAM_USER, SCRAM_PASSWORD))
        .await
        .expect("scram_user with the right password connects");
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), SCRAM_USER);

    let err = try_connect(&db.url_with_password(SCRAM_USER, "wrong-secret"))
        .await
        .expect_err("scram_user with a wrong password is rejected");
    let msg = format!("{err:?}");
    assert!(msg.contains("28P01") || msg.contains("password"), "{msg}");

    assert!(
        try_connect(&db.url_as(SCRAM_USER)).await.is_err(),
        "scram_user without a password is rejected (not trusted)"
    );

    try_connect(&db.url_with_password(MD5_USER, MD5_PASSWORD))
        .await
        .expect("md5_user with the right password connects");
    assert!(try_connect(&db.url_with_password(MD5_USER, "nope"))
        .await
        .is_err());

    // md5_user's password really is stored as md5, scram_user's as SCRAM.
    let kinds = db
        .query_strings(
            "SELECT rolname, CASE WHEN rolpassword LIKE 'md5%' THEN 'md5' \
                    WHEN rolpassword LIKE 'SCRAM-SHA-256$%' THEN 'scram' END \
             FROM pg_authid WHERE rolname IN ('scram_user', 'md5_user') ORDER BY 1",
        )
        .await;
    assert_eq!(
        kinds,
        vec![
            vec![Some("md5_user".to_string()), Some("md5".to_string())],
            vec![Some("scram_user".to_string()), Some("scram".to_string())],
        ]
    );

    // norepl_user is trusted but has no REPLICATION attribute.
    let c = try_connect(&db.url_as(NOREPL_USER))
        .await
        .expect("norepl_user connects without a password");
    let row = c
        .query_one(
            "SELECT rolreplication, rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0) && !row.get::<_, bool>(1));
}

#[tokio::test]
async fn fresh_dbs_are_distinct_and_isolated() {
    let a = fresh_db("harness_iso").await;
    let b = fresh_db("harness_iso").await;
    assert_ne!(a.name, b.name);
    assert_ne!(a.url, b.url);
    a.exec("CREATE TABLE t (id int primary key, v text); INSERT INTO t VALUES (1, 'a'), (2, NULL)")
        .await;
    assert_eq!(a.count("t").await, 2);
    assert_eq!(
        a.query_strings("SELECT id, v FROM t ORDER BY id").await,
        vec![
            vec![Some("1".to_string()), Some("a".to_string())],
            vec![Some("2".to_string()), None]
        ]
    );
    let rows = b
        .query_strings("SELECT count(*) FROM pg_tables WHERE tablename = 't'")
        .await;
    assert_eq!(rows, vec![vec![Some("0".to_string())]]);
    assert_eq!(
        b.query_scalar("SELECT current_database()").await.as_deref(),
        Some(b.name.as_str())
    );
    assert_ne!(a.unique("slot"), a.unique("slot"));
}

#[tokio::test]
async fn publications_and_slots_helpers() {
    let db = fresh_db("harness_slots").await;
    db.exec("CREATE TABLE t1 (id int primary key); CREATE TABLE t2 (id int primary key)")
        .await;
    let publ = db.unique("pub");
    db.create_publication(&publ, "t1, t2").await;
    let tables = db
        .query_strings(&format!(
            "SELECT tablename FROM pg_publication_tables WHERE pubname = '{publ}' ORDER BY 1"
        ))
        .await;
    assert_eq!(
        tables,
        vec![vec![Some("t1".to_string())], vec![Some("t2".to_string())]]
    );

    assert!(db.slot_names().await.is_empty());
    let slot = db.unique("slot");
    db.exec(&format!(
        "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
    ))
    .await;
    assert_eq!(db.slot_names().await, vec![slot.clone()]);
    assert!(db.slot_confirmed_lsn(&slot).await.is_some());
    assert!(db.current_lsn().await.contains('/'));
    db.exec(&format!("SELECT pg_drop_replication_slot('{slot}')"))
        .await;
}

#[test]
fn python_reader_reads_pyarrow_written_parquet_with_both_readers() {
    let dir = tempfile::tempdir().unwrap();
    let table_dir = dir.path().join("public/items");
    // Hive-style `date=` directories must not turn into an extra column.
    std::fs::create_dir_all(table_dir.join("load")).unwrap();
    std::fs::create_dir_all(table_dir.join("cdc/date=2024-01-02")).unwrap();
    // Progress files must be ignored.
    std::fs::create_dir_all(dir.path().join("_pgcdc")).unwrap();
    let script = r#"
import sys, decimal, datetime, pyarrow as pa, pyarrow.parquet as pq
out, pg = sys.argv[1], sys.argv[2]
t = pa.table({
    "id": pa.array([3, 1, 2], pa.int32()),
    "name": pa.array(["c", "a", None]),
    "price": pa.array([decimal.Decimal("1.50"), decimal.Decimal("-2.25"), None], pa.decimal128(10, 2)),
    "raw": pa.array([b"\x00\xff", None, b"ab"], pa.binary()),
    "tags": pa.array([["x"], [], None], pa.list_(pa.string())),
    "_lsn": pa.array([20, 10, 10], pa.int64()),
    "_seq": pa.array([0, 1, 0], pa.int64()),
    "_commit_ts": pa.array([datetime.datetime(2024, 1, 2, 3, 4, 5, 6)] * 3, pa.timestamp("us", tz="UTC")),
})
pq.write_table(t.slice(0, 2), out + "/load/part-1.parquet")
pq.write_table(t.slice(2, 1), out + "/cdc/date=2024-01-02/part-2.parquet")
pq.write_table(t, pg + "/ignored.parquet")
"#;
    let status = std::process::Command::new(crate::support::python())
        .arg("-c")
        .arg(script)
        .arg(&table_dir)
        .arg(dir.path().join("_pgcdc"))
        .status()
        .expect("run python");
    assert!(status.success(), "pyarrow could not write the fixture");

    let v = crate::support::read_parquet_with_python(dir.path());
    assert_eq!(v["total_files"], 2, "{v:#}");
    let t = &v["tables"]["public/items"];
    assert_eq!(t["pyarrow_rows"], 3, "{v:#}");
    assert_eq!(t["files"].as_array().unwrap().len(), 2, "{v:#}");
    assert_eq!(t["duckdb_rows"], 3, "{v:#}");
    assert!(t["duckdb_error"].is_null(), "{v:#}");
    assert_eq!(
        t["columns"],
        serde_json::json!([
            "id",
            "name",
            "price",
            "raw",
            "tags",
            "_lsn",
            "_seq",
            "_commit_ts"
        ])
    );
    assert_eq!(t["arrow_types"]["id"], "int32");
    assert_eq!(t["arrow_types"]["price"], "decimal128(10, 2)");
    assert_eq!(t["arrow_types"]["_commit_ts"], "timestamp[us, tz=UTC]");
    assert_eq!(t["duckdb_types"]["id"], "INTEGER");
    assert_eq!(t["duckdb_types"]["price"], "DECIMAL(10,2)");
    // Sorted by (_lsn, _seq): ids 2, 1, 3.
    let ids: Vec<i64> = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![2, 1, 3], "{v:#}");
    let r3 = &t["rows"][2];
    assert_eq!(r3["price"], "1.50");
    assert_eq!(r3["raw"], "00ff");
    assert_eq!(r3["tags"], serde_json::json!(["x"]));
    assert_eq!(r3["_commit_ts"], "2024-01-02T03:04:05.000006+00:00");
    assert!(t["rows"][0]["name"].is_null());
    assert_eq!(t["rows"][1]["tags"], serde_json::json!([]));
}

#[test]
fn python_missing_is_a_failure_not_a_skip() {
    // Runs the ignored test below in a child process with PGCDC_PYTHON pointing at nothing,
    // so this process's environment is untouched.
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "harness::python_missing_child",
            "--include-ignored",
            "--nocapture",
        ])
        .env("PGCDC_PYTHON", "/nonexistent/python")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "child passed: {text}");
    assert!(text.contains("run `make test`"), "{text}");
}

#[test]
#[ignore = "run by python_missing_is_a_failure_not_a_skip"]
fn python_missing_child() {
    let _ = crate::support::python();
}

#[test]
fn moto_server_serves_s3_and_kinesis() {
    let m = crate::support::moto();
    let script = r#"
import sys, boto3
ep = sys.argv[1]
s3 = boto3.client("s3", endpoint_url=ep)
s3.create_bucket(Bucket="harness-bucket")
s3.put_object(Bucket="harness-bucket", Key="a/b.txt", Body=b"hi")
assert [o["Key"] for o in s3.list_objects_v2(Bucket="harness-bucket")["Contents"]] == ["a/b.txt"]
k = boto3.client("kinesis", endpoint_url=ep)
k.create_stream(StreamName="harness-stream", ShardCount=1)
print(k.describe_stream_summary(StreamName="harness-stream")["StreamDescriptionSummary"]["StreamName"])
"#;
    let mut cmd = std::process::Command::new(crate::support::python());
    cmd.arg("-c").arg(script).arg(m.endpoint_url());
    m.aws_env(&mut cmd);
    let out = cmd.output().expect("run python");
    assert!(
        out.status.success(),
        "{}\n--- moto log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        m.log_contents()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "harness-stream"
    );
    m.reset();
}
