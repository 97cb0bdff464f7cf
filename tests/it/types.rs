//! The type mapping of SPEC 5.4 through a real server: one column per type of the matrix in
//! CDC_CASES.md section 6 (and a 1-D array column of each), rows of edge values inserted
//! after `pgcdc setup` and streamed by `pgcdc run --until-lsn current`, then
//!
//! 1. our own reader: the materialised target equals the source, and every cell's raw Arrow
//!    value equals what the server itself computes for it (days since 1970, µs since 1970 or
//!    since midnight, the unscaled decimal, the float's bits, the uuid's and bytea's bytes,
//!    the text form), with the documented sentinels for `infinity`;
//! 2. pyarrow and DuckDB: both open every file, agree on the row count, and see exactly the
//!    documented types and values;
//! 3. values the mapping refuses (NaN in numeric(10,2), a 2-D array, a timestamp beyond what
//!    microseconds since 1970 hold in an i64) stop the run with a message naming the table,
//!    the column and the value, and nothing of that transaction is published.
//!
//! `text_vs_binary_pgoutput` (ignored) measures the pgoutput text vs binary decision.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Value};
use crate::support::{assert_success, parquet_files, stderr, Setup};

/// One PostgreSQL type of the matrix: a scalar column `c_<name>` and an array column
/// `a_<name>` (`<sql>[]`).
struct Ty {
    name: &'static str,
    sql: &'static str,
    /// The scalar column's type as pyarrow prints it (the array's is `list<item: ...>`).
    arrow: &'static str,
    /// The scalar column's type as DuckDB describes it (the array's is `...[]`).
    duckdb: &'static str,
    /// SQL expressions of the scalar for rows 2..=7 (row 1 is all NULL).
    vals: [&'static str; 6],
    /// SQL expressions of the array for rows 2..=7.
    arrs: [&'static str; 6],
}

/// Rows: 1 all NULL; 2 ordinary values; 3 maxima, `infinity`, `24:00:00`; 4 minima,
/// `-infinity`; 5 BC, NaN, `\N`; 6 beyond usual ranges, quotes/commas/newlines/non-ASCII;
/// 7 empty values and arrays of NULLs.
const TYPES: &[Ty] = &[
    Ty {
        name: "bool",
        sql: "bool",
        arrow: "bool",
        duckdb: "BOOLEAN",
        vals: ["true", "false", "true", "false", "true", "NULL"],
        arrs: ["'{t,f,NULL}'", "'{t}'", "'{f}'", "'{NULL}'", "'{}'", "'{NULL,NULL}'"],
    },
    Ty {
        name: "char1",
        sql: "\"char\"",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: ["'a'", "'~'", "' '", r"'\'", r#"'"'"#, "''"],
        arrs: ["'{a,NULL,b}'", "'{~}'", r#"'{" "}'"#, r#"'{"\\"}'"#, r#"'{"\"",","}'"#, "'{}'"],
    },
    Ty {
        name: "bpchar",
        sql: "char(5)",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: ["'ab'", "'abcde'", "''", r"'\N'", r#"'a,"b'"#, "'ü日'"],
        arrs: ["'{ab,NULL}'", "'{abcde}'", r#"'{""}'"#, r#"'{"\\N"}'"#, r#"'{"a,\"b","NULL",NULL}'"#, "'{}'"],
    },
    Ty {
        name: "varchar",
        sql: "varchar(20)",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: ["'hello'", "'exactly twenty chars'", "''", r"'\N'", r#"E'a\nb, "c" ''d'''"#, "'ü 日本 🎉'"],
        arrs: [
            "'{hello,NULL}'",
            r#"'{"exactly twenty chars"}'"#,
            r#"'{""}'"#,
            r#"'{"\\N","NULL",null}'"#,
            r#"E'{"line1\nline2","c,\\"d\\"",NULL}'"#,
            r#"'{"ü 日本 🎉"," x "}'"#,
        ],
    },
    Ty {
        name: "name",
        sql: "name",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: ["'pg_catalog'", "repeat('n', 63)", "''", r"'\N'", "'Ünïcødé name'", r#"'with "quote"'"#],
        arrs: [
            "'{pg_catalog,NULL}'",
            "ARRAY[repeat('n', 63)]::name[]",
            "'{}'",
            r#"'{"\\N"}'"#,
            r#"'{"Ünïcødé",NULL,"NULL"}'"#,
            "'{NULL}'",
        ],
    },
    Ty {
        name: "text",
        sql: "text",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: [
            "'plain'",
            "repeat('long text ', 300)",
            "''",
            r"'\N'",
            r#"E'quote '' dq " comma , semi ; nl \n cr \r tab \t bs \\ trailing  '"#,
            "'ü 日本語 🎉 '",
        ],
        arrs: [
            "'{a,NULL,c}'",
            r#"'{"NULL",null,NULL,"null"}'"#,
            "'{}'",
            r#"'{"\\N",N,"\\\\N"}'"#,
            r#"E'{"q''uote","d\\"q","c,omma","n\nl"," lead","trail ","{brace}"}'"#,
            r#"'{""}'"#,
        ],
    },
    Ty {
        name: "money",
        sql: "money",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: ["'12.50'", "'92233720368547758.07'", "'-92233720368547758.08'", "'0'", "'-0.01'", "NULL"],
        arrs: ["'{12.50,NULL}'", "'{92233720368547758.07}'", "'{-92233720368547758.08}'", "'{0}'", "'{}'", "'{NULL}'"],
    },
    Ty {
        name: "int2",
        sql: "int2",
        arrow: "int16",
        duckdb: "SMALLINT",
        vals: ["1", "32767", "-32768", "0", "-1", "NULL"],
        arrs: ["'{1,NULL,3}'", "'{32767}'", "'{-32768}'", "'{0}'", "'{}'", "'{NULL}'"],
    },
    Ty {
        name: "int4",
        sql: "int4",
        arrow: "int32",
        duckdb: "INTEGER",
        vals: ["1", "2147483647", "-2147483648", "0", "-1", "NULL"],
        arrs: ["'{1,NULL,3}'", "'{2147483647}'", "'{-2147483648}'", "'{0}'", "'{}'", "'{NULL}'"],
    },
    Ty {
        name: "int8",
        sql: "int8",
        arrow: "int64",
        duckdb: "BIGINT",
        vals: ["1", "9223372036854775807", "-9223372036854775808", "0", "-1", "NULL"],
        arrs: ["'{1,NULL,3}'", "'{9223372036854775807}'", "'{-9223372036854775808}'", "'{0}'", "'{}'", "'{NULL}'"],
    },
    Ty {
        name: "oid",
        sql: "oid",
        arrow: "int64",
        duckdb: "BIGINT",
        vals: ["1", "4294967295", "0", "42", "16384", "NULL"],
        arrs: ["'{1,NULL}'", "'{4294967295}'", "'{0}'", "'{42}'", "'{}'", "'{NULL}'"],
    },
    Ty {
        name: "float4",
        sql: "float4",
        arrow: "float",
        duckdb: "FLOAT",
        vals: ["'1.5'", "'Infinity'", "'-Infinity'", "'NaN'", "'3.4028235e+38'", "'-0'"],
        arrs: [
            "'{1.5,NULL,0.1}'",
            "'{Infinity,3.4028235e+38}'",
            "'{-Infinity,1.4e-45}'",
            "'{NaN,NULL}'",
            "'{}'",
            "'{-0}'",
        ],
    },
    Ty {
        name: "float8",
        sql: "float8",
        arrow: "double",
        duckdb: "DOUBLE",
        vals: ["'0.1'", "'Infinity'", "'-Infinity'", "'NaN'", "'1.7976931348623157e+308'", "'-0'"],
        arrs: [
            "'{0.1,NULL,1e-300}'",
            "'{Infinity,1.7976931348623157e+308}'",
            "'{-Infinity,5e-324}'",
            "'{NaN,NULL}'",
            "'{}'",
            "'{-0}'",
        ],
    },
    Ty {
        name: "num_10_2",
        sql: "numeric(10,2)",
        arrow: "decimal128(10, 2)",
        duckdb: "DECIMAL(10,2)",
        vals: ["'12.5'", "'99999999.99'", "'-99999999.99'", "'0'", "'0.005'", "'-0.01'"],
        arrs: ["'{1.5,NULL}'", "'{99999999.99}'", "'{-99999999.99}'", "'{0}'", "'{}'", "'{NULL}'"],
    },
    Ty {
        name: "num_38_6",
        sql: "numeric(38,6)",
        arrow: "decimal128(38, 6)",
        duckdb: "DECIMAL(38,6)",
        vals: [
            "'1.5'",
            "'99999999999999999999999999999999.999999'",
            "'-99999999999999999999999999999999.999999'",
            "'0.000001'",
            "'12345678901234567890123456789012.123456'",
            "'0'",
        ],
        arrs: [
            "'{1.5,NULL}'",
            "'{99999999999999999999999999999999.999999}'",
            "'{-99999999999999999999999999999999.999999}'",
            "'{0.000001}'",
            "'{}'",
            "'{NULL}'",
        ],
    },
    Ty {
        name: "num_50_5",
        sql: "numeric(50,5)",
        arrow: "decimal256(50, 5)",
        // DuckDB's DECIMAL stops at 38 digits: it reads wider Parquet decimals as DOUBLE.
        duckdb: "DOUBLE",
        vals: [
            "'12345.6789'",
            "(repeat('9', 45) || '.99999')::numeric",
            "('-' || repeat('9', 45) || '.99999')::numeric",
            "'0.00001'",
            "'123456789012345678901234567890123456789012345.12345'",
            "NULL",
        ],
        arrs: [
            "'{12345.6789,NULL}'",
            "ARRAY[(repeat('9', 45) || '.99999')::numeric(50,5)]",
            "ARRAY[('-' || repeat('9', 45) || '.99999')::numeric(50,5)]",
            "'{0.00001}'",
            "'{}'",
            "'{NULL}'",
        ],
    },
    Ty {
        name: "num",
        sql: "numeric",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: [
            "'0.611111104488373'",
            "'Infinity'",
            "'-Infinity'",
            "'NaN'",
            "'123456789012345678901234567890123456789012345678901234567890.123456789'",
            "'-1e-100'",
        ],
        arrs: [
            "'{1e-20,NULL,0.611111104488373}'",
            "'{Infinity,1e100}'",
            "'{-Infinity}'",
            "'{NaN,NULL}'",
            "'{}'",
            "'{0.0}'",
        ],
    },
    Ty {
        name: "bytea",
        sql: "bytea",
        arrow: "binary",
        duckdb: "BLOB",
        vals: [r"'\x00ff'", r"'\xdeadbeef5c224e'", r"'\x'", r"'\x5c4e'", "decode(repeat('ab', 1000), 'hex')", "NULL"],
        arrs: [
            r#"'{"\\x00ff",NULL}'"#,
            r#"'{"\\xdeadbeef"}'"#,
            r#"'{"\\x"}'"#,
            r#"'{"\\x5c4e"}'"#,
            "'{}'",
            "'{NULL}'",
        ],
    },
    Ty {
        name: "date",
        sql: "date",
        arrow: "date32[day]",
        duckdb: "DATE",
        vals: ["'2024-02-29'", "'infinity'", "'-infinity'", "'0044-02-01 BC'", "'300000-01-01'", "'4714-11-24 BC'"],
        arrs: [
            "'{2024-02-29,NULL}'",
            "'{infinity,5874897-12-31}'",
            r#"'{-infinity,"4714-11-24 BC"}'"#,
            r#"'{"0044-02-01 BC","0001-01-01 BC",0001-01-01}'"#,
            "'{300000-01-01}'",
            "'{}'",
        ],
    },
    Ty {
        name: "time",
        sql: "time",
        arrow: "time64[us]",
        duckdb: "TIME",
        vals: ["'12:34:56.789'", "'24:00:00'", "'00:00:00'", "'23:59:59.999999'", "'00:00:00.000001'", "NULL"],
        arrs: [
            "'{12:34:56.789,NULL}'",
            "'{24:00:00}'",
            "'{00:00:00}'",
            "'{23:59:59.999999}'",
            "'{}'",
            "'{NULL}'",
        ],
    },
    Ty {
        name: "timetz",
        sql: "timetz",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: [
            "'12:34:56.789+05:30'",
            "'24:00:00-15:59'",
            "'00:00:00+15:59'",
            "'23:59:59.999999+00'",
            "'12:00:00-08'",
            "NULL",
        ],
        arrs: [
            "'{12:34:56.789+05:30,NULL}'",
            "'{24:00:00-15:59}'",
            "'{00:00:00+15:59}'",
            "'{23:59:59.999999+00}'",
            "'{}'",
            "'{NULL}'",
        ],
    },
    Ty {
        name: "ts",
        sql: "timestamp",
        arrow: "timestamp[us]",
        duckdb: "TIMESTAMP",
        vals: [
            "'2024-02-29 12:34:56.789012'",
            "'infinity'",
            "'-infinity'",
            "'0044-02-01 12:00:00 BC'",
            "'294246-12-31 23:59:59.999999'",
            "'4714-11-24 00:00:00 BC'",
        ],
        arrs: [
            r#"'{"2024-02-29 12:34:56.789012",NULL}'"#,
            r#"'{infinity,"294246-12-31 23:59:59.999999"}'"#,
            r#"'{-infinity,"4714-11-24 00:00:00 BC"}'"#,
            r#"'{"0044-02-01 12:00:00 BC"}'"#,
            r#"'{"10000-01-01 00:00:00"}'"#,
            "'{}'",
        ],
    },
    Ty {
        name: "tstz",
        sql: "timestamptz",
        arrow: "timestamp[us, tz=UTC]",
        duckdb: "TIMESTAMP WITH TIME ZONE",
        vals: [
            "'2024-02-29 12:34:56.789012+05:30'",
            "'infinity'",
            "'-infinity'",
            "'0044-02-01 12:00:00+02 BC'",
            "'294246-12-31 23:59:59.999999+00'",
            "'4714-11-24 00:00:00+00 BC'",
        ],
        arrs: [
            r#"'{"2024-02-29 12:34:56.789012+05:30",NULL}'"#,
            r#"'{infinity,"294246-12-31 23:59:59.999999+00"}'"#,
            r#"'{-infinity,"4714-11-24 00:00:00+00 BC"}'"#,
            r#"'{"0044-02-01 12:00:00+02 BC"}'"#,
            r#"'{"10000-01-01 00:00:00-01"}'"#,
            "'{}'",
        ],
    },
    Ty {
        name: "uuid",
        sql: "uuid",
        arrow: "extension<arrow.uuid>",
        // DuckDB does not read the Arrow extension from ARROW:schema; the Parquet UUID
        // annotation that it would read makes Spark refuse the file (apache/spark#55684).
        duckdb: "BLOB",
        vals: [
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
            "'00000000-0000-0000-0000-000000000000'",
            "'{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A12}'",
            "'0190e1f6-7b7a-7c3e-8e4f-123456789abc'",
            "NULL",
        ],
        arrs: [
            "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}'",
            "'{ffffffff-ffff-ffff-ffff-ffffffffffff}'",
            "'{00000000-0000-0000-0000-000000000000}'",
            "'{}'",
            "'{NULL}'",
            "NULL",
        ],
    },
    Ty {
        name: "json",
        sql: "json",
        arrow: "extension<arrow.json>",
        duckdb: "VARCHAR",
        vals: [
            r#"'{"a": [1, 2.50, "x\"y"], "b": null}'"#,
            r#"'"ü \\N \u00e9"'"#,
            "'[]'",
            "'null'",
            r#"'  {"k" : 1}  '"#,
            r#"'"\u0000"'"#,
        ],
        arrs: [
            r#"ARRAY['{"a": [1, "x,y"]}', NULL]::json[]"#,
            r#"ARRAY['"NULL"', 'null']::json[]"#,
            "'{}'",
            "'{NULL}'",
            r#"ARRAY[E'{\n"k": "v"\n}']::json[]"#,
            "ARRAY['[]', '{}']::json[]",
        ],
    },
    Ty {
        name: "jsonb",
        sql: "jsonb",
        arrow: "extension<arrow.json>",
        duckdb: "VARCHAR",
        vals: [
            r#"'{"b": null, "a": [1, 2.50, "x\"y"]}'"#,
            r#"'"ü \\N \u00e9"'"#,
            "'[]'",
            "'null'",
            r#"'  {"k" : 1}  '"#,
            "'1e100'",
        ],
        arrs: [
            r#"ARRAY['{"a": [1, "x,y"]}', NULL]::jsonb[]"#,
            r#"ARRAY['"NULL"', 'null']::jsonb[]"#,
            "'{}'",
            "'{NULL}'",
            r#"ARRAY[E'{\n"k": "v"\n}']::jsonb[]"#,
            "ARRAY['[]', '{}']::jsonb[]",
        ],
    },
    Ty {
        name: "interval",
        sql: "interval",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: [
            "'1 year 2 mons -3 days 04:05:06.789'",
            "'178000000 years'",
            "'-178000000 years'",
            "'00:00:00'",
            "'-00:00:00.000001'",
            "'P1Y2M3DT4H5M6S'",
        ],
        arrs: [
            r#"'{"1 day",NULL}'"#,
            r#"'{"178000000 years"}'"#,
            r#"'{"-178000000 years"}'"#,
            "'{00:00:00}'",
            "'{}'",
            "'{NULL}'",
        ],
    },
    Ty {
        name: "inet",
        sql: "inet",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: ["'192.168.1.5/24'", "'::1'", "'2001:db8::ff00:42:8329/64'", "'0.0.0.0/0'", "'::ffff:1.2.3.4'", "NULL"],
        arrs: ["'{192.168.1.5/24,NULL}'", "'{::1}'", "'{2001:db8::ff00:42:8329/64}'", "'{0.0.0.0/0}'", "'{}'", "'{NULL}'"],
    },
    Ty {
        name: "cidr",
        sql: "cidr",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: ["'10.0.0.0/8'", "'2001:db8::/32'", "'0.0.0.0/0'", "'192.168.1.0/24'", "'::/0'", "NULL"],
        arrs: ["'{10.0.0.0/8,NULL}'", "'{2001:db8::/32}'", "'{0.0.0.0/0}'", "'{192.168.1.0/24}'", "'{}'", "'{NULL}'"],
    },
    Ty {
        name: "macaddr",
        sql: "macaddr",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: [
            "'08:00:2b:01:02:03'",
            "'ff:ff:ff:ff:ff:ff'",
            "'00:00:00:00:00:00'",
            "'08-00-2B-01-02-03'",
            "'0800.2b01.0203'",
            "NULL",
        ],
        arrs: ["'{08:00:2b:01:02:03,NULL}'", "'{ff:ff:ff:ff:ff:ff}'", "'{00:00:00:00:00:00}'", "'{}'", "'{NULL}'", "NULL"],
    },
    Ty {
        name: "macaddr8",
        sql: "macaddr8",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: [
            "'08:00:2b:01:02:03:04:05'",
            "'ff:ff:ff:ff:ff:ff:ff:ff'",
            "'00:00:00:00:00:00:00:00'",
            "'08:00:2b:01:02:03'",
            "NULL",
            "NULL",
        ],
        arrs: ["'{08:00:2b:01:02:03:04:05,NULL}'", "'{ff:ff:ff:ff:ff:ff:ff:ff}'", "'{}'", "'{NULL}'", "NULL", "NULL"],
    },
    Ty {
        name: "xml",
        sql: "xml",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: [
            r#"'<a attr="1">x &amp; y</a>'"#,
            r#"'<?xml version="1.0"?><r/>'"#,
            "'plain text, with comma'",
            "'<ü>日本</ü>'",
            r"E'<m>\n  line, \\N\n</m>'",
            "NULL",
        ],
        arrs: [
            r#"ARRAY['<a attr="1">x</a>', NULL]::xml[]"#,
            "ARRAY['<r/>']::xml[]",
            "ARRAY['plain, text']::xml[]",
            "'{}'",
            "'{NULL}'",
            "NULL",
        ],
    },
    Ty {
        name: "int4range",
        sql: "int4range",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: ["'[1,5)'", "'empty'", "'(,)'", "'[-2147483648,2147483647)'", "'(1,2]'", "NULL"],
        arrs: [r#"'{"[1,5)",NULL}'"#, "'{empty}'", r#"'{"(,)"}'"#, "'{}'", "'{NULL}'", "NULL"],
    },
    Ty {
        name: "nummultirange",
        sql: "nummultirange",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: ["'{[1.5,2),[3,4]}'", "'{}'", "'{(,)}'", "'{[1,NaN]}'", "'{[-1e20,1e-20]}'", "NULL"],
        arrs: [
            r#"'{"{[1.5,2),[3,4]}",NULL}'"#,
            r#"'{"{}"}'"#,
            r#"'{"{(,)}"}'"#,
            "'{}'",
            "'{NULL}'",
            "NULL",
        ],
    },
    Ty {
        name: "mood",
        sql: "mood",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: ["'sad'", "'happy'", "'ok'", "'NULL'", "'with space, comma'", "NULL"],
        arrs: [
            "'{sad,NULL,happy}'",
            "'{happy}'",
            "'{}'",
            r#"'{"NULL",NULL}'"#,
            r#"'{"with space, comma"}'"#,
            "'{NULL}'",
        ],
    },
    Ty {
        name: "posint",
        sql: "posint",
        arrow: "int32",
        duckdb: "INTEGER",
        vals: ["1", "2147483647", "1", "42", "7", "NULL"],
        arrs: ["'{1,NULL}'", "'{2147483647}'", "'{1}'", "'{}'", "'{NULL}'", "NULL"],
    },
    Ty {
        name: "domtext",
        sql: "domtext",
        arrow: "string",
        duckdb: "VARCHAR",
        vals: ["'dom'", r"'\N'", "''", "'NULL'", "E'x\\ny'", "NULL"],
        arrs: [r#"'{"NULL",NULL}'"#, r#"'{"\\N"}'"#, r#"'{""}'"#, "'{}'", "'{NULL}'", "NULL"],
    },
    Ty {
        name: "domnum",
        sql: "domnum",
        arrow: "decimal128(12, 2)",
        duckdb: "DECIMAL(12,2)",
        vals: ["'1.5'", "'9999999999.99'", "'-9999999999.99'", "'0'", "'0.01'", "NULL"],
        arrs: ["'{1.5,NULL}'", "'{9999999999.99}'", "'{-9999999999.99}'", "'{}'", "'{NULL}'", "NULL"],
    },
];

/// citext comes from an extension: used when `CREATE EXTENSION citext` works.
const CITEXT: Ty = Ty {
    name: "citext",
    sql: "citext",
    arrow: "string",
    duckdb: "VARCHAR",
    vals: ["'Hello'", "'ÜBER'", "''", r"'\N'", r#"'a,"b"'"#, "NULL"],
    arrs: ["'{Hello,NULL}'", r#"'{"ÜBER"}'"#, r#"'{""}'"#, r#"'{"\\N","NULL"}'"#, "'{}'", "'{NULL}'"],
};

/// pgcdc's session settings (src/source/conninfo.rs), so text forms compare as pgcdc saw them.
const SESSION: &str = "SET client_encoding = 'UTF8'; SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; \
                       SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex';";

/// SQL computing, on the server, the raw Arrow value of `v` as text, for the Arrow type
/// `arrow` (pyarrow spelling): the independent oracle of the exactness checks.
fn oracle_sql(arrow: &str, v: &str) -> String {
    match arrow {
        "bool" | "int16" | "int32" | "int64" => format!("({v})::text"),
        // concat() uses the type's output function (a cast of char(n) to text would drop
        // the padding).
        "string" | "extension<arrow.json>" => format!("CASE WHEN {v} IS NOT NULL THEN concat({v}) END"),
        "float" => format!("encode(float4send({v}), 'hex')"),
        "double" => format!("encode(float8send({v}), 'hex')"),
        "binary" => format!("encode({v}, 'hex')"),
        "extension<arrow.uuid>" => format!("encode(uuid_send({v}), 'hex')"),
        // The documented sentinels: i32::MAX / -i32::MAX (DuckDB's infinity / -infinity).
        "date32[day]" => format!(
            "CASE WHEN {v} IS NULL THEN NULL WHEN isfinite({v}) THEN ({v} - DATE '1970-01-01')::text \
                  WHEN {v} > DATE '1970-01-01' THEN '2147483647' ELSE '-2147483647' END"
        ),
        "time64[us]" => format!("(extract(epoch FROM {v}) * 1000000)::numeric(30,0)::text"),
        // i64::MAX / -i64::MAX (DuckDB's infinity / -infinity).
        "timestamp[us]" | "timestamp[us, tz=UTC]" => format!(
            "CASE WHEN {v} IS NULL THEN NULL WHEN isfinite({v}) THEN (extract(epoch FROM {v}) * 1000000)::numeric(30,0)::text \
                  WHEN {v} > 'epoch' THEN '9223372036854775807' ELSE '-9223372036854775807' END"
        ),
        d if d.starts_with("decimal") => {
            let scale: u32 = d.trim_end_matches(')').rsplit(' ').next().unwrap().parse().unwrap();
            format!("(({v})::numeric * power(10::numeric, {scale}))::numeric(1000,0)::text")
        }
        other => panic!("no oracle for {other}"),
    }
}

/// The raw Arrow value of one cell as text, in the forms of [`oracle_sql`].
fn raw_cell(a: &dyn Array, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Boolean => a.as_boolean().value(i).to_string(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).to_string(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::Float32 => format!("{:08x}", a.as_primitive::<Float32Type>().value(i).to_bits()),
        DataType::Float64 => format!("{:016x}", a.as_primitive::<Float64Type>().value(i).to_bits()),
        DataType::Decimal128(..) => a.as_primitive::<Decimal128Type>().value(i).to_string(),
        DataType::Decimal256(..) => a.as_primitive::<Decimal256Type>().value(i).to_string(),
        DataType::Date32 => a.as_primitive::<Date32Type>().value(i).to_string(),
        DataType::Time64(TimeUnit::Microsecond) => a.as_primitive::<Time64MicrosecondType>().value(i).to_string(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => a.as_primitive::<TimestampMicrosecondType>().value(i).to_string(),
        DataType::FixedSizeBinary(16) => hex::encode(a.as_fixed_size_binary().value(i)),
        DataType::Binary => hex::encode(a.as_binary::<i32>().value(i)),
        DataType::Utf8 => a.as_string::<i32>().value(i).to_string(),
        other => panic!("unexpected Arrow type {other}"),
    })
}

/// Every record batch of a table directory, concatenated in (file) order.
fn read_batches(dir: &Path) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for f in parquet_files(dir) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&f).unwrap()).unwrap().build().unwrap();
        for b in reader {
            out.push(b.unwrap());
        }
    }
    out
}

/// The rows of every live `id` since its insert, in `(_lsn, _seq)` order, each with its
/// `_unchanged` columns (unchanged TOAST values, null in that row).
type History = BTreeMap<i32, Vec<(RecordBatch, usize, Vec<String>)>>;

fn final_rows(batches: &[RecordBatch]) -> History {
    let mut all: Vec<(i64, i64, String, i32, usize, usize)> = Vec::new();
    for (bi, b) in batches.iter().enumerate() {
        let id = b.column_by_name("id").unwrap().as_primitive::<Int32Type>();
        let op = b.column_by_name("_op").unwrap().as_string::<i32>();
        let lsn = b.column_by_name("_lsn").unwrap().as_primitive::<Int64Type>();
        let seq = b.column_by_name("_seq").unwrap().as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            all.push((lsn.value(r), seq.value(r), op.value(r).to_string(), id.value(r), bi, r));
        }
    }
    all.sort();
    let mut out: History = BTreeMap::new();
    for (_, _, op, id, bi, r) in all {
        let b = &batches[bi];
        let unchanged = b.column_by_name("_unchanged").unwrap();
        let unchanged: Vec<String> = if unchanged.is_null(r) {
            Vec::new()
        } else {
            let l = unchanged.as_list::<i32>().value(r);
            let l = l.as_string::<i32>();
            (0..l.len()).map(|k| l.value(k).to_string()).collect()
        };
        match op.as_str() {
            "I" => {
                assert!(unchanged.is_empty(), "an insert has every value");
                out.insert(id, vec![(b.clone(), r, unchanged)]);
            }
            "U" => {
                if !unchanged.is_empty() {
                    eprintln!("update of row {id}: unchanged TOAST values of {unchanged:?}");
                }
                out.get_mut(&id).expect("update of a known row").push((b.clone(), r, unchanged));
            }
            "D" => {
                out.remove(&id);
            }
            other => panic!("unexpected _op {other}"),
        }
    }
    out
}

/// The current value of `column` of row `id`: from its last change that carried the column.
fn cell<'a>(rows: &'a History, id: i32, column: &str) -> (&'a dyn Array, usize) {
    let (b, r, _) = rows[&id]
        .iter()
        .rev()
        .find(|(_, _, unchanged)| !unchanged.iter().any(|c| c == column))
        .unwrap_or_else(|| panic!("no value of {column} for row {id}"));
    (b.column_by_name(column).unwrap_or_else(|| panic!("no column {column}")).as_ref(), *r)
}

/// Days from 1970-01-01 of a proleptic Gregorian date with an astronomical year (1 BC = 0),
/// computed independently of pgcdc (by whole 400-year cycles of 146097 days).
fn days(year: i64, month: u32, day: u32) -> i64 {
    let cycles = (year - 2000).div_euclid(400);
    let y = year - cycles * 400; // 2000..2399
    let mut n: i64 = 0;
    for yy in 1970..y {
        n += if (yy % 4 == 0 && yy % 100 != 0) || yy % 400 == 0 { 366 } else { 365 };
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mdays = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    n += mdays[..(month as usize - 1)].iter().sum::<i64>() + day as i64 - 1;
    n + cycles * 146_097
}

async fn try_exec(s: &Setup, sql: &str) -> bool {
    s.db.client().await.batch_execute(sql).await.is_ok()
}

fn types_in_use(citext: bool) -> Vec<&'static Ty> {
    let mut v: Vec<&Ty> = TYPES.iter().collect();
    if citext {
        v.push(&CITEXT);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_of_the_matrix_round_trips_through_a_real_server() {
    let s = Setup::new("types_matrix").await;
    let citext = try_exec(&s, "CREATE EXTENSION citext").await;
    eprintln!("citext available: {citext}");
    let types = types_in_use(citext);
    s.db.exec(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'NULL', 'with space, comma');
         CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
         CREATE DOMAIN domtext AS text;
         CREATE DOMAIN domnum AS numeric(12,2);",
    )
    .await;
    let mut cols = vec!["id int PRIMARY KEY".to_string()];
    for t in &types {
        cols.push(format!("c_{} {}", t.name, t.sql));
        cols.push(format!("a_{} {}[]", t.name, t.sql));
    }
    s.db.exec(&format!("CREATE TABLE alltypes ({})", cols.join(",\n  "))).await;
    s.db.create_publication(&s.publication, "alltypes").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "pgcdc setup");

    // CDC only: everything below arrives through pgoutput.
    s.db.exec("INSERT INTO alltypes (id) VALUES (1)").await;
    for row in 0..6 {
        let names: Vec<String> = types.iter().flat_map(|t| [format!("c_{}", t.name), format!("a_{}", t.name)]).collect();
        let values: Vec<&str> = types.iter().flat_map(|t| [t.vals[row], t.arrs[row]]).collect();
        s.db.exec(&format!("INSERT INTO alltypes (id, {}) VALUES ({}, {})", names.join(", "), row + 2, values.join(", ")))
            .await;
    }
    // An update of a few columns (the rest are sent again) and a row that comes and goes.
    s.db.exec(
        "UPDATE alltypes SET c_text = 'updated \\N', c_date = 'infinity', a_int4 = '{NULL,NULL}', c_num = 'NaN' WHERE id = 2;
         BEGIN; INSERT INTO alltypes (id, c_text) VALUES (8, 'gone'); DELETE FROM alltypes WHERE id = 8; COMMIT;",
    )
    .await;
    s.run_until_current(&cfg).await;

    // --- 1. our reader: the materialised target is the source, through the same mapping ---
    assert_eq!(s.assert_matches_source("public", "alltypes").await, 7);
    let change_rows = s.change_rows("public", "alltypes");
    assert_eq!(change_rows.len(), 7 + 1 + 2, "7 inserts, 1 update, insert+delete of id 8");

    // --- and every cell's raw Arrow value is what the server computes for it ---
    let dir = s.table_dir("public", "alltypes");
    let batches = read_batches(&dir);
    let rows = final_rows(&batches);
    assert_eq!(rows.keys().copied().collect::<Vec<_>>(), (1..=7).collect::<Vec<_>>());
    let mut checked = 0usize;
    for t in &types {
        let c = format!("c_{}", t.name);
        let source = s
            .db
            .query_strings(&format!("{SESSION} SELECT id, {} FROM alltypes ORDER BY id", oracle_sql(t.arrow, &c)))
            .await;
        for r in &source {
            let id: i32 = r[0].as_deref().unwrap().parse().unwrap();
            let (a, i) = cell(&rows, id, &c);
            assert_eq!(raw_cell(a, i), r[1], "{c} of row {id}");
            checked += 1;
        }
        let a = format!("a_{}", t.name);
        let lens = s.db.query_strings(&format!("SELECT id, cardinality({a}) FROM alltypes ORDER BY id")).await;
        let elems = s
            .db
            .query_strings(&format!(
                "{SESSION} SELECT id, ord, {} FROM alltypes, unnest({a}) WITH ORDINALITY u(e, ord) ORDER BY id, ord",
                oracle_sql(t.arrow, "e")
            ))
            .await;
        for r in &lens {
            let id: i32 = r[0].as_deref().unwrap().parse().unwrap();
            let (arr, i) = cell(&rows, id, &a);
            let expected: Vec<Option<String>> = elems
                .iter()
                .filter(|e| e[0].as_deref() == r[0].as_deref())
                .map(|e| e[2].clone())
                .collect();
            match &r[1] {
                None => assert!(arr.is_null(i), "{a} of row {id} should be NULL"),
                Some(n) => {
                    assert!(!arr.is_null(i), "{a} of row {id} should not be NULL");
                    let list = arr.as_list::<i32>().value(i);
                    let got: Vec<Option<String>> = (0..list.len()).map(|k| raw_cell(list.as_ref(), k)).collect();
                    assert_eq!(got.len(), n.parse::<usize>().unwrap(), "{a} of row {id}: length");
                    assert_eq!(got, expected, "{a} of row {id}");
                }
            }
            checked += 1;
        }
    }
    eprintln!("{checked} cells equal the server's own computation");

    // --- specific cells, against constants ---
    let (a, i) = cell(&rows, 3, "c_date");
    assert_eq!(a.as_primitive::<Date32Type>().value(i), i32::MAX, "date infinity");
    let (a, i) = cell(&rows, 4, "c_date");
    assert_eq!(a.as_primitive::<Date32Type>().value(i), -i32::MAX, "date -infinity (DuckDB's, not PostgreSQL's i32::MIN)");
    let (a, i) = cell(&rows, 5, "c_date");
    assert_eq!(a.as_primitive::<Date32Type>().value(i) as i64, days(-43, 2, 1), "0044-02-01 BC is year -43");
    assert_eq!(days(-43, 2, 1), -735_202);
    let (a, i) = cell(&rows, 6, "c_date");
    assert_eq!(a.as_primitive::<Date32Type>().value(i) as i64, days(300_000, 1, 1));
    let (a, i) = cell(&rows, 7, "c_date");
    assert_eq!(a.as_primitive::<Date32Type>().value(i) as i64, days(-4713, 11, 24), "the earliest PostgreSQL date");
    let (a, i) = cell(&rows, 2, "c_date");
    assert_eq!(a.as_primitive::<Date32Type>().value(i), i32::MAX, "updated to infinity");
    let (a, i) = cell(&rows, 3, "c_time");
    assert_eq!(a.as_primitive::<Time64MicrosecondType>().value(i), 86_400_000_000, "24:00:00");
    let (a, i) = cell(&rows, 5, "c_time");
    assert_eq!(a.as_primitive::<Time64MicrosecondType>().value(i), 86_399_999_999);
    for (col, id, v) in [("c_ts", 3, i64::MAX), ("c_ts", 4, -i64::MAX), ("c_tstz", 3, i64::MAX), ("c_tstz", 4, -i64::MAX)] {
        let (a, i) = cell(&rows, id, col);
        assert_eq!(a.as_primitive::<TimestampMicrosecondType>().value(i), v, "{col} of row {id}");
    }
    let (a, i) = cell(&rows, 5, "c_ts");
    let noon_44bc = days(-43, 2, 1) * 86_400_000_000 + 12 * 3_600_000_000;
    assert_eq!(a.as_primitive::<TimestampMicrosecondType>().value(i), noon_44bc);
    let (a, i) = cell(&rows, 5, "c_tstz");
    assert_eq!(a.as_primitive::<TimestampMicrosecondType>().value(i), noon_44bc - 2 * 3_600_000_000, "+02 is 10:00 UTC");
    let (a, i) = cell(&rows, 2, "c_tstz");
    assert_eq!(
        a.as_primitive::<TimestampMicrosecondType>().value(i),
        (days(2024, 2, 29) * 86_400 + 7 * 3600 + 4 * 60 + 56) * 1_000_000 + 789_012,
        "12:34:56.789012+05:30 is 07:04:56.789012 UTC"
    );
    assert_eq!(a.data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
    let (a, i) = cell(&rows, 3, "c_num_10_2");
    assert_eq!(a.data_type(), &DataType::Decimal128(10, 2));
    assert_eq!(a.as_primitive::<Decimal128Type>().value(i), 9_999_999_999);
    let (a, i) = cell(&rows, 6, "c_num_10_2");
    assert_eq!(a.as_primitive::<Decimal128Type>().value(i), 1, "0.005 rounds to 0.01 in PostgreSQL");
    let (a, i) = cell(&rows, 3, "c_num_50_5");
    assert_eq!(a.data_type(), &DataType::Decimal256(50, 5));
    assert_eq!(a.as_primitive::<Decimal256Type>().value(i).to_string(), "9".repeat(50));
    let (a, i) = cell(&rows, 2, "c_domnum");
    assert_eq!(a.data_type(), &DataType::Decimal128(12, 2), "a domain over numeric(12,2) keeps its typmod");
    assert_eq!(a.as_primitive::<Decimal128Type>().value(i), 150);
    for (id, v) in [(2, "NaN"), (3, "Infinity"), (4, "-Infinity"), (5, "NaN")] {
        let (a, i) = cell(&rows, id, "c_num");
        assert_eq!(a.as_string::<i32>().value(i), v, "unconstrained numeric of row {id}");
    }
    let (a, i) = cell(&rows, 6, "c_num");
    assert_eq!(a.as_string::<i32>().value(i), "123456789012345678901234567890123456789012345678901234567890.123456789");
    let (a, i) = cell(&rows, 5, "c_float4");
    assert!(a.as_primitive::<Float32Type>().value(i).is_nan());
    let (a, i) = cell(&rows, 3, "c_float8");
    assert_eq!(a.as_primitive::<Float64Type>().value(i), f64::INFINITY);
    let (a, i) = cell(&rows, 7, "c_float8");
    assert!(a.as_primitive::<Float64Type>().value(i).is_sign_negative(), "-0 keeps its sign");
    let (a, i) = cell(&rows, 5, "c_text");
    assert_eq!(a.as_string::<i32>().value(i), "\\N", "the text \\N is a value, not NULL");
    let (a, i) = cell(&rows, 1, "c_text");
    assert!(a.is_null(i));
    let (a, i) = cell(&rows, 4, "c_text");
    assert_eq!((a.is_null(i), a.as_string::<i32>().value(i)), (false, ""), "empty string is not NULL");
    let (a, i) = cell(&rows, 2, "c_text");
    assert_eq!(a.as_string::<i32>().value(i), "updated \\N");
    let (a, i) = cell(&rows, 6, "c_text");
    assert_eq!(a.as_string::<i32>().value(i), "quote ' dq \" comma , semi ; nl \n cr \r tab \t bs \\ trailing  ");
    let (a, i) = cell(&rows, 2, "c_bpchar");
    assert_eq!(a.as_string::<i32>().value(i), "ab   ", "char(n) keeps its padding");
    let (a, i) = cell(&rows, 2, "c_uuid");
    assert_eq!(a.data_type(), &DataType::FixedSizeBinary(16));
    assert_eq!(hex::encode(a.as_fixed_size_binary().value(i)), "a0eebc999c0b4ef8bb6d6bb9bd380a11");
    let (a, i) = cell(&rows, 3, "c_bytea");
    assert_eq!(a.as_binary::<i32>().value(i), b"\xde\xad\xbe\xef\x5c\x22\x4e");
    let (a, i) = cell(&rows, 4, "c_bytea");
    assert_eq!((a.is_null(i), a.as_binary::<i32>().value(i).len()), (false, 0), "empty bytea is not NULL");
    let (a, i) = cell(&rows, 2, "c_oid");
    assert_eq!(a.data_type(), &DataType::Int64);
    let (a, i2) = cell(&rows, 3, "c_oid");
    assert_eq!((a.as_primitive::<Int64Type>().value(i), a.as_primitive::<Int64Type>().value(i2)), (1, 4_294_967_295));
    let (a, i) = cell(&rows, 3, "c_posint");
    assert_eq!(a.as_primitive::<Int32Type>().value(i), i32::MAX, "a domain over int4 is Int32");
    let list_strings = |id: i32, col: &str| -> Vec<Option<String>> {
        let (a, i) = cell(&rows, id, col);
        let l = a.as_list::<i32>().value(i);
        let s = l.as_string::<i32>();
        (0..s.len()).map(|k| s.is_valid(k).then(|| s.value(k).to_string())).collect()
    };
    let some = |v: &str| Some(v.to_string());
    assert_eq!(list_strings(3, "a_text"), vec![some("NULL"), None, None, some("null")], "quoted \"NULL\" vs NULL");
    assert_eq!(list_strings(5, "a_text"), vec![some("\\N"), some("N"), some("\\\\N")]);
    assert_eq!(
        list_strings(6, "a_text"),
        ["q'uote", "d\"q", "c,omma", "n\nl", " lead", "trail ", "{brace}"].map(some).to_vec()
    );
    assert_eq!(list_strings(7, "a_text"), vec![some("")]);
    assert_eq!(list_strings(4, "a_text"), Vec::<Option<String>>::new(), "empty array is an empty list");
    let (a, i) = cell(&rows, 1, "a_text");
    assert!(a.is_null(i), "a NULL array is a null list");
    assert_eq!(list_strings(5, "a_mood"), vec![some("NULL"), None]);
    let (a, i) = cell(&rows, 3, "a_date");
    let l = a.as_list::<i32>().value(i);
    assert_eq!(l.as_primitive::<Date32Type>().values().to_vec(), vec![i32::MAX, days(5_874_897, 12, 31) as i32]);
    let (a, i) = cell(&rows, 5, "a_date");
    let l = a.as_list::<i32>().value(i);
    assert_eq!(
        l.as_primitive::<Date32Type>().values().iter().map(|&d| d as i64).collect::<Vec<_>>(),
        vec![days(-43, 2, 1), days(0, 1, 1), days(1, 1, 1)]
    );
    let (a, i) = cell(&rows, 2, "a_int4");
    let l = a.as_list::<i32>().value(i);
    assert_eq!((l.len(), l.null_count()), (2, 2), "updated to {{NULL,NULL}}");

    // --- 2. pyarrow and DuckDB open every file, with the documented types and values ---
    let py = crate::support::read_parquet_with_python(&s.out());
    let tbl = &py["tables"]["public/alltypes"];
    assert!(tbl.is_object(), "pyarrow saw no public/alltypes: {py}");
    assert_eq!(tbl["pyarrow_rows"], json!(change_rows.len()), "pyarrow row count");
    assert_eq!(tbl["duckdb_rows"], json!(change_rows.len()), "DuckDB row count: {}", tbl["duckdb_error"]);
    assert_eq!(tbl["duckdb_error"], Value::Null);
    assert_eq!(tbl["pyarrow_concat_error"], Value::Null);
    let arrow_types = &tbl["arrow_types"];
    let duckdb_types = &tbl["duckdb_types"];
    let fields: BTreeMap<String, Value> =
        tbl["fields"].as_array().unwrap().iter().map(|f| (f["name"].as_str().unwrap().to_string(), f.clone())).collect();
    let mut report = String::from("| PostgreSQL | Arrow (pgcdc) | pyarrow | DuckDB |\n|---|---|---|---|\n");
    let mut mismatches = Vec::new();
    let schema = batches[0].schema();
    assert_eq!(arrow_types["id"], "int32");
    for t in &types {
        for (col, pg, want_arrow, want_duck) in [
            (format!("c_{}", t.name), t.sql.to_string(), t.arrow.to_string(), t.duckdb.to_string()),
            (format!("a_{}", t.name), format!("{}[]", t.sql), format!("list<item: {}>", t.arrow), format!("{}[]", t.duckdb)),
        ] {
            let got_arrow = arrow_types[&col].as_str().unwrap_or("?").to_string();
            let got_duck = duckdb_types[&col].as_str().unwrap_or("?").to_string();
            report.push_str(&format!(
                "| {pg} | {} | {got_arrow} | {got_duck} |\n",
                schema.field_with_name(&col).unwrap().data_type()
            ));
            if got_arrow != want_arrow {
                mismatches.push(format!("{col}: pyarrow {got_arrow}, documented {want_arrow}"));
            }
            if got_duck != want_duck {
                mismatches.push(format!("{col}: DuckDB {got_duck}, expected {want_duck}"));
            }
        }
    }
    eprintln!("{report}");
    assert!(mismatches.is_empty(), "type mismatches:\n{}\n{report}", mismatches.join("\n"));
    for (col, ext) in [("c_uuid", "arrow.uuid"), ("c_json", "arrow.json"), ("c_jsonb", "arrow.json")] {
        let f = &fields[col];
        assert_eq!(f["extension"], ext, "{col}: {f}");
    }
    assert_eq!(fields["c_uuid"]["type"], "extension<arrow.uuid>");
    let meta = tbl["schema_metadata"]["pgcdc.pg_types"].as_str();
    let meta: Value = serde_json::from_str(meta.unwrap_or_else(|| panic!("{}", tbl["schema_metadata"]))).unwrap();
    let pg_type_of = |c: &str| meta.as_array().unwrap().iter().find(|e| e["column"] == c).unwrap()["type"].clone();
    assert_eq!(pg_type_of("c_num_10_2"), "numeric(10,2)");
    assert_eq!(pg_type_of("a_tstz"), "timestamptz[]");

    // Values as pyarrow reads them (rows sorted by _lsn, _seq: ids 1..7 inserted, then the update).
    let py_rows = tbl["rows"].as_array().unwrap();
    let py_row = |id: i64| py_rows.iter().find(|r| r["id"] == id && r["_op"] == "I").unwrap();
    assert_eq!(py_row(2)["c_uuid"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(py_row(2)["c_bytea"], "00ff");
    assert_eq!(py_row(3)["c_bytea"], "deadbeef5c224e");
    assert_eq!(py_row(2)["c_num_10_2"], "12.50");
    assert_eq!(py_row(3)["c_num_50_5"], format!("{}.99999", "9".repeat(45)));
    assert_eq!(py_row(6)["c_num_38_6"], "12345678901234567890123456789012.123456");
    assert_eq!(py_row(2)["c_date"], "2024-02-29");
    assert_eq!(py_row(2)["c_time"], "12:34:56.789000");
    assert_eq!(py_row(5)["c_time"], "23:59:59.999999");
    assert_eq!(py_row(2)["c_ts"], "2024-02-29T12:34:56.789012");
    assert_eq!(py_row(2)["c_tstz"], "2024-02-29T07:04:56.789012+00:00");
    // Python's date/time/datetime cannot hold these: the reader reports the stored integer.
    assert_eq!(py_row(3)["c_date"], json!({"raw": i32::MAX}));
    assert_eq!(py_row(5)["c_date"], json!({"raw": -735_202}));
    assert_eq!(py_row(3)["c_time"], json!({"raw": 86_400_000_000i64}));
    assert_eq!(py_row(4)["c_ts"], json!({"raw": -i64::MAX}));
    assert_eq!(py_row(5)["c_num"], "NaN");
    assert_eq!(py_row(5)["c_text"], "\\N");
    assert_eq!(py_row(5)["c_float4"], "NaN");
    assert_eq!(py_row(4)["c_float8"], "-Infinity");
    assert_eq!(py_row(3)["a_text"], json!(["NULL", null, null, "null"]));
    assert_eq!(py_row(2)["a_int2"], json!([1, null, 3]));
    assert_eq!(py_row(4)["a_int2"], json!([-32768]));
    assert_eq!(py_row(6)["a_int2"], json!([]));
    assert_eq!(py_row(2)["c_json"], r#"{"a": [1, 2.50, "x\"y"], "b": null}"#);
    assert_eq!(py_row(2)["c_jsonb"], r#"{"a": [1, 2.50, "x\"y"], "b": null}"#, "jsonb's own normal form");
    assert_eq!(py_row(2)["c_interval"], "1 year 2 mons -3 days +04:05:06.789");
    assert_eq!(py_row(2)["c_timetz"], "12:34:56.789+05:30");
    assert_eq!(py_row(2)["c_money"], "$12.50");
    assert_eq!(py_row(1)["c_int4"], Value::Null);

    // Values as DuckDB reads them.
    let duck: Value = serde_json::from_str(&crate::support::run_python_script(
        "duckdb_values.py",
        &[s.out().as_os_str(), "--glob".as_ref(), "public/alltypes/**/*.parquet".as_ref()],
    ))
    .unwrap();
    eprintln!("DuckDB column errors: {}", duck["errors"]);
    let dv = |col: &str, id: i64| -> Value {
        let ids = duck["values"]["id"].as_array().unwrap();
        let ops = duck["values"]["_op"].as_array().unwrap();
        let k = (0..ids.len()).find(|&k| ids[k].as_str().and_then(|s| s.parse::<i64>().ok()) == Some(id) && ops[k] == "I").unwrap();
        duck["values"][col][k].clone()
    };
    let mut duck_report = String::new();
    for t in &types {
        for col in [format!("c_{}", t.name), format!("a_{}", t.name)] {
            if let Some(e) = duck["errors"].get(&col) {
                duck_report.push_str(&format!("{col}: ERROR {e}\n"));
                continue;
            }
            let vals: Vec<String> = (1..=7).map(|id| dv(&col, id).to_string()).collect();
            duck_report.push_str(&format!("{col}: {}\n", vals.join(" | ")));
        }
    }
    eprintln!("DuckDB values:\n{duck_report}");
    assert_eq!(duck["errors"], json!({}), "DuckDB failed to read some columns");
    // uuid is a BLOB to DuckDB (see TYPES): the same 16 bytes.
    assert_eq!(dv("c_uuid", 2), r"\xA0\xEE\xBC\x99\x9C\x0BN\xF8\xBBmk\xB9\xBD8\x0A\x11");
    assert_eq!(dv("c_bytea", 2), r"\x00\xFF");
    assert_eq!(dv("c_bytea", 4), "", "empty bytea");
    assert_eq!(dv("c_num_10_2", 2), "12.50");
    assert_eq!(dv("c_num_38_6", 3), "99999999999999999999999999999999.999999");
    assert_eq!(dv("c_num_50_5", 2), "12345.6789", "DuckDB reads decimal256 as DOUBLE");
    assert_eq!(dv("c_date", 2), "2024-02-29");
    assert_eq!(dv("c_date", 3), "infinity");
    assert_eq!(dv("c_date", 4), "-infinity");
    assert_eq!(dv("c_date", 5), "0044-02-01 (BC)");
    assert_eq!(dv("c_date", 6), "300000-01-01");
    assert_eq!(dv("a_date", 4), "[-infinity, '4714-11-24 (BC)']");
    assert_eq!(dv("c_time", 3), "24:00:00");
    assert_eq!(dv("c_ts", 3), "infinity");
    assert_eq!(dv("c_ts", 4), "-infinity");
    assert_eq!(dv("c_ts", 5), "0044-02-01 (BC) 12:00:00");
    assert_eq!(dv("c_tstz", 2), "2024-02-29 07:04:56.789012+00");
    assert_eq!(dv("c_tstz", 4), "-infinity");
    assert_eq!(dv("c_tstz", 6), "294246-12-31 23:59:59.999999+00");
    assert_eq!(dv("c_float4", 5), "nan");
    assert_eq!(dv("c_float8", 7), "-0.0");
    assert_eq!(dv("c_num", 5), "NaN");
    assert_eq!(dv("c_text", 5), "\\N");
    assert_eq!(dv("c_text", 4), "");
    assert_eq!(dv("c_text", 1), Value::Null);
    assert_eq!(dv("c_bpchar", 2), "ab   ");
    assert_eq!(dv("a_text", 3), "['NULL', NULL, NULL, 'null']");
    assert_eq!(dv("a_int4", 6), "[]");
    assert_eq!(dv("a_int4", 7), "[NULL]");
    assert_eq!(dv("c_json", 2), r#"{"a": [1, 2.50, "x\"y"], "b": null}"#);
}

/// Every file under `dir`, relative, sorted.
fn all_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A transaction with a value the mapping refuses: `pgcdc run` exits 1 naming the table, the
/// column and the value, publishes nothing of the transaction, does not confirm it to the
/// slot, and fails the same way when run again.
async fn refused_value(hint: &str, column_sql: &str, good: &str, bad: &str, expect: &[&str]) {
    let s = Setup::new(hint).await;
    s.db.exec(&format!("CREATE TABLE refused (id int PRIMARY KEY, v {column_sql})")).await;
    s.db.create_publication(&s.publication, "refused").await;
    let cfg = s.config("");
    assert_success(&s.pgcdc(&cfg, &["setup"]).await, "setup");
    let before: pgcdc::model::Lsn = s.db.slot_confirmed_lsn(&s.slot).await.unwrap().parse().unwrap();
    s.db.exec(&format!(
        "BEGIN; INSERT INTO refused SELECT g, {good} FROM generate_series(1, 100) g;
                INSERT INTO refused VALUES (1000, {bad});
                INSERT INTO refused SELECT g, {good} FROM generate_series(1001, 1002) g; COMMIT;"
    ))
    .await;
    let after: pgcdc::model::Lsn = s.db.current_lsn().await.parse().unwrap();
    for attempt in 0..2 {
        let out = s.pgcdc(&cfg, &["run", "--until-lsn", "current"]).await;
        let err = stderr(&out);
        eprintln!("{hint} attempt {attempt}: {err}");
        assert_eq!(out.status.code(), Some(1), "{hint}: pgcdc run should fail\n{err}");
        for e in ["public.refused", "\"v\""].iter().chain(expect) {
            assert!(err.contains(e), "{hint}: the message should contain {e:?}:\n{err}");
        }
        assert!(parquet_files(&s.out()).is_empty(), "{hint}: nothing may be published: {:?}", parquet_files(&s.out()));
        let left = all_files(&s.out());
        eprintln!("{hint}: files after the failed run: {left:?}");
        assert!(
            left.iter().all(|f| !f.contains(".parquet") && !f.starts_with("public")),
            "{hint}: no part of the refused transaction may remain: {left:?}"
        );
        // wait for the walsender of the failed run to let go of the slot before the next one
        for _ in 0..100 {
            let q = format!("SELECT active::text FROM pg_replication_slots WHERE slot_name = '{}'", s.slot);
            if s.db.query_scalar(&q).await.as_deref() == Some("false") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let confirmed: pgcdc::model::Lsn = s.db.slot_confirmed_lsn(&s.slot).await.unwrap().parse().unwrap();
        assert!(confirmed < after, "{hint}: slot confirmed {confirmed} past the refused transaction (ends {after})");
        assert!(confirmed >= before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_nan_in_a_constrained_column_stops_the_run() {
    // PostgreSQL accepts NaN in numeric(10,2); Decimal128(10,2) cannot hold it.
    refused_value("types_nan", "numeric(10,2)", "g * 1.5", "'NaN'", &["numeric(10,2)", "\"NaN\""]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dimensional_array_stops_the_run() {
    let expect = ["int4[]", "{{1,2},{3,4}}", "multi-dimensional"];
    refused_value("types_2d", "int4[]", "ARRAY[g, NULL]", "'{{1,2},{3,4}}'", &expect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_beyond_i64_microseconds_stops_the_run() {
    // PostgreSQL's last ~30 years (294247..294276 AD) do not fit µs since 1970 in an i64.
    refused_value(
        "types_ts_max",
        "timestamp",
        "'2024-01-01'::timestamp + g * interval '1 day'",
        "'294276-12-31 23:59:59.999999'",
        &["timestamp", "294276-12-31 23:59:59.999999"],
    )
    .await;
}

/// The text-vs-binary decision for pgoutput tuples, measured (not asserted): one
/// transaction of `PGCDC_BENCH_ROWS` (default 1 000 000) inserts of a mixed row, decoded
/// from two slots created before it, with pgoutput's `binary` option `false` and `true`:
///
/// * server: `pg_logical_slot_peek_binary_changes` (decoding + output functions, repeatable),
///   alternating, median of 3;
/// * wire: `pg_recvlogical` streaming each slot to a file (time, bytes);
/// * client: pgcdc's decoder + Arrow builders over the fetched messages, for the columns
///   pgcdc can read in both forms (binary numeric, arrays and jsonb have no decoder).
///
/// `cargo test --test types text_vs_binary -- --ignored --nocapture`
///
/// Measured (PostgreSQL 15, 2 shared cores, 1M rows of id, int4, float8, text, timestamptz,
/// date, uuid, bool, numeric(12,2), int4[], jsonb; two runs):
///
/// | | text | binary |
/// |---|---|---|
/// | pgoutput output | 247.3 MB | 225.4 MB (−9 %) |
/// | server decode + output (peek) | 4.99 s / 4.21 s | 4.53 s / 3.92 s (−7..9 %) |
/// | pg_recvlogical to a file | 10.15 s / 9.22 s | 11.72 s / 9.04 s (noise) |
/// | pgcdc decode + Arrow, 8 natively readable columns | 0.92 s / 0.93 s | 0.96 s / 0.72 s |
/// | pgcdc decode + Arrow, all 11 columns | 1.60 s / 1.27 s | no decoder for binary numeric, arrays, jsonb |
///
/// Binary saves under 10 % of bytes and server time and at most ~0.2 s per million rows in
/// pgcdc, while it needs PostgreSQL 14+ and a binary decoder for every type that has a send
/// function (pgoutput then sends every such column in binary: numeric, arrays, jsonb,
/// interval, ranges, extension types...). CDC stays on text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn text_vs_binary_pgoutput() {
    use std::sync::Arc;
    use std::time::Instant;

    use pgcdc::batch::TableBatchBuilder;
use pgcdc::model::{OutputRow, TableSchema};
    use pgcdc::model::{Lsn, RowOp};
    use pgcdc::source::pgoutput::{Decoder, PgOutputMessage};
use pgcdc::model::TupleValue;

    let rows: i64 = std::env::var("PGCDC_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let s = Setup::new("types_bench").await;
    s.db.exec(
        "CREATE TABLE mixed (id bigint PRIMARY KEY, i int4, f float8, t text, ts timestamptz, d date, u uuid,
                             b bool, n numeric(12,2), arr int4[], j jsonb)",
    )
    .await;
    s.db.create_publication(&s.publication, "mixed").await;
    let (text_slot, bin_slot) = (s.db.unique("text"), s.db.unique("bin"));
    let (text_slot2, bin_slot2) = (s.db.unique("text_wire"), s.db.unique("bin_wire"));
    for slot in [&text_slot, &bin_slot, &text_slot2, &bin_slot2] {
        s.db.exec(&format!("SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')")).await;
    }
    let t0 = Instant::now();
    // The test cluster runs with synchronous_commit = off: flush this commit, so that the
    // WAL position read next is past it.
    s.db.exec(&format!(
        "SET synchronous_commit = on;
         INSERT INTO mixed SELECT g, g, g / 7.0, 'row ' || md5(g::text), timestamptz '2024-01-01' + g * interval '1 second',
                date '2024-01-01' + (g % 1000), md5(g::text)::uuid, g % 2 = 0, g * 1.25, ARRAY[g, g + 1, NULL],
                jsonb_build_object('k', g, 's', 'x')
           FROM generate_series(1, {rows}) g"
    ))
    .await;
    let end = s.db.current_lsn().await;
    eprintln!("inserted {rows} rows in one transaction in {:.1?}; WAL end {end}", t0.elapsed());
    let opts = |binary: bool| {
        format!("'proto_version', '1', 'publication_names', '{}', 'binary', '{binary}'", s.publication)
    };

    // --- server side ---
    let client = s.db.client().await;
    client.batch_execute("SET logical_decoding_work_mem = '64MB'").await.unwrap();
    let mut server: BTreeMap<bool, Vec<f64>> = BTreeMap::new();
    let mut sizes: BTreeMap<bool, (i64, i64)> = BTreeMap::new();
    for _round in 0..3 {
        for (slot, binary) in [(&text_slot, false), (&bin_slot, true)] {
            let t = Instant::now();
            let r = client
                .query_one(
                    &format!(
                        "SELECT count(*), sum(octet_length(data))::int8 \
                           FROM pg_logical_slot_peek_binary_changes('{slot}', '{end}', NULL, {})",
                        opts(binary)
                    ),
                    &[],
                )
                .await
                .unwrap();
            server.entry(binary).or_default().push(t.elapsed().as_secs_f64());
            let (msgs, bytes): (i64, Option<i64>) = (r.get(0), r.get(1));
            sizes.insert(binary, (msgs, bytes.unwrap_or(0)));
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    for binary in [false, true] {
        let (msgs, bytes) = sizes[&binary];
        eprintln!(
            "server  binary={binary:<5}: {msgs} messages, {:.1} MB of output, decode+output {:.2}s (median of {:?})",
            bytes as f64 / 1e6,
            median(&server[&binary]),
            server[&binary].iter().map(|t| format!("{t:.2}")).collect::<Vec<_>>()
        );
    }

    // --- wire: pg_recvlogical ---
    let recv = s.db.cluster.bindir().join("pg_recvlogical");
    for (slot, binary) in [(&text_slot2, false), (&bin_slot2, true)] {
        let file = s.dir.path().join(format!("recv-{binary}.bin"));
        let t = Instant::now();
        let out = std::process::Command::new(&recv)
            .env("PGOPTIONS", "-c logical_decoding_work_mem=64MB")
            .args(["-d", &s.db.url, "--slot", slot, "--start", "--no-loop", "--endpos", &end])
            .args(["-o", "proto_version=1", "-o", &format!("publication_names={}", s.publication)])
            .args(["-o", &format!("binary={binary}"), "-f"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_recvlogical: {}", String::from_utf8_lossy(&out.stderr));
        eprintln!(
            "wire    binary={binary:<5}: pg_recvlogical {:.2}s, {:.1} MB received",
            t.elapsed().as_secs_f64(),
            std::fs::metadata(&file).unwrap().len() as f64 / 1e6
        );
    }

    // --- client side: decode + Arrow ---
    let info = pgcdc::source::conninfo::ConnInfo::from_url(Some(&s.db.url)).unwrap();
    let catalog = pgcdc::source::catalog::Catalog::new(pgcdc::source::sql::connect(&info).await.unwrap());
    let full = catalog.table_schema("public", "mixed").await.unwrap();
    let native: Vec<usize> =
        (0..full.columns.len()).filter(|&i| pgcdc::batch::copy_native(&full.columns[i])).collect();
    let subset = Arc::new(TableSchema {
        columns: native.iter().map(|&i| full.columns[i].clone()).collect(),
        key: vec![0],
        ..(*full).clone()
    });
    eprintln!(
        "client columns read in both forms: {:?}",
        subset.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>()
    );
    for binary in [false, true] {
        let slot = if binary { &bin_slot } else { &text_slot };
        let data: Vec<bytes::Bytes> = client
            .query(
                &format!("SELECT data FROM pg_logical_slot_peek_binary_changes('{slot}', '{end}', NULL, {})", opts(binary)),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| bytes::Bytes::from(r.get::<_, Vec<u8>>(0)))
            .collect();
        #[allow(clippy::type_complexity)] // (label, schema, native columns): read once, below
        let schemas: Vec<(&str, Arc<TableSchema>, Option<&[usize]>)> = if binary {
            vec![("native columns", subset.clone(), Some(&native[..]))]
        } else {
            vec![("native columns", subset.clone(), Some(&native[..])), ("all columns", full.clone(), None)]
        };
        for (what, schema, project) in schemas {
            let t = Instant::now();
            let mut decoder = Decoder::new(1);
            let mut builder = TableBatchBuilder::new(schema);
            let (mut n, mut batches) = (0usize, 0usize);
            let mut values: Vec<TupleValue> = Vec::new();
            for d in &data {
                if let PgOutputMessage::Insert { new, .. } = decoder.decode(d.clone()).unwrap() {
                    let vals: &[TupleValue] = match project {
                        Some(p) => {
                            values.clear();
                            values.extend(p.iter().map(|&i| new[i].clone()));
                            &values
                        }
                        None => &new,
                    };
                    let row =
                        OutputRow { op: RowOp::Insert, lsn: Lsn(1), seq: n as i64, xid: None, commit_ts_us: 0, values: vals };
                    builder.append(&row).unwrap();
                    n += 1;
                    if builder.len() >= 8192 {
                        batches += builder.finish().num_rows();
                    }
                }
            }
            batches += builder.finish().num_rows();
            assert_eq!((n, batches), (rows as usize, rows as usize));
            eprintln!("client  binary={binary:<5}: {what}: decode + Arrow {:.2}s for {n} rows", t.elapsed().as_secs_f64());
        }
    }
}
