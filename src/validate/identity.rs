//! Column identity across a table's files, for the materialisation rule.
//!
//! Every file has one shape and one key (the Parquet sink seals a part whenever either
//! changes). A column is identified by its `pgcdc.attnum` field metadata (PostgreSQL's
//! `attnum`), or by its name in files written without it. Reading the files oldest first,
//! [`plan`] says for each file how its columns are named in the materialised rows: by
//! the name the column has in the newest file, so a value written before a `RENAME COLUMN`
//! is carried into the renamed column; a column dropped since gets a name of its own
//! (`name#attnum`) so that a new column of the same name never receives its values. A
//! column of the newest file that a file lacks (added later) is filled with its missing
//! value (`pgcdc.missing`, a fast default's `attmissingval`, as first recorded), else null. A value written
//! under another type than the newest file's is converted to the newest type's canonical
//! form when it parses as such (`int` 1 → `numeric(20,2)` 1.00), so values compare as values.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{ColumnSchema, TableSchema, builtin};

/// One data column of a file, from its Arrow field and the file's `pgcdc.pg_types`.
#[derive(Debug, Clone, Default)]
pub struct FileColumn {
    pub name: String,
    pub attnum: Option<i16>,
    /// `pgcdc.missing`: PostgreSQL text of the value of rows written before the column existed.
    pub missing: Option<String>,
    /// PostgreSQL type OID and modifier, when the file names them.
    pub pg_type: Option<(u32, i32)>,
}

/// The columns and key (`pgcdc.key`) of one file.
#[derive(Debug, Clone, Default)]
pub struct FileShape {
    pub columns: Vec<FileColumn>,
    pub key: Vec<String>,
}

/// How the rows of one file enter the materialisation.
#[derive(Debug, Clone, Default)]
pub struct FilePlan {
    /// Per column of the file, the name it has in materialised rows.
    pub names: Vec<String>,
    /// Per column of the file, the type `(oid, typmod)` its values are converted to.
    pub convert: Vec<Option<(u32, i32)>>,
    /// Columns of the newest file this file lacks, with the canonical value they take.
    pub fill: Vec<(String, Option<String>)>,
    /// The file's key, as materialised column names.
    pub key: Arc<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Ident {
    Att(i16),
    Name(String),
}

fn ident(c: &FileColumn) -> Ident {
    c.attnum
        .map_or_else(|| Ident::Name(c.name.clone()), Ident::Att)
}

/// The plans of `files`, given oldest first (see the module docs).
pub fn plan(files: &[FileShape]) -> Vec<FilePlan> {
    let Some(newest) = files.last() else {
        return Vec::new();
    };
    let current: HashMap<Ident, &FileColumn> =
        newest.columns.iter().map(|c| (ident(c), c)).collect();
    let name_of = |c: &FileColumn| -> String {
        match (current.get(&ident(c)), c.attnum) {
            (Some(cur), _) => cur.name.clone(),
            (None, Some(a)) => format!("{}#{a}", c.name),
            (None, None) => c.name.clone(),
        }
    };
    let mut fills: HashMap<Ident, Option<String>> = HashMap::new();
    files
        .iter()
        .map(|f| {
            let names: Vec<String> = f.columns.iter().map(name_of).collect();
            let convert = f
                .columns
                .iter()
                .map(|c| {
                    let cur = current.get(&ident(c))?;
                    match (c.pg_type, cur.pg_type) {
                        (Some(old), Some(new)) if old != new => Some(new),
                        _ => None,
                    }
                })
                .collect();
            let fill = newest
                .columns
                .iter()
                .filter(|c| !names.contains(&c.name))
                .map(|c| {
                    let value = fills.entry(ident(c)).or_insert_with(|| {
                        // As recorded first: a later ALTER rewrite clears `attmissingval`.
                        let id = ident(c);
                        let missing = files
                            .iter()
                            .flat_map(|f| &f.columns)
                            .find(|o| ident(o) == id && o.missing.is_some())
                            .and_then(|o| o.missing.as_ref());
                        missing.map(|m| match c.pg_type {
                            Some((oid, typmod)) => {
                                to_canonical(oid, typmod, m).unwrap_or_else(|| m.clone())
                            }
                            None => m.clone(),
                        })
                    });
                    (c.name.clone(), value.clone())
                })
                .collect();
            let key = f
                .key
                .iter()
                .map(|k| {
                    f.columns
                        .iter()
                        .position(|c| &c.name == k)
                        .map_or_else(|| k.clone(), |i| names[i].clone())
                })
                .collect();
            FilePlan {
                names,
                convert,
                fill,
                key: Arc::new(key),
            }
        })
        .collect()
}

/// `text` (PostgreSQL's text form of a value) as the canonical string of a column of type
/// `(oid, typmod)` ([`crate::batch::cell_to_string`]); `None` when the type is not a
/// builtin one or the text does not parse as it.
pub fn to_canonical(oid: u32, typmod: i32, text: &str) -> Option<String> {
    let pg_type = builtin(oid, typmod)?;
    let table = Arc::new(TableSchema {
        relid: 0,
        schema: String::new(),
        name: String::new(),
        columns: vec![ColumnSchema {
            name: "v".into(),
            type_oid: oid,
            type_modifier: typmod,
            pg_type,
            replica_identity: false,
            attnum: None,
            missing: None,
        }],
        key: Vec::new(),
        replica_identity: b'd',
        relfilenode: None,
    });
    let rows = super::canonical::canonical_list(&table, &[vec![Some(text.to_string())]]).ok()?;
    rows.into_iter().next()?.into_iter().next()?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, attnum: Option<i16>, oid: u32) -> FileColumn {
        FileColumn {
            name: name.into(),
            attnum,
            missing: None,
            pg_type: Some((oid, -1)),
        }
    }

    #[test]
    fn renames_follow_the_attnum_and_dropped_columns_keep_apart() {
        let old = FileShape {
            columns: vec![
                col("id", Some(1), 23),
                col("v", Some(2), 25),
                col("gone", Some(3), 25),
            ],
            key: vec!["id".into()],
        };
        let new = FileShape {
            columns: vec![
                col("code", Some(1), 23),
                col("w", Some(2), 25),
                col("gone", Some(4), 25),
            ],
            key: vec!["code".into()],
        };
        let p = plan(&[old, new]);
        assert_eq!(p[0].names, ["code", "w", "gone#3"]);
        assert_eq!(*p[0].key, ["code"]);
        assert_eq!(p[0].fill, [("gone".to_string(), None)]);
        assert_eq!(p[1].names, ["code", "w", "gone"]);
        assert!(p[1].fill.is_empty());
    }

    #[test]
    fn added_columns_take_their_missing_value_and_types_convert() {
        let old = FileShape {
            columns: vec![col("id", Some(1), 23), col("n", Some(2), 23)],
            key: vec!["id".into()],
        };
        let mut added = col("c", Some(3), 25);
        added.missing = Some("x".into());
        let mut n = col("n", Some(2), 1700);
        n.pg_type = Some((1700, ((20 << 16) | 2) + 4));
        let new = FileShape {
            columns: vec![col("id", Some(1), 23), n, added],
            key: vec!["id".into()],
        };
        let p = plan(&[old, new]);
        assert_eq!(p[0].fill, [("c".to_string(), Some("x".to_string()))]);
        assert_eq!(p[0].convert, [None, Some((1700, ((20 << 16) | 2) + 4))]);
        assert_eq!(
            to_canonical(1700, ((20 << 16) | 2) + 4, "1").as_deref(),
            Some("1.00")
        );
        assert_eq!(to_canonical(23, -1, "x"), None);
    }
}
