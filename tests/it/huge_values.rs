//! Huge values (issue 13, item 4): a row holding 32 MiB values of text, bytea and jsonb goes
//! through the full load and through CDC (a streamed transaction: the test cluster's
//! `logical_decoding_work_mem` is 64kB) and reads back byte for byte, as pyarrow and DuckDB
//! see it, beside small rows in the same files. Correctness only: memory is measured by
//! `make bench` (workload h, scripts/bench_huge.py).

use crate::support::{assert_success, run_python_script, Setup};

/// 32 MiB of hex digits: above the size at which pgcdc holds a value without copying it
/// and writes it in a row group of its own (16 MiB).
const HEX_32MIB: &str =
    "(SELECT string_agg(md5(g::text || '{salt}'), '') FROM generate_series(1, 1048576) g)";

fn huge_values_sql(salt: &str) -> String {
    let hex = HEX_32MIB.replace("{salt}", salt);
    format!("{hex}, decode({hex}, 'hex') || decode({hex}, 'hex'), jsonb_build_object('v', {hex}, 'n', 1)")
}

/// md5 and length of each data column of row `id`, as PostgreSQL prints it (text, the
/// bytes of bytea, the text form of jsonb).
async fn source_digests(s: &Setup, id: i64) -> serde_json::Value {
    let rows = s
        .db
        .query_strings(&format!(
            "SELECT md5(t), octet_length(t), md5(b), octet_length(b), md5(j::text), octet_length(j::text) FROM huge WHERE id = {id}"
        ))
        .await;
    let r = &rows[0];
    let d = |i: usize| match (&r[i], &r[i + 1]) {
        (Some(md5), Some(len)) => {
            serde_json::json!({"md5": md5, "len": len.parse::<i64>().unwrap()})
        }
        _ => serde_json::Value::Null,
    };
    serde_json::json!({"t": d(0), "b": d(2), "j": d(4)})
}

fn output_rows(s: &Setup) -> Vec<serde_json::Value> {
    let out = run_python_script(
        "value_digests.py",
        &[s.table_dir("public", "huge").as_os_str(), "--duckdb".as_ref()],
    );
    out.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect()
}

fn data_of(row: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({"t": row["t"], "b": row["b"], "j": row["j"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_text_bytea_and_jsonb_values_read_back_unchanged_after_load_and_cdc() {
    let s = Setup::new("huge_values").await;
    s.db.exec("CREATE TABLE huge (id bigint PRIMARY KEY, t text, b bytea, j jsonb)")
        .await;
    s.db.exec(&format!(
        "INSERT INTO huge VALUES (1, 'small', '\\x01', '{{\"a\": 1}}');
         INSERT INTO huge VALUES (2, {});
         INSERT INTO huge VALUES (3, 'after', NULL, NULL);",
        huge_values_sql("load")
    ))
    .await;
    s.db.create_publication(&s.publication, "huge").await;
    let loaded = source_digests(&s, 2).await;
    assert_eq!(loaded["t"]["len"], 32 << 20);
    let cfg = s.config_with("full-load-and-cdc", "");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    s.run_until_current(&cfg).await;

    let rows = output_rows(&s);
    assert_eq!(
        rows.iter()
            .map(|r| (r["_op"].as_str().unwrap(), r["id"].as_i64().unwrap()))
            .collect::<Vec<_>>(),
        vec![("L", 1), ("L", 2), ("L", 3)]
    );
    assert_eq!(data_of(&rows[1]), loaded, "the loaded huge row");
    assert_eq!(data_of(&rows[0]), source_digests(&s, 1).await);
    assert_eq!(data_of(&rows[2]), source_digests(&s, 3).await);

    // One transaction: small changes around new huge values, streamed by the server.
    s.db.exec(&format!(
        "BEGIN;
         UPDATE huge SET t = 'changed' WHERE id = 1;
         UPDATE huge SET (t, b, j) = ({}) WHERE id = 2;
         INSERT INTO huge VALUES (4, {});
         UPDATE huge SET t = 'changed too' WHERE id = 3;
         COMMIT;",
        huge_values_sql("cdc"),
        huge_values_sql("insert")
    ))
    .await;
    s.run_until_current(&cfg).await;

    let rows = output_rows(&s);
    let changes: Vec<_> = rows.iter().filter(|r| r["_op"] != "L").collect();
    assert_eq!(
        changes
            .iter()
            .map(|r| (r["_op"].as_str().unwrap(), r["id"].as_i64().unwrap()))
            .collect::<Vec<_>>(),
        vec![("U", 1), ("U", 2), ("I", 4), ("U", 3)]
    );
    for (row, id) in changes.iter().zip([1, 2, 4, 3]) {
        assert_eq!(
            data_of(row),
            source_digests(&s, id).await,
            "row {id} after CDC"
        );
    }
    s.assert_matches_source("public", "huge").await;
}

/// A huge bytea alone in its row, which CDC decodes inside its pgoutput message
/// (src/pipeline/huge_bytea.rs), and huge values written without compression (`compression
/// = "none"`: the page is read from the Arrow array as the file is written,
/// src/sink/parquet/streamed_chunk.rs) read back byte for byte after load and CDC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_huge_bytea_and_uncompressed_huge_values_read_back_unchanged() {
    let s = Setup::new("huge_bytea_alone").await;
    s.db.exec("CREATE TABLE huge (id bigint PRIMARY KEY, t text, b bytea, j jsonb)")
        .await;
    s.db.exec(&format!(
        "INSERT INTO huge VALUES (1, 'small', '\\x01', NULL);
         INSERT INTO huge VALUES (2, {});",
        huge_values_sql("load")
    ))
    .await;
    s.db.create_publication(&s.publication, "huge").await;
    let cfg = s.config_with("full-load-and-cdc", "");
    let toml = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{toml}compression = \"none\"\n")).unwrap();
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    s.run_until_current(&cfg).await;

    let bytes = |salt: &str| {
        let hex = HEX_32MIB.replace("{salt}", salt);
        format!("decode({hex}, 'hex') || decode({hex}, 'hex')")
    };
    s.db.exec(&format!(
        "BEGIN;
         UPDATE huge SET b = {} WHERE id = 1;
         INSERT INTO huge VALUES (3, 'small', {}, '{{\"a\": 1}}');
         COMMIT;",
        bytes("update"),
        bytes("insert")
    ))
    .await;
    s.run_until_current(&cfg).await;

    let rows = output_rows(&s);
    assert_eq!(
        rows.iter()
            .map(|r| (r["_op"].as_str().unwrap(), r["id"].as_i64().unwrap()))
            .collect::<Vec<_>>(),
        vec![("L", 1), ("L", 2), ("U", 1), ("I", 3)]
    );
    for (row, id) in rows.iter().zip([1, 2, 1, 3]).skip(1) {
        let expected = source_digests(&s, id).await;
        assert_eq!(data_of(row), expected, "row {id} ({})", row["_op"]);
    }
    assert_eq!(
        data_of(&rows[2])["b"]["len"],
        32 << 20,
        "the updated bytea is the huge one"
    );
    s.assert_matches_source("public", "huge").await;
}
