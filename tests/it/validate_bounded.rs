//! `pgcdc validate` in bounded memory: with a tiny memory budget (`PGCDC_VALIDATE_MEMORY`)
//! a table is compared in many partitions, re-split when still too large, and the report
//! is exactly the one of the comparison in one partition — clean after updates, deletes,
//! key changes that carry an unchanged TOASTed value across partitions, chains of them, and
//! truncates; and with the same differences, examples and duplicates once the target is
//! damaged.

use std::path::Path;
use std::process::Output;

use crate::support::{assert_success, describe, parquet_files, pgcdc, report_table, Setup};

/// `pgcdc validate --format json` with `PGCDC_VALIDATE_MEMORY` set to `budget` (if any).
async fn validate_with(cfg: &Path, budget: Option<&str>) -> Output {
    let mut cmd = pgcdc();
    cmd.args(["validate", "--format", "json", "--timeout", "60s", "-c"]).arg(cfg);
    if let Some(b) = budget {
        cmd.env("PGCDC_VALIDATE_MEMORY", b);
    }
    let out = crate::support::output_of(cmd).await;
    eprintln!("pgcdc validate (budget {budget:?}): {}", describe(&out));
    out
}

/// The tables of a report and the partitions each was compared in (from the log).
fn tables_and_partitions(out: &Output) -> (serde_json::Value, Vec<u64>) {
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {}", describe(out)));
    let log = String::from_utf8_lossy(&out.stderr);
    let partitions = log
        .lines()
        .filter(|l| l.contains("compared partition by partition"))
        .filter_map(|l| {
            l.split("partitions=")
                .nth(1)?
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect();
    (report["tables"].clone(), partitions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_memory_budget_compares_in_many_partitions_with_the_same_report() {
    let s = Setup::new("val_bounded").await;
    s.db.exec(
        "CREATE TABLE orders (id bigint PRIMARY KEY, region text, qty int, big text);
         ALTER TABLE orders ALTER big SET STORAGE EXTERNAL;
         CREATE TABLE logs (at int, msg text);
         ALTER TABLE logs REPLICA IDENTITY FULL",
    )
    .await;
    s.db.create_publication(&s.publication, "orders, logs").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    // Every 97th row has a TOASTed value that key changes leave unchanged.
    s.db.exec(
        "INSERT INTO orders SELECT g, 'r' || (g % 13), g % 100, CASE WHEN g % 97 = 0 THEN repeat(md5(g::text), 80) END
           FROM generate_series(1, 50000) g;
         INSERT INTO logs SELECT g % 500, 'm' || (g % 7) FROM generate_series(1, 5000) g",
    )
    .await;
    s.run_until_current(&cfg).await;
    s.db.exec(
        "UPDATE orders SET qty = qty + 1 WHERE id % 5 = 0;
         DELETE FROM orders WHERE id % 11 = 0;
         UPDATE orders SET id = id + 1000000 WHERE id % 97 = 0;
         UPDATE orders SET qty = -qty WHERE id > 1000000 AND id % 2 = 0;
         TRUNCATE logs;
         INSERT INTO logs SELECT g % 300, 'n' || (g % 5) FROM generate_series(1, 4000) g;
         DELETE FROM logs WHERE at = 7 AND msg = 'n2'",
    )
    .await;
    s.run_until_current(&cfg).await;
    // A chain: the moved rows move again, their TOASTed value still unchanged.
    s.db.exec("UPDATE orders SET id = id + 1000000 WHERE id > 1000000 AND id % 3 = 0; UPDATE orders SET region = 'x' WHERE id % 17 = 0")
        .await;
    s.run_until_current(&cfg).await;

    let whole = validate_with(&cfg, None).await;
    assert_eq!(whole.status.code(), Some(0), "{}", describe(&whole));
    let (tables, partitions) = tables_and_partitions(&whole);
    assert_eq!(partitions, vec![1, 1], "the default budget holds these tables in one partition");
    let orders = report_table(&serde_json::json!({ "tables": tables }), "public.orders").clone();
    assert_eq!(orders["source_rows"].as_u64(), Some(50000 - 4545), "{orders:#}");
    let tiny = validate_with(&cfg, Some("256KiB")).await;
    assert_eq!(tiny.status.code(), Some(0), "{}", describe(&tiny));
    let (tiny_tables, tiny_partitions) = tables_and_partitions(&tiny);
    assert!(
        tiny_partitions.len() == 2 && tiny_partitions.iter().all(|&n| n > 1) && tiny_partitions.iter().any(|&n| n > 20),
        "a tiny budget splits into many partitions: {tiny_partitions:?}"
    );
    assert_eq!(tiny_tables, tables);

    // Damage the target: drop the file of the second run's changes to `orders`, and write
    // the first `logs` file twice.
    let mut orders_files = parquet_files(&s.table_dir("public", "orders"));
    orders_files.sort();
    assert!(orders_files.len() >= 3, "{orders_files:?}");
    std::fs::remove_file(&orders_files[1]).unwrap();
    let mut logs_files = parquet_files(&s.table_dir("public", "logs"));
    logs_files.sort();
    std::fs::copy(&logs_files[0], logs_files[0].with_file_name("copy-of-first.parquet")).unwrap();

    let whole = validate_with(&cfg, None).await;
    assert_eq!(whole.status.code(), Some(3), "{}", describe(&whole));
    let (tables, _) = tables_and_partitions(&whole);
    let report = serde_json::json!({ "tables": tables });
    let orders = report_table(&report, "public.orders");
    assert!(
        orders["missing"].as_u64() > Some(0) && orders["extra"].as_u64() > Some(0) && orders["differing"].as_u64() > Some(0),
        "{orders:#}"
    );
    assert_eq!(orders["examples"].as_array().map(Vec::len), Some(15), "{orders:#}");
    let logs = report_table(&report, "public.logs");
    assert!(logs["duplicates"].as_u64() > Some(0), "{logs:#}");
    let tiny = validate_with(&cfg, Some("256KiB")).await;
    assert_eq!(tiny.status.code(), Some(3), "{}", describe(&tiny));
    let (tiny_tables, tiny_partitions) = tables_and_partitions(&tiny);
    assert!(tiny_partitions.iter().any(|&n| n > 20), "{tiny_partitions:?}");
    assert_eq!(tiny_tables, tables, "the same counts, examples and duplicates");
}
