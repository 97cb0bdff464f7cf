//! An S3 target: `s3://bucket/prefix/` through `aws-sdk-s3` (see [`crate::aws`] for
//! credentials, region, endpoint and HTTP).
//!
//! * **Bridge.** [`Storage`] is synchronous and is called from plain threads (the pipeline)
//!   and from inside tokio tasks (load workers). Each storage owns a small tokio runtime;
//!   a call spawns its future there and waits on a std channel, so it never calls
//!   `block_on` on a runtime thread, whatever thread calls it.
//! * **Atomic and durable.** A PutObject or CompleteMultipartUpload makes the whole object
//!   visible at once, and S3 acknowledges only stored objects. Every upload carries a CRC32
//!   checksum that S3 verifies (per part for multipart uploads).
//! * **Conditional puts.** [`PutMode::CreateOnly`] is `If-None-Match: *`,
//!   [`PutMode::ReplaceIf`] is `If-Match: <etag>`; `412 Precondition Failed` (or `409` of a
//!   concurrent conditional write) is [`refused`](super::refused). [`Version`] is the ETag.
//! * **Errors and retries.** Throttling (`SlowDown`, 503), 5xx, timeouts and dropped
//!   connections are retried with exponential back-off and full jitter (0.2 s doubling to
//!   30 s), without limit, each failure logged with how long the operation has been failing;
//!   a connection failure counts as transient only once this storage has reached the
//!   endpoint, so an endpoint that is wrong from the start fails at once. Everything else
//!   (no such bucket, access denied, bad credentials, wrong region) is one error with a hint.
//! * **Staging.** Files are assembled locally in
//!   `<system temp dir>/pgcdc-staging/<bucket>/<prefix>`: one directory per target, owned by
//!   the holder of the target's lock (so a crashed run's leftovers on this machine are
//!   cleared by the next run's recovery); removed, when empty, as the lock is released.
//! * **Lock.** See `s3_lock.rs`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption, StorageClass,
};
use aws_sdk_s3::Client;
use futures_util::{StreamExt, TryStreamExt};

use super::s3_errors::{classify, plain, Failure};
use super::{PutMode, Storage, TargetLock, Version};
use crate::error::{Error, Result, ResultExt};
use crate::aws::{self, Bridge, S3Options};

/// Files up to this size are uploaded with one PutObject; larger ones in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// The size of each part of a multipart upload (S3's minimum is 5 MiB).
pub const PART_SIZE: u64 = 8 * 1024 * 1024;
/// Parts of one file uploaded at the same time.
const PART_CONCURRENCY: usize = 4;
/// How many files of one flush are uploaded at once (each read whole when below
/// [`MULTIPART_THRESHOLD`], so at most this many times that much memory).
const FILE_CONCURRENCY: usize = 4;

/// What every request of one target needs; cloned into the futures run on the bridge.
#[derive(Clone)]
pub(super) struct Target {
    pub client: Client,
    pub bucket: String,
    pub prefix: String,
    pub opts: S3Options,
    /// Whether a request ever got an answer from the endpoint (see the module docs).
    pub reached: Arc<AtomicBool>,
}

impl Target {
    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    pub fn object_key(&self, key: &str) -> Result<String> {
        super::local::check_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    /// Runs `op` until it succeeds or fails permanently; see the module docs. `what` says
    /// what is done to which key, for logs and errors.
    pub async fn retry<T, E, F, Fut>(&self, what: &str, op: F) -> std::result::Result<T, Failure>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: Future<
            Output = std::result::Result<T, SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
        >,
    {
        let started = Instant::now();
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match op().await {
                Ok(v) => {
                    self.reached.store(true, Ordering::Relaxed);
                    if attempt > 1 {
                        crate::metrics::sink_recovered(&self.describe());
                    }
                    return Ok(v);
                }
                Err(e) => {
                    let f = classify(self, what, e);
                    match f {
                        Failure::Retry(ref err) => {
                            crate::metrics::sink_failed(&self.describe(), &err.message);
                            tracing::warn!(
                                target = %self.describe(),
                                attempt,
                                failing_for = %humantime::format_duration(Duration::from_secs(started.elapsed().as_secs())),
                                "{err}; retrying in {:.1}s",
                                delay.as_secs_f64()
                            );
                            tokio::time::sleep(crate::aws::jitter(delay)).await;
                            delay = (delay * 2).min(Duration::from_secs(30));
                        }
                        _ => return Err(f),
                    }
                }
            }
        }
    }
}

