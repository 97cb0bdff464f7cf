//! Fencing on S3 (issue 7 step 4): a writer that was cut off from the endpoint (or paused)
//! for longer than its lock's lease finds, when it comes back, that it may not write
//! anything any more — not progress (conditional puts would refuse it anyway) and not data
//! files either — while the run that took over keeps its progress.

use std::time::Duration;

use pgcdc::aws::S3Options;
use pgcdc::config::{AwsConfig, Location};
use pgcdc::storage::{self, PutMode};

use crate::s3::{new_bucket, open_storage};
use crate::s3_faults::{now_secs, start_proxy, write_plan};

/// PUTs that reached the endpoint through the proxy, other than lock renewals.
fn data_puts(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["method"] == "PUT" && !v["path"].as_str().unwrap().contains("_pgcdc/lock") && v["fault"].is_null())
        .count()
}

#[test]
fn a_writer_whose_lease_lapsed_writes_nothing_more() {
    let bucket = new_bucket("fence");
    let b = open_storage(&bucket, "f/"); // the run that takes over: straight to the endpoint
    let dir = tempfile::tempdir().unwrap();
    let (plan, log) = (dir.path().join("plan.json"), dir.path().join("proxy.jsonl"));
    let (_proxy, endpoint) = start_proxy(&plan, &log);
    // The stale run: through the proxy, with a 3 s lease.
    let loc = Location::parse(&format!("s3://{bucket}/f/")).unwrap();
    let a = storage::open(
        &loc,
        &S3Options {
            aws: Some(AwsConfig { region: Some("us-east-1".into()), endpoint_url: Some(endpoint) }),
            lock_lease: Some(Duration::from_secs(3)),
            ..Default::default()
        },
    )
    .unwrap();
    let lock_a = a.lock().unwrap();
    let v1 = a.put("_pgcdc/checkpoint.json", b"1", PutMode::CreateOnly).unwrap();
    a.put("data/before.parquet", b"a", PutMode::Overwrite).unwrap();

    // A is cut off for longer than its lease: its renewals fail, the lease lapses.
    write_plan(&plan, &serde_json::json!({"rules": [], "outage_until": now_secs() + 6.0}));
    std::thread::sleep(Duration::from_secs(4));
    // B takes the lapsed lock over and moves progress on.
    let lock_b = b.lock().unwrap();
    let v2 = b.put("_pgcdc/checkpoint.json", b"2", PutMode::ReplaceIf(&v1)).unwrap();
    std::thread::sleep(Duration::from_secs(3)); // the endpoint is back for A

    let before = data_puts(&log);
    for (key, mode) in [
        ("data/after.parquet", PutMode::Overwrite),
        ("_pgcdc/manifest.json", PutMode::CreateOnly),
        ("_pgcdc/checkpoint.json", PutMode::ReplaceIf(&v1)),
    ] {
        let e = a.put(key, b"stale", mode).unwrap_err();
        assert!(e.message.contains("no longer holds the target's lock"), "{key}: {e}");
    }
    let staged = a.staging_dir().join("part");
    std::fs::create_dir_all(a.staging_dir()).unwrap();
    std::fs::write(&staged, b"stale file").unwrap();
    assert!(a.publish_file(&staged, "data/published.parquet").is_err());
    assert!(a.delete("data/before.parquet").is_err());
    assert_eq!(data_puts(&log), before, "the stale writer reached the endpoint");

    // The target holds B's progress and none of A's late writes.
    assert_eq!(b.get_versioned("_pgcdc/checkpoint.json").unwrap().unwrap(), (b"2".to_vec(), v2));
    for key in ["data/after.parquet", "_pgcdc/manifest.json", "data/published.parquet"] {
        assert!(!b.exists(key).unwrap(), "{key} was written by the stale writer");
    }
    assert!(b.exists("data/before.parquet").unwrap());
    // A letting go does not remove B's lock.
    drop(lock_a);
    assert!(b.exists(storage::lock::LOCK_KEY).unwrap());
    drop(lock_b);
}
