//! The DMS layout's CSV files (`layout = "dms"`, `format = "csv"`, SPEC 5.2, issue 7 step 5),
//! local and on S3, read back by pyarrow.csv and Python's csv module
//! (`tests/py/read_dms_csv.py`): names (`LOAD00000001.csv`, `YYYYMMDD-HHMMSSmmm.csv`, date
//! folders, `.csv.gz`), no header unless `add_column_name`, `Op` first in CDC files, NULL an
//! empty field and the empty string `""`, quoting of commas, quotes and line breaks, values in
//! the text PostgreSQL itself prints (numeric exact), and a killed run neither duplicates nor
//! rewrites a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::dms_layout::{assert_kept_and_new, dms_config, file_bytes, files_under};
use crate::s3::{fetch, new_bucket, pgcdc_s3, s3_config};
use crate::support::{describe, moto, pgcdc_c, run_python_script, stderr, Running, Setup};

type Rows = Vec<Vec<Option<String>>>;

/// Each file read by pyarrow (NULL = `None`) after checking that Python's csv module reads
/// the same records (it reads NULL as ""); `null` is the sink's `csv_null_value`.
fn read_csv(files: &[PathBuf], null: &str) -> BTreeMap<PathBuf, Rows> {
    let mut args: Vec<&std::ffi::OsStr> = vec!["--null".as_ref(), null.as_ref()];
    args.extend(files.iter().map(|p| p.as_os_str()));
    let out: BTreeMap<String, Value> =
        serde_json::from_str(&run_python_script("read_dms_csv.py", &args)).unwrap();
    out.into_iter()
        .map(|(path, v)| {
            let rows: Rows = serde_json::from_value(v["pyarrow"].clone()).unwrap();
            let plain: Vec<Vec<String>> = serde_json::from_value(v["csv_module"].clone()).unwrap();
            let as_plain: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|f| f.clone().unwrap_or_else(|| null.to_string()))
                        .collect()
                })
                .collect();
            assert_eq!(as_plain, plain, "{path}: pyarrow and the csv module agree");
            assert_eq!(v["gzip"], Value::Bool(path.ends_with(".gz")), "{path}");
            (PathBuf::from(path), rows)
        })
        .collect()
}

fn read_one(file: &Path, null: &str) -> Rows {
    read_csv(&[file.to_path_buf()], null)
        .into_values()
        .next()
        .unwrap()
}

/// `YYYYMMDD-HHMMSSmmm.{ext}`.
fn is_cdc_name(name: &str, ext: &str) -> bool {
    let Some(stem) = name.strip_suffix(&format!(".{ext}")) else {
        return false;
    };
    let b = stem.as_bytes();
    b.len() == 18
        && b[8] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_digit())
}

fn some(v: &[&str]) -> Vec<Option<String>> {
    v.iter().map(|s| Some(s.to_string())).collect()
}

const TYPES_DDL: &str = "CREATE TABLE t (id int PRIMARY KEY, txt text, n numeric(12,3), nu numeric,
    f8 float8, f4 real, b bool, ts timestamp, tz timestamptz, d date, tm time, by bytea, u uuid,
    j jsonb, arr int[], m money)";