/// See the module documentation.
pub struct S3Storage {
    pub(super) bridge: Arc<Bridge>,
    pub(super) t: Target,
    staging: PathBuf,
    /// This process's lease on the target, checked before every write (fencing).
    lease: Arc<super::s3_lock::Lease>,
}

/// Removes a target's staging directory, and its bucket's directory, when the lock is
/// released and they are empty: a clean exit leaves nothing under the system temp dir. A
/// directory that still holds files (a crash's leftovers) is kept for the next holder's
/// recovery.
struct StagingCleanup(PathBuf);

impl Drop for StagingCleanup {
    fn drop(&mut self) {
        let root = std::env::temp_dir().join("pgcdc-staging");
        let mut dir = self.0.as_path();
        while dir.starts_with(&root) && dir != root && std::fs::remove_dir(dir).is_ok() {
            match dir.parent() {
                Some(p) => dir = p,
                None => break,
            }
        }
    }
}

impl S3Storage {
    /// Opens `s3://bucket/prefix/` with `opts` (the `[aws]` section and the sink's upload
    /// options). Changes nothing in the bucket and makes no request.
    pub fn open(bucket: &str, prefix: &str, opts: S3Options) -> Result<S3Storage> {
        let bridge = Arc::new(Bridge::new("pgcdc-s3", 2)?);
        let aws_cfg = opts.aws.clone();
        let sdk = bridge.run(async move { aws::load(aws_cfg.as_ref()).await })?;
        if sdk.region().is_none() {
            return Err(Error::config(format!(
                "no AWS region is configured for s3://{bucket}/{prefix}"
            ))
            .with_hint("set [aws] region, or AWS_REGION, or a region in the AWS profile"));
        }
        let client = aws::s3_client(&sdk);
        let staging = std::env::temp_dir()
            .join("pgcdc-staging")
            .join(bucket)
            .join(prefix.trim_end_matches('/'));
        Ok(S3Storage {
            bridge,
            t: Target {
                client,
                bucket: bucket.into(),
                prefix: prefix.into(),
                opts,
                reached: Arc::new(AtomicBool::new(false)),
            },
            staging,
            lease: Arc::default(),
        })
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        self.bridge.run(f)?
    }
}

/// PutObject with the target's options and a CRC32 that S3 verifies.
fn put_request(
    t: &Target,
    okey: &str,
    body: Vec<u8>,
    mode: &PutMode<'_>,
) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
    let mut req = t
        .client
        .put_object()
        .bucket(&t.bucket)
        .key(okey)
        .body(ByteStream::from(body))
        .checksum_algorithm(ChecksumAlgorithm::Crc32);
    match mode {
        PutMode::Overwrite => {}
        PutMode::CreateOnly => req = req.if_none_match("*"),
        PutMode::ReplaceIf(v) => req = req.if_match(v.0.clone()),
    }
    if let Some(c) = &t.opts.storage_class {
        req = req.storage_class(StorageClass::from(c.as_str()));
    }
    if let Some(s) = &t.opts.sse {
        req = req.server_side_encryption(ServerSideEncryption::from(s.as_str()));
    }
    if let Some(k) = &t.opts.kms_key_id {
        req = req.ssekms_key_id(k);
    }
    req
}

