//! Every file in the repository's `config/` directory is loaded here, so the examples the
//! README points to never rot: each deserializes key by key and loads as `pgcdc -c` would.
//! (An example of a feature not built yet would have to give exactly its "not supported by
//! this build yet" error; none is left.)

use super::*;

/// The values of the `${VAR}` placeholders the examples use. An example with any other
/// placeholder fails its test.
fn example_var(name: &str) -> Option<String> {
    let value = match name {
        "PGCDC_DB_PASSWORD" => "example-password",
        "PGCDC_BUCKET" => "example-bucket",
        "AWS_REGION" => "eu-west-1",
        _ => return None,
    };
    Some(value.to_string())
}

/// The example's text with its placeholders filled in.
fn example_text(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(file);
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    env::substitute_with(&raw, example_var).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The example deserialized without the checks of [`Config::validate`]: every key is one this
/// build knows.
fn example_keys(file: &str) -> Config {
    toml::from_str(&example_text(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Loading the example as `pgcdc -c` would (after substitution).
fn example_load(file: &str) -> Result<Config> {
    Config::parse(&example_text(file))
}

#[test]
fn every_example_has_a_test() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "kinesis.toml",
            "local-dms.toml",
            "local.toml",
            "s3-and-kinesis.toml",
            "s3-dms.toml",
            "s3.toml"
        ]
    );
}

#[test]
fn local_example_loads() {
    let c = example_load("local.toml").unwrap();
    assert_eq!(
        c.source.url.as_deref(),
        Some("postgres://pgcdc:example-password@db.internal:5432/shop?sslmode=verify-full&sslrootcert=/etc/pgcdc/ca.pem")
    );
    assert_eq!(c.source.tables, ["public.*"]);
    assert_eq!(c.source.heartbeat_interval, Some(Duration::from_secs(60)));
    assert_eq!(c.pipeline.mode, Mode::FullLoadAndCdc);
    assert_eq!(c.pipeline.load_workers, Some(4));
    let sinks: Vec<_> = c.parquet_sinks().collect();
    assert_eq!(sinks.len(), 1);
    assert_eq!(sinks[0].url, "file:///var/lib/pgcdc/out");
    assert_eq!(sinks[0].layout, Layout::Native);
    assert_eq!(sinks[0].max_file_size, 128 << 20);
    assert_eq!(sinks[0].compression, Compression::Zstd);
}

#[test]
fn local_dms_example_loads() {
    let c = example_load("local-dms.toml").unwrap();
    let p = c.parquet_sinks().next().unwrap();
    assert_eq!((p.url.as_str(), p.layout), ("file:///var/lib/pgcdc/dms", Layout::Dms));
    assert!(p.date_partitioning && p.include_op_for_full_load && !p.cdc_inserts_only);
    assert_eq!(p.timestamp_column.as_deref(), Some("DMS_TIMESTAMP"));
    assert_eq!(p.compression, Compression::None);
}

#[test]
fn s3_example_loads() {
    let c = example_keys("s3.toml");
    let p = c.parquet_sinks().next().unwrap();
    assert_eq!(p.url, "s3://example-bucket/cdc/");
    assert_eq!(p.storage_class.as_deref(), Some("INTELLIGENT_TIERING"));
    assert_eq!(p.sse.as_deref(), Some("aws:kms"));
    assert_eq!(c.aws.unwrap().region.as_deref(), Some("eu-west-1"));
    assert_eq!(c.catalog.unwrap().glue_database, "shop_cdc");
    let loaded = example_load("s3.toml").expect("s3.toml loads");
    assert_eq!(
        loaded.parquet_sinks().next().unwrap().location,
        crate::config::Location::S3 { bucket: "example-bucket".into(), prefix: "cdc/".into() }
    );
}

#[test]
fn s3_dms_example_loads() {
    let c = example_load("s3-dms.toml").expect("s3-dms.toml loads");
    let p = c.parquet_sinks().next().unwrap();
    assert_eq!(
        (p.url.as_str(), p.layout),
        ("s3://example-bucket/dms/", Layout::Dms)
    );
    assert!(p.date_partitioning);
    assert_eq!(p.timestamp_column.as_deref(), Some("DMS_TIMESTAMP"));
}

#[test]
fn kinesis_example_loads() {
    let c = example_keys("kinesis.toml");
    let [SinkConfig::Kinesis(k)] = c.sinks.as_slice() else {
        panic!("one Kinesis sink: {:?}", c.sinks)
    };
    assert_eq!(
        (k.stream.as_str(), k.format.as_str()),
        ("shop-cdc", "dms-json")
    );
    assert_eq!(c.state.as_ref().unwrap().url, "s3://example-bucket/pgcdc-state/");
    assert_eq!(c.pipeline.mode, Mode::FullLoadAndCdc);
    assert!(c.dead_letter.is_some());
    let loaded = example_load("kinesis.toml").expect("a Kinesis sink with [state] is built");
    assert!(matches!(loaded.state.unwrap().location, crate::config::Location::S3 { .. }));
}

#[test]
fn s3_and_kinesis_example_loads() {
    let c = example_keys("s3-and-kinesis.toml");
    let [SinkConfig::Parquet(p), SinkConfig::Kinesis(k)] = c.sinks.as_slice() else {
        panic!("a Parquet and a Kinesis sink: {:?}", c.sinks)
    };
    assert_eq!(
        (p.url.as_str(), k.stream.as_str()),
        ("s3://example-bucket/cdc/", "shop-cdc")
    );
    let loaded = example_load("s3-and-kinesis.toml").expect("a Parquet sink beside the Kinesis one is built");
    assert_eq!(loaded.sinks.len(), 2);
}
