//! Column builders: a value's text is first parsed into a [`Cell`] (no allocation; variable
//! data goes to a reused [`Scratch`]), and only once every value of a row parsed are the
//! cells appended to the typed Arrow builders. That split is what makes a failing row leave
//! the builders untouched.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder, FixedSizeBinaryBuilder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, ListArray};
use arrow_buffer::{i256, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::FieldRef;

use super::array::for_each_element;
use super::text;
use super::types::{Conv, LIST_ITEM};

/// One parsed value, waiting to be appended.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cell {
    Null,
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    D128(i128),
    D256(i256),
    Uuid([u8; 16]),
    /// The value's own bytes: its text, checked to be UTF-8 (top-level Utf8 columns), or a
    /// binary COPY bytea.
    Raw,
    /// The value's own bytes from this offset, checked to be UTF-8 (binary jsonb after its
    /// version byte).
    RawFrom(u32),
    /// `Scratch::bytes[start..end]`: decoded bytea, or an array element's unescaped text
    /// (UTF-8, as the whole array text was checked).
    Bytes { start: u32, end: u32 },
    /// `Scratch::elems[start..end]`: the elements of an array.
    List { start: u32, end: u32 },
}

/// Per-row scratch space, cleared (not freed) for every row.
#[derive(Default)]
pub(crate) struct Scratch {
    pub bytes: Vec<u8>,
    pub elems: Vec<Cell>,
    /// Unescaping buffer of the array parser.
    pub elem_buf: Vec<u8>,
}

impl Scratch {
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.elems.clear();
    }
}

fn not_utf8() -> String {
    "not valid UTF-8".into()
}

/// Parses one value's text form for a column of conversion `conv`.
#[inline]
pub(crate) fn parse(conv: &Conv, text: &[u8], sc: &mut Scratch) -> Result<Cell, String> {
    match conv {
        Conv::Utf8 { .. } => {
            std::str::from_utf8(text).map_err(|_| not_utf8())?;
            Ok(Cell::Raw)
        }
        Conv::List { element, delimiter } => {
            std::str::from_utf8(text).map_err(|_| not_utf8())?;
            let Scratch { bytes, elems, elem_buf } = sc;
            let start = elems.len() as u32;
            let mut n = 0usize;
            for_each_element(text, *delimiter, elem_buf, |e| {
                n += 1;
                let cell = match e {
                    None => Cell::Null,
                    Some(t) => parse_element(element, t, bytes).map_err(|r| {
                        format!("array element {n} `{}`: {r}", String::from_utf8_lossy(t))
                    })?,
                };
                elems.push(cell);
                Ok(())
            })?;
            Ok(Cell::List { start, end: elems.len() as u32 })
        }
        other => parse_scalar(other, text, &mut sc.bytes),
    }
}

/// An array element (its text already unescaped and known to be UTF-8).
fn parse_element(conv: &Conv, text: &[u8], bytes: &mut Vec<u8>) -> Result<Cell, String> {
    match conv {
        // Conv never nests lists; an inner array would be text anyway.
        Conv::Utf8 { .. } | Conv::List { .. } => {
            let start = bytes.len() as u32;
            bytes.extend_from_slice(text);
            Ok(Cell::Bytes { start, end: bytes.len() as u32 })
        }
        other => parse_scalar(other, text, bytes),
    }
}

#[inline]
fn parse_scalar(conv: &Conv, text: &[u8], bytes: &mut Vec<u8>) -> Result<Cell, String> {
    Ok(match *conv {
        Conv::Bool => Cell::Bool(text::parse_bool(text)?),
        Conv::I16 => Cell::I16(text::parse_i16(text)?),
        Conv::I32 => Cell::I32(text::parse_i32(text)?),
        Conv::I64 => Cell::I64(text::parse_i64(text)?),
        Conv::F32 => Cell::F32(text::parse_f32(text)?),
        Conv::F64 => Cell::F64(text::parse_f64(text)?),
        Conv::Dec128 { precision, scale } => Cell::D128(text::parse_decimal128(text, precision, scale)?),
        Conv::Dec256 { precision, scale } => Cell::D256(text::parse_decimal256(text, precision, scale)?),
        Conv::Uuid => Cell::Uuid(text::parse_uuid(text)?),
        Conv::Binary => {
            let start = bytes.len() as u32;
            text::decode_bytea(text, bytes)?;
            Cell::Bytes { start, end: bytes.len() as u32 }
        }
        Conv::Date => Cell::I32(text::parse_date(text)?),
        Conv::Time => Cell::I64(text::parse_time(text)?),
        Conv::Timestamp => Cell::I64(text::parse_timestamp(text, false)?),
        Conv::Timestamptz => Cell::I64(text::parse_timestamp(text, true)?),
        Conv::Utf8 { .. } | Conv::List { .. } => unreachable!("handled by parse / parse_element"),
    })
}

