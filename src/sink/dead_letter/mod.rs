//! Dead letters (`[dead_letter] url`, SPEC 5.3, 5.4): changes that no sink can ever accept,
//! kept with their reason so that the pipeline goes on without them.
//!
//! A change is a dead letter when its sink refuses it for a reason that no retry and no
//! restart can change: a value its column's Arrow type cannot hold (NaN in a constrained
//! `numeric(p,s)`, a multi-dimensional array, a timestamp past the int64 microsecond
//! range), or a Kinesis record over the 1 MiB limit. Without `[dead_letter]` every sink
//! keeps stopping the run with an error instead (nothing here is called then).
//!
//! # Contract
//!
//! * Callers (the Parquet and Kinesis sinks on the pipeline thread, the full load's copy
//!   workers) call [`DeadLetters::write`] at the moment they refuse the change, and skip the
//!   change only once it returned `Ok`. The call is synchronous and durable when it returns
//!   (a local file fsynced with its directory, an S3 object acknowledged), so a dead letter
//!   is durable before any flush can confirm the slot past its change (SPEC 2.1).
//! * The object's key is a function of the change and the sink only
//!   ([`DeadLetter::key`]: table, LSN, `_seq`, sink), and a write replaces what is there: a
//!   replay after a crash rewrites the same object and never makes a second copy.
//! * An `Err` (the location cannot be written) is returned to the caller, which stops the
//!   run as it would have without dead letters: nothing is lost.
//!
//! # Format
//!
//! One JSON document per dead letter at
//! `{schema}/{table}/{LSN as 16 hex digits}-{_seq as 16 hex digits}-{sink}.json` (schema and
//! table encoded like the Parquet sink's paths), see [`DeadLetter`].

mod render;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use self::render::{from_batch_row, from_row};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::sink::parquet::naming::{decode_path_component, path_component};
use crate::storage::{PutMode, Storage};

/// Where dead letters go: the storage at `[dead_letter] url`. Shared (`Arc`) by every sink
/// and load worker of a run; [`DeadLetters::write`] may be called from any thread.
pub struct DeadLetters {
    storage: Box<dyn Storage>,
    /// Whether the local staging directory a put goes through exists (made at the first write).
    prepared: AtomicBool,
    written: AtomicU64,
}

/// One change no sink could accept: what is written, as one JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Why the sink refused it (the conversion error, or the record's size and the limit).
    pub reason: String,
    /// Which sink refused it: `parquet-{hash of its url}`, `kinesis-{stream}`, or
    /// `full-load` / `full-load-dms` for a row of the full load (or a reload) read for the
    /// native / DMS-layout Parquet sinks.
    pub sink: String,
    /// `schema.table`.
    pub table: String,
    /// `_op`: `L`, `I`, `U`, `D`.
    pub op: String,
    /// `_lsn`: the commit LSN (the snapshot LSN for a loaded row), as PostgreSQL writes it.
    pub lsn: String,
    /// `_seq`: the change's position within its transaction (for a loaded row: chunk and
    /// row, see `load_seq`).
    pub seq: i64,
    /// `_xid`; `null` for a loaded row.
    pub xid: Option<u32>,
    /// The commit time (the snapshot time for a loaded row), RFC 3339 UTC with µs.
    pub commit_timestamp: String,
    /// The replica-identity (primary-key) columns and their values as text.
    pub key: BTreeMap<String, Option<String>>,
    /// The offending column, when one value is the reason.
    pub column: Option<String>,
    /// Every column's value as text (PostgreSQL's text form, or for values the full load
    /// read in binary form the canonical text `validate` compares); `null` for SQL NULL and
    /// for the columns in `unchanged` and `omitted`.
    pub values: BTreeMap<String, Option<String>>,
    /// Unchanged TOASTed columns: PostgreSQL did not send their value.
    pub unchanged: Vec<String>,
    /// Columns whose value is not given as text, with why (e.g. a value the full load
    /// read in binary form that cannot be converted: its bytes in hex instead).
    pub omitted: BTreeMap<String, String>,
    /// When the dead letter was written (RFC 3339), for people; not part of the key.
    pub written_at: String,
}

impl DeadLetter {
    /// The object key: a function of table, LSN, `_seq` and sink only, so a replay
    /// rewrites the same object. `lsn` and `seq` sort like the stream.
    pub fn key(schema: &str, table: &str, lsn: crate::model::Lsn, seq: i64, sink: &str) -> String {
        format!(
            "{}/{}/{}-{:016X}-{}.json",
            path_component(schema),
            path_component(table),
            lsn.file_hex(),
            seq as u64,
            path_component(sink)
        )
    }
}

/// How many dead letters a location holds, in total and per `schema.table`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeadLetterCount {
    pub location: String,
    pub total: u64,
    pub tables: BTreeMap<String, u64>,
}

