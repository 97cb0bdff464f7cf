//! Glue Data Catalog tables for the Parquet output (`[catalog] glue_database`, SPEC 4), so
//! that Athena queries the target without a crawler.
//!
//! One Glue table per replicated table, named `{schema}_{table}` (lower case, every
//! character other than `a-z`, `0-9` and `_` as `_`), `EXTERNAL_TABLE` with
//! `classification=parquet`, the Parquet input/output formats and SerDe, and the columns of
//! the newest file published for the table ([`hive_types`]).
//!
//! * Native layout: location `s3://bucket/prefix/{schema}/{table}/cdc/`, partition key
//!   `date` (string); each `cdc/date=YYYY-MM-DD/` folder is the partition of that date, and
//!   the full-load files (`{schema}/{table}/load/`) are the partition `date = 'load'`, so one
//!   table holds the whole history (`WHERE date <> 'load'` gives the changes alone).
//! * DMS layout: location `s3://bucket/prefix/{schema}/{table}/`, no partition keys; with
//!   `date_partitioning` the key `date` with one partition per `YYYY/MM/DD/` folder (value
//!   `YYYY-MM-DD`), and the full-load files at the table's root are the partition `load`.
//!   Only Parquet files are registered (`format = "csv"` files are not).
//!
//! The catalog is kept by a [`Storage`] wrapper ([`with_catalog`]): after a file is
//! published (durable in S3), the table is created if Glue does not have it, updated when
//! the file's columns differ from the table's, and the file's partition created if it is
//! new. The first time a run sees a table it also registers every partition folder already
//! in the target, so files published by a run that stopped before it reached Glue are
//! registered by the next one; and when recovery rolls an interrupted flush forward, its
//! files already published are registered before its checkpoint is written
//! ([`recovered`]). A Glue failure is retried with back-off (transient) or is one
//! clear error (permanent); either way the flush fails before its checkpoint, so the run
//! stops (exit 1) and nothing is lost: the next run finishes the flush and the catalog.

pub mod calls;
pub mod hive_types;
pub mod recovered;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use aws_sdk_glue::types::{Column, PartitionInput, SerDeInfo, StorageDescriptor, TableInput};

use self::calls::{call, refused, Answer, RETRY_FOR};
use crate::aws::Bridge;
use crate::config::{Config, Layout, Location, ParquetSinkConfig};
use crate::error::{Error, Result, ResultExt};
use crate::sink::parquet::naming::decode_path_component;
use crate::storage::{PutMode, Storage, TargetLock, Version};

const INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
const SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
/// The partition key of partitioned tables.
pub const PARTITION_KEY: &str = "date";

/// Where a published file belongs in the catalog.
#[derive(Debug, PartialEq, Eq)]
pub struct Placement {
    /// The Glue table name.
    pub table: String,
    /// The table's location, relative to the target's root (ends with `/`).
    pub table_dir: String,
    /// The folder that holds the table's files, relative to the target's root: what to list
    /// for the partitions already there.
    pub listing_dir: String,
    /// Whether the table has the partition key [`PARTITION_KEY`].
    pub partitioned: bool,
    /// `(value, folder relative to the target's root)` of the file's partition.
    pub partition: Option<(String, String)>,
}