/// The table's rows as PostgreSQL prints them (simple query protocol), in DMS's CSV forms
/// where DMS's type mapping differs: timestamptz in UTC without offset, money as
/// DECIMAL(38,4).
const SOURCE_TEXT: &str =
    "SELECT id, txt, n, nu, f8, f4, b, ts, tz AT TIME ZONE 'UTC', d, tm, by, u, j, arr,
    m::numeric::numeric(38,4) FROM t";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_files_follow_dms_conventions_and_hold_postgresqls_text() {
    let s = Setup::new("dms_csv").await;
    s.db.exec(TYPES_DDL).await;
    s.db.exec(
        "INSERT INTO t VALUES
         (1, 'plain', 1.5, 3.14159265358979323846264338327950288419716939937510, 1e20, 1234567, true,
          '2024-01-31 12:34:56.5', '2024-01-31 12:34:56.123456+02', '2024-02-29', '12:34:56.5', '\\x00ab',
          'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, \"x,y\"]}', '{1,2}', 12.34),
         (2, '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
         (3, E'a,b \"q\"\\nline2\\r', 0, 0.000, -0.00001, 0.1, false, '0044-03-15 12:00:00 BC',
          '1999-12-31 23:59:59+00', 'infinity', '24:00:00', '\\x', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12',
          'null', '{}', -1)",
    )
    .await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = dms_config(&s, "format = \"csv\"");
    s.run_until_current(&cfg).await;

    let dir = s.out().join("public/t");
    assert_eq!(files_under(&dir), ["LOAD00000001.csv"]);
    let load = dir.join("LOAD00000001.csv");
    let raw = std::fs::read_to_string(&load).unwrap();
    assert!(
        raw.starts_with("1,plain,1.500,") || raw.contains("\n1,plain,1.500,"),
        "{raw}"
    );
    assert!(!raw.contains("id,txt"), "no header row by default: {raw}");
    assert!(
        raw.ends_with('\n') && !raw.contains("\r\n"),
        "rows end with \\n: {raw:?}"
    );
    // NULL is an empty field, the empty string "", a value with a comma, quote or line break
    // is quoted with its quotes doubled.
    assert!(raw.contains("2,\"\",,,,"), "{raw}");
    assert!(raw.contains("3,\"a,b \"\"q\"\"\nline2\r\","), "{raw:?}");
    let mut rows = read_one(&load, "");
    rows.sort_by_key(|r| r[0].clone());
    let source =
        s.db.query_strings(&format!("{SOURCE_TEXT} ORDER BY id"))
            .await;
    assert_eq!(rows, source, "every value as PostgreSQL prints it");
    assert_eq!(
        rows[0][3].as_deref(),
        Some("3.14159265358979323846264338327950288419716939937510")
    );
    assert_eq!(rows[0][4].as_deref(), Some("1e+20"));
    assert_eq!(
        rows[0][8].as_deref(),
        Some("2024-01-31 10:34:56.123456"),
        "UTC, no offset"
    );
    assert_eq!(
        rows[0][15].as_deref(),
        Some("12.3400"),
        "money as DECIMAL(38,4)"
    );
    assert_eq!(
        rows[1][1].as_deref(),
        Some(""),
        "the empty string is not NULL"
    );
    assert!(
        rows[1][2..].iter().all(Option::is_none),
        "NULLs: {:?}",
        rows[1]
    );

    // CDC: Op first, an update carries the whole row, a delete the key only.
    s.db.exec("INSERT INTO t (id, txt, n, f8) VALUES (4, 'x,\"y\"', 99.999, 0.1)")
        .await;
    s.db.exec("UPDATE t SET txt = 'changed' WHERE id = 1").await;
    s.db.exec("DELETE FROM t WHERE id = 3").await;
    s.run_until_current(&cfg).await;
    let cdc: Vec<String> = files_under(&dir)
        .into_iter()
        .filter(|f| f != "LOAD00000001.csv")
        .collect();
    assert!(
        !cdc.is_empty() && cdc.iter().all(|f| is_cdc_name(f, "csv")),
        "{cdc:?}"
    );
    let events: Rows = read_csv(&cdc.iter().map(|f| dir.join(f)).collect::<Vec<_>>(), "")
        .into_values()
        .flatten()
        .collect();
    let now =
        s.db.query_strings(&format!(
            "{SOURCE_TEXT} WHERE id IN (4, 1) ORDER BY id DESC"
        ))
        .await;
    let with_op = |op: &str, r: &Vec<Option<String>>| {
        let mut v = vec![Some(op.to_string())];
        v.extend(r.iter().cloned());
        v
    };
    let mut delete = some(&["D", "3"]);
    delete.extend(std::iter::repeat_n(None, 15));
    assert_eq!(
        events,
        [with_op("I", &now[0]), with_op("U", &now[1]), delete]
    );

    // A run killed between flushes: files already there stay as they are, each change once.
    let before = file_bytes(&dir);
    let run = Running::start(&cfg);
    s.db.exec("INSERT INTO t (id, txt) VALUES (5, 'five')")
        .await;
    run.wait_caught_up(&s).await;
    s.db.exec("INSERT INTO t (id, txt) VALUES (6, 'six')").await;
    s.db.exec("UPDATE t SET txt = 'FIVE' WHERE id = 5").await;
    drop(run); // SIGKILL
    s.run_until_current(&cfg).await;
    let (after, new) = assert_kept_and_new(&dir, &before);
    assert!(
        after
            .iter()
            .filter(|f| *f != "LOAD00000001.csv")
            .all(|f| is_cdc_name(f, "csv")),
        "{after:?}"
    );
    let mut later: Vec<(String, String, String)> = read_csv(&new, "")
        .into_values()
        .flatten()
        .map(|r| {
            (
                r[0].clone().unwrap(),
                r[1].clone().unwrap(),
                r[2].clone().unwrap(),
            )
        })
        .collect();
    later.sort();
    let t = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        later,
        [t("I", "5", "five"), t("I", "6", "six"), t("U", "5", "FIVE")],
        "each change once: {new:?}"
    );

    // validate reads the native layout only: one clear configuration error.
    let out = pgcdc_c("validate", &cfg, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains("layout = \"dms\""),
        "{}",
        describe(&out)
    );
    // status reads progress from _pgcdc/, whatever the file format.
    let out = pgcdc_c("status", &cfg, &["--json"]).await;
    assert!(out.status.success(), "{}", describe(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_header_null_marker_date_folders_and_inserts_only_without_op() {
    let s = Setup::new("dms_csv_gz").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one'), (2, NULL), (3, 'NULL'), (4, '')")
        .await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = dms_config(
        &s,
        "format = \"csv\"\ncompression = \"gzip\"\nadd_column_name = true\ncsv_null_value = \"NULL\"\n\
         date_partitioning = true\ncdc_inserts_only = true\ntimestamp_column = \"DMS_TIMESTAMP\"",
    );
    s.run_until_current(&cfg).await;
    let dir = s.out().join("public/t");
    assert_eq!(files_under(&dir), ["LOAD00000001.csv.gz"]);
    let rows = read_one(&dir.join("LOAD00000001.csv.gz"), "NULL");
    assert_eq!(
        rows[0],
        some(&["DMS_TIMESTAMP", "id", "v"]),
        "the header row (AddColumnName)"
    );
    let mut data: Vec<(Option<String>, Option<String>)> = rows[1..]
        .iter()
        .map(|r| (r[1].clone(), r[2].clone()))
        .collect();
    data.sort();
    let kv = |k: &str, v: Option<&str>| (Some(k.to_string()), v.map(str::to_string));
    assert_eq!(
        data,
        [
            kv("1", Some("one")),
            kv("2", None),
            kv("3", Some("NULL")),
            kv("4", Some(""))
        ],
        "NULL is the marker, the string 'NULL' is quoted, the empty string is \"\""
    );
    assert!(
        rows[1..]
            .iter()
            .all(|r| r[0].as_ref().is_some_and(|t| t.len() == 26)),
        "{rows:?}"
    );

    s.db.exec("INSERT INTO t VALUES (5, 'five')").await;
    s.db.exec("UPDATE t SET v = 'uno' WHERE id = 1").await;
    s.db.exec("DELETE FROM t WHERE id = 2").await;
    s.run_until_current(&cfg).await;
    let cdc: Vec<String> = files_under(&dir)
        .into_iter()
        .filter(|f| f != "LOAD00000001.csv.gz")
        .collect();
    assert_eq!(cdc.len(), 1, "{cdc:?}");
    let parts: Vec<&str> = cdc[0].split('/').collect();
    assert_eq!(parts.len(), 4, "YYYY/MM/DD/name: {cdc:?}");
    assert!(is_cdc_name(parts[3], "csv.gz"), "{cdc:?}");
    assert_eq!(
        format!("{}{}{}", parts[0], parts[1], parts[2]),
        parts[3][..8]
    );
    let rows = read_one(&dir.join(&cdc[0]), "NULL");
    // DMS CSV with CdcInsertsOnly and without IncludeOpForFullLoad: no Op column.
    assert_eq!(rows[0], some(&["DMS_TIMESTAMP", "id", "v"]));
    assert_eq!(rows.len(), 2, "the insert only: {rows:?}");
    assert_eq!(rows[1][1..], some(&["5", "five"])[..]);
    let ts: String = rows[1][0]
        .clone()
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    assert_eq!(
        format!("{}-{}.csv.gz", &ts[..8], &ts[8..17]),
        parts[3],
        "named by its commit time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_full_load_and_cdc_into_s3() {
    let s = Setup::new("dms_csv_s3").await;
    let bucket = new_bucket("dmscsv");
    s.db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text, n numeric(10,2));
         INSERT INTO t SELECT g, 'v,' || g, g / 3.0 FROM generate_series(1, 500) g",
    )
    .await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = s3_config(&s, &format!("s3://{bucket}/dms/"), &moto().endpoint_url());
    let mut toml = std::fs::read_to_string(&cfg).unwrap();
    toml.push_str("layout = \"dms\"\nformat = \"csv\"\ncompression = \"gzip\"\ninclude_op_for_full_load = true\n");
    std::fs::write(&cfg, toml).unwrap();
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(
        out.status.success(),
        "full load into S3: {}",
        describe(&out)
    );
    s.db.exec("INSERT INTO t VALUES (501, '', NULL)").await;
    s.db.exec("UPDATE t SET v = 'changed' WHERE id = 7").await;
    s.db.exec("DELETE FROM t WHERE id = 8").await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "CDC into S3: {}", describe(&out));

    let report = fetch(&s, &bucket, "dms");
    let files: Vec<String> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let data: Vec<&String> = files
        .iter()
        .filter(|f| f.starts_with("public/t/"))
        .collect();
    assert!(
        data.iter().any(|f| *f == "public/t/LOAD00000001.csv.gz"),
        "{files:?}"
    );
    let cdc: Vec<&&String> = data
        .iter()
        .filter(|f| **f != "public/t/LOAD00000001.csv.gz")
        .collect();
    assert!(
        !cdc.is_empty()
            && cdc
                .iter()
                .all(|f| is_cdc_name(&f["public/t/".len()..], "csv.gz")),
        "{files:?}"
    );
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("public/t/") || f.starts_with("_pgcdc/")),
        "{files:?}"
    );

    let load = read_one(&s.out().join("public/t/LOAD00000001.csv.gz"), "");
    assert_eq!(load.len(), 500, "no header by default");
    assert!(
        load.iter().all(|r| r[0].as_deref() == Some("I")),
        "Op in the load"
    );
    let row7 = load.iter().find(|r| r[1].as_deref() == Some("7")).unwrap();
    assert_eq!(row7[1..], some(&["7", "v,7", "2.33"])[..]);
    let events: Rows = read_csv(&cdc.iter().map(|f| s.out().join(f)).collect::<Vec<_>>(), "")
        .into_values()
        .flatten()
        .collect();
    assert_eq!(
        events,
        [
            vec![
                Some("I".into()),
                Some("501".into()),
                Some(String::new()),
                None
            ],
            some(&["U", "7", "changed", "2.33"]),
            vec![Some("D".into()), Some("8".into()), None, None],
        ]
    );
    let out = pgcdc_s3(&cfg, &["status", "--json"]).await;
    assert!(out.status.success(), "status: {}", describe(&out));
}