/// Puts `data` at `key` under `mode`; the new ETag.
pub(super) async fn put_object(
    t: &Target,
    key: &str,
    data: Vec<u8>,
    mode: PutMode<'_>,
) -> Result<Version> {
    let okey = t.object_key(key)?;
    let what = format!("writing {key}");
    let out = t
        .retry(&what, || put_request(t, &okey, data.clone(), &mode).send())
        .await
        .map_err(|f| f.into_error(t, key, &mode))?;
    Ok(Version(out.e_tag().unwrap_or_default().to_string()))
}

/// The object at `key` with its ETag.
pub(super) async fn get_object(t: &Target, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
    let okey = t.object_key(key)?;
    let what = format!("reading {key}");
    let out = match t
        .retry(&what, || {
            t.client.get_object().bucket(&t.bucket).key(&okey).send()
        })
        .await
    {
        Ok(o) => o,
        Err(Failure::NotFound) => return Ok(None),
        Err(f) => return Err(plain(f, &what, t)),
    };
    let version = Version(out.e_tag().unwrap_or_default().to_string());
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| Error::runtime(format!("{what} ({}): {e}", t.describe())).retryable())?;
    Ok(Some((body.into_bytes().to_vec(), version)))
}

async fn delete_object(t: &Target, key: &str) -> Result<()> {
    let okey = t.object_key(key)?;
    let what = format!("deleting {key}");
    match t
        .retry(&what, || {
            t.client.delete_object().bucket(&t.bucket).key(&okey).send()
        })
        .await
    {
        Ok(_) | Err(Failure::NotFound) => Ok(()),
        Err(f) => Err(plain(f, &what, t)),
    }
}

async fn upload_file(t: Target, local: PathBuf, key: String) -> Result<()> {
    let okey = t.object_key(&key)?;
    let len = std::fs::metadata(&local)
        .runtime_ctx(|| format!("inspecting {}", local.display()))?
        .len();
    if len <= MULTIPART_THRESHOLD {
        let data = std::fs::read(&local).runtime_ctx(|| format!("reading {}", local.display()))?;
        put_object(&t, &key, data, PutMode::Overwrite).await?;
    } else {
        multipart(&t, &local, &okey, &key, len).await?;
    }
    std::fs::remove_file(&local)
        .runtime_ctx(|| format!("removing the uploaded {}", local.display()))
}

/// Aborts every multipart upload still open under the target's prefix: what a process
/// killed in the middle of an upload left behind (its parts are billed until aborted).
/// Called at recovery by the lock holder, when nothing of its own is being uploaded, so
/// every open upload there is a dead writer's (the file itself is uploaded again whole).
async fn abort_stale_uploads(t: &Target) -> Result<()> {
    let what = "listing unfinished multipart uploads".to_string();
    let mut markers: (Option<String>, Option<String>) = (None, None);
    loop {
        let page = t
            .retry(&what, || {
                t.client
                    .list_multipart_uploads()
                    .bucket(&t.bucket)
                    .prefix(&t.prefix)
                    .set_key_marker(markers.0.clone())
                    .set_upload_id_marker(markers.1.clone())
                    .send()
            })
            .await
            .map_err(|f| plain(f, &what, t))?;
        for u in page.uploads() {
            let (Some(key), Some(id)) = (u.key(), u.upload_id()) else { continue };
            let abort = format!("aborting the unfinished upload of {key}");
            tracing::info!(target = %t.describe(), upload_id = id, initiated = ?u.initiated(), "{abort}");
            match t
                .retry(&abort, || t.client.abort_multipart_upload().bucket(&t.bucket).key(key).upload_id(id).send())
                .await
            {
                Ok(_) | Err(Failure::NotFound) => {}
                Err(f) => return Err(plain(f, &abort, t)),
            }
        }
        if !page.is_truncated().unwrap_or(false) {
            return Ok(());
        }
        markers = (page.next_key_marker().map(str::to_string), page.next_upload_id_marker().map(str::to_string));
    }
}

