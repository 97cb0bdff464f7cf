//! Binary arrays against the text path: the same cells for every array the text path
//! accepts, the same error for every array it refuses, and `array_out`'s exact text.

use super::*;
use crate::batch::columns::{parse, Cell, Scratch};
use crate::model::PgType;

/// `array_send` of a one- or more-dimensional array (test oracle, written from the format).
fn send(elem_oid: u32, dims: &[(i32, i32)], items: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(dims.len() as i32).to_be_bytes());
    v.extend_from_slice(&(items.iter().any(Option::is_none) as i32).to_be_bytes());
    v.extend_from_slice(&elem_oid.to_be_bytes());
    for (len, lb) in dims {
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(&lb.to_be_bytes());
    }
    for it in items {
        match it {
            None => v.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(b) => {
                v.extend_from_slice(&(b.len() as i32).to_be_bytes());
                v.extend_from_slice(b);
            }
        }
    }
    v
}

fn one_dim(elem_oid: u32, items: &[Option<Vec<u8>>]) -> Vec<u8> {
    if items.is_empty() {
        return send(elem_oid, &[], &[]);
    }
    send(elem_oid, &[(items.len() as i32, 1)], items)
}

/// A comparable rendering of a parsed cell with its scratch data.
fn show(c: &Cell, sc: &Scratch) -> String {
    match *c {
        Cell::List { start, end } => {
            let items: Vec<String> = sc.elems[start as usize..end as usize]
                .iter()
                .map(|e| show(e, sc))
                .collect();
            format!("[{}]", items.join("|"))
        }
        Cell::Bytes { start, end } => format!("b{:?}", &sc.bytes[start as usize..end as usize]),
        other => format!("{other:?}"),
    }
}

/// Parses `b` both ways (binary, and the text form `array_text` prints through the text
/// path) and checks the text is `want_text`; returns both results.
fn both(
    type_oid: u32,
    element: PgType,
    b: &[u8],
    want_text: &str,
) -> (Result<String, String>, Result<String, String>) {
    let (elem_oid, elem) = array_elem(type_oid, &element).expect("a natively read array");
    let conv = Conv::of(&PgType::Array {
        element: Box::new(element),
        delimiter: b',',
    });
    let text = array_text(elem, b).unwrap();
    assert_eq!(text, want_text);
    let mut sc = Scratch::default();
    let bin = parse_array(elem_oid, elem, &conv, b, &mut sc).map(|c| show(&c, &sc));
    let mut sc = Scratch::default();
    let txt = parse(&conv, text.as_bytes(), &mut sc).map(|c| show(&c, &sc));
    (bin, txt)
}

fn same(type_oid: u32, element: PgType, b: &[u8], want_text: &str) {
    let (bin, txt) = both(type_oid, element, b, want_text);
    assert!(txt.is_ok(), "{want_text}: {txt:?}");
    assert_eq!(bin, txt, "{want_text}");
}

fn refused(type_oid: u32, element: PgType, b: &[u8], want_text: &str, reason: &str) {
    let (bin, txt) = both(type_oid, element, b, want_text);
    let e = bin.unwrap_err();
    assert_eq!(Err(e.clone()), txt, "{want_text}");
    assert!(e.contains(reason), "{want_text}: {e}");
}

fn s(v: &str) -> Option<Vec<u8>> {
    Some(v.as_bytes().to_vec())
}

fn i4(v: i32) -> Option<Vec<u8>> {
    Some(v.to_be_bytes().to_vec())
}

#[test]
fn text_arrays_equal_the_text_path() {
    let items = [
        s("a"),
        None,
        s(""),
        s("NULL"),
        s("null"),
        s("a b"),
        s("c\"d"),
        s("back\\slash"),
        s("x,y"),
        s("{}"),
        s("ünï"),
        s("tab\there"),
        s("\u{b}v"),
    ];
    same(
        1009,
        PgType::Text,
        &one_dim(25, &items),
        r#"{a,NULL,"","NULL","null","a b","c\"d","back\\slash","x,y","{}",ünï,"tab	here","\u{b}v"}"#.replace("\\u{b}", "\u{b}").as_str(),
    );
    same(1015, PgType::Text, &one_dim(1043, &[s("v")]), "{v}");
    same(
        1014,
        PgType::Text,
        &one_dim(1042, &[s("ab  ")]),
        r#"{"ab  "}"#,
    );
    same(1009, PgType::Text, &one_dim(25, &[]), "{}");
    same(1009, PgType::Text, &one_dim(25, &[None]), "{NULL}");
    same(
        3807,
        PgType::Json,
        &one_dim(3802, &[Some(b"\x01{\"a\": 1}".to_vec()), None]),
        r#"{"{\"a\": 1}",NULL}"#,
    );
    same(
        199,
        PgType::Json,
        &one_dim(114, &[s("[1,2]")]),
        r#"{"[1,2]"}"#,
    );
}

