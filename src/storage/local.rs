//! A local directory target. Durability = the file and every directory entry leading to it
//! fsynced; atomicity = write under `_pgcdc/staging/`, then rename into place.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::lock::{lock_local_file, LOCK_KEY};
use super::{refused, PutMode, Storage, TargetLock, Version};
use crate::error::{Error, Result, ResultExt};

pub struct LocalStorage {
    root: PathBuf,
    staging: PathBuf,
}

impl LocalStorage {
    /// A storage rooted at `root` (relative paths are taken from the current directory).
    /// Changes nothing on disk: [`Storage::lock`] creates the target for a writer.
    pub fn open(root: PathBuf) -> Result<LocalStorage> {
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir().runtime_ctx(|| format!("resolving {}", root.display()))?.join(root)
        };
        let staging = root.join("_pgcdc").join("staging");
        Ok(LocalStorage { root, staging })
    }

    /// The file of `key`. Refuses keys that could leave the root (absolute, or with an
    /// empty, `.` or `..` segment) or that hold NUL: callers build keys from encoded names,
    /// so such a key is a bug, reported instead of written.
    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    fn cannot_create(&self, e: impl std::fmt::Display) -> Error {
        Error::runtime(format!("cannot create output directory {}: {e}", self.root.display()))
            .with_hint("check the sink url and that pgcdc may write there")
    }
}

/// See [`LocalStorage::path`].
pub(super) fn check_key(key: &str) -> Result<()> {
    let bad = key.starts_with('/')
        || key.contains('\0')
        || key.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if bad {
        return Err(Error::runtime(format!("internal error: refusing storage key `{}` (it could leave the target)", key.escape_debug()))
            .with_hint("this is a bug in pgcdc; please report it with the table's schema and name"));
    }
    Ok(())
}

/// A unique name for a temporary file of this process.
fn temp_name(what: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(".{what}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The version of the file at `path` (see [`Version`]), `None` when there is none.
fn version_of(path: &Path) -> Result<Option<Version>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(version_from(&m))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("inspecting {}", path.display()), &e)),
    }
}

