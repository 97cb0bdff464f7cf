//! Arrays in `array_send`'s binary form, for builtin arrays of element types that are read
//! natively and whose text form this module can print exactly as `array_out` does.
//!
//! `array_send` writes `ndim`, a has-nulls flag and the element type OID (4 bytes each),
//! then per dimension its length and lower bound, then every element as a 4-byte length
//! (`-1`: NULL) and the element's own binary form, in row-major order.
//!
//! A one-dimensional array starting at index 1 (and an empty one) is decoded straight into
//! the list column, with the element values the text path would give. Every other array
//! (more dimensions, another lower bound) and every array with an element the column cannot
//! hold is printed as `array_out` prints it and handed to the text path, so the error (and
//! the value shown with it) is exactly the one a value selected as text gets.

use super::{parse_binary, BinaryConv, Numeric};
use crate::batch::columns::{parse, Cell, Scratch};
use crate::batch::types::Conv;
use crate::model::PgType;

/// Type OID of jsonb.
const JSONB_OID: u32 = 3802;
/// Most dimensions PostgreSQL allows (`MAXDIM`).
const MAX_DIMS: i32 = 6;

/// How the elements of a natively read array are decoded (one of [`BinaryConv`]'s scalar
/// forms, for the element types listed in [`array_elem`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArrayElem {
    Bool,
    I16,
    I32,
    I64,
    Uuid,
    /// text, varchar, bpchar, name, json: the binary form is the text.
    Utf8,
    /// jsonb: version byte 1, then the text.
    Jsonb,
    Dec128 {
        precision: u8,
        scale: i8,
    },
    Dec256 {
        precision: u8,
        scale: i8,
    },
    NumericText,
}

impl ArrayElem {
    fn binary(self) -> BinaryConv {
        match self {
            ArrayElem::Bool => BinaryConv::Bool,
            ArrayElem::I16 => BinaryConv::I16,
            ArrayElem::I32 => BinaryConv::I32,
            ArrayElem::I64 => BinaryConv::I64,
            ArrayElem::Uuid => BinaryConv::Uuid,
            ArrayElem::Utf8 => BinaryConv::Utf8,
            ArrayElem::Jsonb => BinaryConv::Jsonb,
            ArrayElem::Dec128 { precision, scale } => BinaryConv::Dec128 { precision, scale },
            ArrayElem::Dec256 { precision, scale } => BinaryConv::Dec256 { precision, scale },
            ArrayElem::NumericText => BinaryConv::NumericText,
        }
    }
}

/// The element type OID and element decoding of a column of builtin array type `type_oid`
/// whose resolved element type is `element`, when its arrays are read natively: bool, int2,
/// int4, int8, text, varchar, bpchar, name, numeric, uuid, json and jsonb arrays. Arrays of
/// other elements (floats, dates and times print per session settings, bytea per
/// `bytea_output`), of domains, and domains over arrays stay text (`None`).
pub(crate) fn array_elem(type_oid: u32, element: &PgType) -> Option<(u32, ArrayElem)> {
    use ArrayElem as E;
    let (oid, elem) = match (type_oid, element) {
        (1000, PgType::Bool) => (16, E::Bool),
        (1005, PgType::Int2) => (21, E::I16),
        (1007, PgType::Int4) => (23, E::I32),
        (1016, PgType::Int8) => (20, E::I64),
        (1009, PgType::Text) => (25, E::Utf8),
        (1014, PgType::Text) => (1042, E::Utf8),
        (1015, PgType::Text) => (1043, E::Utf8),
        (1003, PgType::Text) => (19, E::Utf8),
        (199, PgType::Json) => (114, E::Utf8),
        (3807, PgType::Json) => (JSONB_OID, E::Jsonb),
        (2951, PgType::Uuid) => (2950, E::Uuid),
        (1231, PgType::Numeric { .. } | PgType::NumericText) => (
            1700,
            match Conv::of(element) {
                Conv::Dec128 { precision, scale } => E::Dec128 { precision, scale },
                Conv::Dec256 { precision, scale } => E::Dec256 { precision, scale },
                _ => E::NumericText,
            },
        ),
        _ => return None,
    };
    Some((oid, elem))
}

fn be_i32(b: &[u8], at: usize) -> Result<i32, String> {
    b.get(at..at + 4)
        .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("binary array of {} bytes is truncated", b.len()))
}

