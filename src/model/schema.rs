//! A table as pgcdc records it: [`TableSchema`] with its [`ColumnSchema`]s and the key the
//! materialisation rule uses ([`choose_key`]). The Arrow schema of a table's output files
//! (its columns, then the metadata columns of SPEC 5.1) is the batch layer's:
//! `TableSchema::arrow_schema` in `crate::batch::schema`.

use serde::{Deserialize, Serialize};

use super::types::{builtin, builtin_type_name, PgType};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSchema {
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
    pub pg_type: PgType,
    /// Part of the replica identity (pgoutput's column flag).
    pub replica_identity: bool,
    /// `pg_attribute.attnum`: the column's identity across renames (`None` when unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attnum: Option<i16>,
    /// The value of the column in rows written before it was added (a fast default's
    /// `attmissingval`), in PostgreSQL's text form; `None` means null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

impl ColumnSchema {
    /// The PostgreSQL type name shown in metadata: the builtin name (`varchar`,
    /// `timestamptz[]`, `numeric(10,2)`), else the resolved type's name.
    pub fn pg_type_name(&self) -> String {
        match (&self.pg_type, builtin_type_name(self.type_oid)) {
            (PgType::Numeric { .. }, _) => self.pg_type.name(),
            (PgType::Array { element, .. }, _) if matches!(**element, PgType::Numeric { .. }) => self.pg_type.name(),
            (_, Some(n)) if builtin(self.type_oid, self.type_modifier).is_some() => n,
            _ => self.pg_type.name(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    pub relid: u32,
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnSchema>,
    /// Indices of the key used by the materialisation rule (primary key, else
    /// replica-identity index, else all columns).
    pub key: Vec<usize>,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// `pg_class.relfilenode` when the schema was read (`None` when unknown): a change
    /// means the table was rewritten (see `crate::pipeline::rewrite`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relfilenode: Option<u32>,
}

impl TableSchema {
    /// `schema.table`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// Names of the key columns, in key order.
    pub fn key_names(&self) -> Vec<&str> {
        self.key.iter().filter_map(|&i| self.columns.get(i)).map(|c| c.name.as_str()).collect()
    }

    /// True if both produce the same data columns: same names, type OIDs, modifiers,
    /// resolved types, attnums and missing values, in the same order (hence the same Arrow
    /// fields). The key, the replica identity and the table's name are not part of the shape.
    pub fn same_shape(&self, other: &TableSchema) -> bool {
        self.columns.len() == other.columns.len()
            && self.columns.iter().zip(&other.columns).all(|(a, b)| {
                a.name == b.name
                    && a.type_oid == b.type_oid
                    && a.type_modifier == b.type_modifier
                    && a.pg_type == b.pg_type
                    && a.attnum == b.attnum
                    && a.missing == b.missing
            })
    }

    /// True if the schema history needs no new entry for `other`: same shape, same key
    /// columns and same relfilenode. A difference also seals the open part, so that every
    /// file has one shape and one key (its `pgcdc.key`).
    pub fn same_history(&self, other: &TableSchema) -> bool {
        self.same_shape(other) && self.key_names() == other.key_names() && self.relfilenode == other.relfilenode
    }
}

/// The key of the materialisation rule, from the identity the stream declares (so that
/// deletes and key-changing updates, which carry only the identity columns, find their
/// row): the columns flagged as replica identity (the primary key under `DEFAULT`, the
/// index's columns under `USING INDEX`), in the primary key's order when they are its
/// columns, else in table order. Under `FULL` (`replica_identity` `f`, every column
/// flagged) and `NOTHING` (`n`, none), the primary key when the table has one and all its
/// columns are present, else the flagged columns (every column under FULL).
pub fn choose_key(columns: &[ColumnSchema], primary_key: &[String], replica_identity: u8) -> Vec<usize> {
    let pk: Option<Vec<usize>> = primary_key.iter().map(|n| columns.iter().position(|c| &c.name == n)).collect();
    let pk = pk.filter(|idx| !idx.is_empty());
    let flagged: Vec<usize> = columns.iter().enumerate().filter(|(_, c)| c.replica_identity).map(|(i, _)| i).collect();
    match (replica_identity, pk) {
        (b'f' | b'n', pk) => pk.unwrap_or(flagged),
        (_, pk) if flagged.is_empty() => pk.unwrap_or_default(),
        // The primary key's columns, in the constraint's order (pgoutput flags them in table order).
        (_, Some(pk)) if pk.len() == flagged.len() && pk.iter().all(|i| flagged.contains(i)) => pk,
        _ => flagged,
    }
}

/// Tables and columns for unit tests anywhere in the crate.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A column of a builtin type (panics for other OIDs), not in the replica identity.
    pub(crate) fn col(name: &str, oid: u32, typmod: i32) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            type_oid: oid,
            type_modifier: typmod,
            pg_type: builtin(oid, typmod).unwrap_or_else(|| panic!("oid {oid} is builtin")),
            replica_identity: false,
            attnum: None,
            missing: None,
        }
    }

    /// `public.orders` (id int8, region text, amount numeric(10,2), tags text[], name
    /// varchar(20)) keyed by (region, id).
    pub(crate) fn orders() -> TableSchema {
        TableSchema {
            relid: 16384,
            schema: "public".into(),
            name: "orders".into(),
            columns: vec![
                col("id", 20, -1),
                col("region", 25, -1),
                col("amount", 1700, ((10 << 16) | 2) + 4),
                col("tags", 1009, -1),
                col("name", 1043, 24),
            ],
            key: vec![1, 0],
            replica_identity: b'd',
            relfilenode: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{col, orders as table};
    use super::*;

    #[test]
    fn same_shape_compares_columns_only() {
        let a = table();
        let mut b = table();
        b.key = vec![0];
        b.replica_identity = b'f';
        b.relid = 1;
        assert!(a.same_shape(&b));
        let mut c = table();
        c.columns[2] = col("amount", 1700, ((12 << 16) | 2) + 4);
        assert!(!a.same_shape(&c));
        let mut d = table();
        d.columns[4].name = "title".into();
        assert!(!a.same_shape(&d));
        let mut e = table();
        e.columns.pop();
        assert!(!a.same_shape(&e));
        let mut f = table();
        f.columns[1] = col("region", 1043, -1); // text -> varchar: same Arrow type, other PG type
        assert!(!a.same_shape(&f));
    }

    fn cols(flags: &[bool]) -> Vec<ColumnSchema> {
        ["id", "code", "v"]
            .iter()
            .zip(flags)
            .map(|(n, &f)| ColumnSchema {
                name: n.to_string(),
                type_oid: 25,
                type_modifier: -1,
                pg_type: PgType::Text,
                replica_identity: f,
                attnum: None,
                missing: None,
            })
            .collect()
    }

    #[test]
    fn the_key_is_the_streamed_identity() {
        let pk = vec!["id".to_string()];
        // USING INDEX on `code`: the identity, not today's primary key.
        assert_eq!(choose_key(&cols(&[false, true, false]), &pk, b'i'), vec![1]);
        // DEFAULT: the flagged primary key (as the stream had it, whatever the catalog says now),
        // in the constraint's order.
        assert_eq!(choose_key(&cols(&[true, false, false]), &["code".to_string()], b'd'), vec![0]);
        assert_eq!(choose_key(&cols(&[true, true, false]), &["code".to_string(), "id".to_string()], b'd'), vec![1, 0]);
        // FULL: the primary key when there is one, else every column.
        assert_eq!(choose_key(&cols(&[true, true, true]), &pk, b'f'), vec![0]);
        assert_eq!(choose_key(&cols(&[true, true, true]), &[], b'f'), vec![0, 1, 2]);
        // NOTHING: the primary key if any.
        assert_eq!(choose_key(&cols(&[false, false, false]), &pk, b'n'), vec![0]);
        assert!(choose_key(&cols(&[false, false, false]), &[], b'n').is_empty());
    }
}