fn version_from(m: &fs::Metadata) -> Version {
    use std::os::unix::fs::MetadataExt;
    Version(format!("{}-{}-{}.{}", m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
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

    fn lock(&self) -> Result<TargetLock> {
        // Only what the lock file needs is created before the lock is held; on a target
        // that another run holds, both exist already and nothing changes.
        fs::create_dir_all(self.root.join("_pgcdc")).map_err(|e| self.cannot_create(e))?;
        let file = lock_local_file(&self.root.join(LOCK_KEY), &self.describe())?;
        fs::create_dir_all(&self.staging).runtime_ctx(|| format!("creating {}", self.staging.display()))?;
        // Probe that we can really write here, so a read-only target fails before replication starts.
        let probe = self.staging.join(temp_name("write-probe"));
        File::create(&probe)
            .and_then(|mut f| f.write_all(b"ok"))
            .map_err(|e| Error::runtime(format!("output directory {} is not writable: {e}", self.root.display())))?;
        fs::remove_file(&probe).ok();
        Ok(TargetLock::new(self.describe(), Box::new(file)))
    }

    fn probe_writable(&self) -> Result<()> {
        let mut dir = self.root.as_path();
        while !dir.exists() {
            dir = match dir.parent() {
                Some(p) => p,
                None => break,
            };
        }
        if !dir.is_dir() {
            return Err(self.cannot_create(format!("{} is not a directory", dir.display())));
        }
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|e| self.cannot_create(e))?;
        // SAFETY: a valid NUL-terminated path; access() only reads it.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if dir == self.root {
                Error::runtime(format!("output directory {} is not writable: {e}", self.root.display()))
                    .with_hint("check the sink url and that pgcdc may write there")
            } else {
                self.cannot_create(format!("{}: {e}", dir.display()))
            });
        }
        Ok(())
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn publish_file(&self, local: &Path, key: &str) -> Result<()> {
        let dest = self.path(key)?;
        let parent = dest.parent().expect("keys have a parent");
        create_dirs_durably(parent)?;
        fs::rename(local, &dest).runtime_ctx(|| format!("moving {} to {}", local.display(), dest.display()))?;
        sync_dir(parent)
    }

    fn put(&self, key: &str, data: &[u8], mode: PutMode<'_>) -> Result<Version> {
        let dest = self.path(key)?;
        // The condition is checked before anything is written, and holds until the rename:
        // only the holder of the target's lock writes here.
        match (&mode, version_of(&dest)?) {
            (PutMode::CreateOnly, Some(_)) => return Err(refused(&self.describe(), key, &mode)),
            (PutMode::ReplaceIf(expected), now) if now.as_ref() != Some(*expected) => {
                return Err(refused(&self.describe(), key, &mode))
            }
            _ => {}
        }
        let tmp = self.staging.join(temp_name("put"));
        {
            let mut f = File::create(&tmp).runtime_ctx(|| format!("creating {}", tmp.display()))?;
            f.write_all(data).runtime_ctx(|| format!("writing {}", tmp.display()))?;
            f.sync_all().runtime_ctx(|| format!("fsync of {}", tmp.display()))?;
        }
        self.publish_file(&tmp, key)?;
        version_of(&dest)?.ok_or_else(|| Error::runtime(format!("{} vanished right after it was written", dest.display())))
    }

    fn get_versioned(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        let path = self.path(key)?;
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), &e)),
        };
        // The version of the file read, not of whatever a rename put there since.
        let version = file.metadata().map(|m| version_from(&m)).runtime_ctx(|| format!("reading {}", path.display()))?;
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut data).runtime_ctx(|| format!("reading {}", path.display()))?;
        Ok(Some((data, version)))
    }

    fn has_staged(&self, path: &Path) -> bool {
        path.starts_with(&self.staging) && path.exists()
    }

    fn clear_staging(&self) -> Result<()> {
        let entries = match fs::read_dir(&self.staging) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(format!("listing {}", self.staging.display()), &e)),
        };
        for e in entries.flatten() {
            fs::remove_file(e.path()).ok();
        }
        Ok(())
    }

    fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.path(key)?.exists())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(p) = path.parent() {
                    sync_dir(p)?;
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::runtime(format!("deleting {}: {e}", path.display()))),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let base = if prefix.is_empty() { self.root.clone() } else { self.path(prefix)? };
        if !base.exists() {
            return Ok(out);
        }
        let mut stack = vec![base];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).runtime_ctx(|| format!("listing {}", dir.display()))? {
                let entry = entry.runtime_ctx(|| format!("listing {}", dir.display()))?;
                let p = entry.path();
                if entry.file_type().runtime_ctx(|| format!("inspecting {}", p.display()))?.is_dir() {
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
        assert!(!dir.path().join("out").exists(), "opening creates nothing");
        let _lock = s.lock().unwrap();
        let staged = s.staging_dir().join("part");
        fs::write(&staged, b"data").unwrap();
        s.publish_file(&staged, "public/t/cdc/date=2024-01-01/a.parquet").unwrap();
        assert!(!staged.exists());
        assert_eq!(s.get("public/t/cdc/date=2024-01-01/a.parquet").unwrap().unwrap(), b"data");
        s.put("_pgcdc/checkpoint.json", b"{}", PutMode::Overwrite).unwrap();
        assert_eq!(s.list("public").unwrap(), vec!["public/t/cdc/date=2024-01-01/a.parquet".to_string()]);
        assert!(s.exists("_pgcdc/checkpoint.json").unwrap());
        s.delete("_pgcdc/checkpoint.json").unwrap();
        assert_eq!(s.get("_pgcdc/checkpoint.json").unwrap(), None);
        assert_eq!(s.list("nothing").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn keys_never_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::open(dir.path().join("out")).unwrap();
        let _lock = s.lock().unwrap();
        for key in ["../x", "/etc/x", "a/../../x", "a//b", "./a", "a/.", "", "a/", "a\0b"] {
            assert!(s.put(key, b"x", PutMode::Overwrite).is_err(), "{key:?}");
            assert!(s.get(key).is_err(), "{key:?}");
            assert!(s.delete(key).is_err(), "{key:?}");
            let staged = s.staging_dir().join("f");
            fs::write(&staged, b"x").unwrap();
            assert!(s.publish_file(&staged, key).is_err(), "{key:?}");
        }
        assert!(!dir.path().join("x").exists());
        // Dots inside a segment are fine.
        s.put("a/..b/c.json", b"x", PutMode::Overwrite).unwrap();
    }

    #[test]
    fn conditional_puts_fence_a_stale_writer() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::open(dir.path().join("out")).unwrap();
        let _lock = s.lock().unwrap();
        let v1 = s.put("_pgcdc/checkpoint.json", b"1", PutMode::CreateOnly).unwrap();
        // Create-only finds it there.
        let e = s.put("_pgcdc/checkpoint.json", b"x", PutMode::CreateOnly).unwrap_err();
        assert!(e.message.contains("another pgcdc run has taken over"), "{e}");
        assert_eq!(s.get_versioned("_pgcdc/checkpoint.json").unwrap().unwrap(), (b"1".to_vec(), v1.clone()));
        // The holder of the version replaces it; each put makes a new version.
        let v2 = s.put("_pgcdc/checkpoint.json", b"22", PutMode::ReplaceIf(&v1)).unwrap();
        assert_ne!(v1, v2);
        // A writer still holding the old version is refused, and the object stays.
        assert!(s.put("_pgcdc/checkpoint.json", b"stale", PutMode::ReplaceIf(&v1)).is_err());
        assert!(s.put("_pgcdc/none.json", b"x", PutMode::ReplaceIf(&v1)).is_err());
        assert_eq!(s.get("_pgcdc/checkpoint.json").unwrap().unwrap(), b"22");
        // Overwrite needs no version.
        s.put("_pgcdc/checkpoint.json", b"3", PutMode::Overwrite).unwrap();
        assert_ne!(s.get_versioned("_pgcdc/checkpoint.json").unwrap().unwrap().1, v2);
    }

    #[test]
    fn staging_is_checked_and_cleared_through_the_trait() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::open(dir.path().join("out")).unwrap();
        let _lock = s.lock().unwrap();
        let staged = s.staging_dir().join("part");
        fs::write(&staged, b"data").unwrap();
        assert!(s.has_staged(&staged));
        assert!(!s.has_staged(&dir.path().join("elsewhere")));
        s.clear_staging().unwrap();
        assert!(!s.has_staged(&staged) && !staged.exists());
    }

    #[test]
    fn a_second_lock_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalStorage::open(dir.path().join("out")).unwrap();
        let b = LocalStorage::open(dir.path().join("out")).unwrap();
        let held = a.lock().unwrap();
        let listing = |p: &Path| {
            let mut v: Vec<_> = fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name()).collect();
            v.sort();
            v
        };
        let before = (listing(&dir.path().join("out/_pgcdc")), fs::read(dir.path().join("out/_pgcdc/lock")).unwrap());
        let e = b.lock().unwrap_err();
        // Same process: reported as a configuration mistake, naming the target.
        assert!(e.message.contains("configured twice"), "{}", e.message);
        assert_eq!(before, (listing(&dir.path().join("out/_pgcdc")), fs::read(dir.path().join("out/_pgcdc/lock")).unwrap()));
        let holder: super::super::lock::LockHolder =
            serde_json::from_slice(&fs::read(dir.path().join("out/_pgcdc/lock")).unwrap()).unwrap();
        assert_eq!(holder.pid, std::process::id());
        drop(held);
        // Released: the stale file does not block.
        b.lock().unwrap();
    }

    #[test]
    fn probe_writable_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::open(dir.path().join("out/deeper")).unwrap();
        s.probe_writable().unwrap();
        assert!(!dir.path().join("out").exists());
        fs::write(dir.path().join("file"), b"x").unwrap();
        let s = LocalStorage::open(dir.path().join("file/out")).unwrap();
        assert!(s.probe_writable().unwrap_err().message.contains("cannot create output directory"));
    }
}
