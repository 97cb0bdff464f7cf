//! A table's schema as pgcdc records it, and the Arrow schema of its output files: the
//! table's columns followed by the metadata columns of SPEC 5.1.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use super::types::{builtin, builtin_type_name, PgType};

/// `_op`: `L`, `I`, `U`, `D` or `T`.
pub const COL_OP: &str = "_op";
/// `_lsn`: commit LSN of the transaction (snapshot LSN for loads).
pub const COL_LSN: &str = "_lsn";
/// `_seq`: position of the change inside its transaction (row number for loads).
pub const COL_SEQ: &str = "_seq";
/// `_xid`: source transaction id, nullable.
pub const COL_XID: &str = "_xid";
/// `_commit_ts`: commit time, timestamp(µs, UTC).
pub const COL_COMMIT_TS: &str = "_commit_ts";
/// `_unchanged`: names of columns the source did not send (unchanged TOAST), nullable.
pub const COL_UNCHANGED: &str = "_unchanged";
/// The metadata columns, in file order, after the table's columns.
pub const METADATA_COLUMNS: [&str; 6] = [COL_OP, COL_LSN, COL_SEQ, COL_XID, COL_COMMIT_TS, COL_UNCHANGED];

/// Schema-level metadata key: `schema.table`.
pub const META_TABLE: &str = "pgcdc.table";
/// Schema-level metadata key: comma-separated key column names.
pub const META_KEY: &str = "pgcdc.key";
/// Schema-level metadata key: JSON array, per data column, of
/// `{"column", "type", "oid", "typmod"}` (the PostgreSQL type behind each Arrow type).
pub const META_PG_TYPES: &str = "pgcdc.pg_types";
/// Field-level metadata key: the column's `pg_attribute.attnum` (its identity across renames).
pub const META_ATTNUM: &str = "pgcdc.attnum";
/// Field-level metadata key: the value, in PostgreSQL's text form, that rows written before
/// the column existed have (`attmissingval` of a fast default); absent when null.
pub const META_MISSING: &str = "pgcdc.missing";

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
    /// The column's Arrow field, with field metadata `pgcdc.attnum` and `pgcdc.missing`
    /// when known.
    pub fn arrow_field(&self) -> Field {
        let field = self.pg_type.arrow_field(&self.name);
        if self.attnum.is_none() && self.missing.is_none() {
            return field;
        }
        // Added to the field's own metadata (e.g. an Arrow extension type's name).
        let mut meta = field.metadata().clone();
        if let Some(a) = self.attnum {
            meta.insert(META_ATTNUM.to_string(), a.to_string());
        }
        if let Some(m) = &self.missing {
            meta.insert(META_MISSING.to_string(), m.clone());
        }
        field.with_metadata(meta)
    }

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

/// The Arrow fields of the metadata columns (SPEC 5.1), in order.
pub fn metadata_fields() -> Vec<Field> {
    vec![
        Field::new(COL_OP, DataType::Utf8, false),
        Field::new(COL_LSN, DataType::Int64, false),
        Field::new(COL_SEQ, DataType::Int64, false),
        Field::new(COL_XID, DataType::Int64, true),
        Field::new(COL_COMMIT_TS, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        Field::new(COL_UNCHANGED, DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))), true),
    ]
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

    /// The Arrow schema of the table's output: its columns in order (all nullable), then the
    /// metadata columns, with schema metadata `pgcdc.table`, `pgcdc.key`, `pgcdc.pg_types`.
    pub fn arrow_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self.columns.iter().map(ColumnSchema::arrow_field).collect();
        fields.extend(metadata_fields());
        let pg_types: Vec<serde_json::Value> = self
            .columns
            .iter()
            .map(|c| {
                serde_json::json!({
                    "column": c.name,
                    "type": c.pg_type_name(),
                    "oid": c.type_oid,
                    "typmod": c.type_modifier,
                })
            })
            .collect();
        let metadata = HashMap::from([
            (META_TABLE.to_string(), self.qualified_name()),
            (META_KEY.to_string(), self.key_names().join(",")),
            (META_PG_TYPES.to_string(), serde_json::Value::Array(pg_types).to_string()),
        ]);
        Arc::new(Schema::new_with_metadata(fields, metadata))
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn col(name: &str, oid: u32, typmod: i32) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            type_oid: oid,
            type_modifier: typmod,
            pg_type: builtin(oid, typmod).unwrap(),
            replica_identity: false,
            attnum: None,
            missing: None,
        }
    }

    fn table() -> TableSchema {
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

    #[test]
    fn arrow_schema_has_data_then_metadata_columns() {
        let s = table().arrow_schema();
        let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            ["id", "region", "amount", "tags", "name", "_op", "_lsn", "_seq", "_xid", "_commit_ts", "_unchanged"]
        );
        assert_eq!(s.field(0).data_type(), &DataType::Int64);
        assert_eq!(s.field(2).data_type(), &DataType::Decimal128(10, 2));
        assert!(s.fields()[..5].iter().all(|f| f.is_nullable()));
        let meta = |n: &str| s.field_with_name(n).unwrap().clone();
        assert!(!meta("_op").is_nullable() && meta("_op").data_type() == &DataType::Utf8);
        assert!(!meta("_lsn").is_nullable() && meta("_lsn").data_type() == &DataType::Int64);
        assert!(!meta("_seq").is_nullable() && meta("_seq").data_type() == &DataType::Int64);
        assert!(meta("_xid").is_nullable() && meta("_xid").data_type() == &DataType::Int64);
        assert!(!meta("_commit_ts").is_nullable());
        assert_eq!(meta("_commit_ts").data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
        assert!(meta("_unchanged").is_nullable());
        assert_eq!(
            meta("_unchanged").data_type(),
            &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        );
        assert_eq!(s.metadata()["pgcdc.table"], "public.orders");
        assert_eq!(s.metadata()["pgcdc.key"], "region,id");
        let types: serde_json::Value = serde_json::from_str(&s.metadata()["pgcdc.pg_types"]).unwrap();
        assert_eq!(types[0], serde_json::json!({"column": "id", "type": "int8", "oid": 20, "typmod": -1}));
        assert_eq!(types[2]["type"], "numeric(10,2)");
        assert_eq!(types[3]["type"], "text[]");
        assert_eq!(types[4], serde_json::json!({"column": "name", "type": "varchar", "oid": 1043, "typmod": 24}));
    }

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

    #[test]
    fn serde_round_trip() {
        let t = table();
        let json = serde_json::to_string(&t).unwrap();
        let back: TableSchema = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.arrow_schema(), t.arrow_schema());
    }
}
