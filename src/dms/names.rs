//! The identifiers of the DMS objects of one configuration, derived from it
//! deterministically, so that `plan`, `apply` (and `status`/`compare`) of the same
//! configuration always name the same endpoints, instance and task.
//!
//! DMS identifiers (endpoint, replication instance and task) must consist of ASCII letters,
//! digits and hyphens, start with a letter, not end with a hyphen and not contain two
//! consecutive hyphens; a replication instance's is at most 63 characters, which pgcdc uses
//! for all of them. [`identifier`] makes any text such an identifier.

use crate::config::Config;
use crate::source::conninfo::ConnInfo;

/// The longest identifier pgcdc makes (DMS's limit for replication instances).
pub const MAX_IDENTIFIER: usize = 63;

/// The DMS names of one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The base every other identifier starts with.
    pub base: String,
    pub source_endpoint: String,
    pub target_endpoint: String,
    pub instance: String,
    pub task: String,
    /// The replication slot DMS reads (not pgcdc's own: one slot has one reader).
    pub slot: String,
}

impl Names {
    /// The names of `config`'s DMS objects for a target of `target_kind` (`s3`, `kinesis`):
    /// `[dms] name`, or else `pgcdc-{database}-{slot}`, made an [`identifier`], then
    /// `-source`, `-{target_kind}` and `-task` appended; the instance takes the base. The
    /// database comes from the source URL (or `PGDATABASE`); an unparsable URL gives `db`.
    pub fn of(config: &Config, target_kind: &str) -> Names {
        let raw = match config.dms.as_ref().and_then(|d| d.name.clone()) {
            Some(n) => n,
            None => {
                let db = ConnInfo::from_url(config.source.url.as_deref())
                    .map(|i| i.dbname)
                    .unwrap_or_else(|_| "db".into());
                format!("pgcdc-{db}-{}", config.source.slot)
            }
        };
        // Room for the longest suffix, so that every name keeps the same base.
        let base = identifier(&raw, MAX_IDENTIFIER - "-kinesis".len());
        Names {
            source_endpoint: format!("{base}-source"),
            target_endpoint: format!("{base}-{target_kind}"),
            instance: base.clone(),
            task: format!("{base}-task"),
            slot: dms_slot(&config.source.slot),
            base,
        }
    }
}

/// `raw` as a DMS identifier of at most `max` (≥ 16) characters: lower-cased, every run of
/// other characters than letters and digits one hyphen, no hyphen at either end, `pgcdc-`
/// in front when it does not start with a letter. A text that is too long keeps its start
/// and ends in `-` and 8 hex digits of a hash of the whole text, so that two long names that
/// differ only at the end stay different.
pub fn identifier(raw: &str, max: usize) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_end_matches('-').to_string();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out = if out.is_empty() {
            "pgcdc".into()
        } else {
            format!("pgcdc-{out}")
        };
    }
    if out.len() > max {
        let keep = out[..max - 9].trim_end_matches('-').to_string();
        out = format!("{keep}-{:08x}", fnv1a(raw.as_bytes()) as u32);
    }
    out
}

/// The slot DMS reads: `{slot}_dms`, as a valid slot name (lower-case letters, digits and
/// underscores, at most 63 characters).
pub fn dms_slot(slot: &str) -> String {
    let mut s: String = slot
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(63 - 4);
    s.push_str("_dms");
    s
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(id: &str) -> bool {
        id.len() <= MAX_IDENTIFIER
            && id.starts_with(|c: char| c.is_ascii_alphabetic())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !id.ends_with('-')
            && !id.contains("--")
    }

    #[test]
    fn identifiers_are_valid_for_dms_and_deterministic() {
        assert_eq!(identifier("pgcdc-shop-pgcdc", 63), "pgcdc-shop-pgcdc");
        assert_eq!(identifier("Shop__DB.slot_1", 63), "shop-db-slot-1");
        assert_eq!(identifier("1st db", 63), "pgcdc-1st-db");
        assert_eq!(identifier("--", 63), "pgcdc");
        assert_eq!(identifier("a-", 63), "a");
        let long = "x".repeat(100);
        let a = identifier(&long, 55);
        assert!(valid(&a) && a.len() == 55, "{a}");
        assert_eq!(a, identifier(&long, 55));
        assert_ne!(a, identifier(&format!("{long}y"), 55));
        for raw in ["Ünïcode-db", "__x__", "a--b", "db/slot", &"ab-".repeat(40)] {
            let id = identifier(raw, 55);
            assert!(valid(&id), "{raw:?} -> {id:?}");
        }
    }

    #[test]
    fn names_of_a_config() {
        let c = crate::config::Config::parse(
            "[source]\nurl = \"postgres://u@h/Shop\"\nslot = \"main_slot\"\n[[sink]]\nkind = \"parquet\"\nurl = \"s3://bkt/cdc/\"\n",
        )
        .unwrap();
        let n = Names::of(&c, "s3");
        assert_eq!(n.base, "pgcdc-shop-main-slot");
        assert_eq!(n.source_endpoint, "pgcdc-shop-main-slot-source");
        assert_eq!(n.target_endpoint, "pgcdc-shop-main-slot-s3");
        assert_eq!(n.task, "pgcdc-shop-main-slot-task");
        assert_eq!(n.slot, "main_slot_dms");
        for id in [&n.source_endpoint, &n.target_endpoint, &n.instance, &n.task] {
            assert!(valid(id), "{id}");
        }
    }
}
