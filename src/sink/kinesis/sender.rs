//! The Kinesis sink's sender: one tokio task (on the sink's own runtime) that owns the
//! [`Planner`], keeps up to `max_in_flight` PutRecords calls in flight over disjoint
//! keys, resends failed entries before anything later of their key, and publishes how far
//! everything is acknowledged.
//!
//! Failures: a per-entry rejection (throttling, KMS throttling, internal; any other code is
//! settled by [`super::rejections`]: a dead letter, or a stop) and a transient failure of
//! the whole call (throttling, 5xx, a network error) are retried without limit, with
//! exponential back-off and jitter (0.2 s doubling to 30 s), each logged with how long it
//! has been failing. A permanent failure of the call (no such stream, access denied, bad
//! credentials, an invalid request) stops the sender: [`Shared::failure`] holds it, and the
//! sink returns it at its next call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, Notify};

use super::aggregate::Aggregation;
use super::planner::{Entry, Planner, Request};
use crate::error::Error;
use crate::model::Lsn;

/// Records held by the sender (queued or in flight) before it stops taking more: the
/// back-pressure that makes a slow stream slow the pipeline down, and bounds memory.
pub const MAX_OUTSTANDING: usize = 20_000;

/// What the pipeline thread hands the sender: a flush's records, then its position.
pub struct Batch {
    pub entries: Vec<Entry>,
    pub mark: Lsn,
}

/// What the sender shares with the sink.
#[derive(Default)]
pub struct Shared {
    /// Every record of every batch marked at or before this is acknowledged.
    acked: AtomicU64,
    failure: Mutex<Option<Error>>,
    changed: Notify,
    /// Where records rejected for good go (`[dead_letter]`), see [`super::rejections`].
    pub rejected: std::sync::OnceLock<super::rejections::RejectHook>,
}

impl Shared {
    pub fn acked(&self) -> Lsn {
        Lsn(self.acked.load(Ordering::Acquire))
    }

    /// The permanent failure that stopped the sender, if any (taken once).
    pub fn failure(&self) -> Option<Error> {
        self.failure.lock().expect("not poisoned").take()
    }

    /// Waits until `acked() >= lsn` or the sender failed.
    pub async fn wait_acked(&self, lsn: Lsn) -> Result<(), Error> {
        loop {
            let notified = self.changed.notified();
            if let Some(e) = self.failure() {
                return Err(e);
            }
            if self.acked() >= lsn {
                return Ok(());
            }
            notified.await;
        }
    }
}

/// The stream a sender writes to.
#[derive(Clone)]
pub struct StreamRef {
    pub client: aws_sdk_kinesis::Client,
    /// `arn:aws:kinesis:…` or a stream name.
    pub stream: String,
}

impl StreamRef {
    pub fn is_arn(&self) -> bool {
        self.stream.starts_with("arn:")
    }
}

/// How one PutRecords call ended.
enum Outcome {
    /// Answered: which entries were rejected, the first rejection's code and message, each
    /// rejected entry's code and message (`codes`), and the shard each stored entry landed on.
    Answered { failed: Vec<bool>, first_error: Option<String>, codes: Vec<Option<(String, String)>>, landed: Vec<Option<String>> },
    /// The call failed as a whole and may succeed later.
    Transient(String),
    /// The call can never succeed.
    Permanent(Error),
}

