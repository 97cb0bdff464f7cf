//! What differs between a planned document and what DMS describes: every key the plan sets
//! (recursively, in objects) whose described value is missing or different. Keys the plan
//! does not set (DMS's own defaults, ARNs, tags) are never differences, so a second `apply`
//! of an unchanged plan finds nothing to change.

use serde_json::Value;

/// One differing setting: its path (`S3Settings.BucketFolder`) and both values.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub path: String,
    pub current: Option<Value>,
    pub wanted: Value,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.current {
            Some(c) => write!(f, "{}: {c} -> {}", self.path, self.wanted),
            None => write!(f, "{}: (unset) -> {}", self.path, self.wanted),
        }
    }
}

/// The changes that turn `current` into `wanted`, skipping the top-level keys in `skip`.
/// Strings are compared without regard to case where DMS normalises them (engine and
/// enum values such as `PARQUET` / `parquet`).
pub fn changes(wanted: &Value, current: &Value, skip: &[&str]) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", wanted, current, skip, &mut out);
    out
}

fn walk(prefix: &str, wanted: &Value, current: &Value, skip: &[&str], out: &mut Vec<Change>) {
    let Some(w) = wanted.as_object() else { return };
    for (k, wv) in w {
        if prefix.is_empty() && skip.contains(&k.as_str()) {
            continue;
        }
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let cv = current.get(k);
        match (wv, cv) {
            (Value::Object(_), Some(c @ Value::Object(_))) => walk(&path, wv, c, &[], out),
            // Arrays of objects (mapping rules) element by element, so that keys DMS adds to
            // a rule do not count; a different length is one change of the whole array.
            (Value::Array(wa), Some(Value::Array(ca)))
                if wa.len() == ca.len() && wa.iter().all(Value::is_object) =>
            {
                for (n, (we, ce)) in wa.iter().zip(ca).enumerate() {
                    walk(&format!("{path}[{n}]"), we, ce, &[], out);
                }
            }
            (_, Some(c)) if same(wv, c) => {}
            _ => out.push(Change {
                path,
                current: cv.cloned(),
                wanted: wv.clone(),
            }),
        }
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_planned_keys_that_differ_are_changes() {
        let wanted = json!({"EndpointIdentifier": "a", "Tags": [1], "S3Settings": {"BucketFolder": "x-dms", "DataFormat": "parquet", "CdcMaxBatchInterval": 60}});
        let same = json!({"EndpointIdentifier": "a", "S3Settings": {"BucketFolder": "x-dms", "DataFormat": "PARQUET", "CdcMaxBatchInterval": 60, "CsvDelimiter": ","}});
        assert!(changes(&wanted, &same, &["Tags"]).is_empty());
        let moved = json!({"EndpointIdentifier": "a", "S3Settings": {"BucketFolder": "other", "DataFormat": "parquet"}});
        let c = changes(&wanted, &moved, &["Tags"]);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(
            c[0].to_string(),
            "S3Settings.BucketFolder: \"other\" -> \"x-dms\""
        );
        assert_eq!(
            c[1].to_string(),
            "S3Settings.CdcMaxBatchInterval: (unset) -> 60"
        );
    }
}
