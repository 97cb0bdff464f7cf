//! PostgreSQL types as pgcdc sees them ([`PgType`]) and how a column's type OID and modifier
//! resolve to one ([`builtin`], [`resolve`], with [`CatalogType`] facts for the others).
//! The Arrow type each maps to (SPEC 5.4) is the batch layer's: see `crate::batch::types`.

use serde::{Deserialize, Serialize};

/// Largest precision of Arrow's Decimal256, the widest `numeric(p,s)` kept as a decimal.
pub(crate) const DECIMAL256_MAX_PRECISION: u8 = 76;

/// A column type after resolution: what the value's text form is parsed as and which Arrow
/// type it is written as.
///
/// | PgType | Arrow |
/// |---|---|
/// | `Bool` | Boolean |
/// | `Int2`/`Int4`/`Int8` | Int16/Int32/Int64 (`oid` is `Int8`) |
/// | `Float4`/`Float8` | Float32/Float64, NaN and ±Infinity kept |
/// | `Numeric{p,s}` | `Decimal128(p,s)` if p ≤ 38, `Decimal256(p,s)` if p ≤ 76 |
/// | `NumericText` | Utf8 holding the exact text (`NaN`, `Infinity` kept) |
/// | `Text`, `Other(_)` | Utf8 of the PostgreSQL text form |
/// | `Json` | Utf8 with `ARROW:extension:name = arrow.json` |
/// | `Uuid` | FixedSizeBinary(16) with `ARROW:extension:name = arrow.uuid` |
/// | `Bytea` | Binary |
/// | `Date` | Date32 |
/// | `Time` | Time64(µs) |
/// | `Timestamp` / `Timestamptz` | Timestamp(µs) / Timestamp(µs, "UTC") |
/// | `Array{e,_}` | `List<e>` with nullable elements named `item` |
///
/// **Values Arrow cannot hold natively (the infinity rule).** They become values no finite
/// PostgreSQL value takes, so the mapping is exact and reversible:
/// * date `infinity` / `-infinity` → Date32 `i32::MAX` / `-i32::MAX` (DuckDB's date
///   `infinity` / `-infinity`; PostgreSQL's own `DATEVAL_NOBEGIN`, `i32::MIN`, would read as
///   a date in DuckDB). Every finite PostgreSQL date (4713 BC ..
///   5874897 AD) is strictly between them.
/// * timestamp(tz) `infinity` / `-infinity` → `i64::MAX` / `-i64::MAX` µs (DuckDB's
///   `infinity` / `-infinity`; PostgreSQL's `DT_NOBEGIN`, `i64::MIN`, makes DuckDB fail to
///   read the column). Finite timestamps from 4713 BC to 294246 AD fit strictly
///   between them; the last ~30 years PostgreSQL accepts (294247..294276 AD) do not fit
///   microseconds since 1970 in an i64 and are a [`ValueError`](crate::batch::ValueError), never
///   clamped.
/// * BC dates use astronomical years (1 BC is year 0, 44 BC is year -43), proleptic Gregorian,
///   exactly as PostgreSQL counts.
/// * time `24:00:00` → 86 400 000 000 µs exactly (one past the usual maximum; Parquet stores it).
/// * numeric `NaN`/`±Infinity` are kept in `NumericText` columns; in a `Numeric{p,s}` column
///   (where PostgreSQL 14+ can store them) they are a [`ValueError`](crate::batch::ValueError).
/// * multi-dimensional arrays and arrays with explicit bounds are a `ValueError`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// `numeric(precision, scale)` with 1 ≤ precision ≤ 76 and 0 ≤ scale ≤ precision.
    Numeric { precision: u8, scale: i8 },
    /// `numeric` without a usable typmod (unconstrained, negative scale, scale > precision,
    /// or precision > 76): the exact text.
    NumericText,
    /// Character types: text, varchar, bpchar, name, "char".
    Text,
    /// json and jsonb.
    Json,
    Uuid,
    Bytea,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    /// A one-dimensional array; `delimiter` separates elements in the text form (`,` for
    /// all types but `box`, which uses `;`).
    Array { element: Box<PgType>, delimiter: u8 },
    /// Anything else, kept as Utf8 of its text form; holds the PostgreSQL type name.
    Other(String),
}

