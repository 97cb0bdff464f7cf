//! Finding DMS-shaped data files and the table each belongs to.
//!
//! AWS DMS's S3 target writes `[BucketFolder/]{schema}/{table}/LOAD{n:08X}.{ext}` for the full
//! load and `{schema}/{table}/[date folders/]{YYYYMMDD-HHMMSSmmm}.{ext}` for CDC, with `ext`
//! one of `parquet`, `csv`, `csv.gz` (pgcdc's `layout = "dms"` writes the same, see
//! [`crate::sink::parquet::dms_naming`]). A key's table is the two folders before its name
//! once trailing all-digit folders (the date partitions, any `DatePartitionSequence`) are
//! set aside. Full-load files are read before CDC files; each group in name order, which is
//! DMS's write order (CDC names are times).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::storage::Storage;

/// How a data file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Csv { gzip: bool },
}

/// One DMS data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// The key under the storage's root.
    pub key: String,
    /// A full-load file (`LOAD…`): rows without `Op` are loaded rows.
    pub load: bool,
    pub format: Format,
}

/// `(schema, table)` → its data files in reading order.
pub type TableFiles = BTreeMap<(String, String), Vec<DataFile>>;

/// The format of a data file's name, `None` for anything else.
pub fn format_of(key: &str) -> Option<Format> {
    let k = key.to_ascii_lowercase();
    if k.ends_with(".parquet") {
        Some(Format::Parquet)
    } else if k.ends_with(".csv") {
        Some(Format::Csv { gzip: false })
    } else if k.ends_with(".csv.gz") {
        Some(Format::Csv { gzip: true })
    } else {
        None
    }
}

/// Every DMS data file of `storage` by table, in reading order (module documentation).
/// pgcdc's own `_pgcdc/` folder and files of other names are left out. A data file whose
/// key does not name a schema and a table folder is an error saying where files must be.
pub fn list(storage: &dyn Storage) -> Result<TableFiles> {
    let mut out: TableFiles = BTreeMap::new();
    for key in storage.list("")? {
        if key.starts_with("_pgcdc/") {
            continue;
        }
        let Some(format) = format_of(&key) else {
            continue;
        };
        let mut parts: Vec<&str> = key.split('/').collect();
        let name = parts.pop().unwrap_or_default();
        while parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            parts.pop();
        }
        if parts.len() < 2 {
            return Err(Error::config(format!(
                "{}/{key}: a DMS data file must be in a {{schema}}/{{table}}/ folder",
                storage.describe()
            ))
            .with_hint("give --dms the folder DMS writes into (its BucketFolder), the one that holds the schema folders"));
        }
        let table = (
            parts[parts.len() - 2].to_string(),
            parts[parts.len() - 1].to_string(),
        );
        out.entry(table).or_default().push(DataFile {
            load: name.starts_with("LOAD"),
            key: key.clone(),
            format,
        });
    }
    for files in out.values_mut() {
        files.sort_by(|a, b| {
            let name = |f: &DataFile| f.key.rsplit('/').next().unwrap_or_default().to_string();
            (!a.load, name(a), &a.key).cmp(&(!b.load, name(b), &b.key))
        });
    }
    Ok(out)
}

/// Whether `storage` holds pgcdc's native layout (`{schema}/{table}/load|cdc/…parquet`)
/// rather than the DMS layout.
pub fn is_native_layout(storage: &dyn Storage) -> Result<bool> {
    Ok(storage.list("")?.iter().any(|k| {
        let parts: Vec<&str> = k.split('/').collect();
        parts.len() >= 4 && matches!(parts[2], "load" | "cdc") && k.ends_with(".parquet")
    }))
}

/// The tables of pgcdc's native layout in `storage`: `(schema, table)` (decoded names) →
/// their key prefix.
pub fn native_tables(storage: &dyn Storage) -> Result<BTreeMap<(String, String), String>> {
    use crate::sink::parquet::naming::decode_path_component;
    let mut out = BTreeMap::new();
    for k in storage.list("")? {
        let parts: Vec<&str> = k.split('/').collect();
        if parts.len() >= 4
            && parts[0] != "_pgcdc"
            && matches!(parts[2], "load" | "cdc")
            && k.ends_with(".parquet")
        {
            if let (Some(s), Some(t)) = (
                decode_path_component(parts[0]),
                decode_path_component(parts[1]),
            ) {
                out.insert((s, t), format!("{}/{}", parts[0], parts[1]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{LocalStorage, PutMode};

    #[test]
    fn tables_and_reading_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::open(dir.path().to_path_buf()).unwrap();
        let _lock = s.lock().unwrap();
        for k in [
            "hr/emp/2019/01/02/20190102-000000000.csv",
            "hr/emp/2019/01/01/20190101-120000000.csv.gz",
            "hr/emp/LOAD00000002.csv",
            "hr/emp/LOAD00000001.csv",
            "public/t/LOAD00000001.parquet",
            "_pgcdc/checkpoint.json",
            "hr/emp/notes.txt",
        ] {
            s.put(k, b"x", PutMode::Overwrite).unwrap();
        }
        let t = list(&s).unwrap();
        let emp: Vec<&str> = t[&("hr".to_string(), "emp".to_string())]
            .iter()
            .map(|f| f.key.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(
            emp,
            [
                "LOAD00000001.csv",
                "LOAD00000002.csv",
                "20190101-120000000.csv.gz",
                "20190102-000000000.csv"
            ]
        );
        assert_eq!(t.len(), 2);
        assert!(!is_native_layout(&s).unwrap());
        s.put("x.csv", b"x", PutMode::Overwrite).unwrap();
        let e = list(&s).unwrap_err();
        assert!(e.message.contains("{schema}/{table}"), "{e}");
    }
}