impl DeadLetters {
    /// The dead-letter location of `config`, `None` without `[dead_letter]`. Opening
    /// changes nothing in the location (the first write prepares it). S3 is reached
    /// through `[aws]`.
    pub fn open(config: &Config) -> Result<Option<Arc<DeadLetters>>> {
        let Some(dl) = &config.dead_letter else {
            return Ok(None);
        };
        let options = crate::aws::S3Options {
            aws: config.aws.clone(),
            ..Default::default()
        };
        let storage = crate::storage::open(&dl.location, &options)
            .map_err(|e| e.context("[dead_letter] url"))?;
        Ok(Some(Arc::new(DeadLetters {
            storage,
            prepared: AtomicBool::new(false),
            written: AtomicU64::new(0),
        })))
    }

    pub fn describe(&self) -> String {
        self.storage.describe()
    }

    /// Writes `letter` durably at `key` (see [`DeadLetter::key`]), replacing an earlier
    /// copy of the same dead letter, and logs it. See the module documentation for the
    /// contract.
    pub fn write(&self, key: &str, letter: &DeadLetter) -> Result<()> {
        if !self.prepared.load(Ordering::Acquire) {
            let dir = self.storage.staging_dir();
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::runtime(format!("creating {}: {e}", dir.display()))
                    .with_hint("check [dead_letter] url and that pgcdc may write there")
            })?;
            self.prepared.store(true, Ordering::Release);
        }
        let mut json = serde_json::to_vec_pretty(letter)
            .map_err(|e| Error::runtime(format!("internal: encoding a dead letter: {e}")))?;
        json.push(b'\n');
        self.storage
            .put(key, &json, PutMode::Overwrite)
            .map_err(|e| {
                e.context(format!(
                    "writing a dead letter of {} at LSN {} to {}",
                    letter.table,
                    letter.lsn,
                    self.describe()
                ))
            })?;
        self.written.fetch_add(1, Ordering::Relaxed);
        crate::metrics::dead_letter(&letter.table);
        // Crash tests: the dead letter is durable, the sink has not gone past its change.
        crate::failpoint::hit("dead-letter-written");
        tracing::warn!(
            table = %letter.table, lsn = %letter.lsn, seq = letter.seq, sink = %letter.sink,
            "a change no sink can accept went to the dead-letter location {}/{key}: {}", self.describe(), letter.reason
        );
        Ok(())
    }

    /// Checks, without writing, that `[dead_letter]` of `config` could be written (for
    /// `check`); returns its location, `None` without it.
    pub fn probe(config: &Config) -> Result<Option<String>> {
        let Some(dl) = Self::open(config)? else { return Ok(None) };
        dl.storage.probe_writable()?;
        Ok(Some(dl.describe()))
    }

    /// Dead letters written by this process (a replay's rewrites included).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Counts what `[dead_letter]` of `config` holds (`None` without it), for `status`.
    /// Reads only.
    pub fn count(config: &Config) -> Result<Option<DeadLetterCount>> {
        let Some(dl) = Self::open(config)? else {
            return Ok(None);
        };
        let mut count = DeadLetterCount {
            location: dl.describe(),
            ..Default::default()
        };
        for key in dl.storage.list("")? {
            let parts: Vec<&str> = key.split('/').collect();
            let [schema, table, file] = parts[..] else {
                continue;
            };
            if !file.ends_with(".json") || schema == "_pgcdc" {
                continue;
            }
            let name = |s: &str| decode_path_component(s).unwrap_or_else(|| s.to_string());
            *count
                .tables
                .entry(format!("{}.{}", name(schema), name(table)))
                .or_default() += 1;
            count.total += 1;
        }
        Ok(Some(count))
    }
}

impl DeadLetters {
    /// The key (column → text) of every dead letter of `schema.table`, for `validate`.
    /// Reads only.
    pub fn keys_of(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Vec<BTreeMap<String, Option<String>>>> {
        let mut out = Vec::new();
        for key in self.storage.list(&format!(
            "{}/{}",
            path_component(schema),
            path_component(table)
        ))? {
            if !key.ends_with(".json") {
                continue;
            }
            let Some(data) = self.storage.get(&key)? else {
                continue;
            };
            let letter: DeadLetter = serde_json::from_slice(&data).map_err(|e| {
                Error::runtime(format!(
                    "{}/{key} is not a dead letter: {e}",
                    self.describe()
                ))
            })?;
            out.push(letter.key);
        }
        Ok(out)
    }
}

/// A short stable name for the sink at `url` (`parquet-1a2b3c4d`): FNV-1a of the URL, so
/// it survives reordering the configuration's sinks.
pub fn parquet_sink_label(url: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in url.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    format!("parquet-{h:08x}")
}

/// The fix named by the error of a change refused without `[dead_letter]` (SPEC 5.4).
pub const REFUSED_HINT: &str = "override the column's type to text, or add [dead_letter] url = \"file:///…\" (or s3://…) so that such changes are kept there with their reason and the run goes on";

/// One sink's way to its dead letters: the shared location and the sink's name in them.
/// Cheap to clone.
#[derive(Clone)]
pub struct DeadLetterRoute {
    letters: Arc<DeadLetters>,
    sink: String,
}

impl DeadLetterRoute {
    /// `sink` names the refusing sink in every dead letter and its key: stable across
    /// restarts (see [`DeadLetter::sink`]).
    pub fn new(letters: Arc<DeadLetters>, sink: impl Into<String>) -> DeadLetterRoute {
        DeadLetterRoute {
            letters,
            sink: sink.into(),
        }
    }

