//! The Arrow schema of a table's output files: the table's columns (typed per SPEC 5.4)
//! followed by the metadata columns of SPEC 5.1, with the `pgcdc.*` metadata keys.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::model::{ColumnSchema, TableSchema};

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::fixtures::orders as table;

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
    fn serde_round_trip() {
        let t = table();
        let json = serde_json::to_string(&t).unwrap();
        let back: TableSchema = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.arrow_schema(), t.arrow_schema());
    }
}
