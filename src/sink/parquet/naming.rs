//! Object names of the native layout (SPEC 5.1).
//!
//! `{schema}/{table}/cdc/date={YYYY-MM-DD}/{first_lsn}-{last_lsn}.parquet` with LSNs as 16
//! upper-case hex digits. A transaction larger than `max_file_size`, or one that changes a
//! table's columns, spans several parts with the same LSN range; those get a `-{n:04}` suffix
//! on every part of the range so that names stay unique and still sort in write order.

use std::collections::HashMap;

use crate::model::Lsn;

/// The one path segment (directory name, S3 key segment) of a schema or table name.
///
/// Kept as they are: ASCII letters and digits, `_`, and non-ASCII letters and digits
/// (`char::is_alphanumeric`), so ordinary identifiers keep their paths. Every other
/// character is percent-encoded, each byte of its UTF-8 form as `%` and two upper-case hex
/// digits: `%` itself, `/`, `\`, `.`, `=`, `-`, `$`, spaces, quotes and control characters.
/// So `"a/b"` is `a%2Fb` and `a_b` stays `a_b`; `..` is `%2E%2E`; a segment never is `.`,
/// `..`, empty (PostgreSQL names are never empty), nor looks like a Hive partition (`k=v`).
/// The encoding is injective and [`decode_path_component`] inverts it. A PostgreSQL name
/// (at most 63 bytes) encodes to at most 189 bytes, within every file system's limit.
/// Every table path and key of the target (data, load files, schema history, readers)
/// goes through this function.
pub fn path_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c == '_' || c.is_ascii_alphanumeric() || (!c.is_ascii() && c.is_alphanumeric()) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// The name a segment made by [`path_component`] stands for; `None` when `segment` is not
/// exactly what `path_component` makes of some name (bad escapes, lower-case hex, a
/// character that should have been escaped, an escaped one that should not).
pub fn decode_path_component(segment: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(segment.len());
    let mut rest = segment.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = tail.get(..2)?;
            if !hex.iter().all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)) {
                return None;
            }
            bytes.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    let name = String::from_utf8(bytes).ok()?;
    (path_component(&name) == segment).then_some(name)
}

/// `{schema}/{table}`, both encoded by [`path_component`]: the prefix of every key of a table.
pub fn table_prefix(schema: &str, table: &str) -> String {
    format!("{}/{}", path_component(schema), path_component(table))
}

/// The directory of a table in a local target rooted at `root`.
pub fn table_dir(root: &std::path::Path, schema: &str, table: &str) -> std::path::PathBuf {
    root.join(path_component(schema)).join(path_component(table))
}

/// Names the parts of one flush. `parts` are (table prefix, first, last, first commit time)
/// in write order; the result has one key per part.
pub fn cdc_keys(parts: &[(String, Lsn, Lsn, i64)]) -> Vec<String> {
    let mut same_range: HashMap<(&str, Lsn, Lsn), usize> = HashMap::new();
    for (prefix, first, last, _) in parts {
        *same_range.entry((prefix.as_str(), *first, *last)).or_default() += 1;
    }
    let mut seen: HashMap<(&str, Lsn, Lsn), usize> = HashMap::new();
    parts
        .iter()
        .map(|(prefix, first, last, ts)| {
            let k = (prefix.as_str(), *first, *last);
            let base = format!("{prefix}/cdc/date={}/{}-{}", crate::time_fmt::utc_date_of_micros(*ts), first.file_hex(), last.file_hex());
            if same_range[&k] > 1 {
                let n = seen.entry(k).or_default();
                *n += 1;
                format!("{base}-{:04}.parquet", n)
            } else {
                format!("{base}.parquet")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_and_stay_unique() {
        let day = 19_723i64 * 86_400_000_000; // 2024-01-01
        let keys = cdc_keys(&[
            ("public/t".into(), Lsn(0x10), Lsn(0x20), day),
            ("public/t".into(), Lsn(0x20), Lsn(0x20), day),
            ("public/t".into(), Lsn(0x20), Lsn(0x20), day),
            ("public/u".into(), Lsn(0x20), Lsn(0x20), day),
        ]);
        assert_eq!(keys[0], "public/t/cdc/date=2024-01-01/0000000000000010-0000000000000020.parquet");
        assert_eq!(keys[1], "public/t/cdc/date=2024-01-01/0000000000000020-0000000000000020-0001.parquet");
        assert_eq!(keys[2], "public/t/cdc/date=2024-01-01/0000000000000020-0000000000000020-0002.parquet");
        assert_eq!(keys[3], "public/u/cdc/date=2024-01-01/0000000000000020-0000000000000020.parquet");
        assert!(keys[1] < keys[2]);
    }

    #[test]
    fn ordinary_names_keep_their_paths() {
        for n in ["public", "Orders", "t_1", "_x", "ÆØÅ", "Straße", "日本", "données"] {
            assert_eq!(path_component(n), n);
        }
        assert_eq!(table_prefix("public", "items"), "public/items");
    }

    #[test]
    fn tricky_names_are_escaped_one_to_one() {
        let cases = [
            ("a/b", "a%2Fb"),
            ("a_b", "a_b"),
            ("..", "%2E%2E"),
            (".", "%2E"),
            ("%", "%25"),
            ("a%2Fb", "a%252Fb"),
            ("x y", "x%20y"),
            ("it's \"q\"", "it%27s%20%22q%22"),
            ("date=1", "date%3D1"),
            ("back\\slash", "back%5Cslash"),
            ("tab\tnl\n", "tab%09nl%0A"),
            ("a-b.c", "a%2Db%2Ec"),
            ("é", "é"),
            ("e\u{301}", "e%CC%81"),
            ("\u{202E}rtl", "%E2%80%AErtl"),
        ];
        for (name, seg) in cases {
            assert_eq!(path_component(name), seg, "{name:?}");
            assert_eq!(decode_path_component(seg).as_deref(), Some(name), "{seg:?}");
            assert!(!seg.contains(['/', '\\', '.', '=', ' ', '\0']), "{seg:?}");
        }
        let mut seen = std::collections::HashMap::new();
        let names = ["a/b", "a_b", "a%2Fb", "a%2fb", "..", "%2E%2E", ".", "", "A/B", "a b", "a%20b", "ab", "a\u{0}b"];
        for n in names {
            let seg = path_component(n);
            if let Some(other) = seen.insert(seg.clone(), n) {
                panic!("{n:?} and {other:?} share {seg:?}");
            }
            assert_eq!(decode_path_component(&seg).as_deref(), Some(n));
        }
    }

    #[test]
    fn decoding_accepts_only_what_encoding_makes() {
        for bad in ["a/b", "%2e", "%41", "%", "%2", "%ZZ", "a.b", "%C3", "x y"] {
            assert_eq!(decode_path_component(bad), None, "{bad:?}");
        }
    }
}