    /// The sink's name in its dead letters.
    pub fn sink(&self) -> &str {
        &self.sink
    }

    /// Writes `letter` at `key` (see [`DeadLetters::write`]).
    pub fn write(&self, key: &str, letter: &DeadLetter) -> Result<()> {
        self.letters.write(key, letter)
    }

    /// Writes the dead letter of `row`, which the sink's builder refused with `error`;
    /// the sink skips the row once this returned `Ok` (see the module contract).
    pub fn refuse_row(
        &self,
        table: &crate::model::TableSchema,
        row: &crate::model::OutputRow<'_>,
        error: &crate::batch::ValueError,
    ) -> Result<()> {
        let (key, letter) = from_row(table, row, error, &self.sink);
        self.letters.write(&key, &letter)
    }

    /// Writes the dead letter of row `index` of `batch`, refused for `reason`.
    pub fn refuse_batch_row(
        &self,
        table: &crate::model::TableSchema,
        batch: &arrow_array::RecordBatch,
        index: usize,
        reason: String,
    ) -> Result<()> {
        let (key, letter) = from_batch_row(table, batch, index, &self.sink, reason);
        self.letters.write(&key, &letter)
    }
}

/// The full load's hook (`load::worker`): a loaded `row` of `table` that the batch builder
/// refused with `error` goes to `letters` as sink `full-load` (`full-load-dms` when read for
/// the DMS-layout sinks), durably before its chunk can be recorded as done; without
/// `letters` the error stops the load as before (`what` names the chunk). Blocking: call it
/// from a blocking context.
pub fn refuse_loaded_row(
    letters: Option<&Arc<DeadLetters>>,
    dms: bool,
    table: &crate::model::TableSchema,
    row: &crate::model::OutputRow<'_>,
    error: &crate::batch::ValueError,
    what: &dyn Fn() -> String,
) -> Result<()> {
    let Some(letters) = letters else {
        return Err(Error::runtime(format!("{}: {error}", what())).with_hint(REFUSED_HINT));
    };
    let (key, letter) = from_row(
        table,
        row,
        error,
        if dms { "full-load-dms" } else { "full-load" },
    );
    letters.write(&key, &letter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewriting_a_dead_letter_keeps_one_copy() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("dl").display());
        let cfg = format!("[source]\nurl = \"postgres://u@h/d\"\n[[sink]]\nkind = \"parquet\"\nurl = \"file:///x/out\"\n[dead_letter]\nurl = \"{url}\"\n");
        let config = Config::parse(&cfg).unwrap();
        let letters = DeadLetters::open(&config).unwrap().unwrap();
        assert!(!dir.path().join("dl").exists(), "opening writes nothing");
        assert_eq!(DeadLetters::count(&config).unwrap().unwrap().total, 0);
        let key = DeadLetter::key(
            "public",
            "my table",
            crate::model::Lsn(0x10),
            2,
            "kinesis-s",
        );
        let mut letter = DeadLetter {
            reason: "r".into(),
            sink: "kinesis-s".into(),
            table: "public.my table".into(),
            op: "I".into(),
            lsn: "0/10".into(),
            seq: 2,
            xid: None,
            commit_timestamp: String::new(),
            key: BTreeMap::new(),
            column: None,
            values: BTreeMap::new(),
            unchanged: vec![],
            omitted: BTreeMap::new(),
            written_at: "1".into(),
        };
        letters.write(&key, &letter).unwrap();
        letter.written_at = "2".into();
        letters.write(&key, &letter).unwrap();
        let count = DeadLetters::count(&config).unwrap().unwrap();
        assert_eq!(
            (count.total, count.tables.clone()),
            (1, BTreeMap::from([("public.my table".to_string(), 1)]))
        );
        let stored: DeadLetter =
            serde_json::from_slice(&std::fs::read(dir.path().join("dl").join(&key)).unwrap())
                .unwrap();
        assert_eq!(stored, letter);
        assert_eq!(letters.written(), 2);
    }
}
