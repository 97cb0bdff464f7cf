//! The Kinesis Data Streams sink (SPEC 5.3; issue 8), being built.
//!
//! * [`sink`]: the [`KinesisSink`] the pipeline drives; at-least-once, per-key order.
//! * [`sender`]: its PutRecords task (retries, back-off, acknowledgements).
//! * [`aggregate`]: `aggregation = "kpl"` in the sender: per-shard packing, the shard map,
//!   and resending what landed on the wrong shard after a resharding.
//! * [`dms_json`]: change rows as the JSON records DMS's Kinesis target writes.
//! * [`kpl`]: KPL aggregation of user records into one Kinesis record per shard.
//! * [`rejections`]: records Kinesis rejects for good: dead letters, or one clear error.
//! * [`planner`]: which records go into the next PutRecords request, keeping per-key order
//!   through partial failures, and when a flush is durable.

pub mod aggregate;
pub mod dms_json;
pub mod kpl;
pub mod load;
pub mod planner;
pub mod rejections;
pub mod sender;
pub mod sink;
pub mod stream;

pub use sink::KinesisSink;