/// The typed Arrow builder of one column.
pub(crate) enum ColumnBuilder {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    D128(Decimal128Builder),
    D256(Decimal256Builder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Uuid(FixedSizeBinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Ts(TimestampMicrosecondBuilder),
    List(Box<ListColumn>),
}

pub(crate) struct ListColumn {
    field: FieldRef,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
    values: ColumnBuilder,
}

impl ColumnBuilder {
    pub fn new(conv: &Conv) -> ColumnBuilder {
        match conv {
            Conv::Bool => ColumnBuilder::Bool(BooleanBuilder::new()),
            Conv::I16 => ColumnBuilder::I16(Int16Builder::new()),
            Conv::I32 => ColumnBuilder::I32(Int32Builder::new()),
            Conv::I64 => ColumnBuilder::I64(Int64Builder::new()),
            Conv::F32 => ColumnBuilder::F32(Float32Builder::new()),
            Conv::F64 => ColumnBuilder::F64(Float64Builder::new()),
            &Conv::Dec128 { precision, scale } => ColumnBuilder::D128(
                Decimal128Builder::new()
                    .with_precision_and_scale(precision, scale)
                    .expect("Conv only builds valid Decimal128 precision and scale"),
            ),
            &Conv::Dec256 { precision, scale } => ColumnBuilder::D256(
                Decimal256Builder::new()
                    .with_precision_and_scale(precision, scale)
                    .expect("Conv only builds valid Decimal256 precision and scale"),
            ),
            Conv::Utf8 { .. } => ColumnBuilder::Utf8(StringBuilder::new()),
            Conv::Binary => ColumnBuilder::Binary(BinaryBuilder::new()),
            Conv::Uuid => ColumnBuilder::Uuid(FixedSizeBinaryBuilder::new(16)),
            Conv::Date => ColumnBuilder::Date(Date32Builder::new()),
            Conv::Time => ColumnBuilder::Time(Time64MicrosecondBuilder::new()),
            Conv::Timestamp => ColumnBuilder::Ts(TimestampMicrosecondBuilder::new()),
            Conv::Timestamptz => ColumnBuilder::Ts(TimestampMicrosecondBuilder::new().with_timezone("UTC")),
            Conv::List { element, .. } => ColumnBuilder::List(Box::new(ListColumn {
                field: Arc::new(element.field(LIST_ITEM)),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(1024),
                values: ColumnBuilder::new(element),
            })),
        }
    }

    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::I16(b) => b.append_null(),
            ColumnBuilder::I32(b) => b.append_null(),
            ColumnBuilder::I64(b) => b.append_null(),
            ColumnBuilder::F32(b) => b.append_null(),
            ColumnBuilder::F64(b) => b.append_null(),
            ColumnBuilder::D128(b) => b.append_null(),
            ColumnBuilder::D256(b) => b.append_null(),
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Binary(b) => b.append_null(),
            ColumnBuilder::Uuid(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Time(b) => b.append_null(),
            ColumnBuilder::Ts(b) => b.append_null(),
            ColumnBuilder::List(l) => {
                let last = *l.offsets.last().expect("offsets start with 0");
                l.offsets.push(last);
                l.nulls.append_null();
            }
        }
    }

    /// Appends a cell produced by [`parse`] (or the binary parser) for this column's
    /// conversion. `raw` is the value's bytes for [`Cell::Raw`] and [`Cell::RawFrom`].
    #[inline]
    pub fn append(&mut self, cell: &Cell, raw: &[u8], sc: &Scratch) {
        match (self, *cell) {
            (b, Cell::Null) => b.append_null(),
            (ColumnBuilder::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (ColumnBuilder::I16(b), Cell::I16(v)) => b.append_value(v),
            (ColumnBuilder::I32(b), Cell::I32(v)) => b.append_value(v),
            (ColumnBuilder::I64(b), Cell::I64(v)) => b.append_value(v),
            (ColumnBuilder::F32(b), Cell::F32(v)) => b.append_value(v),
            (ColumnBuilder::F64(b), Cell::F64(v)) => b.append_value(v),
            (ColumnBuilder::D128(b), Cell::D128(v)) => b.append_value(v),
            (ColumnBuilder::D256(b), Cell::D256(v)) => b.append_value(v),
            (ColumnBuilder::Utf8(b), Cell::Raw) => {
                // SAFETY: `parse` returned Cell::Raw only after checking that these very bytes
                // (the immutable text of the same tuple value) are UTF-8.
                b.append_value(unsafe { std::str::from_utf8_unchecked(raw) })
            }
            (ColumnBuilder::Utf8(b), Cell::RawFrom(start)) => {
                // SAFETY: as for Cell::Raw, from the same offset.
                b.append_value(unsafe { std::str::from_utf8_unchecked(&raw[start as usize..]) })
            }
            (ColumnBuilder::Binary(b), Cell::Raw) => b.append_value(raw),
            (ColumnBuilder::Utf8(b), Cell::Bytes { start, end }) => {
                // SAFETY: Utf8 elements are slices of an array text checked to be UTF-8, with
                // only ASCII quotes and backslashes removed, which keeps them UTF-8.
                b.append_value(unsafe { std::str::from_utf8_unchecked(&sc.bytes[start as usize..end as usize]) })
            }
            (ColumnBuilder::Binary(b), Cell::Bytes { start, end }) => {
                b.append_value(&sc.bytes[start as usize..end as usize])
            }
            (ColumnBuilder::Uuid(b), Cell::Uuid(v)) => b.append_value(v).expect("16 bytes for a FixedSizeBinary(16)"),
            (ColumnBuilder::Date(b), Cell::I32(v)) => b.append_value(v),
            (ColumnBuilder::Time(b), Cell::I64(v)) => b.append_value(v),
            (ColumnBuilder::Ts(b), Cell::I64(v)) => b.append_value(v),
            (ColumnBuilder::List(l), Cell::List { start, end }) => {
                for e in &sc.elems[start as usize..end as usize] {
                    l.values.append(e, &[], sc);
                }
                let last = *l.offsets.last().expect("offsets start with 0");
                let next = last
                    .checked_add((end - start) as i32)
                    .expect("more than 2^31 array elements in one record batch");
                l.offsets.push(next);
                l.nulls.append_non_null();
            }
            (_, c) => unreachable!("cell {c:?} does not match its column's builder"),
        }
    }

    /// Re-creates the (just finished) builder with room for as many values and bytes as
    /// `like`, its last array: the next batch of a similar size then neither regrows nor
    /// copies its buffers (Arrow's `finish` leaves a builder with no capacity). Value bytes
    /// are reserved up to [`super::builder::BATCH_BYTES`] only: after a huge value the next
    /// batch must not hold its size again.
    pub fn reserve_like(&mut self, like: &ArrayRef) {
        const MAX_RESERVED: usize = super::builder::BATCH_BYTES;
        use arrow_array::cast::AsArray;
        use arrow_array::Array;
        let n = like.len();
        match self {
            ColumnBuilder::Bool(b) => *b = BooleanBuilder::with_capacity(n),
            ColumnBuilder::I16(b) => *b = Int16Builder::with_capacity(n),
            ColumnBuilder::I32(b) => *b = Int32Builder::with_capacity(n),
            ColumnBuilder::I64(b) => *b = Int64Builder::with_capacity(n),
            ColumnBuilder::F32(b) => *b = Float32Builder::with_capacity(n),
            ColumnBuilder::F64(b) => *b = Float64Builder::with_capacity(n),
            ColumnBuilder::D128(b) => *b = Decimal128Builder::with_capacity(n).with_data_type(like.data_type().clone()),
            ColumnBuilder::D256(b) => *b = Decimal256Builder::with_capacity(n).with_data_type(like.data_type().clone()),
            ColumnBuilder::Utf8(b) => *b = StringBuilder::with_capacity(n, like.as_string::<i32>().value_data().len().min(MAX_RESERVED)),
            ColumnBuilder::Binary(b) => *b = BinaryBuilder::with_capacity(n, like.as_binary::<i32>().value_data().len().min(MAX_RESERVED)),
            ColumnBuilder::Uuid(b) => *b = FixedSizeBinaryBuilder::with_capacity(n, 16),
            ColumnBuilder::Date(b) => *b = Date32Builder::with_capacity(n),
            ColumnBuilder::Time(b) => *b = Time64MicrosecondBuilder::with_capacity(n),
            ColumnBuilder::Ts(b) => *b = TimestampMicrosecondBuilder::with_capacity(n).with_data_type(like.data_type().clone()),
            ColumnBuilder::List(l) => {
                l.offsets.reserve(n + 1);
                l.values.reserve_like(like.as_list::<i32>().values());
            }
        }
    }

    /// The column's array; resets the builder.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::I16(b) => Arc::new(b.finish()),
            ColumnBuilder::I32(b) => Arc::new(b.finish()),
            ColumnBuilder::I64(b) => Arc::new(b.finish()),
            ColumnBuilder::F32(b) => Arc::new(b.finish()),
            ColumnBuilder::F64(b) => Arc::new(b.finish()),
            ColumnBuilder::D128(b) => Arc::new(b.finish()),
            ColumnBuilder::D256(b) => Arc::new(b.finish()),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(b) => Arc::new(b.finish()),
            ColumnBuilder::Uuid(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Time(b) => Arc::new(b.finish()),
            ColumnBuilder::Ts(b) => Arc::new(b.finish()),
            ColumnBuilder::List(l) => {
                let offsets = std::mem::replace(&mut l.offsets, vec![0]);
                let values = l.values.finish();
                let nulls = l.nulls.finish();
                Arc::new(ListArray::new(
                    l.field.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    values,
                    nulls,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PgType;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;
    use arrow_array::Array;

    fn conv(t: PgType) -> Conv {
        Conv::of(&t)
    }

    #[test]
    fn list_of_int_with_nulls_and_empty() {
        let c = conv(PgType::Array { element: Box::new(PgType::Int4), delimiter: b',' });
        let mut b = ColumnBuilder::new(&c);
        let mut sc = Scratch::default();
        for v in [&b"{1,2,NULL}"[..], b"{}"] {
            sc.clear();
            let cell = parse(&c, v, &mut sc).unwrap();
            b.append(&cell, v, &sc);
        }
        b.append_null();
        let a = b.finish();
        let l = a.as_list::<i32>();
        assert_eq!(l.len(), 3);
        let first = l.value(0);
        let first = first.as_primitive::<Int32Type>();
        assert_eq!(first.len(), 3);
        assert_eq!((first.value(0), first.value(1), first.is_null(2)), (1, 2, true));
        assert_eq!(l.value(1).len(), 0);
        assert!(!l.is_null(1));
        assert!(l.is_null(2));
        // the builder is reusable after finish
        sc.clear();
        let cell = parse(&c, b"{7}", &mut sc).unwrap();
        b.append(&cell, b"{7}", &sc);
        let a = b.finish();
        assert_eq!(a.as_list::<i32>().value(0).as_primitive::<Int32Type>().value(0), 7);
    }

    #[test]
    fn element_errors_name_the_element() {
        let c = conv(PgType::Array { element: Box::new(PgType::Date), delimiter: b',' });
        let mut sc = Scratch::default();
        let e = parse(&c, b"{2024-01-01,2024-02-30}", &mut sc).unwrap_err();
        assert!(e.contains("array element 2 `2024-02-30`"), "{e}");
    }

    #[test]
    fn invalid_utf8_is_rejected_before_appending() {
        let c = conv(PgType::Text);
        let mut sc = Scratch::default();
        assert!(parse(&c, b"\xff\xfe", &mut sc).is_err());
        let c = conv(PgType::Array { element: Box::new(PgType::Text), delimiter: b',' });
        assert!(parse(&c, b"{\"\xff\"}", &mut sc).is_err());
    }
}
