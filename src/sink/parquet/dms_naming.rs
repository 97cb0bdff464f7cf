//! Object names of the DMS layout (SPEC 5.2), as AWS DMS's S3 target names them.
//!
//! * Full load: `{schema}/{table}/LOAD{n:08X}.{ext}`, `n` = the chunk's part number + 1
//!   (parts are numbered per table in chunk order by the load plan, so a resumed load
//!   rewrites exactly the names an interrupted one wrote).
//! * CDC: `{schema}/{table}/[YYYY/MM/DD/]YYYYMMDD-HHMMSSmmm.{ext}`, the UTC commit time of
//!   the file's first transaction to the millisecond; `date_partitioning` adds the date
//!   folders (DMS's `DatePartitionEnabled` with its default sequence `YYYYMMDD`).
//!
//! `ext` is the sink's file format: `parquet`, or `csv` / `csv.gz` with `format = "csv"`
//! ([`DATA_EXTENSIONS`]). Names of any of them count when a table's last name is learned
//! from the target and when full-load files are looked for.
//!
//! Names are unique per table: when a file's time is not later than the last CDC name of
//! its table (two files whose first transactions committed in the same millisecond: a
//! large transaction split by `max_file_size`, a column change, or consecutive flushes), it
//! takes the next free millisecond instead. The name keeps DMS's exact pattern, so readers
//! that match `\d{8}-\d{9}` or sort names keep working, and name order stays write order;
//! the price is that such a name can be a few milliseconds later than its first commit.
//! The last name of a table is learned once per process from a listing of the table's
//! folder, then kept in memory. Exactly-once does not depend on names: a flush's keys are
//! fixed in its manifest before anything is published (see [`super::manifest`]), and a
//! flush retried in the same process reuses the keys it was given ([`CdcNamer::assign`]).
//!
//! Schema and table names are used as they are (DMS does not encode them) unless they
//! could escape the target or change the folder structure (`/`, `\`, `.` or `..`, empty,
//! control characters): those go through [`path_component`].

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::naming::path_component;
use crate::error::Result;
use crate::storage::Storage;

/// A schema or table name as a DMS-layout path segment: the name itself when it is safe as
/// one segment, else its [`path_component`] encoding.
pub fn dms_segment(name: &str) -> String {
    let unsafe_name = name.is_empty()
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if unsafe_name {
        path_component(name)
    } else {
        name.to_string()
    }
}

/// `{schema}/{table}` of the DMS layout.
pub fn dms_table_prefix(schema: &str, table: &str) -> String {
    format!("{}/{}", dms_segment(schema), dms_segment(table))
}

/// The extensions of DMS-layout data files: Parquet, CSV, gzipped CSV.
pub const DATA_EXTENSIONS: [&str; 3] = ["parquet", "csv", "csv.gz"];

/// `name` without its data-file extension (one of [`DATA_EXTENSIONS`]).
fn strip_extension(name: &str) -> Option<&str> {
    DATA_EXTENSIONS
        .iter()
        .find_map(|e| name.strip_suffix(e)?.strip_suffix('.'))
}

/// The key of the full-load file of chunk `part` (0-based, per table), with extension `ext`.
pub fn load_key(schema: &str, table: &str, part: u32, ext: &str) -> String {
    format!(
        "{}/LOAD{:08X}.{ext}",
        dms_table_prefix(schema, table),
        u64::from(part) + 1
    )
}