/// Catalog facts for a non-builtin type (from `pg_type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogType {
    pub oid: u32,
    /// `typname`.
    pub name: String,
    /// `typtype`: `b` base, `c` composite, `d` domain, `e` enum, `p` pseudo, `r` range,
    /// `m` multirange.
    pub typtype: u8,
    /// `typbasetype` (domains).
    pub base_type: u32,
    /// `typtypmod` (domains: the base type's modifier).
    pub base_typmod: i32,
    /// `typelem` (arrays; also set for some fixed-length base types such as `point`).
    pub element: u32,
    /// `typdelim`.
    pub delimiter: u8,
    /// `typcategory` (`A` for arrays).
    pub category: u8,
}

impl PgType {
    /// PostgreSQL-like name of the type, as used in errors and schema metadata.
    pub fn name(&self) -> String {
        match self {
            PgType::Bool => "bool".into(),
            PgType::Int2 => "int2".into(),
            PgType::Int4 => "int4".into(),
            PgType::Int8 => "int8".into(),
            PgType::Float4 => "float4".into(),
            PgType::Float8 => "float8".into(),
            PgType::Numeric { precision, scale } => format!("numeric({precision},{scale})"),
            PgType::NumericText => "numeric".into(),
            PgType::Text => "text".into(),
            PgType::Json => "json".into(),
            PgType::Uuid => "uuid".into(),
            PgType::Bytea => "bytea".into(),
            PgType::Date => "date".into(),
            PgType::Time => "time".into(),
            PgType::Timestamp => "timestamp".into(),
            PgType::Timestamptz => "timestamptz".into(),
            PgType::Array { element, .. } => format!("{}[]", element.name()),
            PgType::Other(n) => n.clone(),
        }
    }

    /// The numeric type for a column's type modifier (`atttypmod`).
    ///
    /// `typmod = ((precision << 16) | (scale & 0x7ff)) + 4`; the scale is an 11-bit signed
    /// number since PostgreSQL 15. Negative scales, scales above the precision and precisions
    /// above 76 (Decimal256's limit) give [`PgType::NumericText`].
    pub fn numeric(typmod: i32) -> PgType {
        if typmod < 4 {
            return PgType::NumericText;
        }
        let t = typmod - 4;
        let precision = (t >> 16) & 0xffff;
        let scale = ((t & 0x7ff) ^ 0x400) - 0x400;
        if precision < 1 || precision > DECIMAL256_MAX_PRECISION as i32 || scale < 0 || scale > precision {
            return PgType::NumericText;
        }
        PgType::Numeric { precision: precision as u8, scale: scale as i8 }
    }
}

/// Element type OID and delimiter of builtin array types.
fn builtin_array(oid: u32) -> Option<(u32, u8)> {
    let elem = match oid {
        1000 => 16,   // bool[]
        1001 => 17,   // bytea[]
        1002 => 18,   // "char"[]
        1003 => 19,   // name[]
        1016 => 20,   // int8[]
        1005 => 21,   // int2[]
        1007 => 23,   // int4[]
        1009 => 25,   // text[]
        1028 => 26,   // oid[]
        1010 => 27,   // tid[]
        1011 => 28,   // xid[]
        1012 => 29,   // cid[]
        199 => 114,   // json[]
        143 => 142,   // xml[]
        271 => 5069,  // xid8[]
        1017 => 600,  // point[]
        1018 => 601,  // lseg[]
        1019 => 602,  // path[]
        1020 => 603,  // box[]
        1027 => 604,  // polygon[]
        629 => 628,   // line[]
        651 => 650,   // cidr[]
        1021 => 700,  // float4[]
        1022 => 701,  // float8[]
        719 => 718,   // circle[]
        775 => 774,   // macaddr8[]
        791 => 790,   // money[]
        1040 => 829,  // macaddr[]
        1041 => 869,  // inet[]
        1014 => 1042, // bpchar[]
        1015 => 1043, // varchar[]
        1182 => 1082, // date[]
        1183 => 1083, // time[]
        1115 => 1114, // timestamp[]
        1185 => 1184, // timestamptz[]
        1187 => 1186, // interval[]
        1270 => 1266, // timetz[]
        1561 => 1560, // bit[]
        1563 => 1562, // varbit[]
        1231 => 1700, // numeric[]
        2201 => 1790, // refcursor[]
        2951 => 2950, // uuid[]
        3221 => 3220, // pg_lsn[]
        3643 => 3614, // tsvector[]
        3645 => 3615, // tsquery[]
        3807 => 3802, // jsonb[]
        4073 => 4072, // jsonpath[]
        3905 => 3904, // int4range[]
        3907 => 3906, // numrange[]
        3909 => 3908, // tsrange[]
        3911 => 3910, // tstzrange[]
        3913 => 3912, // daterange[]
        3927 => 3926, // int8range[]
        6150 => 4451, // int4multirange[]
        6151 => 4532, // nummultirange[]
        6152 => 4533, // tsmultirange[]
        6153 => 4534, // tstzmultirange[]
        6155 => 4535, // datemultirange[]
        6157 => 4536, // int8multirange[]
        _ => return None,
    };
    // array_out separates elements with the element type's typdelim: `;` only for box.
    Some((elem, if elem == 603 { b';' } else { b',' }))
}

