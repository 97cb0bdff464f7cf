//! `pgcdc dms compare` (issue 9 steps 4-5): DMS's real files (`testdata/dms_s3/`, copied to
//! `tests/fixtures/dms/`) beside pgcdc's output of the same rows are equal, and rows changed,
//! removed or added on either side are named exactly; a `layout = "dms"` run (local and S3)
//! equals a native run of the same workload; bad inputs are one clear error. The HTML report
//! is rendered by headless Chromium.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::dms_layout::{footer, names, real_dms_file, sql_literal, TABLE_DDL};
use crate::s3::new_bucket;
use crate::support::{describe, moto, output_of, pgcdc, python, repo_root, stderr, stdout, write_config, Setup};

fn fixture(rel: &str) -> PathBuf {
    repo_root().join("tests/fixtures/dms").join(rel)
}

/// Copies `from` to `dir/to`, creating folders; gzipped when `to` ends in `.gz`.
fn place(dir: &Path, to: &str, from: &Path) {
    let dest = dir.join(to);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let data = std::fs::read(from).unwrap();
    if to.ends_with(".gz") {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        std::fs::write(dest, gz.finish().unwrap()).unwrap();
    } else {
        std::fs::write(dest, data).unwrap();
    }
}

/// `pgcdc dms compare -c cfg --dms dms [more]` (with moto's credentials in the environment).
async fn compare(cfg: &Path, dms: &str, more: &[&str]) -> Output {
    let mut cmd = pgcdc();
    moto().aws_env(&mut cmd);
    cmd.args(["dms", "compare", "-c"]).arg(cfg).args(["--dms", dms]).args(more);
    output_of(cmd).await
}

async fn compare_json(cfg: &Path, dms: &str, more: &[&str], code: i32) -> Value {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(more);
    let out = compare(cfg, dms, &args).await;
    assert_eq!(out.status.code(), Some(code), "{}", describe(&out));
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
}

fn table<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tables"].as_array().unwrap().iter().find(|t| t["table"] == name).unwrap_or_else(|| panic!("no {name} in {report:#}"))
}

/// The examples of one kind: each example's key values joined, and its differing columns.
fn examples(t: &Value, kind: &str) -> Vec<(String, Vec<String>)> {
    t["examples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| {
            let key = e["key"].as_object().unwrap().values().map(|v| v.as_str().unwrap_or("NULL").to_string()).collect::<Vec<_>>().join(",");
            let cols = e["columns"].as_array().map_or(vec![], |c| c.iter().map(|c| c["column"].as_str().unwrap().to_string()).collect());
            (key, cols)
        })
        .collect()
}

/// Simple CSV lines (the Oracle files hold no quotes) as SQL literals; empty = NULL.
fn csv_rows(path: &Path, skip_header: bool) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(usize::from(skip_header))
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(|f| if f.is_empty() { "NULL".to_string() } else { format!("'{}'", f.replace('\'', "''")) }).collect())
        .collect()
}

const EMP_COLS: &str = "employee_id, first_name, last_name, email, phone_number, hire_date, job_id, salary, commission_pct, manager_id, department_id";