/// An array's header: dimensions as (length, lower bound), and where the elements start.
struct Header {
    dims: Vec<(i32, i32)>,
    elements_at: usize,
}

fn header(b: &[u8], elem_oid: u32) -> Result<Header, String> {
    let ndim = be_i32(b, 0)?;
    if !(0..=MAX_DIMS).contains(&ndim) {
        return Err(format!(
            "binary array has an invalid number of dimensions {ndim}"
        ));
    }
    let oid = be_i32(b, 8)? as u32;
    if oid != elem_oid {
        return Err(format!(
            "binary array has elements of type OID {oid}, expected {elem_oid}"
        ));
    }
    let mut dims = Vec::with_capacity(ndim as usize);
    for d in 0..ndim as usize {
        let len = be_i32(b, 12 + 8 * d)?;
        if len < 0 {
            return Err(format!("binary array has a negative dimension {len}"));
        }
        dims.push((len, be_i32(b, 16 + 8 * d)?));
    }
    Ok(Header {
        dims,
        elements_at: 12 + 8 * ndim as usize,
    })
}

/// Calls `element` with each element's bytes (`None`: NULL) in order; checks that exactly
/// `count` elements fill the rest of `b`.
fn for_each_element<'a>(
    b: &'a [u8],
    mut at: usize,
    count: usize,
    mut element: impl FnMut(usize, Option<&'a [u8]>) -> Result<(), String>,
) -> Result<(), String> {
    for i in 0..count {
        let len = be_i32(b, at)?;
        at += 4;
        if len < 0 {
            element(i, None)?;
        } else {
            let end = at + len as usize;
            let v = b
                .get(at..end)
                .ok_or_else(|| format!("binary array of {} bytes is truncated", b.len()))?;
            element(i, Some(v))?;
            at = end;
        }
    }
    if at != b.len() {
        return Err(format!(
            "binary array has {} bytes after its {count} elements",
            b.len() - at
        ));
    }
    Ok(())
}

/// Parses one binary array of a column whose builder is `conv` (a list): like the text path
/// would parse `array_out`'s text of the same value (see the module doc).
pub(crate) fn parse_array(
    elem_oid: u32,
    elem: ArrayElem,
    conv: &Conv,
    b: &[u8],
    sc: &mut Scratch,
) -> Result<Cell, String> {
    let Conv::List {
        element: elem_conv, ..
    } = conv
    else {
        return Err("internal: an array decoded into a column that is not a list".into());
    };
    let h = header(b, elem_oid)?;
    let count = match h.dims.as_slice() {
        [] => 0,
        [(len, 1)] => *len as usize,
        // Another lower bound or more dimensions: the text path says why it cannot be a list.
        _ => return text_path(elem, conv, b, sc),
    };
    let (bytes_len, elems_len) = (sc.bytes.len(), sc.elems.len());
    let start = elems_len as u32;
    let decoded = for_each_element(b, h.elements_at, count, |_, v| {
        let cell = match v {
            None => Cell::Null,
            Some(v) => match parse_binary(elem.binary(), elem_conv, v, sc)? {
                // Element bytes are not addressable by the list builder: copy them.
                Cell::Raw => copy_bytes(&mut sc.bytes, v),
                Cell::RawFrom(k) => copy_bytes(&mut sc.bytes, &v[k as usize..]),
                c => c,
            },
        };
        sc.elems.push(cell);
        Ok(())
    });
    match decoded {
        Ok(()) => Ok(Cell::List {
            start,
            end: sc.elems.len() as u32,
        }),
        Err(_) => {
            // An element the column cannot hold: the text path's error names it as it does.
            sc.bytes.truncate(bytes_len);
            sc.elems.truncate(elems_len);
            text_path(elem, conv, b, sc)
        }
    }
}

fn copy_bytes(bytes: &mut Vec<u8>, v: &[u8]) -> Cell {
    let start = bytes.len() as u32;
    bytes.extend_from_slice(v);
    Cell::Bytes {
        start,
        end: bytes.len() as u32,
    }
}

/// The text path's verdict on the array's text form (always an error for the arrays sent
/// here; a success would mean the two paths disagree).
fn text_path(elem: ArrayElem, conv: &Conv, b: &[u8], sc: &mut Scratch) -> Result<Cell, String> {
    let text = array_text(elem, b)?;
    match parse(conv, text.as_bytes(), sc) {
        Err(e) => Err(e),
        Ok(_) => Err(format!(
            "internal: the binary array {text} was refused but its text form is accepted"
        )),
    }
}