/// The `typname` of a builtin scalar type.
pub fn builtin_name(oid: u32) -> Option<&'static str> {
    Some(match oid {
        16 => "bool",
        17 => "bytea",
        18 => "char",
        19 => "name",
        20 => "int8",
        21 => "int2",
        22 => "int2vector",
        23 => "int4",
        24 => "regproc",
        25 => "text",
        26 => "oid",
        27 => "tid",
        28 => "xid",
        29 => "cid",
        30 => "oidvector",
        114 => "json",
        142 => "xml",
        5069 => "xid8",
        600 => "point",
        601 => "lseg",
        602 => "path",
        603 => "box",
        604 => "polygon",
        628 => "line",
        650 => "cidr",
        700 => "float4",
        701 => "float8",
        718 => "circle",
        774 => "macaddr8",
        790 => "money",
        829 => "macaddr",
        869 => "inet",
        1033 => "aclitem",
        1042 => "bpchar",
        1043 => "varchar",
        1082 => "date",
        1083 => "time",
        1114 => "timestamp",
        1184 => "timestamptz",
        1186 => "interval",
        1266 => "timetz",
        1560 => "bit",
        1562 => "varbit",
        1700 => "numeric",
        1790 => "refcursor",
        2202 => "regprocedure",
        2203 => "regoper",
        2204 => "regoperator",
        2205 => "regclass",
        2206 => "regtype",
        4089 => "regnamespace",
        4096 => "regrole",
        4191 => "regcollation",
        2950 => "uuid",
        2970 => "txid_snapshot",
        3220 => "pg_lsn",
        3614 => "tsvector",
        3615 => "tsquery",
        3734 => "regconfig",
        3769 => "regdictionary",
        3802 => "jsonb",
        4072 => "jsonpath",
        5038 => "pg_snapshot",
        3904 => "int4range",
        3906 => "numrange",
        3908 => "tsrange",
        3910 => "tstzrange",
        3912 => "daterange",
        3926 => "int8range",
        4451 => "int4multirange",
        4532 => "nummultirange",
        4533 => "tsmultirange",
        4534 => "tstzmultirange",
        4535 => "datemultirange",
        4536 => "int8multirange",
        _ => return None,
    })
}

/// PostgreSQL-like display name of a builtin type OID, arrays included (`int4[]`).
pub fn builtin_type_name(oid: u32) -> Option<String> {
    if let Some((elem, _)) = builtin_array(oid) {
        return builtin_name(elem).map(|n| format!("{n}[]"));
    }
    builtin_name(oid).map(str::to_string)
}

/// The type of a builtin OID with the column's type modifier, or `None` if `oid` is not a
/// builtin type (user types, extension types such as citext or hstore).
pub fn builtin(oid: u32, typmod: i32) -> Option<PgType> {
    if let Some((elem, delimiter)) = builtin_array(oid) {
        // An array column's typmod is its element's (numeric(10,2)[]).
        let element = builtin(elem, typmod)?;
        return Some(PgType::Array { element: Box::new(element), delimiter });
    }
    Some(match oid {
        16 => PgType::Bool,
        17 => PgType::Bytea,
        18 | 19 | 25 | 1042 | 1043 => PgType::Text,
        20 => PgType::Int8,
        21 => PgType::Int2,
        23 => PgType::Int4,
        // oid is unsigned 32-bit: Int64 holds it exactly.
        26 => PgType::Int8,
        114 | 3802 => PgType::Json,
        700 => PgType::Float4,
        701 => PgType::Float8,
        1082 => PgType::Date,
        1083 => PgType::Time,
        1114 => PgType::Timestamp,
        1184 => PgType::Timestamptz,
        1700 => PgType::numeric(typmod),
        2950 => PgType::Uuid,
        // money (locale-dependent text), interval (parquet-rs cannot write
        // Interval(MonthDayNano)), timetz, network, geometric, ranges, text search, ...
        _ => PgType::Other(builtin_name(oid)?.to_string()),
    })
}