/// Whether `key` is a full-load file made by [`load_key`] (any of [`DATA_EXTENSIONS`]).
pub fn is_load_key(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or("");
    name.strip_prefix("LOAD")
        .and_then(strip_extension)
        .is_some_and(|n| {
            n.len() == 8
                && n.bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        })
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// The key of a CDC file of the table at `prefix` named by `ms` (milliseconds since the
/// Unix epoch, UTC), with extension `ext`.
pub fn cdc_key(prefix: &str, ms: i64, date_partitioning: bool, ext: &str) -> String {
    let t = utc(ms);
    let folder = if date_partitioning { t.format("%Y/%m/%d/").to_string() } else { String::new() };
    format!("{prefix}/{folder}{}.{ext}", t.format("%Y%m%d-%H%M%S%3f"))
}

/// The time (ms since the epoch) a CDC key made by [`cdc_key`] names (any of
/// [`DATA_EXTENSIONS`]); `None` for any other key (a LOAD file, an unrelated object).
pub fn cdc_key_millis(key: &str) -> Option<i64> {
    let name = strip_extension(key.rsplit('/').next()?)?;
    let b = name.as_bytes();
    if b.len() != 18
        || b[8] != b'-'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_digit())
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| name[r].parse::<u32>().ok();
    let date = chrono::NaiveDate::from_ymd_opt(n(0..4)? as i32, n(4..6)?, n(6..8)?)?;
    let time =
        chrono::NaiveTime::from_hms_milli_opt(n(9..11)?, n(11..13)?, n(13..15)?, n(15..18)?)?;
    Some(date.and_time(time).and_utc().timestamp_millis())
}

/// Gives CDC files their names (see the module documentation). One per sink.
#[derive(Debug, Default)]
pub struct CdcNamer {
    date_partitioning: bool,
    /// The data files' extension (`parquet`, `csv`, `csv.gz`).
    ext: &'static str,
    /// Per table prefix: the time of its last CDC name (assigned or found in the target).
    last_ms: HashMap<String, i64>,
    /// Keys given to staged files not yet published: a retried flush reuses them.
    assigned: HashMap<PathBuf, String>,
}

impl CdcNamer {
    pub fn new(date_partitioning: bool, ext: &'static str) -> CdcNamer {
        CdcNamer {
            date_partitioning,
            ext,
            ..CdcNamer::default()
        }
    }

    /// The keys of one flush's parts, given as (staging path, table prefix, first commit
    /// time in µs) in write order. A part named by an earlier call that did not
    /// [`published`](Self::published) keeps its key. Lists the table's folder the first
    /// time a table is named in this process.
    pub fn assign(
        &mut self,
        storage: &dyn Storage,
        parts: &[(PathBuf, String, i64)],
    ) -> Result<Vec<String>> {
        let mut keys = Vec::with_capacity(parts.len());
        for (path, prefix, ts_us) in parts {
            if let Some(k) = self.assigned.get(path) {
                keys.push(k.clone());
                continue;
            }
            if !self.last_ms.contains_key(prefix) {
                let found = storage
                    .list(prefix)?
                    .iter()
                    .filter_map(|k| cdc_key_millis(k))
                    .max();
                self.last_ms
                    .insert(prefix.clone(), found.unwrap_or(i64::MIN));
            }
            let last = self.last_ms.get_mut(prefix).expect("inserted above");
            let ms = next_free_ms(*last, ts_us.div_euclid(1000));
            *last = ms;
            let key = cdc_key(prefix, ms, self.date_partitioning, self.ext);
            self.assigned.insert(path.clone(), key.clone());
            keys.push(key);
        }
        Ok(keys)
    }

    /// The flush that used the assigned keys is durable: forget them.
    pub fn published(&mut self) {
        self.assigned.clear();
    }
}