/// The Glue table name of a table: `{schema}_{table}`, lower case, other characters `_`.
pub fn glue_table_name(schema: &str, table: &str) -> String {
    format!("{schema}_{table}")
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where the data file at `key` belongs; `None` for keys that are not Parquet data files
/// (progress under `_pgcdc/`, CSV files).
pub fn place(key: &str, layout: Layout, date_partitioning: bool) -> Option<Placement> {
    if !key.ends_with(".parquet") || key.starts_with('_') {
        return None;
    }
    let mut it = key.splitn(3, '/');
    let (s, t, rest) = (it.next()?, it.next()?, it.next()?);
    let name = |seg: &str| decode_path_component(seg).unwrap_or_else(|| seg.to_string());
    let table = glue_table_name(&name(s), &name(t));
    let root = format!("{s}/{t}/");
    let folder = rest.rsplit_once('/').map(|(d, _)| d);
    match layout {
        Layout::Native => {
            let cdc = format!("{root}cdc/");
            let partition = match folder? {
                "load" => ("load".to_string(), format!("{root}load/")),
                f => {
                    let date = f.strip_prefix("cdc/date=")?;
                    (date.to_string(), format!("{cdc}date={date}/"))
                }
            };
            Some(Placement {
                table,
                table_dir: cdc,
                listing_dir: root,
                partitioned: true,
                partition: Some(partition),
            })
        }
        Layout::Dms => {
            let partition = match folder {
                None if date_partitioning => Some(("load".to_string(), root.clone())),
                None => None,
                Some(f) if date_partitioning => {
                    let d: Vec<&str> = f.split('/').collect();
                    match d[..] {
                        [y, m, dd] => Some((format!("{y}-{m}-{dd}"), format!("{root}{f}/"))),
                        _ => return None,
                    }
                }
                Some(_) => return None,
            };
            Some(Placement {
                table,
                table_dir: root.clone(),
                listing_dir: root,
                partitioned: date_partitioning,
                partition,
            })
        }
    }
}

/// Per Glue table: its columns as last registered, and its partitions known to exist.
type Known = HashMap<String, (Vec<(String, String)>, HashSet<String>)>;

/// The Glue side: a client, the database, and what this run already registered.
struct Glue {
    bridge: Bridge,
    client: aws_sdk_glue::Client,
    database: String,
    /// `s3://bucket/prefix/`.
    root_url: String,
    layout: Layout,
    date_partitioning: bool,
    /// Per Glue table: its columns as last registered, and its partitions known to exist.
    known: Mutex<Known>,
}

/// Wraps `storage` (the target of `sink`) so that every Parquet file it publishes is
/// registered in the Glue database of `[catalog]`; `storage` itself when there is no
/// `[catalog]` or the target is not on S3. Checks that the database exists (one clear
/// error if not). Called where a Parquet target is handed to a writer: the sinks
/// (`sink::open`) and the full load.
pub fn with_catalog(
    config: &Config,
    sink: &ParquetSinkConfig,
    storage: Arc<dyn Storage>,
) -> Result<Arc<dyn Storage>> {
    let (Some(catalog), Location::S3 { bucket, prefix }) = (&config.catalog, &sink.location) else {
        return Ok(storage);
    };
    let bridge = Bridge::new("pgcdc-glue", 1)?;
    let aws = config.aws.clone();
    let client = bridge
        .run(async move { crate::aws::glue_client(&crate::aws::load(aws.as_ref()).await) })?;
    let glue = Glue {
        bridge,
        client,
        database: catalog.glue_database.clone(),
        root_url: format!("s3://{bucket}/{prefix}"),
        layout: sink.layout,
        date_partitioning: sink.date_partitioning,
        known: Mutex::new(HashMap::new()),
    };
    glue.check_database()?;
    Ok(Arc::new(CatalogStorage {
        inner: storage,
        glue,
    }))
}

impl Glue {
    /// One clear error unless the database exists and can be read.
    fn check_database(&self) -> Result<()> {
        let (client, db) = (self.client.clone(), self.database.clone());
        let what = format!("reading the Glue database `{db}`");
        let w = what.clone();
        let retry_for = std::time::Duration::from_secs(60);
        let answer = self.bridge.run(async move {
            call(&w, retry_for, || {
                let (client, db) = (client.clone(), db.clone());
                async move { client.get_database().name(db).send().await }
            })
            .await
        })??;
        match answer {
            Answer::Done(_) => Ok(()),
            Answer::Refused { code, message } => Err(refused(&what, &code, &message)),
        }
    }

    /// Registers the file `local` about to be published at `key` (see the module docs).
    fn register(
        &self,
        storage: &dyn Storage,
        columns: Vec<(String, String)>,
        place: Placement,
    ) -> Result<()> {
        let mut known = self.known.lock().expect("not poisoned");
        let result = self.register_locked(&mut known, storage, columns, &place);
        if result.is_err() {
            // Start over next time: read the table and its partitions again.
            known.remove(&place.table);
        }
        result
    }

    fn register_locked(
        &self,
        known: &mut Known,
        storage: &dyn Storage,
        columns: Vec<(String, String)>,
        place: &Placement,
    ) -> Result<()> {
        let first_sight = !known.contains_key(&place.table);
        let entry = known.entry(place.table.clone()).or_default();
        if first_sight || entry.0 != columns {
            self.ensure_table(place, &columns)?;
            entry.0 = columns.clone();
        }
        let mut wanted: Vec<(String, String)> = place.partition.iter().cloned().collect();
        if first_sight && place.partitioned {
            entry.1 = self.partitions(&place.table)?;
            for key in storage.list(place.listing_dir.trim_end_matches('/'))? {
                if let Some(p) = place_of(self, &key).and_then(|p| p.partition) {
                    wanted.push(p);
                }
            }
        }
        for (value, dir) in wanted {
            if place.partitioned && !entry.1.contains(&value) {
                self.create_partition(&place.table, &value, &dir, &columns)?;
                entry.1.insert(value);
            }
        }
        Ok(())
    }

    fn descriptor(&self, dir: &str, columns: &[(String, String)]) -> Result<StorageDescriptor> {
        Ok(StorageDescriptor::builder()
            .set_columns(Some(glue_columns(columns)?))
            .location(format!("{}{dir}", self.root_url))
            .input_format(INPUT_FORMAT)
            .output_format(OUTPUT_FORMAT)
            .serde_info(
                SerDeInfo::builder()
                    .serialization_library(SERDE)
                    .parameters("serialization.format", "1")
                    .build(),
            )
            .build())
    }

    /// Creates the table, or updates it when its columns, location or keys differ.
    fn ensure_table(&self, place: &Placement, columns: &[(String, String)]) -> Result<()> {
        let mut input = TableInput::builder()
            .name(&place.table)
            .table_type("EXTERNAL_TABLE")
            .parameters("classification", "parquet")
            .parameters("EXTERNAL", "TRUE")
            .storage_descriptor(self.descriptor(&place.table_dir, columns)?);
        if place.partitioned {
            if columns
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(PARTITION_KEY))
            {
                tracing::warn!(
                    "Glue table {}.{} has a column named `{PARTITION_KEY}`, which clashes with its partition key: Athena will refuse it",
                    self.database,
                    place.table
                );
            }
            input = input.partition_keys(glue_column(PARTITION_KEY, "string")?);
        }
        let input = input
            .build()
            .map_err(|e| Error::runtime(format!("internal: Glue table input: {e}")))?;
        let (client, db, name) = (
            self.client.clone(),
            self.database.clone(),
            place.table.clone(),
        );
        let what = format!("reading Glue table {db}.{name}");
        let existing = self.run(&what, {
            let (client, db, name) = (client.clone(), db.clone(), name.clone());
            move || {
                let (client, db, name) = (client.clone(), db.clone(), name.clone());
                async move { client.get_table().database_name(db).name(name).send().await }
            }
        })?;
        let (verb, update) = match existing {
            Answer::Done(out) => {
                let t = out.table();
                let sd = t.and_then(|t| t.storage_descriptor());
                let have: Vec<(String, String)> = sd
                    .map(|sd| {
                        sd.columns()
                            .iter()
                            .map(|c| (c.name().to_string(), c.r#type().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let location = sd.and_then(|sd| sd.location()).unwrap_or("");
                let keys = t.map_or(0, |t| t.partition_keys().len());
                if have == columns
                    && location == format!("{}{}", self.root_url, place.table_dir)
                    && keys == usize::from(place.partitioned)
                {
                    return Ok(());
                }
                ("updating", true)
            }
            Answer::Refused { code, .. } if code == "EntityNotFoundException" => {
                ("creating", false)
            }
            Answer::Refused { code, message } => return Err(refused(&what, &code, &message)),
        };
        let what = format!("{verb} Glue table {db}.{name}");
        tracing::info!(columns = columns.len(), "{what}");
        let answer = if update {
            self.run(&what, move || {
                let (client, db, input) = (client.clone(), db.clone(), input.clone());
                async move {
                    client
                        .update_table()
                        .database_name(db)
                        .table_input(input)
                        .send()
                        .await
                        .map(|_| ())
                }
            })?
        } else {
            self.run(&what, move || {
                let (client, db, input) = (client.clone(), db.clone(), input.clone());
                async move {
                    client
                        .create_table()
                        .database_name(db)
                        .table_input(input)
                        .send()
                        .await
                        .map(|_| ())
                }
            })?
        };
        match answer {
            Answer::Done(()) => Ok(()),
            // Another process (a concurrent full-load worker's storage) created it first.
            Answer::Refused { code, .. } if code == "AlreadyExistsException" => {
                self.ensure_table(place, columns)
            }
            Answer::Refused { code, message } => Err(refused(&what, &code, &message)),
        }
    }
}

impl Glue {
    /// Runs one request (made by `send`) on the bridge with the retry policy of [`call`].
    fn run<T, E, Fut>(
        &self,
        what: &str,
        send: impl FnMut() -> Fut + Send + 'static,
    ) -> Result<Answer<T>>
    where
        T: Send + 'static,
        Fut: std::future::Future<
                Output = std::result::Result<
                    T,
                    aws_sdk_glue::error::SdkError<E, aws_sdk_glue::config::http::HttpResponse>,
                >,
            > + Send
            + 'static,
        E: aws_sdk_glue::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let what = what.to_string();
        self.bridge
            .run(async move { call(&what, RETRY_FOR, send).await })?
    }

    /// The values of the partitions the table has in Glue.
    fn partitions(&self, table: &str) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        let mut token: Option<String> = None;
        let what = format!(
            "listing the partitions of Glue table {}.{table}",
            self.database
        );
        loop {
            let (client, db, name, t) = (
                self.client.clone(),
                self.database.clone(),
                table.to_string(),
                token.clone(),
            );
            let answer = self.run(&what, move || {
                let (client, db, name, t) = (client.clone(), db.clone(), name.clone(), t.clone());
                async move {
                    client
                        .get_partitions()
                        .database_name(db)
                        .table_name(name)
                        .set_next_token(t)
                        .send()
                        .await
                }
            })?;
            match answer {
                Answer::Done(page) => {
                    out.extend(
                        page.partitions()
                            .iter()
                            .filter_map(|p| p.values().first().cloned()),
                    );
                    token = page.next_token().map(str::to_string);
                    if token.is_none() {
                        return Ok(out);
                    }
                }
                Answer::Refused { code, message } => return Err(refused(&what, &code, &message)),
            }
        }
    }

    /// Creates the partition `value` at `dir` (an existing one is left as it is).
    fn create_partition(
        &self,
        table: &str,
        value: &str,
        dir: &str,
        columns: &[(String, String)],
    ) -> Result<()> {
        let input = PartitionInput::builder()
            .values(value)
            .storage_descriptor(self.descriptor(dir, columns)?)
            .build();
        let what = format!(
            "adding partition {PARTITION_KEY}={value} to Glue table {}.{table}",
            self.database
        );
        tracing::info!("{what}");
        let (client, db, name) = (
            self.client.clone(),
            self.database.clone(),
            table.to_string(),
        );
        match self.run(&what, move || {
            let (client, db, name, input) =
                (client.clone(), db.clone(), name.clone(), input.clone());
            async move {
                client
                    .create_partition()
                    .database_name(db)
                    .table_name(name)
                    .partition_input(input)
                    .send()
                    .await
            }
        })? {
            Answer::Done(_) => Ok(()),
            Answer::Refused { code, .. } if code == "AlreadyExistsException" => Ok(()),
            Answer::Refused { code, message } => Err(refused(&what, &code, &message)),
        }
    }
}

fn place_of(glue: &Glue, key: &str) -> Option<Placement> {
    place(key, glue.layout, glue.date_partitioning)
}

fn glue_column(name: &str, ty: &str) -> Result<Column> {
    Column::builder()
        .name(name)
        .r#type(ty)
        .build()
        .map_err(|e| Error::runtime(format!("internal: Glue column {name}: {e}")))
}

fn glue_columns(columns: &[(String, String)]) -> Result<Vec<Column>> {
    columns.iter().map(|(n, t)| glue_column(n, t)).collect()
}

/// The Glue columns of the Parquet file at `local`, from its footer.
fn file_columns(local: &Path) -> Result<Vec<(String, String)>> {
    let file = std::fs::File::open(local).runtime_ctx(|| format!("opening {}", local.display()))?;
    file_columns_of(file, &local.display().to_string())
}

/// The Glue columns of the Parquet file `data` (named `name` in errors), from its footer.
fn file_columns_of(
    data: impl parquet::file::reader::ChunkReader + 'static,
    name: &str,
) -> Result<Vec<(String, String)>> {
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data)
        .map_err(|e| Error::runtime(format!("reading the schema of {name}: {e}")))?;
    Ok(hive_types::columns(builder.schema().fields()))
}

/// A target whose published Parquet files are registered in Glue (see the module docs).
struct CatalogStorage {
    inner: Arc<dyn Storage>,
    glue: Glue,
}

impl Storage for CatalogStorage {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn lock(&self) -> Result<TargetLock> {
        self.inner.lock()
    }
    fn probe_writable(&self) -> Result<()> {
        self.inner.probe_writable()
    }
    fn staging_dir(&self) -> &Path {
        self.inner.staging_dir()
    }
    /// Publishes, then registers the file in Glue: the columns are read from the file
    /// before it is handed over (publishing consumes it).
    fn publish_file(&self, local: &Path, key: &str) -> Result<()> {
        let Some(place) = place_of(&self.glue, key) else {
            return self.inner.publish_file(local, key);
        };
        let columns = file_columns(local)?;
        self.inner.publish_file(local, key)?;
        self.glue
            .register(self.inner.as_ref(), columns, place)
            .map_err(|e| e.context(format!("registering {key} in Glue")))
    }
    fn publish_files(&self, files: &[(std::path::PathBuf, String)]) -> Result<()> {
        // Columns read before the files leave staging; uploaded together (concurrently on
        // S3), then registered one by one.
        let mut registrations = Vec::new();
        for (local, key) in files {
            if let Some(place) = place_of(&self.glue, key) {
                registrations.push((file_columns(local)?, place, key));
            }
        }
        self.inner.publish_files(files)?;
        for (columns, place, key) in registrations {
            self.glue
                .register(self.inner.as_ref(), columns, place)
                .map_err(|e| e.context(format!("registering {key} in Glue")))?;
        }
        Ok(())
    }
    fn put(&self, key: &str, data: &[u8], mode: PutMode<'_>) -> Result<Version> {
        self.inner.put(key, data, mode)
    }
    /// Reading the flush manifest (recovery does, before it writes the checkpoint) also
    /// registers the files the interrupted flush already published ([`recovered`]).
    fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        let got = self.inner.get_versioned(key)?;
        if key == crate::sink::parquet::manifest::MANIFEST_KEY {
            if let Some((bytes, _)) = &got {
                self.register_interrupted_flush(bytes)?;
            }
        }
        Ok(got)
    }
    fn has_staged(&self, path: &Path) -> bool {
        self.inner.has_staged(path)
    }
    fn clear_staging(&self) -> Result<()> {
        self.inner.clear_staging()
    }
    fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(key)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix)
    }
}

#[cfg(test)]
mod tests;
