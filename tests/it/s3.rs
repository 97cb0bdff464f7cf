//! S3 targets (issue 7 steps 2-4) against a real `moto_server` through the real SDK: the
//! storage contract (conditional puts, versions, multipart uploads, listing), the leased
//! lock object, `pgcdc run` full-load-and-cdc into `s3://bucket/prefix/` read back through
//! pyarrow's S3 filesystem, and one clear error for a bad bucket, a missing bucket and an
//! unreachable endpoint.

use std::process::Command;

use pgcdc::config::{AwsConfig, Location};
use pgcdc::aws::S3Options;
use pgcdc::storage::lock::{LockHolder, LOCK_KEY};
use pgcdc::storage::{self, PutMode, Storage};

use crate::support::{
    describe, moto, output_of, pgcdc, py::py_script, python, stderr, write_config, MotoServer,
    Setup,
};

/// A new bucket on the test's moto server (through boto3); its name.
pub(crate) fn new_bucket(hint: &str) -> String {
    let name = format!("pgcdc-{hint}-{}", std::process::id());
    let m = moto();
    let out = m
        .aws_env(&mut Command::new(python()))
        .args([
            "-c",
            &format!(
                "import boto3; boto3.client('s3', endpoint_url='{}', region_name='us-east-1').create_bucket(Bucket='{name}')",
                m.endpoint_url()
            ),
        ])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "create bucket: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    name
}

/// The storage of `s3://bucket/prefix/` on moto, opened in this process.
pub(crate) fn open_storage(bucket: &str, prefix: &str) -> Box<dyn Storage> {
    let m = moto();
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", MotoServer::ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", MotoServer::SECRET_ACCESS_KEY),
        ("AWS_REGION", MotoServer::REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        std::env::set_var(k, v);
    }
    let loc = Location::parse(&format!("s3://{bucket}/{prefix}")).unwrap();
    let s3_options = S3Options {
            aws: Some(AwsConfig {
                region: Some("us-east-1".into()),
                endpoint_url: Some(m.endpoint_url()),
            }),
            ..Default::default()
        };
    storage::open(&loc, &s3_options).expect("open S3 storage")
}

