//! The DMS layout (`layout = "dms"`, SPEC 5.2, issue 7 step 5), judged against a real file
//! written by AWS DMS (`tests/fixtures/dms/LOAD00000001.parquet`): the table behind it is
//! recreated in PostgreSQL from the file's own rows, replicated, and pgcdc's files must have
//! the same columns, order and Parquet physical and logical types; CDC files are named by
//! commit time and carry `Op`; a restart neither duplicates nor renames a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{repo_root, run_python_script, write_config, Running, Setup};

/// The real DMS file.
pub(crate) fn real_dms_file() -> PathBuf {
    repo_root().join("tests/fixtures/dms/LOAD00000001.parquet")
}

/// The footer (columns with physical/logical/converted types and repetition) and rows of
/// each file, read by pyarrow (`tests/py/parquet_footer.py`).
fn footers(files: &[PathBuf]) -> BTreeMap<PathBuf, Value> {
    let args: Vec<&std::ffi::OsStr> = files.iter().map(|p| p.as_os_str()).collect();
    let out: BTreeMap<String, Value> =
        serde_json::from_str(&run_python_script("parquet_footer.py", &args)).unwrap();
    out.into_iter()
        .map(|(k, v)| (PathBuf::from(k), v))
        .collect()
}

pub(crate) fn footer(file: &Path) -> Value {
    footers(&[file.to_path_buf()]).into_values().next().unwrap()
}

/// Every file under `dir` (`_pgcdc/` aside) with its bytes, to compare after a restart.
pub(crate) fn file_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_under(dir).into_iter().map(|f| (f.clone(), std::fs::read(dir.join(&f)).unwrap())).collect()
}

/// Asserts that every file of `before` ([`file_bytes`]) is still in `dir`, byte for byte;
/// returns the files now there and the paths of the new ones.
pub(crate) fn assert_kept_and_new(dir: &Path, before: &[(String, Vec<u8>)]) -> (Vec<String>, Vec<PathBuf>) {
    let after = files_under(dir);
    for (f, bytes) in before {
        assert_eq!(std::fs::read(dir.join(f)).ok().as_ref(), Some(bytes), "{f} is kept as it was");
    }
    let new = after.iter().filter(|f| !before.iter().any(|(b, _)| b == *f)).map(|f| dir.join(f)).collect();
    (after, new)
}

/// A config for this test's source with a DMS-layout sink; `extra` lines go into `[[sink]]`.
pub(crate) fn dms_config(s: &Setup, extra: &str) -> PathBuf {
    let toml = format!(
        "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\n\n[pipeline]\nmode = \"full-load-and-cdc\"\nstatus_interval = \"1s\"\n\n\
         [[sink]]\nkind = \"parquet\"\nurl = \"{}\"\nflush_interval = \"1s\"\nlayout = \"dms\"\n{extra}\n",
        s.db.url,
        s.publication,
        s.slot,
        s.out().display()
    );
    write_config(s.dir.path(), &toml)
}

/// Every file under `dir` (recursively), relative to it, sorted; `_pgcdc/` left out.
pub(crate) fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == "_pgcdc" {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `YYYYMMDD-HHMMSSmmm.parquet`.
fn is_cdc_name(name: &str) -> bool {
    let b = name.as_bytes();
    name.len() == 26
        && name.ends_with(".parquet")
        && b[8] == b'-'
        && b[..18]
            .iter()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_digit())
}

/// `2024-01-31 12:34:56.789012` (DMS's timestamp column) to `20240131-123456789`.
fn name_of_dms_timestamp(ts: &str) -> String {
    let d: String = ts.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(d.len(), 20, "{ts}");
    format!("{}-{}", &d[..8], &d[8..17])
}

pub(crate) fn sql_literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        other => panic!("unexpected value {other}"),
    }
}

pub(crate) const TABLE_DDL: &str =
    "CREATE TABLE dms_test_table (id bigint PRIMARY KEY, my_int integer, my_smallint smallint,
    my_numeric numeric(15,2), my_real real, my_double double precision, my_money money,
    my_varchar varchar(100), my_text text, my_bytea bytea, my_timestamp timestamp, my_uuid uuid,
    my_json json, my_jsonb jsonb, my_bool boolean)";