#[test]
fn scalar_arrays_equal_the_text_path() {
    same(
        1007,
        PgType::Int4,
        &one_dim(23, &[i4(1), None, i4(-7), i4(i32::MIN)]),
        "{1,NULL,-7,-2147483648}",
    );
    same(
        1005,
        PgType::Int2,
        &one_dim(21, &[Some((-3i16).to_be_bytes().to_vec())]),
        "{-3}",
    );
    same(
        1016,
        PgType::Int8,
        &one_dim(20, &[Some(i64::MAX.to_be_bytes().to_vec()), None]),
        "{9223372036854775807,NULL}",
    );
    same(
        1000,
        PgType::Bool,
        &one_dim(16, &[Some(vec![1]), Some(vec![0]), None]),
        "{t,f,NULL}",
    );
    let u: Vec<u8> = (0u8..16).collect();
    same(
        2951,
        PgType::Uuid,
        &one_dim(2950, &[Some(u), None]),
        "{00010203-0405-0607-0809-0a0b0c0d0e0f,NULL}",
    );
}

/// `numeric_send` of a small value: digits base 10000.
fn num(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    for x in [ndigits as u16, weight as u16, sign, dscale]
        .iter()
        .chain(digits)
    {
        v.extend_from_slice(&x.to_be_bytes());
    }
    Some(v)
}

#[test]
fn numeric_arrays_equal_the_text_path() {
    // 12.50, NULL, -0.01, NaN, Infinity
    let items = [
        num(2, 0, 0, 2, &[12, 5000]),
        None,
        num(1, -1, 0x4000, 2, &[100]),
        num(0, 0, 0xC000, 0, &[]),
        num(0, 0, 0xD000, 0, &[]),
    ];
    let b = one_dim(1700, &items);
    same(
        1231,
        PgType::NumericText,
        &b,
        "{12.50,NULL,-0.01,NaN,Infinity}",
    );
    // numeric(12,2)[]: NaN cannot be a Decimal; the text path names the element.
    refused(
        1231,
        PgType::Numeric {
            precision: 12,
            scale: 2,
        },
        &b,
        "{12.50,NULL,-0.01,NaN,Infinity}",
        "array element 4 `NaN`",
    );
    same(
        1231,
        PgType::Numeric {
            precision: 12,
            scale: 2,
        },
        &one_dim(1700, &items[..3]),
        "{12.50,NULL,-0.01}",
    );
    same(
        1231,
        PgType::Numeric {
            precision: 50,
            scale: 2,
        },
        &one_dim(1700, &items[..3]),
        "{12.50,NULL,-0.01}",
    );
    refused(
        1231,
        PgType::Numeric {
            precision: 3,
            scale: 2,
        },
        &one_dim(1700, &items[..1]),
        "{12.50}",
        "array element 1 `12.50`",
    );
}

#[test]
fn other_shapes_are_refused_as_the_text_path_refuses_them() {
    refused(
        1007,
        PgType::Int4,
        &send(23, &[(2, 1), (2, 1)], &[i4(1), i4(2), i4(3), None]),
        "{{1,2},{3,NULL}}",
        "multi-dimensional",
    );
    refused(
        1007,
        PgType::Int4,
        &send(23, &[(3, 0)], &[i4(1), i4(2), i4(3)]),
        "[0:2]={1,2,3}",
        "explicit bounds",
    );
    refused(
        1007,
        PgType::Int4,
        &send(23, &[(2, -1)], &[i4(1), None]),
        "[-1:0]={1,NULL}",
        "explicit bounds",
    );
    refused(
        1009,
        PgType::Text,
        &send(25, &[(1, 2), (2, 1)], &[s("a b"), s("c")]),
        r#"[2:2][1:2]={{"a b",c}}"#,
        "explicit bounds",
    );
    refused(
        1009,
        PgType::Text,
        &send(25, &[(1, 1), (1, 1), (1, 1)], &[s("x")]),
        "{{{x}}}",
        "multi-dimensional",
    );
}

#[test]
fn malformed_arrays_are_errors() {
    let (oid, elem) = array_elem(1007, &PgType::Int4).unwrap();
    let conv = Conv::of(&PgType::Array {
        element: Box::new(PgType::Int4),
        delimiter: b',',
    });
    let mut sc = Scratch::default();
    let good = one_dim(23, &[i4(1), i4(2)]);
    assert!(parse_array(oid, elem, &conv, &good[..good.len() - 1], &mut sc).is_err());
    let mut extra = good.clone();
    extra.push(0);
    assert!(parse_array(oid, elem, &conv, &extra, &mut sc).is_err());
    assert!(
        parse_array(oid, elem, &conv, &one_dim(20, &[i4(1)]), &mut sc).is_err(),
        "wrong element type"
    );
    assert!(parse_array(oid, elem, &conv, &[0, 0], &mut sc).is_err());
    assert!(
        parse_array(oid, elem, &conv, &one_dim(23, &[Some(vec![0, 1])]), &mut sc).is_err(),
        "short int4"
    );
}

#[test]
fn only_builtin_arrays_of_printable_elements_are_native() {
    assert!(array_elem(1007, &PgType::Int4).is_some());
    assert!(
        array_elem(1022, &PgType::Float8).is_none(),
        "float8out depends on extra_float_digits"
    );
    assert!(
        array_elem(1185, &PgType::Timestamptz).is_none(),
        "timestamps print per DateStyle and TimeZone"
    );
    assert!(array_elem(1001, &PgType::Bytea).is_none());
    assert!(
        array_elem(16_384, &PgType::Int4).is_none(),
        "an array of a domain"
    );
    assert!(
        array_elem(1007, &PgType::Text).is_none(),
        "element type disagrees with the OID"
    );
}
