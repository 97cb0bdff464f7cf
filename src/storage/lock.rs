//! One writer per target: the lock `pgcdc run` takes on every Parquet target before it
//! touches anything there (SPEC 2.2; issue 10, class 6).
//!
//! A local target is locked with an OS advisory lock (`flock(LOCK_EX | LOCK_NB)`) on
//! `_pgcdc/lock`. The kernel releases it when the process exits, however it exits, so a
//! lock file left behind by a killed process never blocks the next run. The file's content
//! only names the holder (host, pid, since when) for the refusal message; it is rewritten by
//! each new holder and never deleted (deleting it would let two processes lock two different
//! files of the same name). `flock` is only reliable on local file systems: two hosts
//! sharing one target over NFS are not excluded.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, ResultExt};

/// The key of the lock file inside a target.
pub const LOCK_KEY: &str = "_pgcdc/lock";

/// Who holds a target's lock, as recorded in the lock file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub host: String,
    pub pid: u32,
    /// When the holder took the lock (RFC 3339, UTC).
    pub since: String,
}

impl LockHolder {
    /// This process, now.
    pub fn this_process() -> LockHolder {
        LockHolder {
            host: host_name(),
            pid: std::process::id(),
            since: crate::time_fmt::now_rfc3339(),
        }
    }
}

/// A held target lock. Dropping it (or exiting) releases the lock.
pub struct TargetLock {
    target: String,
    _guard: Box<dyn Send + Sync>,
}

impl TargetLock {
    /// Wraps whatever keeps a backend's lock held (for a local target: the open lock file).
    pub fn new(target: String, guard: Box<dyn Send + Sync>) -> TargetLock {
        TargetLock {
            target,
            _guard: guard,
        }
    }

    /// The locked target, for messages (`file:///data/out`).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The same lock, also keeping `extra` alive until it is released (dropped after the
    /// backend's own guard).
    pub fn holding(self, extra: Box<dyn Send + Sync>) -> TargetLock {
        TargetLock { target: self.target, _guard: Box::new((self._guard, extra)) }
    }
}

impl std::fmt::Debug for TargetLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TargetLock({})", self.target)
    }
}

/// The refusal when another process holds the lock.
pub fn in_use_error(target: &str, holder: Option<&LockHolder>) -> Error {
    match holder {
        Some(h) if h.pid == std::process::id() && h.host == host_name() => Error::config(format!(
            "target {target} is configured twice: two sinks of this configuration write the same directory"
        ))
        .with_hint("give each [[sink]] its own url"),
        Some(h) => Error::runtime(format!(
            "target {target} is in use by pgcdc pid {} on host {} since {}",
            h.pid, h.host, h.since
        ))
        .with_hint(
            "only one `pgcdc run` may write a target at a time: stop the other run first, or give this configuration its own sink url",
        ),
        None => Error::runtime(format!("target {target} is in use by another pgcdc process")).with_hint(
            "only one `pgcdc run` may write a target at a time: stop the other run first, or give this configuration its own sink url",
        ),
    }
}

/// Takes the lock on the local file `path` (its directory must exist) without waiting.
/// Returns the open file that holds it, with this process recorded as the holder; when
/// another process holds it, the error names that process.
pub fn lock_local_file(path: &Path, target: &str) -> Result<File> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .runtime_ctx(|| format!("opening the target lock {}", path.display()))?;
    // SAFETY: flock on a valid, open file descriptor owned by `file`.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(in_use_error(target, read_holder(&mut file).as_ref()));
        }
        return Err(Error::runtime(format!("locking {}: {err}", path.display())));
    }
    let holder = serde_json::to_vec_pretty(&LockHolder::this_process()).expect("serialisable");
    file.set_len(0)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(&holder))
        .and_then(|_| file.sync_all())
        .runtime_ctx(|| format!("writing the target lock {}", path.display()))?;
    Ok(file)
}

/// The holder recorded in a lock file. The holder writes it right after taking the lock,
/// so an empty file is read again for a moment.
fn read_holder(file: &mut File) -> Option<LockHolder> {
    for _ in 0..20 {
        let mut text = String::new();
        if file.seek(SeekFrom::Start(0)).is_ok() && file.read_to_string(&mut text).is_ok() {
            if let Ok(h) = serde_json::from_str(&text) {
                return Some(h);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    None
}

/// The machine's host name (`?` when unknown).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
    // when the name fits, and we stop at the first NUL or the end.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "?".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
