//! Opening one Kinesis sink's stream, shared by the CDC sink ([`super::KinesisSink`]) and
//! the full load ([`super::load::KinesisLoad`]): the options checked, the client built, the
//! stream described once, and the sender task started on a runtime of its own.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::aggregate::Aggregation;
use super::dms_json::{DmsJsonOptions, PartitionKeyType};
use super::sender::{self, Batch, Shared, StreamRef};
use crate::aws::Bridge;
use crate::config::{AwsConfig, KinesisSinkConfig};
use crate::error::{Error, Result};
use crate::state::checkpoint::sink_checkpoint_key;

/// A running sender: hand it [`Batch`]es through `tx`, read its acknowledgements and its
/// permanent failure in `shared`. The sender lives on `bridge` and stops when `tx` is
/// dropped and everything handed over is acknowledged (or when `bridge` is dropped).
pub struct OpenStream {
    pub bridge: Arc<Bridge>,
    pub tx: mpsc::Sender<Batch>,
    pub shared: Arc<Shared>,
}

/// The DMS-JSON options of `cfg`, or a configuration error naming the bad key.
pub fn encoder_options(cfg: &KinesisSinkConfig) -> Result<DmsJsonOptions> {
    if cfg.format != "dms-json" {
        return Err(Error::config(format!("kind = \"kinesis\": format = {:?} is not supported", cfg.format)).with_hint("use format = \"dms-json\""));
    }
    aggregates(cfg)?;
    let partition_key_type = match cfg.partition_key.as_str() {
        "primary-key" => PartitionKeyType::PrimaryKey,
        "schema-table" => PartitionKeyType::SchemaTable,
        other => {
            return Err(Error::config(format!("kind = \"kinesis\": partition_key = {other:?}")).with_hint("use \"primary-key\" (the default) or \"schema-table\""))
        }
    };
    Ok(DmsJsonOptions { partition_key_type, ..Default::default() })
}

/// Whether `cfg` asks for KPL aggregation (`aggregation = "kpl"`), or a configuration error.
fn aggregates(cfg: &KinesisSinkConfig) -> Result<bool> {
    match cfg.aggregation.as_str() {
        "none" => Ok(false),
        "kpl" => Ok(true),
        other => Err(Error::config(format!("kind = \"kinesis\": aggregation = {other:?}")).with_hint("use \"none\" (the default) or \"kpl\"")),
    }
}

/// Builds the client, checks that the stream can be described (one clear error if not:
/// missing stream, denied access, unreachable endpoint), lists its shards when it
/// aggregates (see [`super::aggregate`]), and starts the sender. Blocks the
/// calling thread, which must not be one of a tokio runtime's (wrap it in `block_in_place`
/// there).
pub fn open(cfg: &KinesisSinkConfig, aws: Option<&AwsConfig>) -> Result<OpenStream> {
    let bridge = Arc::new(Bridge::new("pgcdc-kinesis", 2)?);
    let aws = aws.cloned();
    let client = bridge.run(async move { aws_sdk_kinesis::Client::new(&crate::aws::load(aws.as_ref()).await) })?;
    let stream = StreamRef { client, stream: cfg.stream.clone() };
    check_stream(&bridge, &stream)?;
    let aggregation = match aggregates(cfg)? {
        true => {
            let s = stream.clone();
            Some(bridge.run(async move { Aggregation::start(&s).await })??)
        }
        false => None,
    };
    let shared = Arc::new(Shared::default());
    let (tx, rx) = mpsc::channel(4);
    bridge.handle().spawn(sender::run(stream, cfg.max_in_flight, rx, shared.clone(), aggregation));
    Ok(OpenStream { bridge, tx, shared })
}

/// Where a sink on `stream` stores its acknowledged position in the progress store:
/// `_pgcdc/sinks/kinesis-{stream name}.json` (an ARN's last part; other characters than
/// letters, digits, `-` and `_` become `_`).
pub fn checkpoint_key(stream: &str) -> String {
    let name: String = stream.rsplit('/').next().unwrap_or(stream).chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    sink_checkpoint_key(&format!("kinesis-{name}"))
}

/// DescribeStreamSummary once: a missing stream, denied access or an unreachable endpoint
/// is one clear error at start instead of retries later.
fn check_stream(bridge: &Bridge, stream: &StreamRef) -> Result<()> {
    let s = stream.clone();
    let answer = bridge.run(async move {
        let call = s.client.describe_stream_summary();
        let call = if s.is_arn() { call.stream_arn(&s.stream) } else { call.stream_name(&s.stream) };
        call.send().await.map(|_| ()).map_err(|e| {
            use aws_sdk_kinesis::error::ProvideErrorMetadata;
            let code = e.code().unwrap_or("").to_string();
            (code, crate::aws::error_causes(&e))
        })
    })?;
    answer.map_err(|(code, detail)| Error::runtime(format!("Kinesis stream {}: {detail}", stream.stream)).with_hint(sender::refusal_hint(&code)))
}
