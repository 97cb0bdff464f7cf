//! The Arrow type each [`PgType`] maps to (SPEC 5.4), and `Conv`, the normalised form the
//! builders and the Arrow schema both derive from. The mapping table and the rule for
//! values Arrow cannot hold natively are documented on [`PgType`].

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, TimeUnit};

use crate::model::types::DECIMAL256_MAX_PRECISION;
use crate::model::PgType;

/// Field metadata key of Arrow extension types.
pub const EXTENSION_NAME_KEY: &str = "ARROW:extension:name";
/// Canonical Arrow extension name for JSON text in a Utf8 column.
pub const JSON_EXTENSION: &str = "arrow.json";
/// Canonical Arrow extension name for a UUID in a FixedSizeBinary(16) column.
pub const UUID_EXTENSION: &str = "arrow.uuid";
/// Name of the element field of every list column.
pub const LIST_ITEM: &str = "item";

/// Largest precision of Arrow's Decimal128 and Decimal256.
const DECIMAL128_MAX_PRECISION: u8 = 38;

impl PgType {
    /// The Arrow field of a column of this type: nullable, with extension metadata for
    /// json (`arrow.json`) and uuid (`arrow.uuid`).
    pub fn arrow_field(&self, name: &str) -> Field {
        Conv::of(self).field(name)
    }

    /// The Arrow data type of a column of this type.
    pub fn arrow_type(&self) -> DataType {
        Conv::of(self).data_type()
    }
}

/// How values of a column are converted: the normalised form of a [`PgType`] that the
/// builders and the Arrow schema both derive from, so they can never disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Conv {
    Bool,
    I16,
    I32,
    I64,
    F32,
    F64,
    Dec128 { precision: u8, scale: i8 },
    Dec256 { precision: u8, scale: i8 },
    /// `json` marks the arrow.json extension; the values are plain text either way.
    Utf8 { json: bool },
    Uuid,
    Binary,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    List { element: Box<Conv>, delimiter: u8 },
}

impl Conv {
    pub(crate) fn of(t: &PgType) -> Conv {
        Self::of_inner(t, true)
    }

    fn of_inner(t: &PgType, top: bool) -> Conv {
        match t {
            PgType::Bool => Conv::Bool,
            PgType::Int2 => Conv::I16,
            PgType::Int4 => Conv::I32,
            PgType::Int8 => Conv::I64,
            PgType::Float4 => Conv::F32,
            PgType::Float8 => Conv::F64,
            &PgType::Numeric { precision, scale } => {
                let valid = precision >= 1 && scale >= 0 && scale as u8 <= precision;
                if valid && precision <= DECIMAL128_MAX_PRECISION {
                    Conv::Dec128 { precision, scale }
                } else if valid && precision <= DECIMAL256_MAX_PRECISION {
                    Conv::Dec256 { precision, scale }
                } else {
                    Conv::Utf8 { json: false }
                }
            }
            PgType::NumericText | PgType::Text | PgType::Other(_) => Conv::Utf8 { json: false },
            PgType::Json => Conv::Utf8 { json: true },
            PgType::Uuid => Conv::Uuid,
            PgType::Bytea => Conv::Binary,
            PgType::Date => Conv::Date,
            PgType::Time => Conv::Time,
            PgType::Timestamp => Conv::Timestamp,
            PgType::Timestamptz => Conv::Timestamptz,
            // An array nested in an array (array of a domain over an array) keeps each inner
            // array's text form: List<Utf8>.
            PgType::Array { .. } if !top => Conv::Utf8 { json: false },
            PgType::Array { element, delimiter } => {
                Conv::List { element: Box::new(Self::of_inner(element, false)), delimiter: *delimiter }
            }
        }
    }

    pub(crate) fn data_type(&self) -> DataType {
        match self {
            Conv::Bool => DataType::Boolean,
            Conv::I16 => DataType::Int16,
            Conv::I32 => DataType::Int32,
            Conv::I64 => DataType::Int64,
            Conv::F32 => DataType::Float32,
            Conv::F64 => DataType::Float64,
            &Conv::Dec128 { precision, scale } => DataType::Decimal128(precision, scale),
            &Conv::Dec256 { precision, scale } => DataType::Decimal256(precision, scale),
            Conv::Utf8 { .. } => DataType::Utf8,
            Conv::Uuid => DataType::FixedSizeBinary(16),
            Conv::Binary => DataType::Binary,
            Conv::Date => DataType::Date32,
            Conv::Time => DataType::Time64(TimeUnit::Microsecond),
            Conv::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Conv::Timestamptz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Conv::List { element, .. } => DataType::List(Arc::new(element.field(LIST_ITEM))),
        }
    }

    pub(crate) fn field(&self, name: &str) -> Field {
        let f = Field::new(name, self.data_type(), true);
        let ext = match self {
            Conv::Utf8 { json: true } => JSON_EXTENSION,
            Conv::Uuid => UUID_EXTENSION,
            _ => return f,
        };
        f.with_metadata(HashMap::from([(EXTENSION_NAME_KEY.to_string(), ext.to_string())]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_arrow_types() {
        assert_eq!(PgType::Numeric { precision: 10, scale: 2 }.arrow_type(), DataType::Decimal128(10, 2));
        assert_eq!(PgType::Numeric { precision: 50, scale: 10 }.arrow_type(), DataType::Decimal256(50, 10));
        assert_eq!(PgType::NumericText.arrow_type(), DataType::Utf8);
    }

    #[test]
    fn fields_carry_extension_metadata() {
        let f = PgType::Uuid.arrow_field("id");
        assert_eq!(f.data_type(), &DataType::FixedSizeBinary(16));
        assert!(f.is_nullable());
        assert_eq!(f.metadata().get(EXTENSION_NAME_KEY).map(String::as_str), Some("arrow.uuid"));
        let f = PgType::Json.arrow_field("doc");
        assert_eq!(f.data_type(), &DataType::Utf8);
        assert_eq!(f.metadata().get(EXTENSION_NAME_KEY).map(String::as_str), Some("arrow.json"));
        assert!(PgType::Text.arrow_field("t").metadata().is_empty());
        let f = PgType::Array { element: Box::new(PgType::Timestamptz), delimiter: b',' }.arrow_field("a");
        match f.data_type() {
            DataType::List(item) => {
                assert_eq!(item.name(), "item");
                assert!(item.is_nullable());
                assert_eq!(item.data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
            }
            other => panic!("{other:?}"),
        }
    }
}