/// Column names of a footer.
pub(crate) fn names(f: &Value) -> Vec<String> {
    f["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_files_have_the_real_dms_files_columns_and_types_and_cdc_rows_carry_op() {
    let s = Setup::new("dms_real").await;
    let real = footer(&real_dms_file());
    // Recreate the source table from the real file's rows.
    s.db.exec(TABLE_DDL).await;
    let data_cols: Vec<String> = names(&real)
        .into_iter()
        .filter(|n| n != "DMS_TIMESTAMP")
        .collect();
    for row in real["rows"].as_array().unwrap() {
        let values: Vec<String> = data_cols
            .iter()
            .map(|c| match c.as_str() {
                "my_bytea" => format!("'\\x{}'", row[c].as_str().unwrap()),
                "my_money" => format!("{}::numeric::money", sql_literal(&row[c])),
                _ => sql_literal(&row[c]),
            })
            .collect();
        s.db.exec(&format!(
            "INSERT INTO dms_test_table ({}) VALUES ({})",
            data_cols.join(", "),
            values.join(", ")
        ))
        .await;
    }
    s.db.create_publication(&s.publication, "dms_test_table")
        .await;
    let cfg = dms_config(&s, "compression = \"none\"\ntimestamp_column = \"DMS_TIMESTAMP\"\nparquet_timestamp_in_millisecond = true");
    s.run_until_current(&cfg).await;

    // The full load: one file, named and shaped as DMS's.
    let dir = s.out().join("public/dms_test_table");
    assert_eq!(files_under(&dir), ["LOAD00000001.parquet"]);
    let ours = footer(&dir.join("LOAD00000001.parquet"));
    assert_eq!(
        ours["columns"], real["columns"],
        "column names, order, physical and logical types"
    );
    assert_eq!(
        ours["key_value_metadata"],
        Value::Null,
        "no embedded Arrow schema, as DMS"
    );
    let strip = |rows: &Value| -> Vec<Value> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                let ts = r.as_object_mut().unwrap().remove("DMS_TIMESTAMP").unwrap();
                assert_eq!(name_of_dms_timestamp(ts.as_str().unwrap()).len(), 18);
                r
            })
            .collect()
    };
    assert_eq!(
        strip(&ours["rows"]),
        strip(&real["rows"]),
        "the same values as DMS wrote"
    );

    // CDC: an insert, an update and a delete, each its own transaction.
    s.db.exec(
        "INSERT INTO dms_test_table (id, my_int, my_numeric, my_money, my_text, my_timestamp, my_uuid, my_jsonb, my_bool)
         VALUES (11, 7, 1.50, '2.25', 'eleven', '2024-02-29 12:00:00.123', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": 1}', true)",
    )
    .await;
    s.db.exec("UPDATE dms_test_table SET my_text = 'changed' WHERE id = 2")
        .await;
    s.db.exec("DELETE FROM dms_test_table WHERE id = 3").await;
    s.run_until_current(&cfg).await;
    let files = files_under(&dir);
    let cdc: Vec<&String> = files
        .iter()
        .filter(|f| f.as_str() != "LOAD00000001.parquet")
        .collect();
    assert!(
        !cdc.is_empty() && cdc.iter().all(|f| is_cdc_name(f)),
        "{files:?}"
    );
    let mut events = Vec::new();
    for f in &cdc {
        let fv = footer(&dir.join(f));
        let cols = fv["columns"].as_array().unwrap();
        assert_eq!(cols[0]["name"], "Op");
        assert_eq!(
            (
                cols[0]["physical_type"].as_str(),
                cols[0]["logical_type"].as_str()
            ),
            (Some("BYTE_ARRAY"), Some("String"))
        );
        assert_eq!(
            cols[1..],
            real["columns"].as_array().unwrap()[..],
            "{f}: Op, then the columns of the real file"
        );
        let rows = fv["rows"].as_array().unwrap();
        let first_ts = rows[0]["DMS_TIMESTAMP"].as_str().unwrap();
        assert_eq!(
            format!("{}.parquet", name_of_dms_timestamp(first_ts)),
            **f,
            "named by its first commit"
        );
        events.extend(rows.iter().cloned());
    }
    let ops: Vec<(String, i64)> = events
        .iter()
        .map(|r| {
            (
                r["Op"].as_str().unwrap().to_string(),
                r["id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("I".to_string(), 11),
            ("U".to_string(), 2),
            ("D".to_string(), 3)
        ]
    );
    assert_eq!(events[0]["my_money"], "2.2500");
    assert_eq!(events[0]["my_numeric"], "1.50");
    assert_eq!(events[0]["my_uuid"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(events[0]["my_jsonb"], "{\"a\": 1}");
    assert_eq!(
        events[0]["my_timestamp"],
        "2024-02-29T12:00:00.123000+00:00"
    );
    // An update carries the whole new row.
    let row2 = real["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == 2)
        .unwrap();
    for c in data_cols.iter().filter(|c| *c != "my_text") {
        assert_eq!(events[1][c], row2[c], "update of id 2, column {c}");
    }
    assert_eq!(events[1]["my_text"], "changed");
    // A delete under the default replica identity: the key only, as DMS.
    for c in data_cols.iter().filter(|c| *c != "id") {
        assert_eq!(events[2][c], Value::Null, "delete, column {c}");
    }

    // A restart: a run killed after one flush and before (or during) the next, then rerun.
    let before = file_bytes(&dir);
    let run = Running::start(&cfg);
    s.db.exec("INSERT INTO dms_test_table (id, my_text) VALUES (12, 'twelve')")
        .await;
    run.wait_caught_up(&s).await;
    s.db.exec("INSERT INTO dms_test_table (id, my_text) VALUES (13, 'thirteen')")
        .await;
    s.db.exec("UPDATE dms_test_table SET my_int = 1 WHERE id = 12")
        .await;
    drop(run); // SIGKILL
    s.run_until_current(&cfg).await;
    let (after, new) = assert_kept_and_new(&dir, &before);
    assert!(
        after
            .iter()
            .filter(|f| f.as_str() != "LOAD00000001.parquet")
            .all(|f| is_cdc_name(f)),
        "{after:?}"
    );
    let mut later: Vec<(String, i64)> = Vec::new();
    for (_, fv) in footers(&new) {
        for r in fv["rows"].as_array().unwrap() {
            later.push((
                r["Op"].as_str().unwrap().to_string(),
                r["id"].as_i64().unwrap(),
            ));
        }
    }
    later.sort();
    assert_eq!(
        later,
        [
            ("I".to_string(), 12),
            ("I".to_string(), 13),
            ("U".to_string(), 12)
        ],
        "each change once: {new:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_options_op_in_the_load_date_folders_inserts_only_and_strings() {
    let s = Setup::new("dms_options").await;
    s.db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text, a int[], d interval, n numeric, j json, ts timestamptz);
         INSERT INTO t VALUES (1, 'one', '{1,2}', '1 day 02:00', 3.14159265358979323846264338327950288419716939937510, '[1, 2]', '2024-01-31 12:00:00.654321+00'),
                              (2, 'two', NULL, NULL, NULL, NULL, NULL)",
    )
    .await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = dms_config(
        &s,
        "include_op_for_full_load = true\ndate_partitioning = true\ncdc_inserts_only = true",
    );
    s.run_until_current(&cfg).await;
    let dir = s.out().join("public/t");
    let load = footer(&dir.join("LOAD00000001.parquet"));
    assert_eq!(names(&load), ["Op", "id", "v", "a", "d", "n", "j", "ts"]);
    let types: Vec<(String, String)> = load["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["physical_type"].as_str().unwrap().into(),
                c["logical_type"].as_str().unwrap().into(),
            )
        })
        .collect();
    let string = ("BYTE_ARRAY".to_string(), "String".to_string());
    assert_eq!(
        types[3..7],
        [
            string.clone(),
            string.clone(),
            string.clone(),
            string.clone()
        ],
        "array, interval, numeric, json"
    );
    assert_eq!(
        types[7],
        (
            "INT64".into(),
            "Timestamp(isAdjustedToUTC=true, timeUnit=microseconds)".into()
        )
    );
    let rows = load["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["Op"] == "I"), "full-load rows say I");
    assert_eq!(rows[0]["a"], "{1,2}");
    assert_eq!(rows[0]["d"], "1 day 02:00:00");
    assert_eq!(
        rows[0]["n"], "3.14159265358979323846264338327950288419716939937510",
        "exact, not rounded"
    );
    assert_eq!(rows[0]["ts"], "2024-01-31T12:00:00.654321+00:00");

    s.db.exec("INSERT INTO t (id, v) VALUES (3, 'three')").await;
    s.db.exec("UPDATE t SET v = 'uno' WHERE id = 1").await;
    s.db.exec("DELETE FROM t WHERE id = 2").await;
    s.db.exec("TRUNCATE t").await;
    s.db.exec("INSERT INTO t (id, v) VALUES (4, 'four')").await;
    s.run_until_current(&cfg).await;
    let files = files_under(&dir);
    let cdc: Vec<&String> = files
        .iter()
        .filter(|f| f.as_str() != "LOAD00000001.parquet")
        .collect();
    let mut ops = Vec::new();
    for f in &cdc {
        // YYYY/MM/DD/YYYYMMDD-HHMMSSmmm.parquet, the folders the file's own date.
        let parts: Vec<&str> = f.split('/').collect();
        assert_eq!(parts.len(), 4, "{f}");
        assert!(is_cdc_name(parts[3]), "{f}");
        assert_eq!(
            format!("{}{}{}", parts[0], parts[1], parts[2]),
            parts[3][..8],
            "{f}"
        );
        for r in footer(&dir.join(f))["rows"].as_array().unwrap() {
            ops.push((
                r["Op"].as_str().unwrap().to_string(),
                r["id"].as_i64().unwrap(),
            ));
        }
    }
    assert_eq!(
        ops,
        [("I".to_string(), 3), ("I".to_string(), 4)],
        "inserts only, no row for TRUNCATE: {files:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_joining_the_publication_is_loaded_with_dms_names_and_columns() {
    let s = Setup::new("dms_join").await;
    s.db.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a VALUES (1, 'a');
         CREATE TABLE b (id int PRIMARY KEY, u uuid); INSERT INTO b SELECT g, md5(g::text)::uuid FROM generate_series(1, 50) g;",
    )
    .await;
    s.db.create_publication(&s.publication, "a").await;
    let cfg = dms_config(&s, "");
    let run = Running::start_streaming(&cfg, &s);
    s.db.exec(&format!(
        "ALTER PUBLICATION \"{}\" ADD TABLE b",
        s.publication
    ))
    .await;
    // Changes committed after the table's load (see the README's DMS limitations for the
    // window between joining and loading).
    let load_file = s.out().join("public/b/LOAD00000001.parquet");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !load_file.exists() {
        // Keep the stream moving until the joining table is loaded.
        s.db.exec("UPDATE a SET v = v WHERE id = 1").await;
        assert!(
            std::time::Instant::now() < deadline,
            "the joining table was never loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    s.db.exec("INSERT INTO b VALUES (51, NULL)").await;
    run.wait_caught_up(&s).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    run.stop().await;
    s.run_until_current(&cfg).await;
    let dir = s.out().join("public/b");
    let files = files_under(&dir);
    assert!(
        files.iter().any(|f| f == "LOAD00000001.parquet"),
        "{files:?}"
    );
    assert!(
        files.iter().all(|f| !f.contains("load/")),
        "no native-layout file: {files:?}"
    );
    let load = footer(&dir.join("LOAD00000001.parquet"));
    assert_eq!(names(&load), ["id", "u"]);
    let mut ids: Vec<i64> = load["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    for f in files
        .iter()
        .filter(|f| f.as_str() != "LOAD00000001.parquet")
    {
        assert!(is_cdc_name(f), "{f}");
        ids.extend(
            footer(&dir.join(f))["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
    }
    ids.sort();
    assert_eq!(
        ids,
        (1..=51).collect::<Vec<i64>>(),
        "every row once, loaded or inserted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_split_over_several_files_gets_distinct_names_in_write_order() {
    let s = Setup::new("dms_split").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = dms_config(&s, "max_file_size = \"1KiB\"\ntimestamp_column = \"ts\"");
    s.run_until_current(&cfg).await;
    // One transaction, large enough to be sealed into several parts of one flush.
    s.db.exec("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 40000) g")
        .await;
    s.run_until_current(&cfg).await;
    let dir = s.out().join("public/t");
    let cdc: Vec<String> = files_under(&dir)
        .into_iter()
        .filter(|f| f != "LOAD00000001.parquet")
        .collect();
    assert!(
        cdc.len() >= 2,
        "the transaction spans several files: {cdc:?}"
    );
    assert!(cdc.iter().all(|f| is_cdc_name(f)), "{cdc:?}");
    let paths: Vec<PathBuf> = cdc.iter().map(|f| dir.join(f)).collect();
    let read = footers(&paths);
    let mut ids = Vec::new();
    let mut commit = None;
    for p in &paths {
        for r in read[p]["rows"].as_array().unwrap() {
            ids.push(r["id"].as_i64().unwrap());
            // Every row has the one transaction's commit time; the names differ anyway.
            let ts = r["ts"].as_str().unwrap().to_string();
            assert_eq!(commit.get_or_insert_with(|| ts.clone()), &ts);
        }
    }
    assert_eq!(
        ids,
        (1..=40000).collect::<Vec<i64>>(),
        "every row once, in order of the file names"
    );
    assert_eq!(
        format!(
            "{}.parquet",
            name_of_dms_timestamp(commit.as_ref().unwrap())
        ),
        cdc[0],
        "the first file has the commit's own name"
    );
}