/// The source tables behind the real files, holding the rows DMS's files end with.
async fn source_of_the_real_files(s: &Setup) {
    s.db.exec(&format!(
        "CREATE SCHEMA hr;
         CREATE TABLE hr.employees (employee_id int PRIMARY KEY, first_name text, last_name text, email text, phone_number text,
           hire_date timestamp, job_id text, salary numeric(8,2), commission_pct numeric(4,2), manager_id int, department_id int);
         CREATE TABLE hr.customer (customerid text PRIMARY KEY, email text, lclid text);
         {TABLE_DDL}"
    ))
    .await;
    let upsert = |table: &str, cols: &str, key: &str, rows: Vec<Vec<String>>| {
        let sets: Vec<String> = cols.split(", ").filter(|c| *c != key).map(|c| format!("{c} = EXCLUDED.{c}")).collect();
        rows.into_iter()
            .map(|r| format!("INSERT INTO {table} ({cols}) VALUES ({}) ON CONFLICT ({key}) DO UPDATE SET {};", r.join(", "), sets.join(", ")))
            .collect::<String>()
    };
    // Full load, then the CDC file's updates (an update of a key the load lacks is an insert, as DMS applies it).
    s.db.exec(&upsert("hr.employees", EMP_COLS, "employee_id", csv_rows(&fixture("oracle_csv/LOAD00000001.csv"), true))).await;
    let cdc: Vec<Vec<String>> = csv_rows(&fixture("20190118-184518184.csv"), true).into_iter().map(|r| r[1..].to_vec()).collect();
    s.db.exec(&upsert("hr.employees", EMP_COLS, "employee_id", cdc)).await;
    s.db.exec(&upsert("hr.customer", "customerid, email, lclid", "customerid", csv_rows(&fixture("oracle_csv/customer/Customers_FullLog.csv"), true))).await;
    for f in ["Customer_CDC_Log_File.csv", "Customer_CDC_log_file.csv"] {
        let rows = csv_rows(&fixture(&format!("oracle_csv/customer/{f}")), false).into_iter().map(|r| r[1..].to_vec()).collect();
        s.db.exec(&upsert("hr.customer", "customerid, email, lclid", "customerid", rows)).await;
    }
    // The PostgreSQL table from the real Parquet file's own rows (as tests/it/dms_layout.rs).
    let real = footer(&real_dms_file());
    let cols: Vec<String> = names(&real).into_iter().filter(|n| n != "DMS_TIMESTAMP").collect();
    for row in real["rows"].as_array().unwrap() {
        let values: Vec<String> = cols
            .iter()
            .map(|c| match c.as_str() {
                "my_bytea" => format!("'\\x{}'", row[c].as_str().unwrap()),
                "my_money" => format!("{}::numeric::money", sql_literal(&row[c])),
                _ => sql_literal(&row[c]),
            })
            .collect();
        s.db.exec(&format!("INSERT INTO dms_test_table ({}) VALUES ({})", cols.join(", "), values.join(", "))).await;
    }
    // The doubles as Python prints them (shortest round trip): JSON numbers parsed by
    // serde_json can be one unit in the last place off, which compare rightly reports.
    let script = format!(
        "import pyarrow.parquet as pq\nfor r in pq.read_table('{}').to_pylist(): print(r['id'], repr(r['my_double']))",
        real_dms_file().display()
    );
    let out = std::process::Command::new(python()).args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (id, d) = line.split_once(' ').unwrap();
        s.db.exec(&format!("UPDATE dms_test_table SET my_double = '{d}'::float8 WHERE id = {id}")).await;
    }
}

