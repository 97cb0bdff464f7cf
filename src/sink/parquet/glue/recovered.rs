//! Registering the files of an interrupted flush, which recovery does not publish again.
//!
//! A flush publishes its files, registers them in Glue, and only then writes its checkpoint
//! and deletes its manifest (`sink::parquet::manifest`). When Glue refuses or keeps failing
//! (or the process dies) after a file was published, the file is in the target but maybe
//! not in Glue, and the manifest stays. The next run's recovery then rolls the flush
//! forward without publishing those files again (they left staging), so [`CatalogStorage`]
//! would never see them, and a table with no later change would stay missing from Glue.
//!
//! So when recovery reads the manifest (before it writes the checkpoint), the wrapper
//! registers the parts already published ([`published_parts`]), reading their columns from
//! the stored files. A Glue failure there fails the recovery, the manifest stays, and the
//! next run tries again: nothing is confirmed that Glue has not seen. Registration is
//! idempotent (an existing table, partition or column list is left as it is).

use crate::error::Result;
use crate::sink::parquet::manifest::{Manifest, ManifestPart};

use super::{file_columns_of, place_of, CatalogStorage};

/// The keys of the `parts` of an interrupted flush that are already published (no longer
/// staged, present in the target): the ones recovery keeps without publishing them. Empty
/// when a part is lost (neither staged nor stored): recovery rolls that flush back.
pub fn published_parts(
    parts: &[ManifestPart],
    staged: impl Fn(&ManifestPart) -> bool,
    stored: impl Fn(&ManifestPart) -> Result<bool>,
) -> Result<Vec<String>> {
    let mut published = Vec::new();
    for p in parts {
        if staged(p) {
            continue;
        }
        if !stored(p)? {
            return Ok(Vec::new());
        }
        published.push(p.key.clone());
    }
    Ok(published)
}

impl CatalogStorage {
    /// Registers in Glue the published parts of the interrupted flush whose manifest is
    /// `bytes` (module docs). A manifest that does not parse is left to recovery, which
    /// reports it.
    pub(super) fn register_interrupted_flush(&self, bytes: &[u8]) -> Result<()> {
        let Ok(manifest) = serde_json::from_slice::<Manifest>(bytes) else {
            return Ok(());
        };
        let inner = self.inner.as_ref();
        let keys = published_parts(
            &manifest.parts,
            |p| inner.has_staged(std::path::Path::new(&p.staging)),
            |p| inner.exists(&p.key),
        )?;
        for key in keys {
            let Some(place) = place_of(&self.glue, &key) else {
                continue;
            };
            let Some(data) = inner.get(&key)? else {
                continue;
            };
            let columns = file_columns_of(bytes::Bytes::from(data), &key)?;
            tracing::info!("registering {key} in Glue, published by an interrupted flush");
            self.glue
                .register(inner, columns, place)
                .map_err(|e| e.context(format!("registering {key} in Glue")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(key: &str) -> ManifestPart {
        ManifestPart {
            staging: format!("/staging/{key}"),
            key: key.to_string(),
        }
    }

    #[test]
    fn only_parts_published_before_the_interruption_are_registered() {
        let parts = [part("a"), part("b"), part("c")];
        // `a` published, `b` still staged (recovery publishes it), `c` published.
        let got = published_parts(&parts, |p| p.key == "b", |_| Ok(true)).unwrap();
        assert_eq!(got, vec!["a".to_string(), "c".to_string()]);
        // `c` lost: the flush is rolled back, nothing to register.
        let got = published_parts(&parts, |p| p.key == "b", |p| Ok(p.key != "c")).unwrap();
        assert!(got.is_empty());
        // Everything still staged: recovery publishes (and so registers) it all.
        assert!(published_parts(&parts, |_| true, |_| Ok(false))
            .unwrap()
            .is_empty());
    }
}