/// Resolves any type OID. Builtin OIDs are known statically; for others `lookup` supplies
/// the catalog facts: domains resolve to their base type with the domain's typmod, arrays
/// (`typcategory = 'A'`) to a list of their element, everything else (enums, composites,
/// ranges, extension base types, unknown OIDs) to [`PgType::Other`] with the type's name.
pub fn resolve(oid: u32, typmod: i32, lookup: &mut dyn FnMut(u32) -> Option<CatalogType>) -> PgType {
    resolve_depth(oid, typmod, lookup, 0)
}

const MAX_RESOLVE_DEPTH: u32 = 16;

fn resolve_depth(oid: u32, typmod: i32, lookup: &mut dyn FnMut(u32) -> Option<CatalogType>, depth: u32) -> PgType {
    if let Some(t) = builtin(oid, typmod) {
        return t;
    }
    let Some(facts) = lookup(oid) else {
        return PgType::Other(format!("oid {oid}"));
    };
    if depth >= MAX_RESOLVE_DEPTH {
        return PgType::Other(facts.name);
    }
    match facts.typtype {
        b'd' if facts.base_type != 0 => {
            // The domain's own typmod (e.g. `CREATE DOMAIN d AS numeric(10,2)`) applies; a
            // column typmod, if any, is the same one.
            let tm = if facts.base_typmod >= 0 { facts.base_typmod } else { typmod };
            resolve_depth(facts.base_type, tm, lookup, depth + 1)
        }
        b'b' if facts.category == b'A' && facts.element != 0 => {
            // array_out uses the element type's delimiter.
            let delimiter = match builtin_array_delimiter(facts.element) {
                Some(d) => d,
                None => lookup(facts.element).map(|e| e.delimiter).unwrap_or(b','),
            };
            let element = resolve_depth(facts.element, typmod, lookup, depth + 1);
            let element = match element {
                // Array of a domain over an array: keep inner arrays as text.
                PgType::Array { .. } => PgType::Other(element.name()),
                e => e,
            };
            PgType::Array { element: Box::new(element), delimiter }
        }
        _ => PgType::Other(facts.name),
    }
}

/// The delimiter of a builtin element type.
fn builtin_array_delimiter(elem: u32) -> Option<u8> {
    builtin_name(elem).map(|_| if elem == 603 { b';' } else { b',' })
}