/// The real files in DMS's layout: Oracle CSV with header (full load and CDC with `Op`), the
/// customer files without header (CDC in date folders, one gzipped), the PostgreSQL Parquet.
fn dms_folder(dir: &Path) {
    place(dir, "hr/employees/LOAD00000001.csv", &fixture("oracle_csv/LOAD00000001.csv"));
    place(dir, "hr/employees/20190118-184518184.csv", &fixture("20190118-184518184.csv"));
    place(dir, "hr/customer/LOAD00000001.csv", &fixture("oracle_csv/customer/Customers_FullLog.csv"));
    place(dir, "hr/customer/2019/01/01/20190101-000000000.csv", &fixture("oracle_csv/customer/Customer_CDC_Log_File.csv"));
    place(dir, "hr/customer/2019/01/02/20190102-000000000.csv.gz", &fixture("oracle_csv/customer/Customer_CDC_log_file.csv"));
    place(dir, "public/dms_test_table/LOAD00000001.parquet", &real_dms_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_dms_files_equal_pgcdc_output_of_the_same_rows_and_changes_are_named() {
    let s = Setup::new("dms_cmp_real").await;
    source_of_the_real_files(&s).await;
    s.db.create_publication(&s.publication, "hr.employees, hr.customer, dms_test_table").await;
    let cfg = s.config_with("full-load-and-cdc", "");
    s.run_until_current(&cfg).await;
    let dms = s.dir.path().join("dms");
    dms_folder(&dms);
    let dms_url = dms.display().to_string();

    let report = compare_json(&cfg, &dms_url, &[], 0).await;
    assert_eq!(report["equal"], true, "{report:#}");
    assert_eq!(report["pgcdc_layout"], "native");
    assert_eq!(report["tables"].as_array().unwrap().len(), 3);
    let emp = table(&report, "hr.employees");
    assert_eq!((emp["dms_changes"]["load"].as_u64(), emp["dms_changes"]["update"].as_u64()), (Some(1900), Some(17)));
    assert_eq!(emp["matching"], emp["pgcdc_rows"]);
    let cust = table(&report, "hr.customer");
    assert_eq!((cust["dms_rows"].as_u64(), cust["dms_files"].as_u64()), (Some(500), Some(3)));
    assert_eq!(table(&report, "public.dms_test_table")["matching"], 10);
    let text = compare(&cfg, &dms_url, &[]).await;
    assert_eq!(text.status.code(), Some(0), "{}", describe(&text));
    assert!(stdout(&text).contains("hr.employees: equal"), "{}", stdout(&text));

    // DMS's side: employee 100's last name changed, employee 101 removed, 9999 added.
    let load = dms.join("hr/employees/LOAD00000001.csv");
    let text = std::fs::read_to_string(&load).unwrap();
    let text = text.replace("100,Steven,King,", "100,Steven,Kong,");
    let text: String = text.lines().filter(|l| !l.starts_with("101,")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&load, format!("{text}9999,New,Person,NPERSON,1,2020-01-01 00:00:00,IT_PROG,1.00,,100,60\n")).unwrap();
    // pgcdc's side: a customer's email changed, one deleted, one added; a Parquet row's value.
    s.db.exec(
        "UPDATE hr.customer SET email = 'other@example.com' WHERE customerid = 'BAN001000';
         DELETE FROM hr.customer WHERE customerid = 'BAN001001';
         INSERT INTO hr.customer VALUES ('BAN009999', 'x@example.com', 'MAC1');
         UPDATE dms_test_table SET my_real = 1.5, my_jsonb = '{\"k\": 2}' WHERE id = 4",
    )
    .await;
    s.run_until_current(&cfg).await;
    let report = compare_json(&cfg, &dms_url, &[], 3).await;
    assert_eq!(report["equal"], false);
    let emp = table(&report, "hr.employees");
    assert_eq!((emp["only_in_dms"].as_u64(), emp["only_in_pgcdc"].as_u64(), emp["differing"].as_u64()), (Some(1), Some(1), Some(1)));
    assert_eq!(examples(emp, "only_in_dms"), [("9999".to_string(), vec![])]);
    assert_eq!(examples(emp, "only_in_pgcdc"), [("101".to_string(), vec![])]);
    assert_eq!(examples(emp, "differing"), [("100".to_string(), vec!["last_name".to_string()])]);
    let d = &emp["examples"].as_array().unwrap().iter().find(|e| e["kind"] == "differing").unwrap()["columns"][0];
    assert_eq!((d["dms"].as_str(), d["pgcdc"].as_str()), (Some("Kong"), Some("King")));
    let cust = table(&report, "hr.customer");
    assert_eq!(examples(cust, "only_in_dms"), [("BAN001001".to_string(), vec![])]);
    assert_eq!(examples(cust, "only_in_pgcdc"), [("BAN009999".to_string(), vec![])]);
    assert_eq!(examples(cust, "differing"), [("BAN001000".to_string(), vec!["email".to_string()])]);
    let t = table(&report, "public.dms_test_table");
    assert_eq!(examples(t, "differing"), [("4".to_string(), vec!["my_real".to_string(), "my_jsonb".to_string()])]);
    assert_eq!((t["only_in_dms"].as_u64(), t["only_in_pgcdc"].as_u64(), t["matching"].as_u64()), (Some(0), Some(0), Some(9)));
    let text = compare(&cfg, &dms_url, &[]).await;
    assert_eq!(text.status.code(), Some(3));
    assert!(stdout(&text).contains("last_name: DMS \"Kong\" / pgcdc \"King\""), "{}", stdout(&text));
}

const WORKLOAD: &str = "CREATE TABLE t (id int PRIMARY KEY, v text, n numeric(10,2), ts timestamptz, f float8, r real, b bool,
     j jsonb, u uuid, m money, d date);
   INSERT INTO t SELECT i, 'row ' || i, i * 1.25, '2024-01-31 12:00:00.123456+00'::timestamptz + i * interval '1 hour',
     i / 3.0, i / 7.0, i % 2 = 0, jsonb_build_object('i', i), md5(i::text)::uuid, i * 2.5, date '2024-01-01' + i
     FROM generate_series(1, 50) i";

const CHANGES: &str = "INSERT INTO t (id, v, n, b) VALUES (100, 'new', 1.5, true), (101, 'newer', NULL, NULL);
   UPDATE t SET v = 'changed', f = 1e300 WHERE id IN (3, 4);
   UPDATE t SET ts = '2024-06-01 00:00:00.000001+00' WHERE id = 5;
   DELETE FROM t WHERE id IN (7, 100)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dms_layout_run_local_and_on_s3_equals_a_native_run_and_a_changed_cell_is_found() {
    let s = Setup::new("dms_cmp_layout").await;
    s.db.exec(WORKLOAD).await;
    s.db.create_publication(&s.publication, "t").await;
    let bucket = new_bucket("dmscmp");
    let (native, dms) = (s.dir.path().join("native"), s.dir.path().join("dms"));
    let toml = format!(
        "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\n\n[pipeline]\nmode = \"full-load-and-cdc\"\nstatus_interval = \"1s\"\n\n\
         [aws]\nregion = \"us-east-1\"\nendpoint_url = \"{}\"\n\n\
         [[sink]]\nkind = \"parquet\"\nurl = \"{}\"\nflush_interval = \"1s\"\n\n\
         [[sink]]\nkind = \"parquet\"\nurl = \"{}\"\nflush_interval = \"1s\"\nlayout = \"dms\"\ntimestamp_column = \"DMS_TIMESTAMP\"\nparquet_timestamp_in_millisecond = true\ndate_partitioning = true\n\n\
         [[sink]]\nkind = \"parquet\"\nurl = \"s3://{bucket}/dms/\"\nflush_interval = \"1s\"\nlayout = \"dms\"\nformat = \"csv\"\ncompression = \"gzip\"\nadd_column_name = true\ninclude_op_for_full_load = true\n",
        s.db.url,
        s.publication,
        s.slot,
        moto().endpoint_url(),
        native.display(),
        dms.display()
    );
    let cfg = write_config(s.dir.path(), &toml);
    let run = |cfg: PathBuf| async move {
        let mut cmd = pgcdc();
        moto().aws_env(&mut cmd);
        cmd.args(["run", "--until-lsn", "current", "-c"]).arg(&cfg);
        let out = output_of(cmd).await;
        assert!(out.status.success(), "{}", describe(&out));
    };
    run(cfg.clone()).await;
    s.db.exec(CHANGES).await;
    run(cfg.clone()).await;

    // --ours defaults to the first Parquet sink: the native run.
    let local = compare_json(&cfg, &dms.display().to_string(), &[], 0).await;
    let t = table(&local, "public.t");
    assert_eq!((t["matching"].as_u64(), t["dms_rows"].as_u64()), (Some(50), Some(50)), "{local:#}");
    assert_eq!(t["dms_changes"]["insert"], 2);
    assert_eq!(t["dms_changes"]["delete"], 2);
    assert_eq!(t["pgcdc_changes"]["update"], 3);
    let on_s3 = compare_json(&cfg, &format!("s3://{bucket}/dms/"), &[], 0).await;
    assert_eq!(table(&on_s3, "public.t")["matching"], 50, "{on_s3:#}");
    assert_eq!(on_s3["dms"], format!("s3://{bucket}/dms/"));
    // The DMS layout as --ours (read like DMS's own files): equal too.
    let both_dms = compare_json(&cfg, &format!("s3://{bucket}/dms/"), &["--ours", &dms.display().to_string()], 0).await;
    assert_eq!(both_dms["pgcdc_layout"], "dms");

    // One cell of one DMS file changed: id 10's v.
    let load = dms.join("public/t/LOAD00000001.parquet");
    let script = format!(
        "import pyarrow.parquet as pq, pyarrow as pa\nt = pq.read_table('{0}')\nv = t.column('v').to_pylist()\nids = t.column('id').to_pylist()\nv[ids.index(10)] = 'tampered'\nt = t.set_column(t.schema.get_field_index('v'), 'v', pa.array(v, pa.string()))\npq.write_table(t, '{0}', compression='none')\n",
        load.display()
    );
    let out = std::process::Command::new(python()).args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let changed = compare_json(&cfg, &dms.display().to_string(), &[], 3).await;
    let t = table(&changed, "public.t");
    assert_eq!((t["differing"].as_u64(), t["matching"].as_u64()), (Some(1), Some(49)));
    assert_eq!(examples(t, "differing"), [("10".to_string(), vec!["v".to_string()])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_one_clear_error_with_a_hint() {
    let s = Setup::new("dms_cmp_bad").await;
    s.db.exec("CREATE TABLE known (id int PRIMARY KEY)").await;
    let cfg = s.config("");
    let empty = s.dir.path().join("empty");
    std::fs::create_dir_all(empty.join("public/known")).unwrap();
    std::fs::write(empty.join("public/known/notes.txt"), "x").unwrap();
    let out = compare(&cfg, &empty.display().to_string(), &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("holds no DMS data file") && stderr(&out).contains("BucketFolder"), "{}", describe(&out));

    let unknown = s.dir.path().join("unknown");
    place(&unknown, "public/nosuch/LOAD00000001.csv", &fixture("20190118-184518184.csv"));
    let out = compare(&cfg, &unknown.display().to_string(), &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("the source has no table public.nosuch") && stderr(&out).contains("hint"), "{}", describe(&out));

    let broken = s.dir.path().join("broken");
    std::fs::create_dir_all(broken.join("public/known")).unwrap();
    std::fs::write(broken.join("public/known/LOAD00000001.parquet"), "not parquet").unwrap();
    let out = compare(&cfg, &broken.display().to_string(), &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot read the DMS file") && err.contains("LOAD00000001.parquet") && err.contains("hint"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1, "one error: {err}");
}

/// Renders `html` in headless Chromium (Debian's `chromium`, see scripts/test-deps.sh): a
/// 1200x900 screenshot and the page's DOM after layout. A missing Chromium fails the test.
fn render_in_chromium(html: &Path, png: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ];
    let run = |extra: &[String]| {
        let out = std::process::Command::new("/usr/bin/chromium")
            .args(common)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(format!("file://{}", html.display()))
            .output()
            .unwrap_or_else(|e| panic!("chromium cannot run ({e}): install it with scripts/test-deps.sh (apt-get install chromium)"));
        assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    run(&[format!("--screenshot={}", png.display()), "--window-size=1200,900".into()]);
    String::from_utf8(run(&["--dump-dom".into()]).stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_renders_in_a_browser() {
    let s = Setup::new("dms_cmp_html").await;
    s.db.exec(
        "CREATE TABLE orders (id int PRIMARY KEY, note text, amount numeric(10,2), at timestamptz);
         CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO orders SELECT i, 'order <' || i || '> & \"more\"', i * 1.5, '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 minute' FROM generate_series(1, 40) i;
         INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 12) i",
    )
    .await;
    s.db.create_publication(&s.publication, "orders, items").await;
    let cfg = s.config_with("full-load-and-cdc", "");
    s.run_until_current(&cfg).await;
    // DMS's files, as DMS would have written them, with differences: a LOB value cut at
    // its limit, a row DMS lacks, one it has extra, an amount it rounded.
    let dms = s.dir.path().join("dms");
    let mut orders = String::from("id,note,amount,at\n");
    for i in 1..=40 {
        if i == 7 {
            continue;
        }
        let note = if i == 3 {
            "order <3".to_string()
        } else if i == 2 {
            "<script>alert(1)</script>".to_string()
        } else { format!("\"order <{i}> & \"\"more\"\"\"") };
        let amount = if i == 5 { "8".to_string() } else { format!("{:.2}", i as f64 * 1.5) };
        orders.push_str(&format!("{i},{note},{amount},2024-01-01 00:{i:02}:00\n"));
    }
    orders.push_str("99,extra,1.00,2024-01-01 01:00:00\n");
    let src = s.dir.path().join("orders.csv");
    std::fs::write(&src, orders).unwrap();
    place(&dms, "public/orders/LOAD00000001.csv", &src);
    let items: String = (1..=12).map(|i| format!("{i},item {i}\n")).collect();
    std::fs::write(&src, items).unwrap();
    place(&dms, "public/items/LOAD00000001.csv.gz", &src);

    let html = s.dir.path().join("report.html");
    let out = compare(&cfg, &dms.display().to_string(), &["--format", "html", "--out", html.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(stdout(&out).contains("2 table(s) compared, 1 differ"), "{}", describe(&out));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("<script>alert"), "values are escaped");
    assert!(!page.contains("http://") && !page.contains("https://"), "nothing is fetched");

    let png = s.dir.path().join("report.png");
    let dom = render_in_chromium(&html, &png);
    for text in ["public.orders", "public.items", "only in DMS", "only in pgcdc", "TOAST/LOB value truncated", "&lt;script&gt;alert(1)"] {
        assert!(dom.contains(text), "{text} in the rendered page: {dom}");
    }
    let stats: Value = serde_json::from_str(&crate::support::run_python_script("png_stats.py", &[png.as_os_str()])).unwrap();
    assert_eq!((stats["width"].as_u64(), stats["height"].as_u64()), (Some(1200), Some(900)), "{stats}");
    assert!(stats["stddev"].as_f64().unwrap() > 10.0 && stats["distinct"].as_u64().unwrap() > 20, "the page is not blank: {stats}");
    assert!(stats["dark_fraction"].as_f64().unwrap() > 0.005, "text is drawn: {stats}");
    if let Some(keep) = std::env::var_os("PGCDC_KEEP_REPORT_PNG") {
        std::fs::copy(&png, keep).unwrap();
    }

    // Markdown: the same findings as a table.
    let md = compare(&cfg, &dms.display().to_string(), &["--format", "markdown"]).await;
    assert_eq!(md.status.code(), Some(3));
    let md = stdout(&md);
    assert!(md.contains("| public.orders | 40 | 40 | 36 | 1 | 1 | 3 |") && md.contains("| differs | id=`3` | note |"), "{md}");
}