/// The sender task: runs until `rx` is closed and everything is acknowledged, or a permanent
/// failure. With `kpl` (`aggregation = "kpl"`) each batch is packed into KPL aggregates per
/// shard, and answers are checked for records on the wrong shard ([`super::aggregate`]).
pub async fn run(stream: StreamRef, max_in_flight: usize, mut rx: mpsc::Receiver<Batch>, shared: Arc<Shared>, mut kpl: Option<Aggregation>) {
    let mut planner = Planner::default();
    let mut in_flight = FuturesUnordered::new();
    let mut delay = Duration::from_millis(200);
    let mut failing_since: Option<Instant> = None;
    let mut closed = false;
    loop {
        while in_flight.len() < max_in_flight {
            let Some(request) = planner.next_request() else { break };
            let stream = stream.clone();
            in_flight.push(async move {
                let outcome = put_records(&stream, &request).await;
                (request, outcome)
            });
        }
        if closed && in_flight.is_empty() && planner.outstanding() == 0 {
            return;
        }
        tokio::select! {
            batch = rx.recv(), if !closed && planner.outstanding() < MAX_OUTSTANDING => match batch {
                Some(b) => {
                    match &mut kpl {
                        Some(k) => k.push_batch(&stream, &mut planner, b.entries).await,
                        None => {
                            for e in b.entries {
                                planner.push(e);
                            }
                        }
                    }
                    planner.mark(b.mark);
                    publish(&shared, &planner);
                }
                None => closed = true,
            },
            Some((request, outcome)) = in_flight.next() => {
                // Crash tests: the stream stored records whose acknowledgement is not recorded.
                crate::failpoint::hit("kinesis-put-answered");
                let n = request.entries.len();
                let retry = match outcome {
                    Outcome::Answered { mut failed, first_error, codes, landed } => {
                        if let Err(e) = super::rejections::settle(&stream.stream, &request, &mut failed, &codes, shared.rejected.get()).await {
                            *shared.failure.lock().expect("not poisoned") = Some(e);
                            shared.changed.notify_waiters();
                            return;
                        }
                        let rejected = failed.iter().filter(|f| **f).count();
                        let trouble = match &mut kpl {
                            Some(k) => k.settle(&stream, &mut planner, request, &failed, &landed).await,
                            None => {
                                planner.complete(request, &failed);
                                None
                            }
                        };
                        first_error.map(|e| format!("{rejected} of {n} records rejected ({e})")).or(trouble)
                    }
                    Outcome::Transient(e) => {
                        planner.complete(request, &vec![true; n]);
                        Some(e)
                    }
                    Outcome::Permanent(e) => {
                        *shared.failure.lock().expect("not poisoned") = Some(e);
                        shared.changed.notify_waiters();
                        return;
                    }
                };
                publish(&shared, &planner);
                match retry {
                    None => {
                        delay = Duration::from_millis(200);
                        if failing_since.take().is_some() {
                            crate::metrics::sink_recovered(&format!("kinesis {}", stream.stream));
                        }
                    }
                    Some(why) => {
                        crate::metrics::sink_failed(&format!("kinesis {}", stream.stream), &why);
                        let since = *failing_since.get_or_insert_with(Instant::now);
                        tracing::warn!(
                            stream = %stream.stream,
                            failing_for = %humantime::format_duration(Duration::from_secs(since.elapsed().as_secs())),
                            "putting records failed: {why}; resending in {:.1}s",
                            delay.as_secs_f64()
                        );
                        tokio::time::sleep(crate::aws::jitter(delay)).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
    }
}

fn publish(shared: &Shared, planner: &Planner) {
    shared.acked.fetch_max(planner.durable().0, Ordering::AcqRel);
    shared.changed.notify_waiters();
}

async fn put_records(stream: &StreamRef, request: &Request) -> Outcome {
    let entries: Vec<PutRecordsRequestEntry> = request
        .entries
        .iter()
        .map(|(_, e)| {
            PutRecordsRequestEntry::builder()
                .partition_key(&e.partition_key)
                .set_explicit_hash_key(e.explicit_hash_key.clone())
                .data(Blob::new(e.data.to_vec()))
                .build()
                .expect("partition key and data are set")
        })
        .collect();
    let mut call = stream.client.put_records().set_records(Some(entries));
    call = if stream.is_arn() { call.stream_arn(&stream.stream) } else { call.stream_name(&stream.stream) };
    match call.send().await {
        Ok(out) => {
            let mut first_error = None;
            let codes: Vec<Option<(String, String)>> = out.records().iter().map(|r| r.error_code().map(|c| (c.to_string(), r.error_message().unwrap_or("").to_string()))).collect();
            let failed = codes
                .iter()
                .map(|c| match c {
                    Some((code, message)) => {
                        first_error.get_or_insert_with(|| format!("{code}: {message}"));
                        true
                    }
                    None => false,
                })
                .collect();
            let landed = out.records().iter().map(|r| r.shard_id().map(str::to_owned)).collect();
            Outcome::Answered { failed, first_error, codes, landed }
        }
        Err(e) => classify(stream, e),
    }
}

fn classify<E>(stream: &StreamRef, e: aws_sdk_kinesis::error::SdkError<E, aws_sdk_kinesis::config::http::HttpResponse>) -> Outcome
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_kinesis::error::SdkError;
    let detail = crate::aws::error_causes(&e);
    match &e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("").to_string();
            let transient = status >= 500
                || status == 429
                || matches!(
                    code.as_str(),
                    "ProvisionedThroughputExceededException" | "LimitExceededException" | "ThrottlingException" | "KMSThrottlingException" | "InternalFailure" | "ServiceUnavailable"
                );
            if transient {
                return Outcome::Transient(format!("{code} (HTTP {status})"));
            }
            Outcome::Permanent(
                Error::runtime(format!("putting records into Kinesis stream {} failed: {code} (HTTP {status}): {}", stream.stream, se.err().message().unwrap_or("")))
                    .with_hint(refusal_hint(&code)),
            )
        }
        // No answer (timeout, reset, refused connection, DNS): the endpoint may come back.
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Outcome::Transient(detail),
        _ => Outcome::Permanent(Error::runtime(format!("putting records into Kinesis stream {} failed: {detail}", stream.stream))),
    }
}

/// The fix for a request Kinesis refused with `code` (empty: no answer from the endpoint).
pub fn refusal_hint(code: &str) -> &'static str {
    match code {
        "ResourceNotFoundException" => "create the stream, or fix the sink's `stream` (a name, or an ARN)",
        "AccessDeniedException" | "UnrecognizedClientException" => {
            "the credentials need kinesis:DescribeStreamSummary and kinesis:PutRecords on the stream"
        }
        "" => "check [aws] endpoint_url and region, and that the endpoint is reachable",
        _ => "see the message from Kinesis",
    }
}