/// A multipart upload of `local` (`len` bytes) to `okey`: parts of [`PART_SIZE`] uploaded
/// [`PART_CONCURRENCY`] at a time, each with its CRC32; aborted when it fails.
async fn multipart(t: &Target, local: &Path, okey: &str, key: &str, len: u64) -> Result<()> {
    let what = format!("uploading {key}");
    let mut create = t
        .client
        .create_multipart_upload()
        .bucket(&t.bucket)
        .key(okey)
        .checksum_algorithm(ChecksumAlgorithm::Crc32);
    if let Some(c) = &t.opts.storage_class {
        create = create.storage_class(StorageClass::from(c.as_str()));
    }
    if let Some(s) = &t.opts.sse {
        create = create.server_side_encryption(ServerSideEncryption::from(s.as_str()));
    }
    if let Some(k) = &t.opts.kms_key_id {
        create = create.ssekms_key_id(k);
    }
    let created = t
        .retry(&what, || create.clone().send())
        .await
        .map_err(|f| plain(f, &what, t))?;
    let upload_id = created.upload_id().unwrap_or_default().to_string();
    let file = Arc::new(
        std::fs::File::open(local).runtime_ctx(|| format!("opening {}", local.display()))?,
    );
    let parts = len.div_ceil(PART_SIZE);
    let result: Result<Vec<CompletedPart>> = futures_util::stream::iter(0..parts)
        .map(|i| {
            let (file, upload_id, what) = (file.clone(), upload_id.clone(), what.clone());
            async move {
                let offset = i * PART_SIZE;
                let size = PART_SIZE.min(len - offset) as usize;
                let mut buf = vec![0u8; size];
                std::os::unix::fs::FileExt::read_exact_at(file.as_ref(), &mut buf, offset)
                    .runtime_ctx(|| format!("reading {}", local.display()))?;
                let number = (i + 1) as i32;
                let out = t
                    .retry(&what, || {
                        t.client
                            .upload_part()
                            .bucket(&t.bucket)
                            .key(okey)
                            .upload_id(&upload_id)
                            .part_number(number)
                            .checksum_algorithm(ChecksumAlgorithm::Crc32)
                            .body(ByteStream::from(buf.clone()))
                            .send()
                    })
                    .await
                    .map_err(|f| plain(f, &what, t))?;
                if number == 1 {
                    crate::failpoint::hit("s3-multipart-after-first-part");
                }
                Ok(CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
                    .build())
            }
        })
        .buffered(PART_CONCURRENCY)
        .try_collect()
        .await;
    let completed = match result {
        Ok(parts) => {
            let done = CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build();
            t.retry(&what, || {
                t.client
                    .complete_multipart_upload()
                    .bucket(&t.bucket)
                    .key(okey)
                    .upload_id(&upload_id)
                    .multipart_upload(done.clone())
                    .send()
            })
            .await
            .map(|_| ())
            .map_err(|f| plain(f, &what, t))
        }
        Err(e) => Err(e),
    };
    if completed.is_err() {
        let _ = t
            .client
            .abort_multipart_upload()
            .bucket(&t.bucket)
            .key(okey)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    completed
}

impl Storage for S3Storage {
    fn describe(&self) -> String {
        self.t.describe()
    }

    fn lock(&self) -> Result<TargetLock> {
        let lock = super::s3_lock::acquire(&self.bridge, &self.t, &self.lease)?;
        std::fs::create_dir_all(&self.staging)
            .runtime_ctx(|| format!("creating the staging directory {}", self.staging.display()))?;
        Ok(lock.holding(Box::new(StagingCleanup(self.staging.clone()))))
    }

    fn probe_writable(&self) -> Result<()> {
        // Lists one key under the prefix: fails on a missing bucket, denied access, bad
        // credentials, a wrong region or an unreachable endpoint, and writes nothing.
        let t = self.t.clone();
        self.run(async move {
            let what = "listing the target".to_string();
            t.retry(&what, || {
                t.client
                    .list_objects_v2()
                    .bucket(&t.bucket)
                    .prefix(&t.prefix)
                    .max_keys(1)
                    .send()
            })
            .await
            .map(|_| ())
            .map_err(|f| plain(f, &what, &t))
        })
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn publish_file(&self, local: &Path, key: &str) -> Result<()> {
        self.lease.check(&self.describe())?;
        self.run(upload_file(
            self.t.clone(),
            local.to_path_buf(),
            key.to_string(),
        ))
    }

    fn publish_files(&self, files: &[(PathBuf, String)]) -> Result<()> {
        self.lease.check(&self.describe())?;
        let (t, files) = (self.t.clone(), files.to_vec());
        self.run(async move {
            futures_util::stream::iter(files)
                .map(|(local, key)| upload_file(t.clone(), local, key))
                .buffer_unordered(FILE_CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await
                .map(|_| ())
        })
    }

    fn put(&self, key: &str, data: &[u8], mode: PutMode<'_>) -> Result<Version> {
        self.lease.check(&self.describe())?;
        let (t, key_s, data) = (self.t.clone(), key.to_string(), data.to_vec());
        // The mode borrows a version: carry an owned copy into the runtime.
        let expected = match mode {
            PutMode::ReplaceIf(v) => Some(v.clone()),
            _ => None,
        };
        let create_only = matches!(mode, PutMode::CreateOnly);
        self.run(async move {
            let mode = match (&expected, create_only) {
                (Some(v), _) => PutMode::ReplaceIf(v),
                (None, true) => PutMode::CreateOnly,
                (None, false) => PutMode::Overwrite,
            };
            put_object(&t, &key_s, data, mode).await
        })
    }

    fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        let (t, key) = (self.t.clone(), key.to_string());
        self.run(async move { get_object(&t, &key).await })
    }

    fn has_staged(&self, path: &Path) -> bool {
        path.starts_with(&self.staging) && path.exists()
    }

    fn clear_staging(&self) -> Result<()> {
        match std::fs::read_dir(&self.staging) {
            Ok(entries) => {
                for e in entries.flatten() {
                    std::fs::remove_file(e.path()).ok();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("listing {}", self.staging.display()), &e)),
        }
        self.lease.check(&self.describe())?;
        let t = self.t.clone();
        self.run(async move { abort_stale_uploads(&t).await })
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let (t, key) = (self.t.clone(), key.to_string());
        self.run(async move {
            let okey = t.object_key(&key)?;
            let what = format!("looking for {key}");
            match t
                .retry(&what, || {
                    t.client.head_object().bucket(&t.bucket).key(&okey).send()
                })
                .await
            {
                Ok(_) => Ok(true),
                Err(Failure::NotFound) => Ok(false),
                Err(f) => Err(plain(f, &what, &t)),
            }
        })
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.lease.check(&self.describe())?;
        let (t, key) = (self.t.clone(), key.to_string());
        self.run(async move { delete_object(&t, &key).await })
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let t = self.t.clone();
        let full = if prefix.is_empty() {
            t.prefix.clone()
        } else {
            format!("{}{}/", t.prefix, prefix.trim_end_matches('/'))
        };
        if !prefix.is_empty() {
            super::local::check_key(prefix.trim_end_matches('/'))?;
        }
        self.run(async move {
            let what = format!("listing {full}");
            let mut keys = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = t
                    .retry(&what, || {
                        t.client
                            .list_objects_v2()
                            .bucket(&t.bucket)
                            .prefix(&full)
                            .set_continuation_token(token.clone())
                            .send()
                    })
                    .await
                    .map_err(|f| plain(f, &what, &t))?;
                for o in page.contents() {
                    if let Some(k) = o.key().and_then(|k| k.strip_prefix(t.prefix.as_str())) {
                        keys.push(k.to_string());
                    }
                }
                token = page.next_continuation_token().map(str::to_string);
                if token.is_none() || page.is_truncated() != Some(true) {
                    break;
                }
            }
            keys.sort();
            Ok(keys)
        })
    }
}