#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_typmod(p: i32, s: i32) -> i32 {
        ((p << 16) | (s & 0x7ff)) + 4
    }

    #[test]
    fn builtins_resolve() {
        assert_eq!(builtin(16, -1), Some(PgType::Bool));
        assert_eq!(builtin(1043, 24), Some(PgType::Text));
        assert_eq!(builtin(3802, -1), Some(PgType::Json));
        assert_eq!(builtin(790, -1), Some(PgType::Other("money".into())));
        assert_eq!(builtin(1186, -1), Some(PgType::Other("interval".into())));
        assert_eq!(builtin(26, -1), Some(PgType::Int8));
        assert_eq!(
            builtin(1007, -1),
            Some(PgType::Array { element: Box::new(PgType::Int4), delimiter: b',' })
        );
        assert_eq!(
            builtin(1020, -1),
            Some(PgType::Array { element: Box::new(PgType::Other("box".into())), delimiter: b';' })
        );
        assert_eq!(
            builtin(1231, numeric_typmod(10, 2)),
            Some(PgType::Array { element: Box::new(PgType::Numeric { precision: 10, scale: 2 }), delimiter: b',' })
        );
        assert_eq!(builtin(12345, -1), None);
        assert_eq!(builtin_type_name(1185).as_deref(), Some("timestamptz[]"));
    }

    #[test]
    fn numeric_typmods() {
        assert_eq!(PgType::numeric(-1), PgType::NumericText);
        assert_eq!(PgType::numeric(numeric_typmod(10, 2)), PgType::Numeric { precision: 10, scale: 2 });
        assert_eq!(PgType::numeric(numeric_typmod(38, 0)), PgType::Numeric { precision: 38, scale: 0 });
        assert_eq!(PgType::numeric(numeric_typmod(50, 10)), PgType::Numeric { precision: 50, scale: 10 });
        // PG15 negative scale numeric(5,-2): unconstrained text.
        assert_eq!(PgType::numeric(numeric_typmod(5, -2)), PgType::NumericText);
        // PG15 scale > precision numeric(2,5): Arrow cannot express it.
        assert_eq!(PgType::numeric(numeric_typmod(2, 5)), PgType::NumericText);
        assert_eq!(PgType::numeric(numeric_typmod(1000, 0)), PgType::NumericText);
    }


    #[test]
    fn resolve_uses_catalog_for_domains_arrays_and_enums() {
        let cat = |oid: u32| -> Option<CatalogType> {
            let t = |name: &str, typtype: u8, base: u32, tm: i32, elem: u32, cat: u8| CatalogType {
                oid,
                name: name.into(),
                typtype,
                base_type: base,
                base_typmod: tm,
                element: elem,
                delimiter: b',',
                category: cat,
            };
            match oid {
                // domain money_amount AS numeric(12,2)
                90001 => Some(t("money_amount", b'd', 1700, numeric_typmod(12, 2), 0, b'N')),
                // domain over a domain
                90002 => Some(t("positive_amount", b'd', 90001, -1, 0, b'N')),
                // enum mood and its array
                90003 => Some(t("mood", b'e', 0, -1, 0, b'E')),
                90004 => Some(t("_mood", b'b', 0, -1, 90003, b'A')),
                // domain over int4[]
                90005 => Some(t("int_list", b'd', 1007, -1, 0, b'A')),
                // array of that domain
                90006 => Some(t("_int_list", b'b', 0, -1, 90005, b'A')),
                // citext (extension base type)
                90007 => Some(t("citext", b'b', 0, -1, 0, b'S')),
                _ => None,
            }
        };
        let mut lookup = |oid| cat(oid);
        assert_eq!(resolve(90001, -1, &mut lookup), PgType::Numeric { precision: 12, scale: 2 });
        assert_eq!(resolve(90002, -1, &mut lookup), PgType::Numeric { precision: 12, scale: 2 });
        assert_eq!(resolve(90003, -1, &mut lookup), PgType::Other("mood".into()));
        assert_eq!(
            resolve(90004, -1, &mut lookup),
            PgType::Array { element: Box::new(PgType::Other("mood".into())), delimiter: b',' }
        );
        assert_eq!(
            resolve(90005, -1, &mut lookup),
            PgType::Array { element: Box::new(PgType::Int4), delimiter: b',' }
        );
        assert_eq!(
            resolve(90006, -1, &mut lookup),
            PgType::Array { element: Box::new(PgType::Other("int4[]".into())), delimiter: b',' }
        );
        assert_eq!(resolve(90007, -1, &mut lookup), PgType::Other("citext".into()));
        assert_eq!(resolve(99999, -1, &mut lookup), PgType::Other("oid 99999".into()));
        // builtins never ask the catalog
        let mut never = |_| -> Option<CatalogType> { panic!("asked the catalog for a builtin") };
        assert_eq!(resolve(1184, -1, &mut never), PgType::Timestamptz);
    }

    #[test]
    fn resolve_survives_cyclic_catalog_facts() {
        let mut lookup = |oid: u32| {
            Some(CatalogType {
                oid,
                name: "loop".into(),
                typtype: b'd',
                base_type: oid + 1,
                base_typmod: -1,
                element: 0,
                delimiter: b',',
                category: b'U',
            })
        };
        assert_eq!(resolve(100_000, -1, &mut lookup), PgType::Other("loop".into()));
    }

    #[test]
    fn pg_type_serde_round_trip() {
        let t = PgType::Array { element: Box::new(PgType::Numeric { precision: 50, scale: 3 }), delimiter: b';' };
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<PgType>(&s).unwrap(), t);
        assert_eq!(t.name(), "numeric(50,3)[]");
    }
}