/// Every crash window of the flush/ack path (the flush failpoints of `crash.rs`), with CSV files:
/// each run dies at one point, the next recovers; every change is in the files exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_files_are_exactly_once_across_every_flush_window() {
    use std::os::unix::process::ExitStatusExt;
    let s = Setup::new("dms_csv_crash").await;
    s.db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE u (id int PRIMARY KEY, v text)",
    )
    .await;
    s.db.create_publication(&s.publication, "t, u").await;
    let cfg = dms_config(&s, "format = \"csv\"\ncompression = \"gzip\"");
    s.run_until_current(&cfg).await;
    let points = [
        "flush-before-manifest",
        "flush-after-manifest",
        "flush-after-first-publish",
        "recover-after-publish",
        "flush-before-checkpoint",
        "flush-after-checkpoint",
        "flushed-before-ack",
    ];
    for (i, point) in points.iter().enumerate() {
        let base = i * 1000;
        for table in ["t", "u"] {
            s.db.exec(&format!(
                "INSERT INTO {table} SELECT g, 'a,b \"' || g || E'\"\\n' FROM generate_series({}, {}) g;
                 UPDATE {table} SET v = 'updated' WHERE id = {};
                 DELETE FROM {table} WHERE id = {}",
                base + 1,
                base + 300,
                base + 1,
                base + 2
            ))
            .await;
        }
        let mut cmd = crate::support::pgcdc();
        cmd.args(["run", "--until-lsn", "current", "-c"])
            .arg(&cfg)
            .env("PGCDC_FAILPOINTS", point);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if *point == "recover-after-publish" {
            assert!(
                out.status.signal() == Some(9) || out.status.success(),
                "{point}: {err}"
            );
        } else {
            assert_eq!(
                out.status.signal(),
                Some(9),
                "{point} was not reached: {err}"
            );
        }
    }
    s.run_until_current(&cfg).await;
    for table in ["t", "u"] {
        let dir = s.out().join("public").join(table);
        let files: Vec<PathBuf> = files_under(&dir).iter().map(|f| dir.join(f)).collect();
        assert!(
            files
                .iter()
                .all(|f| f.to_string_lossy().ends_with(".csv.gz")),
            "{files:?}"
        );
        let mut events: Vec<(String, i64)> = read_csv(&files, "")
            .into_values()
            .flatten()
            .map(|r| {
                (
                    r[0].clone().unwrap(),
                    r[1].clone().unwrap().parse().unwrap(),
                )
            })
            .collect();
        events.sort();
        let mut expected: Vec<(String, i64)> = Vec::new();
        for i in 0..points.len() as i64 {
            let base = i * 1000;
            expected.extend((base + 1..=base + 300).map(|id| ("I".to_string(), id)));
            expected.push(("U".to_string(), base + 1));
            expected.push(("D".to_string(), base + 2));
        }
        expected.sort();
        assert_eq!(events, expected, "{table}: every change once");
    }
}
