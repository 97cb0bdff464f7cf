//! Values in PostgreSQL's binary send format, as `COPY … (FORMAT binary)` delivers them.
//!
//! Only types with a cheap, exact binary form are read natively; for every other column
//! the full load's SELECT list casts the column to `text` ([`copy_select_expr`]), and its
//! binary COPY bytes are then exactly the text form, parsed by the text path. The decision
//! is made by one function, [`copy_native`], on both sides.

use super::columns::{Cell, Scratch};
use super::text::{DATE_INFINITY, DATE_NEG_INFINITY, TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY};
use super::schema::ColumnSchema;
use super::types::{Conv, PgType};

/// Days between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch).
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// True when the column's binary COPY value is decoded natively.
pub fn copy_native(column: &ColumnSchema) -> bool {
    match column.pg_type {
        // oid is an unsigned 4-byte value mapped to Int64: read its text.
        PgType::Int8 => column.type_oid == 20,
        PgType::Bool
        | PgType::Int2
        | PgType::Int4
        | PgType::Float4
        | PgType::Float8
        | PgType::Uuid
        | PgType::Bytea
        | PgType::Date
        | PgType::Time
        | PgType::Timestamp
        | PgType::Timestamptz => true,
        // text, varchar, bpchar, name: the binary form is the text. "char" and domains over
        // other types are read as text through a cast.
        PgType::Text => matches!(column.type_oid, 25 | 1042 | 1043 | 19),
        _ => false,
    }
}

/// The column as it appears in the full load's `COPY (SELECT …)`.
pub fn copy_select_expr(column: &ColumnSchema) -> String {
    let ident = format!("\"{}\"", column.name.replace('"', "\"\""));
    if copy_native(column) {
        ident
    } else {
        format!("{ident}::text")
    }
}

fn exact<const N: usize>(b: &[u8]) -> Result<[u8; N], String> {
    b.try_into().map_err(|_| format!("binary value has {} bytes, expected {N}", b.len()))
}

/// Parses one natively decoded binary value (see [`copy_native`]).
pub(crate) fn parse_binary(conv: &Conv, b: &[u8], sc: &mut Scratch) -> Result<Cell, String> {
    Ok(match conv {
        Conv::Bool => Cell::Bool(exact::<1>(b)?[0] != 0),
        Conv::I16 => Cell::I16(i16::from_be_bytes(exact(b)?)),
        Conv::I32 => Cell::I32(i32::from_be_bytes(exact(b)?)),
        Conv::I64 => Cell::I64(i64::from_be_bytes(exact(b)?)),
        Conv::F32 => Cell::F32(f32::from_be_bytes(exact(b)?)),
        Conv::F64 => Cell::F64(f64::from_be_bytes(exact(b)?)),
        Conv::Uuid => Cell::Uuid(exact(b)?),
        Conv::Binary => {
            let start = sc.bytes.len() as u32;
            sc.bytes.extend_from_slice(b);
            Cell::Bytes { start, end: sc.bytes.len() as u32 }
        }
        Conv::Date => {
            let d = i32::from_be_bytes(exact(b)?);
            // PostgreSQL's ±infinity sentinels become the values the text path uses.
            Cell::I32(match d {
                i32::MAX => DATE_INFINITY,
                i32::MIN => DATE_NEG_INFINITY,
                d => d + PG_EPOCH_DAYS,
            })
        }
        Conv::Time => Cell::I64(i64::from_be_bytes(exact(b)?)),
        Conv::Timestamp | Conv::Timestamptz => {
            let t = i64::from_be_bytes(exact(b)?);
            Cell::I64(if t == i64::MAX {
                TIMESTAMP_INFINITY
            } else if t == i64::MIN {
                TIMESTAMP_NEG_INFINITY
            } else {
                t.checked_add(PG_EPOCH_MICROS)
                    .filter(|v| *v > TIMESTAMP_NEG_INFINITY && *v < TIMESTAMP_INFINITY)
                    .ok_or_else(|| "timestamp beyond the range of microseconds since 1970 in 64 bits".to_string())?
            })
        }
        Conv::Utf8 { .. } => {
            std::str::from_utf8(b).map_err(|_| "not valid UTF-8".to_string())?;
            Cell::Raw
        }
        Conv::Dec128 { .. } | Conv::Dec256 { .. } | Conv::List { .. } => {
            return Err("internal: this column is read as text, not binary".into())
        }
    })
}
