//! A local directory target. Durability = the file and every directory entry leading to it
//! fsynced; atomicity = write under `_pgcdc/staging/`, then rename into place.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Storage;
use crate::error::{Error, Result, ResultExt};

pub struct LocalStorage {
    root: PathBuf,
    staging: PathBuf,
}

impl LocalStorage {
    pub fn open(root: PathBuf) -> Result<LocalStorage> {
        let root = if root.is_absolute() { root } else { std::env::current_dir()?.join(root) };
        fs::create_dir_all(&root).map_err(|e| {
            Error::runtime(format!("cannot create output directory {}: {e}", root.display()))
                .with_hint("check the sink url and that pgcdc may write there")
        })?;
        let staging = root.join("_pgcdc").join("staging");
        fs::create_dir_all(&staging).runtime_ctx(|| format!("creating {}", staging.display()))?;
        // Probe that we can really write here, so a read-only target fails before replication starts.
        let probe = staging.join(".write-probe");
        File::create(&probe)
            .and_then(|mut f| f.write_all(b"ok"))
            .map_err(|e| Error::runtime(format!("output directory {} is not writable: {e}", root.display())))?;
        fs::remove_file(&probe).ok();
        Ok(LocalStorage { root, staging })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

/// fsyncs a directory so that entries created or renamed in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .runtime_ctx(|| format!("fsync of directory {}", dir.display()))
}

/// Creates `dir` and its missing parents, fsyncing each parent whose entries changed.
fn create_dirs_durably(dir: &Path) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(Error::runtime(format!("creating {}: {e}", dir.display()))),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

impl Storage for LocalStorage {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn publish_file(&self, local: &Path, key: &str) -> Result<()> {
        let dest = self.path(key);
        let parent = dest.parent().expect("keys have a parent");
        create_dirs_durably(parent)?;
        fs::rename(local, &dest).runtime_ctx(|| format!("moving {} to {}", local.display(), dest.display()))?;
        sync_dir(parent)
    }

    fn put_atomic(&self, key: &str, data: &[u8]) -> Result<()> {
        let tmp = self.staging.join(format!(".put-{}", key.replace('/', "_")));
        {
            let mut f = File::create(&tmp).runtime_ctx(|| format!("creating {}", tmp.display()))?;
            f.write_all(data).runtime_ctx(|| format!("writing {}", tmp.display()))?;
            f.sync_all().runtime_ctx(|| format!("fsync of {}", tmp.display()))?;
        }
        self.publish_file(&tmp, key)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match fs::read(self.path(key)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::runtime(format!("reading {}: {e}", self.path(key).display()))),
        }
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.path(key).exists())
    }

    fn delete(&self, key: &str) -> Result<()> {
        match fs::remove_file(self.path(key)) {
            Ok(()) => {
                if let Some(p) = self.path(key).parent() {
                    sync_dir(p)?;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::runtime(format!("deleting {}: {e}", self.path(key).display()))),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let base = self.path(prefix);
        if !base.exists() {
            return Ok(out);
        }
        let mut stack = vec![base];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).runtime_ctx(|| format!("listing {}", dir.display()))? {
                let entry = entry?;
                let p = entry.path();
                if entry.file_type()?.is_dir() {
                    stack.push(p);
                } else if let Ok(rel) = p.strip_prefix(&self.root) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::open(dir.path().join("out")).unwrap();
        let staged = s.staging_dir().join("part");
        fs::write(&staged, b"data").unwrap();
        s.publish_file(&staged, "public/t/cdc/date=2024-01-01/a.parquet").unwrap();
        assert!(!staged.exists());
        assert_eq!(s.get("public/t/cdc/date=2024-01-01/a.parquet").unwrap().unwrap(), b"data");
        s.put_atomic("_pgcdc/checkpoint.json", b"{}").unwrap();
        assert_eq!(s.list("public").unwrap(), vec!["public/t/cdc/date=2024-01-01/a.parquet".to_string()]);
        assert!(s.exists("_pgcdc/checkpoint.json").unwrap());
        s.delete("_pgcdc/checkpoint.json").unwrap();
        assert_eq!(s.get("_pgcdc/checkpoint.json").unwrap(), None);
        assert_eq!(s.list("nothing").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn unwritable_target_is_a_clear_error() {
        let e = super::super::open("file://relative/path").err().unwrap();
        assert_eq!(e.exit_code(), 2);
    }
}