#[test]
fn storage_contract_on_s3() {
    let bucket = new_bucket("contract");
    let s = open_storage(&bucket, "out/");
    let _lock = s.lock().unwrap();
    // Conditional puts: 412 becomes `refused`, versions change with each put.
    let v1 = s
        .put("_pgcdc/checkpoint.json", b"1", PutMode::CreateOnly)
        .unwrap();
    let e = s
        .put("_pgcdc/checkpoint.json", b"x", PutMode::CreateOnly)
        .unwrap_err();
    assert!(storage::is_refused(&e), "{e}");
    assert_eq!(
        s.get_versioned("_pgcdc/checkpoint.json").unwrap().unwrap(),
        (b"1".to_vec(), v1.clone())
    );
    let v2 = s
        .put("_pgcdc/checkpoint.json", b"22", PutMode::ReplaceIf(&v1))
        .unwrap();
    assert_ne!(v1, v2);
    let e = s
        .put("_pgcdc/checkpoint.json", b"stale", PutMode::ReplaceIf(&v1))
        .unwrap_err();
    assert!(storage::is_refused(&e), "{e}");
    assert_eq!(s.get("_pgcdc/checkpoint.json").unwrap().unwrap(), b"22");
    s.put("_pgcdc/checkpoint.json", b"3", PutMode::Overwrite)
        .unwrap();
    assert_eq!(s.get("_pgcdc/none.json").unwrap(), None);

    // A small file is one PutObject; a file above the threshold a concurrent multipart upload.
    let small = s.staging_dir().join("small.part");
    std::fs::write(&small, b"small").unwrap();
    assert!(s.has_staged(&small));
    s.publish_file(&small, "public/t/a.parquet").unwrap();
    assert!(!small.exists(), "the staged file is consumed");
    let big_len = (storage::s3::MULTIPART_THRESHOLD + storage::s3::PART_SIZE + 12345) as usize;
    let big_data: Vec<u8> = (0..big_len).map(|i| (i % 251) as u8).collect();
    let big = s.staging_dir().join("big.part");
    std::fs::write(&big, &big_data).unwrap();
    s.publish_file(&big, "public/t/b.parquet").unwrap();
    assert!(!big.exists());
    assert!(
        s.get("public/t/b.parquet").unwrap().unwrap() == big_data,
        "the multipart upload round-trips"
    );

    // Both uploads carried a CRC32 that the endpoint checked and kept.
    let m = moto();
    for key in ["out/public/t/a.parquet", "out/public/t/b.parquet"] {
        let out = m
            .aws_env(&mut Command::new(python()))
            .args([
                "-c",
                &format!(
                    "import boto3; print(boto3.client('s3', endpoint_url='{}', region_name='us-east-1')\
                     .head_object(Bucket='{bucket}', Key='{key}', ChecksumMode='ENABLED').get('ChecksumCRC32'))",
                    m.endpoint_url()
                ),
            ])
            .output()
            .expect("python");
        let crc = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && !crc.is_empty() && crc != "None",
            "{key}: CRC32 {crc:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // list / exists / delete.
    assert_eq!(
        s.list("public").unwrap(),
        vec![
            "public/t/a.parquet".to_string(),
            "public/t/b.parquet".to_string()
        ]
    );
    assert!(s
        .list("")
        .unwrap()
        .contains(&"_pgcdc/checkpoint.json".to_string()));
    assert!(s.exists("public/t/a.parquet").unwrap());
    s.delete("public/t/a.parquet").unwrap();
    s.delete("public/t/a.parquet").unwrap();
    assert!(!s.exists("public/t/a.parquet").unwrap());
    // Staging is local and cleared through the trait.
    let left = s.staging_dir().join("left.part");
    std::fs::write(&left, b"x").unwrap();
    s.clear_staging().unwrap();
    assert!(!left.exists());
}

#[test]
fn the_lock_names_its_holder_and_an_expired_lease_is_taken_over() {
    let bucket = new_bucket("lock");
    let s = open_storage(&bucket, "t/");
    let other = |expires_at_ms: u64| {
        serde_json::to_vec(&serde_json::json!({
            "host": "otherhost", "pid": 4242, "since": "2026-01-01T00:00:00Z", "expires_at_ms": expires_at_ms
        }))
        .unwrap()
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // A live lease of another process: refused, naming it; the lock object is unchanged.
    let v = s
        .put(LOCK_KEY, &other(now_ms + 600_000), PutMode::CreateOnly)
        .unwrap();
    let e = s.lock().unwrap_err();
    assert!(
        e.message
            .contains("in use by pgcdc pid 4242 on host otherhost"),
        "{e}"
    );
    assert_eq!(e.exit_code(), 1);
    assert_eq!(s.get_versioned(LOCK_KEY).unwrap().unwrap().1, v);
    // An expired lease (a crashed holder): taken over.
    s.put(LOCK_KEY, &other(now_ms - 1), PutMode::Overwrite)
        .unwrap();
    let held = s.lock().unwrap();
    let holder: LockHolder = serde_json::from_slice(&s.get(LOCK_KEY).unwrap().unwrap()).unwrap();
    assert_eq!(holder.pid, std::process::id());
    // Held by this process: a second lock (a second sink on the same target) is refused.
    let again = open_storage(&bucket, "t/");
    assert!(again
        .lock()
        .unwrap_err()
        .message
        .contains("configured twice"));
    // Released on drop: the object is gone and the lock can be taken again.
    drop(held);
    assert!(!s.exists(LOCK_KEY).unwrap());
    let _l = again.lock().unwrap();
}

/// Reads `s3://bucket/prefix/` through pyarrow's S3 filesystem (`tests/py/s3_fetch.py`) into
/// the test's local output directory; its report (`files`, `parquet_rows`).
pub(crate) fn fetch(s: &Setup, bucket: &str, prefix: &str) -> serde_json::Value {
    let m = moto();
    let fetched = m
        .aws_env(&mut Command::new(python()))
        .arg(py_script("s3_fetch.py"))
        .args([
            &m.endpoint_url(),
            &format!("{bucket}/{prefix}"),
            &s.out().display().to_string(),
        ])
        .output()
        .expect("python");
    assert!(
        fetched.status.success(),
        "s3_fetch.py: {}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    serde_json::from_slice(&fetched.stdout).unwrap()
}

/// A full-load-and-cdc config writing to `url`, with `[aws]` pointing at moto.
pub(crate) fn s3_config(s: &Setup, url: &str, endpoint: &str) -> std::path::PathBuf {
    let toml = format!(
        "[source]\nurl = \"{}\"\npublication = \"{}\"\nslot = \"{}\"\n\n[pipeline]\nmode = \"full-load-and-cdc\"\nstatus_interval = \"1s\"\n\n\
         [aws]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n\n\
         [[sink]]\nkind = \"parquet\"\nurl = \"{url}\"\nflush_interval = \"1s\"\n",
        s.db.url, s.publication, s.slot
    );
    write_config(s.dir.path(), &toml)
}

/// `pgcdc <args> -c cfg` with moto's credentials in the environment.
pub(crate) async fn pgcdc_s3(cfg: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = pgcdc();
    moto().aws_env(&mut cmd);
    cmd.args(args).arg("-c").arg(cfg);
    output_of(cmd).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_load_and_cdc_into_s3_reads_back_through_pyarrow() {
    let s = Setup::new("s3_e2e").await;
    let bucket = new_bucket("e2e");
    s.db.exec(
        "CREATE TABLE t (id int PRIMARY KEY, v text, n numeric(10,2));
         INSERT INTO t SELECT g, 'v' || g, g / 3.0 FROM generate_series(1, 2000) g",
    )
    .await;
    s.db.create_publication(&s.publication, "t").await;
    let cfg = s3_config(&s, &format!("s3://{bucket}/cdc/"), &moto().endpoint_url());
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(
        out.status.success(),
        "full load into S3: {}",
        describe(&out)
    );
    for sql in [
        "INSERT INTO t VALUES (5001, 'new', 1.5), (5002, 'new2', 2.5)",
        "UPDATE t SET v = 'changed' WHERE id % 100 = 0",
        "DELETE FROM t WHERE id BETWEEN 10 AND 19",
        "UPDATE t SET id = id + 10000 WHERE id = 7",
    ] {
        s.db.exec(sql).await;
    }
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "CDC into S3: {}", describe(&out));

    // Read the target back through pyarrow's S3 filesystem into a local copy, then
    // materialise it and compare with the source.
    let report = fetch(&s, &bucket, "cdc");
    let files: Vec<String> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert!(
        files.iter().any(|f| f.contains("/load/")),
        "load files: {files:?}"
    );
    assert!(
        files.iter().any(|f| f.contains("/cdc/")),
        "cdc files: {files:?}"
    );
    assert!(
        !files.iter().any(|f| f == LOCK_KEY),
        "the lock is released at exit: {files:?}"
    );
    assert!(report["parquet_rows"].as_u64().unwrap() >= 2000);
    let n = s.assert_matches_source("public", "t").await;
    assert_eq!(n, 2000 + 2 - 10);

    // status reads the checkpoint through the storage.
    let out = pgcdc_s3(&cfg, &["status", "--json"]).await;
    assert!(out.status.success(), "status: {}", describe(&out));
    assert!(
        crate::support::stdout(&out).contains(&format!("s3://{bucket}/cdc/")),
        "{}",
        describe(&out)
    );
    let out = pgcdc_s3(&cfg, &["check"]).await;
    assert!(out.status.success(), "check: {}", describe(&out));
    assert!(
        crate::support::stdout(&out).contains(&format!("s3://{bucket}/cdc/ is writable")),
        "{}",
        describe(&out)
    );
    // validate reads the S3 target through its storage and finds it equal to the source.
    let out = pgcdc_s3(&cfg, &["validate"]).await;
    assert_eq!(out.status.code(), Some(0), "validate on S3: {}", describe(&out));
    assert!(crate::support::stdout(&out).contains("identical"), "{}", describe(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_missing_or_unreachable_bucket_is_one_clear_error() {
    let s = Setup::new("s3_errors").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY)").await;
    s.db.create_publication(&s.publication, "t").await;
    let endpoint = moto().endpoint_url();
    let dead = format!("http://127.0.0.1:{}", crate::support::util::free_port());
    for (url, endpoint, says) in [
        (
            "s3://Bad_Bucket/x/",
            endpoint.as_str(),
            "not a valid S3 bucket name",
        ),
        (
            "s3://pgcdc-no-such-bucket/x/",
            endpoint.as_str(),
            "the bucket `pgcdc-no-such-bucket` does not exist",
        ),
        (
            "s3://pgcdc-unreachable/x/",
            dead.as_str(),
            "cannot reach the S3 endpoint",
        ),
    ] {
        let cfg = s3_config(&s, url, endpoint);
        let bad_url = says.contains("valid");
        // A bad URL is a configuration error (exit 2) for every command. A bucket that is
        // missing or unreachable: `run` exits 1, and `check` reports a FAIL line and exits 2
        // (issue 7: a permanent target error is the configuration's to fix).
        for (cmd, code) in [
            ("check", 2),
            ("run", if bad_url { 2 } else { 1 }),
        ] {
            let args: &[&str] = if cmd == "run" {
                &["run", "--until-lsn", "current"]
            } else {
                &["check"]
            };
            let out = pgcdc_s3(&cfg, args).await;
            let err = stderr(&out);
            assert_eq!(
                out.status.code(),
                Some(code),
                "{cmd} {url}: {}",
                describe(&out)
            );
            let text = format!("{}{err}", crate::support::stdout(&out));
            assert!(text.contains(says), "{cmd} {url}: {text}");
            assert_eq!(
                text.matches(says).count(),
                1,
                "one error, said once: {text}"
            );
            assert!(
                !text.contains("testing"),
                "no secret in the message: {text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_a_locked_s3_target_is_refused_naming_the_holder() {
    let s = Setup::new("s3_locked").await;
    s.db.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await;
    s.db.create_publication(&s.publication, "t").await;
    let bucket = new_bucket("locked");
    let storage = tokio::task::spawn_blocking({
        let bucket = bucket.clone();
        move || open_storage(&bucket, "cdc/")
    })
    .await
    .unwrap();
    let held = storage.lock().unwrap();
    let cfg = s3_config(&s, &format!("s3://{bucket}/cdc/"), &moto().endpoint_url());
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let want = format!(
        "target s3://{bucket}/cdc/ is in use by pgcdc pid {}",
        std::process::id()
    );
    assert!(stderr(&out).contains(&want), "{}", describe(&out));
    // Released: the run goes through.
    drop(held);
    let out = pgcdc_s3(&cfg, &["run", "--until-lsn", "current"]).await;
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn throttled_requests_are_retried_until_they_succeed() {
    let bucket = new_bucket("throttled");
    let (endpoint, refused) = crate::support::s3_proxy::slow_down_proxy(moto().port(), 3);
    let loc = Location::parse(&format!("s3://{bucket}/t/")).unwrap();
    let _env = open_storage(&bucket, "unused/");
    let s3_options = S3Options {
            aws: Some(AwsConfig {
                region: Some("us-east-1".into()),
                endpoint_url: Some(endpoint),
            }),
            ..Default::default()
        };
    let s = storage::open(&loc, &s3_options).unwrap();
    let started = std::time::Instant::now();
    s.put("_pgcdc/checkpoint.json", b"1", PutMode::CreateOnly)
        .expect("retried until the endpoint accepts it");
    assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(500),
        "backed off: {:?}",
        started.elapsed()
    );
    assert_eq!(s.get("_pgcdc/checkpoint.json").unwrap().unwrap(), b"1");
}

#[test]
fn missing_credentials_and_a_missing_region_are_one_clear_error() {
    let bucket = new_bucket("nocreds");
    let m = moto();
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ] {
        std::env::remove_var(k);
    }
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/pgcdc-aws-config");
    std::env::set_var(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/pgcdc-aws-credentials",
    );
    let open = |region: Option<&str>| {
        let loc = Location::parse(&format!("s3://{bucket}/x/")).unwrap();
        let s3_options = S3Options {
                aws: Some(AwsConfig {
                    region: region.map(str::to_string),
                    endpoint_url: Some(m.endpoint_url()),
                }),
                ..Default::default()
            };
        storage::open(&loc, &s3_options)
    };
    let e = open(None).err().expect("no region is an error");
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(
        e.message.contains("no AWS region") && e.hint.is_some(),
        "{e}"
    );
    let e = open(Some("us-east-1"))
        .unwrap()
        .probe_writable()
        .unwrap_err();
    assert!(e.message.contains("credentials"), "{e}");
    assert!(
        e.hint
            .as_deref()
            .is_some_and(|h| h.contains("AWS_ACCESS_KEY_ID")),
        "{e}"
    );
}

#[test]
fn the_lease_is_renewed_while_the_lock_is_held() {
    let bucket = new_bucket("renew");
    let s = open_storage(&bucket, "r/");
    let expiry = |s: &dyn Storage| {
        let v: serde_json::Value =
            serde_json::from_slice(&s.get(LOCK_KEY).unwrap().unwrap()).unwrap();
        v["expires_at_ms"].as_u64().unwrap()
    };
    let held = s.lock().unwrap();
    let first = expiry(s.as_ref());
    // Renewed every 20 s: after 22 s the lease ends later than it did.
    std::thread::sleep(std::time::Duration::from_secs(22));
    let renewed = expiry(s.as_ref());
    assert!(renewed >= first + 15_000, "renewed: {first} -> {renewed}");
    // The holder tracks its renewed version: releasing deletes its own lock object.
    drop(held);
    assert!(!s.exists(LOCK_KEY).unwrap());
}

#[test]
fn demo_refuses_an_s3_directory() {
    let out = pgcdc()
        .args(["demo", "--dir", "s3://bucket-1/demo/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        stderr(&out).contains("`pgcdc demo` is not supported for S3 targets yet"),
        "{}",
        describe(&out)
    );
}

#[test]
fn storage_class_and_sse_reach_every_upload() {
    let bucket = new_bucket("sse");
    let _env = open_storage(&bucket, "unused/");
    let m = moto();
    let loc = Location::parse(&format!("s3://{bucket}/e/")).unwrap();
    let s3_options = S3Options {
            aws: Some(AwsConfig {
                region: Some("us-east-1".into()),
                endpoint_url: Some(m.endpoint_url()),
            }),
            storage_class: Some("STANDARD_IA".into()),
            sse: Some("AES256".into()),
            kms_key_id: None,
            lock_lease: None,
        };
    let s = storage::open(&loc, &s3_options).unwrap();
    s.put("small.json", b"{}", PutMode::Overwrite).unwrap();
    let big = s.staging_dir().join("big.part");
    std::fs::create_dir_all(s.staging_dir()).unwrap();
    std::fs::write(
        &big,
        vec![7u8; (storage::s3::MULTIPART_THRESHOLD + 1) as usize],
    )
    .unwrap();
    s.publish_file(&big, "big.parquet").unwrap();
    for key in ["e/small.json", "e/big.parquet"] {
        let out = m
            .aws_env(&mut Command::new(python()))
            .args([
                "-c",
                &format!(
                    "import boto3; h = boto3.client('s3', endpoint_url='{}', region_name='us-east-1')\\
                     .head_object(Bucket='{bucket}', Key='{key}'); print(h.get('StorageClass'), h.get('ServerSideEncryption'))",
                    m.endpoint_url()
                ),
            ])
            .output()
            .expect("python");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "STANDARD_IA AES256",
            "{key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