/// The millisecond a new file is named by: its own, or the one after the table's last.
fn next_free_ms(last: i64, ms: i64) -> i64 {
    if ms > last {
        ms
    } else {
        last.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-01-31 12:34:56.789 UTC
    const T: i64 = 1_706_704_496_789;

    #[test]
    fn load_names_are_eight_hex_digits_from_one() {
        assert_eq!(load_key("public", "t", 0, "parquet"), "public/t/LOAD00000001.parquet");
        assert_eq!(load_key("public", "t", 9, "parquet"), "public/t/LOAD0000000A.parquet");
        assert_eq!(
            load_key("Sales", "Order Items", 255, "parquet"),
            "Sales/Order Items/LOAD00000100.parquet"
        );
        assert_eq!(load_key("public", "t", 0, "csv.gz"), "public/t/LOAD00000001.csv.gz");
        for ext in DATA_EXTENSIONS {
            assert!(is_load_key(&load_key("s", "t", 3, ext)), "{ext}");
        }
        assert!(!is_load_key("s/t/LOAD00000001.json"));
        assert!(!is_load_key("s/t/LOAD00000001.gz"));
        assert!(!is_load_key("s/t/LOAD00000001csv"));
    }

    #[test]
    fn cdc_names_follow_the_commit_time() {
        assert_eq!(
            cdc_key("public/t", T, false, "parquet"),
            "public/t/20240131-123456789.parquet"
        );
        assert_eq!(
            cdc_key("public/t", T, true, "parquet"),
            "public/t/2024/01/31/20240131-123456789.parquet"
        );
        assert_eq!(
            cdc_key("public/t", 0, false, "parquet"),
            "public/t/19700101-000000000.parquet"
        );
        assert_eq!(
            cdc_key("public/t", T, true, "csv.gz"),
            "public/t/2024/01/31/20240131-123456789.csv.gz"
        );
        for dp in [false, true] {
            for ext in DATA_EXTENSIONS {
                assert_eq!(cdc_key_millis(&cdc_key("s/t", T, dp, ext)), Some(T));
            }
        }
        assert_eq!(cdc_key_millis("public/t/LOAD00000001.parquet"), None);
        assert_eq!(cdc_key_millis("public/t/20240131-123456789.json"), None);
        assert_eq!(cdc_key_millis("public/t/20241331-123456789.parquet"), None);
    }

    #[test]
    fn names_only_escape_what_could_leave_the_table_folder() {
        assert_eq!(
            dms_table_prefix("public", "Order Items"),
            "public/Order Items"
        );
        assert_eq!(dms_table_prefix("a-b", "c.d"), "a-b/c.d");
        assert_eq!(dms_table_prefix("..", "a/b"), "%2E%2E/a%2Fb");
        assert_eq!(dms_segment("x\ny"), "x%0Ay");
    }

    #[test]
    fn same_millisecond_takes_the_next_free_one_and_retries_reuse_keys() {
        let dir = tempfile::tempdir().unwrap();
        let loc = crate::config::Location::parse(dir.path().to_str().unwrap()).unwrap();
        let storage = crate::storage::open(&loc, &Default::default()).unwrap();
        let us = T * 1000 + 5;
        let parts = vec![
            (PathBuf::from("a"), "public/t".to_string(), us),
            (PathBuf::from("b"), "public/t".to_string(), us),
            (PathBuf::from("c"), "public/u".to_string(), us),
        ];
        let mut namer = CdcNamer::new(false, "parquet");
        let keys = namer.assign(storage.as_ref(), &parts).unwrap();
        assert_eq!(
            keys,
            [
                "public/t/20240131-123456789.parquet",
                "public/t/20240131-123456790.parquet",
                "public/u/20240131-123456789.parquet"
            ]
        );
        // A retried flush (same staged files) gets the same keys.
        assert_eq!(namer.assign(storage.as_ref(), &parts).unwrap(), keys);
        namer.published();
        // A later file committed in the same millisecond does not overwrite.
        let next = namer
            .assign(
                storage.as_ref(),
                &[(PathBuf::from("d"), "public/t".into(), us)],
            )
            .unwrap();
        assert_eq!(next, ["public/t/20240131-123456791.parquet"]);
        // A new process learns the last name from the target.
        std::fs::create_dir_all(dir.path().join("public/t")).unwrap();
        std::fs::write(dir.path().join("public/t/20240131-123456795.parquet"), b"x").unwrap();
        let mut fresh = CdcNamer::new(false, "parquet");
        let k = fresh
            .assign(
                storage.as_ref(),
                &[(PathBuf::from("e"), "public/t".into(), us)],
            )
            .unwrap();
        assert_eq!(k, ["public/t/20240131-123456796.parquet"]);
    }
}