/// The array exactly as `array_out` prints it (`[0:1]={a,b}`, `{{1,2},{3,4}}`, `{}`), for
/// error reports and dead letters.
pub(crate) fn array_text(elem: ArrayElem, b: &[u8]) -> Result<String, String> {
    let elem_oid = be_i32(b, 8)? as u32;
    let h = header(b, elem_oid)?;
    let count = h
        .dims
        .iter()
        .map(|&(len, _)| len as usize)
        .product::<usize>();
    let mut items: Vec<Option<String>> = Vec::with_capacity(if h.dims.is_empty() {
        0
    } else {
        count.min(1 << 20)
    });
    if !h.dims.is_empty() {
        for_each_element(b, h.elements_at, count, |_, v| {
            items.push(v.map(|v| element_text(elem, v)).transpose()?);
            Ok(())
        })?;
    }
    let mut out = String::new();
    if h.dims.is_empty() || count == 0 {
        out.push_str("{}");
        return Ok(out);
    }
    if h.dims.iter().any(|&(_, lb)| lb != 1) {
        for &(len, lb) in &h.dims {
            out.push_str(&format!("[{}:{}]", lb, lb as i64 + len as i64 - 1));
        }
        out.push('=');
    }
    let mut next = items.into_iter();
    write_dim(&mut out, &h.dims, &mut next);
    Ok(out)
}

fn write_dim(
    out: &mut String,
    dims: &[(i32, i32)],
    items: &mut impl Iterator<Item = Option<String>>,
) {
    out.push('{');
    for i in 0..dims[0].0 {
        if i > 0 {
            out.push(',');
        }
        if dims.len() > 1 {
            write_dim(out, &dims[1..], items);
        } else {
            match items.next().flatten() {
                None => out.push_str("NULL"),
                Some(s) => write_item(out, &s),
            }
        }
    }
    out.push('}');
}

/// One element as `array_out` writes it: quoted (with `"` and `\` escaped) when empty,
/// `NULL` in any case, or holding a brace, quote, backslash, the delimiter or white space.
fn write_item(out: &mut String, s: &str) {
    let quote = s.is_empty()
        || s.eq_ignore_ascii_case("NULL")
        || s.bytes().any(|c| {
            matches!(
                c,
                b'{' | b'}'
                    | b','
                    | b'"'
                    | b'\\'
                    | b' '
                    | b'\t'
                    | b'\n'
                    | b'\r'
                    | b'\x0b'
                    | b'\x0c'
            )
        });
    if !quote {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// An element's text as its type's output function prints it.
fn element_text(elem: ArrayElem, v: &[u8]) -> Result<String, String> {
    let exact = |n: usize| {
        if v.len() == n {
            Ok(())
        } else {
            Err(format!(
                "binary array element has {} bytes, expected {n}",
                v.len()
            ))
        }
    };
    let utf8 = |v: &[u8]| String::from_utf8(v.to_vec()).map_err(|_| "not valid UTF-8".to_string());
    Ok(match elem {
        ArrayElem::Bool => {
            exact(1)?;
            if v[0] != 0 { "t" } else { "f" }.to_string()
        }
        ArrayElem::I16 => {
            exact(2)?;
            i16::from_be_bytes([v[0], v[1]]).to_string()
        }
        ArrayElem::I32 => {
            exact(4)?;
            i32::from_be_bytes([v[0], v[1], v[2], v[3]]).to_string()
        }
        ArrayElem::I64 => {
            exact(8)?;
            i64::from_be_bytes(v.try_into().expect("8 bytes")).to_string()
        }
        ArrayElem::Uuid => {
            exact(16)?;
            let h = hex::encode(v);
            format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )
        }
        ArrayElem::Utf8 => utf8(v)?,
        ArrayElem::Jsonb => match v.split_first() {
            Some((1, text)) => utf8(text)?,
            _ => return Err("unsupported jsonb binary format".into()),
        },
        ArrayElem::Dec128 { .. } | ArrayElem::Dec256 { .. } | ArrayElem::NumericText => {
            let mut out = Vec::new();
            Numeric::parse(v)?.write_text(&mut out)?;
            String::from_utf8(out).expect("numeric_out is ASCII")
        }
    })
}

#[cfg(test)]
#[path = "arrays_tests.rs"]
mod tests;
