//! Glue (Hive) column types of the Arrow fields pgcdc writes to Parquet, the types Athena
//! reads those Parquet columns as.

use arrow_schema::{DataType, Field};

/// The Glue/Hive type of an Arrow type: `bigint`, `int`, `smallint`, `tinyint`, `double`,
/// `float`, `boolean`, `string`, `binary`, `date`, `timestamp`, `decimal(p,s)`,
/// `array<...>`, `struct<...>`, `map<...>`. Unsigned integers get the next wider signed
/// type (`UInt64` becomes `decimal(20,0)`); times of day, which Hive has no type for, are
/// their Parquet integers (`bigint` for microseconds/nanoseconds, `int` otherwise);
/// anything else without a Hive counterpart (intervals) is `string`.
pub fn hive_type(t: &DataType) -> String {
    match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "int".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "decimal(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
            "string".into()
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "binary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::Time32(_) => "int".into(),
        DataType::Time64(_) => "bigint".into(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            format!("decimal({p},{s})")
        }
        DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f) => {
            format!("array<{}>", hive_type(f.data_type()))
        }
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}:{}", f.name(), hive_type(f.data_type())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!(
                    "map<{},{}>",
                    hive_type(kv[0].data_type()),
                    hive_type(kv[1].data_type())
                )
            }
            _ => "string".into(),
        },
        DataType::Dictionary(_, v) => hive_type(v),
        _ => "string".into(),
    }
}

/// `(name, Glue type)` of each field, in order: the columns of a Glue table.
pub fn columns(fields: &[std::sync::Arc<Field>]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|f| (f.name().clone(), hive_type(f.data_type())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::TimeUnit;
    use std::sync::Arc;

    #[test]
    fn scalar_types_map_to_their_hive_names() {
        for (t, h) in [
            (DataType::Int64, "bigint"),
            (DataType::Int32, "int"),
            (DataType::Int16, "smallint"),
            (DataType::Float64, "double"),
            (DataType::Float32, "float"),
            (DataType::Boolean, "boolean"),
            (DataType::Utf8, "string"),
            (DataType::LargeUtf8, "string"),
            (DataType::Binary, "binary"),
            (DataType::FixedSizeBinary(16), "binary"),
            (DataType::Date32, "date"),
            (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                "timestamp",
            ),
            (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "timestamp",
            ),
            (DataType::Decimal128(10, 2), "decimal(10,2)"),
            (DataType::Time64(TimeUnit::Microsecond), "bigint"),
            (DataType::UInt32, "bigint"),
        ] {
            assert_eq!(hive_type(&t), h, "{t:?}");
        }
    }

    #[test]
    fn nested_types_map_recursively() {
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
        assert_eq!(hive_type(&list), "array<int>");
        let nested = DataType::List(Arc::new(Field::new("item", list, true)));
        assert_eq!(hive_type(&nested), "array<array<int>>");
        let st = DataType::Struct(
            vec![
                Field::new("a", DataType::Utf8, true),
                Field::new("b", DataType::Decimal128(38, 9), true),
            ]
            .into(),
        );
        assert_eq!(hive_type(&st), "struct<a:string,b:decimal(38,9)>");
        let fields = vec![
            Arc::new(Field::new("id", DataType::Int64, false)),
            Arc::new(Field::new("_op", DataType::Utf8, false)),
        ];
        assert_eq!(
            columns(&fields),
            vec![
                ("id".into(), "bigint".into()),
                ("_op".into(), "string".into())
            ]
        );
    }
}
