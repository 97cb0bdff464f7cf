//! Object names of the native layout (SPEC 5.1).
//!
//! `{schema}/{table}/cdc/date={YYYY-MM-DD}/{first_lsn}-{last_lsn}.parquet` with LSNs as 16
//! upper-case hex digits. A transaction larger than `max_file_size`, or one that changes a
//! table's columns, spans several parts with the same LSN range; those get a `-{n:04}` suffix
//! on every part of the range so that names stay unique and still sort in write order.

use std::collections::HashMap;

use crate::model::Lsn;
use crate::sink::civil_from_days;

/// A path component for a schema or table name: `/` and NUL cannot appear in a file name.
pub fn path_component(name: &str) -> String {
    name.replace(['/', '\0'], "_")
}

pub fn table_prefix(schema: &str, table: &str) -> String {
    format!("{}/{}", path_component(schema), path_component(table))
}

pub fn date_of(ts_us: i64) -> String {
    let (y, m, d) = civil_from_days(ts_us.div_euclid(86_400_000_000));
    format!("{y:04}-{m:02}-{d:02}")
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
            let base = format!("{prefix}/cdc/date={}/{}-{}", date_of(*ts), first.file_hex(), last.file_hex());
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
        assert_eq!(path_component("a/b"), "a_b");
    }
}
