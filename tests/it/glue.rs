//! Glue Data Catalog tables (issue 7 step 6, `[catalog] glue_database`) against moto: a full
//! load and CDC into S3 create one Glue table per table with the files' columns and types,
//! the location and the `date` partition key, one partition per date folder plus `load`;
//! `ALTER TABLE ... ADD COLUMN` updates the table's columns. Read back with boto3.

use std::process::Command;

use crate::s3::{new_bucket, pgcdc_s3, s3_config};
use crate::support::{describe, moto, python, Setup};

/// Runs a boto3 Glue snippet (`glue` is the client) and returns what it prints as JSON.
pub(crate) fn glue_py(body: &str) -> serde_json::Value {
    let m = moto();
    let script = format!(
        "import boto3, json\nglue = boto3.client('glue', endpoint_url='{}', region_name='us-east-1')\n{body}\n",
        m.endpoint_url()
    );
    let out = m
        .aws_env(&mut Command::new(python()))
        .args(["-c", &script])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "boto3 glue: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Pairs of strings: (column name, type) or (partition value, location).
pub(crate) type Pairs = Vec<(String, String)>;

/// `(columns, location, partition keys, partitions)` of a Glue table.
pub(crate) fn read_table(db: &str, table: &str) -> (Pairs, String, Vec<String>, Pairs) {
    let v = glue_py(&format!(
        "t = glue.get_table(DatabaseName='{db}', Name='{table}')['Table']\n\
         ps = glue.get_partitions(DatabaseName='{db}', TableName='{table}')['Partitions']\n\
         print(json.dumps({{'cols': [[c['Name'], c['Type']] for c in t['StorageDescriptor']['Columns']],\
          'loc': t['StorageDescriptor']['Location'], 'keys': [k['Name'] for k in t.get('PartitionKeys', [])],\
          'params': t.get('Parameters', {{}}), 'serde': t['StorageDescriptor']['SerdeInfo']['SerializationLibrary'],\
          'parts': sorted([[p['Values'][0], p['StorageDescriptor']['Location']] for p in ps])}}))"
    ));
    assert_eq!(v["params"]["classification"], "parquet", "{v}");
    assert!(
        v["serde"].as_str().unwrap().contains("ParquetHiveSerDe"),
        "{v}"
    );
    let pairs = |x: &serde_json::Value| -> Vec<(String, String)> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_string(),
                    p[1].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let keys = v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    (
        pairs(&v["cols"]),
        v["loc"].as_str().unwrap().to_string(),
        keys,
        pairs(&v["parts"]),
    )
}

/// The partitions the native-layout table `public.{table}` under `s3://{bucket}/{prefix}/`
/// must have in Glue: `(date, location)` of every `cdc/date=` folder in S3, plus `load`
/// when it has full-load files; sorted like [`read_table`]'s.
pub(crate) fn partitions_in_s3(bucket: &str, prefix: &str, table: &str) -> Pairs {
    let listed = glue_py(&format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url=glue.meta.endpoint_url, region_name='us-east-1')\n\
         keys = [o['Key'] for o in s3.list_objects_v2(Bucket='{bucket}', Prefix='{prefix}/public/{table}/')['Contents']]\n\
         dirs = set(k.rsplit('/', 1)[0][len('{prefix}/public/{table}/'):] for k in keys if k.endswith('.parquet'))\n\
         print(json.dumps(sorted(dirs)))"
    ));
    let root = format!("s3://{bucket}/{prefix}/public/{table}/");
    let mut want: Pairs = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| match d.as_str().unwrap() {
            "load" => ("load".to_string(), format!("{root}load/")),
            dir => {
                let date = dir.strip_prefix("cdc/date=").unwrap_or_else(|| panic!("{dir}"));
                (date.to_string(), format!("{root}{dir}/"))
            }
        })
        .collect();
    want.sort();
    want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_load_and_cdc_register_glue_tables_with_columns_partitions_and_new_columns() {
    let s = Setup::new("glue_e2e").await;
    let bucket = new_bucket("glue");
    let db = format!("pgcdc_glue_{}", std::process::id());
    glue_py(&format!(
        "glue.create_database(DatabaseInput={{'Name': '{db}'}})"
    ));
    s.db.exec(
        "CREATE TABLE orders (id bigint PRIMARY KEY, qty int, small smallint, price numeric(10,2),
                              ok boolean, note text, raw bytea, day date, at timestamptz,
                              ratio double precision, tags text[]);
         INSERT INTO orders SELECT g, g, 1, g / 3.0, true, 'n' || g, '\\x01', '2026-01-01', now(), 0.5,
                                   ARRAY['a'] FROM generate_series(1, 500) g",
    )
    .await;
    s.db.create_publication(&s.publication, "orders").await;
    let cfg = s3_config(&s, &format!("s3://{bucket}/out/"), &moto().endpoint_url());
    let toml = std::fs::read_to_string(&cfg).unwrap()
        + &format!("\n[catalog]\nglue_database = \"{db}\"\n");
    std::fs::write(&cfg, toml).unwrap();

    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "full load: {}", describe(&out));
    s.db.exec(
        "INSERT INTO orders (id, qty) VALUES (1001, 7); UPDATE orders SET note = 'x' WHERE id = 3",
    )
    .await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "CDC: {}", describe(&out));

    let (cols, loc, keys, parts) = read_table(&db, "public_orders");
    let ty = |name: &str| cols.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone());
    for (name, want) in [
        ("id", "bigint"),
        ("qty", "int"),
        ("small", "smallint"),
        ("price", "decimal(10,2)"),
        ("ok", "boolean"),
        ("note", "string"),
        ("raw", "binary"),
        ("day", "date"),
        ("at", "timestamp"),
        ("ratio", "double"),
        ("tags", "array<string>"),
    ] {
        assert_eq!(ty(name).as_deref(), Some(want), "{name} in {cols:?}");
    }
    assert!(
        cols.iter().any(|(n, _)| n == "_op"),
        "metadata columns too: {cols:?}"
    );
    assert_eq!(loc, format!("s3://{bucket}/out/public/orders/cdc/"));
    assert_eq!(keys, vec!["date".to_string()]);
    // One partition per date folder of the target, plus the full load's.
    let want = partitions_in_s3(&bucket, "out", "orders");
    assert!(want.len() > 1, "{want:?}");
    assert_eq!(parts, want);

    // A new column: the table's columns follow the newest files.
    s.db.exec("ALTER TABLE orders ADD COLUMN extra varchar(20); INSERT INTO orders (id, extra) VALUES (2001, 'e')")
        .await;
    s.db.exec("UPDATE orders SET extra = 'f' WHERE id = 1")
        .await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(
        out.status.success(),
        "CDC after ADD COLUMN: {}",
        describe(&out)
    );
    let (cols, _, keys, parts2) = read_table(&db, "public_orders");
    assert!(
        cols.iter().any(|(n, t)| n == "extra" && t == "string"),
        "{cols:?}"
    );
    assert_eq!(keys, vec!["date".to_string()]);
    assert!(parts2.len() >= parts.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_glue_database_is_one_clear_error() {
    let s = Setup::new("glue_nodb").await;
    let bucket = new_bucket("gluenodb");
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = s3_config(&s, &format!("s3://{bucket}/out/"), &moto().endpoint_url());
    let toml =
        std::fs::read_to_string(&cfg).unwrap() + "\n[catalog]\nglue_database = \"no_such_db\"\n";
    std::fs::write(&cfg, toml).unwrap();
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = crate::support::stderr(&out);
    assert!(
        err.contains("no_such_db") && err.contains("EntityNotFoundException"),
        "{err}"
    );
    // `check` says the same, and exits 2, as for an unusable S3 target: the configuration
    // names a database that does not exist.
    let out = pgcdc_s3(&cfg, &["check"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(describe(&out).contains("no_such_db"), "{}", describe(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_layout_tables_sit_at_the_table_folder_and_partition_by_date_folders() {
    let s = Setup::new("glue_dms").await;
    let bucket = new_bucket("gluedms");
    let db = format!("pgcdc_glue_dms_{}", std::process::id());
    glue_py(&format!(
        "glue.create_database(DatabaseInput={{'Name': '{db}'}})"
    ));
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')")
        .await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = s3_config(&s, &format!("s3://{bucket}/dms/"), &moto().endpoint_url());
    let toml = std::fs::read_to_string(&cfg).unwrap()
        + &format!(
            "layout = \"dms\"\ndate_partitioning = true\n\n[catalog]\nglue_database = \"{db}\"\n"
        );
    std::fs::write(&cfg, toml).unwrap();
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "full load: {}", describe(&out));
    s.db.exec("INSERT INTO t VALUES (2, 'b')").await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "CDC: {}", describe(&out));

    let (cols, loc, keys, parts) = read_table(&db, "public_t");
    assert_eq!(
        cols.first().map(|(n, _)| n.as_str()),
        Some("Op"),
        "DMS puts Op first: {cols:?}"
    );
    assert!(
        cols.iter().any(|(n, t)| n == "id" && t == "int"),
        "{cols:?}"
    );
    assert_eq!(loc, format!("s3://{bucket}/dms/public/t/"));
    assert_eq!(keys, vec!["date".to_string()]);
    assert!(
        parts.contains(&("load".into(), format!("s3://{bucket}/dms/public/t/"))),
        "{parts:?}"
    );
    let dated: Vec<_> = parts.iter().filter(|(v, _)| v != "load").collect();
    assert_eq!(dated.len(), 1, "{parts:?}");
    let (v, l) = dated[0];
    assert_eq!(
        l,
        &format!("s3://{bucket}/dms/public/t/{}/", v.replace('-', "/"))
    );
}

/// A table that joins the publication is reloaded mid-stream (full-load-and-cdc), and its
/// load files are registered as they are published: the Glue table and its `load`
/// partition exist when the run ends, with no change to the table streamed after it joined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_table_is_registered_by_the_run_that_reloads_it() {
    let s = Setup::new("glue_reload").await;
    let bucket = new_bucket("gluereload");
    let db = format!("pgcdc_glue_reload_{}", std::process::id());
    glue_py(&format!("glue.create_database(DatabaseInput={{'Name': '{db}'}})"));
    s.db.exec(
        "CREATE TABLE first (id int PRIMARY KEY, v text); INSERT INTO first VALUES (1, 'a');
         CREATE TABLE late (id int PRIMARY KEY, v text); INSERT INTO late SELECT g, 'l' FROM generate_series(1, 50) g",
    )
    .await;
    s.db.create_publication(&s.publication, "first").await;
    let cfg = s3_config(&s, &format!("s3://{bucket}/out/"), &moto().endpoint_url());
    let toml = std::fs::read_to_string(&cfg).unwrap() + &format!("\n[catalog]\nglue_database = \"{db}\"\n");
    std::fs::write(&cfg, toml).unwrap();
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "full load: {}", describe(&out));

    s.db.exec(&format!("ALTER PUBLICATION {} ADD TABLE late; INSERT INTO first VALUES (2, 'b')", s.publication)).await;
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "the run that reloads `late`: {}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("table reloaded"), "{}", describe(&out));

    let (cols, loc, keys, parts) = read_table(&db, "public_late");
    assert!(cols.iter().any(|(n, t)| n == "v" && t == "string"), "{cols:?}");
    assert_eq!(loc, format!("s3://{bucket}/out/public/late/cdc/"));
    assert_eq!(keys, vec!["date".to_string()]);
    assert_eq!(parts, partitions_in_s3(&bucket, "out", "late"));
    assert!(parts.iter().any(|(v, _)| v == "load"), "{parts:?}");
}
